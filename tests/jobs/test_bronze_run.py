"""The bronze job end to end: a CSV in a zip over HTTP, to bronze, to the answer of a query.

Also the safety promises: a failing source, a blown reject budget or a broken config
leave the previous bronze byte-identical, and every run leaves a summary.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dw.query import run_query
from dwlib import bronze
from dwlib.config import DatasetConfig
from dwlib.fetch import RetryPolicy
from dwlib.lake import LocalLake
from dwlib.naming import Naming
from tests.loopback import status

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, timeout=5.0)
FIRST, SECOND, THIRD = "20260101T000000Z", "20260102T000000Z", "20260103T000000Z"


def shop_csv(rows: int = 500, bad: int = 0) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Order ID", "Customer Name", "Order Date", "Unit Price", "Quantity", "Is Gift"])
    for i in range(rows):
        date = "20240230" if i < bad else f"2024{1 + i % 12:02d}{1 + i % 28:02d}"
        writer.writerow(
            [i + 1, f"Customer, {i % 37}", date, f"{(i % 90) + 0.99:.2f}", i % 7, "true" if i % 5 else "false"]
        )
    return buffer.getvalue().encode()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def dataset(url: str, **extra) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {
            "dataset": "shop-orders",
            "description": "orders",
            "data_size_category": "small",
            "source_url": url,
            "format": "csv",
            "columns": {
                "order_id": "bigint",
                "order_date": "date:yyyyMMdd",
                "unit_price": "decimal(10,2)",
                "quantity": "int",
                "is_gift": "boolean",
            },
            "primary_key": ["order_id"],
            **extra,
        }
    )


def context(core, config, lake, run_id, **extra) -> bronze.JobContext:
    return bronze.JobContext(core=core, dataset=config, lake=lake, run_id=run_id, policy=FAST, **extra)


def bronze_bytes(lake: LocalLake) -> dict[str, bytes]:
    return {obj.key: lake.read_bytes(obj.key) for obj in lake.list("bronze/shop_orders/")}


def test_zip_over_http_lands_in_bronze_and_answers_like_pandas(spark, core, server, tmp_path):
    data = shop_csv()
    server.files["/exports/orders.zip"] = zipped("orders.csv", data)
    lake = LocalLake(tmp_path / "lake")
    summary = bronze.run_bronze(spark, context(core, dataset(server.url("/exports/orders.zip")), lake, FIRST))

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (500, 500, 0)
    # the original bytes, under raw/, byte for byte
    assert lake.read_bytes("raw/shop-orders/run_id=20260101T000000Z/orders.zip") == server.files["/exports/orders.zip"]
    # ZSTD Parquet with clean names, declared types and meta columns
    files = lake.data_files("bronze/shop_orders/")
    assert files and all(f.key.endswith(".parquet") for f in files)
    meta = pq.ParquetFile(lake.path(files[0].key)).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(lake.path("bronze/shop_orders/")).to_pandas()
    assert list(table.columns) == [
        "order_id", "customer_name", "order_date", "unit_price", "quantity", "is_gift",
        "meta_run_id", "meta_ingested_at", "meta_source_file",
    ]  # fmt: skip
    assert set(table["meta_run_id"]) == {FIRST}
    # a run summary, and the crawler command
    ledger = lake.read_json("runs/shop-orders/run_id=20260101T000000Z.json")
    assert ledger["status"] == "succeeded" and ledger["rows_in"] == 500 and ledger["bytes_fetched"] > 0
    assert ledger["crawler_command"] == "aws glue start-crawler --name pp-dw-bronze-shop-orders-crawler"
    assert "aws glue start-crawler --name pp-dw-bronze-shop-orders-crawler" in bronze.describe_outcome(summary)
    # `dw query` answers exactly as pandas does on the source
    source = pd.read_csv(io.BytesIO(data), dtype=str)
    source["revenue"] = source["Unit Price"].astype(float) * source["Quantity"].astype(int)
    expected = source.groupby("Customer Name")["revenue"].sum().round(2).sort_values(ascending=False).head(3)
    result = run_query(
        "SELECT customer_name, round(sum(unit_price * quantity), 2) AS revenue FROM pp_dw_bronze.shop_orders "
        "GROUP BY customer_name ORDER BY revenue DESC, customer_name LIMIT 3",
        lake.root,
        Naming.of(core),
    )
    assert [(name, float(value)) for name, value in result.rows] == list(expected.items())
    # no staging left behind
    assert not lake.has_prefix("staging/")


def test_a_source_that_always_fails_leaves_bronze_byte_identical(spark, core, server, tmp_path):
    server.files["/orders.csv"] = shop_csv(50)
    lake = LocalLake(tmp_path / "lake")
    assert (
        bronze.run_bronze(spark, context(core, dataset(server.url("/orders.csv")), lake, FIRST)).status == "succeeded"
    )
    before = bronze_bytes(lake)

    server.scripts["/orders.csv"] = [status(503)] * 10
    summary = bronze.run_bronze(spark, context(core, dataset(server.url("/orders.csv")), lake, SECOND))
    assert summary.status == "failed"
    assert "503" in summary.error and "bronze keeps its previous data" in summary.error
    assert bronze_bytes(lake) == before
    assert lake.read_json("runs/shop-orders/run_id=20260102T000000Z.json")["status"] == "failed"


def test_reject_budget_fails_the_run_quarantines_and_keeps_bronze(spark, core, server, tmp_path):
    server.files["/orders.csv"] = shop_csv(100)
    lake = LocalLake(tmp_path / "lake")
    assert (
        bronze.run_bronze(spark, context(core, dataset(server.url("/orders.csv")), lake, FIRST)).status == "succeeded"
    )
    before = bronze_bytes(lake)

    server.files["/orders.csv"] = shop_csv(100, bad=10)  # 10% impossible dates, above the 5% budget
    summary = bronze.run_bronze(spark, context(core, dataset(server.url("/orders.csv")), lake, SECOND))
    assert summary.status == "failed"
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (100, 90, 10)
    assert summary.rejected_by_reason == {"order_date: not a valid date:yyyyMMdd": 10}
    assert "max_rejected_fraction" in summary.error
    assert bronze_bytes(lake) == before
    quarantined = pq.read_table(lake.path("quarantine/shop-orders/run_id=20260102T000000Z/")).to_pandas()
    assert len(quarantined) == 10 and set(quarantined["order_date"]) == {"20240230"}
    assert set(quarantined["reject_reason"]) == {"order_date: not a valid date:yyyyMMdd"}

    # within the budget the run succeeds and publishes only the good rows
    loose = dataset(server.url("/orders.csv"), quality={"max_rejected_fraction": 0.2})
    summary = bronze.run_bronze(spark, context(core, loose, lake, THIRD))
    assert summary.status == "succeeded" and summary.rows_kept == 90
    assert len(pq.read_table(lake.path("bronze/shop_orders/"))) == 90


def test_a_config_naming_missing_columns_fails_before_touching_bronze(spark, core, server, tmp_path):
    server.files["/orders.csv"] = shop_csv(20)
    lake = LocalLake(tmp_path / "lake")
    bronze.run_bronze(spark, context(core, dataset(server.url("/orders.csv")), lake, FIRST))
    before = bronze_bytes(lake)
    broken = dataset(server.url("/orders.csv"), columns={"order_number": "int"}, primary_key=["order_number"])
    summary = bronze.run_bronze(spark, context(core, broken, lake, SECOND))
    assert summary.status == "failed"
    assert "order_number" in summary.error and "customer_name" in summary.error  # says what the source has
    assert bronze_bytes(lake) == before


def test_schema_change_is_reported_and_raw_runs_can_be_replayed(spark, core, server, tmp_path):
    server.files["/orders.csv"] = shop_csv(30)
    lake = LocalLake(tmp_path / "lake")
    first = bronze.run_bronze(spark, context(core, dataset(server.url("/orders.csv")), lake, FIRST))
    assert first.schema_changed is None
    # replay the kept raw run with one column retyped: no fetch, a schema change
    retyped = dataset(server.url("/gone.csv"), columns={**dataset("x").columns, "quantity": "bigint"})
    second = bronze.run_bronze(spark, context(core, retyped, lake, SECOND, raw_run_id=FIRST))
    assert second.status == "succeeded", second.error
    assert not server.seen("/gone.csv")
    assert second.schema_changed is True
    assert second.schema_change["retyped"] == {"quantity": "int -> bigint"}
    assert "schema changed" in bronze.describe_outcome(second)


def test_dry_run_plan_names_everything_and_writes_nothing(core, server, tmp_path):
    server.files["/orders.csv"] = shop_csv(5)
    lake = LocalLake(tmp_path / "lake")
    lines = "\n".join(bronze.plan(context(core, dataset(server.url("/orders.csv")), lake, FIRST)))
    assert "reachable" in lines and "NOT reachable" not in lines
    for name in ("pp-dw-bronze-shop-orders", "pp-dw-bronze-shop-orders-crawler", "pp_dw_bronze.shop_orders"):
        assert name in lines
    assert not (tmp_path / "lake").exists()


def test_glue_entry_point_runs_locally_with_glue_arguments(spark, core, server, tmp_path):
    """The deployed script, with the arguments the stack passes, against a local lake."""
    from dwlib.jobs import job_config_document

    server.files["/orders.csv"] = shop_csv(10)
    lake = LocalLake(tmp_path / "lake")
    lake.write_json("etl/shop-orders/job_config.json", job_config_document(core, dataset(server.url("/orders.csv"))))
    sys.path.insert(0, str(ROOT / "glue_jobs"))
    try:
        import bronze_job
    finally:
        sys.path.remove(str(ROOT / "glue_jobs"))
    argv = [
        "bronze_job.py",
        "--JOB_ID",
        "j_1",
        "--dataset",
        "shop-orders",
        "--lake_uri",
        str(lake.root),
        "--run_id",
        FIRST,
    ]
    assert bronze_job.main(argv) == 0
    assert len(pq.read_table(lake.path("bronze/shop_orders/"))) == 10
    ledger = json.loads((lake.root / "runs/shop-orders/run_id=20260101T000000Z.json").read_text())
    assert ledger["status"] == "succeeded"
