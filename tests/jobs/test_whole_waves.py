"""A large input is read in whole waves of tasks (`jobs.whole_waves`): Spark's own split planning, given the
files' sizes, cuts them so every core has a split in every wave, where Spark alone leaves the last wave to one
short split while the other cores wait.

The planning tests hand Spark sparse files (their size without their bytes) and ask it for the read's splits;
nothing is read. The bronze test runs a real run, made large by a small split size."""

from __future__ import annotations

from pathlib import Path

import pytest

from dwlib import bronze, jobs
from tests.jobs.test_iceberg import RUN1, Shop, config, csv

pytestmark = [pytest.mark.spark]

MIB = 1024**2
TWO_CORES = {"spark.sql.leafNodeDefaultParallelism": "2"}  # what Spark divides a read by, whatever runs it


def sparse(folder: Path, sizes: list[int]) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        path = folder / f"part-{i}.csv"
        with path.open("wb") as handle:
            handle.truncate(size)
        paths.append(path)
    return paths


def splits(spark, paths: list[Path], settings: dict[str, str]) -> list[int]:
    """The bytes of each read task Spark plans for these files under these settings."""
    with jobs.session_settings(spark, settings):
        df = spark.read.schema("line string").csv([str(p) for p in paths])
        planned = df._jdf.queryExecution().executedPlan().execute().partitions()
        return [sum(f.length() for f in task.files()) for task in planned]


def waves(tasks: list[int], cores: int = 2) -> int:
    return -(-len(tasks) // cores)


def test_a_file_just_above_a_wave_is_read_in_one_wave_of_even_splits(spark, tmp_path):
    (path,) = sparse(tmp_path, [297_610_149])  # the bench's 3 M-row CSV
    with jobs.session_settings(spark, TWO_CORES):
        alone = splits(spark, [path], {})
        settings = jobs.whole_waves(spark, [path.stat().st_size])
        ours = splits(spark, [path], settings)
    assert [round(t / MIB) for t in alone] == [128, 128, 28]  # two waves, the second one core's
    assert len(ours) == 2 and sum(ours) == sum(alone)  # one wave, every byte still read
    assert max(ours) <= 1.25 * 128 * MIB and max(ours) - min(ours) < 0.03 * max(ours)


@pytest.mark.parametrize(
    "sizes",
    [[340_000_000], [150_000_000] * 3, [400_000_000, 20_000_000, 5_000_000], [900_000_000]],
    ids=["one file", "three equal files", "a large file and small ones", "several waves"],
)
def test_every_wave_is_full_and_none_is_added(spark, tmp_path, sizes):
    paths = sparse(tmp_path, sizes)
    with jobs.session_settings(spark, TWO_CORES):
        alone = splits(spark, paths, {})
        ours = splits(spark, paths, jobs.whole_waves(spark, sizes))
    assert sum(ours) == sum(alone) == sum(sizes)
    assert len(ours) % 2 == 0  # whole waves
    assert waves(ours) <= waves(alone)
    assert max(ours) <= 1.25 * 128 * MIB
    assert max(ours) < 1.2 * (sum(sizes) / len(ours))  # no task much longer than its share
    if len(alone) % 2:
        assert max(ours) < max(alone) or waves(ours) < waves(alone)


def test_a_split_size_the_session_sets_is_never_exceeded(spark, tmp_path):
    (path,) = sparse(tmp_path, [297_610_149])
    cap = {**TWO_CORES, "spark.sql.files.maxPartitionBytes": str(128 * MIB)}
    with jobs.session_settings(spark, cap):
        ours = splits(spark, [path], jobs.whole_waves(spark, [path.stat().st_size]))
    assert len(ours) == 4 and max(ours) <= 128 * MIB and max(ours) - min(ours) < 0.1 * max(ours)


def test_an_input_of_one_wave_and_a_session_that_sets_the_count_are_left_to_spark(spark):
    with jobs.session_settings(spark, TWO_CORES):
        assert jobs.whole_waves(spark, [200 * MIB]) == {}  # Spark already cuts it into 2 splits
        assert jobs.whole_waves(spark, [10, 20]) == {}
    with jobs.session_settings(spark, {**TWO_CORES, "spark.sql.files.minPartitionNum": "3"}):
        assert jobs.whole_waves(spark, [300 * MIB]) == {}


def test_a_bronze_run_writes_one_file_a_task_of_even_waves_and_the_first_of_a_key_still_wins(
    spark, core, tmp_path, monkeypatch
):
    """A large run (so the key check runs after the write, on files from every split) under a split size small
    enough to cut its CSV in three: read in whole waves it is four tasks, four files of a quarter of the rows each.
    Order 1's second row sits in the last split: it is the one rejected, whichever split Spark runs first."""
    monkeypatch.setattr(bronze, "CACHE_INPUT_BYTES", 0)
    monkeypatch.setattr(bronze, "ONE_TASK_INPUT_BYTES", 0)
    rows = [f"{i},customer-{i:06d},{i % 1000},2026-01-01 10:00:00" for i in range(1, 6001)]
    text = csv(*rows, "1,late,7,2026-01-02 10:00:00")
    cap = len(text.encode()) * 2 // 5  # Spark alone: splits of 40 %, 40 % and 20 %
    settings = {**TWO_CORES, "spark.sql.files.maxPartitionBytes": str(cap), "spark.sql.files.openCostInBytes": "0"}
    shop = Shop(spark, core, tmp_path, config(table_format="parquet", quality={"max_rejected_fraction": 0.5}))
    with jobs.session_settings(spark, settings):
        summary = shop.run(RUN1, text)
    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (6001, 6000, 1)
    assert summary.rejected_by_reason == {"duplicate primary key": 1}
    table = shop.lake.path("bronze/shop_orders")
    files = sorted(table.glob("*.parquet"))
    counts = [spark.read.parquet(str(f)).count() for f in files]
    assert len(files) == 4 and sum(counts) == 6000
    assert max(counts) - min(counts) < 0.1 * max(counts)
    kept = spark.read.parquet(str(table))
    assert kept.filter("order_id = 1").select("customer", "amount").collect() == [("customer-000001", 1)]
    assert sorted(r[0] for r in kept.select("order_id").collect()) == list(range(1, 6001))
