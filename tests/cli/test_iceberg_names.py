"""What `dw` names for an Iceberg dataset: no crawler anywhere (its stack creates none; the job keeps the
catalog table), whether the dataset says `"table_format": "iceberg"` or inherits it from the lake's config."""

from __future__ import annotations

import json
from pathlib import Path

from dwlib.config import load_project, resource_problems
from dwlib.naming import Naming
from tests.cli.test_cli import DATASETS, assert_ok, dw

PARQUET = "fda-nsde"  # keeps Parquet by its own config.json when the lake says iceberg


def lake_says_iceberg(project: Path) -> None:
    """The core config.json makes Iceberg the lake's format; PARQUET opts out in its own config."""
    core = json.loads((project / "config.json").read_text())
    core["table_format"] = "iceberg"
    (project / "config.json").write_text(json.dumps(core, indent=2))
    path = project / "datasets" / PARQUET / "config.json"
    own = json.loads(path.read_text())
    own["table_format"] = "parquet"
    path.write_text(json.dumps(own, indent=2))


def test_list_names_no_crawler_for_an_iceberg_dataset(project_copy, tmp_path):
    result = dw("list", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_ok(result)
    assert "pp-dw-bronze-usgs-earthquakes-crawler" not in result.stdout
    assert "no crawler: the job keeps the Iceberg catalog table" in result.stdout
    assert "pp-dw-bronze-fda-nsde-crawler" in result.stdout  # a Parquet dataset keeps its crawler


def test_list_and_dry_run_follow_the_lakes_table_format(project_copy, tmp_path):
    lake_says_iceberg(project_copy)
    assert_ok(dw("validate", cwd=project_copy))
    result = dw("list", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_ok(result)
    for name in DATASETS:
        crawler = f"pp-dw-bronze-{name}-crawler"
        assert (crawler in result.stdout) == (name == PARQUET), (name, result.stdout)
    assert result.stdout.count("no crawler: the job keeps the Iceberg catalog table") == len(DATASETS) - 1
    plan = dw("run", "ourairports", "--dry-run", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_ok(plan)
    assert "no crawler (the job commits the Iceberg table" in plan.stdout
    assert "crawler pp-dw-" not in plan.stdout
    kept = dw("run", PARQUET, "--dry-run", "--sample", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_ok(kept)
    assert f"crawler pp-dw-bronze-{PARQUET}-crawler" in kept.stdout


def test_validation_checks_only_the_names_a_stack_creates(project_copy):
    """The names validation measures and compares are the ones the stack synthesizes: no crawler for Iceberg."""
    lake_says_iceberg(project_copy)
    project = load_project(project_copy)
    assert resource_problems(project_copy, project.core, project.datasets) == []
    naming = Naming.of(project.core)
    iceberg = naming.dataset_resources("ourairports", models=["airports_by_continent"], iceberg=True)
    parquet = naming.dataset_resources("ourairports", models=["airports_by_continent"])
    assert [r.name for r in iceberg if r.kind == "glue_crawler"] == []
    assert [r.name for r in parquet if r.kind == "glue_crawler"] == [
        "pp-dw-bronze-ourairports-crawler",
        "pp-dw-gold-ourairports-crawler",
    ]
    assert {r.name for r in parquet} - {r.name for r in iceberg} == {
        "pp-dw-bronze-ourairports-crawler",
        "pp-dw-gold-ourairports-crawler",
    }


def test_dry_run_shows_that_a_switched_table_would_be_refused(project_copy, tmp_path):
    """The plan says the run would stop (the folder holds the other format's files), and writes nothing."""
    lake = tmp_path / "lake"
    folder = lake / "bronze" / "usgs_earthquakes"
    folder.mkdir(parents=True)
    (folder / "part-00000.zstd.parquet").write_bytes(b"a Parquet run's file")
    plan = dw("run", "usgs-earthquakes", "--dry-run", "--sample", "--lake", lake, cwd=project_copy)
    assert_ok(plan)
    assert f"REFUSED: the run would stop before fetching: {folder} holds 1 file(s) of the Parquet table" in plan.stdout
    assert f"mv {folder} {lake}/backup/bronze/usgs_earthquakes-parquet-" in plan.stdout
    assert sorted(p.name for p in lake.rglob("*")) == ["bronze", "part-00000.zstd.parquet", "usgs_earthquakes"]

    (folder / "part-00000.zstd.parquet").unlink()
    (folder / "metadata").mkdir()
    (folder / "metadata" / "00000-x.metadata.json").write_text("{}")
    config = project_copy / "datasets" / "usgs-earthquakes" / "config.json"
    own = json.loads(config.read_text())
    own.update(table_format="parquet", load_mode="full")
    own.pop("partition_by")
    config.write_text(json.dumps(own))
    plan = dw("run", "usgs-earthquakes", "--dry-run", "--sample", "--lake", lake, cwd=project_copy)
    assert_ok(plan)
    assert f"REFUSED: the run would stop before fetching: {folder} holds the Iceberg table" in plan.stdout
    clean = dw("run", "fda-nsde", "--dry-run", "--sample", "--lake", lake, cwd=project_copy)
    assert_ok(clean)
    assert "REFUSED" not in clean.stdout
