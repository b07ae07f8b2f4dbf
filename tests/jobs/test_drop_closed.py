"""A drop (landing, dynamodb_table) is read only once its dropper closed it with a non-empty `_SUCCESS`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dwlib import bronze, ledger
from dwlib.config import DatasetConfig
from dwlib.lake import LocalLake
from dwlib.naming import Naming

DATASET = "shop-orders"
BRONZE = "bronze/shop_orders/"
FIRST, SECOND = "20260101T000000Z", "20260102T000000Z"
DROP = f"raw/{DATASET}/run_id={FIRST}/"


def ctx_for(core, lake, run_id: str, **extra) -> bronze.JobContext:
    config = DatasetConfig.model_validate(
        {"dataset": DATASET, "description": "orders", "data_size_category": "small", "landing": True}
    )
    return bronze.JobContext(core=core, dataset=config, lake=lake, run_id=run_id, **extra)


@pytest.fixture
def lake(tmp_path) -> LocalLake:
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes(BRONZE + "part-0-old.parquet", b"old")
    lake.write_bytes(DROP + "a.csv", b"order_id\n1\n")  # the first file of a drop still arriving
    return lake


def test_a_drop_without_its_success_is_neither_advised_nor_replayed(core, lake):
    naming = Naming.of(core)
    [found] = ledger.incomplete_runs(lake, naming, DATASET, 120, dropped=True)
    assert f"--raw-run-id {FIRST}" not in found.advice.split("then:")[0]
    assert f"the drop {DROP} is not closed" in found.advice
    with pytest.raises(ledger.IncompleteRawRun, match="it has no _SUCCESS"):
        ledger.raw_run_files(lake, naming, DATASET, FIRST, dropped=True)

    replay = bronze.run_bronze(None, ctx_for(core, lake, SECOND, raw_run_id=FIRST))
    assert replay.status == "failed"
    assert f"the drop {DROP} is not closed: it has no _SUCCESS" in replay.error
    assert "write its _SUCCESS last" in replay.error and "wait for the export" in replay.error
    assert [o.key for o in lake.list(BRONZE)] == [BRONZE + "part-0-old.parquet"]  # bronze untouched


def test_a_first_run_of_a_drop_without_its_success_refuses(core, lake):
    """A start by hand ({"run_id": R}, `dw run ds --run-id R`) while the drop is still arriving."""
    summary = bronze.run_raw(ctx_for(core, lake, FIRST))
    assert summary.status == "failed"
    assert f"the drop {DROP} is not closed: it has no _SUCCESS" in summary.error
    lake.write_bytes(DROP + "_SUCCESS", b"")  # an empty marker is no marker
    assert "its _SUCCESS is empty" in bronze.run_raw(ctx_for(core, lake, FIRST)).error
    lake.write_bytes(DROP + "_SUCCESS", b"done")
    closed = bronze.run_raw(ctx_for(core, lake, FIRST))
    assert closed.status == "succeeded" and closed.raw_keys == [DROP + "a.csv"]


def test_an_export_marker_that_names_other_files_or_bytes_is_not_closed(core, lake):
    naming = Naming.of(core)
    lake.write_bytes(DROP + "_SUCCESS", json.dumps({"files": ["a.csv", "b.csv"], "bytes": 11}).encode())
    with pytest.raises(ledger.IncompleteRawRun, match=f"{DROP}b.csv missing"):
        ledger.raw_run_files(lake, naming, DATASET, FIRST, dropped=True)
    lake.write_bytes(DROP + "_SUCCESS", json.dumps({"files": ["a.csv"], "bytes": 999}).encode())
    with pytest.raises(ledger.IncompleteRawRun, match="which says 999"):
        ledger.raw_run_files(lake, naming, DATASET, FIRST, dropped=True)
    lake.write_bytes(DROP + "_SUCCESS", json.dumps({"files": ["a.csv"], "bytes": 11}).encode())
    assert ledger.raw_run_files(lake, naming, DATASET, FIRST, dropped=True) == ([DROP + "a.csv"], "")


def test_a_sample_run_of_a_landing_dataset_needs_no_marker(core, tmp_path: Path):
    lake = LocalLake(tmp_path / "lake")
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "orders.csv").write_text("order_id\n1\n")
    assert bronze.run_raw(ctx_for(core, lake, FIRST, sample_dir=sample)).status == "succeeded"


def test_a_dry_run_says_a_drop_without_its_success_would_be_refused(core, lake):
    for ctx in (ctx_for(core, lake, SECOND, raw_run_id=FIRST), ctx_for(core, lake, FIRST)):
        plan = "\n".join(bronze.plan(ctx))
        assert f"REFUSED: the run would stop before reading its input: the drop {DROP} is not closed" in plan
    lake.write_bytes(DROP + "_SUCCESS", b"done")
    assert "REFUSED" not in "\n".join(bronze.plan(ctx_for(core, lake, SECOND, raw_run_id=FIRST)))
