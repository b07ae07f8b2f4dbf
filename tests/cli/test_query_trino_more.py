"""`dw query` through the real entry point, for failures that used to escape as Python tracebacks.

Every expected message is Athena's (or dw's refusal); the cases come from Trino's sources, as in
trino_corpus.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_query_dialect import corpus_lake, run_dw  # noqa: F401 - corpus_lake is a fixture

FAILURES = [
    # sqlglot's JSONPath raised a bare ValueError while writing `$.a..b` (Trino: JsonPathTokenizer rejects it)
    ("SELECT json_extract_scalar('{\"fuu\": 1}', '$.fuu..bar')", "Invalid JSON path"),
    # RE2 rejected the lookahead with its own error; Athena's Java regex reads it
    ("SELECT regexp_like('aXb', 'a(?=X)')", "not supported locally"),
    # a lambda's varchar parameter compared with a number: DuckDB converted silently ([true])
    ("SELECT transform(ARRAY['1'], x -> x = 1)", "Cannot apply operator"),
    # refused while running (a macro's error()), not while translating: still one paragraph
    ("SELECT json_extract_scalar('{\"price\": 12.50}', '$.price')", "not supported locally"),
    ("SELECT cbrt(2)", "not supported locally"),
    # a refusal inside TRY(...): DuckDB's TRY made it NULL, a quiet answer Athena does not give
    ("SELECT TRY(cbrt(2))", "not supported locally"),
    ("SELECT TRY(json_extract_scalar('{\"price\": 12.50}', '$.price'))", "not supported locally"),
    # Athena's own errors, raised by dw before DuckDB runs
    ("SELECT x, lag(x, -1) OVER (ORDER BY x) FROM (VALUES 1, 2) AS t(x)", "Offset must be at least 0"),
    ("SELECT date_format(TIMESTAMP '2024-01-05 13:04:05', '%U')", "%U not supported in date format string"),
    ("SELECT DATE '2001-01-22' + INTERVAL '3' HOUR", "Cannot add hour, minutes or seconds to a date"),
]


@pytest.mark.parametrize(("sql", "message"), FAILURES)
def test_failures_exit_1_in_one_paragraph_without_traceback(
    project_copy: Path,
    corpus_lake: Path,  # noqa: F811
    sql: str,
    message: str,
) -> None:
    result = run_dw(project_copy, corpus_lake, sql)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stdout == ""
