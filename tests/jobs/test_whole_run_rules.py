"""Rules over a whole bronze run: what it keeps, and when it keeps the table as it was."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from dwlib import bronze
from dwlib.lake import LocalLake
from tests.jobs.test_hostile_csv import RUN, config, kept

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]


def run_once(spark, core, tmp_path, lake: LocalLake, run_id: str, data: bytes, **extra) -> bronze.RunSummary:
    sample = tmp_path / run_id
    sample.mkdir(parents=True)
    (sample / "in.csv").write_bytes(data)
    ctx = bronze.JobContext(core=core, dataset=config(**extra), lake=lake, run_id=run_id, sample_dir=sample)
    return bronze.run_bronze(spark, ctx)


def test_a_run_whose_every_row_is_rejected_keeps_the_table_even_with_a_budget_of_one(spark, core, tmp_path):
    """max_rejected_fraction 1.0 allows every row to be rejected, not the table to be emptied by kill-and-fill."""
    lake = LocalLake(tmp_path / "lake")
    columns = {"columns": {"id": "int"}}
    first = run_once(spark, core, tmp_path, lake, RUN, b"id,name\n1,a\n2,b\n3,c\n", **columns)
    assert first.status == "succeeded", first.error

    second = run_once(spark, core, tmp_path, lake, "20260102T000000Z", b"id,name\nx,a\ny,b\n", **columns)

    assert second.status == "failed"
    assert second.rows_in == 2 and second.rows_rejected == 2
    assert "every one of the 2 rows the checks saw was rejected; bronze keeps its previous data" in second.error
    assert sorted(r["id"] for r in kept(lake)) == [1, 2, 3]


@pytest.mark.parametrize("encoding", ["UTF-16", "UTF-16LE", "utf-32"])
def test_a_csv_in_a_wide_encoding_is_read_whole_and_kept_as_written(spark, core, tmp_path, encoding):
    """Line by line, Spark split a UTF-16 file at the byte \\n: 3 rows came out as 4, all rejected."""
    text = "id,name\r\n1,café\r\n2,Straße\r\n3,naïve\r\n"
    lake = LocalLake(tmp_path / "lake")
    codec = {"UTF-16": "utf-16", "UTF-16LE": "utf-16-le", "utf-32": "utf-32"}[encoding]

    summary = run_once(spark, core, tmp_path, lake, RUN, text.encode(codec), csv={"encoding": encoding})

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (3, 3, 0)
    assert {r["id"]: r["name"] for r in kept(lake)} == {1: "café", 2: "Straße", 3: "naïve"}


def test_dates_before_1582_are_kept_as_written(spark, core, tmp_path):
    """Spark 3.5 refuses to write them by default (its calendar rebase), and the whole run failed."""
    lake = LocalLake(tmp_path / "lake")
    data = b"id,day,at\n1,0001-01-01,1900-01-01 00:00:00\n2,1000-06-15,1950-12-31 23:00:00\n3,2024-02-29,2024-02-29 12:00:00\n"

    summary = run_once(spark, core, tmp_path, lake, RUN, data, columns={"id": "int", "day": "date", "at": "timestamp"})

    assert summary.status == "succeeded", summary.error
    assert summary.rows_kept == 3
    # Read back by a reader other than Spark, in the proleptic Gregorian calendar Athena uses.
    table = pq.read_table(lake.path("bronze/hostile/")).to_pylist()
    assert {r["id"]: (r["day"], r["at"].replace(tzinfo=None)) for r in table} == {
        1: (dt.date(1, 1, 1), dt.datetime(1900, 1, 1)),
        2: (dt.date(1000, 6, 15), dt.datetime(1950, 12, 31, 23)),
        3: (dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 12)),
    }


def test_a_timestamp_before_1900_fails_the_run_saying_why_and_keeps_the_table(spark, core, tmp_path):
    """Parquet tables keep Spark's INT96 timestamps, which it will not write before 1900 without a rebase that
    costs every run; the message must say so, not blame reading the input."""
    lake = LocalLake(tmp_path / "lake")
    columns = {"columns": {"id": "int", "at": "timestamp"}}
    first = run_once(spark, core, tmp_path, lake, RUN, b"id,at\n1,2024-01-01 00:00:00\n", **columns)
    assert first.status == "succeeded", first.error

    second = run_once(spark, core, tmp_path, lake, "20260102T000000Z", b"id,at\n2,1899-12-30 00:00:00\n", **columns)

    assert second.status == "failed"
    assert "a timestamp before 1900-01-01 cannot be written to a Parquet table" in second.error
    assert [r["id"] for r in kept(lake)] == [1]
