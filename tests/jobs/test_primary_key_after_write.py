"""A large input's primary-key and `unique` repeats are looked for on the staged Parquet after the write
(a key-only read) instead of in a pass over the source before it. Whichever way, the rows kept and the
rows quarantined, with their reasons, are the same as the window check of a small input gives."""

from __future__ import annotations

import pytest

from dwlib import bronze
from dwlib.hook import load_hook
from tests.jobs.test_iceberg import RUN1, Shop, config, csv

pytestmark = [pytest.mark.spark]

REPEATS = csv(
    "1,ann,10,2026-01-01 10:00:00",
    "2,bob,20,2026-01-01 11:00:00",
    "1,ann,11,2026-01-01 12:00:00",  # the primary key again: rejected, the first row kept
    "3,cid,20,2026-01-01 13:00:00",  # amount 20 again: rejected by `unique`
    ",dan,40,2026-01-01 14:00:00",  # a null key: rejected as before
    "4,eve,50,2026-01-01 15:00:00",
)
CLEAN = csv("1,ann,10,2026-01-01 10:00:00", "2,bob,20,2026-01-01 11:00:00", "3,cid,30,2026-01-01 12:00:00")


def outcome(spark, core, tmp_path, text: str, large: bool, monkeypatch) -> tuple:
    tmp_path.mkdir()
    if large:  # every input counts as large: the check after the write
        monkeypatch.setattr(bronze, "CACHE_INPUT_BYTES", 0)
    shop = Shop(
        spark,
        core,
        tmp_path,
        config(table_format="parquet", quality={"unique": ["amount"], "max_rejected_fraction": 0.9}),
    )
    summary = shop.run(RUN1, text)
    monkeypatch.undo()
    assert summary.status == "succeeded", summary.error
    kept = sorted(
        tuple(r)
        for r in spark.read.parquet(str(shop.lake.path("bronze/shop_orders"))).select("order_id", "amount").collect()
    )
    quarantine = shop.lake.path(f"quarantine/shop-orders/run_id={RUN1}")
    rejected = (
        sorted(((r["order_id"], r["reject_reason"]) for r in spark.read.parquet(str(quarantine)).collect()), key=str)
        if quarantine.exists()
        else []
    )
    return summary.rows_in, summary.rows_kept, summary.rows_rejected, summary.rejected_by_reason, kept, rejected


@pytest.mark.parametrize("text", [REPEATS, CLEAN], ids=["repeats", "clean"])
def test_the_check_after_the_write_keeps_and_rejects_what_the_check_before_it_does(
    spark, core, tmp_path, monkeypatch, text
):
    after = outcome(spark, core, tmp_path / "after", text, True, monkeypatch)
    before = outcome(spark, core, tmp_path / "before", text, False, monkeypatch)
    assert after == before
    if text is REPEATS:
        assert after[4] == [(1, 10), (2, 20), (4, 50)]
        assert after[3] == {"amount: not unique": 1, "duplicate primary key": 1, "order_id: primary key is null": 1}


HOOK = """def transform(df):
    return df.withColumn("customer", df.customer)
"""


@pytest.mark.parametrize("path", ["small input", "large input", "transform hook"])
def test_of_several_files_the_first_in_name_order_wins_whatever_their_sizes(spark, core, tmp_path, monkeypatch, path):
    """Spark reads a run's largest file first; "the first row in source order" is still the first file by name's.
    Here `a.csv` is one row and `b.csv` hundreds, its first row and its last repeating `a.csv`'s key."""
    if path == "large input":
        monkeypatch.setattr(bronze, "CACHE_INPUT_BYTES", 0)
    shop = Shop(spark, core, tmp_path, config(table_format="parquet", quality={"max_rejected_fraction": 0.9}))
    if path == "transform hook":
        monkeypatch.setattr(bronze, "transform_hook", lambda ctx: load_hook(ctx.name, HOOK, "transform.py"))
    many = [f"{i},x,{i},2026-01-02 10:00:00" for i in range(2, 400)]
    (shop.sample / "b.csv").write_text(csv("1,b-first,2,2026-01-01 10:00:00", *many, "1,b-last,3,2026-01-01 10:00:00"))
    (shop.sample / "a.csv").write_text(csv("1,a,1,2026-01-01 10:00:00"))
    summary = shop.run(RUN1)
    assert summary.status == "succeeded", summary.error
    bronze_table = spark.read.parquet(str(shop.lake.path("bronze/shop_orders")))
    assert [tuple(r) for r in bronze_table.filter("order_id = 1").select("customer", "meta_source_file").collect()] == [
        ("a", "a.csv")
    ]
    assert summary.rows_kept == 399 and summary.rejected_by_reason == {"duplicate primary key": 2}


@pytest.mark.parametrize("path", ["small input", "transform hook"])
def test_a_zip_member_named_like_a_raw_file_is_a_file_of_its_own_name_and_place(
    spark, core, tmp_path, monkeypatch, path
):
    """`data.csv` beside `a.zip` holding another `data.csv`: both rows said `meta_source_file` data.csv, and which
    won a repeated key went by size (with a hook) or by folder (staging/ after raw/). The member is `data_1.csv`,
    and the order is the files' names: data.csv's row wins, whatever the sizes."""
    import io
    import zipfile

    if path == "transform hook":
        monkeypatch.setattr(bronze, "transform_hook", lambda ctx: load_hook(ctx.name, HOOK, "transform.py"))
    shop = Shop(spark, core, tmp_path, config(table_format="parquet", quality={"max_rejected_fraction": 0.9}))
    many = [f"{i},x,{i},2026-01-02 10:00:00" for i in range(2, 400)]
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("data.csv", csv("1,zipped,2,2026-01-01 10:00:00", *many))
    (shop.sample / "a.zip").write_bytes(packed.getvalue())
    (shop.sample / "data.csv").write_text(csv("1,raw,1,2026-01-01 10:00:00"))
    summary = shop.run(RUN1)
    assert summary.status == "succeeded", summary.error
    bronze_table = spark.read.parquet(str(shop.lake.path("bronze/shop_orders")))
    assert [tuple(r) for r in bronze_table.filter("order_id = 1").select("customer", "meta_source_file").collect()] == [
        ("raw", "data.csv")
    ]
    assert {r[0] for r in bronze_table.select("meta_source_file").distinct().collect()} == {"data.csv", "data_1.csv"}
