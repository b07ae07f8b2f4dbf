"""A dataset switched between `"table_format": "parquet"` and `"iceberg"`, through `dw run`: the run finds the
old layout in the table's folder and refuses before it fetches, naming the folder and the command that moves it
aside; nothing in the lake changes until that command is typed, and the next run then makes the new table alone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli.test_cli import ROOT, assert_ok, dw, show

pytestmark = [pytest.mark.spark, pytest.mark.slow]
SPARK_RUN = 900
NAME = "usgs-earthquakes"
BRONZE = "pp_dw_bronze.usgs_earthquakes"
GOLD = "pp_dw_gold.earthquakes_by_day"
RUN1, RUN2, RUN3, RUN4 = "20261201T000000Z", "20261201T010000Z", "20261201T020000Z", "20261201T030000Z"


class Switch:
    """A copy of the project with the example dataset, whose table format the test switches."""

    def __init__(self, tmp_path: Path):
        self.project = tmp_path / "project"
        self.project.mkdir()
        shutil.copyfile(ROOT / "config.json", self.project / "config.json")
        shutil.copytree(ROOT / "datasets" / NAME, self.project / "datasets" / NAME)
        self.config_file = self.project / "datasets" / NAME / "config.json"
        self.iceberg_config = json.loads(self.config_file.read_text())
        self.lake = tmp_path / "lake"

    def use(self, table_format: str) -> None:
        config = dict(self.iceberg_config)
        if table_format == "parquet":  # merge and partitions are Iceberg's
            config.update(table_format="parquet", load_mode="full")
            config.pop("partition_by")
        self.config_file.write_text(json.dumps(config, indent=2))

    def run(self, run_id: str, *args: str) -> subprocess.CompletedProcess:
        return dw("run", NAME, "--sample", "--lake", self.lake, "--run-id", run_id, *args,
                  cwd=self.project, timeout=SPARK_RUN)  # fmt: skip

    def query(self, sql: str) -> list[str]:
        result = dw("query", "--lake", self.lake, "--format", "csv", sql, cwd=self.project)
        assert_ok(result)
        return result.stdout.strip().splitlines()[1:]

    def files(self) -> dict[str, int]:
        """Every file of the lake's bronze/, gold/ and catalog, with its size: what a refused run must not change."""
        return {
            str(p.relative_to(self.lake)): p.stat().st_size
            for top in ("bronze", "gold", "_iceberg")
            for p in sorted((self.lake / top).rglob("*"))
            if p.is_file()
        }


def refused(result: subprocess.CompletedProcess, folder: Path) -> str:
    """The refusal's move command (asserting what the message says), as the user would paste it."""
    assert result.returncode == 1, show(result)
    assert "Traceback" not in result.stdout + result.stderr, show(result)
    assert f"{folder} holds " in result.stdout, show(result)
    assert "nothing was done" in result.stdout, show(result)
    commands = re.findall(r"`(mkdir -p [^`]+ && mv [^`]+)`", result.stdout)
    assert len(commands) == 1, show(result)
    assert re.search(rf"mv {re.escape(str(folder))} \S*/backup/", commands[0]), commands[0]
    return commands[0]


def type_it(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


def test_parquet_to_iceberg_refuses_until_the_parquet_files_are_moved_aside(tmp_path):
    lake = Switch(tmp_path)
    lake.use("parquet")
    assert_ok(lake.run(RUN1))
    assert lake.query(f"SELECT count(*) FROM {BRONZE}") == ["24"]
    parquet = lake.files()

    lake.use("iceberg")
    first = lake.run(RUN2)
    move_bronze = refused(first, lake.lake / "bronze" / "usgs_earthquakes")
    assert '"table_format": "parquet"' in first.stdout and "file(s) of the Parquet table" in first.stdout
    assert lake.files() == parquet  # no Iceberg file beside the Parquet ones, no catalog, nothing deleted
    assert lake.query(f"SELECT count(*) FROM {BRONZE}") == ["24"]

    type_it(move_bronze)
    second = lake.run(RUN3)  # bronze becomes Iceberg; the gold model's folder still holds Parquet
    assert second.returncode == 1, show(second)
    assert "committed snapshot" in second.stdout, show(second)
    move_gold = refused(second, lake.lake / "gold" / "usgs_earthquakes" / "earthquakes_by_day")
    assert lake.query(f"SELECT count(*) FROM {GOLD}") == ["1"]  # the Parquet model, untouched

    type_it(move_gold)
    assert_ok(lake.run(RUN4, "--layer", "gold"))
    assert lake.query(f"SELECT count(*), count(DISTINCT id) FROM {BRONZE}") == ["24,24"]
    assert lake.query(f"SELECT quakes FROM {GOLD}") == ["24"]
    assert len(lake.query('SELECT snapshot_id FROM pp_dw_bronze."usgs_earthquakes$snapshots"')) == 1
    assert not [k for k in lake.files() if k.startswith("bronze/") and "/data/" not in k and "/metadata/" not in k]
    backups = sorted(p.name for p in (lake.lake / "backup" / "bronze").iterdir())
    assert backups == [f"usgs_earthquakes-parquet-{RUN2}"]  # the old files, kept where nothing reads them
    assert list((lake.lake / "backup" / "bronze" / backups[0]).glob("*.parquet"))


def test_iceberg_to_parquet_refuses_until_the_iceberg_table_is_moved_aside(tmp_path):
    lake = Switch(tmp_path)
    lake.use("iceberg")
    assert_ok(lake.run(RUN1, "--layer", "bronze"))
    snapshots = lake.query('SELECT snapshot_id FROM pp_dw_bronze."usgs_earthquakes$snapshots"')
    assert len(snapshots) == 1
    iceberg = lake.files()

    lake.use("parquet")
    first = lake.run(RUN2, "--layer", "bronze")
    move = refused(first, lake.lake / "bronze" / "usgs_earthquakes")
    assert "holds the Iceberg table pp_dw_bronze.usgs_earthquakes" in first.stdout
    assert lake.files() == iceberg  # the Parquet publish would have replaced the folder, snapshots and all
    assert lake.query('SELECT snapshot_id FROM pp_dw_bronze."usgs_earthquakes$snapshots"') == snapshots
    assert lake.query(f"SELECT count(*) FROM {BRONZE} FOR VERSION AS OF {snapshots[0]}") == ["24"]

    type_it(move)
    assert_ok(lake.run(RUN3, "--layer", "bronze"))
    assert lake.query(f"SELECT count(*) FROM {BRONZE}") == ["24"]  # the Parquet table alone
    gone = dw("query", "--lake", lake.lake, 'SELECT * FROM pp_dw_bronze."usgs_earthquakes$snapshots"',
              cwd=lake.project)  # fmt: skip
    assert gone.returncode == 1 and "is not an Iceberg table of the local lake" in gone.stderr, show(gone)
    assert not (lake.lake / "bronze" / "usgs_earthquakes" / "metadata").exists()
    (backup,) = (lake.lake / "backup" / "bronze").iterdir()
    assert backup.name == f"usgs_earthquakes-iceberg-{RUN2}"
    assert (backup / "metadata").is_dir() and list((backup / "data").rglob("*.parquet"))
