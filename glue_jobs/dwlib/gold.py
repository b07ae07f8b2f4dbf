"""The gold job: each `gold/{model}.sql` of a dataset becomes table `{database_prefix}_gold.{model}`.

Models are Spark SQL that name tables by their catalog names (`pp_dw_bronze.fda_nsde`, `pp_dw_gold.x`), the
names Athena reads them by. Here those names, and only they, are bound to the conventional lake paths (no
catalog and no crawler needed), models run in dependency order, each is checked against the expectations
in its leading comments, and its table is replaced only when they hold.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from dwlib import errors, iceberg, quality
from dwlib.config import MODEL_NAME
from dwlib.lake import LakeError
from dwlib.naming import LIMITS
from dwlib.run import (
    JobContext,
    LayoutError,
    Publisher,
    RunSummary,
    Target,
    guarded_run,
    housekeeping,
    publisher_for,
    write_parquet,
)

CATALOG_TABLE = re.compile(r"^[a-z_][a-z0-9_]*$")
# Functions that call arbitrary Java, and so could read any file: Spark's reflect and java_method
# (and try_reflect, which later Spark versions add).
JAVA_CALLS = frozenset({"reflect", "java_method", "try_reflect"})
# Spark's file data sources, read by `source.`path``: named in the message as file reads.
FILE_SOURCES = frozenset(
    {"csv", "json", "parquet", "orc", "text", "avro", "binaryfile", "delta", "xml", "libsvm", "iceberg", "hudi"}
)
# Spark 3.5's table-valued functions that only generate rows; any other function in FROM is refused.
GENERATORS = frozenset(
    {"range", "explode", "explode_outer", "inline", "inline_outer", "posexplode", "posexplode_outer", "stack",
     "json_tuple"}
)  # fmt: skip


# The column the job adds to every gold row: the run that wrote it.
RUN_ID_COLUMN = "meta_run_id"


class GoldError(ValueError):
    """A model that cannot run as written: names the file and what to change."""


# A model's expectations are rules of the vocabulary bronze's quality rules use (dwlib.quality).
Expectation = quality.Rule


@dataclass(frozen=True)
class Model:
    name: str
    sql: str
    expectations: tuple[Expectation, ...]
    bronze_refs: frozenset[str]  # bronze table names
    gold_refs: frozenset[str]  # gold model names


def parse_expectations(sql: str, label: str) -> tuple[Expectation, ...]:
    """`-- expect: ...` lines of the leading comment block."""
    try:
        return quality.expectations(sql)
    except quality.QualityError as exc:
        raise GoldError(f"{label}: {exc}") from None


def _function_name(node: exp.Expression) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _shown(node: exp.Expression, width: int = 80) -> str:
    text = " ".join(node.sql(dialect="spark").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def forbidden_reads(tree: exp.Expression, allowed: Callable[[exp.Table], bool]) -> list[str]:
    """What in a query reads something other than an allowed table: paths, table functions, Java calls.

    Spark reads a file for `csv.`/etc/passwd`` (or parquet., json., text., orc., delta., binaryFile.,
    any data source), so every table must pass `allowed` or be a CTE of the query itself.
    """
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found: list[str] = []
    for table in tree.find_all(exp.Table):
        target = table.this
        if not isinstance(target, exp.Identifier):
            if _function_name(target) not in GENERATORS:
                found.append(f"calls the table function {_shown(target)}")
            continue
        if not table.db and not table.catalog and table.name in ctes:
            continue
        if allowed(table):
            continue
        shown = ".".join(part.sql(dialect="spark") for part in table.parts)
        path = not table.catalog and (table.db.lower() in FILE_SOURCES or not CATALOG_TABLE.match(table.name))
        found.append(f"reads the file path {shown}" if path else f"reads {shown}, which is not a catalog name")
    for call in tree.find_all(exp.Func):
        if _function_name(call) in JAVA_CALLS:
            found.append(f"calls {_function_name(call)}(), which runs arbitrary Java")
    for transform in tree.find_all(exp.QueryTransform):
        found.append(f"runs a command ({_shown(transform, 60)}), which could read any file")
    return found


def _made_run_id_columns(query: exp.Expression) -> list[str]:
    """The result columns named like the job's run id column that the model makes itself (`'x' AS meta_run_id`):
    the job would replace their values. A table's own meta_run_id passed through (`SELECT *`, `t.meta_run_id`)
    is the job's column of an earlier run, and is the one the job replaces with this run's id."""
    if isinstance(query, exp.SetOperation):
        return _made_run_id_columns(query.left) + _made_run_id_columns(query.right)
    if isinstance(query, exp.Subquery):
        return _made_run_id_columns(query.this)
    made = []
    for projection in getattr(query, "expressions", []) if isinstance(query, exp.Select) else []:
        if projection.alias_or_name.lower() != RUN_ID_COLUMN:
            continue
        inner = projection.this if isinstance(projection, exp.Alias) else projection
        if not (isinstance(inner, exp.Column) and inner.name.lower() == RUN_ID_COLUMN):
            made.append(projection.alias_or_name)
    return made


def _job_column_message(label: str, column: str) -> str:
    return (
        f"{label}: the column {column} is the job's own (the run id it adds to every row, which would replace "
        f"the model's values); rename it in the SELECT (... AS {RUN_ID_COLUMN}_2), in a WITH or subquery too"
    )


def parse_model(name: str, sql: str, label: str, database_prefix: str) -> Model:
    if not MODEL_NAME.match(name):
        raise GoldError(f"{label}: model name {name!r} must be lowercase letters, digits and _ (Athena table names)")
    sql = sql.removeprefix("\ufeff")  # a byte order mark some editors write: not SQL
    bronze_db, gold_db = f"{database_prefix}_bronze", f"{database_prefix}_gold"
    rule = f"A model may read tables only by catalog name ({bronze_db}.TABLE or {gold_db}.MODEL)"
    # sqlglot warns on stderr when it keeps a statement it cannot parse (ADD JAR) as a Command;
    # the refusal below says it better.
    sqlglot_log = logging.getLogger("sqlglot")
    level = sqlglot_log.level
    sqlglot_log.setLevel(logging.ERROR)
    try:
        statements = [s for s in sqlglot.parse(sql, read="spark") if s is not None]
    except ParseError as exc:
        raise GoldError(f"{label}: does not parse as Spark SQL: {exc.errors[0].get('description', exc)}") from None
    finally:
        sqlglot_log.setLevel(level)
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        others = [_shown(s, 60) for s in statements if not isinstance(s, exp.Query)]
        found = f"; found {', '.join(others)}. {rule}, in one SELECT" if others else ""
        raise GoldError(f"{label}: must hold exactly one SELECT{found}")
    # Spark reads names in any case (PP_DW_BRONZE.Airports is pp_dw_bronze.airports), as Athena does.
    refused = forbidden_reads(
        statements[0],
        lambda t: not t.catalog and t.db.lower() in (bronze_db, gold_db) and bool(CATALOG_TABLE.match(t.name.lower())),
    )
    if refused:
        raise GoldError(f"{label}: {'; '.join(refused)}. {rule}: no file paths, table functions or Java calls")
    if made := _made_run_id_columns(statements[0]):
        raise GoldError(_job_column_message(label, made[0]))
    bronze, gold = set(), set()
    for table in statements[0].find_all(exp.Table):
        if table.db.lower() == bronze_db:
            bronze.add(table.name.lower())
        elif table.db.lower() == gold_db:
            gold.add(table.name.lower())
    return Model(name, sql, parse_expectations(sql, label), frozenset(bronze), frozenset(gold))


def run_order(models: dict[str, Model], label: str = "gold models") -> list[str]:
    """Models in dependency order; a cycle is an error naming the models in it."""
    graph = {name: {ref for ref in model.gold_refs if ref in models} for name, model in models.items()}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise GoldError(f"{label}: models read each other in a cycle ({cycle}); break it") from None


def bind(sql: str, views: dict[tuple[str, str], str]) -> str:
    """The model's own text with each catalog name (`db.table`) replaced by the session view that holds it.

    Only those names change: the rest is the text as written, so Spark reads it as Spark SQL, and text Spark
    does not know (a function only Trino has) fails the run rather than running as something a translation
    made of it. Anything that is not one of those names (a path, a table function, a Java call) is refused
    here again, at run time, whatever parse_model let through; `spark_refusals` asks Spark's own parser too.
    """
    tree = sqlglot.parse_one(sql, read="spark")
    refused = forbidden_reads(tree, lambda t: not t.catalog and (t.db.lower(), t.name.lower()) in views)
    if refused:
        raise GoldError(f"the model {'; '.join(refused)}; models read tables only by catalog name")
    edits: list[tuple[int, int, str]] = []
    for table in tree.find_all(exp.Table):
        view = views.get((table.db.lower(), table.name.lower()))
        if view is None:
            continue  # a CTE or a generator
        first, name = table.args["db"], table.this
        start, end = first.meta["start"], name.meta["end"] + 1
        if table.alias:
            edits.append((start, end, view))  # its own alias follows in the text
        elif table.args.get("sample") or table.args.get("version"):
            raise GoldError(
                f"give {sql[start:end]} an alias ({sql[start:end]} AS {table.name} ...): Spark takes a sample's "
                "or a version's alias after it"
            )
        else:
            edits.append((start, end, f"{view} AS {sql[name.meta['start'] : end]}"))  # `rev.col` still resolves
    for column in tree.find_all(exp.Column):
        # `pp_dw_bronze.flights.carrier`: the column of a table named in full, as Spark and Athena read it; the
        # table is now the view aliased `flights`, so the column is `flights.carrier`
        db, table = column.args.get("db"), column.args.get("table")
        if column.args.get("catalog") or not isinstance(db, exp.Identifier) or not isinstance(table, exp.Identifier):
            continue
        if (db.name.lower(), table.name.lower()) in views and "start" in db.meta and "start" in table.meta:
            edits.append((db.meta["start"], table.meta["start"], ""))
    for start, end, text in sorted(edits, reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql


def _items(seq: Any) -> list[Any]:
    """A Scala Seq, through Py4J, as a list."""
    return [seq.apply(i) for i in range(seq.size())]


def _expressions(node: Any) -> Iterator[tuple[str, Any]]:
    """Every expression of a plan node, deep: (its class's simple name, the expression)."""
    stack = _items(node.expressions())
    while stack:
        expression = stack.pop()
        yield expression.getClass().getSimpleName(), expression
        stack.extend(_items(expression.children()))


def _last_name(parts: Any) -> str:
    """A function's name from its name parts (`spark_catalog.system.reflect` is `reflect`), lowercased."""
    return _items(parts)[-1].lower()


def spark_refusals(spark, sql: str, views: set[str]) -> list[str]:
    """What Spark's own parser finds `sql` reading besides `views` and its CTEs: tables, paths, table functions
    other than generators, Java calls. sqlglot's reading of the text is checked in `bind`; this one is what
    Spark will run, so a text the two parse differently (a comment, an escape) cannot read around the check."""
    plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(sql)
    found: list[str] = []
    pending = [(plan, frozenset[str]())]  # each node with the CTE names in its scope
    while pending:
        node, ctes = pending.pop()
        kind = node.getClass().getSimpleName()
        if kind == "UnresolvedWith":
            ctes = ctes | {relation._1().lower() for relation in _items(node.cteRelations())}
        elif kind == "UnresolvedRelation":
            name = ".".join(_items(node.multipartIdentifier()))
            if name not in views and name.lower() not in ctes:
                found.append(f"reads {name}")
        elif kind == "UnresolvedTableValuedFunction":
            function = _last_name(node.name())
            if function not in GENERATORS:
                found.append(f"calls the table function {function}")
        elif kind == "ScriptTransformation":
            found.append("runs a command (TRANSFORM ... USING)")
        elif kind == "PlanWithUnresolvedIdentifier":  # IDENTIFIER('...') in FROM: a name known only at run time
            found.append("reads a table named by IDENTIFIER(...)")
        # inner children: the CTEs' and subqueries' plans
        pending.extend((child, ctes) for child in [*_items(node.children()), *_items(node.innerChildren())])
        for expression_kind, expression in _expressions(node):
            if expression_kind == "UnresolvedFunction" and _last_name(expression.nameParts()) in JAVA_CALLS:
                found.append(f"calls {_last_name(expression.nameParts())}()")
            elif expression_kind == "ExpressionWithUnresolvedIdentifier":
                found.append("calls a function named by IDENTIFIER(...)")
    return list(dict.fromkeys(found))


# Leaves of an analyzed plan that read no file: rows written in the query itself, generated, a frame the job
# made (an empty Iceberg table's columns: SQL cannot make one), or a reference to a WITH's table (whose plan, a
# CTERelationDef, is walked as a child of the WithCTE that holds it).
GENERATED_LEAVES = frozenset({"OneRowRelation", "LocalRelation", "Range", "LogicalRDD", "CTERelationRef"})


def analyzed_refusals(spark, df, sources: list[str]) -> list[str]:
    """What the analyzed plan of a model's query reads or runs besides the files under `sources` (the URIs of
    the tables it names): another file or table, a command, a Java call. The last check, on what Spark itself
    resolved, so no text the parsers read differently (a comment, IDENTIFIER(), a CTE's scope) can get past it.
    Nothing has run yet: analysis reads a file's schema at most."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()

    def qualified(uri: str) -> str:
        path = jvm.org.apache.hadoop.fs.Path(uri)
        return str(path.getFileSystem(conf).makeQualified(path).toString()).rstrip("/")

    allowed = [qualified(uri) for uri in sources]
    found: list[str] = []
    pending = [df._jdf.queryExecution().analyzed()]
    while pending:
        node = pending.pop()
        kind = node.getClass().getSimpleName()
        children = _items(node.children())
        if "ScriptTransformation" in kind:
            found.append("runs a command (TRANSFORM ... USING)")
        elif kind == "LogicalRelation" and node.relation().getClass().getSimpleName() == "HadoopFsRelation":
            for path in _items(node.relation().location().rootPaths()):
                root = qualified(str(path.toString()))
                if not any(root == a or root.startswith(a + "/") for a in allowed):
                    found.append(f"reads {root}")
        elif not children and kind not in GENERATED_LEAVES:
            found.append(f"reads {node.nodeName()}")
        pending.extend([*children, *_items(node.innerChildren())])
        if any(expression_kind == "CallMethodViaReflection" for expression_kind, _ in _expressions(node)):
            found.append("calls Java (reflect or java_method)")
    return list(dict.fromkeys(found))


# Leaves of an analyzed plan whose columns the model writes itself: VALUES, range(), a FROM-less SELECT.
WRITTEN_LEAVES = frozenset({"OneRowRelation", "LocalRelation", "Range"})


def made_job_columns(df, names: frozenset[str] = frozenset({RUN_ID_COLUMN})) -> list[str]:
    """The result columns named as a column the job adds (`names`, any case) that the model makes itself, by
    whatever route: an alias in a WITH or a subquery passed up through `*`, a UNION branch, VALUES, a generator.
    Traced in the analyzed plan down to where each is made; only a bound table's own column of that name passed
    through unchanged is not the model's (the job replaces it with this run's id, as an earlier run wrote it)."""
    plan = df._jdf.queryExecution().analyzed()
    named = [a for a in _items(plan.output()) if a.name().lower() in names]
    if not named:
        return []
    definitions: dict[int, Any] = {}  # a WITH's tables by id: a second reference to one renumbers its columns
    pending = [plan]
    while pending:
        node = pending.pop()
        if node.getClass().getSimpleName() == "CTERelationDef":
            definitions[node.id()] = node
        pending.extend([*_items(node.children()), *_items(node.innerChildren())])

    def ids(node: Any) -> list[int]:
        return [a.exprId().id() for a in _items(node.output())]

    def passed_through(node: Any, expr_id: int) -> bool:
        kind = node.getClass().getSimpleName()
        if kind == "View":  # a bound table (a temp view the job made): its columns are the table's
            return True
        for expression in _items(node.expressions()):
            if expression.getClass().getSimpleName() == "Alias" and expression.exprId().id() == expr_id:
                child = expression.child()  # `t.meta_run_id AS meta_run_id` passes it on; anything else makes it
                if child.getClass().getSimpleName() != "AttributeReference" or child.name().lower() not in names:
                    return False
                expr_id = child.exprId().id()  # a column of this node's input
                break
        children = _items(node.children())
        if kind == "Union" and expr_id in ids(node):  # every branch's column at that position
            at = ids(node).index(expr_id)
            return all(passed_through(c, ids(c)[at]) for c in children)
        if kind == "CTERelationRef":
            definition = definitions.get(node.cteId())
            at = ids(node).index(expr_id)
            return definition is not None and passed_through(definition, ids(definition)[at])
        holders = [c for c in children if expr_id in ids(c)]
        if holders:
            return passed_through(holders[0], expr_id)
        return not children and kind not in WRITTEN_LEAVES  # made here (a generator, an aggregate) or a table's

    return [a.name() for a in named if not passed_through(plan, a.exprId().id())]


@dataclass
class ModelResult:
    name: str
    status: str = "pending"  # succeeded, failed, skipped
    rows: int = 0
    output_prefix: str = ""
    files: int = 0
    bytes: int = 0  # of the published table: the run's BytesWritten
    failed_expectations: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    traceback: str | None = None  # a crash's whole trace; `error` stays one paragraph
    iceberg: dict = field(default_factory=dict)  # an Iceberg model's commit: snapshot id, files added and removed

    def as_entry(self) -> dict:
        """The model's line in the ledger (an Iceberg commit only where there is one: Parquet entries as before)."""
        return {k: v for k, v in self.__dict__.items() if k != "traceback" and (k != "iceberg" or v)}


def _locate_gold(ctx: JobContext, model: str, own: frozenset[str] | set[str] = frozenset()) -> str | None:
    """Folder of the published gold model `model`.

    A model of the running dataset (`own`) is the folder this run publishes it to, never a leftover folder of
    the same name elsewhere (a model moved from another dataset). Any other model is the one folder under
    gold/*/ of that name: two are an error naming both, as `dw query` refuses them (Athena sees one table).
    """
    if model in own:
        return ctx.naming.gold_prefix(ctx.name, model)
    found: list[str] = []
    for obj in ctx.lake.data_files("gold/"):
        parts = obj.key.split("/")
        if len(parts) >= 4 and parts[2] == model:
            prefix = "/".join(parts[:3]) + "/"
            if prefix not in found:
                found.append(prefix)
    if len(found) > 1:
        shown = " and ".join(sorted(found))
        raise GoldError(
            f"two folders make the table {ctx.naming.database('gold')}.{model}: {shown}; rename one gold model "
            "or delete the folder of the dataset that no longer has it"
        )
    return found[0] if found else None


def run_gold(spark, ctx: JobContext, sources: dict[str, str]) -> RunSummary:
    """Run every model of the dataset (`sources`: model name -> SQL); writes the gold run summary.

    Takes the dataset's run lock like bronze (raises ledger.RunRefused, writing nothing, if another
    run holds it), and publishes each model as the dataset's table format says: a Parquet folder
    replaced with a journal, or one commit of an Iceberg table.
    """
    naming = ctx.naming
    publisher = publisher_for(ctx)

    def new_summary() -> RunSummary:
        return RunSummary(
            dataset=ctx.name,
            run_id=ctx.run_id,
            layer="gold",
            source=", ".join(f"gold/{m}.sql" for m in sorted(sources)),
            output_prefix=naming.gold_dataset_prefix(ctx.name),
            crawler_command=(
                f"aws glue start-crawler --name {naming.crawler('gold', ctx.name)}" if publisher.needs_crawler else ""
            ),
            table_format=publisher.table_format,
        )

    def work(summary: RunSummary, entry: str) -> None:
        results: dict[str, ModelResult] = {}

        def record() -> None:
            summary.durations_seconds = {f"model {r.name}": r.seconds for r in results.values()}
            summary.models = [r.as_entry() for r in results.values()]
            traces = [f"model {r.name}:\n{r.traceback}" for r in results.values() if r.traceback]
            summary.traceback = "\n".join(traces) or summary.traceback

        try:
            models = {
                name: parse_model(name, sql, f"gold/{name}.sql", ctx.core.database_prefix)
                for name, sql in sources.items()
            }
            order = run_order(models)
            for name in order:
                results[name] = ModelResult(name, output_prefix=naming.gold_prefix(ctx.name, name))

                def before_publish(result: ModelResult) -> None:
                    result.status = "publishing"
                    record()

                _run_model(spark, ctx, models[name], results, results[name], before_publish, summary, entry, publisher)
                record()
            # rows published: a model that failed its expectations counted rows it never published
            summary.rows_kept = sum(r.rows for r in results.values() if r.status == "succeeded")
            summary.output_files = sum(r.files for r in results.values())
            summary.output_bytes = sum(r.bytes for r in results.values())
            failed = [r for r in results.values() if r.status != "succeeded"]
            summary.status = "failed" if failed else "succeeded"
            if failed:
                summary.error = "; ".join(f"{r.name} {r.status}: {r.error}" for r in failed)
        finally:
            record()

    return guarded_run(
        ctx,
        "gold",
        new_summary,
        work,
        staging=naming.staging_prefix("gold", ctx.name, ctx.run_id),
        expected=(GoldError,),
    )


def _run_model(
    spark, ctx: JobContext, model: Model, done: dict[str, ModelResult], result: ModelResult,
    before_publish, summary: RunSummary, entry: str, publisher: Publisher | None = None,
) -> ModelResult:  # fmt: skip
    import time

    from pyspark.sql import functions as F

    naming, lake = ctx.naming, ctx.lake
    publisher = publisher or publisher_for(ctx)
    started = time.perf_counter()
    target = Target(
        layer="gold",
        prefix=result.output_prefix,
        identifier=iceberg.gold_identifier(naming, model.name),
        journal=f"gold.{model.name}",
        about={"layer": "gold", "model": model.name},
    )  # an Iceberg model is replaced whole by each run: one `overwrite` snapshot, never partitioned
    try:
        blocked = [ref for ref in model.gold_refs if ref in done and done[ref].status != "succeeded"]
        if blocked:
            result.status, result.error = "skipped", f"reads {', '.join(blocked)}, which did not succeed"
            return result
        publisher.check_layout(ctx, target)  # a folder of the other table format: before the model's SQL runs
        views: dict[tuple[str, str], str] = {}
        sources: list[str] = []  # the folders the views read, all a model may read
        for table in sorted(model.bronze_refs):
            prefix = naming.bronze_table_prefix(table)
            sources.append(lake.uri(prefix))
            if not lake.data_files(prefix):
                raise GoldError(
                    f"{naming.database('bronze')}.{table} has no data at {prefix}; run its bronze job first"
                )
            current = iceberg.read_current(spark, lake, naming, (naming.database("bronze"), table), prefix)
            if current is not None:  # an Iceberg table: its current snapshot, never every file of its folder
                current.createOrReplaceTempView(f"dw_bronze__{table}")
                views[(naming.database("bronze"), table)] = f"dw_bronze__{table}"
                continue
            views[(naming.database("bronze"), table)] = _view(spark, lake.uri(prefix), f"bronze__{table}")
        for ref in sorted(model.gold_refs):
            prefix = _locate_gold(ctx, ref, set(done))
            if prefix is None:
                raise GoldError(f"{naming.database('gold')}.{ref} does not exist yet; run the model that builds it")
            sources.append(lake.uri(prefix))
            current = iceberg.read_current(spark, lake, naming, iceberg.gold_identifier(naming, ref), prefix)
            if current is not None:  # an Iceberg model: its current snapshot (maybe empty), never its folder's files
                current.createOrReplaceTempView(f"dw_gold__{ref}")
                views[(naming.database("gold"), ref)] = f"dw_gold__{ref}"
                continue
            views[(naming.database("gold"), ref)] = _view(spark, lake.uri(prefix), f"gold__{ref}")
        bound = bind(model.sql, views)
        refused = spark_refusals(spark, bound, set(views.values()))
        if refused:
            raise GoldError(f"the model {'; '.join(refused)}; models read tables only by catalog name")
        df = spark.sql(bound)
        refused = analyzed_refusals(spark, df, sources)
        if refused:
            raise GoldError(f"the model {'; '.join(refused)}; models read tables only by catalog name")
        if made := made_job_columns(df):
            raise GoldError(_job_column_message(f"gold/{model.name}.sql", made[0]))
        problems = column_problems(df.schema)
        if problems:
            raise GoldError(f"gold/{model.name}.sql: {'; '.join(problems)}")
        missing = missing_columns(model.expectations, [*df.columns, RUN_ID_COLUMN])
        if missing:
            raise GoldError(f"gold/{model.name}.sql: {'; '.join(missing)}")
        df = df.withColumn(RUN_ID_COLUMN, F.lit(ctx.run_id))
        staging = naming.staging_prefix("gold", ctx.name, ctx.run_id, model.name)
        with publisher.writing(spark):  # Iceberg: timestamps as Iceberg reads them
            write_parquet(df, lake.uri(staging))  # adaptive execution sizes the files after the model's shuffles
        written = spark.read.parquet(lake.uri(staging))
        result.rows = written.count()
        result.failed_expectations = quality.table_failures(written, model.expectations, result.rows)
        if result.failed_expectations:
            result.status = "failed"
            result.error = f"expectations failed: {'; '.join(result.failed_expectations)}; the previous table is kept"
            return result
        before_publish(result)
        done = publisher.publish(spark, ctx, summary, entry, staging, target)
        result.files, result.bytes, result.iceberg = done.files, done.bytes, done.commit
        result.status = "succeeded"
    except (GoldError, LayoutError) as exc:
        result.status, result.error = "failed", str(exc)
    except iceberg.IcebergError as exc:  # a narrowed column: the model's SELECT is where to cast it back
        fix = "for a gold model: cast the column in" if exc.cast_fix else "the model:"
        result.status, result.error = "failed", f"{exc} ({fix} gold/{model.name}.sql)"
    except LakeError as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # a SQL error in one model fails that model only
        result.status = "failed"
        result.error = errors.describe(exc, lake_root=lake.root_uri, ledger_key=entry).replace(
            errors.ANCIENT_FIX, gold_ancient_advice(model.name)  # the model is where a gold run can change it
        )
        result.traceback = errors.full_trace(exc)
    finally:
        result.seconds = round(time.perf_counter() - started, 3)
    return result


def gold_ancient_advice(model: str) -> str:
    return (
        f"make such values NULL in gold/{model}.sql (CASE WHEN ts < TIMESTAMP '1900-01-01' THEN NULL ELSE ts END) "
        "or filter them out"
    )


def column_problems(schema: Any) -> list[str]:
    """What in a result's columns (nested ones too) the published table cannot hold as Spark made it, each with
    the fix: an interval (Parquet has no such type: Spark writes its bare number), an untyped NULL (no Parquet or
    Athena type), a name longer than a Glue column name may be."""
    from pyspark.sql.types import ArrayType, MapType, NullType, StructType

    limit = LIMITS["glue_column"]
    found: list[str] = []

    def walk(data_type: Any, where: str) -> None:
        if "Interval" in type(data_type).__name__:  # day-time, year-month, and the older calendar interval
            found.append(
                f"the column {where} is an interval ({data_type.simpleString()}), which a Parquet or Athena table "
                "cannot hold (Spark would write a bare number); make it a number or text: "
                "unix_seconds(a) - unix_seconds(b) for the seconds between two timestamps, "
                "datediff(a, b) for days, or CAST(x AS STRING)"
            )
        elif isinstance(data_type, NullType):
            found.append(
                f"the column {where} is an untyped NULL, which a Parquet or Athena table cannot hold; give it a type: "
                "CAST(NULL AS <type>) (CAST(NULL AS STRING), CAST(NULL AS BIGINT)...)"
            )
        elif isinstance(data_type, StructType):
            for f in data_type.fields:
                name(f.name, f"{where}.{f.name}")
                walk(f.dataType, f"{where}.{f.name}")
        elif isinstance(data_type, ArrayType):
            walk(data_type.elementType, f"{where}[]")
        elif isinstance(data_type, MapType):
            walk(data_type.keyType, f"{where} (map key)")
            walk(data_type.valueType, f"{where} (map value)")

    def name(text: str, where: str) -> None:
        if limit.size(text) > limit.max_length:
            found.append(
                f"the column name {where[:60]}... is {limit.size(text)} {limit.unit}, over the {limit.max_length} "
                f"a {limit.what} may be; give it a shorter alias (AS ...)"
            )

    for f in schema.fields:
        name(f.name, f.name)
        walk(f.dataType, f.name)
    return found


def _view(spark, uri: str, name: str) -> str:
    view = f"dw_{name}"
    spark.read.parquet(uri).createOrReplaceTempView(view)
    return view


def describe_gold(summary: RunSummary) -> str:
    lines = [*housekeeping(summary), f"{summary.dataset} gold run {summary.run_id} {summary.status}"]
    for model in summary.models:
        detail = (
            f"{model['rows']} rows at {model['output_prefix']}" if model["status"] == "succeeded" else model["error"]
        )
        commit = model.get("iceberg") or {}
        if model["status"] == "succeeded" and commit:
            detail += f", snapshot {commit.get('snapshot_id')} of the Iceberg table {commit.get('table')}"
        lines.append(f"  {model['name']}: {model['status']}: {detail}")
    if summary.status != "succeeded" and not summary.models:
        lines.append(f"  {summary.error}")
    if summary.table_format == "iceberg":
        lines.append("  no crawler is needed: the job commits each gold model as an Iceberg table in the catalog")
    else:
        lines.append(f"  catalog new or changed gold tables with: {summary.crawler_command}")
    return "\n".join(lines)


def decode_model(data: bytes, label: str) -> str:
    """A model file's text: UTF-8 (a leading byte order mark dropped), or an error naming the file, where its first
    byte that is not UTF-8 is, and the fix."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise GoldError(
            f"{label}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, column {column}, likely "
            "Latin-1 or Windows-1252); save the file as UTF-8"
        ) from None


def model_sources(folder) -> dict[str, str]:
    """Models of a local dataset folder: gold/*.sql (UTF-8; a file that is not is an error naming it)."""
    return {
        p.stem: decode_model(p.read_bytes(), f"datasets/{folder.name}/gold/{p.name}")
        for p in sorted((folder / "gold").glob("*.sql"))
    }


def missing_columns(rules: tuple[Expectation, ...], columns: list[str]) -> list[str]:
    """Each expectation naming a column the model's result does not have (names match in any case, as Spark's)."""
    have = {c.lower() for c in columns}
    problems = []
    for rule in rules:
        absent = [c for c in rule.columns if c.lower() not in have]
        if absent:
            problems.append(
                f"the expectation {rule} names {', '.join(absent)}, which the model's result does not have (its "
                f"columns: {', '.join(c for c in columns if c != RUN_ID_COLUMN)}); name a column the SELECT outputs, "
                "or output it"
            )
    return problems


def cycles_across_datasets(sources_by_dataset: dict[str, dict[str, str]], database_prefix: str) -> list[str]:
    """A cycle through models of several datasets, which no dataset's own check sees: gold tables are
    global, so a model may read another dataset's model, and two datasets whose models read each
    other could never run (each waits for a table the other has not made yet)."""
    models: dict[str, Model] = {}
    owner: dict[str, str] = {}
    for dataset, sources in sources_by_dataset.items():
        for name, sql in sources.items():
            try:
                models[name] = parse_model(name, sql, f"datasets/{dataset}/gold/{name}.sql", database_prefix)
            except GoldError:
                continue  # check_models reports it
            owner[name] = dataset
    graph = {name: {ref for ref in model.gold_refs if ref in models} for name, model in models.items()}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        datasets = sorted({owner[name] for name in cycle})
        if len(datasets) > 1:  # one dataset's own cycle is check_models' to report
            return [
                f"datasets/{datasets[0]}/gold: models of datasets {', '.join(datasets)} read each other in a "
                f"cycle ({' -> '.join(cycle)}); break it"
            ]
    return []


def check_models(sources: dict[str, str], label_prefix: str, database_prefix: str) -> list[str]:
    """Problems with a dataset's models (parse, expectations, cycles), for `dw validate`."""
    problems: list[str] = []
    models: dict[str, Model] = {}
    for name, sql in sources.items():
        try:
            models[name] = parse_model(name, sql, f"{label_prefix}/{name}.sql", database_prefix)
        except GoldError as exc:
            problems.append(str(exc))
    try:
        run_order(models, label_prefix)
    except GoldError as exc:
        problems.append(str(exc))
    return problems
