"""Hostile files a reviewer sent through the bronze job: each once ran "succeeded" with a value under the
wrong column, a number rounded, or rows lost. Every run here either lands each value whole under its own
column (or quarantines its row with a reason, rows in = kept + rejected) or fails, naming the file.
"""

from __future__ import annotations

import gzip
import tempfile
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dwlib import bronze, transform
from dwlib.lake import LocalLake

# One bronze run over files dropped as a sample folder, and what it kept and rejected: as for hostile CSV files.
from tests.infra.least_privilege import spark_reads_s3_from
from tests.jobs.test_hostile_csv import RUN, config, kept, rejected, run

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]


def data(rows: list[dict]) -> list[dict]:
    """Rows without the job's columns, by `id`."""
    drop = {*transform.META_COLUMNS}
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in rows), key=lambda r: r.get("id") or 0)


# ------------------------------------------------------------------ 1: headers matched by what they say


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # Headers of no ASCII letter: named after their characters, wherever they stand.
        (
            {"a.csv": "id,店名,住所\n1,Taro Shop,Tokyo\n", "b.csv": "id,住所,店名\n2,Osaka,Hanako Shop\n"},
            {
                1: {"u5e97_u540d": "Taro Shop", "u4f4f_u6240": "Tokyo"},
                2: {"u5e97_u540d": "Hanako Shop", "u4f4f_u6240": "Osaka"},
            },
        ),
        # Two headers cleaning to one name (`gr_e`): numbered in their sorted order, in every file.
        (
            {"a.csv": "id,Größe,Grüße\n1,180,hallo\n", "b.csv": "id,Grüße,Größe\n2,servus,175\n"},
            {1: {"gr_e": 180, "gr_e_2": "hallo"}, 2: {"gr_e": 175, "gr_e_2": "servus"}},
        ),
        (
            {
                "a.csv": "id,Unit Price,unit_price\n1,10,20\n",
                "b.csv": "id,unit_price,Unit Price\n2,200,100\n",
                "c.csv": "id,UNIT PRICE\n3,300\n",
            },
            {
                # `unit_price` keeps its name; `Unit Price` (and `UNIT PRICE`, the same words) is numbered.
                1: {"unit_price": 20, "unit_price_2": 10},
                2: {"unit_price": 200, "unit_price_2": 100},
                3: {"unit_price": None, "unit_price_2": 300},
            },
        ),
        # Alone in their files, headers with other letters are other columns, however they clean.
        (
            {"a.csv": "id,Größe\n1,180\n", "b.csv": "id,Grüße\n2,servus\n"},
            {1: {"gr_e": 180, "gr_e_2": None}, 2: {"gr_e": None, "gr_e_2": "servus"}},
        ),
        # Case, spaces, separators and a BOM are no difference (as cleaning reads them).
        (
            {"a.csv": "id,Unit Price\n1,10\n", "b.csv": "\ufeff unit_price ,ID\n20,2\n"},
            {1: {"unit_price": 10}, 2: {"unit_price": 20}},
        ),
    ],
    ids=["cjk", "umlauts", "collision", "other-letters", "spelling"],
)
def test_headers_are_matched_by_what_they_say_never_by_where_they_stand(spark, core, tmp_path, files, expected):
    summary, lake = run(spark, core, tmp_path, files, columns={"id": "int"})

    assert summary.status == "succeeded", summary.error
    rows = {r["id"]: {k: r[k] for k in expected[r["id"]]} for r in kept(lake)}
    assert rows == expected


def test_a_header_of_no_ascii_letter_has_the_same_name_in_any_column(spark, core, tmp_path):
    # One file a run: the name must not depend on the position either (it did: `column_2`, `column_3`).
    first, lake = run(spark, core, tmp_path / "1", {"a.csv": "id,店名,住所\n1,Taro,Tokyo\n"})
    second, lake2 = run(spark, core, tmp_path / "2", {"a.csv": "id,住所,店名\n2,Osaka,Hanako\n"})

    assert first.renamed_columns == second.renamed_columns == {"店名": "u5e97_u540d", "住所": "u4f4f_u6240"}
    assert [(r["u5e97_u540d"], r["u4f4f_u6240"]) for r in kept(lake) + kept(lake2)] == [
        ("Taro", "Tokyo"),
        ("Hanako", "Osaka"),
    ]


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"a.csv": "id,,note,\n1,x,n1,y\n", "b.csv": "id,note,,\n2,n2,x2,y2\n"}, "an empty header"),
        ({"a.csv": "id,x,x\n1,a,b\n", "b.csv": "x,id,x\n2,c,d\n"}, "the header 'x' written more than once"),
    ],
    ids=["empty", "twice"],
)
def test_headers_only_a_position_tells_apart_fail_the_run_naming_files_and_headers(spark, core, tmp_path, files, named):
    summary, lake = run(spark, core, tmp_path, files, columns={"id": "int"})

    assert summary.status == "failed"
    assert named in summary.error and "a.csv: 'id'" in summary.error and "b.csv: " in summary.error
    assert "Traceback" not in summary.error
    assert not list(lake.list("bronze/hostile/"))


def test_an_empty_header_in_one_file_only_is_still_its_column(spark, core, tmp_path):
    # A trailing delimiter in one file's header: one unnamed column, in that file only.
    summary, lake = run(
        spark, core, tmp_path, {"a.csv": "id,name,\n1,alice,x\n", "b.csv": "id,name\n2,bob\n"}, columns={"id": "int"}
    )

    assert summary.status == "succeeded", summary.error
    assert [(r["id"], r["name"], r["column_3"]) for r in data(kept(lake))] == [(1, "alice", "x"), (2, "bob", None)]


def test_clean_names_number_collisions_by_text_not_position():
    # The header already spelled as the clean name keeps it, wherever it stands; the others are numbered.
    assert transform.clean_names(["id", "unit_price", "Unit Price"]) == ["id", "unit_price", "unit_price_2"]
    assert transform.clean_names(["id", "Unit Price", "unit_price"]) == ["id", "unit_price_2", "unit_price"]
    assert transform.clean_names(["店名", "#", "  ", "a_b_2", "A b", "a_b"]) == [
        "u5e97_u540d",
        "u23",
        "column_3",
        "a_b_2",
        "a_b_3",
        "a_b",
    ]


# ------------------------------------------------------------------ 2: JSON numbers kept exactly


def test_json_numbers_are_kept_exactly_in_declared_bigint_and_decimal_columns(spark, core, tmp_path):
    # A fraction anywhere made Spark infer double for the whole column: 9007199254740993 became ...992.
    records = [
        '{"id": 1, "n": 9007199254740993, "p": 12345678901234567.12, "u": 0.1, "e": 1e3,'
        ' "w": 12345678901234567890123456789012345678}',
        '{"id": 2, "n": 2.0, "p": -0.0, "u": 9007199254740993, "e": 2.5E-3, "w": 0}',
        '{"id": 3, "n": 1.5, "p": 1.005, "u": 3, "e": -1E+2, "w": 1.5}',
        # No decimal(38) holds 38 whole digits and 18 places: read through a double, a long fraction is refused.
        '{"id": 4, "n": 1, "p": 1, "u": 3, "e": 1, "w": 1.234567890123456789}',
    ]
    summary, lake = run(
        spark,
        core,
        tmp_path,
        {"a.jsonl": "\n".join(records) + "\n"},
        format="jsonl",
        columns={"n": "bigint", "p": "decimal(20,2)", "w": "decimal(38,0)", "e": "decimal(10,4)"},
    )

    assert summary.status == "succeeded", summary.error
    rows = {r["id"]: (r["n"], r["p"], r["w"], r["e"]) for r in kept(lake)}
    assert rows == {
        1: (9007199254740993, Decimal("12345678901234567.12"), 12345678901234567890123456789012345678, 1000),
        2: (2, 0, 0, Decimal("0.0025")),
    }
    reasons = {r["id"]: r["reject_reason"] for r in rejected(lake)}
    assert reasons == {
        "3": "n: not a valid bigint; p: not a valid decimal(20,2); w: decimal(38,0): more than 0 decimal places",
        "4": "w: decimal(38,0): more than 0 decimal places; w: a JSON fraction of 16 or more digits, which Spark "
        "reads here through a double, not exactly",
    }
    # An undeclared number column is a double, as Spark infers it.
    assert {r["id"]: r["u"] for r in kept(lake)} == {1: 0.1, 2: 9007199254740992.0}
    assert str(pq.read_table(lake.path("bronze/hostile/")).schema.field("u").type) == "double"


def test_a_json_nan_leaves_no_declared_decimal_rounded(spark, core, tmp_path):
    # NaN is no decimal: the exact read cannot be used, and a long fraction is refused rather than rounded.
    lines = ['{"id":1,"d":NaN,"p":0.1}', '{"id":2,"d":1.5,"p":12345678901234567.12}']
    summary, lake = run(
        spark, core, tmp_path, {"a.jsonl": "\n".join(lines) + "\n"}, format="jsonl", columns={"p": "decimal(20,2)"}
    )

    assert summary.status == "succeeded", summary.error
    assert [(r["id"], str(r["d"]), r["p"]) for r in kept(lake)] == [(1, "nan", Decimal("0.10"))]
    assert [r["id"] for r in rejected(lake)] == ["2"]


def test_a_whole_json_number_is_kept_in_an_integer_column_whatever_else_the_column_holds(spark, core, tmp_path):
    # Beside a string the column is text to Spark: 2.0 was quarantined there, kept as 2 elsewhere.
    lines = ['{"id":1,"n":9007199254740993}', '{"id":2,"n":2.0}', '{"id":3,"n":"9007199254740995"}', '{"id":4,"n":2.5}']
    summary, lake = run(
        spark, core, tmp_path, {"a.jsonl": "\n".join(lines) + "\n"}, format="jsonl", columns={"n": "bigint"}
    )

    assert summary.status == "succeeded", summary.error
    assert {r["id"]: r["n"] for r in kept(lake)} == {1: 9007199254740993, 2: 2, 3: 9007199254740995}
    assert [(r["id"], r["n"], r["reject_reason"]) for r in rejected(lake)] == [("4", "2.5", "n: not a valid bigint")]


# ------------------------------------------------------------------ 3: a quote the file ends inside


ESCAPED_QUOTE = 'id,name,note\n1,alice,"said ""hi"""\n'  # a quote in a value: the file is read again whole
UNCLOSED = 'id,name,note\n2,bob,"5 inch\n3,carol,fine\n4,dave,good\n5,eve,nice\n'


@pytest.mark.parametrize(
    ("files", "named"),
    [
        # Line by line, the quote was dropped (`5 inch`); read whole, rows 3-5 became bob's note (rows in 5 -> 2).
        ({"b.csv": UNCLOSED}, "b.csv: the quote opened on line 2"),
        ({"a.csv": ESCAPED_QUOTE, "b.csv": UNCLOSED}, "b.csv: the quote opened on line 2"),
        ({"a.csv": ESCAPED_QUOTE + '6,zed,"a ""b"" c\n7,x,y\n'}, "a.csv: the quote opened on line 3"),
        ({"a.csv": ESCAPED_QUOTE + '7,"x\n'}, "a.csv: the quote opened on line 3"),
    ],
    ids=["alone", "beside-a-reread", "doubled-quotes", "no-final-line-break"],
)
def test_a_file_ending_inside_a_quoted_value_fails_naming_the_file_and_the_line(spark, core, tmp_path, files, named):
    summary, lake = run(spark, core, tmp_path, files, columns={"id": "int"})

    assert summary.status == "failed"
    assert "a quoted value is never closed" in summary.error and named in summary.error
    assert not list(lake.list("bronze/hostile/"))


def test_quotes_that_close_are_read_whole_with_every_row(spark, core, tmp_path):
    # A quoted line break, a doubled quote, a quote inside an unquoted value, and a last line without a line break.
    text = 'id,name,note\n1,alice,"two\nlines"\n2,bob,5" screen\n3,"carol ""c""",x\n4,dave,"last"'
    summary, lake = run(spark, core, tmp_path, {"a.csv": text}, columns={"id": "int"})

    assert summary.status == "succeeded", summary.error
    assert [(r["id"], r["name"], r["note"]) for r in data(kept(lake))] == [
        (1, "alice", "two\nlines"),
        (2, "bob", '5" screen'),
        (3, 'carol "c"', "x"),
        (4, "dave", "last"),
    ]


# ------------------------------------------------------------------ 4: line endings of more than one kind


def crlf_then_lf(quoted_break: bool = False) -> str:
    rows = ["id,name,amount", *(f"{i},name {i},{i}" for i in range(1, 101))]
    rows[5] = '5,"Joe ""JJ"" Smith",5'  # a quote in a value: the file is read again whole
    if quoted_break:
        rows[7] = '7,"two\nlines",7'
    return "\r\n".join(rows) + "\r\n" + "101,tail a,101\n102,tail b,102\n103,tail c,103\n"


@pytest.mark.parametrize("multiline", [None, True])
def test_a_file_whose_lines_end_in_crlf_and_lf_keeps_every_row(spark, core, tmp_path, multiline):
    # Read whole, the reader took the first CRLF as the line ending and LF as a value's character: rows 101-103
    # became one malformed record, and 102 and 103 were in neither bronze nor quarantine.
    summary, lake = run(
        spark, core, tmp_path, {"export.csv": crlf_then_lf()}, columns={"id": "int", "amount": "int"},
        csv={"multiline": multiline},
    )  # fmt: skip

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (103, 103, 0)
    rows = {r["id"]: (r["name"], r["amount"]) for r in kept(lake)}
    assert sorted(rows) == list(range(1, 104))
    assert rows[5] == ('Joe "JJ" Smith', 5) and rows[102] == ("tail b", 102) and rows[100] == ("name 100", 100)


def test_a_file_with_crlf_and_lf_and_a_quoted_line_break_fails_naming_the_file_and_lines(spark, core, tmp_path):
    # It must be read whole for the quoted line break, and read whole it would merge the LF rows.
    summary, lake = run(spark, core, tmp_path, {"export.csv": crlf_then_lf(quoted_break=True)}, columns={"id": "int"})

    assert summary.status == "failed"
    assert "export.csv: CRLF first on line 1, LF first on line 103" in summary.error, summary.error
    assert "a quoted value holds a line break in export.csv" in summary.error
    assert not list(lake.list("bronze/hostile/"))


def test_a_quoted_crlf_or_lf_in_a_file_of_one_line_ending_is_no_mixture(spark, core, tmp_path):
    # Excel writes rows ending in CRLF and a line break inside a cell as LF: one line ending outside quotes.
    text = 'id,note\r\n1,"a\nb"\r\n2,"c\r\nd"\r\n3,e\r\n'
    summary, lake = run(spark, core, tmp_path, {"a.csv": text}, columns={"id": "int"})

    assert summary.status == "succeeded", summary.error
    assert [(r["id"], r["note"]) for r in data(kept(lake))] == [(1, "a\nb"), (2, "c\nd"), (3, "e")]


# ------------------------------------------------------------------ 4b: the same, compressed or on S3


class RawOnS3Lake(LocalLake):
    """A local lake whose raw files Spark reads as s3:// objects (`s3_is_local`), as every Glue run does."""

    def uri(self, key: str) -> str:
        return f"s3://hostile-raw/{key}" if key.startswith("raw/") else super().uri(key)


def s3_is_local(spark, root: Path):
    """s3://hostile-raw/... in this Spark session means files under root, until the block ends."""
    return spark_reads_s3_from(spark, "hostile-raw", root)


def run_stored(spark, core, tmp_path: Path, where: str, name: str, text: str, **extra):
    """`run` of one file stored as `where` says: gzipped (`name`.gz), or a plain file Spark reads from S3."""
    if where == "gz":
        return run(spark, core, tmp_path, {f"{name}.gz": gzip.compress(text.encode())}, **extra)
    sample = tmp_path / "sample"
    sample.mkdir(parents=True, exist_ok=True)
    (sample / name).write_bytes(text.encode())
    lake = RawOnS3Lake(tmp_path / "lake")
    ctx = bronze.JobContext(core=core, dataset=config(**extra), lake=lake, run_id=RUN, sample_dir=sample)
    with s3_is_local(spark, tmp_path / "lake"):
        summary = bronze.run_bronze(spark, ctx)
    return summary, lake


@pytest.mark.parametrize("where", ["gz", "s3"])
def test_a_compressed_or_s3_file_ending_inside_a_quoted_value_fails_naming_it(spark, core, tmp_path, where):
    # Not scanned before: read line by line the quote was dropped, read whole rows 3-5 became bob's note.
    summary, lake = run_stored(spark, core, tmp_path, where, "b.csv", ESCAPED_QUOTE + UNCLOSED.split("\n", 1)[1],
                               columns={"id": "int"})  # fmt: skip

    assert summary.status == "failed"
    assert "a quoted value is never closed" in summary.error, summary.error
    assert "the quote opened on line 3" in summary.error
    assert not list(lake.list("bronze/hostile/"))


@pytest.mark.parametrize("where", ["gz", "s3"])
def test_a_compressed_or_s3_file_whose_lines_end_in_crlf_and_lf_keeps_every_row(spark, core, tmp_path, where):
    # Not scanned before: read whole for its quote, rows 101-103 merged into one malformed record, two lost.
    summary, lake = run_stored(spark, core, tmp_path, where, "export.csv", crlf_then_lf(),
                               columns={"id": "int", "amount": "int"})  # fmt: skip

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (103, 103, 0)
    rows = {r["id"]: (r["name"], r["amount"]) for r in kept(lake)}
    assert sorted(rows) == list(range(1, 104))
    assert rows[5] == ('Joe "JJ" Smith', 5) and rows[102] == ("tail b", 102)


@pytest.mark.parametrize("where", ["gz", "s3"])
def test_a_compressed_or_s3_file_with_crlf_lf_and_a_quoted_line_break_fails_naming_its_lines(
    spark, core, tmp_path, where
):
    summary, lake = run_stored(spark, core, tmp_path, where, "export.csv", crlf_then_lf(quoted_break=True),
                               columns={"id": "int"})  # fmt: skip

    assert summary.status == "failed"
    assert "CRLF first on line 1, LF first on line 103" in summary.error, summary.error
    assert "a quoted value holds a line break in export.csv" in summary.error
    assert not list(lake.list("bronze/hostile/"))


def test_a_file_too_large_to_copy_to_the_driver_is_not_scanned_and_the_read_says_so(spark, tmp_path, monkeypatch):
    # Above the copy limit, as before this scan: no failure, and `Source.notes` names the file.
    monkeypatch.setattr(transform, "_COPY_LIMIT", 8)
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(UNCLOSED.encode()))
    source = transform.read_csv(spark, [str(tmp_path / "b.csv.gz")], transform.CsvOptions())

    assert len(source.notes) == 1 and "not scanned" in source.notes[0] and "b.csv.gz" in source.notes[0]
    assert not list((tmp_path / "scratch").iterdir()), "the local copy is deleted"


def test_a_run_over_a_file_too_large_to_scan_says_so_in_its_notes(spark, core, tmp_path, monkeypatch):
    """What the read could not check reaches the run's summary (dw run prints its notes; the ledger keeps them)."""
    monkeypatch.setattr(transform, "_COPY_LIMIT", 8)
    summary, _ = run(spark, core, tmp_path, {"a.csv.gz": gzip.compress(b"id,name\n1,ann\n")})
    assert summary.status == "succeeded"
    assert any("not scanned" in note and "a.csv.gz" in note for note in summary.notes), summary.notes


# ------------------------------------------------------------------ 5: a malformed record in quarantine whole


@pytest.mark.parametrize("large", [False, True], ids=["small", "large-input-reread"])
def test_a_malformed_record_is_quarantined_with_its_whole_text(spark, core, tmp_path, monkeypatch, large):
    if large:
        # Above the cache size, the reader types `id` and the quarantine is a read of its own, as text.
        monkeypatch.setattr(bronze, "CACHE_INPUT_BYTES", 0)
    text = 'id,name\n1,alice\n2,bob,extra,"more, still"\n3\nx,dave\n4,eve\n'
    summary, lake = run(spark, core, tmp_path, {"a.csv": text}, columns={"id": "int"})

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (5, 2, 3)
    assert summary.csv_untyped_records == (3 if large else 0)  # large: the reader typed `id`
    rows = sorted((r["id"], r["name"], r["raw_record"], r["reject_reason"]) for r in rejected(lake))
    assert rows == [
        ("2", "bob", '2,bob,extra,"more, still"', "malformed: 4 fields, header has 2"),
        ("3", None, "3", "malformed: 1 fields, header has 2"),
        ("x", "dave", None, "id: not a valid int"),  # well-formed: its values are all it had
    ]


def test_a_broken_json_record_is_quarantined_with_its_text(spark, core, tmp_path):
    lines = ['{"id": 1, "n": "a"}', '{"id": 2, "n": "b", oops}', '{"id": 3, "n": "c"}']
    summary, lake = run(spark, core, tmp_path, {"a.jsonl": "\n".join(lines) + "\n"}, format="jsonl")

    assert summary.status == "succeeded", summary.error
    assert [(r["raw_record"], r["reject_reason"]) for r in rejected(lake)] == [
        ('{"id": 2, "n": "b", oops}', "malformed: not a valid JSON record")
    ]


def test_a_source_column_named_raw_record_is_renamed(spark, core, tmp_path):
    summary, lake = run(spark, core, tmp_path, {"a.csv": "id,raw_record\n1,a\n2,b,c\n"}, columns={"id": "int"})

    assert summary.status == "succeeded", summary.error
    assert summary.renamed_columns == {"raw_record": "raw_record_2"}
    assert [(r["id"], r["raw_record_2"], r["raw_record"]) for r in rejected(lake)] == [("2", "b", "2,b,c")]


def test_a_declared_column_two_files_spell_differently_is_one_column_not_a_contest(spark, core, tmp_path):
    # `Unit Price` in one file and `unit price` in another are matched as one column: no other column contests it.
    files = {"a.csv": "id,Unit Price\n1,10\n", "b.csv": "id,unit price\n2,20\n"}
    summary, lake = run(spark, core, tmp_path, files, columns={"unit_price": "int"})

    assert summary.status == "succeeded", summary.error
    assert sorted((r["id"], r["unit_price"]) for r in kept(lake)) == [(1, 10), (2, 20)]


def test_a_declared_column_two_headers_of_one_file_contest_fails_naming_them(spark, core, tmp_path):
    # Neither header is spelled `unit_price`: which is the declared column cannot be told (it went to the one that
    # sorted first).
    summary, lake = run(
        spark, core, tmp_path, {"a.csv": "id,Unit Price,unit-price\n1,10,20\n"}, columns={"unit_price": "int"}
    )

    assert summary.status == "failed"
    assert "'Unit Price'" in summary.error and "'unit-price'" in summary.error and "a.csv" in summary.error
    assert not list(lake.list("bronze/"))
