"""The bronze transforms, one rule at a time, on local[1] Spark."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from dwlib import transform
from dwlib.config import DatasetConfig

pytestmark = pytest.mark.spark
RUN = "20260101T000000Z"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Marketing Start Date", "marketing_start_date"),
        ("ProductNDC", "product_ndc"),
        ("NDC11", "ndc11"),
        ("  Price ($) ", "price"),
        ("HTTPStatusCode", "http_status_code"),
        ("2nd Line", "c_2nd_line"),
        ("a.b-c", "a_b_c"),
    ],
)
def test_clean_name(raw, clean):
    assert transform.clean_name(raw) == clean


def test_clean_names_are_unique_in_sorted_order_of_their_text():
    # Numbered by their text, never their place: the same headers in another order get the same names. The name
    # already spelled as its clean name keeps it; the others follow in sorted order (`NAME` < `Name`).
    assert transform.clean_names(["Name", "name", "NAME", "", "meta_run_id"]) == [
        "name_3",
        "name",
        "name_2",
        "column_4",
        "meta_run_id_2",
    ]


def test_clean_names_never_take_the_jobs_own_columns():
    names = transform.clean_names(["Reject Reason", "meta_source_file", "meta_ingested_at", "Meta Run ID"])
    assert names == ["reject_reason_2", "meta_source_file_2", "meta_ingested_at_2", "meta_run_id_2"]
    assert not set(names) & {*transform.META_COLUMNS, transform.REJECT_REASON}


def test_renamed_columns_lists_only_renames_beyond_cleaning():
    originals = ["Order ID", "A b", "a_b", "x", "x", ""]
    assert transform.renamed_columns(originals, transform.clean_names(originals)) == {
        "A b": "a_b_2",
        "x (column 5)": "x_2",
        "": "column_6",
    }


@pytest.mark.parametrize(
    ("head", "options", "truncated", "header"),
    [
        (b"\xef\xbb\xbfid,name\n1,a\n", {}, False, ["id", "name"]),  # a UTF-8 BOM
        (b'\n\n"a,b",c,"d ""q"""\r\n1,2,3\r\n', {}, False, ["a,b", "c", 'd "q"']),  # blank lines, quoting
        (b'"multi\nline",x\n', {}, False, ["multi\nline", "x"]),
        (b"a;b\n", {"delimiter": ";"}, False, ["a", "b"]),
        (b"caf\xe9;b\n", {"delimiter": ";", "encoding": "ISO-8859-1"}, False, ["caf\u00e9", "b"]),
        (b"", {}, False, []),  # an empty file
        (b"a,b,c", {}, True, None),  # the first record runs past the bytes read: ask Spark instead
        (b"a,b\n1,2", {}, True, ["a", "b"]),
        (b"a,b\n", {"encoding": "no-such-charset"}, False, None),
    ],
)
def test_parse_header_reads_the_first_record_as_spark_would(head, options, truncated, header):
    from dwlib.config import CsvOptions

    assert transform.parse_header(head, CsvOptions(**options), truncated=truncated) == header


def config(**extra) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"dataset": "tests", "description": "t", "data_size_category": "small", "landing": True, **extra}
    )


def run(spark, tmp_path, text: str, cfg: DatasetConfig):
    path = tmp_path / "input.csv"
    path.write_text(text)
    source = transform.read_source(spark, [str(path)], "csv", cfg.csv)
    inferred = None
    names = transform.clean_names(transform.data_columns(source))
    if any(n not in cfg.columns for n in names):
        inferred = transform.infer_types(spark, [str(path)], cfg.csv, names)
    df, names = transform.prepare(
        source, cfg, run_id=RUN, ingested_at=datetime(2026, 1, 1, tzinfo=UTC), inferred=inferred
    )
    kept = [r.asDict() for r in transform.kept_rows(df, names).collect()]
    rejected = [r.asDict() for r in transform.rejected_rows(df, names).collect()]
    return kept, rejected


def test_declared_types_are_cast_and_bad_values_rejected(spark, tmp_path):
    cfg = config(
        columns={"id": "int", "price": "decimal(10,2)", "day": "date:yyyyMMdd", "ok": "boolean", "at": "timestamp"}
    )
    kept, rejected = run(
        spark,
        tmp_path,
        "Id,Price,Day,OK,At\n"
        "1,1.50,20240131,true,2024-01-31 10:00:00\n"
        "2,abc,20240230,yes,2024-01-31T10:00:00\n"
        "3.5,2,20240101,maybe,\n"
        " 4 ,,,,\n",
        cfg,
    )
    assert [r["id"] for r in kept] == [1, 4]
    first = kept[0]
    assert first["price"] == Decimal("1.50") and first["day"] == date(2024, 1, 31) and first["ok"] is True
    assert first["at"] == datetime(2024, 1, 31, 10, 0)
    assert kept[1] == {**kept[1], "price": None, "day": None, "ok": None, "at": None}  # empty is null, not an error
    reasons = {r["id"]: r["reject_reason"] for r in rejected}
    assert reasons["2"] == "price: not a valid decimal(10,2); day: not a valid date:yyyyMMdd"
    assert reasons["3.5"] == "id: not a valid int; ok: not a valid boolean"  # 3.5 is not silently truncated to 3
    assert rejected[0]["price"] in ("abc", "2")  # quarantine keeps the values as they arrived


def typed_rows(df, cfg: DatasetConfig) -> tuple[dict, dict]:
    """({id: row} kept, {id: reason} rejected) of a source frame typed by `prepare`."""
    typed, names = transform.prepare(df, cfg, run_id=RUN, ingested_at=datetime(2026, 1, 1, tzinfo=UTC))
    kept = {r["id"]: r.asDict() for r in transform.kept_rows(typed, names).collect()}
    rejected = {int(r["id"]): r["reject_reason"] for r in transform.rejected_rows(typed, names).collect()}
    return kept, rejected


def test_a_typed_source_is_kept_only_where_the_cast_loses_nothing(spark):
    """JSON and Parquet values come typed: a cast would truncate 2.7, wrap 3000000000, round 12.345 and make 2
    true; such a row is rejected, and a value the declared type holds exactly (2.0 as 2) is kept."""
    source = spark.createDataFrame(
        [
            (1, 2.0, 7, 12.34, 1, datetime(2024, 1, 15)),
            (2, 2.7, 7, 12.34, 0, datetime(2024, 1, 15)),
            (3, 2.0, 3000000000, 12.34, 0, datetime(2024, 1, 15)),
            (4, 2.0, 7, 12.345, 0, datetime(2024, 1, 15)),
            (5, 2.0, 7, 1e20, 0, datetime(2024, 1, 15)),
            (6, 2.0, 7, 12.34, 2, datetime(2024, 1, 15)),
            (7, 2.0, 7, 12.34, -1, datetime(2024, 1, 15)),
            (8, 2.0, 7, 12.34, 0, datetime(2024, 1, 15, 10, 0)),
        ],
        "id long, big double, n long, amt double, b long, d timestamp",
    )
    cfg = config(
        columns={"id": "bigint", "big": "bigint", "n": "int", "amt": "decimal(10,2)", "b": "boolean", "d": "date"}
    )
    kept, rejected = typed_rows(source, cfg)

    assert kept == {1: {**kept[1], "big": 2, "n": 7, "amt": Decimal("12.34"), "b": True, "d": date(2024, 1, 15)}}
    assert rejected == {
        2: "big: not a valid bigint",
        3: "n: not a valid int",
        4: "amt: not a valid decimal(10,2)",
        5: "amt: not a valid decimal(10,2)",
        6: "b: not a valid boolean",
        7: "b: not a valid boolean",
        8: "d: not a valid date",  # the time of day is not dropped
    }


def test_decimal_places_are_counted_in_the_value_not_in_the_texts_shape(spark):
    """An exponent or a long tail hides places a cast would round away; `1.234E+1` is exactly 12.34."""
    rows = [  # id, decimal(10,2), decimal(38,2), decimal(38,0)
        ("0", "1E-31", "1E-5", "5E-1"),
        ("1", "0.0000000000000000000000000000004", "5E-3", "1.5E+0"),
        ("2", "1.234E+1", "1.5E-2", "1.234E+1"),
        ("3", "1.2300000000000000000000000000000", "1.234E+1", "1.5E+1"),
        ("4", "0.0000000000000000000000000000000", "12.5E-1", "1230E-1"),
        ("5", "1E+7", "1E+3", "1E+3"),
        ("6", "100E-2", "100E-2", "100E-2"),
        ("7", "0E-9", "-0E-40", "+0.000E+5"),
    ]
    source = spark.createDataFrame(rows, "id string, a string, b string, c string")
    cfg = config(columns={"id": "int", "a": "decimal(10,2)", "b": "decimal(38,2)", "c": "decimal(38,0)"})
    kept, rejected = typed_rows(source, cfg)

    a, b, c = (f"{n}: {t}: more than {s} decimal places" for n, t, s in [
        ("a", "decimal(10,2)", 2), ("b", "decimal(38,2)", 2), ("c", "decimal(38,0)", 0)])  # fmt: skip
    assert rejected == {0: f"{a}; {b}; {c}", 1: f"{a}; {b}; {c}", 2: f"{b}; {c}"}
    assert {i: (str(r["a"]), str(r["b"]), str(r["c"])) for i, r in kept.items()} == {
        3: ("1.23", "12.34", "15"),
        4: ("0.00", "1.25", "123"),
        5: ("10000000.00", "1000.00", "1000"),
        6: ("1.00", "1.00", "1"),
        7: ("0.00", "0.00", "0"),
    }


def _computed_only_where_asked(spark_column):
    """A test whose parts repeat (as the exact places test's translated text and regex groups do) and that fails the
    query if any row computes them: where Spark computes a repeated part for every row, every row fails."""
    costly = F.coalesce(F.raise_error(F.lit("computed for a row its guard excludes")).cast("string"), spark_column)
    return F.length(costly) + F.length(costly) > 0


def test_a_guarded_test_is_computed_only_for_the_rows_its_guard_lets_through(spark):
    """Spark's subexpression elimination computes the repeated parts of an AND's right side for every row before
    the left side is tested; `_only_where` computes them only where the guard holds."""
    df = spark.createDataFrame([("a",), (None,)], "s string")
    guard, test = F.col("s") == "zzz", _computed_only_where_asked(F.col("s"))
    with pytest.raises(Exception, match="computed for a row its guard excludes"):
        df.select((guard & test).alias("c")).collect()  # what `_only_where` is for
    assert [r["c"] for r in df.select(transform._only_where(guard, test).alias("c")).collect()] == [False, False]


def test_the_exact_decimal_places_test_runs_only_on_text_that_could_round(spark, monkeypatch):
    """The exact test (translated digits, three regex groups) cost 0.6 s of a 7 s run on 3 M decimals when Spark
    computed it for every row; only text with more places than the scale, or an exponent, can round."""
    monkeypatch.setattr(transform, "_decimal_places", lambda text: F.when(_computed_only_where_asked(text), 9))
    source = spark.createDataFrame([("1", "12.50"), ("2", None), ("3", "7"), ("4", "x")], "id string, a string")
    kept, rejected = typed_rows(source, config(columns={"id": "int", "a": "decimal(10,2)"}))
    assert sorted(kept) == [1, 2, 3] and rejected == {4: "a: not a valid decimal(10,2)"}
    suspect = spark.createDataFrame([("1", "12.505")], "id string, a string")
    with pytest.raises(Exception, match="computed for a row its guard excludes"):
        typed_rows(suspect, config(columns={"id": "int", "a": "decimal(10,2)"}))


def test_a_date_timestamp_or_double_a_cast_would_invent_is_rejected(spark):
    """A cast reads `2024` as 2024-01-01, drops a date's time, takes a time alone as today's, cuts a 7th
    fractional digit, and makes 1e400 infinite and 1e-400 zero: such a row is rejected, the exact ones kept."""
    rows = [  # id, date, timestamp, double
        ("0", "2024-01-15", "2024-01-15 10:00:00", "1.5"),
        ("1", "+2024-02-29", "2024-01-15T10:00:00.123456", "Infinity"),
        ("2", "2024-1-5", "2024-01-15", "-inf"),
        ("3", "2024", "10:00:00", "1e400"),
        ("4", "2024-03", "T10:00:00", "-1e400"),
        ("5", "2024-01-15T10:00:00", "2024", "1e-400"),
        ("6", "2024-01-15 23:59:59", "2024-03", "-4.9e-325"),
        ("7", "0001-01-01", "2024-01-15 10:00:00.1234567", "0.0e-400"),
        ("8", "1899-12-30", "2024-01-15 10:00:00.1234560", "-0"),
    ]
    source = spark.createDataFrame(rows, "id string, d string, ts string, x string")
    cfg = config(columns={"id": "int", "d": "date", "ts": "timestamp", "x": "double"})
    kept, rejected = typed_rows(source, cfg)

    d, ts, x = "d: not a valid date", "ts: not a valid timestamp", "x: not a valid double"
    assert rejected == {3: f"{d}; {ts}; {x}", 4: f"{d}; {ts}; {x}", 5: f"{d}; {ts}; {x}", 6: f"{d}; {ts}; {x}", 7: ts}
    got = {i: (str(r["d"]), str(r["ts"]), r["x"]) for i, r in kept.items()}
    assert got == {
        0: ("2024-01-15", "2024-01-15 10:00:00", 1.5),
        1: ("2024-02-29", "2024-01-15 10:00:00.123456", float("inf")),
        2: ("2024-01-05", "2024-01-15 00:00:00", float("-inf")),
        8: ("1899-12-30", "2024-01-15 10:00:00.123456", 0.0),
    }


def test_primary_key_keeps_the_first_row_in_source_order(spark, tmp_path):
    cfg = config(columns={"id": "int"}, primary_key=["id"])
    kept, rejected = run(spark, tmp_path, "id,v\n1,first\n2,x\n1,second\n,orphan\n1,third\n", cfg)
    assert sorted((r["id"], r["v"]) for r in kept) == [(1, "first"), (2, "x")]
    assert sorted((r["v"], r["reject_reason"]) for r in rejected) == [
        ("orphan", "id: primary key is null"),
        ("second", "duplicate primary key"),
        ("third", "duplicate primary key"),
    ]


def test_a_broken_first_row_does_not_cost_the_valid_duplicate(spark, tmp_path):
    cfg = config(columns={"id": "int", "n": "int"}, primary_key=["id"])
    kept, rejected = run(spark, tmp_path, "id,n\n1,oops\n1,5\n", cfg)
    assert [(r["id"], r["n"]) for r in kept] == [(1, 5)]
    assert [r["reject_reason"] for r in rejected] == ["n: not a valid int"]


def test_quality_rules(spark, tmp_path):
    cfg = config(
        columns={"code": "string", "kind": "string", "n": "int"},
        quality={"not_null": ["code"], "unique": ["code"], "accepted_values": {"kind": ["a", "b"]}},
    )
    kept, rejected = run(spark, tmp_path, "code,kind,n\nx,a,1\n,b,2\ny,c,3\nx,b,4\nz,,5\n", cfg)
    assert sorted(r["n"] for r in kept) == [1, 5]  # a null kind is not a rejected value
    assert sorted((r["n"], r["reject_reason"]) for r in rejected) == [
        ("2", "code: null (not_null rule)"),
        ("3", "kind: not an accepted value"),
        ("4", "code: not unique"),
    ]


def test_null_values_and_meta_columns(spark, tmp_path):
    cfg = config(csv={"null_values": ["", "NA", "-"]}, columns={"n": "int"})
    kept, _ = run(spark, tmp_path, "n,s\nNA,-\n7,ok\n", cfg)
    assert [(r["n"], r["s"]) for r in kept] == [(None, None), (7, "ok")]
    assert {r["meta_run_id"] for r in kept} == {RUN}
    assert {r["meta_source_file"] for r in kept} == {"input.csv"}
    assert list(kept[0]) == ["n", "s", "meta_run_id", "meta_ingested_at", "meta_source_file"]


def test_undeclared_columns_are_inferred(spark, tmp_path):
    kept, rejected = run(spark, tmp_path, "a,b,c\n1,2.5,x\n2,3.5,y\n", config())
    assert rejected == []
    assert kept[0] == {**kept[0], "a": 1, "b": 2.5, "c": "x"}


def test_rows_in_equal_kept_plus_rejected(spark, tmp_path):
    lines = ["id,v"] + [f"{i % 50},{'x' if i % 7 else 'bad'}" for i in range(200)]
    cfg = config(columns={"id": "int"}, primary_key=["id"], quality={"accepted_values": {"v": ["x"]}})
    kept, rejected = run(spark, tmp_path, "\n".join(lines) + "\n", cfg)
    assert len(kept) + len(rejected) == 200
    assert len({r["id"] for r in kept}) == len(kept)


def _plan(df) -> str:
    return df._jdf.queryExecution().executedPlan().toString()


def test_the_duplicate_check_never_sorts_whole_rows(spark, tmp_path):
    """The key check reads only the key to learn whether any key repeats; with none, the plan is the plain scan."""
    cfg = config(columns={"id": "bigint", "n": "int"}, primary_key=["id"], quality={"unique": ["n"]})
    path = tmp_path / "input.csv"
    path.write_text("id,n,text\n" + "".join(f"{i},{i},row {i}\n" for i in range(300)))
    source = transform.read_source(spark, [str(path)], "csv", cfg.csv)
    df, names = transform.prepare(source, cfg, run_id=RUN, ingested_at=datetime(2026, 1, 1, tzinfo=UTC))
    plan = _plan(transform.kept_rows(df, names))
    assert "Window" not in plan and "Exchange" not in plan and "Sort" not in plan
    assert len(transform.kept_rows(df, names).collect()) == 300


@pytest.mark.parametrize("small_input", [False, True], ids=["aggregate-and-join", "window"])
def test_repeated_keys_across_partitions_keep_the_first_clean_row_in_source_order(spark, tmp_path, small_input):
    """Several read partitions, a two-column key, type rejects among the repeats: the first clean row wins."""
    cfg = config(columns={"a": "int", "b": "string", "n": "int"}, primary_key=["a", "b"])
    rows = [(str(i % 17), "xy"[i % 2], "bad" if i % 11 == 0 else str(i)) for i in range(400)]  # "bad": a type reject
    path = tmp_path / "input.csv"
    path.write_text("a,b,n\n" + "".join(f"{a},{b},{n}\n" for a, b, n in rows))
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1000")  # ~4 KB of CSV: several partitions
    try:
        source = transform.read_source(spark, [str(path)], "csv", cfg.csv)
        assert source.rdd.getNumPartitions() > 2
        typed, names = transform.prepare_types(source, cfg, run_id=RUN, ingested_at=datetime(2026, 1, 1, tzinfo=UTC))
        df = transform.check_rules(typed, cfg, small_input=small_input)
        kept = sorted((r["a"], r["b"], r["n"]) for r in transform.kept_rows(df, names).collect())
        rejected = sorted((r["n"], r["reject_reason"]) for r in transform.rejected_rows(df, names).collect())
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    first: dict[tuple[str, str], str] = {}
    expected_rejected = []
    for a, b, n in rows:
        if n == "bad":
            expected_rejected.append((n, "n: not a valid int"))
        elif (a, b) in first:
            expected_rejected.append((n, "duplicate primary key"))
        else:
            first[(a, b)] = n
    assert kept == sorted((int(a), b, int(n)) for (a, b), n in first.items())
    assert rejected == sorted(expected_rejected)


def test_a_csv_without_any_quote_is_read_line_by_line_with_no_suspect_check(spark, tmp_path):
    """No quote byte in the file: no quoted line break can split a row, so no per-value quote search runs."""
    from dwlib.config import CsvOptions

    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n1,2\n3\n4,5\n")
    source = transform.read_input(spark, [str(plain)], "csv", CsvOptions())
    assert not source.line_mode_guess and transform.SUSPECT not in source.df.columns
    rows = sorted((r["a"], r[transform.MALFORMED]) for r in source.df.collect())
    assert rows == [("1", None), ("3", "malformed: 1 fields, header has 2"), ("4", None)]

    quoted = tmp_path / "quoted.csv"
    quoted.write_text('a,b\n1,"two\nlines"\n')
    assert transform.read_input(spark, [str(quoted)], "csv", CsvOptions()).line_mode_guess


NULL_MARKER_CSV = 'k,s,n\n1,NA,NA\n2,"NA","NA"\n3,,\n4,"",""\n5, NA,na\n6,-,-\n7,x,7\n'


@pytest.mark.parametrize("markers", [["", "NA"], ["NA", "-"], ["-", "NA", ""]])
def test_null_markers_quoted_or_not_read_as_bronze_reads_them(spark, tmp_path, markers):
    """A marker is null quoted or not; an empty field, quoted or not, is null; a marker with a space or
    another case is a value. Pinned for the bronze path, where the CSV reader turns markers into null."""
    cfg = config(csv={"null_values": markers}, columns={"k": "int", "s": "string", "n": "int"})
    path = tmp_path / "input.csv"
    path.write_text(NULL_MARKER_CSV)
    read = transform.read_input(spark, [str(path)], "csv", cfg.csv)
    typed, names = transform.prepare_types(
        read.df, cfg, run_id=RUN, ingested_at=datetime(2026, 1, 1, tzinfo=UTC), csv_source=True, encoding="utf-8"
    )
    checked = transform.check_rules(typed, cfg)
    kept = {r["k"]: (r["s"], r["n"]) for r in transform.kept_rows(checked, names).collect()}
    rejected = {r["k"]: (r["s"], r["n"], r["reject_reason"]) for r in transform.rejected_rows(checked, names).collect()}
    dash = None if "-" in markers else "-"
    assert kept == {1: (None, None), 2: (None, None), 3: (None, None), 4: (None, None), 7: ("x", 7)} | (
        {6: (None, None)} if dash is None else {}
    )
    assert rejected == {"5": (" NA", "na", "n: not a valid int")} | (
        {} if dash is None else {"6": ("-", "-", "n: not a valid int")}
    )


def test_the_bronze_write_is_planned_without_the_reason_texts(spark, tmp_path):
    """Every check, and no reason text: the write tests one boolean per row, the quarantine builds the texts."""
    cfg = config(
        columns={"id": "int", "price": "decimal(10,2)", "day": "date:yyyyMMdd", "at": "timestamp", "kind": "string"},
        quality={"not_null": ["kind"], "accepted_values": {"kind": ["a", "b"]}},
    )
    path = tmp_path / "input.csv"
    path.write_text("id,price,day,at,kind\n1,1.50,20240131,2024-01-31 10:00:00,a\nx,1.505,2024,never,c\n")
    source = transform.read_source(spark, [str(path)], "csv", cfg.csv)
    df, names = transform.prepare(
        source, cfg, run_id=RUN, ingested_at=datetime(2026, 1, 1, tzinfo=UTC), encoding="utf-8"
    )
    kept, rejected = transform.kept_rows(df, names), transform.rejected_rows(df, names)
    texts = ["concat_ws(; ", "not a valid", "decimal places", "not an accepted value"]
    assert [t for t in texts if t in _plan(kept)] == []
    assert [t for t in texts if t in _plan(rejected)] == texts
    assert [r["id"] for r in kept.collect()] == [1]
    [reason] = [r["reject_reason"] for r in rejected.collect()]
    assert reason.split("; ") == [
        "id: not a valid int",
        "price: decimal(10,2): more than 2 decimal places",
        "day: not a valid date:yyyyMMdd",
        "at: not a valid timestamp",
        "kind: not an accepted value",
    ]


@pytest.mark.parametrize("small_input", [False, True], ids=["aggregate-and-join", "window"])
def test_every_row_is_kept_or_rejected_and_the_flag_agrees_with_the_reason(spark, tmp_path, small_input):
    """Checks that are unknown (null) for a row reject nothing; no row falls between the kept and the rejected."""
    cfg = config(
        columns={"k": "int", "d": "decimal(38,2)", "n": "double"},
        primary_key=["k"],
        quality={"accepted_values": {"s": ["a"]}},
    )
    values = ["1", "", " ", "1e400", "NaN", "1.999", "-0", "x", "99999999999999999999999999999999999999.99"]
    lines = [f"{i % 7},{v},{v},{'a' if i % 3 else ''}" for i, v in enumerate(values * 4)]
    path = tmp_path / "input.csv"
    path.write_text("k,d,n,s\n" + "\n".join(lines) + "\n")
    source = transform.read_source(spark, [str(path)], "csv", cfg.csv)
    typed, names = transform.prepare_types(source, cfg, run_id=RUN, ingested_at=datetime(2026, 1, 1, tzinfo=UTC))
    df = transform.check_rules(typed, cfg, small_input=small_input)
    rows = df.select(transform.REJECTED, transform.REJECT_REASON).collect()
    assert all(r[0] is (r[1] is not None) for r in rows)
    kept, rejected = transform.kept_rows(df, names).count(), transform.rejected_rows(df, names).count()
    assert kept + rejected == len(lines) and 0 < kept < len(lines)


FORMATS = [
    "yyyy-MM-dd'T", "yyyy-MMMMM-dd", "ddd.MM.yyyy", "yyyyyyy-MM-dd", "dd.MM.yyyy aa", "yyyy#MM#dd", "yyyy-MM-dd{x}",
    "YYYY-MM-dd", "yyyy-ww", "EEE, d MMM yyyy", "yyyy-MM-ddTHH:mm", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
    "MMM d, yyyy h:mm a", "yyyy-DDD", "yyyy-MM-dd HH:mm:ss.SSSSSS", "[ HH:mm]", "yyyy-MM-dd HH:mm:ss z", "yy",
    "MMMM d, yyyy", "yyyy-MM-dd'T'HH:mm:ss VV", "yyyyyy-MM", "SSSSSSSSS", "zzzz", "OOOO", "XXXXX", "ZZZZZ",
    "GGGG yyyy", "kk:mm", "KK", "dd/MM/yyyy", "yyyyMMdd", "''yyyy''",
]  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
def test_dw_validate_refuses_a_date_format_exactly_when_spark_does(spark, fmt):
    """Spark's own parser is the oracle: a format dw validate passes must parse, one it refuses must not."""
    from pyspark.sql import functions as F

    from dwlib.config import _format_problem

    try:
        spark.createDataFrame([("2024-01-02",)], "s string").select(F.to_timestamp("s", fmt)).collect()
        spark_parses = True
    except Exception:  # noqa: BLE001 - any refusal of the pattern
        spark_parses = False
    assert (_format_problem(fmt) is None) == spark_parses, _format_problem(fmt)


@pytest.mark.parametrize(
    "other", ["first name", "first-name", "first.name", " first_name", "First_Name", "FirstName", "first_name "]
)
def test_a_name_spelled_as_its_clean_name_keeps_it_whatever_sorts_first(other):
    # `first name` sorts before `first_name`: it took the name, and a declared `first_name` took its data.
    assert transform.clean_names(["first_name", other]) == ["first_name", "first_name_2"]
    assert transform.clean_names([other, "first_name"]) == ["first_name_2", "first_name"]
    assert transform.clean_names(["plan", "Plan "]) == ["plan", "plan_2"]
    assert transform.clean_names(["a b", "a,b", "a_b"]) == ["a_b_2", "a_b_3", "a_b"]


def test_contested_names_are_declared_names_only_other_spellings_clean_to():
    names = ["first name", "First-Name", "plan", "Plan ", "a b"]
    columns = list(zip(names, transform.clean_names(names), strict=True))
    assert transform.contested_names(columns, ["first_name", "plan", "a_b", "x"]) == {
        "first_name": ["First-Name", "first name"]
    }
    # One column spelled two ways in two files (matched as one) is no contest.
    assert (
        transform.contested_names([("Unit Price", "unit_price"), (" unit price", "unit_price")], ["unit_price"]) == {}
    )


def test_names_longer_than_glue_allows_are_cut_with_a_hash_and_stay_unique():
    # A 300-character attribute, or a long flattened path, became a bronze column Glue refuses (255 at most).
    long, other, path = "attr" + "x" * 296, "attr" + "x" * 295 + "y", "address." + "n" * 130 + "." + "m" * 130
    names = transform.clean_names([long, other, path, long + "!", "id"])
    assert all(len(n) <= 255 for n in names) and len(set(names)) == 5
    assert names[0].startswith("attr" + "x" * 200) and names[0] != names[1]
    assert names[2].startswith("address_" + "n" * 130 + "_m")
    assert names[3] == names[0][:253] + "_2"  # the same clean name: numbered, still 255 at most
    assert names[4] == "id"
    assert transform.clean_names([long]) == names[:1]  # the same name in any run
