"""Iceberg bronze tables, through the real commit path (Spark writes, PyIceberg commits to a SQLite
catalog under the lake) and read back with `dw query` the way Athena reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dw.query import QueryError, run_query
from dwlib import bronze, iceberg
from dwlib.config import DatasetConfig
from dwlib.lake import LocalLake
from dwlib.naming import Naming

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("iceberg")]
ROOT = Path(__file__).resolve().parents[2]
RUN1, RUN2, RUN3, RUN4 = "20260101T000000Z", "20260102T000000Z", "20260103T000000Z", "20260104T000000Z"
TABLE = "pp_dw_bronze.shop_orders"


def config(**extra) -> DatasetConfig:
    document = {
        "dataset": "shop-orders",
        "description": "orders",
        "data_size_category": "small",
        "landing": True,
        "format": "csv",
        "columns": {"order_id": "bigint", "amount": "int", "created_at": "timestamp"},
        "primary_key": ["order_id"],
        "table_format": "iceberg",
    }
    document.update(extra)
    return DatasetConfig.model_validate(document)


class Shop:
    """One dataset's local lake, and runs of it from a CSV text."""

    def __init__(self, spark, core, tmp_path: Path, dataset: DatasetConfig):
        self.spark, self.core, self.dataset = spark, core, dataset
        self.lake = LocalLake(tmp_path / "lake")
        self.sample = tmp_path / "sample"
        self.sample.mkdir()

    def run(self, run_id: str, csv: str | None = None, raw_run_id: str | None = None, dataset=None):
        if csv is not None:
            (self.sample / "orders.csv").write_text(csv)
        ctx = bronze.JobContext(
            core=self.core,
            dataset=dataset or self.dataset,
            lake=self.lake,
            run_id=run_id,
            raw_run_id=raw_run_id,
            sample_dir=None if raw_run_id else self.sample,
        )
        return bronze.run_bronze(self.spark, ctx)

    def query(self, sql: str):
        return run_query(sql, self.lake.root, Naming.of(self.core)).rows

    def snapshots(self) -> list[tuple]:
        return self.query(
            'SELECT snapshot_id, operation FROM pp_dw_bronze."shop_orders$snapshots" ORDER BY committed_at'
        )

    def data_files(self) -> list[str]:
        return sorted(o.key for o in self.lake.data_files("bronze/shop_orders/data/"))


def csv(*rows: str, header: str = "order_id,customer,amount,created_at") -> str:
    return "\n".join([header, *rows]) + "\n"


FIRST = csv("1,ann,10,2026-01-01 10:00:00", "2,bob,20,2026-01-02 11:00:00", "3,cid,30,2026-01-02 12:00:00")
SECOND = csv("3,cid,33,2026-01-02 12:00:00", "4,dan,40,2026-01-03 12:00:00")


def test_full_load_replaces_in_one_snapshot_and_time_travel_reads_the_previous_one(spark, core, tmp_path):
    shop = Shop(spark, core.model_copy(update={"table_format": "iceberg"}), tmp_path, config(table_format=None))
    first = shop.run(RUN1, FIRST)
    assert first.status == "succeeded", first.error
    assert first.crawler_command == ""
    assert "no crawler is needed" in bronze.describe_outcome(first)
    assert first.iceberg["table"] == TABLE and first.iceberg["files_added"] >= 1
    before = datetime.now(UTC)
    second = shop.run(RUN2, SECOND)
    assert second.status == "succeeded", second.error

    assert shop.query(f"SELECT order_id, amount FROM {TABLE} ORDER BY 1") == [(3, 33), (4, 40)]
    (snap1, op1), (snap2, op2) = shop.snapshots()
    assert (op1, op2) == ("append", "overwrite")
    assert second.iceberg["snapshot_id"] == snap2 and second.iceberg["files_removed"] == first.iceberg["files_added"]
    assert shop.query(f"SELECT order_id FROM {TABLE} FOR VERSION AS OF {snap1} ORDER BY 1") == [(1,), (2,), (3,)]
    stamp = before.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    assert shop.query(f"SELECT count(*) FROM {TABLE} FOR TIMESTAMP AS OF TIMESTAMP '{stamp} UTC'") == [(3,)]
    # Athena's column names for the metadata tables
    columns = run_query('SELECT * FROM pp_dw_bronze."shop_orders$snapshots"', shop.lake.root, Naming.of(core)).columns
    assert columns == ["committed_at", "snapshot_id", "parent_id", "operation", "manifest_list", "summary"]
    history = run_query('SELECT * FROM pp_dw_bronze."shop_orders$history"', shop.lake.root, Naming.of(core))
    assert history.columns == ["made_current_at", "snapshot_id", "parent_id", "is_current_ancestor"]
    assert [r[1:] for r in history.rows] == [(snap1, None, True), (snap2, snap1, True)]
    files = run_query('SELECT * FROM pp_dw_bronze."shop_orders$files"', shop.lake.root, Naming.of(core))
    assert {"content", "file_path", "file_format", "record_count", "file_size_in_bytes"} <= set(files.columns)
    assert sum(r[files.columns.index("record_count")] for r in files.rows) == 2
    # the folder is not read as plain Parquet: old and new files together would be 5 rows
    assert shop.query(f"SELECT count(*) FROM {TABLE}") == [(2,)]
    with pytest.raises(QueryError, match="has no snapshot 42"):
        shop.query(f"SELECT * FROM {TABLE} FOR VERSION AS OF 42")
    with pytest.raises(QueryError, match="no snapshot at or before 2000-01-01"):
        shop.query(f"SELECT * FROM {TABLE} FOR TIMESTAMP AS OF TIMESTAMP '2000-01-01 00:00:00'")


def test_a_failed_run_adds_no_snapshot_and_leaves_no_data_files(spark, core, tmp_path):
    shop = Shop(spark, core, tmp_path, config())
    assert shop.run(RUN1, FIRST).status == "succeeded"
    snapshots, files = shop.snapshots(), shop.data_files()
    # the quality budget: half the rows have a bad amount
    failed = shop.run(RUN2, csv("7,x,abc,2026-01-01 00:00:00", "8,y,80,2026-01-01 00:00:00"))
    assert failed.status == "failed" and "max_rejected_fraction" in failed.error
    assert shop.snapshots() == snapshots and shop.data_files() == files
    assert shop.query(f"SELECT order_id FROM {TABLE} ORDER BY 1") == [(1,), (2,), (3,)]


def test_a_commit_the_catalog_refuses_adds_no_snapshot_and_deletes_the_runs_files(spark, core, tmp_path, monkeypatch):
    from pyiceberg.table import Transaction

    shop = Shop(spark, core, tmp_path, config())
    assert shop.run(RUN1, FIRST).status == "succeeded"
    snapshots, files = shop.snapshots(), shop.data_files()

    def refuse(self):
        raise RuntimeError("the catalog is unreachable")

    monkeypatch.setattr(Transaction, "commit_transaction", refuse)
    failed = shop.run(RUN2, SECOND)
    monkeypatch.undo()
    assert failed.status == "failed" and "the catalog is unreachable" in failed.error
    assert shop.snapshots() == snapshots and shop.data_files() == files
    assert shop.query(f"SELECT count(*) FROM {TABLE}") == [(3,)]


def test_append_adds_each_runs_rows_and_a_replayed_raw_run_replaces_its_own(spark, core, tmp_path):
    shop = Shop(spark, core, tmp_path, config(load_mode="append"))
    assert shop.run(RUN1, FIRST).status == "succeeded"
    assert shop.run(RUN2, SECOND).status == "succeeded"
    assert shop.query(f"SELECT count(*), count(DISTINCT meta_run_id) FROM {TABLE}") == [(5, 2)]
    replay = shop.run(RUN3, raw_run_id=RUN1)  # the first run's raw files again
    assert replay.status == "succeeded", replay.error
    assert replay.iceberg["files_removed"] >= 1
    rows = shop.query(f"SELECT order_id, meta_run_id FROM {TABLE} ORDER BY order_id, meta_run_id")
    assert rows == [(1, RUN3), (2, RUN3), (3, RUN2), (3, RUN3), (4, RUN2)]
    summary = shop.query('SELECT summary FROM pp_dw_bronze."shop_orders$snapshots" ORDER BY committed_at DESC LIMIT 1')
    assert summary[0][0]["pp-dw.raw-run-id"] == RUN1


def test_merge_leaves_one_row_per_key_the_latest_runs(spark, core, tmp_path):
    shop = Shop(spark, core, tmp_path, config(load_mode="merge"))
    assert shop.run(RUN1, FIRST).status == "succeeded"
    assert shop.run(RUN2, SECOND).status == "succeeded"
    rows = shop.query(f"SELECT order_id, amount, meta_run_id FROM {TABLE} ORDER BY 1")
    assert rows == [(1, 10, RUN1), (2, 20, RUN1), (3, 33, RUN2), (4, 40, RUN2)]
    # duplicates inside a run are still quarantined by the primary key check; the table keeps one row per key
    third = shop.run(RUN3, csv("1,ann,11,2026-01-01 10:00:00", "5,eve,50,2026-01-05 10:00:00"))
    assert third.status == "succeeded", third.error
    assert shop.query(f"SELECT count(*), count(DISTINCT order_id) FROM {TABLE}") == [(5, 5)]
    assert shop.query(f"SELECT amount FROM {TABLE} WHERE order_id = 1") == [(11,)]


def test_schema_evolves_by_adding_and_widening_and_refuses_narrowing(spark, core, tmp_path):
    shop = Shop(spark, core, tmp_path, config(load_mode="append"))
    assert shop.run(RUN1, FIRST).status == "succeeded"
    widened = config(load_mode="append", columns={"order_id": "bigint", "amount": "bigint", "created_at": "timestamp"})
    second = shop.run(RUN2, csv("9,ivy,90,2026-01-09 00:00:00,gift", header="order_id,customer,amount,created_at,note"),
                      dataset=widened)  # fmt: skip
    assert second.status == "succeeded", second.error
    assert second.iceberg["schema_change"] == {"added": ["note"], "retyped": {"amount": "int -> long"}}
    result = run_query(f"SELECT order_id, amount, note FROM {TABLE} ORDER BY 1", shop.lake.root, Naming.of(core))
    assert result.types[1] == "bigint"
    assert result.rows == [(1, 10, None), (2, 20, None), (3, 30, None), (9, 90, "gift")]
    snapshots, files = shop.snapshots(), shop.data_files()
    # amount back to int: a narrowing, refused naming the column; the table is unchanged
    narrowed = shop.run(RUN3, csv("10,jo,1,2026-01-10 00:00:00"), dataset=config(load_mode="append"))
    assert narrowed.status == "failed"
    assert "the column amount of the Iceberg table pp_dw_bronze.shop_orders is long and the new data has it as int" in (
        narrowed.error
    )
    assert "table is unchanged" in narrowed.error
    # the advice names the type as `columns` spells it, not as Iceberg does
    assert "declare the column as bigint again in `columns`" in narrowed.error
    assert shop.snapshots() == snapshots and shop.data_files() == files


def test_partition_by_day_writes_one_partition_per_file(spark, core, tmp_path):
    shop = Shop(spark, core, tmp_path, config(partition_by=["day(created_at)"]))
    assert shop.run(RUN1, FIRST).status == "succeeded"
    files = run_query('SELECT partition, record_count FROM pp_dw_bronze."shop_orders$files"', shop.lake.root,
                      Naming.of(core)).rows  # fmt: skip
    assert sorted((str(p["created_at_day"]), n) for p, n in files) == [("2026-01-01", 1), ("2026-01-02", 2)]
    assert shop.query(f"SELECT count(*) FROM {TABLE} WHERE created_at >= TIMESTAMP '2026-01-02 00:00:00'") == [(2,)]
    changed = shop.run(RUN2, SECOND, dataset=config(partition_by=["month(created_at)"]))
    assert changed.status == "failed" and "partition_by" in changed.error and "table is unchanged" in changed.error


def test_old_snapshots_expire_and_files_no_snapshot_uses_are_deleted(spark, core, tmp_path):
    shop = Shop(spark, core, tmp_path, config())
    assert shop.run(RUN1, FIRST).status == "succeeded"
    first_files = shop.data_files()
    assert shop.run(RUN2, SECOND).status == "succeeded"
    assert set(first_files) <= set(shop.data_files())  # kept for time travel within the retention
    table = iceberg.catalog(shop.lake, Naming.of(core)).load_table(("pp_dw_bronze", "shop_orders"))
    expired, removed = iceberg.expire(
        table, shop.lake, "bronze/shop_orders/", 7, now=datetime.now(UTC) + timedelta(days=8)
    )
    assert (expired, removed) == (1, len(first_files))
    assert not set(first_files) & set(shop.data_files())
    assert len(shop.snapshots()) == 1 and shop.query(f"SELECT count(*) FROM {TABLE}") == [(2,)]


def test_time_travel_reaches_back_the_whole_retention_the_snapshot_current_at_the_cutoff_stays(spark, core, tmp_path):
    """Three full loads A, B, C. An expiry whose cutoff falls between A and B keeps A: a moment between the
    cutoff and B (inside the retention) reads A, with its files. Once B is older than the cutoff too, A goes."""
    shop = Shop(spark, core, tmp_path, config())
    for run_id, text in ((RUN1, FIRST), (RUN2, SECOND), (RUN3, csv("5,eve,50,2026-01-05 10:00:00"))):
        assert shop.run(run_id, text).status == "succeeded"
    table = iceberg.local_catalog(shop.lake.root).load_table(("pp_dw_bronze", "shop_orders"))
    a, b, c = sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms)
    files_of_a = [f.removeprefix("file://") for f in iceberg.current_files(table, a.snapshot_id)]

    def at(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    def count_as_of(ms: int):
        stamp = at(ms).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return shop.query(f"SELECT count(*) FROM {TABLE} FOR TIMESTAMP AS OF TIMESTAMP '{stamp} UTC'")

    between = (a.timestamp_ms + b.timestamp_ms) // 2
    assert count_as_of(between) == [(3,)]
    # the cutoff (now - 7 days) one millisecond before `between`: `between` is inside the retention
    now = at(between) + timedelta(days=7) - timedelta(milliseconds=1)
    assert iceberg.expire(table.refresh(), shop.lake, "bronze/shop_orders/", 7, now=now) == (0, 0)
    assert count_as_of(between) == [(3,)]
    assert shop.query(f"SELECT count(*) FROM {TABLE} FOR VERSION AS OF {a.snapshot_id}") == [(3,)]
    assert all(Path(f).is_file() for f in files_of_a)
    # the cutoff past B: a moment after it reads B or C, no moment of the retention reads A
    later = (b.timestamp_ms + c.timestamp_ms) // 2
    now = at(later) + timedelta(days=7)
    assert iceberg.expire(table.refresh(), shop.lake, "bronze/shop_orders/", 7, now=now) == (1, len(files_of_a))
    assert not any(Path(f).exists() for f in files_of_a)
    assert count_as_of(later) == [(2,)]
    assert [s[0] for s in shop.snapshots()] == [b.snapshot_id, c.snapshot_id]


def test_a_file_without_rows_is_never_committed_and_a_full_load_removes_every_file(spark, core, tmp_path):
    """Spark may write an empty Parquet file beside the ones with rows: the table must not keep it.

    A scan's plan leaves out files its statistics say are empty, so a commit that looked for the files
    to remove through a scan would keep such a file in every later snapshot, and expiry never free it.
    """
    shop = Shop(spark, core, tmp_path, config())

    def files():
        sql = 'SELECT file_path, record_count FROM pp_dw_bronze."shop_orders$files"'
        return run_query(sql, shop.lake.root, Naming.of(core)).rows

    first = shop.run(RUN1, FIRST)
    assert first.status == "succeeded", first.error
    assert files() and all(count > 0 for _, count in files()), files()
    assert first.iceberg["files_added"] == len(files()) == len(shop.data_files())
    second = shop.run(RUN2, SECOND)
    assert second.status == "succeeded", second.error
    assert second.iceberg["files_removed"] == first.iceberg["files_added"]
    assert sum(count for _, count in files()) == 2 and all(count > 0 for _, count in files())


def test_a_gold_model_reads_the_current_snapshot_not_every_file_of_the_folder(spark, core, tmp_path):
    from dwlib import gold

    shop = Shop(spark, core, tmp_path, config())
    assert shop.run(RUN1, FIRST).status == "succeeded"
    assert shop.run(RUN2, SECOND).status == "succeeded"  # the first run's files stay, for time travel
    ctx = bronze.JobContext(core=core, dataset=shop.dataset, lake=shop.lake, run_id=RUN3)
    sql = "SELECT count(*) AS orders, sum(amount) AS amount FROM pp_dw_bronze.shop_orders"
    summary = gold.run_gold(spark, ctx, {"order_totals": sql})
    assert summary.status == "succeeded", summary.models
    assert shop.query("SELECT orders, amount FROM pp_dw_gold.order_totals") == [(2, 73)]


def test_a_gold_model_reads_bronze_at_the_tables_schema_after_columns_are_added_and_widened(spark, core, tmp_path):
    """Files written before a schema change keep their old columns and types: a model reads them at the
    table's current schema (a column a file lacks NULL, widened ones at their new type), as `dw query` does."""
    from dwlib import gold

    before = {"order_id": "bigint", "amount": "int", "price": "decimal(9,2)", "created_at": "timestamp"}
    after = {**before, "amount": "bigint", "price": "decimal(12,2)"}
    shop = Shop(spark, core, tmp_path, config(load_mode="append", columns=before))
    first = csv("1,ann,10,1.25,2026-01-01 10:00:00,SPRING", header="order_id,customer,amount,price,created_at,coupon")
    assert shop.run(RUN1, first).status == "succeeded"
    # the source dropped `coupon` and added `note`: each file lacks one of the table's columns
    second = csv(
        "2,bob,5000000000,1234567.89,2026-01-02 10:00:00,gift", header="order_id,customer,amount,price,created_at,note"
    )
    widened = shop.run(RUN2, second, dataset=config(load_mode="append", columns=after))
    assert widened.status == "succeeded", widened.error
    ctx = bronze.JobContext(core=core, dataset=config(load_mode="append", columns=after), lake=shop.lake, run_id=RUN3)
    sql = "SELECT order_id, amount, price, coupon, note FROM pp_dw_bronze.shop_orders"
    summary = gold.run_gold(spark, ctx, {"order_notes": sql})
    assert summary.status == "succeeded", summary.models
    rows = shop.query(
        "SELECT order_id, amount, CAST(price AS VARCHAR), coupon, note FROM pp_dw_gold.order_notes ORDER BY 1"
    )
    assert rows == [(1, 10, "1.25", "SPRING", None), (2, 5000000000, "1234567.89", None, "gift")]


class Killed(BaseException):
    """The job stopped where it stands (as a kill does): no handler of the run sees it."""


def test_a_retry_of_a_run_killed_after_its_commit_keeps_the_committed_files_and_replaces_its_rows(
    spark, core, tmp_path, monkeypatch
):
    """The kill came after the commit (during expiry): the ledger says `publishing`, so the run id may run again.
    The retry must not delete the files the committed snapshot reads: it writes beside them and commits again."""
    shop = Shop(spark, core, tmp_path, config(load_mode="merge"))
    assert shop.run(RUN1, FIRST).status == "succeeded"

    def kill(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(iceberg, "expire", kill)
    with pytest.raises(Killed):
        shop.run(RUN2, SECOND)
    monkeypatch.undo()
    (_, _), (killed, _) = shop.snapshots()
    committed = shop.query(f"SELECT order_id, amount FROM {TABLE} ORDER BY 1")
    assert committed == [(1, 10), (2, 20), (3, 33), (4, 40)]
    retry = shop.run(RUN2, SECOND)
    assert retry.status == "succeeded", retry.error
    assert shop.query(f"SELECT order_id, amount FROM {TABLE} ORDER BY 1") == committed
    assert shop.query(f"SELECT count(*) FROM {TABLE} FOR VERSION AS OF {killed}") == [(4,)]  # its files are there
    assert shop.snapshots()[-1][0] == retry.iceberg["snapshot_id"] != killed


def test_a_commit_that_reached_the_catalog_before_failing_keeps_its_files(spark, core, tmp_path, monkeypatch):
    """An error after the catalog applied the commit (a time-out on the reply): the table's current snapshot is the
    run's, so the run succeeded and its files stay. It said failed, and that bronze kept its previous data, while
    readers saw its rows."""
    from pyiceberg.table import Transaction

    shop = Shop(spark, core, tmp_path, config())
    assert shop.run(RUN1, FIRST).status == "succeeded"
    real = Transaction.commit_transaction

    def applied_then_lost(self):
        real(self)
        raise RuntimeError("the connection was reset")

    monkeypatch.setattr(Transaction, "commit_transaction", applied_then_lost)
    second = shop.run(RUN2, SECOND)
    monkeypatch.undo()
    assert second.status == "succeeded", second.error
    assert second.iceberg["snapshot_id"] == shop.snapshots()[-1][0]
    assert len(shop.snapshots()) == 2
    assert shop.query(f"SELECT order_id, amount FROM {TABLE} ORDER BY 1") == [(3, 33), (4, 40)]


def test_an_append_replay_after_merges_removes_only_the_rows_of_its_raw_run(spark, core, tmp_path):
    """A merge rewrites rows of earlier runs (those its keys leave) into files of its own: a later append that
    replays the merging run's raw run removes that raw run's rows and no other run's."""
    shop = Shop(spark, core, tmp_path, config(load_mode="merge"))
    assert shop.run(RUN1, FIRST).status == "succeeded"
    merged = shop.run(RUN2, csv("2,bob,22,2026-01-02 11:00:00"))
    assert merged.status == "succeeded" and merged.iceberg["files_rewritten"] == 1
    replay = shop.run(RUN3, raw_run_id=RUN2, dataset=config(load_mode="append"))
    assert replay.status == "succeeded", replay.error
    rows = shop.query(f"SELECT order_id, amount, meta_run_id FROM {TABLE} ORDER BY 1")
    assert rows == [(1, 10, RUN1), (2, 22, RUN3), (3, 30, RUN1)]
    # replayed again: still one copy of its rows, the others untouched
    assert shop.run(RUN4, raw_run_id=RUN2, dataset=config(load_mode="append")).status == "succeeded"
    assert shop.query(f"SELECT order_id, amount, meta_run_id FROM {TABLE} ORDER BY 1") == [
        (1, 10, RUN1),
        (2, 22, RUN4),
        (3, 30, RUN1),
    ]


def test_on_s3_the_staged_files_are_copied_into_the_table_folder():
    import boto3
    from moto import mock_aws

    from dwlib.lake import S3Lake

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="pp-dw-123456789012")
        lake = S3Lake("pp-dw-123456789012", client=client)
        staged = "staging/bronze/shop-orders/run_id=20260101T000000Z/output/"
        for name in ("part-0.zstd.parquet", "part-1.zstd.parquet", "_SUCCESS"):
            lake.write_bytes(staged + name, name.encode())
        target = "bronze/shop_orders/data/raw_run_id=R/run_id=R/"
        moved = iceberg._move(lake, staged, target)
        assert sorted(moved) == [target + "part-0.zstd.parquet", target + "part-1.zstd.parquet"]
        assert lake.read_bytes(target + "part-1.zstd.parquet") == b"part-1.zstd.parquet"
        assert iceberg.location(lake, "bronze/shop_orders/") == "s3://pp-dw-123456789012/bronze/shop_orders"


@pytest.mark.parametrize(
    ("old", "new", "refused"),
    [
        ("decimal(10,2)", "decimal(12,2)", False),
        ("float", "double", False),
        ("int", "bigint", False),
        ("decimal(10,2)", "decimal(8,2)", True),
        ("decimal(10,2)", "decimal(12,3)", True),
        ("double", "float", True),
        ("bigint", "string", True),
    ],
)
def test_only_widenings_pass_the_schema_check(tmp_path, old, new, refused):
    import pyarrow as pa

    arrow = {
        "decimal(10,2)": pa.decimal128(10, 2),
        "decimal(12,2)": pa.decimal128(12, 2),
        "decimal(8,2)": pa.decimal128(8, 2),
        "decimal(12,3)": pa.decimal128(12, 3),
        "float": pa.float32(),
        "double": pa.float64(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "string": pa.string(),
    }
    cat = iceberg.local_catalog(tmp_path, create=True)
    cat.create_namespace("db")
    table = cat.create_table(("db", "t"), schema=pa.schema([("price", arrow[old])]))
    incoming = pa.schema([("price", arrow[new])])
    if not refused:
        iceberg._refuse_narrowing(table, incoming, "db.t")
        return
    with pytest.raises(
        iceberg.IcebergError, match=r"the column price of the Iceberg table db\.t is .* The table is unchanged"
    ):
        iceberg._refuse_narrowing(table, incoming, "db.t")


def test_on_s3_a_switched_table_is_refused_with_the_aws_commands_that_move_it_aside(core):
    """The same refusal as locally (tests/cli/test_iceberg_switch.py), with the commands for the bucket."""
    import boto3
    from moto import mock_aws

    from dwlib.lake import S3Lake
    from dwlib.run import IcebergPublisher, LayoutError, ParquetPublisher

    bucket = "pp-dw-123456789012"
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        lake = S3Lake(bucket, client=client)
        ctx = bronze.JobContext(core=core, dataset=config(), lake=lake, run_id=RUN2)
        target = bronze.bronze_target(ctx)
        lake.write_bytes("bronze/shop_orders/part-00000.zstd.parquet", b"old parquet")
        lake.write_bytes("bronze/shop_orders/_SUCCESS", b"")
        with pytest.raises(LayoutError) as parquet_there:
            IcebergPublisher().check_layout(ctx, target)
        message = str(parquet_there.value)
        assert f"s3://{bucket}/bronze/shop_orders/ holds 1 file(s) of the Parquet table {TABLE}" in message
        assert (
            f"`aws s3 mv --recursive s3://{bucket}/bronze/shop_orders/ "
            f"s3://{bucket}/backup/bronze/shop_orders-parquet-{RUN2}/`" in message
        )
        assert "`aws glue delete-table --database-name pp_dw_bronze --name shop_orders`" in message
        ParquetPublisher().check_layout(ctx, target)  # Parquet over Parquet: as before

        lake.delete_prefix("bronze/shop_orders/")
        lake.write_bytes("bronze/shop_orders/metadata/00000-x.metadata.json", b"{}")
        lake.write_bytes("bronze/shop_orders/data/raw_run_id=R/run_id=R/part-0.parquet", b"new")
        IcebergPublisher().check_layout(ctx, target)  # the table's own data/ and metadata/
        with pytest.raises(LayoutError, match="holds the Iceberg table pp_dw_bronze.shop_orders") as iceberg_there:
            ParquetPublisher().check_layout(ctx, target)
        assert f"s3://{bucket}/backup/bronze/shop_orders-iceberg-{RUN2}/" in str(iceberg_there.value)
        assert lake.read_bytes("bronze/shop_orders/data/raw_run_id=R/run_id=R/part-0.parquet") == b"new"


def test_on_aws_the_crawlers_table_of_the_same_name_is_refused_naming_the_fix(core, monkeypatch):
    """Parquet files moved aside but the crawler's (Hive) table left in the Glue catalog: the Iceberg table cannot
    be created under its name; the run says which table to delete, and commits nothing."""
    import boto3
    from moto import mock_aws

    from dwlib.lake import S3Lake

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = "pp-dw-123456789012"
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_database(DatabaseInput={"Name": "pp_dw_bronze"})
        glue.create_table(
            DatabaseName="pp_dw_bronze",
            TableInput={
                "Name": "shop_orders",
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"classification": "parquet"},
                "StorageDescriptor": {"Location": f"s3://{bucket}/bronze/shop_orders/", "Columns": []},
            },
        )
        lake = S3Lake(bucket, client=s3)
        staged = "staging/bronze/shop-orders/run_id=R/output/"
        lake.write_bytes(staged + "part-0.zstd.parquet", b"rows")
        with pytest.raises(iceberg.IcebergError) as refused:
            iceberg.commit(
                None, lake, Naming.of(core), config(), identifier=("pp_dw_bronze", "shop_orders"),
                prefix="bronze/shop_orders/", staged=staged, run_id=RUN1, raw_run_id=RUN1, load_mode="full",
                retention=7,
            )  # fmt: skip
        assert "the catalog has pp_dw_bronze.shop_orders as a table that is not Iceberg" in str(refused.value)
        assert "aws glue delete-table --database-name pp_dw_bronze --name shop_orders" in str(refused.value)
        assert not refused.value.cast_fix  # a gold model's error names its file, and does not say to cast a column
        assert not lake.data_files("bronze/")  # nothing written
        table = glue.get_table(DatabaseName="pp_dw_bronze", Name="shop_orders")["Table"]
        assert table["Parameters"] == {"classification": "parquet"}


def test_a_moved_aside_iceberg_table_is_no_table_until_the_parquet_run_forgets_it(spark, core, tmp_path):
    """Iceberg to Parquet, after the refusal's move: the local catalog still names the table, whose metadata is
    gone. `dw query` reads the lake's other tables meanwhile (that table is absent), and the Parquet run drops the
    catalog's entry (the row only: the moved files stay) and publishes the Parquet table alone."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shop = Shop(spark, core, tmp_path, config())
    assert shop.run(RUN1, FIRST).status == "succeeded"
    parquet = config(table_format="parquet")
    refused = shop.run(RUN2, FIRST, dataset=parquet)
    assert refused.status == "failed" and "holds the Iceberg table pp_dw_bronze.shop_orders" in refused.error
    backup = tmp_path / "backup-of-shop-orders"
    shutil.move(shop.lake.root / "bronze" / "shop_orders", backup)
    other = shop.lake.root / "bronze" / "other"
    other.mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), other / "part-0.parquet")  # another dataset's Parquet table
    assert shop.query("SELECT count(*) FROM pp_dw_bronze.other") == [(2,)]
    with pytest.raises(QueryError, match="pp_dw_bronze.shop_orders"):
        shop.query(f"SELECT count(*) FROM {TABLE}")
    assert shop.run(RUN3, SECOND, dataset=parquet).status == "succeeded"
    assert shop.query(f"SELECT order_id, amount FROM {TABLE} ORDER BY order_id") == [(3, 33), (4, 40)]
    assert iceberg.local_catalog(shop.lake.root).list_tables("pp_dw_bronze") == []
    assert (backup / "metadata").is_dir() and list((backup / "data").rglob("*.parquet"))


def test_a_metadata_table_is_read_whatever_the_case_of_its_suffix_and_table_name(core, tmp_path):
    """Athena and Trino read `"SHOP_ORDERS$Snapshots"` as `"shop_orders$snapshots"`; so does `dw query`."""
    import pyarrow as pa

    lake = LocalLake(tmp_path / "lake")
    cat = iceberg.local_catalog(lake.root, create=True)
    cat.create_namespace("pp_dw_bronze")
    table = cat.create_table(("pp_dw_bronze", "shop_orders"), schema=pa.schema([("order_id", pa.int64())]))
    table.append(pa.table({"order_id": [1, 2]}))
    (snapshot,) = table.refresh().metadata.snapshots

    def query(sql):
        return run_query(sql, lake.root, Naming.of(core)).rows

    for name in ("shop_orders$snapshots", "SHOP_ORDERS$Snapshots", "Shop_Orders$SNAPSHOTS"):
        assert query(f'SELECT snapshot_id FROM pp_dw_bronze."{name}"') == [(snapshot.snapshot_id,)]
    assert query('SELECT snapshot_id FROM "shop_orders$HISTORY"') == [(snapshot.snapshot_id,)]
    assert query('SELECT sum(record_count) FROM pp_dw_bronze."SHOP_ORDERS$Files"') == [(2,)]
    with pytest.raises(QueryError) as unknown:
        query('SELECT * FROM pp_dw_bronze."SHOP_ORDERS$Partitions"')
    assert "the metadata tables supported locally are" in str(unknown.value)
    assert '"shop_orders$snapshots", "shop_orders$history", "shop_orders$files"' in str(unknown.value)
