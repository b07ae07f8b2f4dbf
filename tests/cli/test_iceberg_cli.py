"""The example Iceberg dataset end to end through the `dw` command: two sample runs merged by key (and
its gold model committed after each), then `dw query` with time travel and a metadata table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.test_cli import ROOT, assert_error, assert_ok, dw, line_with

pytestmark = [pytest.mark.spark, pytest.mark.slow]
SPARK_RUN = 900


def test_usgs_earthquakes_merges_and_travels_back(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(ROOT / "config.json", project / "config.json")
    shutil.copytree(ROOT / "datasets" / "usgs-earthquakes", project / "datasets" / "usgs-earthquakes")
    lake = tmp_path / "lake"
    first = dw("run", "usgs-earthquakes", "--sample", "--lake", lake, "--run-id", "20261201T000000Z",
               cwd=project, timeout=SPARK_RUN)  # fmt: skip
    assert_ok(first)
    assert "no crawler is needed" in first.stdout and "aws glue start-crawler" not in first.stdout
    # the next download: one event revised, one new
    sample = project / "datasets" / "usgs-earthquakes" / "sample" / "all_day.csv"
    lines = sample.read_text().splitlines()
    revised = lines[1].replace(",1.8,", ",2.9,")
    new = lines[2].replace("hv740009173", "hv799999999")
    sample.write_text("\n".join([lines[0], revised, new]) + "\n")
    second = dw("run", "usgs-earthquakes", "--sample", "--lake", lake, "--run-id", "20261201T010000Z",
                cwd=project, timeout=SPARK_RUN)  # fmt: skip
    assert_ok(second)

    def query(sql: str):
        result = dw("query", "--lake", lake, "--format", "csv", sql, cwd=project)
        assert_ok(result)
        return result.stdout.strip().splitlines()[1:]

    table = "pp_dw_bronze.usgs_earthquakes"
    assert query(f"SELECT count(*), count(DISTINCT id) FROM {table}") == ["25,25"]
    assert query(f"SELECT mag FROM {table} WHERE id = 'ci740000000'") == ["2.9"]
    snapshots = query('SELECT snapshot_id FROM pp_dw_bronze."usgs_earthquakes$snapshots" ORDER BY committed_at')
    assert len(snapshots) == 2
    assert query(f"SELECT mag FROM {table} FOR VERSION AS OF {snapshots[0]} WHERE id = 'ci740000000'") == ["1.8"]
    # the gold model is an Iceberg table too: one snapshot per run, read at the current one, travels back
    gold = "pp_dw_gold.earthquakes_by_day"
    assert query(f"SELECT quakes FROM {gold}") == ["25"]
    gold_snapshots = query('SELECT snapshot_id FROM pp_dw_gold."earthquakes_by_day$snapshots" ORDER BY committed_at')
    assert len(gold_snapshots) == 2
    assert query(f"SELECT quakes FROM {gold} FOR VERSION AS OF {gold_snapshots[0]}") == ["24"]
    history = dw("query", "--lake", lake, 'SELECT * FROM pp_dw_bronze."usgs_earthquakes$history"', cwd=project)
    assert "is_current_ancestor" in line_with(history.stdout, "made_current_at")
    assert_error(dw("query", "--lake", lake, f"SELECT * FROM {table} FOR VERSION AS OF 7", cwd=project),
                 "has no snapshot 7")  # fmt: skip
