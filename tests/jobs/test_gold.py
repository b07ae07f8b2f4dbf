"""Gold models: ordering, cycles, expectations, and tables that stay readable when a model fails."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dwlib import gold
from dwlib.bronze import JobContext
from dwlib.config import DatasetConfig, load_core_config
from dwlib.lake import LocalLake

ROOT = Path(__file__).resolve().parents[2]
RUN1, RUN2 = "20260101T000000Z", "20260102T000000Z"


def model(name: str, sql: str) -> gold.Model:
    return gold.parse_model(name, sql, f"gold/{name}.sql", "pp_dw")


def test_references_are_found_in_joins_and_subqueries():
    m = model(
        "routes",
        "WITH c AS (SELECT * FROM pp_dw_gold.carriers) "
        "SELECT f.*, a.name FROM pp_dw_bronze.flights f JOIN pp_dw_bronze.airports a ON f.origin = a.iata "
        "WHERE f.carrier IN (SELECT carrier FROM c)",
    )
    assert m.bronze_refs == {"flights", "airports"}
    assert m.gold_refs == {"carriers"}


def test_models_run_in_dependency_order():
    models = {
        "c": model("c", "SELECT * FROM pp_dw_gold.b"),
        "a": model("a", "SELECT * FROM pp_dw_bronze.x"),
        "b": model("b", "SELECT * FROM pp_dw_gold.a"),
    }
    assert gold.run_order(models) == ["a", "b", "c"]


def test_a_cycle_is_an_error_naming_it():
    models = {"a": model("a", "SELECT * FROM pp_dw_gold.b"), "b": model("b", "SELECT * FROM pp_dw_gold.a")}
    with pytest.raises(gold.GoldError, match="cycle"):
        gold.run_order(models)
    problems = gold.check_models(
        {"a": "SELECT * FROM pp_dw_gold.b", "b": "SELECT * FROM pp_dw_gold.a"}, "datasets/x/gold", "pp_dw"
    )
    assert problems and "cycle" in problems[0]


def test_expectations_are_read_from_the_leading_comments():
    sql = (
        "-- Carriers.\n-- expect: row_count > 0\n-- expect: unique(carrier)\n"
        "-- expect: not_null(carrier, name)\nSELECT 1\n-- expect: row_count = 5\n"
    )
    assert [str(e) for e in gold.parse_expectations(sql, "x")] == [
        "row_count > 0",
        "unique(carrier)",
        "not_null(carrier, name)",
    ]
    with pytest.raises(gold.GoldError, match="expectation 'rows > 1' is not understood"):
        gold.parse_expectations("-- expect: rows > 1\nSELECT 1", "x")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC 1", "does not parse"),
        ("SELECT 1; SELECT 2", "exactly one SELECT"),
        ("DROP TABLE x", "exactly one SELECT"),
    ],
)
def test_bad_models(sql, message):
    with pytest.raises(gold.GoldError, match=message):
        model("bad", sql)


# ------------------------------------------------------------------ running models on Spark


def write_bronze(lake: LocalLake, table: str, rows: list[dict]) -> None:
    path = lake.path(f"bronze/{table}/part-0.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd")


@pytest.fixture
def context(tmp_path):
    core = load_core_config(ROOT / "config.json")
    config = DatasetConfig.model_validate(
        {"dataset": "flights", "description": "f", "data_size_category": "small", "landing": True}
    )
    lake = LocalLake(tmp_path / "lake")
    write_bronze(lake, "flights", [{"carrier": c, "minutes": m} for c, m in [("AA", 10), ("AA", 30), ("UA", 5)]])
    write_bronze(lake, "carriers", [{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"}])
    return lambda run_id: JobContext(core=core, dataset=config, lake=lake, run_id=run_id)


MODELS = {
    "delays": (
        "-- expect: row_count > 0\n-- expect: unique(carrier)\n"
        "SELECT f.carrier, c.name, sum(f.minutes) AS minutes FROM pp_dw_bronze.flights f "
        "JOIN pp_dw_bronze.carriers c ON f.carrier = c.carrier GROUP BY f.carrier, c.name"
    ),
    "worst": "-- expect: row_count = 1\nSELECT name, minutes FROM pp_dw_gold.delays ORDER BY minutes DESC LIMIT 1",
}


@pytest.mark.spark
def test_models_over_two_bronze_tables_chain_and_match_an_independent_answer(spark, context):
    summary = gold.run_gold(spark, context(RUN1), MODELS)
    assert summary.status == "succeeded", summary.error
    lake = context(RUN1).lake
    delays = pq.read_table(lake.path("gold/flights/delays/")).to_pylist()
    assert sorted((r["carrier"], r["name"], r["minutes"]) for r in delays) == [
        ("AA", "American", 40),
        ("UA", "United", 5),
    ]
    assert {r["meta_run_id"] for r in delays} == {RUN1}
    worst = pq.read_table(lake.path("gold/flights/worst/")).to_pylist()
    assert [(r["name"], r["minutes"]) for r in worst] == [("American", 40)]
    ledger = lake.read_json("runs/flights/run_id=20260101T000000Z.gold.json")
    assert [m["name"] for m in ledger["models"]] == ["delays", "worst"]


@pytest.mark.spark
def test_a_failed_expectation_keeps_the_previous_table_and_skips_dependents(spark, context):
    assert gold.run_gold(spark, context(RUN1), MODELS).status == "succeeded"
    lake = context(RUN1).lake
    before = {o.key: lake.read_bytes(o.key) for o in lake.list("gold/flights/")}
    write_bronze(lake, "flights", [{"carrier": "AA", "minutes": 1}, {"carrier": "AA", "minutes": 2}])
    broken = {**MODELS, "delays": MODELS["delays"].replace("GROUP BY f.carrier, c.name", "")
              .replace("sum(f.minutes)", "f.minutes")}  # fmt: skip
    summary = gold.run_gold(spark, context(RUN2), broken)
    assert summary.status == "failed"
    by_name = {m["name"]: m for m in summary.models}
    assert by_name["delays"]["status"] == "failed"
    assert "unique(carrier) (1 repeated values)" in by_name["delays"]["error"]
    assert by_name["worst"]["status"] == "skipped"
    assert {o.key: lake.read_bytes(o.key) for o in lake.list("gold/flights/")} == before
    assert "delays: failed" in gold.describe_gold(summary)


@pytest.mark.spark
def test_a_missing_bronze_table_fails_the_model_with_advice(spark, context):
    summary = gold.run_gold(spark, context(RUN1), {"x": "SELECT * FROM pp_dw_bronze.nowhere"})
    assert summary.status == "failed"
    assert "pp_dw_bronze.nowhere has no data at bronze/nowhere/; run its bronze job first" in summary.error
