"""Hostile JSON Lines values that once ran "succeeded" with a different value in bronze than the record held: a
boolean kept as 1 in a number column, a number read as seconds since 1970 in a timestamp column, an array of
strings written as Spark's display of it (`[a, b]`) in a string column. Each is now kept as written, or
quarantined with its reason.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.jobs.test_hostile_csv import kept, rejected, run

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]


def lines(*records: str) -> str:
    return "\n".join(records) + "\n"


@pytest.mark.parametrize("declared", ["int", "bigint", "double", "decimal(10,2)"])
def test_a_json_boolean_in_a_number_column_is_quarantined_not_kept_as_1_or_0(spark, core, tmp_path, declared):
    # A column of booleans only is read as booleans, and a cast made true 1 (1.0, 1.00) and false 0; the same
    # column with one number in it rejected `true`, as a CSV's `true` is.
    text = lines('{"id": 1, "n": true}', '{"id": 2, "n": false}', '{"id": 3, "n": null}')
    summary, lake = run(spark, core, tmp_path, {"a.jsonl": text}, format="jsonl", columns={"n": declared})

    assert summary.status == "succeeded", summary.error
    assert [(r["id"], r["n"]) for r in kept(lake)] == [(3, None)]
    assert sorted((r["id"], r["n"]) for r in rejected(lake)) == [("1", "true"), ("2", "false")]
    assert summary.rejected_by_reason == {f"n: not a valid {declared}": 2}


@pytest.mark.parametrize(
    ("declared", "value"),
    [("timestamp", "1700000000"), ("timestamp", "1.5"), ("timestamp", "true"),
     ("timestamp:yyyy-MM-dd HH:mm:ss", "1700000000"), ("date", "19000")],
)  # fmt: skip
def test_a_json_number_or_boolean_in_a_date_or_timestamp_column_is_no_count_of_seconds(
    spark, core, tmp_path, declared, value
):
    # A cast read 1700000000 as seconds since 1970 (2023-11-14 22:13:20, whatever the declared format), 1.5 as
    # 1970-01-01 00:00:01.5, true as a microsecond; into a date it failed the run with Spark's AnalysisException.
    text = lines(f'{{"id": 1, "t": {value}}}', '{"id": 2, "t": null}')
    summary, lake = run(spark, core, tmp_path, {"a.jsonl": text}, format="jsonl", columns={"t": declared})

    assert summary.status == "succeeded", summary.error
    assert [(r["id"], r["t"]) for r in kept(lake)] == [(2, None)]
    assert [(r["t"], r["reject_reason"]) for r in rejected(lake)] == [(value, f"t: not a valid {declared}")]


@pytest.mark.parametrize(
    ("declared", "value", "expected"),
    [("date:yyyyMMdd", "20240101", dt.date(2024, 1, 1)),
     ("timestamp:yyyyMMddHHmmss", "20240101123000", dt.datetime(2024, 1, 1, 12, 30))],
)  # fmt: skip
def test_a_json_number_in_a_formatted_date_column_is_read_by_its_format(
    spark, core, tmp_path, declared, value, expected
):
    # The digits of a number are the text the format reads, as a CSV's are: a cast failed the run (a date) or
    # read them as seconds since 1970 (a timestamp).
    text = lines(f'{{"id": 1, "t": {value}}}')
    summary, lake = run(spark, core, tmp_path, {"a.jsonl": text}, format="jsonl", columns={"t": declared})

    assert summary.status == "succeeded", summary.error
    assert [(r["id"], r["t"]) for r in kept(lake)] == [(1, expected)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [(['["a, b"]', '["a","b"]', "[]"], ['["a, b"]', '["a","b"]', "[]"]),
     (['[{"x": 1, "y": "q"}]', '[{"x": 2}]'], ['[{"x":1,"y":"q"}]', '[{"x":2}]']),
     (["[1.5, null]", "[2.25]"], ["[1.5,null]", "[2.25]"]),
     (["[[1], [2, 3]]"], ["[[1],[2,3]]"])],
    ids=["strings", "objects", "numbers", "nested"],
)  # fmt: skip
def test_a_json_array_in_a_string_column_is_its_json_text(spark, core, tmp_path, values, expected):
    # A cast wrote Spark's display of the array: `["a, b"]` and `["a","b"]` were both `[a, b]`, an object `{1, q}`.
    files = {"a.jsonl": lines(*(f'{{"id": {i}, "s": {v}}}' for i, v in enumerate(values)))}
    summary, lake = run(spark, core, tmp_path, files, format="jsonl", columns={"s": "string"})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["s"]) for r in kept(lake)) == list(enumerate(expected))
