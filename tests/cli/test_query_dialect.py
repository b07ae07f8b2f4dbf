"""`dw query`: Athena (Trino) SQL on the local lake gives Athena's answers.

Every expected value below is written by hand from Trino's documented semantics (not taken
from a DuckDB run), so a wrong translation shows as a failing case.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dw.query import (
    QueryError,
    QueryResult,
    TableInfo,
    athena_text,
    connect,
    joda_to_strftime,
    local_catalog,
    run_query,
    translate,
)
from dwlib.naming import Naming
from tests.cli.test_cli import _env

NAMING = Naming("pp-dw", "pp_dw")
B = "pp_dw_bronze.fda_nsde"
G = "pp_dw_gold.model_a"

BRONZE_SCHEMA = pa.schema(
    [
        ("id", pa.int32()),
        ("name", pa.string()),
        ("d", pa.date32()),
        ("ts", pa.timestamp("us")),
        ("price", pa.decimal128(10, 2)),
        ("active", pa.bool_()),
        ("tags", pa.list_(pa.string())),
        ("n", pa.int64()),
        ("x", pa.float64()),
        ("code", pa.string()),
    ]
)
ROWS_1 = [
    {
        "id": 1,
        "name": " Alpha ",
        "d": date(2024, 1, 31),
        "ts": datetime(2024, 1, 31, 23, 30),
        "price": Decimal("12.50"),
        "active": True,
        "tags": ["a", "b", "c"],
        "n": 10_000_000_000,
        "x": 2.5,
        "code": "12",
    },
    {
        "id": 2,
        "name": "beta",
        "d": date(2024, 2, 29),
        "ts": datetime(2024, 3, 1, 1, 15, 30, 123000),
        "price": Decimal("0.99"),
        "active": False,
        "tags": ["x"],
        "n": -7,
        "x": -2.5,
        "code": "12.5",
    },
]
ROWS_2 = [
    {
        "id": 3,
        "name": None,
        "d": None,
        "ts": None,
        "price": None,
        "active": None,
        "tags": None,
        "n": None,
        "x": None,
        "code": None,
    },
    {
        "id": 4,
        "name": "gamma-delta",
        "d": date(2023, 12, 25),
        "ts": datetime(2023, 12, 25, 8, 5, 9),
        "price": Decimal("100.00"),
        "active": True,
        "tags": [],
        "n": 0,
        "x": 0.125,
        "code": "abc",
    },
]
GOLD_SCHEMA = pa.schema(
    [
        ("k", pa.string()),
        ("v", pa.int64()),
        ("m", pa.map_(pa.string(), pa.int64())),
        # Spark writes UTC-adjusted timestamps; Athena reads them as `timestamp`.
        ("loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)
GOLD_ROWS = [
    {"k": "a", "v": 1, "m": [("k1", 10), ("k2", 20)], "loaded_at": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)},
    {"k": "b", "v": 2, "m": [], "loaded_at": datetime(2024, 5, 6, 7, 8, 10, tzinfo=UTC)},
]


def build_lake(root: Path) -> Path:
    """bronze/fda_nsde (2 files + Spark litter), an empty bronze table, gold/fda_nsde/model_a."""
    bronze = root / "bronze" / "fda_nsde"
    (bronze / "_temporary" / "0").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(ROWS_1, BRONZE_SCHEMA),
        bronze / "part-00000-a.c000.zstd.parquet",
        compression="zstd",
    )
    pq.write_table(
        pa.Table.from_pylist(ROWS_2, BRONZE_SCHEMA),
        bronze / "part-00001-b.c000.zstd.parquet",
        compression="zstd",
    )
    (bronze / "_SUCCESS").write_text("")
    (bronze / ".part-00000-a.c000.zstd.parquet.crc").write_bytes(b"crc")
    (bronze / "part-00001-b.crc").write_bytes(b"crc")
    # an unfinished Spark attempt: not data
    pq.write_table(pa.Table.from_pylist(ROWS_1, BRONZE_SCHEMA), bronze / "_temporary" / "0" / "part-9.parquet")
    (root / "bronze" / "empty_table").mkdir()
    (root / "bronze" / "empty_table" / "_SUCCESS").write_text("")
    gold = root / "gold" / "fda_nsde" / "model_a"
    gold.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(GOLD_ROWS, GOLD_SCHEMA), gold / "part-00000.zstd.parquet", compression="zstd")
    (gold / "_SUCCESS").write_text("")
    (root / "gold" / "fda_nsde" / "model_b").mkdir()  # no parquet yet: no table
    return root


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lake(tmp_path_factory.mktemp("query") / "lake")


def query(lake: Path, sql: str) -> QueryResult:
    return run_query(sql.replace("$B", B).replace("$G", G), lake, NAMING)


def assert_rows(actual: list[tuple], expected: list[tuple]) -> None:
    """Equal values of the same Python types (a DATE is no datetime, True is no 1)."""
    assert actual == expected
    for got_row, want_row in zip(actual, expected, strict=True):
        for got, want in zip(got_row, want_row, strict=True):
            assert type(got) is type(want), f"{got!r} is a {type(got).__name__}, expected {type(want).__name__}"


# (Trino SQL, rows Athena returns). $B is the bronze table, $G the gold one.
CASES = {
    # date_format: MySQL-style patterns; %i is minutes, %s seconds
    "date_format": (
        "SELECT date_format(ts, '%Y-%m-%d') FROM $B ORDER BY id",
        [("2024-01-31",), ("2024-03-01",), (None,), ("2023-12-25",)],
    ),
    "date_format_time": (
        "SELECT date_format(ts, '%Y-%m-%d %H:%i:%s') FROM $B WHERE id = 2",
        [("2024-03-01 01:15:30",)],
    ),
    "date_format_date": ("SELECT date_format(d, '%d/%m/%Y') FROM $B WHERE id = 2", [("29/02/2024",)]),
    # date_trunc keeps a DATE a DATE
    "date_trunc_month": ("SELECT date_trunc('month', d) FROM $B WHERE id = 1", [(date(2024, 1, 1),)]),
    "date_trunc_week": ("SELECT date_trunc('week', d) FROM $B WHERE id = 1", [(date(2024, 1, 29),)]),
    "date_trunc_year_literal": ("SELECT date_trunc('year', DATE '2024-05-17')", [(date(2024, 1, 1),)]),
    "date_trunc_timestamp": (
        "SELECT date_trunc('hour', ts) FROM $B WHERE id = 2",
        [(datetime(2024, 3, 1, 1, 0),)],
    ),
    # date_add keeps a DATE a DATE; month arithmetic clamps to the month's end
    "date_add_day": ("SELECT date_add('day', 3, d) FROM $B WHERE id = 1", [(date(2024, 2, 3),)]),
    "date_add_month": ("SELECT date_add('month', 1, d) FROM $B WHERE id = 1", [(date(2024, 2, 29),)]),
    "date_add_hour": (
        "SELECT date_add('hour', 2, ts) FROM $B WHERE id = 1",
        [(datetime(2024, 2, 1, 1, 30),)],
    ),
    "date_plus_interval": ("SELECT d + INTERVAL '1' DAY FROM $B WHERE id = 1", [(date(2024, 2, 1),)]),
    # date_diff counts whole units elapsed
    "date_diff_days": ("SELECT date_diff('day', d, DATE '2024-03-01') FROM $B WHERE id = 1", [(30,)]),
    "date_diff_partial_day": (
        "SELECT date_diff('day', ts, TIMESTAMP '2024-02-01 01:00:00') FROM $B WHERE id = 1",
        [(0,)],
    ),
    "date_diff_month": ("SELECT date_diff('month', DATE '2024-01-15', DATE '2024-03-14')", [(1,)]),
    "date_diff_hour": (
        "SELECT date_diff('hour', TIMESTAMP '2024-01-01 10:59:00', TIMESTAMP '2024-01-01 12:58:00')",
        [(1,)],
    ),
    "year_month_day": ("SELECT year(d), month(d), day(d) FROM $B WHERE id = 2", [(2024, 2, 29)]),
    "year_month_day_ts": ("SELECT year(ts), month(ts), day(ts) FROM $B WHERE id = 2", [(2024, 3, 1)]),
    "from_iso8601_timestamp": (
        "SELECT from_iso8601_timestamp('2024-05-06T07:08:09Z')",
        [(datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),)],
    ),
    "from_iso8601_timestamp_offset": (
        "SELECT from_iso8601_timestamp('2024-05-06T07:08:09.250+02:00')",
        [(datetime(2024, 5, 6, 5, 8, 9, 250000, tzinfo=UTC),)],
    ),
    # format_datetime: Joda-Time patterns
    "format_datetime": (
        "SELECT format_datetime(ts, 'yyyy-MM-dd HH:mm:ss.SSS') FROM $B WHERE id = 2",
        [("2024-03-01 01:15:30.123",)],
    ),
    "format_datetime_names": (
        "SELECT format_datetime(ts, 'EEE, d MMM yy') FROM $B WHERE id = 1",
        [("Wed, 31 Jan 24",)],
    ),
    # aggregates
    "approx_distinct": ("SELECT approx_distinct(name) FROM $B", [(3,)]),
    "count_if": ("SELECT count_if(active), count_if(x > 0) FROM $B", [(2, 2)]),
    "arbitrary": ("SELECT arbitrary(name) FROM $B WHERE id = 2", [("beta",)]),
    "avg_sum_decimal": ("SELECT avg(price), sum(price) FROM $B", [(Decimal("37.83"), Decimal("113.49"))]),
    "group_by_nulls_last": (
        "WITH c AS (SELECT active, count(*) AS n FROM $B GROUP BY active) SELECT active, n FROM c ORDER BY active",
        [(False, 1), (True, 2), (None, 1)],
    ),
    # casts: Trino parses integers strictly and rounds doubles half away from zero
    "try_cast_varchar": (
        "SELECT id, try_cast(code AS integer) FROM $B ORDER BY id",
        [(1, 12), (2, None), (3, None), (4, None)],
    ),
    "try_cast_double": ("SELECT try_cast(x AS integer) FROM $B ORDER BY id", [(3,), (-3,), (None,), (0,)]),
    "try_cast_date": (
        "SELECT try_cast('2024-02-30' AS date), try_cast('2024-02-29' AS date)",
        [(None, date(2024, 2, 29))],
    ),
    "cast_varchar": (
        "SELECT CAST(id AS varchar), CAST(price AS varchar), CAST(d AS varchar), CAST(active AS varchar) "
        "FROM $B WHERE id = 2",
        [("2", "0.99", "2024-02-29", "false")],
    ),
    "cast_timestamp_varchar": (
        "SELECT CAST(ts AS varchar) FROM $B ORDER BY id",
        [("2024-01-31 23:30:00.000",), ("2024-03-01 01:15:30.123",), (None,), ("2023-12-25 08:05:09.000",)],
    ),
    "cast_zoned_timestamp_varchar": (
        "SELECT CAST(from_iso8601_timestamp('2024-05-06T07:08:09Z') AS varchar)",
        [("2024-05-06 07:08:09.000 UTC",)],
    ),
    # strings
    "regexp_like": (
        "SELECT regexp_like(name, '^g') FROM $B ORDER BY id",
        [(False,), (False,), (None,), (True,)],
    ),
    "regexp_like_partial": ("SELECT regexp_like('abc123', '[0-9]{3}')", [(True,)]),
    "regexp_extract": (
        "SELECT regexp_extract(name, '[a-z]+'), regexp_extract(name, 'z+') FROM $B WHERE id = 4",
        [("gamma", None)],
    ),
    "substr": (
        "SELECT substr(name, 2, 3), substr(name, -5), substr(name, 7) FROM $B WHERE id = 4",
        [("amm", "delta", "delta")],
    ),
    "strpos": ("SELECT strpos(name, 'a'), strpos(name, 'z') FROM $B WHERE id = 2", [(4, 0)]),
    "concat": (
        "SELECT concat(name, '-', CAST(id AS varchar)), name || '!' FROM $B ORDER BY id",
        [(" Alpha -1", " Alpha !"), ("beta-2", "beta!"), (None, None), ("gamma-delta-4", "gamma-delta!")],
    ),
    "coalesce_nullif": (
        "SELECT coalesce(name, 'n/a'), nullif(id, 1) FROM $B ORDER BY id",
        [(" Alpha ", None), ("beta", 2), ("n/a", 3), ("gamma-delta", 4)],
    ),
    "lower_upper_trim": (
        "SELECT lower(name), upper(name), trim(name) FROM $B WHERE id = 1",
        [(" alpha ", " ALPHA ", "Alpha")],
    ),
    "trim_whitespace": (
        "SELECT trim(chr(9) || 'x' || chr(10)), ltrim('  x '), rtrim(' x  ')",
        [("x", "x ", " x")],
    ),
    "split": ("SELECT split('a,b,,c', ',')", [(["a", "b", "", "c"],)]),
    "split_element": ("SELECT element_at(split(name, '-'), 2) FROM $B WHERE id = 4", [("delta",)]),
    "split_part": (
        "SELECT split_part(name, '-', 2), split_part(name, '-', 3) FROM $B WHERE id = 4",
        [("delta", None)],
    ),
    # arrays and maps
    "element_at_array": (
        "SELECT element_at(tags, 1), element_at(tags, -1) FROM $B ORDER BY id",
        [("a", "c"), ("x", "x"), (None, None), (None, None)],
    ),
    "element_at_map": (
        "SELECT element_at(m, 'k1'), element_at(m, 'zz') FROM $G ORDER BY k",
        [(10, None), (None, None)],
    ),
    "cardinality_array": ("SELECT cardinality(tags) FROM $B ORDER BY id", [(3,), (1,), (None,), (0,)]),
    "cardinality_map": ("SELECT cardinality(m) FROM $G ORDER BY k", [(2,), (0,)]),
    "array_join": ("SELECT array_join(tags, '|') FROM $B ORDER BY id", [("a|b|c",), ("x",), (None,), ("",)]),
    "array_join_nulls": (
        "SELECT array_join(ARRAY['a', NULL, 'b'], ','), array_join(ARRAY['a', NULL, 'b'], ',', 'N')",
        [("a,b", "a,N,b")],
    ),
    "unnest": (
        "SELECT t.id, u.tag FROM $B t CROSS JOIN UNNEST(t.tags) AS u(tag) ORDER BY 1, 2",
        [(1, "a"), (1, "b"), (1, "c"), (2, "x")],
    ),
    # numbers: integer division truncates, decimals stay decimal (rounded half up)
    "round_double": (
        "SELECT round(x), round(x, 1) FROM $B ORDER BY id",
        [(3.0, 2.5), (-3.0, -2.5), (None, None), (0.0, 0.1)],
    ),
    "round_decimal": ("SELECT round(price, 1) FROM $B WHERE id = 2", [(Decimal("1.00"),)]),
    "integer_division": ("SELECT 7 / 2, -7 / 2, n / 3 FROM $B WHERE id = 1", [(3, -3, 3333333333)]),
    "decimal_division": (
        "SELECT price / 2 FROM $B ORDER BY id",
        [(Decimal("6.25"),), (Decimal("0.50"),), (None,), (Decimal("50.00"),)],
    ),
    # tables: Spark's UTC-adjusted timestamps read as Athena's `timestamp`; catalog prefix allowed
    "gold_timestamp": (
        "SELECT loaded_at FROM awsdatacatalog.$G WHERE k = 'a'",
        [(datetime(2024, 5, 6, 7, 8, 9),)],
    ),
    "unqualified_unique_table": ("SELECT count(*) FROM fda_nsde", [(4,)]),
}


@pytest.mark.parametrize(("sql", "expected"), list(CASES.values()), ids=list(CASES))
def test_trino_semantics(lake: Path, sql: str, expected: list[tuple]) -> None:
    assert_rows(query(lake, sql).rows, expected)


def test_current_date_is_utc_today(lake: Path) -> None:
    before = datetime.now(UTC).date()
    result = query(lake, "SELECT current_date")
    after = datetime.now(UTC).date()
    assert result.types == ["date"]
    assert result.rows[0][0] in (before, after) and type(result.rows[0][0]) is date


def test_types_are_kept_and_named_as_athena(lake: Path) -> None:
    result = query(lake, "SELECT d, price, id, n, ts, active, tags, x, name FROM $B WHERE id = 1")
    assert result.types == [
        "date",
        "decimal(10,2)",
        "integer",
        "bigint",
        "timestamp",
        "boolean",
        "array(varchar)",
        "double",
        "varchar",
    ]
    d, price, id_, n, ts, active, tags, x, name = result.rows[0]
    assert type(d) is date and d == date(2024, 1, 31)
    assert isinstance(price, Decimal) and price == Decimal("12.50")
    assert type(id_) is int and type(n) is int and type(active) is bool
    assert type(ts) is datetime and ts.tzinfo is None
    assert tags == ["a", "b", "c"] and x == 2.5 and name == " Alpha "
    gold = query(lake, "SELECT * FROM $G ORDER BY k")
    assert gold.columns == ["k", "v", "m", "loaded_at"]
    assert gold.types == ["varchar", "bigint", "map(varchar, bigint)", "timestamp"]


def test_output_columns_are_named_as_athena_names_them(lake: Path) -> None:
    result = query(lake, "SELECT id, id + 1, name AS nm, date_add('day', 1, d) FROM $B WHERE id = 1")
    assert result.columns == ["id", "_col1", "nm", "_col3"]


def test_unknown_table_lists_the_tables(lake: Path) -> None:
    with pytest.raises(QueryError) as raised:
        query(lake, "SELECT * FROM pp_dw_bronze.nope")
    message = str(raised.value)
    assert message.startswith("table pp_dw_bronze.nope does not exist in the local lake; tables: ")
    assert "tables: pp_dw_bronze.fda_nsde, pp_dw_gold.model_a (run `dw run DATASET` to create one)" in message


def test_unknown_table_in_an_empty_lake(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match=r"tables: \(none\)"):
        run_query("SELECT * FROM pp_dw_gold.model_a", tmp_path, NAMING)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO pp_dw_bronze.fda_nsde SELECT * FROM pp_dw_bronze.fda_nsde",
        "CREATE TABLE pp_dw_gold.t AS SELECT 1 AS a",
        "DROP TABLE pp_dw_bronze.fda_nsde",
        "DELETE FROM pp_dw_bronze.fda_nsde",
        "COPY (SELECT 1) TO '/tmp/out.csv'",
        "SELECT 1; SELECT 2",
    ],
)
def test_only_one_read_only_statement_runs(lake: Path, sql: str) -> None:
    with pytest.raises(QueryError, match="read-only|one statement"):
        query(lake, sql)


def test_files_outside_the_lake_are_not_read(lake: Path) -> None:
    with pytest.raises(QueryError, match="not a table of the local lake"):
        query(lake, "SELECT * FROM read_csv('/etc/passwd')")


def test_parse_error_says_where(lake: Path) -> None:
    with pytest.raises(QueryError, match=r"could not parse the SQL: .*line 1, column \d+"):
        query(lake, "SELECT FROM WHERE (")


def test_failing_cast_fails_as_in_athena(lake: Path) -> None:
    with pytest.raises(QueryError, match="Cannot cast '12.5' to INT"):
        query(lake, "SELECT CAST(code AS integer) FROM $B WHERE id = 2")


def test_unknown_column_lists_the_columns(lake: Path) -> None:
    with pytest.raises(QueryError, match=r"nosuchcol.*columns of pp_dw_bronze\.fda_nsde: id, name, d"):
        query(lake, "SELECT nosuchcol FROM $B")


def test_show_and_describe(lake: Path) -> None:
    assert query(lake, "SHOW TABLES IN pp_dw_bronze").rows == [("fda_nsde",)]
    assert query(lake, "SHOW TABLES").rows == [("pp_dw_bronze.fda_nsde",), ("pp_dw_gold.model_a",)]
    assert query(lake, "SHOW DATABASES").rows == [("pp_dw_bronze",), ("pp_dw_gold",)]
    described = query(lake, "DESCRIBE pp_dw_gold.model_a")
    assert described.columns == ["col_name", "data_type", "comment"]
    assert [r[:2] for r in described.rows] == [
        ("k", "varchar"),
        ("v", "bigint"),
        ("m", "map(varchar, bigint)"),
        ("loaded_at", "timestamp"),
    ]


def test_local_catalog_lists_both_layers_and_ignores_litter(lake: Path) -> None:
    catalog = local_catalog(lake, NAMING)
    assert [(t.database, t.table, t.files) for t in catalog] == [
        ("pp_dw_bronze", "fda_nsde", 2),
        ("pp_dw_gold", "model_a", 1),
    ]
    bronze, gold = catalog
    assert isinstance(bronze, TableInfo)
    assert bronze.path == lake / "bronze" / "fda_nsde"
    assert gold.path == lake / "gold" / "fda_nsde" / "model_a"
    parquet = sorted(bronze.path.glob("part-*.parquet"))
    assert bronze.bytes == sum(p.stat().st_size for p in parquet)


def test_connect_makes_a_schema_per_database_and_a_view_per_table(lake: Path, tmp_path: Path) -> None:
    con = connect(lake, NAMING)
    try:
        assert con.sql(f"SELECT count(*) FROM {B}").fetchone() == (4,)
        assert con.sql(f"SELECT count(*) FROM {G}").fetchone() == (2,)
    finally:
        con.close()
    empty = connect(tmp_path, NAMING)
    try:
        schemas = {r[0] for r in empty.sql("SELECT schema_name FROM information_schema.schemata").fetchall()}
        assert {"pp_dw_bronze", "pp_dw_gold"} <= schemas
    finally:
        empty.close()


def test_translate_fixes_what_sqlglot_gets_wrong() -> None:
    # whole days elapsed (DuckDB's date_sub), not boundaries crossed (date_diff)
    assert "DATE_SUB('day'" in translate("SELECT date_diff('day', a, b) FROM t")
    # a DATE stays a DATE
    assert "AS DATE)" in translate("SELECT date_add('day', 1, DATE '2024-01-01')")
    schema = {"db": {"t": {"a": "integer", "b": "integer", "s": "varchar"}}}
    assert "DW_IDIV" in translate("SELECT a / b FROM db.t", schema)  # exact, and 1 / 0 raises as in Trino
    assert "REGEXP_FULL_MATCH" in translate("SELECT try_cast(s AS integer) FROM db.t", schema)
    assert "approx_count_distinct" not in translate("SELECT approx_distinct(a) FROM db.t", schema).lower()


def test_joda_patterns() -> None:
    assert joda_to_strftime("yyyy-MM-dd'T'HH:mm:ss") == "%Y-%m-%dT%H:%M:%S"
    assert joda_to_strftime("d MMMM yy, h:mm a") == "%-d %B %y, %-I:%M %p"
    with pytest.raises(QueryError, match="not supported"):
        joda_to_strftime("G")


def test_spark_style_table_int96_timestamps_and_partition_folders(tmp_path: Path) -> None:
    folder = tmp_path / "bronze" / "events" / "year=2024"
    folder.mkdir(parents=True)
    at = pa.array([datetime(2024, 1, 2, 3, 4, 5)], pa.timestamp("us"))
    table = pa.table({"id": pa.array([1], pa.int64()), "at": at})
    pq.write_table(table, folder / "part-0.parquet", use_deprecated_int96_timestamps=True)
    result = run_query("SELECT * FROM pp_dw_bronze.events", tmp_path, NAMING)
    assert result.columns == ["id", "at", "year"]
    assert result.types == ["bigint", "timestamp", "varchar"]  # partition keys are strings, as crawled
    assert_rows(result.rows, [(1, datetime(2024, 1, 2, 3, 4, 5), "2024")])


def test_two_gold_datasets_with_one_model_name_are_refused(tmp_path: Path) -> None:
    for dataset in ("a", "b"):
        folder = tmp_path / "gold" / dataset / "model_x"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"v": [1]}), folder / "part-0.parquet")
    with pytest.raises(QueryError, match="two folders make the table pp_dw_gold.model_x"):
        connect(tmp_path, NAMING)


# ---------------------------------------------------------------- the Trino corpus

CORPUS_FILE = Path(__file__).with_name("trino_corpus.yaml")
CITATION = re.compile(r"^(docs:[\w/.-]+\.html(#[\w-]+)?|(test|src):[\w/.-]+(#\w+)?)( \(.+\))?$")
P = "pp_dw_bronze.precise"


def _corpus() -> list:
    data = yaml.safe_load(CORPUS_FILE.read_text())
    cases = []
    for kind, entries in data.items():
        for number, case in enumerate(entries, 1):
            marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else []
            cases.append(pytest.param(case, id=f"{kind}-{number:02d}", marks=marks))
    return cases


CORPUS = _corpus()


@pytest.fixture(scope="module")
def corpus_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test lake plus a table of microsecond timestamps, which Athena reads as timestamp(3)."""
    root = build_lake(tmp_path_factory.mktemp("corpus") / "lake")
    folder = root / "bronze" / "precise"
    folder.mkdir(parents=True)
    micros = [datetime(2024, 1, 2, 3, 4, 5, 123456)]
    table = pa.table(
        {
            "ts": pa.array(micros, pa.timestamp("us")),
            "ts_up": pa.array([datetime(2024, 1, 2, 3, 4, 5, 123500)], pa.timestamp("us")),
            "ts_ms": pa.array([datetime(2024, 1, 2, 3, 4, 5, 123000)], pa.timestamp("us")),
        }
    )
    pq.write_table(table, folder / "part-0.parquet")
    return root


def test_the_corpus_is_large_cited_and_covers_every_kind() -> None:
    data = yaml.safe_load(CORPUS_FILE.read_text())
    assert len(CORPUS) >= 300
    assert set(data) == {
        "decimal",
        "dropped_arguments",
        "same_name_other_meaning",
        "regexp_replace",
        "time_zones_and_parsing",
        "types",
        "errors_athena_raises",
        "try",
        "missing_functions",
        "output_format",
    }
    for kind, entries in data.items():
        for case in entries:
            assert CITATION.match(case["cite"]), f"{kind}: {case['sql']} cites {case['cite']!r}"
            outcomes = {"value", "row", "rows", "error", "refused"} & set(case)
            assert len(outcomes) == 1, f"{kind}: {case['sql']} needs one expected outcome"


@pytest.mark.parametrize("case", CORPUS)
def test_trino_corpus(corpus_lake: Path, case: dict) -> None:
    sql = case["sql"].replace("$B", B).replace("$G", G).replace("$P", P)
    if "refused" in case or "error" in case:
        with pytest.raises(QueryError) as raised:
            run_query(sql, corpus_lake, NAMING)
        message = str(raised.value)
        if "refused" in case:
            assert "not supported locally" in message and case["refused"] in message, message
        else:
            assert re.search(case["error"], message), message
            assert "not supported locally" not in message, message
        return
    result = run_query(sql, corpus_lake, NAMING)
    rendered = [[athena_text(v, t) for v, t in zip(row, result.types, strict=True)] for row in result.rows]
    expected = case.get("rows") or ([case["row"]] if "row" in case else [[case["value"]]])
    assert rendered == expected
    types = case.get("types") or ([case["type"]] if "type" in case else None)
    if types is not None:
        assert result.types == types


# ---------------------------------------------------------------- through the real `dw` entry point

_DW_SCRIPT = Path(sys.executable).with_name("dw")
DW = [str(_DW_SCRIPT)] if _DW_SCRIPT.is_file() else [sys.executable, "-m", "dw.cli"]


def run_dw(project: Path, lake: Path, *args: str) -> subprocess.CompletedProcess:
    env = _env()  # the caller's environment less what would change dw's output (colour, JVM notes, DW_*)
    return subprocess.run(
        [*DW, "query", "--lake", str(lake), *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def test_csv_output_is_athenas(project_copy: Path, corpus_lake: Path) -> None:
    sql = (
        "SELECT active, tags, price, ts, from_iso8601_timestamp('2024-05-06T07:08:09Z') AS z, "
        "INTERVAL '2' DAY + INTERVAL '3' HOUR AS i, x, name FROM $B WHERE id IN (1, 3) ORDER BY id"
    ).replace("$B", B)
    result = run_dw(project_copy, corpus_lake, "--format", "csv", sql)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "active,tags,price,ts,z,i,x,name",
        'true,"[a, b, c]",12.50,2024-01-31 23:30:00.000,2024-05-06 07:08:09.000 UTC,2 03:00:00.000,2.5, Alpha ',
        ",,,,2024-05-06 07:08:09.000 UTC,2 03:00:00.000,,",
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 1 / 0", "Division by zero"),
        ("SELECT ARRAY[1, 2][3]", "Array subscript must be less than or equal to array length: 3 > 2"),
        ("SELECT '1' = 1", "Cannot apply operator"),
        ("SELECT array_sort(ARRAY[3, 1], (a, b) -> 1)", "not supported locally"),
        ("SELECT CAST('ab' AS char(4))", "char(n) type is not supported locally"),
    ],
)
def test_errors_exit_1_in_one_paragraph_without_traceback(
    project_copy: Path, corpus_lake: Path, sql: str, message: str
) -> None:
    result = run_dw(project_copy, corpus_lake, sql)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stdout == ""
