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


# ------------------------------------------------------------------ what a hook may not change, and its failures


def hooked(tmp_path: Path, csv_text: str, hook: str, **extra) -> tuple[Path, LocalLake, DatasetConfig]:
    """A dataset folder `ds` with `data.csv` and the hook, its lake, and its config (any `extra` keys)."""
    folder = tmp_path / "datasets" / "ds"
    folder.mkdir(parents=True)
    (folder / "data.csv").write_text(csv_text)
    (folder / "transform.py").write_text(hook)
    document = {"dataset": "ds", "description": "d", "data_size_category": "small", "source_url": "data.csv"}
    return folder, LocalLake(tmp_path / "lake"), DatasetConfig.model_validate({**document, **extra})


def test_the_job_s_run_id_and_time_stand_whatever_the_hook_made_of_them(spark, core, tmp_path):
    hook = (
        "from pyspark.sql import functions as F\n\n\ndef transform(df):\n"
        "    return df.withColumn('meta_run_id', F.lit('bogus')).withColumn('meta_ingested_at', "
        "F.col('meta_ingested_at').cast('string'))\n"
    )
    folder, lake, cfg = hooked(tmp_path, "id,v\n1,a\n2,b\n", hook)
    summary = run(spark, core, folder, lake, FIRST, cfg)
    assert summary.status == "succeeded", summary.error
    table = pq.read_table(lake.path("bronze/ds/"))
    assert set(table.column("meta_run_id").to_pylist()) == {FIRST}
    assert str(table.schema.field("meta_ingested_at").type).startswith("timestamp")


def test_a_hook_that_makes_rows_reports_them_made_and_the_rejected_share_of_its_rows(spark, core, tmp_path):
    """An explode: 1 row in, 60 out, 2 repeated keys. The share the quality budget and the ledger's
    rejected_fraction read is 2 of 60, not 2 of 1; the hook made 59 rows, it dropped none."""
    from dwlib import metrics

    tags = "|".join(str(i) for i in [*range(58), 0, 1])
    hook = (
        "from pyspark.sql import functions as F\n\n\ndef transform(df):\n"
        "    return df.withColumn('tag', F.explode(F.split('tags', '[|]'))).drop('tags')\n"
    )
    folder, lake, cfg = hooked(tmp_path, f"id,tags\n1,{tags}\n", hook, primary_key=["id", "tag"])
    summary = run(spark, core, folder, lake, FIRST, cfg)
    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (1, 58, 2)
    assert (summary.rows_dropped_by_transform, summary.rows_added_by_transform) == (0, 59)
    assert metrics.rejected_fraction(summary) == round(2 / 60, 6)
    assert "59 more made by the transform hook" in bronze.describe_outcome(summary)


def test_a_hook_that_chooses_at_random_still_files_each_row_once(spark, core, tmp_path):
    """The kept rows and the quarantine are two writes of the hook's result: a Python UDF choosing at random gave
    each its own rows, some ids in both, some in neither."""
    hook = (
        "import random\n\nfrom pyspark.sql import functions as F\n\n"
        "pick = F.udf(lambda v: random.choice(['a', 'a', 'a', 'b']), 'string')\n\n\n"
        "def transform(df):\n    return df.withColumn('bucket', pick('v'))\n"
    )
    rows = "".join(f"{i},v{i}\n" for i in range(200))
    extra = {"quality": {"accepted_values": {"bucket": ["a"]}, "max_rejected_fraction": 0.9}}
    folder, lake, cfg = hooked(tmp_path, "id,v\n" + rows, hook, columns={"id": "int"}, **extra)
    summary = run(spark, core, folder, lake, FIRST, cfg)
    assert summary.status == "succeeded", summary.error
    kept = pq.read_table(lake.path("bronze/ds/")).column("id").to_pylist()
    rejected = [int(i) for i in pq.read_table(lake.path(f"quarantine/ds/run_id={FIRST}/")).column("id").to_pylist()]
    assert sorted(kept + rejected) == list(range(200))
    assert (
        summary.rejected_by_reason
        == {"bucket: not an accepted value": len(rejected)}
        == {"bucket: not an accepted value": summary.rows_rejected}
    )


def test_a_hook_error_raised_as_spark_runs_it_names_the_hook_s_file_and_line(spark, core, tmp_path):
    hook = (
        "from pyspark.sql import functions as F\n\n\n"
        "def check(v):\n    if v == 'boom':\n        raise ValueError('bad value boom')\n    return v\n\n\n"
        "def transform(df):\n    return df.withColumn('w', F.udf(check, 'string')('v'))\n"
    )
    folder, lake, cfg = hooked(tmp_path, "id,v\n1,a\n2,boom\n", hook)
    summary = run(spark, core, folder, lake, FIRST, cfg)
    assert summary.status == "failed"
    assert f"transform hook {folder / 'transform.py'} line 6 failed as Spark ran it: ValueError: bad value boom" in (
        summary.error
    ), summary.error


def test_a_hook_column_named_like_the_job_s_own_in_another_case_is_refused_with_advice(spark, core, tmp_path):
    hook = "from pyspark.sql import functions as F\n\n\ndef transform(df):\n    return df.withColumn('Reject_Reason', F.lit('x'))\n"
    folder, lake, cfg = hooked(tmp_path, "id,v\n1,a\n", hook)
    summary = run(spark, core, folder, lake, FIRST, cfg)
    assert summary.status == "failed"
    assert "rename Reject_Reason: reject_reason and _dw_* are the job's own columns" in summary.error, summary.error


def test_a_hook_that_leaves_only_rejected_rows_says_how_many_it_dropped(spark, core, tmp_path):
    """3 rows in, the hook keeps 1, which a rule rejects: 'every one of the 1 rows' needs the 2 the hook dropped."""
    hook = "def transform(df):\n    return df.filter(df.id == 1)\n"
    folder, lake, cfg = hooked(
        tmp_path, "id,v\n1,x\n2,a\n3,a\n", hook, quality={"accepted_values": {"v": ["a"]}, "max_rejected_fraction": 1.0}
    )
    summary = run(spark, core, folder, lake, FIRST, cfg)
    assert summary.status == "failed"
    assert summary.error.startswith(
        "every one of the 1 rows the checks saw was rejected (of 3 rows in, the transform hook dropped 2)"
    ), summary.error
