"""Gold runs that must not say "succeeded" wrongly: which folder a model reads, names the job uses itself,
types Athena cannot hold, expectations that are not read, and errors that name the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dwlib import gold
from dwlib.bronze import JobContext
from dwlib.config import DatasetConfig, load_core_config
from dwlib.lake import LocalLake
from tests.jobs.test_gold import write_bronze

ROOT = Path(__file__).resolve().parents[2]
RUN1, RUN2 = "20260101T000000Z", "20260102T000000Z"


@pytest.fixture
def lake(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    write_bronze(lake, "flights", [{"carrier": c, "minutes": m} for c, m in [("AA", 10), ("AA", 30), ("UA", 5)]])
    return lake


def context(lake: LocalLake, run_id: str, dataset: str = "flights") -> JobContext:
    core = load_core_config(ROOT / "config.json")
    config = DatasetConfig.model_validate(
        {"dataset": dataset, "description": "f", "data_size_category": "small", "landing": True}
    )
    return JobContext(core=core, dataset=config, lake=lake, run_id=run_id)


def rows(lake: LocalLake, prefix: str) -> list[dict]:
    return pq.read_table(lake.path(prefix)).to_pylist()


# ------------------------------------------------------------------ 1. which folder a model reads


@pytest.mark.spark
def test_a_model_reads_its_own_dataset_s_model_not_a_leftover_folder_of_another_dataset(spark, lake):
    old = gold.run_gold(spark, context(lake, RUN1, "airlines"), {"carriers": "SELECT 'old' AS version"})
    assert old.status == "succeeded", old.error
    models = {"carriers": "SELECT 'new' AS version", "reader": "SELECT version FROM pp_dw_gold.carriers"}
    summary = gold.run_gold(spark, context(lake, RUN2), models)
    assert summary.status == "succeeded", summary.error
    assert [r["version"] for r in rows(lake, "gold/flights/reader/")] == ["new"]


@pytest.mark.spark
def test_a_model_of_another_dataset_in_two_folders_fails_naming_both(spark, lake):
    for dataset in ("airlines", "legacy"):
        done = gold.run_gold(spark, context(lake, RUN1, dataset), {"carriers": f"SELECT '{dataset}' AS version"})
        assert done.status == "succeeded", done.error
    summary = gold.run_gold(spark, context(lake, RUN2), {"reader": "SELECT version FROM pp_dw_gold.carriers"})
    assert summary.status == "failed"
    assert "two folders make the table pp_dw_gold.carriers: gold/airlines/carriers/ and gold/legacy/carriers/" in (
        summary.error
    )
    assert not lake.path("gold/flights/reader").exists()


# ------------------------------------------------------------------ 2. names the job uses itself


def iceberg_context(lake: LocalLake, run_id: str) -> JobContext:
    core = load_core_config(ROOT / "config.json")
    config = DatasetConfig.model_validate(
        {"dataset": "flights", "description": "f", "data_size_category": "small", "landing": True,
         "table_format": "iceberg"}
    )  # fmt: skip
    return JobContext(core=core, dataset=config, lake=lake, run_id=run_id)


@pytest.mark.spark
@pytest.mark.parametrize("column", ["__file", "`x.y`"])
def test_an_iceberg_model_s_own_file_and_dotted_columns_reach_the_model_that_reads_it(spark, lake, column):
    """The job reads an Iceberg table with a helper column of its own: a model's `__file` keeps its values, and a
    dotted name is the column so named, not a struct's field."""
    from dwlib import iceberg

    models = {
        "files": f"SELECT carrier, concat(carrier, '.csv') AS {column} FROM pp_dw_bronze.flights",
        "reader": f"SELECT carrier, {column} FROM pp_dw_gold.files",
    }
    summary = gold.run_gold(spark, iceberg_context(lake, RUN1), models)
    assert summary.status == "succeeded", summary.error
    naming = iceberg_context(lake, RUN1).naming
    read = iceberg.read_current(spark, lake, naming, iceberg.gold_identifier(naming, "reader"), "gold/flights/reader/")
    assert sorted(tuple(r)[:2] for r in read.collect()) == [("AA", "AA.csv"), ("AA", "AA.csv"), ("UA", "UA.csv")]


@pytest.mark.spark
@pytest.mark.parametrize("column", ["meta_run_id", "META_RUN_ID"])
def test_a_model_column_named_as_the_job_s_run_id_column_is_refused_not_overwritten(spark, lake, column):
    summary = gold.run_gold(spark, context(lake, RUN1), {"m": f"SELECT carrier, 'mine' AS {column} FROM pp_dw_bronze.flights"})
    assert summary.status == "failed"
    assert f"gold/m.sql: the column {column} is the job's own" in summary.error
    assert "rename it in the SELECT" in summary.error
    assert not lake.path("gold/flights/m").exists()


@pytest.mark.spark
def test_a_run_id_column_made_in_a_with_a_subquery_or_a_branch_is_refused_and_a_table_s_own_passes(spark, lake):
    """However the model makes its meta_run_id (an alias in a WITH or subquery passed up through *, a UNION
    branch, VALUES), it is refused naming the file; a model table's own meta_run_id passed through is the job's."""
    bronze = "pp_dw_bronze.flights"
    made = {
        "cte": f"WITH t AS (SELECT 'mine' AS meta_run_id, carrier FROM {bronze}) SELECT * FROM t",
        "twice": f"WITH t AS (SELECT carrier AS META_RUN_ID FROM {bronze}) SELECT a.* FROM t a JOIN t b USING (meta_run_id)",
        "subquery": f"SELECT * FROM (SELECT carrier, minutes AS meta_run_id FROM {bronze}) s",
        "joined": f"SELECT f.carrier, s.meta_run_id AS meta_run_id FROM {bronze} f "
        f"JOIN (SELECT carrier, 'mine' AS meta_run_id FROM {bronze}) s USING (carrier)",
        "branch": "SELECT * FROM pp_dw_gold.base UNION ALL SELECT 'XX', 'mine'",
        "rows": "SELECT * FROM VALUES ('AA', 'mine') AS v(carrier, meta_run_id)",
    }
    kept = {
        "base": f"SELECT carrier FROM {bronze}",
        "reader": "WITH t AS (SELECT * FROM pp_dw_gold.base) SELECT t.* FROM t JOIN t u USING (carrier, meta_run_id)",
    }
    summary = gold.run_gold(spark, context(lake, RUN2), {**made, **kept})
    status = {m["name"]: (m["status"], m.get("error") or "") for m in summary.models}
    for name in made:
        assert status[name][0] == "failed", name
        assert f"gold/{name}.sql: the column " in status[name][1] and "is the job's own" in status[name][1], name
        assert not lake.path(f"gold/flights/{name}").exists()
    assert status["reader"] == ("succeeded", ""), status["reader"]
    assert {r["meta_run_id"] for r in rows(lake, "gold/flights/reader/")} == {RUN2}


@pytest.mark.spark
def test_the_analyzed_plan_check_reads_a_with_s_tables_through_their_references(spark, tmp_path):
    """A WITH's table is a reference in Spark's plan (CTERelationRef): what it reads is what its definition reads."""
    (tmp_path / "p").write_text("1\n")
    spark.range(3).write.parquet(str(tmp_path / "bronze" / "t"))
    spark.read.parquet(str(tmp_path / "bronze" / "t")).createOrReplaceTempView("v")
    sources = [str(tmp_path / "bronze" / "t")]
    kept = spark.sql("WITH a AS (SELECT * FROM v), b AS (SELECT * FROM a) SELECT * FROM b JOIN a USING (id)")
    assert gold.analyzed_refusals(spark, kept, sources) == []
    read = spark.sql(f"WITH a AS (SELECT * FROM text.`{tmp_path / 'p'}`) SELECT * FROM a")
    assert gold.analyzed_refusals(spark, read, sources) == [f"reads file:{tmp_path / 'p'}"]


@pytest.mark.spark
def test_unique_holds_on_a_column_named_count(spark):
    from dwlib import quality

    df = spark.createDataFrame([(1,), (2,), (2,)], "count int")
    rules = quality.expectations("-- expect: unique(count)\nSELECT 1")
    assert quality.table_failures(df, rules, 3) == ["unique(count) (1 repeated values)"]
    assert quality.table_failures(df.filter("count = 1"), rules, 1) == []


# ------------------------------------------------------------------ 3. types and names an Athena table cannot hold


@pytest.mark.spark
@pytest.mark.parametrize(
    ("select", "message"),
    [
        ("INTERVAL '1' DAY AS wait", "the column wait is an interval (interval day), which a Parquet or Athena table"),
        ("max(t) - min(t) AS span", "the column span is an interval (interval day to second)"),
        ("named_struct('span', INTERVAL '2' MONTH) AS s", "the column s.span is an interval (interval month)"),
        ("NULL AS note", "the column note is an untyped NULL, which a Parquet or Athena table cannot hold; give it a "
         "type: CAST(NULL AS <type>)"),
        ("array(NULL) AS notes", "the column notes[] is an untyped NULL"),
        (f"1 AS {'c' * 300}", "is 300 bytes (UTF-8), over the 255 a Glue column name may be; give it a shorter"),
        (f"named_struct('{'c' * 300}', 1) AS s", "the column name s.ccc"),
    ],
)
def test_a_column_an_athena_table_cannot_hold_is_refused_naming_the_file_column_and_fix(spark, lake, select, message):
    sql = f"SELECT carrier, {select} FROM (SELECT carrier, current_timestamp() AS t FROM pp_dw_bronze.flights) GROUP BY carrier"
    summary = gold.run_gold(spark, context(lake, RUN1), {"m": sql})
    assert summary.status == "failed"
    assert summary.error.startswith("m failed: gold/m.sql: "), summary.error
    assert message in summary.error
    assert not lake.path("gold/flights/m").exists()


# ------------------------------------------------------------------ 4. expectations never silently dropped


@pytest.mark.parametrize(
    ("sql", "line", "text"),
    [
        ("-- expect unique(carrier)\nSELECT 1", 1, "-- expect unique(carrier)"),
        ("-- Carriers.\n-- expects: unique(carrier)\nSELECT 1", 2, "-- expects: unique(carrier)"),
        ("-- expect : unique(carrier)\nSELECT 1", 1, "-- expect : unique(carrier)"),
        ("--- expect: unique(carrier)\nSELECT 1", 1, "--- expect: unique(carrier)"),
        ("/* expect: unique(carrier) */\nSELECT 1", 1, "/* expect: unique(carrier) */"),
        ("/*\n-- expect: unique(carrier)\n*/\nSELECT 1", 2, "-- expect: unique(carrier)"),
        ("SELECT 1 AS carrier -- expect: unique(carrier)\n", 1, "-- expect: unique(carrier)"),
    ],
)
def test_a_comment_meant_as_an_expectation_that_is_not_read_as_one_is_an_error_naming_file_and_line(sql, line, text):
    with pytest.raises(gold.GoldError) as caught:
        gold.parse_model("m", sql, "datasets/x/gold/m.sql", "pp_dw")
    assert str(caught.value).startswith(f"datasets/x/gold/m.sql: line {line}: {text!r} ")
    assert "write `-- expect: RULE`" in str(caught.value)
    assert gold.check_models({"m": sql}, "datasets/x/gold", "pp_dw") == [str(caught.value)]


def test_expectations_after_a_block_comment_header_are_read():
    sql = "/* Carriers.\n   One row each. */\n-- expect: row_count > 100\n/* more */ -- expect: unique(carrier)\nSELECT 1"
    assert [str(e) for e in gold.parse_model("m", sql, "gold/m.sql", "pp_dw").expectations] == [
        "row_count > 100",
        "unique(carrier)",
    ]
    # prose that mentions expecting something is not a rule
    assert gold.parse_model("m", "-- Expected output: one row per carrier\nSELECT 1 -- we expect few\n", "g", "pp_dw")


@pytest.mark.spark
def test_an_expectation_after_a_block_comment_header_holds_at_run_time(spark, lake):
    sql = "/* header */\n-- expect: row_count > 100\nSELECT carrier FROM pp_dw_bronze.flights"
    summary = gold.run_gold(spark, context(lake, RUN1), {"m": sql})
    assert summary.status == "failed"
    assert "expectations failed: row_count > 100 (found 3)" in summary.error
    assert not lake.path("gold/flights/m").exists()


# ------------------------------------------------------------------ 5. rows kept are rows published


@pytest.mark.spark
def test_rows_kept_counts_only_the_models_that_were_published(spark, lake):
    models = {
        "kept": "SELECT carrier FROM pp_dw_bronze.flights",
        "refused": "-- expect: row_count > 100\nSELECT carrier, minutes FROM pp_dw_bronze.flights",
    }
    summary = gold.run_gold(spark, context(lake, RUN1), models)
    assert summary.status == "failed"
    assert {m["name"]: (m["status"], m["rows"]) for m in summary.models} == {
        "kept": ("succeeded", 3), "refused": ("failed", 3)
    }  # fmt: skip
    assert summary.rows_kept == 3


# ------------------------------------------------------------------ 7. errors that name the file and the fix


def test_a_model_file_that_is_not_utf8_is_an_error_naming_the_file_the_byte_and_the_fix(tmp_path):
    folder = tmp_path / "flights"
    (folder / "gold").mkdir(parents=True)
    (folder / "gold" / "cafe.sql").write_bytes("-- Café count\nSELECT 1".encode("latin-1"))
    with pytest.raises(gold.GoldError) as caught:
        gold.model_sources(folder)
    assert str(caught.value) == (
        "datasets/flights/gold/cafe.sql: is not UTF-8 text (byte 0xe9 at line 1, column 7, likely Latin-1 or "
        "Windows-1252); save the file as UTF-8"
    )


@pytest.mark.spark
def test_a_model_file_with_a_byte_order_mark_runs_and_keeps_its_expectations(spark, lake, tmp_path):
    folder = tmp_path / "flights"
    (folder / "gold").mkdir(parents=True)
    (folder / "gold" / "m.sql").write_bytes(
        b"\xef\xbb\xbf-- expect: row_count > 100\nSELECT carrier FROM pp_dw_bronze.flights"
    )
    sources = gold.model_sources(folder)
    assert sources["m"].startswith("-- expect")
    # as the Glue job reads it (bytes decoded as UTF-8, the mark kept): the mark is no SQL, the rule still holds
    summary = gold.run_gold(spark, context(lake, RUN1), {"m": "\ufeff" + sources["m"]})
    assert "expectations failed: row_count > 100 (found 3)" in summary.error


@pytest.mark.spark
def test_an_expectation_on_a_column_the_model_does_not_output_names_the_rule_and_the_file(spark, lake):
    sql = "-- expect: not_null(carier)\nSELECT carrier, minutes FROM pp_dw_bronze.flights"
    summary = gold.run_gold(spark, context(lake, RUN1), {"m": sql})
    assert summary.error == (
        "m failed: gold/m.sql: the expectation not_null(carier) names carier, which the model's result does not "
        "have (its columns: carrier, minutes); name a column the SELECT outputs, or output it"
    )
    assert not lake.path("gold/flights/m").exists()


@pytest.mark.spark
def test_a_timestamp_before_1900_in_a_model_gets_advice_for_the_model_not_for_bronze(spark, lake):
    summary = gold.run_gold(spark, context(lake, RUN1), {"m": "SELECT TIMESTAMP '1850-01-01 00:00:00' AS old_ts"})
    assert summary.status == "failed"
    assert "a timestamp before 1900-01-01 cannot be written to a Parquet table" in summary.error
    assert "make such values NULL in gold/m.sql (CASE WHEN ts < TIMESTAMP '1900-01-01'" in summary.error
    assert "transform hook" not in summary.error


# ------------------------------------------------------------------ 8. columns qualified by the table's full name


def test_bind_rewrites_a_column_qualified_by_the_table_s_catalog_name_to_the_view_s_alias():
    views = {("pp_dw_bronze", "flights"): "dw_bronze__flights"}
    sql = "SELECT pp_dw_bronze.flights.carrier, `pp_dw_bronze`.FLIGHTS.minutes FROM pp_dw_bronze.flights"
    assert gold.bind(sql, views) == "SELECT flights.carrier, FLIGHTS.minutes FROM dw_bronze__flights AS flights"


@pytest.mark.spark
def test_a_model_that_qualifies_columns_with_the_table_s_catalog_name_runs(spark, lake):
    sql = (
        "SELECT pp_dw_bronze.flights.carrier, sum(pp_dw_bronze.flights.minutes) AS minutes "
        "FROM pp_dw_bronze.flights GROUP BY pp_dw_bronze.flights.carrier"
    )
    assert gold.check_models({"m": sql}, "datasets/flights/gold", "pp_dw") == []
    summary = gold.run_gold(spark, context(lake, RUN1), {"m": sql})
    assert summary.status == "succeeded", summary.error
    assert sorted((r["carrier"], r["minutes"]) for r in rows(lake, "gold/flights/m/")) == [("AA", 40), ("UA", 5)]
