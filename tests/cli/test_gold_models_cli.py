"""`dw validate` on gold model files: what the gold job would refuse or not read is reported before a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_script = Path(sys.executable).with_name("dw")
DW = [str(_script)] if _script.is_file() else [sys.executable, "-m", "dw.cli"]
GOLD = Path("datasets/ourairports/gold")
READS = "SELECT continent FROM pp_dw_gold.airports_by_country\n"


def validate(project: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DW_")}
    env.update(TERM="dumb", COLUMNS="240", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([*DW, "validate"], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def test_validate_names_a_model_file_that_is_not_utf8_and_the_fix(project_copy):
    (project_copy / GOLD / "cafe.sql").write_bytes(b"-- Caf\xe9 count\n" + READS.encode())
    result = validate(project_copy)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "datasets/ourairports/gold/cafe.sql: is not UTF-8 text (byte 0xe9 at line 1, column 7, likely Latin-1 or "
        "Windows-1252); save the file as UTF-8"
    ) in result.stderr


def test_validate_accepts_a_model_file_with_a_byte_order_mark(project_copy):
    (project_copy / GOLD / "bom.sql").write_bytes(b"\xef\xbb\xbf-- expect: row_count > 0\n" + READS.encode())
    result = validate(project_copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: "), result.stdout


def test_validate_reports_an_expectation_that_would_not_be_read(project_copy):
    (project_copy / GOLD / "silent.sql").write_text(
        "/* Countries per continent */\n-- expect: row_count > 0\n-- expect unique(continent)\n" + READS
    )
    result = validate(project_copy)
    assert result.returncode == 1, result.stdout
    assert "datasets/ourairports/gold/silent.sql" in result.stderr
    assert "line 3: '-- expect unique(continent)' is not read as an expectation; write `-- expect: RULE`" in (
        result.stderr
    )
