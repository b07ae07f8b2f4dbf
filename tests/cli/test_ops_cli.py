"""`dw runs` shows what the ledger holds, and `dw run` shows progress only on a terminal.

Ledger entries here are written as the jobs write them (runs/{dataset}/run_id=X[.layer].json),
so `dw runs` is tested through the real command without starting Spark.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_ok, dw, line_with, show

DATASET = "epa-daily-aqi"


def entry(lake: Path, run_id: str, layer: str = "bronze", **fields) -> None:
    suffix = "" if layer == "bronze" else f".{layer}"
    path = lake / "runs" / DATASET / f"run_id={run_id}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "dataset": DATASET,
        "run_id": run_id,
        "layer": layer,
        "source": "sample",
        "status": "succeeded",
        "raw_run_id": None,
        "bytes_fetched": 0,
        "rows_in": 0,
        "rows_kept": 0,
        "rows_rejected": 0,
        "output_files": 0,
        "output_bytes": 0,
        "schema_changed": None,
        "durations_seconds": {},
        "error": None,
        **fields,
    }
    path.write_text(json.dumps(summary, indent=2))


def cells(row: str) -> list[str]:
    import re

    return [c.strip() for c in re.split("[│┃]", row.strip().strip("│┃"))]


HEADER = ["run id", "layer", "status", "in", "kept", "rejected", "rejected %", "seconds", "bytes written", "schema",
          "error"]  # fmt: skip


def test_runs_shows_every_figure_the_ledger_holds(project_copy, tmp_path):
    lake = tmp_path / "lake"
    entry(
        lake, "20261201T060000Z", rows_in=60, rows_kept=55, rows_rejected=1, rows_dropped_by_transform=4,
        output_bytes=5639, output_files=1, schema_changed=None,
        started_at="2026-12-01T06:00:03+00:00", finished_at="2026-12-01T06:00:46+00:00",
        durations_seconds={"fetch": 0.5, "transform": 33.2, "quarantine": 9.1},
    )  # fmt: skip
    entry(
        lake, "20261201T060000Z", layer="gold", rows_kept=12, schema_changed=True,
        started_at="2026-12-01T06:00:50+00:00", finished_at="2026-12-01T06:01:10+00:00",
    )  # fmt: skip
    entry(
        lake, "20261202T060000Z", status="failed", rows_in=1000, rows_kept=750, rows_rejected=250,
        schema_changed=False, started_at="2026-12-02T06:00:00+00:00", finished_at="2026-12-02T06:02:05+00:00",
        error="25.00% of rows rejected, above quality.max_rejected_fraction 5.00%; bronze keeps its previous data",
    )  # fmt: skip
    result = dw("runs", DATASET, "--lake", lake, cwd=project_copy)
    assert_ok(result)
    header = line_with(result.stdout, "run id")
    assert cells(header) == HEADER, show(result)

    first = cells(line_with(result.stdout, "20261201T060000Z │ bronze"))
    # rejected % = rejected / in; seconds = wall time from started_at to finished_at (as CloudWatch gets it)
    assert first == ["20261201T060000Z", "bronze", "succeeded", "60", "55", "1", "1.67%", "43.0", "5639", "first", ""]
    gold = cells(line_with(result.stdout, "20261201T060000Z │ gold"))
    assert gold[:3] == ["20261201T060000Z", "gold", "succeeded"] and gold[4] == "12"
    assert gold[7] == "20.0" and gold[9] == "changed"
    failed = cells(line_with(result.stdout, "20261202T060000Z"))
    assert failed[:10] == ["20261202T060000Z", "bronze", "failed", "1000", "750", "250", "25.00%", "125.0", "0",
                           "same"]  # fmt: skip
    assert "25.00% of rows rejected" in failed[10]
    # newest first
    assert result.stdout.index("20261202T060000Z") < result.stdout.index("20261201T060000Z")


def test_runs_of_a_fetch_only_run_show_no_row_figures(project_copy, tmp_path):
    lake = tmp_path / "lake"
    entry(
        lake, "20261203T060000Z", layer="raw", bytes_fetched=4636,
        started_at="2026-12-03T06:00:00+00:00", finished_at="2026-12-03T06:00:02+00:00",
    )  # fmt: skip
    result = dw("runs", DATASET, "--lake", lake, cwd=project_copy)
    assert_ok(result)
    row = cells(line_with(result.stdout, "20261203T060000Z"))
    assert row == ["20261203T060000Z", "raw", "succeeded", "", "", "", "", "2.0", "", "", ""]


@pytest.mark.parametrize("rows_in", [0, None])
def test_runs_with_no_rows_in_shows_a_zero_fraction_not_an_error(project_copy, tmp_path, rows_in):
    lake = tmp_path / "lake"
    entry(lake, "20261204T060000Z", status="failed", rows_in=rows_in, error="Could not read the source")
    result = dw("runs", DATASET, "--lake", lake, cwd=project_copy)
    assert_ok(result)
    row = cells(line_with(result.stdout, "20261204T060000Z"))
    assert row[2] == "failed" and row[6] == "0.00%" and row[10] == "Could not read the source"


CORRUPT = {
    "truncated": ('{"dataset": "epa-daily-aqi", "run_id": "2026', "is not readable JSON"),
    "array": ("[1, 2]", "it holds a JSON list, not an object"),
    "null": ("null", "it holds a JSON null, not an object"),
    "no-run_id": (json.dumps({"layer": "bronze", "status": "succeeded"}), "it has no run_id"),
    "rows_in-text": (json.dumps({"run_id": "20261202T060000Z", "layer": "bronze", "status": "succeeded",
                                 "rows_in": "abc"}), "its rows_in 'abc' is not a whole number"),  # fmt: skip
    "schema-text": (json.dumps({"run_id": "20261202T060000Z", "layer": "bronze", "status": "succeeded",
                                "schema": "oops"}), "its schema 'oops' is not a list"),  # fmt: skip
}


@pytest.mark.parametrize("damage", list(CORRUPT))
def test_a_damaged_ledger_entry_is_shown_as_unreadable_naming_the_file_and_the_rest_still_listed(
    project_copy, tmp_path, damage
):
    lake = tmp_path / "lake"
    entry(lake, "20261201T060000Z", rows_in=5, rows_kept=5)
    text, why = CORRUPT[damage]
    damaged = lake / "runs" / DATASET / "run_id=20261202T060000Z.json"
    damaged.write_text(text)

    listing = dw("runs", DATASET, "--lake", lake, cwd=project_copy)
    assert_ok(listing)
    assert cells(line_with(listing.stdout, "│ 20261202T060000Z"))[:3] == ["20261202T060000Z", "bronze", "unreadable"]
    assert cells(line_with(listing.stdout, "│ 20261201T060000Z"))[:4] == ["20261201T060000Z", "bronze", "succeeded", "5"]
    problem = line_with(listing.stdout, "unreadable entry:")
    assert f"{damaged} " in problem and why in problem and "restore it or delete it" in problem

    every = dw("list", "--lake", lake, cwd=project_copy)
    assert_ok(every)
    assert f"unreadable: runs/{DATASET}/run_id=20261202T060000Z.json" in every.stdout.replace("\n", "")


def test_runs_and_list_name_hand_edited_entries_instead_of_crashing(project_copy, tmp_path):
    lake = tmp_path / "lake"
    entry(lake, "20261101T000000Z", started_at="2026-11-01T00:00:00+00:00", finished_at="2026-11-01T00:01:00+00:00")
    entry(lake, "20261102T000000Z", schema_changed=[])
    entry(lake, "20261103T000000Z", started_at="2026-11-03T00:00:00", finished_at="2026-11-03T00:01:00+00:00")
    entry(lake, "20261104T000000Z", previous_attempts=["failed"], durations_seconds={"fetch": "1"})
    result = dw("runs", DATASET, "--lake", lake, cwd=project_copy)
    assert_ok(result)
    text = " ".join(result.stdout.split())
    assert "its schema_changed [] is not true, false or null" in text
    assert "its started_at '2026-11-03T00:00:00' has no time zone" in text
    assert "its previous_attempts hold 'failed', not an object" in text
    assert cells(line_with(result.stdout, "20261101T000000Z"))[2] == "succeeded"
    assert_ok(dw("list", "--lake", lake, cwd=project_copy))
