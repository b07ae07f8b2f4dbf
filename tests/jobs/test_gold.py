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
        "-- expect: not_null(carrier, name)\nSELECT 1\n"
    )
    assert [str(e) for e in gold.parse_expectations(sql, "x")] == [
        "row_count > 0",
        "unique(carrier)",
        "not_null(carrier, name)",
    ]
    # one after the SELECT starts would never be checked: an error naming its line, not a rule silently dropped
    with pytest.raises(gold.GoldError, match="x: line 6: '-- expect: row_count = 5' comes after the SQL starts"):
        gold.parse_expectations(sql + "-- expect: row_count = 5\n", "x")
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


# ------------------------------------------------------------------ models read catalog tables, never files

HOSTILE = {
    "csv-path": ("SELECT * FROM csv.`{secret}`", "reads the file path csv.`{secret}`"),
    "parquet-s3": ("SELECT * FROM parquet.`s3://other-bucket/x`", "reads the file path parquet.`s3://other-bucket/x`"),
    "text-file-url": ("SELECT value FROM text.`file://{secret}`", "reads the file path text.`file://{secret}`"),
    "json": ("SELECT * FROM json.`{secret}`", "reads the file path json.`{secret}`"),
    "orc": ("SELECT * FROM orc.`/data/x.orc`", "reads the file path orc.`/data/x.orc`"),
    "delta": ("SELECT * FROM delta.`/data/t`", "reads the file path delta.`/data/t`"),
    "binary-file": ("SELECT content FROM binaryFile.`{secret}`", "reads the file path binaryFile.`{secret}`"),
    "relative-path": ("SELECT * FROM csv.`data`", "reads the file path csv.`data`"),
    "quoted-source": ("SELECT * FROM `csv`.`{secret}` AS t", "reads the file path `csv`.`{secret}`"),
    "in-a-cte": (
        "WITH s AS (SELECT * FROM csv.`{secret}`) SELECT f.* FROM pp_dw_bronze.flights f JOIN s ON true",
        "reads the file path csv.`{secret}`",
    ),
    "in-a-subquery": (
        "SELECT * FROM pp_dw_bronze.flights WHERE carrier IN (SELECT _c0 FROM csv.`{secret}`)",
        "reads the file path csv.`{secret}`",
    ),
    "path-in-catalog-name": ("SELECT * FROM pp_dw_bronze.`../../etc`", "reads the file path pp_dw_bronze.`../../etc`"),
    "other-database": ("SELECT * FROM default.flights", "reads default.flights, which is not a catalog name"),
    "three-part-name": (
        "SELECT * FROM spark_catalog.pp_dw_bronze.flights",
        "reads spark_catalog.pp_dw_bronze.flights, which is not a catalog name",
    ),
    "bare-view": ("SELECT * FROM dw_bronze__flights", "reads dw_bronze__flights, which is not a catalog name"),
    "read-files": ("SELECT * FROM read_files('{secret}')", "calls the table function READ_FILES("),
    "identifier-clause": ("SELECT * FROM IDENTIFIER('csv.`{secret}`')", "calls the table function IDENTIFIER("),
    "reflect": (
        "SELECT reflect('java.nio.file.Files', 'readAllLines', '{secret}') AS x",
        "calls reflect(), which runs arbitrary Java",
    ),
    "java-method": (
        "SELECT carrier, java_method('java.lang.System', 'getenv', 'HOME') AS x FROM pp_dw_bronze.flights",
        "calls java_method(), which runs arbitrary Java",
    ),
    "transform-using": (
        "SELECT TRANSFORM(carrier) USING 'cat {secret}' AS (x) FROM pp_dw_bronze.flights",
        "runs a command (TRANSFORM(carrier) USING 'cat ",
    ),
    "load-data": ("LOAD DATA LOCAL INPATH '{secret}' INTO TABLE t", "found LOAD DATA LOCAL INPATH '{secret}'"),
    "add-jar": ("ADD JAR /tmp/evil.jar", "found ADD JAR /tmp/evil.jar"),
    "add-file": ("ADD FILE {secret}", "found ADD FILE {secret}"),
    "select-then-add-jar": ("SELECT 1 AS x; ADD JAR /tmp/evil.jar", "found ADD JAR /tmp/evil.jar"),
}
SECRET = "/tmp/dw-not-for-models/passwd.csv"


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_check_models_refuses_file_reads_naming_file_and_construct(case):
    sql, construct = (text.format(secret=SECRET) for text in HOSTILE[case])
    problems = gold.check_models({"leak": sql}, "datasets/flights/gold", "pp_dw")
    assert len(problems) == 1, problems
    assert problems[0].startswith("datasets/flights/gold/leak.sql: "), problems
    assert construct in problems[0], problems


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM pp_dw_bronze.flights",
        "WITH a AS (SELECT * FROM pp_dw_bronze.flights) SELECT carrier FROM a",
        "SELECT f.carrier, x FROM pp_dw_bronze.flights f LATERAL VIEW explode(array(1, 2)) t AS x",
        "SELECT id FROM range(3)",
        "SELECT col FROM explode(array(1, 2))",
        "SELECT * FROM pp_dw_gold.delays d JOIN pp_dw_bronze.carriers c ON d.carrier = c.carrier",
    ],
)
def test_catalog_tables_ctes_and_generators_are_allowed(sql):
    assert gold.check_models({"fine": sql}, "datasets/flights/gold", "pp_dw") == []


def test_bind_refuses_a_read_that_is_not_a_bound_view():
    """The run-time check: whatever reached the gold job, Spark only runs SQL that reads bound views."""
    views = {("pp_dw_bronze", "flights"): "dw_bronze__flights"}
    assert "dw_bronze__flights" in gold.bind("SELECT * FROM pp_dw_bronze.flights", views)
    for sql in (
        f"SELECT * FROM pp_dw_bronze.flights JOIN csv.`{SECRET}` ON true",
        f"SELECT reflect('java.nio.file.Files', 'readAllLines', '{SECRET}')",
        "SELECT * FROM pp_dw_bronze.carriers",  # a catalog name, but not one bound for this model
    ):
        with pytest.raises(gold.GoldError, match="models read tables only by catalog name"):
            gold.bind(sql, views)


@pytest.mark.spark
@pytest.mark.parametrize("case", ["csv-path", "in-a-subquery", "reflect", "text-file-url", "transform-using"])
def test_run_gold_refuses_a_model_that_reads_a_file_and_writes_nothing(spark, context, tmp_path, case):
    secret = tmp_path / "passwd.csv"
    secret.write_text("root:x:0:0\n")
    # Spark itself would read it: the refusal is what stands between a model and the file.
    assert spark.sql(f"SELECT * FROM csv.`{secret}`").collect()[0][0] == "root:x:0:0"
    sql = HOSTILE[case][0].format(secret=secret)
    summary = gold.run_gold(spark, context(RUN1), {**MODELS, "leak": sql})
    assert summary.status == "failed"
    assert "gold/leak.sql: " in summary.error
    assert HOSTILE[case][1].format(secret=secret) in summary.error
    lake = context(RUN1).lake
    assert not list(lake.list("gold/flights/leak/"))
    assert b"root:x" not in b"".join(lake.read_bytes(o.key) for o in lake.list("gold/"))


@pytest.mark.spark
def test_the_gold_job_refuses_a_file_read_that_skipped_parse_model(spark, context, tmp_path):
    secret = tmp_path / "passwd.csv"
    secret.write_text("root:x:0:0\n")
    smuggled = gold.Model("leak", f"SELECT * FROM csv.`{secret}`", (), frozenset(), frozenset())
    ctx = context(RUN1)
    result = gold.ModelResult("leak", output_prefix=ctx.naming.gold_prefix(ctx.name, "leak"))
    summary = gold.RunSummary(dataset=ctx.name, run_id=RUN1, layer="gold", source="models")
    entry = ctx.naming.run_summary_key(ctx.name, RUN1, "gold")
    gold._run_model(spark, ctx, smuggled, {}, result, lambda _: None, summary, entry)
    assert result.status == "failed"
    assert f"reads the file path csv.`{secret}`" in result.error
    assert not list(context(RUN1).lake.list("gold/flights/leak/"))


def test_bind_changes_the_catalog_names_only_and_keeps_the_rest_as_written():
    """Spark runs the model's own text: no translation turns what Spark would refuse into something else."""
    views = {("pp_dw_bronze", "flights"): "dw_bronze__flights", ("pp_dw_gold", "delays"): "dw_gold__delays"}
    sql = (
        "-- expect: row_count > 0\nSELECT day_of_week(f.d), 'it''s', flights.x, `d`.y\n"
        "FROM pp_dw_bronze.flights JOIN `pp_dw_gold`.`delays` d ON ARRAY['a'][1] = d.z /* pp_dw_bronze.flights */"
    )
    assert gold.bind(sql, views) == (
        "-- expect: row_count > 0\nSELECT day_of_week(f.d), 'it''s', flights.x, `d`.y\n"
        "FROM dw_bronze__flights AS flights JOIN dw_gold__delays d ON ARRAY['a'][1] = d.z /* pp_dw_bronze.flights */"
    )


@pytest.mark.spark
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # Trino's day_of_week; a translation made it Spark's dayofweek, 1 for a Sunday where Trino says 7
        ("SELECT day_of_week(DATE '2024-01-07') AS d FROM pp_dw_bronze.flights", "day_of_week"),
        # Trino's array literal; a translation made it Spark's array(...)[1], the second element
        ("SELECT ARRAY['a', 'b'][1] AS e FROM pp_dw_bronze.flights", "PARSE_SYNTAX_ERROR"),
    ],
)
def test_a_model_in_text_spark_does_not_know_fails_and_writes_nothing(spark, context, sql, message):
    summary = gold.run_gold(spark, context(RUN1), {"trino": sql})
    assert summary.status == "failed"
    assert summary.error.startswith("trino failed: ") and message in summary.error, summary.error
    assert not list(context(RUN1).lake.list("gold/flights/trino/"))


# sqlglot ends a `--` comment at the line's end; Spark 3.5's lexer continues it past a trailing backslash. So
# sqlglot reads a string where Spark reads a file (or a Java call) through IDENTIFIER(), which neither parser
# check looked into: `dw validate` passed these and the gold job ran them.
COMMENT_TRICKS = {
    "file": (
        "SELECT s._c0 AS a -- \\\nFROM pp_dw_bronze.flights AS s WHERE '\n"
        'FROM IDENTIFIER("csv.`{secret}`") AS s -- \' IS NOT NULL'
    ),
    "java": (
        "SELECT carrier, 'a' AS x -- note \\\n, '\n"
        ', IDENTIFIER("reflect")("java.lang.System", "getProperty", "user.name") -- \'\nAS y FROM pp_dw_bronze.flights'
    ),
}


@pytest.mark.spark
@pytest.mark.parametrize("case", list(COMMENT_TRICKS))
def test_a_model_that_reads_around_the_parsers_is_refused_by_what_spark_resolved(spark, context, tmp_path, case):
    secret = tmp_path / "passwd.csv"
    secret.write_text("root:x:0:0\n")
    sql = COMMENT_TRICKS[case].format(secret=secret)
    assert gold.check_models({"leak": sql}, "datasets/flights/gold", "pp_dw") == []  # sqlglot sees a string
    summary = gold.run_gold(spark, context(RUN1), {"leak": sql})
    assert summary.status == "failed"
    assert "IDENTIFIER(...)" in summary.error, summary.error
    lake = context(RUN1).lake
    assert not list(lake.list("gold/flights/leak/"))


@pytest.mark.spark
@pytest.mark.parametrize(
    ("sql", "refusals"),
    [
        ("SELECT * FROM v JOIN csv.`/p` ON true", ["reads file:/p"]),
        ("SELECT * FROM IDENTIFIER('csv.`/p`')", ["reads file:/p"]),
        ("SELECT * FROM v WHERE id IN (SELECT length(value) FROM text.`/p`)", ["reads file:/p"]),
        (
            "SELECT IDENTIFIER('reflect')('java.lang.System', 'getenv', 'HOME') FROM v",
            ["calls Java (reflect or java_method)"],
        ),
        ("SELECT TRANSFORM(id) USING 'cat' AS (x) FROM v", ["runs a command (TRANSFORM ... USING)"]),
        ("SELECT * FROM range(3) JOIN v LATERAL VIEW explode(array(1)) t AS x", []),
        ("SELECT * FROM VALUES (1), (2) AS t(a) JOIN v", []),
    ],
)
def test_the_analyzed_plan_reads_nothing_but_the_model_s_tables(spark, tmp_path, sql, refusals):
    """The last check reads what Spark resolved: every file under the named tables' folders, no command, no Java."""
    (tmp_path / "p").write_text("1\n")
    spark.range(3).write.parquet(str(tmp_path / "bronze" / "t"))
    spark.read.parquet(str(tmp_path / "bronze" / "t")).createOrReplaceTempView("v")
    found = gold.analyzed_refusals(
        spark, spark.sql(sql.replace("/p", str(tmp_path / "p"))), [str(tmp_path / "bronze" / "t")]
    )
    assert [f.replace(str(tmp_path), "") for f in found] == refusals


@pytest.mark.spark
@pytest.mark.parametrize(
    ("sql", "refusals"),
    [
        ("WITH a AS (SELECT * FROM v) SELECT * FROM a WHERE x IN (SELECT y FROM csv.`/p`)", ["reads csv./p"]),
        ("WITH a AS (SELECT * FROM text.`/p`) SELECT * FROM a", ["reads text./p"]),
        ("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b JOIN v", []),
        # a CTE's name means it only inside its WITH: outside, it is a table of the catalog
        ("SELECT * FROM (WITH passwd AS (SELECT 1) SELECT * FROM passwd) JOIN passwd", ["reads passwd"]),
        ("SELECT (SELECT max(a) FROM json.`/p`) FROM v", ["reads json./p"]),
        ("SELECT * FROM v WHERE EXISTS (SELECT 1 FROM default.other)", ["reads default.other"]),
        ("SELECT java_method('java.lang.System', 'getenv', 'HOME') FROM v", ["calls java_method()"]),
        ("SELECT * FROM read_files('/p')", ["calls the table function read_files"]),
        ("SELECT * FROM range(3) JOIN v LATERAL VIEW explode(array(1)) t AS x", []),
        ("SELECT TRANSFORM(a) USING 'cat /p' AS (x) FROM v", ["runs a command (TRANSFORM ... USING)"]),
        ("SELECT * FROM IDENTIFIER('csv.`/p`')", ["reads a table named by IDENTIFIER(...)"]),
        ("SELECT IDENTIFIER('reflect')('a', 'b') FROM v", ["calls a function named by IDENTIFIER(...)"]),
    ],
)
def test_spark_s_own_parser_finds_every_read_besides_the_bound_views(spark, sql, refusals):
    assert gold.spark_refusals(spark, sql, {"v"}) == refusals


@pytest.mark.spark
def test_catalog_names_in_any_case_are_the_tables_spark_and_athena_read(spark, context):
    """PP_DW_BRONZE.Flights is pp_dw_bronze.flights to Spark and Athena: it was refused as a file path."""
    sql = "SELECT F.carrier, count(*) AS n FROM PP_DW_BRONZE.Flights F GROUP BY F.carrier"
    assert gold.check_models({"upper": sql}, "datasets/flights/gold", "pp_dw") == []
    summary = gold.run_gold(spark, context(RUN1), {"upper": sql})
    assert summary.status == "succeeded", summary.error
    assert summary.models[0]["rows"] == 2
