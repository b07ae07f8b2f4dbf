"""The example Iceberg dataset end to end through the `dw` command: two sample runs merged by key (and
its gold model committed after each), then `dw query` with time travel and a metadata table. And, on
tables pyiceberg writes (no Spark), how `dw query` reads what schema changes leave behind, the
metadata tables' types and the time-travel pointers Athena takes."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dw.query import QueryError, athena_text, run_query
from dwlib.naming import Naming
from tests.cli.test_cli import ROOT, assert_error, assert_ok, dw, line_with

SPARK_RUN = 900
NAMING = Naming("pp-dw", "pp_dw")


@pytest.mark.spark
@pytest.mark.slow
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


# ---------------------------------------------------------------- tables pyiceberg writes


def iceberg_lake(root: Path) -> Path:
    """pp_dw_bronze.orders (one pyiceberg append, with column statistics) and pp_dw_bronze.plain (Parquet)."""
    from pyiceberg import types as t
    from pyiceberg.schema import Schema

    from dwlib.iceberg import local_catalog

    catalog = local_catalog(root, create=True)
    for layer in ("bronze", "gold"):
        catalog.create_namespace(f"pp_dw_{layer}")
    columns = [("order_id", t.LongType()), ("day", t.DateType()), ("ts", t.TimestamptzType()),
               ("name", t.StringType()), ("price", t.DecimalType(9, 2)), ("ratio", t.FloatType()),
               ("active", t.BooleanType())]  # fmt: skip
    orders = catalog.create_table(
        ("pp_dw_bronze", "orders"),
        Schema(*(t.NestedField(i, name, kind, required=False) for i, (name, kind) in enumerate(columns, 1))),
        location=f"file://{root}/bronze/orders",
    )
    orders.append(pa.table({
        "order_id": pa.array([1, 2], pa.int64()),
        "day": [date(2021, 1, 14), date(2021, 1, 15)],
        "ts": pa.array([datetime(2021, 1, 14, 10, tzinfo=UTC), datetime(2021, 1, 15, 10, 0, 0, 500000, tzinfo=UTC)],
                       pa.timestamp("us", tz="UTC")),
        "name": ["ann", "bob"],
        "price": pa.array([Decimal("1.25"), Decimal("2.50")], pa.decimal128(9, 2)),
        "ratio": pa.array([0.5, 0.25], pa.float32()),
        "active": [True, False],
    }))  # fmt: skip
    (root / "bronze" / "plain").mkdir(parents=True)
    pq.write_table(pa.table({"x": [7]}), root / "bronze" / "plain" / "part-0.parquet")
    return root


def add_totals(root: Path) -> Path:
    """pp_dw_gold.totals: its one data file lacks the column `top` (the model stopped selecting it) and
    holds amount, ratio, price at the types the table has since widened (int, real, decimal(9,2))."""
    from pyiceberg import types as t
    from pyiceberg.schema import Schema

    from dwlib.iceberg import local_catalog

    catalog = local_catalog(root)
    narrow = [("n", t.LongType()), ("amount", t.IntegerType()), ("ratio", t.FloatType()),
              ("price", t.DecimalType(9, 2)), ("top", t.StringType())]  # fmt: skip
    totals = catalog.create_table(
        ("pp_dw_gold", "totals"),
        Schema(*(t.NestedField(i, name, kind, required=False) for i, (name, kind) in enumerate(narrow, 1))),
        location=f"file://{root}/gold/shop/totals",
    )
    data = root / "gold" / "shop" / "totals" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table({  # the model no longer selects `top`
        "n": pa.array([2], pa.int64()), "amount": pa.array([2_000_000_000], pa.int32()),
        "ratio": pa.array([0.25], pa.float32()), "price": pa.array([Decimal("2.50")], pa.decimal128(9, 2)),
    }), data / "part-0.parquet")  # fmt: skip
    totals.add_files([f"file://{data}/part-0.parquet"])
    with catalog.load_table(("pp_dw_gold", "totals")).update_schema() as update:
        update.update_column("amount", t.LongType())
        update.update_column("ratio", t.DoubleType())
        update.update_column("price", t.DecimalType(12, 2))
    return root


@pytest.fixture
def ice(tmp_path: Path) -> Path:
    return iceberg_lake(tmp_path / "lake")


def query(lake: Path, sql: str):
    return run_query(sql, lake, NAMING)


def test_a_column_no_data_file_holds_reads_as_null_at_the_tables_types(ice: Path):
    add_totals(ice)
    # Athena reads a column the table keeps and no file of the snapshot holds as NULL, and every
    # column at the table's type: the files' int, real and decimal(9,2) come back widened.
    result = query(ice, "SELECT * FROM pp_dw_gold.totals")
    assert result.columns == ["n", "amount", "ratio", "price", "top"]
    assert result.types == ["bigint", "bigint", "double", "decimal(12,2)", "varchar"]
    assert result.rows == [(2, 2_000_000_000, 0.25, Decimal("2.50"), None)]
    assert query(ice, "SELECT amount * 2 FROM pp_dw_gold.totals").rows == [(4_000_000_000,)]  # no int overflow
    assert query(ice, "SELECT 1").rows == [(1,)]
    assert query(ice, "SELECT x FROM pp_dw_bronze.plain").rows == [(7,)]


def test_a_table_that_cannot_be_read_fails_only_the_queries_that_read_it(ice: Path, tmp_path: Path):
    add_totals(ice)
    data = ice / "gold" / "shop" / "totals" / "data"
    (data / "part-0.parquet").rename(tmp_path / "moved.parquet")
    assert query(ice, "SELECT count(*) FROM pp_dw_bronze.orders").rows == [(2,)]
    for sql in ("SELECT n FROM pp_dw_gold.totals", "DESCRIBE pp_dw_gold.totals"):
        with pytest.raises(QueryError, match=r"table pp_dw_gold\.totals cannot be read locally: .*dw run DATASET"):
            query(ice, sql)
    project = tmp_path / "project"
    (project / "datasets").mkdir(parents=True)
    shutil.copyfile(ROOT / "config.json", project / "config.json")
    tables = dw("tables", "--lake", ice, cwd=project)
    assert_ok(tables)
    assert "cannot be read locally" in line_with(tables.stdout, "pp_dw_gold.totals")
    assert "x bigint" in line_with(tables.stdout, "pp_dw_bronze.plain")


def test_metadata_tables_have_trinos_types_and_readable_bounds(ice: Path):
    files = query(ice, 'SELECT content, lower_bounds, upper_bounds, lower_bounds[2] FROM pp_dw_bronze."orders$files"')
    assert files.types == ["integer", "map(integer, varchar)", "map(integer, varchar)", "varchar"]
    ((content, lower, upper, day),) = files.rows
    assert content == 0 and day == "2021-01-14"
    assert athena_text(lower, files.types[1]) == (
        "{1=1, 2=2021-01-14, 3=2021-01-14T10:00Z, 4=ann, 5=1.25, 6=0.25, 7=false}"
    )
    assert athena_text(upper, files.types[2]) == (
        "{1=2, 2=2021-01-15, 3=2021-01-15T10:00:00.500Z, 4=bob, 5=2.50, 6=0.5, 7=true}"
    )
    with pytest.raises(QueryError, match="Key not present in map: 8"):
        query(ice, 'SELECT lower_bounds[8] FROM pp_dw_bronze."orders$files"')
    for sql in ('SELECT committed_at FROM pp_dw_bronze."orders$snapshots"',
                'SELECT made_current_at FROM pp_dw_bronze."orders$history"'):  # fmt: skip
        result = query(ice, sql)
        assert result.types == ["timestamp with time zone"]
        ((at,),) = result.rows
        assert at.tzinfo is not None and athena_text(at, result.types[0]).endswith(" UTC")


def _committed(lake: Path) -> datetime:
    ((at,),) = query(lake, 'SELECT committed_at FROM pp_dw_bronze."orders$snapshots"').rows
    return at.astimezone(UTC)


@pytest.mark.parametrize(
    ("zone", "offset"),
    [("GMT", "+00:00"), ("Etc/GMT+5", "-05:00"), ("+01", "+01:00"), ("+01:00", "+01:00"), ("UTC", "+00:00"),
     ("Europe/Vienna", None)],
)  # fmt: skip
def test_for_timestamp_as_of_reads_the_zones_athena_reads(ice: Path, zone: str, offset: str | None):
    """The snapshot's commit instant, written as the wall clock of `zone` (Etc/GMT+5 is UTC-5): read as
    UTC, it would fall before the snapshot or in the future."""
    at = _committed(ice)
    local = at.astimezone(ZoneInfo(zone) if offset is None else datetime.strptime(offset, "%z").tzinfo)
    stamp = local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    sql = f"SELECT count(*) FROM pp_dw_bronze.orders FOR TIMESTAMP AS OF TIMESTAMP '{stamp} {zone}'"
    assert query(ice, sql).rows == [(2,)]
    before = (local - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    with pytest.raises(QueryError, match="has no snapshot at or before"):
        query(ice, f"SELECT count(*) FROM pp_dw_bronze.orders FOR TIMESTAMP AS OF TIMESTAMP '{before} {zone}'")


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        ("'2026-01-01 00:00:00 UTC'", r"Athena refuses a varchar\(23\) here \(Temporal pointers must be of type"),
        ("CAST('2026-01-01 00:00:00' AS varchar)", "Athena refuses a varchar here"),
        ("CAST('2026-01-01 00:00:00' AS timestamp)", "supported locally with a literal"),
        ("current_timestamp - INTERVAL '1' DAY", "supported locally with a literal"),
        ("NULL", "Pointer value cannot be NULL"),
        ("TIMESTAMP '2999-01-01 00:00:00'", "Pointer value '2999-01-01 00:00:00' is not in the past"),
        ("TIMESTAMP '2026-01-01 00:00:00 Mars/Olympus'", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_for_timestamp_as_of_refuses_what_athena_refuses(ice: Path, pointer: str, message: str):
    with pytest.raises(QueryError, match=message):
        query(ice, f"SELECT count(*) FROM pp_dw_bronze.orders FOR TIMESTAMP AS OF {pointer}")
