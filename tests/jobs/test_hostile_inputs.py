"""Hostile input files that once ran "succeeded" with wrong data in bronze: a UTF-16 file read byte by byte, a Java
literal taken for a number, a header repeated inside a file kept as a row, a JSON number given digits it never had.
Each run here keeps the right values, quarantines the row with its reason, or fails naming the file and the fix.
"""

from __future__ import annotations

import pytest

from tests.jobs.test_hostile_csv import kept, rejected, run

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]

TEXT = "id,name\n1,alice\n2,bob\n"


# ------------------------------------------------------------------ UTF-16 and UTF-32 read as bytes


@pytest.mark.parametrize(
    ("files", "csv", "named", "fix"),
    [
        ({"a.csv": TEXT.encode("utf-16")}, {}, "a.csv is UTF-16 text (its byte order mark)", '"UTF-16"'),
        ({"a.csv": TEXT.encode("utf-32")}, {}, "a.csv is UTF-32 text (its byte order mark)", '"UTF-32"'),
        ({"a.csv": TEXT.encode("utf-16-le")}, {}, "a.csv is UTF-16LE text (NUL bytes", '"UTF-16LE"'),
        ({"a.csv": TEXT.encode("utf-16-be")}, {}, "a.csv is UTF-16BE text (NUL bytes", '"UTF-16BE"'),
        # The second file of a run only; and a one-byte encoding declared.
        ({"a.csv": TEXT, "b.csv": TEXT.encode("utf-16")}, {}, "b.csv is UTF-16 text", '"UTF-16"'),
        ({"a.csv": TEXT.encode("utf-16")}, {"encoding": "ISO-8859-1"}, "a.csv is UTF-16 text", '"UTF-16"'),
        # UTF-8 by its byte order mark, where a one-byte encoding is declared: `café` was `cafÃ©`, no byte invalid.
        ({"a.csv": "\ufeffid,name\n1,caf\u00e9\n"}, {"encoding": "windows-1252"}, "a.csv is UTF-8 text", '"utf-8"'),
        ({"a.csv": "\ufeffid,name\n1,caf\u00e9\n"}, {"encoding": "x-MacRoman"}, "a.csv is UTF-8 text", '"utf-8"'),
        # UTF-16 declared, but no byte order mark: Java reads it big-endian.
        ({"a.csv": TEXT.encode("utf-16-le")}, {"encoding": "UTF-16"}, "a.csv is UTF-16LE text", '"UTF-16LE"'),
    ],
    ids=["utf-16", "utf-32", "utf-16le", "utf-16be", "second-file", "latin-1", "utf-8-bom", "utf-8-bom-mac", "no-bom"],
)
def test_a_csv_in_a_wider_encoding_than_declared_fails_naming_the_file_and_the_encoding(
    spark, core, tmp_path, files, csv, named, fix
):
    # Read as UTF-8 it ran "succeeded" with columns `i_d`, `n_a_m_e` and values `\x001\x00`.
    summary, lake = run(spark, core, tmp_path, files, csv=csv)

    assert summary.status == "failed"
    assert named in summary.error and fix in summary.error, summary.error
    assert not list(lake.list("bronze/hostile/"))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_a_csv_in_its_declared_wide_encoding_still_reads(spark, core, tmp_path, encoding):
    declared = "UTF-16" if encoding == "utf-16" else "UTF-16LE"
    summary, lake = run(spark, core, tmp_path, {"a.csv": TEXT.encode(encoding)}, csv={"encoding": declared})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["name"]) for r in kept(lake)) == [(1, "alice"), (2, "bob")]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_json_lines_in_utf_16_or_32_fail_naming_the_file(spark, core, tmp_path, encoding):
    # Read line by line at each 0x0A byte: the records came through, and a broken record `\x00` was counted and
    # quarantined that the file does not hold (1 of 3 rows: over the budget of a small file).
    text = '{"id": 1, "s": "\u00e9"}\n{"id": 2, "s": "x"}\n'.encode(encoding)
    summary, lake = run(spark, core, tmp_path, {"a.jsonl": text}, format="jsonl")

    assert summary.status == "failed"
    assert "a.jsonl is UTF-" in summary.error and "convert it to UTF-8" in summary.error, summary.error


# ------------------------------------------------------------------ a double column reads numbers, not Java literals


def test_a_double_column_keeps_numbers_and_quarantines_java_literals(spark, core, tmp_path):
    # Java's parseDouble (Spark's cast) took `12d` as 12.0, `5f` as 5.0 and `0x1p3` as 8.0, where an int column
    # rejects `12d` and an undeclared column keeps it as text.
    values = ["1.5", "-2", "+3.", ".5", "1e5", "1E-2", " 7 ", "NaN", "-Infinity", "inf", "0", "-0.0e0",
              "12d", "5f", "0x1p3", "1D", "0x0p0", "0d", "1_0"]  # fmt: skip
    text = "id,n\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))
    summary, lake = run(spark, core, tmp_path, {"a.csv": text}, columns={"id": "int", "n": "double"})

    assert summary.status == "succeeded", summary.error
    got = {values[r["id"]]: r["n"] for r in kept(lake)}
    assert {k: v for k, v in got.items() if v == v} == {  # NaN aside
        "1.5": 1.5, "-2": -2.0, "+3.": 3.0, ".5": 0.5, "1e5": 1e5, "1E-2": 0.01, " 7 ": 7.0, "-Infinity": float("-inf"),
        "inf": float("inf"), "0": 0.0, "-0.0e0": 0.0,
    }  # fmt: skip
    assert "NaN" in got
    assert sorted(r["n"] for r in rejected(lake)) == sorted(["12d", "5f", "0x1p3", "1D", "0x0p0", "0d", "1_0"])
    assert summary.rejected_by_reason == {"n: not a valid double": 7}


def test_a_json_string_in_a_double_column_is_read_as_a_csv_value_is(spark, core, tmp_path):
    records = '{"id": 1, "d": "1d"}\n{"id": 2, "d": "2.5"}\n{"id": 3, "d": 3.25}\n'
    summary, lake = run(spark, core, tmp_path, {"a.jsonl": records}, format="jsonl", columns={"d": "double"})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["d"]) for r in kept(lake)) == [(2, 2.5), (3, 3.25)]
    assert [(r["d"], r["reject_reason"]) for r in rejected(lake)] == [("1d", "d: not a valid double")]


# ------------------------------------------------------------------ a header repeated inside a file


@pytest.mark.parametrize(
    ("first", "columns"),
    [
        ("id,name\n1,alice\nid,name\n2,bob\nid,name\n3,carol\n", {}),
        ('id,name\n1,"alice"\nid,name\n2,bob\n\ufeffid,name\n3,carol\n', {"id": "int"}),
    ],
    ids=["undeclared", "declared-quotes-bom"],
)
def test_a_header_repeated_inside_a_file_is_quarantined_not_kept_as_a_row(spark, core, tmp_path, first, columns):
    # Files joined with `cat` (or an export that writes its header on every page): the header line was a row of
    # bronze (and the check of an undeclared column's numbers made it text).
    files = {"a.csv": first, "b.csv": "name,id\ndave,4\nname,id\n"}
    summary, lake = run(spark, core, tmp_path, files, columns=columns)

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["name"]) for r in kept(lake)) == [(1, "alice"), (2, "bob"), (3, "carol"), (4, "dave")]
    reason = "malformed: a copy of the file's header"
    assert summary.rows_in == 7 and summary.rows_rejected == 3
    assert all(r["reject_reason"].startswith(reason) for r in rejected(lake))  # declared: `; id: not a valid int` too
    if not columns:
        assert summary.rejected_by_reason == {reason: 3}


def test_a_row_equal_to_the_header_in_part_only_is_kept(spark, core, tmp_path):
    summary, lake = run(spark, core, tmp_path, {"a.csv": "id,name\nid,bob\n1,name\n"})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["name"]) for r in kept(lake)) == [("1", "name"), ("id", "bob")]


# ------------------------------------------------------------------ JSON numbers into a declared string column


def test_json_numbers_in_a_declared_string_column_get_no_digits_they_never_had(spark, core, tmp_path):
    # Read as the decimal that holds all of them, each number became text at the column's scale: 0.1 was `0.10`
    # because another row held 1.25, 1e2 was `100.00`.
    records = '{"id": 1, "v": 0.1}\n{"id": 2, "v": 1.25}\n{"id": 3, "v": 1e2}\n{"id": 4, "v": -0.000001}\n{"id": 5, "v": 1e-7}\n'
    summary, lake = run(spark, core, tmp_path, {"a.jsonl": records}, format="jsonl", columns={"v": "string"})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["v"]) for r in kept(lake)) == [
        (1, "0.1"),
        (2, "1.25"),
        (3, "100"),
        (4, "-0.000001"),
        (5, "0.0000001"),
    ]


# ------------------------------------------------------------------ Parquet bytes into a declared string column


def test_parquet_bytes_that_are_not_utf_8_are_quarantined_from_a_string_column(spark, core, tmp_path):
    # Cast, the bytes went into bronze as they were: a Parquet string that is not UTF-8, which pyarrow (and so any
    # reader of the table) refuses to read.
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = io.BytesIO()
    table = pa.table({"id": [1, 2, 3], "b": pa.array([b"ok", b"\xff\xfe", "caf\u00e9".encode()], pa.binary())})
    pq.write_table(table, data)
    summary, lake = run(spark, core, tmp_path, {"a.parquet": data.getvalue()}, columns={"b": "string"})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["b"]) for r in kept(lake)) == [(1, "ok"), (3, "caf\u00e9")]
    assert summary.rejected_by_reason == {"b: invalid utf-8 bytes": 1}
    assert [r["b"] for r in rejected(lake)] == ["//4="]  # the bytes, in base64


# ------------------------------------------------------------------ a JSON key that is empty


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_a_json_key_that_is_empty_keeps_its_values(spark, core, tmp_path, fmt):
    # Spark's inference leaves out a key `""` with all its values; the run said succeeded without them.
    records = ['{"": 3, "id": 1}', '{"id": 2, "": "x"}', '{"id": 3, "":{"n": 1}}', '{"id": 4}']
    text = "\n".join(records) + "\n" if fmt == "jsonl" else "[" + ",\n".join(records) + "]\n"
    summary, lake = run(spark, core, tmp_path, {f"a.{fmt}": text}, format=fmt)

    assert summary.status == "succeeded", summary.error
    assert summary.renamed_columns == {"": "column_1"}
    assert sorted((r["id"], r["column_1"]) for r in kept(lake)) == [(1, "3"), (2, "x"), (3, '{"n":1}'), (4, None)]


# ------------------------------------------------------------------ Parquet files whose column types differ


def _parquet(columns: dict) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = io.BytesIO()
    pq.write_table(pa.table(columns), data)
    return data.getvalue()


def test_parquet_files_whose_number_columns_differ_in_width_are_read_in_the_wider_type(spark, core, tmp_path):
    # One writer's int32 and another's int64 (float and double, decimals of other scales): Spark's mergeSchema failed
    # the run with "Failed to merge incompatible data types", naming neither the column nor the file.
    from decimal import Decimal

    import pyarrow as pa

    a = _parquet(
        {
            "id": pa.array([1], pa.int32()),
            "n": pa.array([7], pa.int32()),
            "p": pa.array([Decimal("1.23")], pa.decimal128(10, 2)),
            "f": pa.array([1.5], pa.float32()),
            "s": ["x"],
        }
    )
    b = _parquet(
        {
            "id": pa.array([2], pa.int64()),
            "n": pa.array([2**40], pa.int64()),
            "p": pa.array([Decimal("123456.1234")], pa.decimal128(12, 4)),
            "f": pa.array([0.1], pa.float64()),
        }
    )
    c = _parquet({"id": pa.array([3], pa.int16()), "extra": ["e"]})
    summary, lake = run(spark, core, tmp_path, {"a.parquet": a, "b.parquet": b, "c.parquet": c})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["n"], r["p"], r["f"], r["s"], r["extra"]) for r in kept(lake)) == [
        (1, 7, Decimal("1.2300"), 1.5, "x", None),
        (2, 2**40, Decimal("123456.1234"), 0.1, None, None),
        (3, None, None, None, None, "e"),
    ]
    assert {f["name"]: f["type"] for f in summary.schema if f["name"] in ("id", "n", "p", "f")} == {
        "id": "bigint",
        "n": "bigint",
        "p": "decimal(12,4)",
        "f": "double",
    }


def test_parquet_files_whose_column_types_conflict_fail_naming_the_column_and_the_files(spark, core, tmp_path):
    import pyarrow as pa

    a = _parquet({"id": pa.array([1], pa.int64()), "n": pa.array([1], pa.int64())})
    b = _parquet({"id": pa.array([2], pa.int64()), "n": ["x"]})
    summary, lake = run(spark, core, tmp_path, {"a.parquet": a, "b.parquet": b})

    assert summary.status == "failed"
    assert "column n is bigint in a.parquet, string in b.parquet" in summary.error, summary.error
    assert not list(lake.list("bronze/hostile/"))


# ------------------------------------------------------------------ a time its zone's clocks skip


def test_a_time_its_named_zone_skips_is_quarantined_not_moved_an_hour_on(spark, core, tmp_path):
    # 02:30 on 2024-03-10 never happened in New York (clocks went from 02:00 to 03:00): the cast made it 03:30 EDT.
    values = [
        "2024-03-10 02:30:00 America/New_York",
        "2024-03-31T02:15:00 Europe/Berlin",
        "2024-03-10 02:30:00 PST",
        "2024-03-10 03:30:00 America/New_York",
        "2024-11-03 01:30:00 America/New_York",  # the hour that happens twice: the first, as Java takes it
        "2024-01-01 10:00:00 Asia/Kolkata",
        "2024-03-10 02:30:00",  # no zone: UTC, the session's
        "2024-03-10T02:30:00Z",
        "2024-03-10 02:30:00 +05:30",
    ]
    text = "id,t\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))
    summary, lake = run(spark, core, tmp_path, {"a.csv": text}, columns={"id": "int", "t": "timestamp"})

    assert summary.status == "succeeded", summary.error
    assert sorted(r["t"] for r in rejected(lake)) == sorted(values[:3])
    assert {values[r["id"]]: str(r["t"]) for r in kept(lake)} == {
        "2024-03-10 03:30:00 America/New_York": "2024-03-10 07:30:00",
        "2024-11-03 01:30:00 America/New_York": "2024-11-03 05:30:00",
        "2024-01-01 10:00:00 Asia/Kolkata": "2024-01-01 04:30:00",
        "2024-03-10 02:30:00": "2024-03-10 02:30:00",
        "2024-03-10T02:30:00Z": "2024-03-10 02:30:00",
        "2024-03-10 02:30:00 +05:30": "2024-03-09 21:00:00",
    }


# ------------------------------------------------------------------ a name twice in one record or file


def test_a_json_key_written_twice_in_a_record_fails_naming_the_file_and_the_key(spark, core, tmp_path):
    # Spark's message named no file and advised renaming "the existing column", a config change that fixes nothing.
    files = {"a.jsonl": '{"id": 1, "a": 1}\n', "b.jsonl": '{"id": 2, "a": 1, "a": 2}\n{"id": 3, "a": 3}\n'}
    summary, lake = run(spark, core, tmp_path, files, format="jsonl")

    assert summary.status == "failed"
    assert summary.error.startswith("b.jsonl: a record holds the key 'a' more than once"), summary.error
    assert not list(lake.list("bronze/hostile/"))


def test_a_parquet_file_with_two_columns_of_one_name_fails_naming_it(spark, core, tmp_path):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = io.BytesIO()
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2]), pa.array([3])], names=["id", "a", "a"]), data)
    summary, lake = run(spark, core, tmp_path, {"a.parquet": _parquet({"id": [0]}), "b.parquet": data.getvalue()})

    assert summary.status == "failed"
    assert summary.error.startswith("b.parquet: two columns named 'a' in one file"), summary.error


def test_parquet_files_with_local_and_utc_timestamps_are_read_as_timestamps_in_utc(spark, core, tmp_path):
    # pyarrow writes a timestamp without a zone as a local time (Spark's timestamp_ntz), with one as an instant.
    import datetime as dt

    import pyarrow as pa

    a = _parquet({"id": [1], "t": pa.array([dt.datetime(2024, 1, 1, 10)], pa.timestamp("us"))})
    b = _parquet({"id": [2], "t": pa.array([dt.datetime(2024, 1, 1, 11)], pa.timestamp("us", tz="UTC"))})
    summary, lake = run(spark, core, tmp_path, {"a.parquet": a, "b.parquet": b})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], str(r["t"])) for r in kept(lake)) == [
        (1, "2024-01-01 10:00:00"),
        (2, "2024-01-01 11:00:00"),
    ]


def test_parquet_nanosecond_timestamps_fail_saying_how_to_write_them(spark, core, tmp_path):
    import datetime as dt

    import pyarrow as pa

    data = _parquet({"id": [1], "t": pa.array([dt.datetime(2024, 1, 1, 10)], pa.timestamp("ns"))})
    summary, _ = run(spark, core, tmp_path, {"a.parquet": data})

    assert summary.status == "failed"
    assert summary.error.startswith("a.parquet: a column of nanosecond timestamps"), summary.error
    assert 'coerce_timestamps="us"' in summary.error


# ------------------------------------------------------------------ a file that is no text, named as one


def _zip(members: dict[str, str], method: int) -> bytes:
    import io
    import zipfile

    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", compression=method) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return data.getvalue()


@pytest.mark.parametrize(
    ("name", "kind", "fmt"),
    [("a.csv", "zip (or an Excel .xlsx)", "csv"), ("a.csv", "gzip", "csv"), ("a.csv", "Parquet", "csv"),
     ("a.jsonl", "gzip", "jsonl"), ("a.json", "zip (or an Excel .xlsx)", "json")],
    ids=["zip-as-csv", "gzip-as-csv", "parquet-as-csv", "gzip-as-jsonl", "zip-as-json"],
)  # fmt: skip
def test_a_file_of_another_kind_named_as_text_fails_naming_what_it_is(spark, core, tmp_path, name, kind, fmt):
    # A zip stored uncompressed and named .csv ran "succeeded": its rows were kept, under a column named after the
    # zip's own header bytes (`pk_o_t_x_csvid`); Parquet bytes read as CSV kept most of their "rows".
    import gzip
    import zipfile

    text = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(100)) if fmt == "csv" else '{"id": 1}\n'
    data = {
        "zip (or an Excel .xlsx)": lambda: _zip({"x." + fmt: text}, zipfile.ZIP_STORED),
        "gzip": lambda: gzip.compress(text.encode()),
        "Parquet": lambda: _parquet({"id": list(range(100)), "name": [f"n{i}" for i in range(100)]}),
    }[kind]()
    summary, lake = run(spark, core, tmp_path, {"b" + name[1:]: text, name: data}, format=fmt)

    assert summary.status == "failed"
    assert summary.error.startswith(f"{name} is a {kind} file, not {fmt[:4].upper()} text"), summary.error
    assert not list(lake.list("bronze/hostile/"))


# ------------------------------------------------------------------ a carriage return alone in a file of LF lines


@pytest.mark.parametrize("quoted", [False, True], ids=["plain", "with-a-quoted-line-break"])
def test_a_carriage_return_alone_in_a_file_of_lf_lines_is_part_of_its_value(spark, core, tmp_path, quoted):
    # Each CR ended a line: `1,a\rb` was the row (1, a), kept, and a row `b` quarantined as malformed.
    note = '"two\nlines"' if quoted else "plain"
    text = f"id,note,name\n1,{note},a\rb\n2,x,c\n3,y,d\re\n"
    summary, lake = run(spark, core, tmp_path, {"a.csv": text, "b.csv": "id,note,name\n4,z,f\n"}, columns={"id": "int"})

    assert summary.status == "succeeded", summary.error
    assert summary.rows_in == 4 and summary.rows_rejected == 0, summary.rejected_by_reason
    assert sorted((r["id"], r["name"]) for r in kept(lake)) == [(1, "a\rb"), (2, "c"), (3, "d\re"), (4, "f")]
    # Lines that end in CR alone would be read as values too: the run's notes name the file and the CR's line.
    assert (
        len([note for note in summary.notes if "carriage return alone" in note and "a.csv (first on line " in note])
        == 1
    )


def test_a_carriage_return_alone_in_a_record_the_reader_could_not_type_stays_in_its_value(spark, core, tmp_path):
    # Over 16 MB the reader types the int columns; a record it cannot type is split again from its text, as the file.
    rows = "".join(f"{i},{i},x{i}\n" for i in range(1_100_000))
    text = f"id,n,name\n{rows}-1,zz,a\rb\n-2,8,c\rd\n"
    summary, lake = run(spark, core, tmp_path, {"a.csv": text}, columns={"id": "int", "n": "int"})

    assert summary.status == "succeeded", summary.error
    assert summary.rows_in == 1_100_002 and summary.rejected_by_reason == {"n: not a valid int": 1}
    assert [(r["id"], r["n"], r["name"]) for r in rejected(lake)] == [("-1", "zz", "a\rb")]
    assert [r["name"] for r in kept(lake) if r["id"] == -2] == ["c\rd"]


# ------------------------------------------------------------------ a file delimited by another character


def test_a_file_delimited_by_another_character_fails_naming_it(spark, core, tmp_path):
    # A `;` file read with `,`: one column `id_name_n` of `1;a;2`, "succeeded".
    files = {"a.csv": "id,name,n\n1,a,2\n", "b.csv": "id;name;n\n1;a;2\n2;b;3\n"}
    summary, lake = run(spark, core, tmp_path, files)

    assert summary.status == "failed"
    assert "b.csv (';', 2 in its header and each of its first rows)" in summary.error, summary.error
    assert "a.csv" not in summary.error


def test_a_file_of_one_column_whose_values_hold_the_character_sometimes_still_reads(spark, core, tmp_path):
    summary, lake = run(spark, core, tmp_path, {"a.csv": "note\na;b\nc\nd;e;f\n"})

    assert summary.status == "succeeded", summary.error
    assert sorted(r["note"] for r in kept(lake)) == ["a;b", "c", "d;e;f"]
