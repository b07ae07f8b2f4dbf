"""A dataset's transform.py, end to end: applied after typing and before the checks, its dropped rows
counted, and its failures named by file and line while bronze stays byte-identical."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dwlib import bronze
from dwlib.config import DatasetConfig
from dwlib.hook import HookError, check_hook_source, load_hook
from dwlib.lake import LocalLake

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
FIRST, SECOND, THIRD = "20260101T000000Z", "20260102T000000Z", "20260103T000000Z"

HOOK = '''"""Drop cancelled orders; key orders by region."""
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def transform(df: DataFrame) -> DataFrame:
    kept = df.filter(F.col("status") != "cancelled")
    return kept.withColumn("order_key", F.concat_ws("-", "region", F.col("order_id").cast("string")))
'''

BROKEN_HOOK = """from pyspark.sql import DataFrame


def transform(df: DataFrame) -> DataFrame:
    df = df.withColumn("double_amount", df.amount * 2)
    return df.select("no_such_column", "meta_run_id")
"""


def orders_csv() -> bytes:
    """20 orders: 3 cancelled (the hook drops them), one bad amount (typing rejects it), and order 7 of
    region eu twice (the primary key, on the hook's order_key, rejects the second)."""
    rows = []
    for i in range(1, 20):
        status = "cancelled" if i in (4, 9, 15) else ("shipped" if i % 2 else "open")
        rows.append([i, "eu" if i % 3 else "us", status, "abc" if i == 12 else f"{i * 10}.50"])
    rows.append([7, "eu", "open", "1.00"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Order ID", "Region", "Status", "Amount"])
    writer.writerows(rows)
    return buffer.getvalue().encode()


@pytest.fixture
def folder(tmp_path) -> Path:
    """A dataset folder with its data and its transform.py."""
    folder = tmp_path / "datasets" / "orders"
    folder.mkdir(parents=True)
    (folder / "orders.csv").write_bytes(orders_csv())
    (folder / "transform.py").write_text(HOOK)
    return folder


def config(**extra) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {
            "dataset": "orders",
            "description": "orders",
            "data_size_category": "small",
            "source_url": "orders.csv",
            "columns": {"order_id": "int", "amount": "decimal(10,2)"},
            "primary_key": ["order_key"],  # made by the hook
            "quality": {"accepted_values": {"status": ["open", "shipped"]}, "max_rejected_fraction": 0.2},
            **extra,
        }
    )


def run(spark, core, folder: Path, lake: LocalLake, run_id: str, cfg: DatasetConfig | None = None):
    ctx = bronze.JobContext(core=core, dataset=cfg or config(), lake=lake, run_id=run_id, dataset_dir=folder)
    return bronze.run_bronze(spark, ctx)


def bronze_bytes(lake: LocalLake) -> dict[str, bytes]:
    return {obj.key: lake.read_bytes(obj.key) for obj in lake.list("bronze/orders/")}


def test_the_hook_runs_between_typing_and_the_checks(spark, core, folder, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    summary = run(spark, core, folder, lake, FIRST)

    assert summary.status == "succeeded", summary.error
    assert summary.transform_hook == str(folder / "transform.py")
    # 20 source rows = 15 kept + 2 rejected (a bad amount before the hook, a repeated key after) + 3 dropped
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected, summary.rows_dropped_by_transform) == (
        20,
        15,
        2,
        3,
    )
    assert summary.rejected_by_reason == {"amount: not a valid decimal(10,2)": 1, "duplicate primary key": 1}
    assert "3 dropped by the transform hook" in bronze.describe_outcome(summary)
    ledger = lake.read_json(f"runs/orders/run_id={FIRST}.json")
    assert ledger["rows_dropped_by_transform"] == 3
    table = pq.read_table(lake.path("bronze/orders/"))
    assert table.column_names == [
        "order_id", "region", "status", "amount", "order_key", "meta_run_id", "meta_ingested_at", "meta_source_file",
    ]  # fmt: skip
    frame = table.to_pandas()
    assert "cancelled" not in set(frame["status"])  # the accepted_values rule saw the hook's output
    assert sorted(frame["order_key"])[:2] == ["eu-1", "eu-10"] and frame["order_key"].is_unique
    quarantined = pq.read_table(lake.path(f"quarantine/orders/run_id={FIRST}/")).to_pandas()
    by_reason = {r["reject_reason"]: r for r in quarantined.to_dict("records")}
    assert by_reason["amount: not a valid decimal(10,2)"]["amount"] == "abc"  # as it arrived
    assert by_reason["duplicate primary key"]["order_key"] == "eu-7"


def test_an_error_in_the_hook_names_file_and_line_and_keeps_bronze(spark, core, folder, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    assert run(spark, core, folder, lake, FIRST).status == "succeeded"
    before = bronze_bytes(lake)
    assert before

    (folder / "transform.py").write_text(BROKEN_HOOK)
    summary = run(spark, core, folder, lake, SECOND)

    assert summary.status == "failed"
    assert summary.error.startswith(f"orders: transform hook {folder / 'transform.py'} line 6 failed: ")
    assert "AnalysisException" in summary.error and "no_such_column" in summary.error
    assert "bronze keeps its previous data" in summary.error
    assert f'"{folder / "transform.py"}", line 6' in summary.traceback
    assert bronze_bytes(lake) == before
    assert lake.read_json(f"runs/orders/run_id={SECOND}.json")["status"] == "failed"
    assert lake.data_files(f"raw/orders/run_id={SECOND}/")  # raw is kept for a replay once fixed

    (folder / "transform.py").write_text("def transform(df):\n    return df.drop('meta_run_id', 'order_id')\n")
    summary = run(spark, core, folder, lake, THIRD)
    assert summary.status == "failed"
    assert "keep the meta columns meta_run_id" in summary.error
    assert "return the columns the primary key and quality rules name: order_key" in summary.error
    assert bronze_bytes(lake) == before


def test_load_errors_name_the_line(tmp_path):
    with pytest.raises(HookError, match=r"orders: transform hook x/transform.py line 2: invalid syntax"):
        load_hook("orders", "def transform(df):\n    return df +\n", "x/transform.py")
    with pytest.raises(HookError, match=r"transform hook x/transform.py line 3 failed while loading: ZeroDivision"):
        load_hook("orders", "import math\n\nRATE = 1 / 0\n", "x/transform.py")
    with pytest.raises(HookError, match=r"defines no function transform\(df\)"):
        load_hook("orders", "def transfrom(df):\n    return df\n", "x/transform.py")


def test_validate_checks_a_hook_without_running_it():
    assert check_hook_source(HOOK, "t.py") == []
    assert check_hook_source("def transform(:\n", "t.py") == [("line 1", "invalid syntax; fix the syntax")]
    assert check_hook_source("raise SystemExit\ndef other(df):\n    return df\n", "t.py")[0][1].startswith(
        "defines no top-level function transform(df)"
    )


def test_on_glue_the_hook_is_read_from_the_deployed_files(core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    ctx = bronze.JobContext(core=core, dataset=config(), lake=lake, run_id=FIRST)
    assert bronze.transform_hook(ctx) is None
    lake.write_bytes("etl/orders/transform.py", HOOK.encode())
    hook = bronze.transform_hook(ctx)
    assert hook is not None and hook.file == lake.uri("etl/orders/transform.py")


def test_dw_validate_lists_a_broken_hook(project_copy):
    from dw.project import validate

    (project_copy / "datasets" / "epa-daily-aqi" / "transform.py").write_text("def transform(df)\n    return df\n")
    _, problems = validate(project_copy)
    assert [str(p) for p in problems] == ["datasets/epa-daily-aqi/transform.py: line 1: expected ':'; fix the syntax"]
