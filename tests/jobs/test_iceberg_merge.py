"""Iceberg `merge` through the real commit path: which files a merge reads, drops and rewrites, and that
the table always equals the reference upsert (one row per key, the latest run's) computed with pandas.

How many files a run writes is Spark's choice; what each merge must read, drop and rewrite is worked out
here from the files' own rows (read with PyArrow), not from the manifests the merge reads."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dw.query import QueryError, run_query
from dwlib import bronze, keys
from dwlib.naming import Naming
from tests.jobs.test_iceberg import RUN1, RUN2, RUN3, RUN4, TABLE, Shop, config, csv

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("iceberg")]
COLUMNS = ["order_id", "customer", "amount", "created_at"]


class Reference:
    """The upsert by key, done by hand in pandas: what the table must hold after each run."""

    def __init__(self, keys: list[str]):
        self.keys, self.rows = keys, pd.DataFrame(columns=COLUMNS)

    def apply(self, text: str) -> None:
        new = pd.DataFrame([line.split(",") for line in text.strip().splitlines()[1:]], columns=COLUMNS)
        self.rows = pd.concat([self.rows, new], ignore_index=True).drop_duplicates(self.keys, keep="last")

    def expected(self) -> list[tuple]:
        return sorted((int(r.order_id), r.customer, int(r.amount), r.created_at) for r in self.rows.itertuples())


class MergeShop(Shop):
    def __init__(self, spark, core, tmp_path: Path, keys: list[str]):
        super().__init__(spark, core, tmp_path, config(load_mode="merge", primary_key=keys))
        self.reference = Reference(keys)

    def merge(self, run_id: str, text: str) -> dict:
        summary = self.run(run_id, text)
        assert summary.status == "succeeded", summary.error
        self.reference.apply(text)
        assert self.table() == self.reference.expected()
        # the run's record of the table's size after the commit is the snapshot's own
        files = self.query('SELECT count(*), sum(file_size_in_bytes) FROM pp_dw_bronze."shop_orders$files"')[0]
        assert (summary.iceberg["data_files"], summary.iceberg["data_bytes"]) == tuple(files)
        return summary.iceberg

    def table(self) -> list[tuple]:
        sql = f"SELECT order_id, customer, amount, strftime(created_at, '%Y-%m-%d %H:%M:%S') FROM {TABLE}"
        return sorted(self.query(sql))

    def files(self) -> dict[str, int]:
        """The current snapshot's data files, as `$files` lists them, with their record counts."""
        try:
            return dict(self.query('SELECT file_path, record_count FROM pp_dw_bronze."shop_orders$files"'))
        except QueryError:  # no table yet
            return {}

    def operation(self) -> str:
        return self.snapshots()[-1][1]


def ids(path: str) -> set[int]:
    """The order ids a data file holds, read from the file itself."""
    return set(pq.read_table(unquote(path.removeprefix("file://")), columns=["order_id"]).column(0).to_pylist())


A = csv("1,ann,10,2026-01-01 10:00:00", "2,bob,20,2026-01-01 11:00:00", "3,cid,30,2026-01-01 12:00:00")
B = csv("10,dan,100,2026-01-02 10:00:00", "11,eve,110,2026-01-02 11:00:00", "12,fay,120,2026-01-02 12:00:00")
C = csv("20,gus,200,2026-01-03 10:00:00", "21,hal,210,2026-01-03 11:00:00", "22,ivy,220,2026-01-03 12:00:00")


def three_runs(spark, core, tmp_path) -> MergeShop:
    """A table of keys 1-3, 10-12 and 20-22, each range in files of its own."""
    shop = MergeShop(spark, core, tmp_path, ["order_id"])
    for run_id, text in ((RUN1, A), (RUN2, B), (RUN3, C)):
        before = set(shop.files())
        commit = shop.merge(run_id, text)
        # new keys only, outside every file's bounds: nothing read, nothing removed, an append
        assert (commit["files_scanned"], commit["files_hit"], commit["files_removed"]) == (0, 0, 0)
        assert shop.operation() == "append" and before < set(shop.files())
    return shop


def expected_cuts(before: dict[str, int], run_keys: set[int]) -> tuple[set[str], set[str], set[str]]:
    """The files whose id range covers a run key (read), those holding one (removed), those keeping other rows."""
    held = {path: ids(path) for path in before}
    scanned = {p for p, v in held.items() if any(min(v) <= k <= max(v) for k in run_keys)}
    hit = {p for p, v in held.items() if v & run_keys}
    return scanned, hit, {p for p in hit if held[p] - run_keys}


def test_a_merge_whose_key_falls_in_one_files_bounds_reads_and_rewrites_only_that_file(spark, core, tmp_path):
    shop = three_runs(spark, core, tmp_path)
    before = shop.files()
    scanned, hit, rewritten = expected_cuts(before, {11})
    commit = shop.merge(RUN4, csv("11,eve,111,2026-01-02 11:00:00"))
    assert len(hit) == 1 and len(scanned) < len(before)  # the files of 1-3 and 20-22 are never read
    assert (commit["files_scanned"], commit["files_hit"], commit["files_rewritten"]) == (
        len(scanned),
        1,
        len(rewritten),
    )
    after = shop.files()
    assert set(before) - set(after) == hit and commit["files_removed"] == 1  # every other file stays as it was
    assert shop.operation() == "overwrite"
    assert shop.query(f"SELECT amount FROM {TABLE} WHERE order_id IN (10, 11, 12) ORDER BY order_id") == [
        (100,),
        (111,),
        (120,),
    ]


def test_a_merge_with_keys_in_every_file_drops_a_wholly_replaced_file_without_rewriting_it(spark, core, tmp_path):
    shop = three_runs(spark, core, tmp_path)
    before = shop.files()
    run_keys = {1, 10, 20, 21, 22}
    _, hit, rewritten = expected_cuts(before, run_keys)
    commit = shop.merge(
        RUN4,
        csv(
            "1,ann,11,2026-01-01 10:00:00",
            "10,dan,101,2026-01-02 10:00:00",
            "20,gus,201,2026-01-03 10:00:00",
            "21,hal,211,2026-01-03 11:00:00",
            "22,ivy,221,2026-01-03 12:00:00",
        ),
    )
    assert (commit["files_hit"], commit["files_removed"], commit["files_rewritten"]) == (
        len(hit),
        len(hit),
        len(rewritten),
    )
    # the files of 20-22 hold only run keys: dropped, never rewritten
    assert len(rewritten) < len(hit) and set(before) - set(shop.files()) == hit
    assert shop.query(f"SELECT count(*), count(DISTINCT order_id) FROM {TABLE}") == [(9, 9)]


def test_a_merge_of_new_keys_only_adds_files_and_removes_none(spark, core, tmp_path):
    shop = MergeShop(spark, core, tmp_path, ["order_id"])
    shop.merge(
        RUN1, csv("1,ann,10,2026-01-01 10:00:00", "3,cid,30,2026-01-01 12:00:00", "5,eve,50,2026-01-01 12:00:00")
    )
    before = shop.files()
    # a key between the table's keys: a file whose bounds enclose it is read for its keys, and holds none
    scanned, _, _ = expected_cuts(before, {2})
    commit = shop.merge(RUN2, csv("2,bob,20,2026-01-01 11:00:00"))
    assert (commit["files_scanned"], commit["files_hit"], commit["files_removed"]) == (len(scanned), 0, 0)
    assert set(before) < set(shop.files()) and shop.operation() == "append"


def test_a_merge_by_a_string_and_timestamp_key_prunes_by_both_columns(spark, core, tmp_path):
    shop = MergeShop(spark, core, tmp_path, ["customer", "created_at"])
    shop.merge(
        RUN1, csv("1,ann,10,2026-01-01 10:00:00", "2,ann,20,2026-01-02 10:00:00", "3,bob,30,2026-01-01 10:00:00")
    )
    first = shop.files()
    # the same customers a month later: the strings overlap the first files' bounds, the timestamps do not
    commit = shop.merge(RUN2, csv("4,ann,40,2026-02-01 10:00:00", "5,bob,50,2026-02-02 10:00:00"))
    assert (commit["files_scanned"], commit["files_removed"]) == (0, 0)
    second = set(shop.files()) - set(first)
    # one key of the first run replaced, one new: only the first run's file holding 2026-01-02 is read
    # (the second run's files share the customer but not the time)
    commit = shop.merge(RUN3, csv("6,ann,60,2026-01-02 10:00:00", "7,cid,70,2026-01-02 10:00:00"))
    (removed,) = set(first) - set(shop.files())
    assert ids(removed) >= {2}
    assert (commit["files_scanned"], commit["files_hit"], commit["files_removed"]) == (1, 1, 1)
    assert commit["files_rewritten"] == (first[removed] > 1)
    assert second <= set(shop.files())
    assert shop.query(f"SELECT order_id FROM {TABLE} WHERE customer = 'ann' ORDER BY created_at") == [(1,), (6,), (4,)]


def test_an_expiry_failure_leaves_the_run_succeeded_and_is_recorded_and_printed(spark, core, tmp_path, caplog):
    """A file expiry must delete cannot be deleted (immutable, so even root cannot): the commit stands."""
    if not shutil.which("chattr"):
        pytest.skip("needs chattr to make a file undeletable")
    shop = MergeShop(spark, core, tmp_path, ["order_id"])
    shop.merge(RUN1, A)
    # a file no snapshot uses (as a crashed run leaves one): expiry deletes such files
    stray = shop.lake.path("bronze/shop_orders/data/raw_run_id=X/run_id=X/part-00000-stray.parquet")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"PAR1")
    made = subprocess.run(["chattr", "+i", str(stray)], capture_output=True)
    if made.returncode:
        pytest.skip(f"the file system refuses chattr +i: {made.stderr.decode().strip()}")
    try:
        with caplog.at_level(logging.WARNING, logger="dwlib.iceberg"):
            summary = shop.run(RUN2, B)
            shop.reference.apply(B)
    finally:
        subprocess.run(["chattr", "-i", str(stray)], check=True)
    assert summary.status == "succeeded", summary.error
    error = summary.iceberg["expiry_error"]
    # the lake names the file it could not delete and why, on one line
    assert error.startswith(f"LakeError: could not delete {stray} in the lake (Operation not permitted)"), error
    assert "\n" not in error
    ledger = shop.lake.read_json(f"runs/shop-orders/run_id={RUN2}.json")
    assert ledger["status"] == "succeeded" and ledger["iceberg"]["expiry_error"] == error
    printed = bronze.describe_outcome(summary)
    assert "warning: the snapshot is committed, but expiring old snapshots failed (LakeError: could not delete" in printed
    assert any("expiring old snapshots failed: LakeError" in r.getMessage() for r in caplog.records)
    assert shop.table() == shop.reference.expected() and len(shop.table()) == 6
    # the next run's expiry, the file deletable again, succeeds and says nothing
    again = shop.run(RUN3, C)
    assert again.status == "succeeded" and again.iceberg["expiry_error"] == "" and not stray.exists()
    assert "expiring old snapshots failed" not in bronze.describe_outcome(again)


def test_a_successful_run_records_no_expiry_error(spark, core, tmp_path):
    shop = MergeShop(spark, core, tmp_path, ["order_id"])
    summary = shop.run(RUN1, A)
    assert summary.status == "succeeded" and summary.iceberg["expiry_error"] == ""
    assert run_query(f"SELECT count(*) FROM {TABLE}", shop.lake.root, Naming.of(core)).rows == [(3,)]


def test_a_merge_matched_by_spark_instead_of_the_driver_reads_drops_and_rewrites_the_same_files(
    spark, core, tmp_path, monkeypatch
):
    """Keys too large for the driver are matched by a Spark semi-join: the same files, the same rows."""
    run = csv("1,ann,11,2026-01-01 10:00:00", "11,eve,111,2026-01-02 11:00:00", "20,gus,201,2026-01-03 10:00:00")
    outcomes = []
    for driver in (True, False):
        if not driver:
            monkeypatch.setattr(keys, "DRIVER_KEY_BYTES", 0)
            monkeypatch.setattr(keys, "hits", lambda *a: pytest.fail("the driver matched keys it must leave to Spark"))
        (tmp_path / str(driver)).mkdir()
        shop = three_runs(spark, core, tmp_path / str(driver))
        before = shop.files()
        scanned, hit, rewritten = expected_cuts(before, {1, 11, 20})
        commit = shop.merge(RUN4, run)  # the table checked against the reference upsert
        assert (commit["files_scanned"], commit["files_hit"], commit["files_rewritten"]) == (
            len(scanned),
            len(hit),
            len(rewritten),
        )
        assert rewritten and set(before) - set(shop.files()) == hit
        outcomes.append(shop.table())
        monkeypatch.undo()
    assert outcomes[0] == outcomes[1] and len(outcomes[0]) == 9


@pytest.mark.parametrize("partition_by", [["month(created_at)"], ["year(created_at)", "customer"]])
def test_a_spark_matched_merge_of_a_partitioned_table_finds_files_whose_path_needs_escaping(
    spark, core, tmp_path, monkeypatch, partition_by
):
    """month(), year() and hour() folders hold a `:` Spark writes as `%3A`; a customer folder holds a space, `%`,
    `=`, `:`, a non-ASCII letter; so does the lake's path. Spark names each file back as a URI (`%253A`, `%20`):
    the merge still finds the files it hit, run after run."""
    monkeypatch.setattr(keys, "DRIVER_KEY_BYTES", 0)  # a table whose key columns exceed what the driver reads
    monkeypatch.setattr(keys, "hits", lambda *a: pytest.fail("the driver matched keys it must leave to Spark"))
    folder = tmp_path / "lake 50% a:b=c ü"
    folder.mkdir()
    columns = {"order_id": "bigint", "customer": "string", "amount": "int", "created_at": "timestamp"}
    shop = Shop(spark, core, folder, config(load_mode="merge", partition_by=partition_by, columns=columns))
    reference = Reference(["order_id"])
    runs = [
        csv("1,a b,10,2026-01-01 10:00:00", "2,50%,20,2026-01-02 11:00:00", "3,x:y=z,30,2026-02-02 11:00:00"),
        csv("2,50%,21,2026-01-02 11:00:00", "4,ü %3A,40,2026-01-05 00:00:00", "3,x:y=z,31,2026-02-02 11:00:00"),
        csv("4,ü %3A,41,2026-01-05 00:00:00", "1,a b,11,2026-01-01 10:00:00", "5,a b,50,2025-12-31 23:00:00"),
    ]
    for run_id, text in zip((RUN1, RUN2, RUN3), runs, strict=True):
        summary = shop.run(run_id, text)
        assert summary.status == "succeeded", summary.error
        reference.apply(text)
        sql = f"SELECT order_id, customer, amount, strftime(created_at, '%Y-%m-%d %H:%M:%S') FROM {TABLE}"
        assert sorted(shop.query(sql)) == reference.expected()
        if run_id != RUN1:
            assert summary.iceberg["files_hit"] >= 1
    amounts = shop.query(f"SELECT order_id, amount FROM {TABLE} ORDER BY 1")
    assert amounts == [(1, 11), (2, 21), (3, 31), (4, 41), (5, 50)]


def test_a_large_runs_merge_matches_the_keys_its_key_check_read_without_reading_them_again(
    spark, core, tmp_path, monkeypatch
):
    """The primary-key check of a large input reads the staged key columns in the driver; the merge matches
    those same keys against the table's files (its own files' keys are not read twice), with the same rows."""
    monkeypatch.setattr(bronze, "CACHE_INPUT_BYTES", 0)  # a large input: keys checked after the write
    shop = three_runs(spark, core, tmp_path)
    read: list[list[str]] = []
    real = keys.read_keys

    def recording(files, *args, **kwargs):
        read.append([unquote(str(f)) for f in files])
        return real(files, *args, **kwargs)

    monkeypatch.setattr(keys, "read_keys", recording)
    before = shop.files()
    _, hit, rewritten = expected_cuts(before, {2, 11, 12, 30})
    commit = shop.merge(
        RUN4,
        csv(
            "2,bob,21,2026-01-01 11:00:00",
            "11,eve,111,2026-01-02 11:00:00",
            "12,fay,121,2026-01-02 12:00:00",
            "30,jon,300,2026-01-04 10:00:00",
        ),
    )
    assert (commit["files_hit"], commit["files_rewritten"]) == (len(hit), len(rewritten))
    assert rewritten and set(before) - set(shop.files()) == hit
    # one read of the run's staged keys (the check), one of the table's candidate files (the merge)
    assert len(read) == 2 and all(f.startswith("staging/") for f in read[0])
    assert len(read[1]) == commit["files_scanned"] and {unquote(p) for p in hit} <= set(read[1])
    assert shop.query(f"SELECT amount FROM {TABLE} WHERE order_id IN (2, 11, 12, 30) ORDER BY order_id") == [
        (21,),
        (111,),
        (121,),
        (300,),
    ]


@pytest.mark.parametrize(
    ("kind", "first", "second", "third"),
    [
        ("decimal(9,2)", ["1.10", "2.20", "3.30"], ["10.10", "11.11"], ["2.20", "11.11", "20.00"]),
        ("decimal(18,2)", ["1.10", "2.20", "3.30"], ["10.10", "11.11"], ["2.20", "11.11", "20.00"]),
        ("decimal(20,2)", ["1.10", "2.20", "3.30"], ["10.10", "11.11"], ["2.20", "11.11", "20.00"]),
        ("date", ["2026-01-01", "2026-01-02"], ["2026-02-01", "2026-02-02"], ["2026-01-02", "2026-03-01"]),
        (
            "timestamp",
            ["2026-01-01 00:00:01", "2026-01-01 00:00:02"],
            ["2026-02-01 00:00:01", "2026-02-01 00:00:02"],
            ["2026-01-01 00:00:02", "2026-03-01 00:00:00"],
        ),
    ],
)
def test_a_merge_by_a_decimal_date_or_timestamp_key_upserts_on_every_run(
    spark, core, tmp_path, kind, first, second, third
):
    """A decimal of precision up to 18 is stored as an integer, whose Parquet statistics PyArrow does not decode:
    the merge still prunes by them, run after run."""
    shop = Shop(spark, core, tmp_path, config(load_mode="merge", columns={"k": kind, "v": "int"}, primary_key=["k"]))
    expected: dict[str, int] = {}
    for run_id, run_keys, value in ((RUN1, first, 1), (RUN2, second, 2), (RUN3, third, 3)):
        summary = shop.run(run_id, csv(*[f"{k},{value}" for k in run_keys], header="k,v"))
        assert summary.status == "succeeded", summary.error
        expected.update(dict.fromkeys(run_keys, value))
        if run_id == RUN2:  # keys beyond the first run's bounds: no file read
            assert summary.iceberg["files_scanned"] == 0
    rows = shop.query(f"SELECT k, v FROM {TABLE}")
    assert len(rows) == len(expected) and {str(k)[:19]: v for k, v in rows} == expected
