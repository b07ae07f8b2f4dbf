"""A file Spark cannot read fails the run with one paragraph naming the file and the cause.

The whole Java stack (thousands of characters of `at org.apache...`) goes to the ledger's
`traceback`, never to `error`; bronze keeps its previous data.
"""

from __future__ import annotations

import gzip
import io

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
