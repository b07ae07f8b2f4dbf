"""The naming table of DESIGN section 5, pinned."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dwlib.naming import Naming, check_run_id, new_run_id, table_name

N = Naming("pp-dw", "pp_dw")


def test_resource_names():
    assert N.bucket("123456789012") == "pp-dw-123456789012"
    assert N.database("bronze") == "pp_dw_bronze"
    assert N.database("gold") == "pp_dw_gold"
    assert N.job("bronze", "fda-nsde") == "pp-dw-bronze-fda-nsde"
    assert N.job("gold", "fda-nsde") == "pp-dw-gold-fda-nsde"
    assert N.crawler("bronze", "fda-nsde") == "pp-dw-bronze-fda-nsde-crawler"
    assert N.state_machine("fda-nsde") == "pp-dw-pipeline-fda-nsde"
    assert table_name("fda-nsde") == "fda_nsde"


def test_lake_paths():
    assert N.raw_prefix("fda-nsde", "20261121T060000Z") == "raw/fda-nsde/run_id=20261121T060000Z/"
    assert N.bronze_prefix("fda-nsde") == "bronze/fda_nsde/"
    assert N.gold_prefix("fda-nsde", "by_category") == "gold/fda_nsde/by_category/"
    assert N.quarantine_prefix("fda-nsde", "20261121T060000Z") == "quarantine/fda-nsde/run_id=20261121T060000Z/"
    assert N.runs_prefix("fda-nsde") == "runs/fda-nsde/"
    assert N.run_summary_key("fda-nsde", "20261121T060000Z") == "runs/fda-nsde/run_id=20261121T060000Z.json"
    assert N.script_key("fda-nsde", "bronze") == "etl/fda-nsde/glue/bronze_job.py"
    assert N.script_key("fda-nsde", "gold") == "etl/fda-nsde/glue/gold_job.py"
    assert N.export_key("users", "20261121T060000Z") == "raw/users/run_id=20261121T060000Z/users.csv"


def test_staging_is_outside_every_crawled_folder():
    staging = N.staging_prefix("bronze", "fda-nsde", "20261121T060000Z")
    assert not staging.startswith(("bronze/", "gold/"))


def test_run_ids():
    assert new_run_id(datetime(2026, 11, 21, 6, 0, 0, tzinfo=UTC)) == "20261121T060000Z"
    assert check_run_id(new_run_id()) == new_run_id() or True
    with pytest.raises(ValueError, match="YYYYMMDDTHHMMSSZ"):
        check_run_id("2026-11-21")


def test_unknown_layer_is_refused():
    with pytest.raises(ValueError, match="layer 'silver'"):
        N.job("silver", "x")


# ------------------------------------------------------------------ stages


class Core:
    etl_resource_prefix, database_prefix = "pp-dw", "pp_dw"


def test_without_a_stage_the_names_are_the_default_ones():
    assert Naming.of(Core()) == Naming.of(Core(), "") == Naming.of(Core(), None) == N


def test_a_stage_is_folded_into_both_prefixes():
    dev = Naming.of(Core(), "dev")
    assert dev.stage == "dev"
    assert dev.bucket("123456789012") == "pp-dw-dev-123456789012"
    assert dev.access_log_bucket("123456789012") == "pp-dw-dev-access-logs-123456789012"
    assert dev.database("bronze") == "pp_dw_dev_bronze"
    assert dev.job("bronze", "fda-nsde") == "pp-dw-dev-bronze-fda-nsde"
    assert dev.core_stack == "pp-dw-dev-core"
    assert dev.key_alias == "alias/pp-dw-dev"
    # Lake paths live in the stage's own bucket: they do not change.
    assert dev.raw_prefix("fda-nsde", "20261121T060000Z") == N.raw_prefix("fda-nsde", "20261121T060000Z")


@pytest.mark.parametrize("stage", ["Dev", "dev-1", "dev_1", "1dev", "d" * 9, " dev", "dév"])
def test_a_stage_name_that_is_not_one_is_refused_with_the_rule(stage):
    with pytest.raises(ValueError, match=r"use 1 to 8 lowercase letters and digits, starting with a letter"):
        Naming.of(Core(), stage)


def test_dw_prints_the_names_of_the_stage_it_is_given(monkeypatch):
    from typer.testing import CliRunner

    from dw.cli import app

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    runner = CliRunner()
    plain = runner.invoke(app, ["list"], env={"COLUMNS": "300"})
    staged = runner.invoke(app, ["--stage", "dev", "list"], env={"COLUMNS": "300"})
    by_env = runner.invoke(app, ["list"], env={"DW_STAGE": "dev", "COLUMNS": "300"})
    assert plain.exit_code == staged.exit_code == by_env.exit_code == 0, staged.output
    assert "pp-dw-pipeline-fda-nsde" in plain.output and "pp-dw-dev-" not in plain.output
    assert "pp-dw-dev-pipeline-fda-nsde" in staged.output and "pp-dw-dev-bronze-fda-nsde" in staged.output
    assert by_env.output == staged.output
    bad = runner.invoke(app, ["--stage", "Prod", "list"])
    assert bad.exit_code != 0


def test_an_impossible_run_id_is_refused_saying_why():
    for impossible in ("20261399T999999Z", "20260230T000000Z", "20261121T240000Z", "20261121T006000Z"):
        with pytest.raises(ValueError, match=f"run id '{impossible}' is not a moment in time"):
            check_run_id(impossible)
    assert check_run_id("20240229T235959Z") == "20240229T235959Z"  # a leap day
