"""`dw run` on a large CSV with a record its reader cannot type, past the first bytes `dw` looks at.

The first read is planned as a bare Spark job's (FAILFAST, no corrupt-record column) and stops at that
record; Spark's message for it holds the record. The run reads again with the record's text split, keeps and
quarantines what a text read would, and nothing of the record reaches the terminal or the run ledger.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from tests.cli.test_cli import SPARK_TIMEOUT, assert_ok, dw

DATASET = "meter-readings"
TOKEN = "Xq7-token"  # the text of the record that stops the first read: it must show nowhere but the quarantine


def test_a_record_that_stops_the_first_read_is_quarantined_and_shown_nowhere_else(project_copy, tmp_path):
    folder = project_copy / "datasets" / DATASET
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "dataset": DATASET,
                "description": "Meter readings with two records the CSV reader cannot type, deep in the file",
                "data_size_category": "medium",
                "source_url": "readings.csv",
                "format": "csv",
                "columns": {"meter": "bigint", "site": "string", "kwh": "double", "read_at": "timestamp"},
                "quality": {"max_rejected_fraction": 0.01},
            }
        )
    )
    rows = [f"{i},site-{i % 97},{i % 1000}.25,2026-01-0{1 + i % 9} 0{i % 10}:15:00" for i in range(600_000)]
    rows[400_000] = f"{TOKEN},site-1,0.25,2026-01-01 00:15:00"  # not a bigint (doubles are typed from text)
    rows[500_000] = f"500000,{TOKEN}-short"  # too few fields
    (folder / "readings.csv").write_text("meter,site,kwh,read_at\n" + "\n".join(rows) + "\n")
    assert (folder / "readings.csv").stat().st_size > 16 * 1024**2  # large: the reader types the columns
    lake = tmp_path / "lake"

    result = dw("run", DATASET, "--layer", "bronze", "--lake", lake, cwd=project_copy, timeout=SPARK_TIMEOUT)

    assert_ok(result)
    shown = result.stdout + result.stderr
    assert TOKEN not in shown and "MALFORMED_RECORD" not in shown and "Exception" not in shown, shown
    [entry] = (lake / "runs" / DATASET).glob("run_id=*.json")
    assert TOKEN not in entry.read_text()
    summary = json.loads(entry.read_text())
    assert (summary["status"], summary["rows_in"], summary["rows_kept"], summary["rows_rejected"]) == (
        "succeeded",
        600_000,
        599_998,
        2,
    )
    assert summary["csv_untyped_records"] == 2  # the next run reads with the split at once
    quarantined = pq.read_table(lake / "quarantine" / DATASET).to_pylist()
    assert sorted((r["meter"], r["kwh"], r["reject_reason"]) for r in quarantined) == [
        ("500000", None, "malformed: 2 fields, header has 4"),
        (TOKEN, "0.25", "meter: not a valid bigint"),
    ]
