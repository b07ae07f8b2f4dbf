"""A file Spark cannot read fails the run with one paragraph naming the file and the cause.

The whole Java stack (thousands of characters of `at org.apache...`) goes to the ledger's
`traceback`, never to `error`; bronze keeps its previous data.
"""

from __future__ import annotations

import errno
import gzip
import io
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dwlib import bronze, errors
from dwlib.lake import LocalLake
from tests.jobs.test_bronze_run import FIRST, SECOND, context, dataset, shop_csv

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]


def truncated_gzip() -> bytes:
    data = gzip.compress(shop_csv(20_000))
    return data[: len(data) // 2]


def damaged_parquet() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"order_id": list(range(1000)), "quantity": [i % 7 for i in range(1000)]}), buffer)
    data = buffer.getvalue()
    return data[:4] + b"\0" * 200 + data[204:]  # the first page header is gone; the footer still reads


# The last field: whether Spark meets the damage (a truncated .gz is caught before, by the archive
# check that streams every .gz once, so there is no Java trace at all).
CASES = {
    "truncated-gzip": ("orders.csv.gz", truncated_gzip, {}, "truncated", False),
    "damaged-parquet": ("orders.parquet", damaged_parquet, {"format": "parquet", "columns": {}, "primary_key": []},
                        "not readable Parquet", True),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_unreadable_file_fails_in_one_paragraph_naming_it(spark, core, tmp_path, case):
    name, make, extra, cause, by_spark = CASES[case]
    lake = LocalLake(tmp_path / "lake")
    good = tmp_path / "good"
    good.mkdir()
    if extra.get("format") == "parquet":
        pq.write_table(pa.table({"order_id": [1, 2], "quantity": [3, 4]}), good / "orders.parquet")
    else:
        (good / "orders.csv").write_bytes(shop_csv(10))
    config = dataset("https://example.invalid/" + name).model_copy(update=extra)
    assert bronze.run_bronze(spark, context(core, config, lake, FIRST, sample_dir=good)).status == "succeeded"
    before = {o.key: lake.read_bytes(o.key) for o in lake.list("bronze/")}

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / name).write_bytes(make())
    summary = bronze.run_bronze(spark, context(core, config, lake, SECOND, sample_dir=broken))

    assert summary.status == "failed"
    error = summary.error
    assert len(error) <= 600, error
    assert f"raw/shop-orders/run_id={SECOND}/{name}" in error
    assert cause in error
    assert "at org.apache" not in error and "\n" not in error
    assert "bronze keeps its previous data" in error.lower()
    ledger = lake.read_json(f"runs/shop-orders/run_id={SECOND}.json")
    assert ledger["error"] == error
    if by_spark:
        assert "at org.apache" in ledger["traceback"] and len(ledger["traceback"]) > 2000
    assert {o.key: lake.read_bytes(o.key) for o in lake.list("bronze/")} == before


def test_a_query_error_keeps_spark_s_own_first_line(spark):
    with pytest.raises(Exception) as caught:
        spark.sql("SELECT nope FROM VALUES (1) AS t(a)").collect()
    text = errors.describe(caught.value)
    assert text.startswith("AnalysisException: [UNRESOLVED_COLUMN")
    assert "\n" not in text and len(text) < 600


def test_a_plain_python_error_stays_short():
    assert errors.describe(ValueError("x" * 5000)).startswith("ValueError: xxx")
    assert len(errors.describe(ValueError("x" * 5000))) < 450


# ------------------------------------------------------------------ a full or read-only disk is the disk's fault

LAKE = "/home/me/.lake"
INPUTS = ["raw/shop-orders/run_id=20261121T060000Z/orders.csv"]
LEDGER = "runs/shop-orders/run_id=20261121T060000Z.json"


class Py4JJavaError(Exception):
    """Shaped as py4j's: str() is the call that failed then the whole Java text; the Java exception's toString()
    is its first line (as Spark 3.5 on Java 17 reports a write that the local disk refused)."""

    __module__ = "py4j.protocol"

    def __init__(self, call: str, java_text: str):
        super().__init__(f"An error occurred while calling {call}.\n: {java_text}")
        first = java_text.splitlines()[0]
        self.java_exception = type("JavaThrowable", (), {"toString": lambda self: first})()


def job_aborted(task_cause: str, causes: str) -> str:
    return (
        "org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 3.0 failed 1 times, most "
        f"recent failure: Lost task 0.0 in stage 3.0 (TID 3) (localhost executor driver): {task_cause}\n"
        "\tat org.apache.spark.sql.execution.datasources.FileFormatWriter$.executeTask(FileFormatWriter.scala:420)\n"
        "\tat org.apache.spark.scheduler.ResultTask.runTask(ResultTask.scala:93)\n"
        "\tat java.base/java.lang.Thread.run(Thread.java:840)\n"
        f"{causes}"
        "\nDriver stacktrace:\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2898)\n"
        "\tat org.apache.spark.sql.execution.datasources.FileFormatWriter$.write(FileFormatWriter.scala:307)\n"
    )


WRITING = f"org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to file:{LAKE}/staging/shop-orders/run_id=20261121T060000Z/bronze."  # noqa: E501
DISK_FULL = Py4JJavaError("o37.parquet", job_aborted(WRITING, (
    "Caused by: org.apache.hadoop.fs.FSError: java.io.IOException: No space left on device\n"
    "\tat org.apache.hadoop.fs.RawLocalFileSystem$LocalFSFileOutputStream.write(RawLocalFileSystem.java:349)\n"
    "\tat org.apache.parquet.hadoop.ParquetFileWriter.writeColumnChunk(ParquetFileWriter.java:903)\n"
    "\t... 17 more\n"
    "Caused by: java.io.IOException: No space left on device\n"
    "\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)\n"
    "\tat org.apache.hadoop.fs.RawLocalFileSystem$LocalFSFileOutputStream.write(RawLocalFileSystem.java:345)\n"
    "\t... 37 more\n"
)))  # fmt: skip
QUOTA = Py4JJavaError("o41.parquet", job_aborted(WRITING, (
    "Caused by: org.apache.hadoop.fs.FSError: java.io.IOException: Disk quota exceeded\n"
    "\tat org.apache.hadoop.fs.RawLocalFileSystem$LocalFSFileOutputStream.write(RawLocalFileSystem.java:349)\n"
    "Caused by: java.io.IOException: Disk quota exceeded\n"
    "\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)\n"
)))  # fmt: skip
READ_ONLY = Py4JJavaError("o44.parquet", job_aborted(
    f"java.io.FileNotFoundException: {LAKE}/staging/shop-orders/run_id=20261121T060000Z/bronze/_temporary/0/"
    "_temporary/attempt_202611210600001234_0003_m_000000_3/part-00000.zstd.parquet (Read-only file system)",
    "",
))  # fmt: skip
NO_FOLDER = Py4JJavaError("o44.parquet", job_aborted(
    f"java.io.IOException: Mkdirs failed to create file:{LAKE}/staging/shop-orders/run_id=20261121T060000Z/bronze/"
    "_temporary/0/_temporary/attempt_202612040504347219323700062978821_0001_m_000000_1",
    "",
))  # fmt: skip
# Shuffle spill, not the lake: Spark names no file it was writing.
SPILL_FULL = Py4JJavaError("o52.count", job_aborted(
    "java.io.IOException: No space left on device",
    "Caused by: java.io.IOException: No space left on device\n"
    "\tat org.apache.spark.storage.DiskBlockObjectWriter.commitAndGet(DiskBlockObjectWriter.scala:175)\n",
))  # fmt: skip

DISKS = {
    "full": (DISK_FULL, "the disk is full; free space on the disk holding the lake folder /home/me/.lake"),
    "quota": (QUOTA, "the disk quota is used up; free space within the quota (or have it raised) on the disk holding"),
    "read-only": (READ_ONLY, "the file system is read-only; make the disk holding the lake folder /home/me/.lake"),
    "no-folder": (NO_FOLDER, "a folder could not be made"),
    "spill": (SPILL_FULL, "the disk is full; free space on the disk holding the lake folder /home/me/.lake and "
                          "Spark's scratch folder (spark.local.dir, /tmp by default)"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DISKS))
def test_a_disk_that_refuses_spark_s_write_is_named_and_the_inputs_are_not_blamed(case):
    exc, advice = DISKS[case]
    text = errors.describe(exc, lake_root=LAKE, inputs=INPUTS, ledger_key=LEDGER)
    assert advice in text, text
    assert "reading" not in text and "orders.csv" not in text, text
    assert "\n" not in text and "at org.apache" not in text and len(text) <= 600, text
    assert f"`traceback` field of {LEDGER}" in text
    if case != "spill":  # the lake's folder Spark was writing, not its own _temporary attempt folder
        assert text.startswith("Spark could not write staging/shop-orders/run_id=20261121T060000Z/bronze: "), text


def test_on_glue_a_full_disk_is_a_worker_s_and_the_size_category_is_the_fix():
    text = errors.describe(SPILL_FULL, lake_root="s3://pp-dw-123456789012", inputs=INPUTS)
    assert "a Glue worker's local disk" in text and "data_size_category" in text
    assert "orders.csv" not in text


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "the disk is full"), (errno.EDQUOT, "the disk quota is used up"),
     (errno.EROFS, "the file system is read-only")],
)  # fmt: skip
def test_a_python_write_the_disk_refused_names_the_file_and_the_fix(code, words):
    exc = OSError(code, os.strerror(code), f"{LAKE}/raw/shop-orders/run_id=20261121T060000Z/orders.csv")
    text = errors.describe(exc, lake_root=LAKE, inputs=INPUTS)
    assert text.startswith(f"Could not write {LAKE}/raw/shop-orders/run_id=20261121T060000Z/orders.csv: {words}; ")
    assert f"the disk holding the lake folder {LAKE}" in text and os.strerror(code) in text
    bare = errors.describe(OSError(code, os.strerror(code)))
    assert bare.startswith(f"Could not write to disk: {words}; ") and "the temporary folder (TMPDIR)" in bare
