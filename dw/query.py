"""`dw query`: the Athena (Trino) SQL one would run on AWS, run on the local lake with DuckDB.

The local lake mirrors the bucket (DESIGN section 5, `dwlib.naming`): `bronze/{table}/*.parquet`
is the catalog table `{database_prefix}_bronze.{table}` and `gold/{dataset}/{model}/*.parquet` is
`{database_prefix}_gold.{model}`. `connect` gives an in-memory DuckDB with one schema per Glue
database and one view per table, so the same `database.table` names resolve.

`translate` turns Trino SQL into DuckDB SQL with sqlglot, then corrects what sqlglot's output
gets wrong for DuckDB (each fix-up says why at `_fix`). Several of those depend on the type of an
argument (a DATE stays a DATE in Trino's `date_add`, an integer division stays integral), so the
query is first qualified and type-annotated with the lake's schema when one is given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from dwlib.naming import LAYERS, Naming

READ_DIALECT = "athena"  # Athena engine v3 is Trino; sqlglot's "athena" parses its DML as Trino
WRITE_DIALECT = "duckdb"
AWS_CATALOG = "awsdatacatalog"  # Athena's name for the Glue catalog: `awsdatacatalog.db.table`
RUN_HINT = "run `dw run DATASET` to create one"

DType = exp.DataType.Type
INTEGER_TYPES = (DType.TINYINT, DType.SMALLINT, DType.INT, DType.BIGINT)
INTEGER_PRECISION = {DType.TINYINT: 3, DType.SMALLINT: 5, DType.INT: 10, DType.BIGINT: 19}
DATE_UNITS = {"DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}
# Characters Trino's trim/ltrim/rtrim remove (Java whitespace), where DuckDB removes spaces only.
WHITESPACE = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"

# Defined on every connection; `translate` emits it for exact DECIMAL division (see `_decimal_div`).
MACROS = (
    "CREATE MACRO dw_div_half_up(n, d) AS CASE WHEN d = 0 THEN error('Division by zero') "
    "ELSE (CASE WHEN (n < 0) <> (d < 0) THEN -1 ELSE 1 END) * ((2 * abs(n) + abs(d)) // (2 * abs(d))) END",
)


class QueryError(Exception):
    """User-facing message, no traceback needed."""


@dataclass(frozen=True)
class TableInfo:
    database: str
    table: str
    path: Path
    files: int
    bytes: int
    kind: str = "parquet"  # or "runs": the JSON lines of ops/runs/ (the run-history table)

    @property
    def name(self) -> str:
        return f"{self.database}.{self.table}"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]


# ---------------------------------------------------------------- the local catalog


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def _folders(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not _hidden(p.name))


def _data_files(folder: Path) -> list[Path]:
    """Parquet files of a table folder, in subfolders too (Hive partitions), not Spark's litter.

    Only `*.parquet` counts, so `_SUCCESS`, `*.crc` and `.part-*.parquet.crc` do not; nor does
    anything under a folder starting with `_` or `.` (`_temporary/`, `.spark-staging-*/`).
    """
    files = []
    for path in folder.rglob("*.parquet"):
        if path.is_file() and not any(_hidden(part) for part in path.relative_to(folder).parts):
            files.append(path)
    return sorted(files)


def _table(database: str, table: str, folder: Path) -> TableInfo | None:
    files = _data_files(folder)
    if not files:
        return None
    return TableInfo(database, table, folder, len(files), sum(f.stat().st_size for f in files))


def local_catalog(lake_root: Path, naming: Naming) -> list[TableInfo]:
    """The tables the Glue crawlers would make of the local lake, sorted by database, table.

    Bronze: `bronze/{table}/` is `{database_prefix}_bronze.{table}`. Gold:
    `gold/{dataset_table}/{model}/` is `{database_prefix}_gold.{model}`. A folder without
    parquet files is no table.
    """
    lake_root = Path(lake_root)
    bronze, gold = LAYERS
    tables = [_table(naming.database(bronze), folder.name, folder) for folder in _folders(lake_root / bronze)]
    tables += [
        _table(naming.database(gold), model.name, model)
        for dataset in _folders(lake_root / gold)
        for model in _folders(dataset)
    ]
    tables.append(_runs_table(lake_root, naming))
    return sorted((t for t in tables if t), key=lambda t: (t.database, t.table, str(t.path)))


def _runs_table(lake_root: Path, naming: Naming) -> TableInfo | None:
    """`{database_prefix}_ops.runs`, as the core stack declares it over ops/runs/ on AWS."""
    folder = lake_root / naming.ops_runs_prefix()
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return None
    return TableInfo(naming.ops_database, "runs", folder, len(files), sum(f.stat().st_size for f in files), "runs")


# ---------------------------------------------------------------- DuckDB


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _scan_sql(table: TableInfo) -> str:
    if table.kind == "runs":
        from dwlib.metrics import RUN_COLUMNS

        listed = ", ".join(_literal(str(f.resolve())) for f in sorted(table.path.glob("*.json")))
        columns = ", ".join(
            f"{_literal(c)}: {_literal(t.upper().replace('STRING', 'VARCHAR'))}" for c, t in RUN_COLUMNS
        )
        return f"read_json([{listed}], format = 'newline_delimited', columns = {{{columns}}})"
    files = _data_files(table.path)
    hive = any("=" in part for f in files for part in f.relative_to(table.path).parts[:-1])
    listed = ", ".join(_literal(str(f.resolve())) for f in files)
    # Partition values stay strings, as the Glue crawler types partition keys.
    options = "union_by_name = true, hive_partitioning = " + ("true, hive_types_autocast = false" if hive else "false")
    return f"read_parquet([{listed}], {options})"


def _create_view(con: duckdb.DuckDBPyConnection, table: TableInfo) -> None:
    scan = _scan_sql(table)
    relation = con.sql(f"SELECT * FROM {scan}")
    # Spark writes timestamps as INT96 or as UTC-adjusted TIMESTAMP_MICROS, which DuckDB reads
    # as TIMESTAMP WITH TIME ZONE; Athena reads both as `timestamp`: the UTC wall-clock time.
    to_timestamp = [
        f"CAST({_quote(c)} AS TIMESTAMP) AS {_quote(c)}"
        for c, t in zip(relation.columns, relation.types, strict=True)
        if t.id.startswith("timestamp") and t.id != "timestamp"
    ]
    replace = f" REPLACE ({', '.join(to_timestamp)})" if to_timestamp else ""
    con.execute(f"CREATE VIEW {_quote(table.database)}.{_quote(table.table)} AS SELECT *{replace} FROM {scan}")


def _open(catalog: list[TableInfo], naming: Naming) -> duckdb.DuckDBPyConnection:
    seen: dict[str, TableInfo] = {}
    for table in catalog:
        if table.name in seen:
            raise QueryError(
                f"two folders make the table {table.name}: {seen[table.name].path} and {table.path}; "
                "rename one gold model"
            )
        seen[table.name] = table
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")  # Athena's session zone: current_date, ISO 8601 parsing
        for macro in MACROS:
            con.execute(macro)
        for layer in LAYERS:
            con.execute(f"CREATE SCHEMA {_quote(naming.database(layer))}")
        for database in sorted({t.database for t in catalog} - {naming.database(layer) for layer in LAYERS}):
            con.execute(f"CREATE SCHEMA {_quote(database)}")
        for table in catalog:
            _create_view(con, table)
    except duckdb.Error as e:
        con.close()
        raise QueryError(f"could not open the local lake: {e}") from None
    return con


def connect(lake_root: Path, naming: Naming) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with one schema per Glue database (both layers, even if empty) and one
    VIEW per table of `local_catalog`, so that `pp_dw_bronze.fda_nsde` resolves."""
    return _open(local_catalog(lake_root, naming), naming)


def _athena_type(t: duckdb.DuckDBPyType) -> str:
    """A DuckDB type as Athena names it."""
    kind = t.id
    if kind == "decimal":
        params = dict(t.children)
        return f"decimal({params['precision']},{params['scale']})"
    if kind in ("list", "array"):
        return f"array({_athena_type(dict(t.children)['child'])})"
    if kind == "map":
        params = dict(t.children)
        return f"map({_athena_type(params['key'])}, {_athena_type(params['value'])})"
    if kind == "struct":
        return "row(" + ", ".join(f"{name} {_athena_type(child)}" for name, child in t.children) + ")"
    return ATHENA_TYPES.get(kind, kind)


ATHENA_TYPES = {
    "float": "real",
    "blob": "varbinary",
    "enum": "varchar",
    # DuckDB sums integers into HUGEINT; Trino's sum of integers is a bigint.
    "hugeint": "bigint",
    "uhugeint": "bigint",
    "ubigint": "bigint",
    "uinteger": "bigint",
    "usmallint": "integer",
    "utinyint": "smallint",
    "timestamp_s": "timestamp",
    "timestamp_ms": "timestamp",
    "timestamp_ns": "timestamp",
    "interval": "interval day to second",
    '"null"': "unknown",
    "null": "unknown",
}


def _columns(con: duckdb.DuckDBPyConnection, table: TableInfo) -> list[tuple[str, str]]:
    relation = con.sql(f"SELECT * FROM {_quote(table.database)}.{_quote(table.table)}")
    return [(c, _athena_type(t)) for c, t in zip(relation.columns, relation.types, strict=True)]


def _schema(con: duckdb.DuckDBPyConnection, catalog: list[TableInfo]) -> dict:
    """`{database: {table: {column: type}}}` for sqlglot's type annotation."""
    schema: dict = {}
    for table in catalog:
        columns = {}
        for name, athena_type in _columns(con, table):
            try:
                columns[name] = exp.DataType.build(athena_type, dialect=READ_DIALECT)
            except Exception:  # a type sqlglot cannot read: the column stays untyped
                columns[name] = exp.DataType.build("unknown")
        schema.setdefault(table.database, {})[table.table] = columns
    return schema


# ---------------------------------------------------------------- parsing


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to a raw Command; the refusal says enough."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


TOKEN = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: .*?>")


def _parse(sql: str) -> exp.Expression:
    try:
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(sql, read=READ_DIALECT) if s is not None]
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        where = f" at line {first['line']}, column {first['col']}" if first.get("line") else ""
        problem = TOKEN.sub(r"'\1'", first.get("description") or str(e))
        highlight = first.get("highlight")
        near = f" near {highlight!r}" if highlight and repr(highlight) not in problem else ""
        raise QueryError(f"could not parse the SQL: {problem}{near}{where}") from None
    except TokenError as e:
        raise QueryError(f"could not parse the SQL: {e}") from None
    if not statements:
        raise QueryError("no SQL statement given")
    if len(statements) > 1:
        raise QueryError(f"one statement at a time, please: got {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query | exp.Values):
        kind = statement.name.upper() if isinstance(statement, exp.Command) else statement.key.upper()
        if kind in ("SHOW", "DESCRIBE"):
            raise QueryError(f"{kind} is answered from the local catalog by run_query, not translated")
        raise QueryError(f"only read-only statements run locally (SELECT, WITH, SHOW, DESCRIBE); this one is {kind}")
    return statement


# ---------------------------------------------------------------- translation


def translate(sql: str, schema: dict | None = None) -> str:
    """Trino/Athena SQL -> DuckDB SQL.

    `schema` (`{database: {table: {column: type}}}`, as `run_query` builds from the lake) lets
    the type-dependent fix-ups apply to columns; without it they apply where the types show in
    the SQL itself (literals, casts). The DuckDB SQL is meant for a `connect` connection, which
    defines the helper macros it may call.
    """
    return _to_duckdb(_parse(sql), schema)


def _to_duckdb(statement: exp.Expression, schema: dict | None) -> str:
    statement = statement.copy()
    for table in statement.find_all(exp.Table):
        if table.catalog.lower() == AWS_CATALOG:
            table.set("catalog", None)
    for select in list(statement.find_all(exp.Select)):
        _name_outputs(select)
    try:
        typed = qualify(
            statement.copy(),
            dialect=READ_DIALECT,
            schema=schema or {},
            expand_alias_refs=False,  # Trino has no alias references; keep its name resolution
            validate_qualify_columns=False,
            quote_identifiers=True,
            identify=True,
        )
        typed = annotate_types(typed, schema=schema or {}, dialect=READ_DIALECT)
    except Exception:  # qualification is best effort: without it, only literal types are known
        try:
            typed = annotate_types(statement.copy(), dialect=READ_DIALECT)
        except Exception:
            typed = statement.copy()
    for node in reversed(list(typed.walk(bfs=False))):  # children before their parents
        parent, arg_key, index = node.parent, node.arg_key, node.index
        fixed = _fix(node)
        if fixed is not node:
            if fixed.type is None or fixed.type.is_type(DType.UNKNOWN):
                fixed.type = node.type  # the Trino type, which the fix-ups keep
            if parent is None:
                typed = fixed
            else:
                parent.set(arg_key, fixed, index)
    return typed.sql(dialect=WRITE_DIALECT, unsupported_level=ErrorLevel.IGNORE)


def _name_outputs(select: exp.Select) -> None:
    """Athena names an output column after its column, else `_col{position}`; DuckDB after the
    expression's text."""
    projections = select.expressions
    if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and p.is_star) for p in projections):
        return  # positions depend on what the star expands to
    named = [
        p if isinstance(p, exp.Alias | exp.Column | exp.Dot) else exp.alias_(p, f"_col{i}", quoted=True, copy=False)
        for i, p in enumerate(projections)
    ]
    select.set("expressions", named)


def _is(node: exp.Expression | None, *types: DType) -> bool:
    return node is not None and node.type is not None and node.type.is_type(*types)


def _text_type(node: exp.Expression) -> bool:
    return _is(node, *exp.DataType.TEXT_TYPES)


def _unit(node: exp.Expression) -> str:
    unit = node.args.get("unit")
    return (unit.name if unit is not None else "DAY").upper()


def _as(node: exp.Expression, type_sql: str) -> exp.Cast:
    return exp.cast(node, exp.DataType.build(type_sql, dialect=WRITE_DIALECT), copy=False)


def _fn(name: str, *args: exp.Expression) -> exp.Anonymous:
    """A DuckDB function call, written as is."""
    return exp.Anonymous(this=name, expressions=list(args))


def _fix(node: exp.Expression) -> exp.Expression:
    """One node of the annotated Trino AST, corrected where sqlglot's DuckDB SQL differs from
    Trino; every branch names the Trino semantics it keeps."""
    # date_add('day', n, date) and date + INTERVAL 'n' DAY stay DATEs in Trino; DuckDB's
    # DATE + INTERVAL is a TIMESTAMP.
    if isinstance(node, exp.DateAdd) and _is(node.this, DType.DATE) and _unit(node) in DATE_UNITS:
        return _as(node, "DATE")
    if (
        isinstance(node, exp.Add | exp.Sub)
        and _is(node.this, DType.DATE)
        and isinstance(node.expression, exp.Interval)
        and _unit(node.expression) in DATE_UNITS
    ):
        return _as(node, "DATE")
    # date_trunc('month', date) is a DATE in Trino, a TIMESTAMP in DuckDB.
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc) and _is(node.this, DType.DATE):
        return _as(node, "DATE")
    # date_diff counts whole units elapsed in Trino (23:30 -> 01:00 next day is 0 days); sqlglot
    # writes DuckDB's date_diff, which counts unit boundaries crossed (1). DuckDB's date_sub is
    # Trino's date_diff.
    if isinstance(node, exp.DateDiff):
        return _fn("DATE_SUB", exp.Literal.string(_unit(node).lower()), node.expression, node.this)
    if isinstance(node, exp.Cast | exp.TryCast):
        return _fix_cast(node)
    # Trino types these timestamp(3) with time zone (as DuckDB does); sqlglot leaves them
    # untyped or types them TIMESTAMP, which the CAST fix-up above reads.
    if isinstance(node, exp.FromISO8601Timestamp | exp.CurrentTimestamp | exp.UnixToTime):
        node.type = exp.DataType.build("TIMESTAMPTZ")
        return node
    # Trino's trim family removes all whitespace; DuckDB's removes only spaces.
    if isinstance(node, exp.Trim) and node.args.get("expression") is None:
        node.set("expression", exp.Literal.string(WHITESPACE))
        return node
    # format_datetime(ts, 'yyyy-MM-dd') takes a Joda-Time pattern; sqlglot passes it through as
    # an unknown function.
    if isinstance(node, exp.Anonymous) and node.name.lower() == "format_datetime":
        return _format_datetime(node)
    # Integer / integer truncates in Trino. sqlglot writes CAST(TRUNC(a / b) AS BIGINT), which
    # goes through DOUBLE (wrong past 2^53) and widens integer to bigint; DuckDB's // is exact.
    if isinstance(node, exp.Div):
        if _is(node.this, *INTEGER_TYPES) and _is(node.expression, *INTEGER_TYPES):
            return exp.IntDiv(this=node.this, expression=node.expression)
        return _decimal_div(node) or node
    if isinstance(node, exp.Avg):
        return _decimal_avg(node) or node
    # round(decimal(p, s), n) is a decimal(p + 1, s) in Trino; DuckDB's has scale n.
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None and _is(node.this, DType.DECIMAL):
        precision, scale = _decimal_type(node.this) or (37, 0)
        return _as(node, f"DECIMAL({min(38, precision + 1)}, {scale})") if scale else node
    if isinstance(node, exp.Window) and isinstance(node.this, exp.Avg):
        return _decimal_avg(node.this, window=node) or node
    # approx_distinct is exact for small sets in Trino (sparse HyperLogLog); DuckDB's
    # approx_count_distinct is not (it counts 2 of 3 names). The local lake is small: count exactly.
    if isinstance(node, exp.ApproxDistinct):
        return exp.Count(this=exp.Distinct(expressions=[node.this]))
    # cardinality(map): sqlglot writes ARRAY_LENGTH, which DuckDB has for lists only.
    if isinstance(node, exp.ArraySize) and _is(node.this, DType.MAP):
        return _fn("CARDINALITY", node.this)
    # regexp_extract is NULL without a match in Trino, '' in DuckDB.
    if isinstance(node, exp.RegexpExtract):
        matches = exp.RegexpLike(this=node.this.copy(), expression=node.expression.copy())
        return exp.Case(ifs=[exp.If(this=matches, true=node)])
    # split_part past the last field is NULL in Trino, '' in DuckDB.
    if isinstance(node, exp.SplitPart):
        parts = _fn("STR_SPLIT", node.this, node.args["delimiter"])
        return _fn("LIST_EXTRACT", parts, node.args["part_index"])
    return node


def _fix_cast(node: exp.Cast) -> exp.Expression:
    value, to = node.this, node.to
    safe = isinstance(node, exp.TryCast)
    if to.is_type(*INTEGER_TYPES):
        if _text_type(value):
            # Trino parses with Integer.parseInt/Long.parseLong: '12.5', '1e3', ' 7' and '0x10'
            # are no integers (try_cast: NULL, cast: error). DuckDB rounds or accepts them.
            is_integer = exp.RegexpFullMatch(this=value.copy(), expression=exp.Literal.string("[+-]?[0-9]+"))
            if safe:
                return exp.Case(ifs=[exp.If(this=is_integer, true=node)])
            type_name = to.this.value  # Trino's message: Cannot cast 'abc' to INT
            message = exp.DPipe(
                this=exp.DPipe(this=exp.Literal.string("Cannot cast '"), expression=value.copy()),
                expression=exp.Literal.string(f"' to {type_name}"),
            )
            ok = exp.or_(exp.Is(this=value.copy(), expression=exp.Null()), is_integer)
            return exp.Case(ifs=[exp.If(this=ok, true=node)], default=_fn("ERROR", message))
        if _is(value, DType.DOUBLE, DType.FLOAT):
            # Trino rounds half away from zero (2.5 -> 3, -2.5 -> -3); DuckDB half to even.
            node.set("this", exp.Round(this=value))
            return node
    if to.is_type(*exp.DataType.TEXT_TYPES) and _is(value, DType.TIMESTAMP, DType.TIMESTAMPTZ):
        # Athena's timestamps (Parquet included) are timestamp(3): '2024-01-31 23:30:00.000',
        # with the zone after a zoned one ('... UTC'; DuckDB keeps zoned values in UTC).
        precision = value.type.expressions[0].this.to_py() if value.type.expressions else 3
        fraction = {0: "", 3: ".%g", 6: ".%f"}.get(precision)
        zone = " UTC" if value.type.is_type(DType.TIMESTAMPTZ) else ""
        if fraction is not None:
            return _fn("STRFTIME", value, exp.Literal.string(f"%Y-%m-%d %H:%M:%S{fraction}{zone}"))
    return node


# ---- DECIMAL arithmetic: Trino keeps decimals decimal, DuckDB divides and averages in DOUBLE


def _decimal_type(node: exp.Expression) -> tuple[int, int] | None:
    """(precision, scale) of a DECIMAL (or integer) operand, as Trino types it."""
    if isinstance(node, exp.Paren):
        return _decimal_type(node.this)
    if isinstance(node, exp.Neg):
        return _decimal_type(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        text = node.name.lower()
        if "e" in text:
            return None  # a DOUBLE literal
        whole, _, fraction = text.partition(".")
        digits = len(whole.lstrip("0")) + len(fraction)
        if fraction:
            return max(digits, 1), len(fraction)
        return (10, 0) if abs(int(whole)) < 2**31 else (19, 0)
    dtype = node.type
    if dtype is None:
        return None
    if dtype.is_type(*INTEGER_TYPES):
        return INTEGER_PRECISION[dtype.this], 0
    if dtype.is_type(DType.DECIMAL):
        params = [p.this.to_py() for p in dtype.expressions]
        if not params:
            return None
        scale = params[1] if len(params) > 1 else 0
        # sqlglot types sum(decimal(p, s)) as decimal(p, s); Trino as decimal(38, s).
        exact = isinstance(node, exp.Column | exp.Cast | exp.TryCast)
        return (params[0] if exact else 38), scale
    return None


def _is_decimal(node: exp.Expression) -> bool:
    """A DECIMAL operand; sqlglot types a literal such as 7.25 as DOUBLE, Trino as DECIMAL."""
    if isinstance(node, exp.Paren | exp.Neg):
        return _is_decimal(node.this)
    if isinstance(node, exp.Literal):
        return not node.is_string and "." in node.name and "e" not in node.name.lower()
    return _is(node, DType.DECIMAL)


def _unscaled(node: exp.Expression, scale: int) -> exp.Expression:
    """The operand times 10^scale, as an exact HUGEINT."""
    value = exp.Mul(this=exp.paren(node, copy=False), expression=exp.Literal.number(10**scale)) if scale else node
    return _as(value, "HUGEINT")


def _scaled_decimal(unscaled: exp.Expression, precision: int, scale: int) -> exp.Expression:
    """HUGEINT n -> DECIMAL(precision, scale) n / 10^scale, exactly."""
    value = _as(unscaled, "DECIMAL(38, 0)")
    if scale:
        step = _as(exp.Literal.string(f"1e-{scale}"), f"DECIMAL({scale + 1}, {scale})")
        value = exp.Mul(this=value, expression=step)
    return _as(value, f"DECIMAL({precision}, {scale})")


def _decimal_div(node: exp.Div) -> exp.Expression | None:
    """decimal / decimal is a DECIMAL in Trino, rounded half up; DuckDB divides in DOUBLE.

    Trino's result: scale max(sa, sb), precision min(38, pa + sb + max(0, sb - sa)).
    Computed on unscaled HUGEINTs: round(a * 10^(sb + s - sa) / b) is the result's unscaled value.
    """
    left, right = _decimal_type(node.this), _decimal_type(node.expression)
    if left is None or right is None or not (_is_decimal(node.this) or _is_decimal(node.expression)):
        return None
    (pa, sa), (_, sb) = left, right
    scale = max(sa, sb)
    precision = min(38, pa + sb + max(0, sb - sa))
    numerator = _unscaled(node.this, sa)
    if sb + scale - sa:
        numerator = exp.Mul(this=numerator, expression=exp.Literal.number(10 ** (sb + scale - sa)))
    quotient = _fn("dw_div_half_up", numerator, _unscaled(node.expression, sb))
    return _scaled_decimal(quotient, precision, scale)


def _decimal_avg(node: exp.Avg, window: exp.Window | None = None) -> exp.Expression | None:
    """avg(decimal(p, s)) is a decimal(p, s) in Trino, rounded half up; DuckDB's is a DOUBLE."""
    value = node.this
    if isinstance(value, exp.Distinct) or not _is(value, DType.DECIMAL):
        return None
    if window is None and isinstance(node.parent, exp.Window | exp.Filter):
        return None  # handled with its window; FILTER keeps DuckDB's DOUBLE average
    precision, scale = _decimal_type(value) or (38, 0)
    total: exp.Expression = exp.Sum(this=_unscaled(value.copy(), scale))
    count: exp.Expression = exp.Count(this=value.copy())
    if window is not None:
        total, count = _over(window, total), _over(window, count)
    return _scaled_decimal(_fn("dw_div_half_up", total, count), precision, scale)


def _over(window: exp.Window, aggregate: exp.Expression) -> exp.Window:
    copy = window.copy()
    copy.set("this", aggregate)
    return copy


# ---- format_datetime: Joda-Time patterns to DuckDB strftime


def _joda_field(letter: str, count: int) -> str | None:
    if letter in "yYx":
        return "%y" if count == 2 else ("%G" if letter == "x" else "%Y")
    if letter == "M":
        return {1: "%-m", 2: "%m", 3: "%b"}.get(count, "%B")
    if letter == "E":
        return "%a" if count <= 3 else "%A"
    if letter == "S":
        return {3: "%g", 6: "%f", 9: "%n"}.get(count)
    if letter == "D":
        return {1: "%-j", 3: "%j"}.get(count)
    if letter == "a":
        return "%p"
    if letter == "e" and count == 1:
        return "%u"
    if letter == "w" and count <= 2:
        return "%-V" if count == 1 else "%V"
    numeric = {"d": "d", "H": "H", "h": "I", "m": "M", "s": "S"}.get(letter)
    if numeric and count <= 2:
        return f"%-{numeric}" if count == 1 else f"%{numeric}"
    return None


def joda_to_strftime(pattern: str) -> str:
    """A Joda-Time pattern (Trino's format_datetime) as a DuckDB strftime format."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end == -1:
                raise QueryError(f"format_datetime pattern {pattern!r} has an unclosed quote")
            out.append("'" if end == i + 1 else pattern[i + 1 : end].replace("%", "%%"))
            i = end + 1
        elif char.isascii() and char.isalpha():
            count = len(pattern[i:]) - len(pattern[i:].lstrip(char))
            field = _joda_field(char, count)
            if field is None:
                raise QueryError(f"format_datetime: pattern field {char * count!r} is not supported locally")
            out.append(field)
            i += count
        else:
            out.append("%%" if char == "%" else char)
            i += 1
    return "".join(out)


def _format_datetime(node: exp.Anonymous) -> exp.Expression:
    args = node.expressions
    if len(args) != 2 or not (isinstance(args[1], exp.Literal) and args[1].is_string):
        raise QueryError("format_datetime runs locally with a literal pattern only, such as 'yyyy-MM-dd'")
    return _fn("STRFTIME", args[0], exp.Literal.string(joda_to_strftime(args[1].name)))


# ---------------------------------------------------------------- tables, SHOW, DESCRIBE


def _unknown_table(name: str, catalog: list[TableInfo], hint: str = "") -> QueryError:
    tables = ", ".join(t.name for t in catalog) or "(none)"
    return QueryError(f"table {name} does not exist in the local lake{hint}; tables: {tables} ({RUN_HINT})")


def _resolve_tables(statement: exp.Expression, catalog: list[TableInfo]) -> None:
    """Every table read must be in the local catalog; an unqualified name that only one
    database has gets that database (as Athena with that database selected)."""
    names = {(t.database, t.table) for t in catalog}
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise QueryError(f"{table.this.sql(dialect=READ_DIALECT)} is not a table of the local lake")
        name, db, catalog_name = table.name.lower(), table.db.lower(), table.catalog.lower()
        written = ".".join(p for p in (catalog_name, db, name) if p)
        if catalog_name and catalog_name != AWS_CATALOG:
            raise _unknown_table(written, catalog)
        if not db:
            if name in ctes:
                continue
            candidates = sorted(t.database for t in catalog if t.table == name)
            if len(candidates) == 1:
                table.set("db", exp.to_identifier(candidates[0]))
                continue
            hint = f" (write it as {' or '.join(f'{d}.{name}' for d in candidates)})" if candidates else ""
            raise _unknown_table(written, catalog, hint)
        if db != "information_schema" and (db, name) not in names:
            raise _unknown_table(written, catalog)


_NAME = r"((?:[\w$]+|\"[^\"]+\"|`[^`]+`)(?:\.(?:[\w$]+|\"[^\"]+\"|`[^`]+`))*)"
_PATTERN = r"(?:\s+(LIKE\s+)?'((?:[^']|'')*)')?"
SHOW_TABLES = re.compile(rf"SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+{_NAME})?{_PATTERN}", re.I)
SHOW_DATABASES = re.compile(rf"SHOW\s+(?:SCHEMAS|DATABASES){_PATTERN}", re.I)
DESCRIBE = re.compile(rf"(?:DESCRIBE|DESC|SHOW\s+COLUMNS\s+(?:FROM|IN))\s+{_NAME}", re.I)


def _parts(name: str) -> list[str]:
    return [p.strip('"`').lower() for p in re.findall(r"\"[^\"]+\"|`[^`]+`|[^.]+", name)]


def _matcher(like: str | None, pattern: str | None):
    if pattern is None:
        return lambda _: True
    pattern = pattern.replace("''", "'")
    if like:  # Trino: SHOW TABLES LIKE 'fda%'
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    else:  # Athena: SHOW TABLES 'fda*|bar'
        regex = "|".join("".join(".*" if c == "*" else re.escape(c) for c in alt) for alt in pattern.split("|"))
    compiled = re.compile(regex, re.I)
    return lambda name: compiled.fullmatch(name) is not None


def _meta(sql: str, lake_root: Path, naming: Naming, catalog: list[TableInfo]) -> QueryResult | None:
    """SHOW TABLES / SHOW SCHEMAS / DESCRIBE, answered from the local catalog; None otherwise."""
    text = sql.strip().rstrip(";").strip()
    databases = [naming.database(layer) for layer in LAYERS]
    if match := SHOW_TABLES.fullmatch(text):
        name, like, pattern = match.groups()
        keep = _matcher(like, pattern)
        if name is None:
            rows = [(t.name,) for t in catalog if keep(t.table)]
        else:
            db = _parts(name)[-1]
            if db not in databases:
                raise QueryError(f"database {db} does not exist; databases: {', '.join(databases)}")
            rows = [(t.table,) for t in catalog if t.database == db and keep(t.table)]
        return QueryResult(["tab_name"], ["varchar"], rows)
    if match := SHOW_DATABASES.fullmatch(text):
        keep = _matcher(*match.groups())
        return QueryResult(["database_name"], ["varchar"], [(d,) for d in databases if keep(d)])
    if match := DESCRIBE.fullmatch(text):
        parts = _parts(match.group(1))
        if parts[0] == AWS_CATALOG:
            parts = parts[1:]
        found = [t for t in catalog if [t.database, t.table] == parts or (len(parts) == 1 and t.table == parts[0])]
        if len(found) != 1:
            raise _unknown_table(".".join(parts), catalog)
        con = _open(found, naming)
        try:
            rows = [(c, t, "") for c, t in _columns(con, found[0])]
        finally:
            con.close()
        return QueryResult(["col_name", "data_type", "comment"], ["varchar"] * 3, rows)
    if re.match(r"(SHOW|DESCRIBE|DESC)\b", text, re.I):
        raise QueryError("locally, SHOW TABLES [IN db], SHOW DATABASES and DESCRIBE db.table are supported")
    return None


# ---------------------------------------------------------------- running


def _column_problem(statement: exp.Expression, catalog: list[TableInfo], con) -> str | None:
    """sqlglot's account of a column that does not resolve (DuckDB's refers to the translated
    SQL), with the columns of the tables the query reads."""
    schema = _schema(con, catalog)
    try:
        qualify(statement.copy(), dialect=READ_DIALECT, schema=schema, expand_alias_refs=False)
    except Exception as e:
        if not str(e).startswith("Column"):
            return None
        read = {(t.db.lower(), t.name.lower()) for t in statement.find_all(exp.Table)}
        tables = [
            f"{t.name}: {', '.join(c for c, _ in _columns(con, t))}" for t in catalog if (t.database, t.table) in read
        ]
        return f"{e}" + (f"; columns of {'; '.join(tables)}" if tables else "")
    return None


def _sandbox(con: duckdb.DuckDBPyConnection, lake_root: Path, catalog: list[TableInfo]) -> None:
    """The query may read the lake and nothing else (no read_csv('/etc/...'), no COPY), nor
    change a setting."""
    folders = [lake_root, *(t.path for t in catalog)]
    allowed = sorted({str(Path(f).resolve()).rstrip("/") + "/" for f in folders})
    con.execute(f"SET allowed_directories = [{', '.join(_literal(a) for a in allowed)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def run_query(sql: str, lake_root: Path, naming: Naming) -> QueryResult:
    """Run one read-only Athena statement on the local lake; rows keep Athena's types."""
    lake_root = Path(lake_root)
    catalog = local_catalog(lake_root, naming)
    meta = _meta(sql, lake_root, naming, catalog)
    if meta is not None:
        return meta
    statement = _parse(sql)
    _resolve_tables(statement, catalog)
    con = _open(catalog, naming)
    try:
        duck_sql = _to_duckdb(statement, _schema(con, catalog))
        _sandbox(con, lake_root, catalog)
        try:
            relation = con.sql(duck_sql)
            columns, types = relation.columns, [_athena_type(t) for t in relation.types]
            rows = relation.fetchall()
        except duckdb.Error as e:
            if isinstance(e, duckdb.InvalidInputException):  # a failing row: Cannot cast 'abc' to INT
                raise QueryError(str(e)) from None
            unresolved = isinstance(e, duckdb.BinderException) and "mbiguous" not in str(e)
            problem = _column_problem(statement, catalog, con) if unresolved else None
            raise QueryError(problem or f"{e}\n-- the query as DuckDB ran it:\n{duck_sql}") from None
    finally:
        con.close()
    return QueryResult(list(columns), types, rows)
