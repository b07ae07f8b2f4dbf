"""Hostile input files through the whole bronze job: never "succeeded" with values in the wrong place.

Several files with different headers, headers that collide with the job's own columns or with each
other, ragged rows, quoted line breaks, bytes invalid in the declared encoding, decimals a cast
would round. Every run here must either put each value under its own column or quarantine the
row with a reason, and rows in = kept + rejected.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dwlib import bronze
from dwlib.config import DatasetConfig
from dwlib.lake import LocalLake

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
RUN = "20260101T000000Z"


def config(**extra) -> DatasetConfig:
    body = {
        "dataset": "hostile",
        "description": "hostile files",
        "data_size_category": "small",
        **({} if "source_url" in extra else {"landing": True}),
        "quality": {"max_rejected_fraction": 1.0},  # the tests look at what was rejected, and why
        **extra,
    }
    return DatasetConfig.model_validate(body)


def run(spark, core, tmp_path: Path, files: dict[str, bytes | str], **extra) -> tuple[bronze.RunSummary, LocalLake]:
    """One bronze run over `files` dropped as a sample folder (several files in one run)."""
    sample = tmp_path / "sample"
    sample.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (sample / name).write_bytes(data.encode() if isinstance(data, str) else data)
    lake = LocalLake(tmp_path / "lake")
    ctx = bronze.JobContext(core=core, dataset=config(**extra), lake=lake, run_id=RUN, sample_dir=sample)
    return bronze.run_bronze(spark, ctx), lake


def kept(lake: LocalLake) -> list[dict]:
    return pq.read_table(lake.path("bronze/hostile/")).to_pylist()


def rejected(lake: LocalLake) -> list[dict]:
    return pq.read_table(lake.path(f"quarantine/hostile/run_id={RUN}/")).to_pylist()


def by(rows: list[dict], key: str) -> dict:
    return {row[key]: row for row in rows}


# ------------------------------------------------------------------ several files, matched by name


def test_reordered_headers_in_one_zip_land_under_their_own_columns(spark, core, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.csv", "id,name,amount\n1,alice,10\n2,bob,20\n")
        zf.writestr("b.csv", "amount,id,name\n30,3,carol\n40,4,dave\n")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "orders.zip").write_bytes(archive.getvalue())
    lake = LocalLake(tmp_path / "lake")
    cfg = config(source_url="orders.zip", columns={"id": "int", "amount": "int"})
    summary = bronze.run_bronze(
        spark, bronze.JobContext(core=core, dataset=cfg, lake=lake, run_id=RUN, dataset_dir=tmp_path / "ds")
    )

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (4, 4, 0)
    rows = by(kept(lake), "id")
    assert {i: (r["name"], r["amount"]) for i, r in rows.items()} == {
        1: ("alice", 10),
        2: ("bob", 20),
        3: ("carol", 30),
        4: ("dave", 40),
    }
    assert {i: r["meta_source_file"] for i, r in rows.items()} == {1: "a.csv", 2: "a.csv", 3: "b.csv", 4: "b.csv"}
    assert summary.missing_columns == {} and summary.renamed_columns == {}


@pytest.mark.parametrize("name", ["q1 2026 (#1)+é%41;=.csv", "plain.csv"])
def test_a_run_of_one_file_names_it_as_a_run_of_several_does(spark, core, tmp_path, name):
    """`meta_source_file` of a run with one input file is a constant; it must be what Spark's input_file_name()
    gives the same file's rows in a run of several (percent-encoded as Spark spells a path)."""

    def source_files(members: dict[str, str], folder: str) -> dict[int, str]:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            for member, text in members.items():
                zf.writestr(member, text)
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "orders.zip").write_bytes(archive.getvalue())
        lake = LocalLake(tmp_path / folder / "lake")
        ctx = bronze.JobContext(
            core=core, dataset=config(source_url="orders.zip"), lake=lake, run_id=RUN, dataset_dir=tmp_path / folder
        )
        summary = bronze.run_bronze(spark, ctx)
        assert summary.status == "succeeded", summary.error
        return {r["id"]: r["meta_source_file"] for r in kept(lake)}

    one = source_files({name: "id,name\n1,alice\n"}, "one")
    several = source_files({name: "id,name\n1,alice\n", "other.csv": "id,name\n2,bob\n"}, "several")
    assert one == {1: several[1]} and several[2] == "other.csv"


def test_a_column_only_one_file_has_is_added_and_null_in_the_other_files_rows(spark, core, tmp_path):
    summary, lake = run(
        spark,
        core,
        tmp_path,
        {
            "1.csv": "Id,Name\n1,alice\n",
            # another order, a header spelled differently that cleans to the same name, one column more
            "2.csv.gz": gzip.compress(b"Region,name,ID\nnorth,bob,2\n"),
            "3.csv": "\ufeffname,id\ncarol,3\n",  # a BOM before the header
        },
        columns={"id": "int"},
    )

    assert summary.status == "succeeded", summary.error
    assert [c["name"] for c in summary.schema][:3] == ["id", "name", "region"]
    rows = by(kept(lake), "id")
    assert {i: (r["name"], r["region"]) for i, r in rows.items()} == {
        1: ("alice", None),
        2: ("bob", "north"),
        3: ("carol", None),
    }
    assert summary.missing_columns == {"1.csv": ["region"], "3.csv": ["region"]}
    text = bronze.describe_outcome(summary)
    assert "warning: 1.csv has no column(s) region; they are NULL in its rows" in text


def test_a_header_missing_a_column_quarantines_its_rows_instead_of_dropping_values(spark, core, tmp_path):
    summary, lake = run(
        spark,
        core,
        tmp_path,
        {"good.csv": "id,name,amount\n1,alice,10\n", "short-header.csv": "id,name\n2,bob,20\n3,carol,30\n"},
        quality={"max_rejected_fraction": 0.1},
    )

    assert summary.status == "failed"  # two of three rows rejected, above the budget
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (3, 1, 2)
    assert summary.rejected_by_reason == {"malformed: 3 fields, header has 2": 2}
    assert not lake.has_prefix("bronze/hostile/")


def test_headerless_files_keep_positions_and_a_file_with_other_widths_is_quarantined(spark, core, tmp_path):
    summary, lake = run(
        spark,
        core,
        tmp_path,
        {"a.csv": "1,alice,10\n2,bob,20\n", "b.csv": "3,carol\n4,dave,40,extra\n"},
        csv={"header": False},
    )

    assert summary.status == "succeeded", summary.error
    assert [(r["c0"], r["c1"], r["c2"]) for r in sorted(kept(lake), key=lambda r: r["c0"])] == [
        (1, "alice", 10),
        (2, "bob", 20),
    ]
    assert summary.rejected_by_reason == {
        "malformed: 2 fields, the first row of a.csv has 3": 1,
        "malformed: 4 fields, the first row of a.csv has 3": 1,
    }


def test_parquet_files_with_different_columns_keep_every_column(spark, core, tmp_path):
    first, second = io.BytesIO(), io.BytesIO()
    pq.write_table(pa.table({"id": [1], "name": ["alice"]}), first)
    pq.write_table(pa.table({"name": ["bob"], "id": [2], "extra": ["x"]}), second)
    summary, lake = run(spark, core, tmp_path, {"a.parquet": first.getvalue(), "b.parquet": second.getvalue()})

    assert summary.status == "succeeded", summary.error
    assert {r["id"]: (r["name"], r["extra"]) for r in kept(lake)} == {1: ("alice", None), 2: ("bob", "x")}


# ------------------------------------------------------------------ names


def test_headers_taking_the_jobs_own_names_are_renamed_and_keep_their_values(spark, core, tmp_path):
    summary, lake = run(
        spark, core, tmp_path, {"in.csv": "id,Meta Run ID,reject_reason,meta_source_file\n1,r-7,why,f.txt\n"}
    )

    assert summary.status == "succeeded", summary.error
    (row,) = kept(lake)
    assert (row["meta_run_id_2"], row["reject_reason_2"], row["meta_source_file_2"]) == ("r-7", "why", "f.txt")
    assert (row["meta_run_id"], row["meta_source_file"]) == (RUN, "in.csv")
    assert summary.renamed_columns == {
        "Meta Run ID": "meta_run_id_2",
        "reject_reason": "reject_reason_2",
        "meta_source_file": "meta_source_file_2",
    }
    assert "warning: source columns renamed" in bronze.describe_outcome(summary)
    assert "'reject_reason' -> reject_reason_2" in bronze.describe_outcome(summary)


def test_headers_cleaning_to_one_name_get_numbered_in_sorted_order_and_are_reported(spark, core, tmp_path):
    # `a_b`, already spelled as its clean name, keeps it; the others follow by their text (`A b` < `A-B`), not by
    # their place: reordered, they keep their names.
    summary, lake = run(spark, core, tmp_path, {"in.csv": "A b,a_b,A-B,\n1,2,3,4\n"})

    assert summary.status == "succeeded", summary.error
    (row,) = kept(lake)
    assert (row["a_b_2"], row["a_b"], row["a_b_3"], row["column_4"]) == (1, 2, 3, 4)
    assert summary.renamed_columns == {"A b": "a_b_2", "A-B": "a_b_3", "": "column_4"}
    ledger = json.loads(lake.read_bytes(f"runs/hostile/run_id={RUN}.json"))
    assert ledger["renamed_columns"] == summary.renamed_columns


def test_one_column_renamed_in_one_file_only_is_still_matched_by_name(spark, core, tmp_path):
    # `A b` and `a_b` in one file, only `a_b` in the other: the second file's column is the first file's `a_b`.
    summary, lake = run(spark, core, tmp_path, {"1.csv": "id,A b,a_b\n1,x,y\n", "2.csv": "a_b,id\nz,2\n"})

    assert summary.status == "succeeded", summary.error
    assert {r["id"]: (r["a_b_2"], r["a_b"]) for r in kept(lake)} == {1: ("x", "y"), 2: (None, "z")}


# ------------------------------------------------------------------ malformed rows


def test_ragged_rows_both_ways_are_quarantined_with_their_field_counts(spark, core, tmp_path):
    summary, lake = run(
        spark,
        core,
        tmp_path,
        {"in.csv": 'id,name,amount\n1,alice,10\n2,bob\n3,carol,30,extra\n4,"dave, jr",40\n5,,\n'},
        columns={"id": "int", "amount": "int"},
    )

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (5, 3, 2)
    assert {r["id"]: (r["name"], r["amount"]) for r in kept(lake)} == {
        1: ("alice", 10),
        4: ("dave, jr", 40),
        5: (None, None),
    }
    assert not summary.csv_read_again_multiline  # no quote in a value or a malformed row: one read
    quarantined = by(rejected(lake), "id")
    assert quarantined["2"]["reject_reason"] == "malformed: 2 fields, header has 3"
    assert quarantined["3"]["reject_reason"] == "malformed: 4 fields, header has 3"
    assert summary.rejected_by_reason == {
        "malformed: 2 fields, header has 3": 1,
        "malformed: 4 fields, header has 3": 1,
    }


CRLF_MULTILINE = (
    'id,address,note\r\n1,"Main St\r\nSpringfield, IL",plain\r\n2,"one ""quoted"" word",x\r\n3,"a\nb","c\nd"\r\n'
)


@pytest.mark.parametrize("multiline", [None, True], ids=["default", "multiline-on"])
def test_a_quoted_line_break_is_read_whole(spark, core, tmp_path, multiline):
    extra = {} if multiline is None else {"csv": {"multiline": True}}
    summary, lake = run(spark, core, tmp_path, {"in.csv": CRLF_MULTILINE}, columns={"id": "int"}, **extra)

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (3, 3, 0)
    assert summary.csv_read_again_multiline is (multiline is None)  # by default: line by line, then whole
    rows = by(kept(lake), "id")
    # (the CSV parser normalizes a line break inside quotes to \n)
    assert rows[1]["address"] == "Main St\nSpringfield, IL" and rows[1]["note"] == "plain"
    assert rows[2]["address"] == 'one "quoted" word'
    assert (rows[3]["address"], rows[3]["note"]) == ("a\nb", "c\nd")


def test_with_multiline_off_the_halves_of_a_broken_row_are_quarantined(spark, core, tmp_path):
    summary, lake = run(
        spark,
        core,
        tmp_path,
        {"in.csv": 'id,name,amount\n1,"two\nlines",10\n2,ok,20\n'},
        csv={"multiline": False},
        columns={"id": "int", "amount": "int"},
    )

    assert summary.status == "succeeded", summary.error
    assert [(r["id"], r["name"], r["amount"]) for r in kept(lake)] == [(2, "ok", 20)]
    assert summary.rows_rejected == 2
    assert all(r["reject_reason"].startswith("malformed: 2 fields, header has 3") for r in rejected(lake))


def test_bytes_invalid_in_the_declared_encoding_are_quarantined(spark, core, tmp_path):
    data = b"id,name,city\n1,caf\xe9,Paris\n2,plain,Lyon\n3,ok,M\xfcnchen\n"
    summary, lake = run(spark, core, tmp_path, {"in.csv": data})

    assert summary.status == "succeeded", summary.error
    assert [r["name"] for r in kept(lake)] == ["plain"]
    assert summary.rejected_by_reason == {"name: invalid utf-8 bytes": 1, "city: invalid utf-8 bytes": 1}
    # Declared as latin-1, the same bytes are valid and kept as they were meant.
    summary, lake = run(spark, core, tmp_path / "latin", {"in.csv": data}, csv={"encoding": "ISO-8859-1"})
    assert summary.status == "succeeded" and summary.rows_rejected == 0
    assert {r["id"]: (r["name"], r["city"]) for r in kept(lake)} == {
        1: ("café", "Paris"),
        2: ("plain", "Lyon"),
        3: ("ok", "München"),
    }


def test_a_decimal_with_more_places_than_its_scale_is_quarantined_not_rounded(spark, core, tmp_path):
    summary, lake = run(
        spark,
        core,
        tmp_path,
        {"in.csv": "id,price,big\n1,12.345,1.001\n2,12.340,1.5\n3,7,2\n4,0.1,3.10\n"},
        columns={"id": "int", "price": "decimal(10,2)", "big": "decimal(38,2)"},
    )

    assert summary.status == "succeeded", summary.error
    assert {r["id"]: (str(r["price"]), str(r["big"])) for r in kept(lake)} == {
        2: ("12.34", "1.50"),
        3: ("7.00", "2.00"),
        4: ("0.10", "3.10"),
    }
    (row,) = rejected(lake)
    assert row["price"] == "12.345" and row["big"] == "1.001"  # quarantined as they arrived
    assert row["reject_reason"] == (
        "price: decimal(10,2): more than 2 decimal places; big: decimal(38,2): more than 2 decimal places"
    )


def test_a_broken_json_line_is_quarantined_not_kept_as_a_column(spark, core, tmp_path):
    summary, lake = run(
        spark, core, tmp_path, {"in.jsonl": '{"id": 1, "name": "a"}\n{"id": 2, "name": \n{"id": 3, "name": "c"}\n'}
    )

    assert summary.status == "succeeded", summary.error
    assert [c["name"] for c in summary.schema] == ["id", "name", "meta_run_id", "meta_ingested_at", "meta_source_file"]
    assert [r["id"] for r in kept(lake)] == [1, 3]
    assert summary.rejected_by_reason == {"malformed: not a valid JSON record": 1}


def test_dw_run_prints_renames_and_missing_columns_in_its_summary():
    from dw import cli

    summary = bronze.RunSummary(dataset="hostile", run_id=RUN, layer="bronze", source="sample", status="succeeded")
    summary.renamed_columns = {"Price [USD]": "price_usd_2", "reject_reason": "reject_reason_2"}
    summary.missing_columns = {"old[1].csv": ["region"]}
    with cli.out.capture() as captured:
        cli._print_summary(summary)
        cli.out.print(bronze.describe_outcome(summary), markup=False)
    text = captured.get()
    assert "renamed column 'Price [USD]'" in text and "price_usd_2" in text
    assert "old[1].csv lacks (NULL)" in text
    assert "warning: source columns renamed" in text and "'reject_reason' -> reject_reason_2" in text
    assert "warning: old[1].csv has no column(s) region; they are NULL in its rows" in text


def test_invalid_bytes_in_a_typed_column_name_both_reasons(spark, core, tmp_path):
    """A number holding invalid bytes fails its type and its encoding; a parsed number is never searched."""
    data = b"id,n,name\n1,4\xff2,a\n2,42,b\n"
    summary, lake = run(spark, core, tmp_path, {"in.csv": data}, columns={"id": "int", "n": "int"})
    assert summary.status == "succeeded", summary.error
    assert [(r["id"], r["n"]) for r in kept(lake)] == [(2, 42)]
    assert summary.rejected_by_reason == {"n: invalid utf-8 bytes": 1, "n: not a valid int": 1}
