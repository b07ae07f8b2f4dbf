"""The driver's key checks (dwlib.keys) give Spark's answers on the Parquet Spark writes.

A large bronze input's repeat check and an Iceberg merge's per-file key matches read the key columns
in the driver instead of running a Spark shuffle. A missed repeat would put two rows of one key into
bronze, a missed match two rows of one key into a merged table: these tests compare each answer with
Spark's own (`transform.repeated_keys`, a semi-join) and with the rows themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from decimal import Decimal

import pyarrow as pa
import pytest

from dwlib import bronze, keys, transform
from dwlib.config import DatasetConfig
from dwlib.lake import LocalLake
from tests.jobs.test_iceberg import RUN1, Shop, csv

pytestmark = [pytest.mark.spark]

SCHEMA = "id bigint, region string, day date, at timestamp, amount decimal(12,2), flag boolean, score double"


def write_files(spark, folder, *files: list[tuple]) -> None:
    """Each list of rows as one Parquet file of its own, in order, as Spark writes bronze."""
    for rows in files:
        spark.createDataFrame(rows, SCHEMA).coalesce(1).write.mode("append").parquet(str(folder))


def spark_answer(spark, folder, primary_key: list[str], unique: list[str]) -> list[str]:
    config = DatasetConfig.model_validate(
        {
            "dataset": "key-check",
            "description": "key check",
            "data_size_category": "small",
            "format": "csv",
            "landing": True,
            "primary_key": primary_key,
            "quality": {"unique": unique},
        }
    )
    return transform.repeated_keys(spark.read.parquet(str(folder)), config)


def truth(files: list[list[tuple]], columns: list[str], key: list[str]) -> bool:
    rows = [dict(zip(columns, r, strict=True)) for f in files for r in f]
    values = Counter(tuple(r[c] for c in key) for r in rows if all(r[c] is not None for c in key))
    return any(n > 1 for n in values.values())


COLUMNS = ["id", "region", "day", "at", "amount", "flag", "score"]
D, T = dt.date(2026, 1, 1), dt.datetime(2026, 1, 1, 10, 0)


def row(i, region="eu", day=D, at=T, amount=Decimal("1.00"), flag=True, score=0.5):
    return (i, region, day, at, amount, flag, score)


CASES = {
    # the repeat is the first row of one file and the last row of another
    "first and last rows of two files": [[row(7), row(1), row(2)], [row(3), row(4), row(7)]],
    "no repeat across files": [[row(1), row(2)], [row(3), row(4)]],
    # (1, null) twice is no key; (2, "us") twice is a repeat of the composite key only
    "composite key, null parts": [
        [row(1, region=None), row(2, region="us")],
        [row(1, region=None), row(2, region="us", day=None)],
    ],
    "composite key repeats": [[row(1, region="eu"), row(2, region="us")], [row(1, region="us"), row(2, region="us")]],
    # a timestamp past the nanosecond range (Spark writes INT96) and microseconds apart stay distinct and equal ones repeat
    "timestamps of 1900 and 2300": [
        [row(1, at=dt.datetime(1900, 1, 1)), row(2, at=dt.datetime(2300, 12, 31, 23, 59))],
        [row(3, at=dt.datetime(1900, 1, 1, 0, 0, 0, 1)), row(4, at=dt.datetime(2300, 12, 31, 23, 59))],
    ],
    "decimals differing in the last place": [[row(1, amount=Decimal("0.01"))], [row(2, amount=Decimal("0.02"))]],
}
KEYS = [["id"], ["id", "region"], ["region", "day"], ["at"], ["amount"], ["day"], ["flag"]]


@pytest.mark.parametrize("case", list(CASES))
def test_the_driver_finds_exactly_the_repeats_spark_finds(spark, tmp_path, case):
    files = CASES[case]
    folder = tmp_path / "staged"
    write_files(spark, folder, *files)
    lake = LocalLake(tmp_path)
    for key in KEYS:
        driver = keys.repeated_keys(lake, "staged/", [key])
        expected = [", ".join(key)] if truth(files, COLUMNS, key) else []
        assert driver == expected, (case, key)
        assert spark_answer(spark, folder, key, []) == expected, (case, key)


def test_primary_key_and_unique_columns_are_answered_each_by_name(spark, tmp_path):
    write_files(spark, tmp_path / "staged", [row(1, region="eu"), row(2, region="eu")], [row(3, region="us")])
    assert keys.repeated_keys(LocalLake(tmp_path), "staged/", [["id"], ["region"], ["amount"]]) == ["region", "amount"]
    assert spark_answer(spark, tmp_path / "staged", ["id"], ["region", "amount"]) == ["region", "amount"]


def test_keys_the_driver_must_not_judge_are_left_to_spark(spark, tmp_path, monkeypatch):
    """Spark groups -0.0 with 0.0 and every NaN together; Arrow does not: a floating-point key is Spark's.
    Keys over the driver's byte budget, and a key column a file lacks, are Spark's too."""
    write_files(spark, tmp_path / "staged", [row(1, score=0.0), row(2, score=-0.0)])
    lake = LocalLake(tmp_path)
    assert keys.repeated_keys(lake, "staged/", [["score"]]) is None
    assert spark_answer(spark, tmp_path / "staged", ["score"], []) == ["score"]
    assert keys.repeated_keys(lake, "staged/", [["id"], ["nope"]]) is None
    monkeypatch.setattr(keys, "DRIVER_KEY_BYTES", 8)
    assert keys.repeated_keys(lake, "staged/", [["id"]]) is None


def test_on_s3_the_key_columns_are_read_by_range(spark, tmp_path):
    """The same answer from S3 (moto), fetching the footers and key pages, not the whole objects."""
    from moto import mock_aws

    from dwlib.lake import S3Lake

    write_files(
        spark,
        tmp_path / "staged",
        [
            row(i, region="".join(hashlib.sha256(f"{i}-{j}".encode()).hexdigest() for j in range(4)))
            for i in range(2000)
        ],
        [row(5000 + i) for i in range(1999)] + [row(0)],  # id 0 again, the last row of the second file
    )
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="key-check")
        for path in (tmp_path / "staged").glob("*.parquet"):
            client.put_object(Bucket="key-check", Key=f"lake/staged/{path.name}", Body=path.read_bytes())
        fetched = []
        get = client.get_object

        def counting_get(**kwargs):
            answer = get(**kwargs)
            fetched.append(answer["ContentLength"])
            return answer

        client.get_object = counting_get
        lake = S3Lake("key-check", "lake", client=client)
        assert keys.repeated_keys(lake, "staged/", [["id"], ["amount"]]) == ["id", "amount"]
        sizes = sum(p.stat().st_size for p in (tmp_path / "staged").glob("*.parquet"))
        assert sum(fetched) < sizes  # the long `region` pages were never fetched
        # The kept rows a bronze run reports are counted from the same footers: a ranged GET or two a file
        # (PyArrow reads a file's last 64 KiB at once, here the whole of these small files).
        fetched.clear()
        assert keys.parquet_rows(lake, "staged/") == 4000
        assert len(fetched) <= 2 * len(list((tmp_path / "staged").glob("*.parquet")))


def test_merge_hits_count_each_files_rows_with_a_run_key():
    """Older files of a widened key (int before bigint) match; a null key part never matches."""
    old = [
        pa.table({"id": pa.array([1, 2, 3, None], pa.int32())}),
        pa.table({"id": pa.array([8, 9], pa.int32())}),
        pa.table({"id": pa.array([2, 2], pa.int32())}),
    ]
    new = [pa.table({"id": pa.array([2, 3, None, 9], pa.int64())})]
    assert keys.hits(old, new) == [2, 1, 2]
    old = [pa.table({"a": [1, 1, None, 2], "b": ["x", "y", "x", None]})]
    new = [pa.table({"a": [1, None, 2], "b": ["x", "x", None]})]
    assert keys.hits(old, new) == [1]
    assert keys.hits(old, []) == [0]


def brute_hits(old: list[pa.Table], new: list[pa.Table]) -> list[int]:
    """Row by row in Python: the rows of each old table whose whole key (no null part) is some new row's."""
    run = {tuple(r.values()) for t in new for r in t.to_pylist() if None not in r.values()}
    return [sum(1 for r in t.to_pylist() if None not in r.values() and tuple(r.values()) in run) for t in old]


def _values(kind: str, n: int, seed: int) -> list:
    """n values of a key type, a tenth null, drawn from a small range so that old and new tables share some."""
    import random

    draw = random.Random(seed)
    pick = [draw.randrange(40) if draw.random() > 0.1 else None for _ in range(n)]
    make = {
        "int": lambda v: v,
        "date": lambda v: D + dt.timedelta(days=v),
        "timestamp": lambda v: T + dt.timedelta(microseconds=v),
        "string": lambda v: f"k{v:03d}",
        "decimal": lambda v: Decimal(v) / 100,
    }[kind]
    return [None if v is None else make(v) for v in pick]


ARROW_KEY_TYPES = {
    "int": (pa.int32(), pa.int64()),  # older files of a key widened from int to bigint
    "date": (pa.date32(), pa.date32()),
    "timestamp": (pa.timestamp("us"), pa.timestamp("us")),
    "string": (pa.string(), pa.string()),
    "decimal": (pa.decimal128(12, 2), pa.decimal128(12, 2)),
}


@pytest.mark.parametrize("kind", [*ARROW_KEY_TYPES, "int and string"])
def test_merge_hits_match_a_row_by_row_count_over_many_old_tables(kind):
    """Many old tables (one empty, one all null), run keys repeated and null: each table's count is exact."""
    parts = kind.split(" and ")

    def table(n: int, seed: int, newer: bool) -> pa.Table:
        return pa.table(
            {f"k{i}": pa.array(_values(p, n, seed + i), ARROW_KEY_TYPES[p][newer]) for i, p in enumerate(parts)}
        )

    old = [table(n, seed, False) for seed, n in enumerate((50, 0, 7, 200, 1))]
    old.append(pa.table({f"k{i}": pa.nulls(3, ARROW_KEY_TYPES[p][0]) for i, p in enumerate(parts)}))
    new = [table(30, 100, True), table(30, 101, True)]
    expected = brute_hits(old, new)
    assert keys.hits(old, new) == expected
    assert sum(expected[:1]) > 0 and expected[1] == 0 and expected[-1] == 0  # the cases are not all trivial


THREE_COLUMNS = "order_id,customer,amount,created_at"


def test_a_large_inputs_composite_key_repeats_are_rejected_as_a_small_inputs_are(spark, core, tmp_path, monkeypatch):
    """The check after the write, answered in the driver: the same rows kept and rejected as the window."""
    from tests.jobs.test_iceberg import config

    text = csv(
        "1,ann,10,2026-01-01 10:00:00",
        ",ann,11,2026-01-01 11:00:00",  # a null key part: rejected as null, never a repeat
        "1,bob,12,2026-01-01 12:00:00",
        "1,ann,13,2026-01-01 13:00:00",  # (1, ann) again: rejected
        ",ann,14,2026-01-01 14:00:00",
        "2,ann,15,2026-01-01 15:00:00",
    )
    dataset = config(
        table_format="parquet",
        columns={"order_id": "bigint", "customer": "string", "amount": "int", "created_at": "timestamp"},
        primary_key=["order_id", "customer"],
        quality={"max_rejected_fraction": 0.9},
    )
    outcomes = []
    for large in (True, False):
        if large:
            monkeypatch.setattr(bronze, "CACHE_INPUT_BYTES", 0)
            # the Spark check would give the same answer; this run must not need it
            monkeypatch.setattr(transform, "repeated_keys", lambda *a: pytest.fail("Spark's repeat check ran"))
        (tmp_path / str(large)).mkdir()
        shop = Shop(spark, core, tmp_path / str(large), dataset)
        summary = shop.run(RUN1, text)
        monkeypatch.undo()
        assert summary.status == "succeeded", summary.error
        kept = sorted(
            tuple(r) for r in spark.read.parquet(str(shop.lake.path("bronze/shop_orders"))).select("amount").collect()
        )
        outcomes.append((summary.rows_kept, summary.rejected_by_reason, kept))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][2] == [(10,), (12,), (15,)]
    assert outcomes[0][1]["duplicate primary key"] == 1


def test_kept_keys_are_given_only_for_the_files_they_were_read_from(spark, tmp_path):
    """A staged file rewritten or added after the check: the merge must read the keys again, not use old ones."""
    lake = LocalLake(tmp_path)
    write_files(spark, tmp_path / "staged", [row(1), row(2)], [row(3)])
    with keys.keeping() as kept:
        assert keys.repeated_keys(lake, "staged/", [["id"], ["region"]]) == ["region"]
    assert [t.column_names for t in kept.take(lake, "staged/", ["id"])] == [["id"], ["id"]]
    assert kept.take(lake, "staged/", ["id"]) is None  # given once
    with keys.keeping() as kept:
        keys.repeated_keys(lake, "staged/", [["id"]])
    write_files(spark, tmp_path / "staged", [row(4)])
    assert kept.take(lake, "staged/", ["id"]) is None
    with keys.keeping() as kept:
        keys.repeated_keys(lake, "staged/", [["id"]])
    assert kept.take(lake, "staged/", ["region"]) is None  # a column the check did not read
    assert keys.repeated_keys(lake, "staged/", [["id"]]) == [] and not kept.reads  # kept only inside the block
