"""A gold run's ledger entry holds the figures its metrics and `dw runs` show: bytes written included."""

from __future__ import annotations

import pytest

from dwlib import gold, metrics
from dwlib.naming import Naming
from tests.jobs.test_gold import MODELS, RUN1, context  # noqa: F401 - context is a fixture


@pytest.mark.spark
def test_a_gold_run_counts_the_bytes_it_published(spark, context):  # noqa: F811
    ctx = context(RUN1)
    summary = gold.run_gold(spark, ctx, MODELS)
    assert summary.status == "succeeded", summary.error
    on_disk = sum(o.size for o in ctx.lake.data_files("gold/flights/"))
    assert on_disk > 0
    entry = ctx.lake.read_json("runs/flights/run_id=20260101T000000Z.gold.json")
    assert entry["output_bytes"] == on_disk and entry["output_files"] == len(ctx.lake.data_files("gold/flights/"))
    sent = {m["MetricName"]: m["Value"] for m in metrics.metric_data(entry, Naming("pp-dw", "pp_dw"))}
    assert sent["BytesWritten"] == on_disk
    assert [m["bytes"] for m in entry["models"]] == [
        sum(o.size for o in ctx.lake.data_files(f"gold/flights/{name}/")) for name in ("delays", "worst")
    ]
