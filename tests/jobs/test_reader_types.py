"""A large CSV's declared int, bigint, boolean and plain-format date and timestamp columns are typed by Spark's CSV
reader, as a bare Spark job types them, and only a record the reader cannot type is typed from its text. The
output must be the one typing every column from text gives: the same kept values, the same reject reasons,
the same quarantine (original text) and run summary. These tests put hostile values through both paths."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from dwlib import bronze, transform
from dwlib.config import DatasetConfig
from tests.jobs.test_iceberg import RUN1, RUN2, RUN3, RUN4, Shop

pytestmark = [pytest.mark.spark]

HOSTILE = [
    "7", " 7", "7 ", "\t7", "7\t", " 7 ", "+7", "-7", "007", "-0", "+-7", "--7",
    "2147483647", "2147483648", "-2147483648", "-2147483649",
    "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "1e3", "1E3", "1.5", "1.", ".5", "12.0", "1.5e1", "1.0E400", "4.9e-325", "-1e-400",
    "0x10", "0X1p3", "1d", "1f", "1D", "1F", "1L", "0.1f", "1_000", "1,000", '"1,000"', "1 000",
    "NaN", "nan", "NAN", "-NaN", "Inf", "inf", "INF", "-Inf", "+Inf", "-inf",
    "Infinity", "-Infinity", "+Infinity", "infinity", "INFINITY",
    "\u0661\u0662", "\uff11\uff12", "\u0967", "-\u0661", "+\uff11", "1\u0662", "\u0661.\u0665", "\u0661e\u0662",
    "\u00a07", "7\u00a0", "\u20077", "\u2007", "\u00b2", "\u2460",
    "", '""', "NA", '"NA"', " NA", "NA ", "na", '"', '"7"', '"7', '7"', "7\"7", "'7'",
    "true", "false", "TRUE", "False", "tRuE", " true", "true ", "t", "f", "yes", "no", "y", "n", "1", "0", "on",
    "-", "+", ".", "e", "1e", "x", "12abc",
]  # fmt: skip
RUNS = [RUN1, RUN2, RUN3, RUN4]
TYPES = ["int", "bigint", "boolean"]


def _config(columns: dict[str, str], **extra) -> DatasetConfig:
    document = {
        "dataset": "hostile",
        "description": "hostile values",
        "data_size_category": "small",
        "landing": True,
        "format": "csv",
        "columns": columns,
        "csv": {"null_values": ["", "NA"]},
    }
    document.update(extra)
    return DatasetConfig.model_validate(document)


def _both_paths(spark, path, config) -> tuple[dict, dict, dict]:
    """{id: (values, reason)} typed by the reader (where it can), and typed from text; and what the reader did.

    Records flagged doubtful (their raw text may not split into their fields) are left out of the first: for
    those bronze types the whole run from text (test_a_doubtful_record_types_the_whole_run_from_text).
    """
    found = []
    for reader in (transform.reader_types(config), {}):
        read = transform.read_input(spark, [str(path)], "csv", config.csv, reader)
        typed, names = transform.prepare_types(
            read.df,
            config,
            run_id="r",
            ingested_at=datetime(2026, 1, 1, tzinfo=UTC),
            csv_source=True,
            encoding="utf-8",
            reader_typed=read.typed,
        )
        # A date as text: Python's dates have no year 0 or below, Spark's do.
        dates = {f.name for f in typed.schema.fields if f.dataType.typeName() in ("date", "timestamp")}
        values = [F.col(n).cast("string").alias(n) if n in dates else F.col(n) for n in names]
        rows = typed.select(*values, transform.REJECT_REASON).collect()
        found.append({r["id"]: (tuple(r[n] for n in names[1:]), r[transform.REJECT_REASON]) for r in rows})
        if reader:
            typed_by_reader = read.typed
            # Every column is read (a query of fewer would let the reader parse only those).
            raw = read.df.select(*[F.col(c).cast("string") if c in dates else F.col(c) for c in read.df.columns])
            raw = raw.collect()
            untyped = {r["id"] for r in raw if r[transform.SPLIT] is not None}
            doubtful = {r["id"] for r in raw if r[transform.DOUBTFUL]}
    fast = {k: v for k, v in found[0].items() if k not in doubtful}
    text = found[1]
    return (
        fast,
        {k: v for k, v in text.items() if k not in doubtful},
        {"typed": typed_by_reader, "untyped": untyped, "doubtful": doubtful, "text": text, "path": path},
    )


def _same(fast: dict, text: dict) -> None:
    # NaN != NaN in Python: compare reprs
    assert {k: repr(v) for k, v in fast.items()} == {k: repr(v) for k, v in text.items()}


@pytest.mark.parametrize("ctype", TYPES)
def test_reader_typing_gives_the_text_paths_value_and_reason_for_every_hostile_value(spark, tmp_path, ctype):
    path = tmp_path / "hostile.csv"
    lines = ["id,v,s", *[f"{i},{v},x{i}" for i, v in enumerate(HOSTILE)]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = _config({"id": "int", "v": ctype, "s": "string"})
    fast, text, how = _both_paths(spark, path, config)
    assert how["typed"] == {"id": "int", "v": ctype}  # the reader did type them: the comparison is not vacuous
    assert 0 < len(how["untyped"]) < len(HOSTILE)
    assert len(text) == len(HOSTILE) and how["doubtful"] == set()
    _same(fast, text)
    got = {HOSTILE[i]: value for i, (value, _) in fast.items()}
    if ctype in ("int", "bigint"):
        # Digits of other scripts are digits, on both paths (Java's parseInt, which the reader uses, says so).
        assert got["\u0661\u0662"][0] == 12 and got["\uff11\uff12"][0] == 12
        assert text[HOSTILE.index("1.5")][1] == f"v: not a valid {ctype}"
        assert text[HOSTILE.index(" 7 ")][0][0] == 7
    if ctype == "boolean":
        assert got["tRuE"][0] is True and got["yes"][0] is True  # `yes`: the text path's cast, the reader refuses
    # The first bytes' guess (read clean first, or with the split) never calls clean a record the reader refused.
    clean = [
        i
        for i, line in enumerate(lines[1:])
        if not transform.untyped_in_heads(
            [f"{lines[0]}\n{line}\n".encode()], config.csv, ["id", "v", "s"], how["typed"]
        )
    ]
    plain = {"int": "-7", "bigint": "9223372036854775807", "boolean": "False"}[ctype]
    assert HOSTILE.index(plain) in clean and how["untyped"].isdisjoint(clean)


def test_every_single_character_reads_as_the_same_integer_on_both_paths(spark, tmp_path):
    """All of the Basic Multilingual Plane, one character a row: the reader's parseInt and the text path agree
    on which characters are digits (the text path's table of digits is Python's; the reader's is Java's)."""
    skip = {ord(c) for c in '\n\r,"'} | set(range(0xD800, 0xE000))
    chars = [chr(c) for c in range(0x10000) if c not in skip]
    path = tmp_path / "chars.csv"
    path.write_text("id,v\n" + "".join(f"{i},{c}\n" for i, c in enumerate(chars)), encoding="utf-8")
    config = _config({"id": "int", "v": "int"})
    fast, text, how = _both_paths(spark, path, config)
    assert how["typed"] == {"id": "int", "v": "int"}
    # The characters whose record's raw text does not split back into it: bronze types such a run from text.
    assert {chars[i] for i in how["doubtful"]} == {"\u0000", "\f", "\uffff"}
    _same(fast, text)
    digits = {chars[i]: v[0][0] for i, v in text.items() if v[0][0] is not None}
    assert digits["7"] == 7 and digits["\u0663"] == 3 and digits["\uff19"] == 9 and len(digits) > 300


# Dates written well and badly, for each plain format the reader is given (`transform._plain_format`).
HOSTILE_DATES = [
    "20260101", "20240229", "20260229", "20261301", "20260132", "20260100", "00000101", "00010101", "99991231",
    "+20260101", "-20260101", "2026010", "202601011", "2026011", " 20260101", "20260101 ", "\t20260101",
    "2026-01-01", "2026-1-1", "2026-01-1", "2026-13-01", "2026-02-30", "2026-04-31", "1582-10-10", "0000-01-01",
    "0001-01-01", "-2026-01-01", "+2026-01-01", "10000-01-01", "+10000-01-01", "2026-01-01T00:00:00",
    "2026-01-01T00:00:00Z", "2026-01-01Z", "2026-01-01+01:00", "2026/01/01", "2026.01.01",
    "01/02/2026", "1/2/2026", "31/12/2026", "12/31/2026", "13/13/2026", "01/02/26", "01-02-2026",
    "2026-01-01 00:00:00", "2026-01-01 23:59:59", "2026-01-01 24:00:00", "2026-01-01 23:59:60",
    "2026-01-01 23:60:00", "2026-01-01 12:00", "2026-01-01 12:00:00.5", "2026-01-01 1:02:03", "2026-01-01  12:00:00",
    "01/02/2026 10:00:00", "12/31/2026 23:59:59", "02/29/2024 00:00:00", "02/29/2026 00:00:00",
    "\u0662\u0660\u0662\u0666\u0660\u0661\u0660\u0661", "\uff12\uff10\uff12\uff16-01-01", "2026-01-01\u00a0",
    "", "NA", '"NA"', "na", "null", "x", "2026", "202601", "January 1, 2026", "1 Jan 2026", '"2026-01-01"',
    # what a cast to timestamp takes, and forms near it
    "2026-01-01T12:30:00", "2026-01-01T12:30", "2026-01-01 12:30:00.123456", "2026-01-01 12:30:00.1234567",
    "2026-01-01T12:30:00Z", "2026-01-01T12:30:00+02:00", "2026-01-01T12:30:00-0130", "2026-01-01 12:30:00 UTC",
    "2026-01-01 12:30:00GMT", "2026-01-01 12:30:00 Europe/Paris", "2026-01-01 12:30:00 PST", "2026-03-29 02:30:00",
    "2026-1-1 1:2:3", "2026-01", "T12:30:00", "12:30:00", "2026-01-01 12", "2026-01-01 12:30:00.", "20260101123000",
    "2026-01-01T12:30:00.5Z", "+2026-01-01 00:00:00", "-0001-01-01 00:00:00", "294248-01-01 00:00:00",
    "31/12/2026 10:00", "2026-01-01 12:30:00\u00a0", "2026-01-01 12:30:00\u2007", " 2026-01-01 12:30:00", "2026-01-01\t12:30:00",
]  # fmt: skip
DATE_FORMATS = ["yyyyMMdd", "yyyy-MM-dd", "dd/MM/yyyy", "MM/dd/yyyy HH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy.MM.dd"]
TEMPORAL = [
    *(f"date:{fmt}" for fmt in DATE_FORMATS),
    "date:yyyy-MM-dd'T'HH:mm:ss",
    "timestamp:yyyy-MM-dd HH:mm:ss",
    "timestamp:yyyyMMddHHmmss",
    "timestamp:dd/MM/yyyy HH:mm",
]
PLAIN = {"yyyyMMdd": "20260101", "yyyy-MM-dd": "2026-01-01", "dd/MM/yyyy": "31/12/2026",
         "MM/dd/yyyy HH:mm:ss": "12/31/2026 23:59:59", "yyyy-MM-dd HH:mm": "2026-01-01 12:00",
         "yyyy.MM.dd": "2026.01.01", "yyyy-MM-dd'T'HH:mm:ss": "2026-01-01T12:30:00", "": "2026-01-01 23:59:59",
         "yyyy-MM-dd HH:mm:ss": "2026-01-01 23:59:59", "yyyyMMddHHmmss": "20260101123000",
         "dd/MM/yyyy HH:mm": "31/12/2026 10:00"}  # fmt: skip


@pytest.mark.parametrize("ctype", TEMPORAL)
def test_reader_typing_of_a_date_or_timestamp_gives_the_text_paths_value_and_reason_for_every_hostile_one(
    spark, tmp_path, ctype
):
    """The reader parses a date or timestamp with the declared format alone (`dateFormat`, `timestampFormat`, no
    fallback) or, without one, as a cast does; where it accepts a text, `to_date(text, format)`, `to_timestamp` or
    the cast gives the same value, and where it does not, the record is typed from text."""
    path = tmp_path / "dates.csv"
    lines = ["id,v,s", *[f"{i},{v},x{i}" for i, v in enumerate(HOSTILE_DATES)]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = _config({"id": "int", "v": ctype, "s": "string"})
    fast, text, how = _both_paths(spark, path, config)
    assert how["typed"] == {"id": "int", "v": ctype}
    assert 0 < len(how["untyped"]) < len(HOSTILE_DATES)
    assert len(text) == len(HOSTILE_DATES) and how["doubtful"] == set()
    _same(fast, text)
    got = {HOSTILE_DATES[i]: value for i, (value, reason) in fast.items() if reason is None and value[0] is not None}
    plain = PLAIN[ctype.partition(":")[2]]
    assert got[plain][0][:10] in ("2026-01-01", "2026-12-31")
    clean = [
        i
        for i, line in enumerate(lines[1:])
        if not transform.untyped_in_heads(
            [f"{lines[0]}\n{line}\n".encode()], config.csv, ["id", "v", "s"], how["typed"]
        )
    ]
    # The first bytes' guess never calls clean a record the reader refused, and calls the plain dates clean.
    assert how["untyped"].isdisjoint(clean) and HOSTILE_DATES.index(plain) in clean
    assert [HOSTILE_DATES[i] for i in clean if fast[i][1] is not None] == []


def test_one_date_format_and_one_timestamp_format_are_read_by_the_reader_the_most_used():
    columns = {
        "a": "date:dd/MM/yyyy",
        "b": "date:yyyyMMdd",
        "c": "date:yyyyMMdd",
        "d": "date",  # no format: the text path's cast takes forms the reader's default parse does not
        "e": "date:yyyy-MM-dd'T'HH:mmXXX",  # a zone: not plain
        "f": "date:MMM d, yyyy",  # month names: not plain
        "g": "timestamp:yyyyMMddHHmm",
        "h": "timestamp",  # no format: the reader's parse, a cast's, takes `12:30:00` as today's; the text path not
        "i": "timestamp",
        "j": "timestamp:yyyy-MM-dd HH:mm:ss.SSS",  # fractions: not plain
        "k": "double",  # the reader takes `1e400` as infinity, the text path rejects it
    }
    assert transform.reader_types(_config(columns)) == {
        "b": "date:yyyyMMdd",
        "c": "date:yyyyMMdd",
        "g": "timestamp:yyyyMMddHHmm",
    }
    alone = {"a": "date:dd/MM/yyyy", "g": "timestamp:yyyyMMddHHmm", "j": columns["j"]}
    assert transform.reader_types(_config(alone)) == {"a": "date:dd/MM/yyyy", "g": "timestamp:yyyyMMddHHmm"}
    # A null marker the reader does not handle and a date format could parse keeps the dates on text.
    assert transform.reader_types(_config(columns, csv={"null_values": ["NA", "19000101"]})) == {}


def test_a_null_marker_the_reader_would_parse_keeps_its_column_on_the_text_path():
    config = _config({"n": "double", "b": "boolean", "k": "int"}, csv={"null_values": ["NA", "-1", "NaN", "FALSE"]})
    assert transform.reader_types(config) == {}
    columns = {"n": "double", "b": "boolean", "d": "decimal(5,2)", "t": "timestamp"}
    config = _config(columns, csv={"null_values": ["NA", "n/a"]})
    assert transform.reader_types(config) == {"b": "boolean"}


HEADER = "id,code,qty,price,flag,note,made"
ROWS = [
    "1,a,10,1.5,true,plain,2026-01-01 10:00:00",
    "2,b,x7,2.5,false,bad int,2026-01-01 10:00:00",  # unparsable int
    "3,c,30,2.5e,true,bad double,2026-01-01 10:00:00",  # unparsable double
    "4,d,40,4.0,maybe,bad boolean,2026-01-01 10:00:00",  # unparsable boolean
    "5,e,50,5.0,true,too,many,fields",  # wrong field count
    "6,f,60",  # too few fields
    "1,g,070,7.50,TRUE,duplicate key,2026-01-01 10:00:00",  # the primary key again
    "8,,080,8.0,false,code is null,2026-01-01 10:00:00",  # a not_null rule
    "9,i,\u0669, 9 ,yes,odd but valid, 2026-01-01 10:00:00 ",
    '10,"j,k",NA,NaN,NA,"quoted, with comma",NA',
    "11,k,2147483648,1e400,f,int overflow,2026-01-01 10:00:00",
    "12,l,\u0661\u0662,-Infinity,True,fine,2026-01-01 10:00:00",
]


def _run(
    spark, core, tmp_path, reader_typing: bool, monkeypatch, rows=ROWS, retyped: dict | None = None, plans=None
) -> tuple:
    """(rows in, kept, rejected, reasons), the bronze rows' data columns, the quarantine, the schema.

    `plans`, a list: gets the optimized plan of each write of the staged bronze rows, in order.
    """
    tmp_path.mkdir()
    monkeypatch.setattr(bronze, "CACHE_INPUT_BYTES", 0)  # every input counts as large
    monkeypatch.setattr(bronze, "READER_TYPING", reader_typing)
    if plans is not None:
        write = bronze.write_parquet

        def planned(df, uri, *args, **kwargs):
            if uri.rstrip("/").endswith("/output"):
                plans.append(df._jdf.queryExecution().optimizedPlan().toString())
            return write(df, uri, *args, **kwargs)

        monkeypatch.setattr(bronze, "write_parquet", planned)
    columns = {"id": "bigint", "code": "string", "qty": "int", "price": "double", "flag": "boolean",
               "note": "string", "made": "timestamp"} | (retyped or {})  # fmt: skip
    dataset = _config(
        columns,
        primary_key=["id"],
        quality={"not_null": ["code"], "max_rejected_fraction": 0.9},
        table_format="parquet",
    )
    shop = Shop(spark, core, tmp_path, dataset.model_copy(update={"dataset": "shop-orders"}))
    summary = shop.run(RUN1, "\n".join([HEADER, *rows]) + "\n")
    monkeypatch.undo()
    assert summary.status == "succeeded", summary.error
    bronze_rows = spark.read.parquet(str(shop.lake.path("bronze/shop_orders"))).drop("meta_ingested_at")
    kept = repr(sorted((tuple(r) for r in bronze_rows.collect()), key=repr))  # repr: NaN equals NaN
    quarantine = spark.read.parquet(str(shop.lake.path(f"quarantine/shop-orders/run_id={RUN1}")))
    rejected = sorted((tuple(r) for r in quarantine.drop("meta_ingested_at").collect()), key=repr)
    counts = (summary.rows_in, summary.rows_kept, summary.rows_rejected, summary.rejected_by_reason)
    return counts, kept, rejected, summary.schema


def test_a_run_typed_by_the_reader_keeps_quarantines_and_counts_what_the_text_path_does(
    spark, core, tmp_path, monkeypatch
):
    fast = _run(spark, core, tmp_path / "fast", True, monkeypatch)
    text = _run(spark, core, tmp_path / "text", False, monkeypatch)
    assert fast == text
    counts, kept, rejected, _ = fast
    assert counts[:3] == (12, 4, 8)
    assert counts[3] == {
        "code: null (not_null rule)": 1,
        "duplicate primary key": 1,
        "flag: not a valid boolean": 1,
        "malformed: 3 fields, header has 7": 1,
        "made: not a valid timestamp": 1,
        "malformed: 8 fields, header has 7": 1,
        "price: not a valid double": 2,  # `2.5e`, and `1e400`: not infinity, whatever a cast makes of it
        "qty: not a valid int": 2,
    }, counts[3]
    # Quarantined as they arrived: text, not typed values
    by_id = {r[0]: r for r in rejected}
    assert by_id["1"][1:4] == ("g", "070", "7.50") and by_id["11"][2] == "2147483648"
    assert by_id["3"][3] == "2.5e" and by_id["4"][4] == "maybe"


def test_a_clean_run_is_planned_as_a_bare_job_reads_and_keeps_what_the_text_path_does(
    spark, core, tmp_path, monkeypatch
):
    """Every record typed by the reader: one write, with no text split or typing of text in its plan, and the
    same output as typing every column from text (a rule's rejects still quarantined)."""
    rows = [ROWS[0], ROWS[7], ROWS[9], "12,l,12,-Infinity,True,fine,2026-01-01 10:00:00"]
    plans: list[str] = []
    fast = _run(spark, core, tmp_path / "fast", True, monkeypatch, rows, plans=plans)
    text = _run(spark, core, tmp_path / "text", False, monkeypatch, rows)
    assert fast == text
    assert fast[0] == (4, 3, 1, {"code: null (not_null rule)": 1})
    [plan] = plans
    assert [t for t in ("from_csv", transform.SPLIT, "translate(", transform.CORRUPT) if t in plan] == []


@pytest.mark.parametrize("after", [0, 6000], ids=["in-the-first-bytes", "after-the-first-bytes"])
def test_a_record_the_reader_cannot_type_has_the_run_read_with_its_text_split(
    spark, core, tmp_path, monkeypatch, after
):
    """In the bytes read for the header, such a record has the run read with the split at once; further on,
    the first read (planned as for a clean file) counts it and the run is read again with the split."""
    rows = [f"{1000 + i},c{i},{i},{i}.5,true,clean row {i},2026-01-01 10:00:00" for i in range(after)] + ROWS
    assert (len(HEADER) + sum(len(r) + 1 for r in rows[:after]) > transform.HEAD_BYTES) == (after > 0)
    plans: list[str] = []
    fast = _run(spark, core, tmp_path / "fast", True, monkeypatch, rows, plans=plans)
    assert fast == _run(spark, core, tmp_path / "text", False, monkeypatch, rows)
    assert fast[0][:3] == (after + 12, after + 4, 8)
    # ...and once more with the split, for the repeated key.
    assert ["from_csv" in plan for plan in plans] == ([False] if after else []) + [True, True]


def test_a_run_after_one_with_untyped_records_reads_with_the_split_at_once(spark, core, tmp_path, monkeypatch):
    """What a run learns of its files reaches the next: a dataset whose files hold such records past their
    first bytes run after run is read once with the split, not first as a clean file and then again."""
    clean = [f"{1000 + i},c{i},{i},{i}.5,true,clean row {i},2026-01-01 10:00:00" for i in range(6000)]
    monkeypatch.setattr(bronze, "CACHE_INPUT_BYTES", 0)  # every input counts as large
    monkeypatch.setattr(bronze, "READER_TYPING", True)
    write, plans = bronze.write_parquet, []

    def planned(df, uri, *args, **kwargs):
        if uri.rstrip("/").endswith("/output"):
            plans[-1].append("from_csv" in df._jdf.queryExecution().optimizedPlan().toString())
        return write(df, uri, *args, **kwargs)

    monkeypatch.setattr(bronze, "write_parquet", planned)
    columns = {"id": "bigint", "code": "string", "qty": "int", "price": "double", "flag": "boolean",
               "note": "string", "made": "timestamp"}  # fmt: skip
    dataset = _config(columns, quality={"max_rejected_fraction": 0.9}, table_format="parquet")
    shop = Shop(spark, core, tmp_path, dataset.model_copy(update={"dataset": "shop-orders"}))
    dirty = clean + ["2,b,x7,2.5,false,bad int,2026-01-01 10:00:00", "6,f,60"]
    found = []
    for run_id, rows in zip(RUNS, [dirty, dirty, clean, clean], strict=True):
        plans.append([])
        summary = shop.run(run_id, "\n".join([HEADER, *rows]) + "\n")
        assert summary.status == "succeeded", summary.error
        found.append((summary.rows_kept, summary.rows_rejected, summary.csv_untyped_records))
    # read clean, then split; split at once; split at once (the last run's records), and clean is clean again
    assert plans == [[False, True], [True], [True], [False]]
    assert found == [(6000, 2, 2), (6000, 2, 2), (6000, 0, 0), (6000, 0, 0)]


@pytest.mark.parametrize(
    ("lines", "untyped"),
    [
        (["1,2.5,true", "-7,1e3,FALSE", "NA,,NA", "2147483647,.5,True"], False),
        (["1,2.5,true", "2147483648,1,true"], True),  # beyond int
        (["1,2.5,true", " 7,1,true"], True),  # padded: the reader refuses what the text path trims
        (["1,2.5,true", "7,n/a,true"], True),  # a null marker the reader does not handle
        (["1,2.5,true", "7,1"], True),  # too few fields
        (["1,NaN,true", "2,-Infinity,false", "3,Inf,true"], False),  # the reader's words for doubles
        (["1,2.5,true", "\u0661,1,true"], True),  # the reader takes other scripts' digits, but not sure: split
        (["1,2.5,yes"], True),
    ],
)
def test_the_first_bytes_tell_whether_to_read_with_the_split(lines, untyped):
    config = _config({"i": "int", "d": "double", "b": "boolean"}, csv={"null_values": ["", "NA", "n/a"]})
    head = ("i,d,b\n" + "\n".join(lines) + "\n").encode()
    names, typed = ["i", "d", "b"], {"i": "int", "d": "double", "b": "boolean"}
    assert transform.untyped_in_heads([head], config.csv, names, typed) is untyped
    # The first bytes of a longer file end inside a record: that line is not judged (it is not all there).
    cut = head + b"9" * transform.HEAD_BYTES
    assert transform.untyped_in_heads([cut[: transform.HEAD_BYTES]], config.csv, names, typed) is untyped


def test_the_first_bytes_judged_are_bounded_across_files():
    """A guess must stay cheap for a run of thousands of files: only HEAD_BYTES of all the heads together are
    parsed, so a dirty file after them is left to the whole read (which then reads again with the split)."""
    config = _config({"i": "int"})
    clean = ("i\n" + "1\n" * 4096).encode()  # 8 KB each
    dirty = b"i\n1\n x\n"
    before = transform.HEAD_BYTES // len(clean)
    assert transform.untyped_in_heads([clean] * (before - 1) + [dirty], config.csv, ["i"], {"i": "int"})
    assert not transform.untyped_in_heads([clean] * (before + 1) + [dirty], config.csv, ["i"], {"i": "int"})


def test_a_doubtful_record_types_the_whole_run_from_text(spark, core, tmp_path, monkeypatch):
    """A last field of only a form feed: Spark's raw text of the record drops it, so its split would read an
    empty field (null, kept) where the text read sees `\f` (not a valid int, rejected)."""
    rows = ["1,a,10,1.5,true,x,1", "2,b, 7 ,2.5,false,y,\f", "3,c,30,3.5,true,z,3"]
    fast = _run(spark, core, tmp_path / "fast", True, monkeypatch, rows, {"made": "int"})
    text = _run(spark, core, tmp_path / "text", False, monkeypatch, rows, {"made": "int"})
    assert fast == text
    assert fast[0] == (3, 2, 1, {"made: not a valid int": 1})


def test_decimals_stay_on_the_text_path_because_the_reader_accepts_what_it_rejects(spark, tmp_path):
    """Why decimal(p,s) is not read by the reader: its parser drops `,` and rounds extra places, where the
    text path rejects both. (Dates and timestamps stay text too: their parsers have fallbacks of their own.)"""
    path = tmp_path / "decimals.csv"
    values = ['"1,000"', "12.345", "12.34"]
    path.write_text("id,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)), encoding="utf-8")
    raw = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_c")
        .schema("id int, v decimal(12,2), _c string")
        .csv(str(path))
        .collect()
    )
    by_reader = {r["id"]: (r["v"], r["_c"]) for r in raw}
    assert str(by_reader[0][0]) == "1000.00" and by_reader[0][1] is None  # accepted, comma dropped
    assert str(by_reader[1][0]) == "12.35" and by_reader[1][1] is None  # accepted, rounded
    config = _config({"id": "int", "v": "decimal(12,2)"})
    assert transform.reader_types(config) == {"id": "int"}
    _, text, _ = _both_paths(spark, path, config)
    assert text[0][1] == "v: not a valid decimal(12,2)"
    assert text[1][1] == "v: decimal(12,2): more than 2 decimal places"
    assert str(text[2][0][0]) == "12.34"
