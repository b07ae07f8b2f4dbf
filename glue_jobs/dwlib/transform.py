"""Pure DataFrame -> DataFrame steps of the bronze job: names, types, meta columns, rejects.

Built-in Spark functions only (no Python UDFs), so the plan stays in the JVM on Glue.
"""

from __future__ import annotations

import re
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, StringType, StructType

from dwlib.config import ColumnType, CsvOptions, DatasetConfig, QualityRules

META_COLUMNS = ("meta_run_id", "meta_ingested_at", "meta_source_file")
REJECT_REASON = "reject_reason"
ORDER = "_dw_order"  # source order, for "the first row in source order is kept"


# ------------------------------------------------------------------ names


def clean_name(name: str) -> str:
    """`Marketing Start Date` -> `marketing_start_date`, `ProductNDC` -> `product_ndc`."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if text and text[0].isdigit():
        text = f"c_{text}"
    return text


def clean_names(names: list[str], reserved: tuple[str, ...] = META_COLUMNS) -> list[str]:
    """Unique snake_case names; a collision gets `_2`, `_3`... in source order."""
    taken: set[str] = set(reserved)
    result = []
    for position, name in enumerate(names, start=1):
        base = clean_name(name) or f"column_{position}"
        candidate, suffix = base, 2
        while candidate in taken:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(candidate)
        result.append(candidate)
    return result


# ------------------------------------------------------------------ nested records


def _leaves(schema: StructType, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], DataType]]:
    """Every non-struct field, depth first in schema order, with its path of field names."""
    found = []
    for field in schema.fields:
        if isinstance(field.dataType, StructType) and field.dataType.fields:
            found += _leaves(field.dataType, (*path, field.name))
        else:
            found.append(((*path, field.name), field.dataType))
    return found


def _column(path: tuple[str, ...]) -> Column:
    # getField takes a name literally, so keys with dots, spaces or backticks are safe.
    column = F.col(f"`{path[0].replace('`', '``')}`")
    for name in path[1:]:
        column = column.getField(name)
    return column


def flatten_structs(df: DataFrame) -> DataFrame:
    """Struct columns become one column per leaf: `address.city` -> `address_city`, recursively.

    Names are cleaned and made unique as `clean_names` does (in schema order); arrays stay
    arrays. A frame without structs is returned as it is.
    """
    if not any(isinstance(f.dataType, StructType) for f in df.schema.fields):
        return df
    leaves = _leaves(df.schema)
    names = clean_names([".".join(path) for path, _ in leaves])
    return df.select(*[_column(path).alias(name) for (path, _), name in zip(leaves, names, strict=True)])


def flatten(df: DataFrame, explode: list[str] | tuple[str, ...] = ()) -> DataFrame:
    """Flatten structs, then turn each `explode` array column into one row per element (in order).

    An exploded array of structs is flattened again (`items` -> `items_sku`, `items_qty`). A row
    whose array is empty or null is kept once, with a null element, so no record vanishes.
    ValueError names a column that is missing or not an array, and lists the arrays there are.
    """
    df = flatten_structs(df)
    for name in explode:
        types = {f.name: f.dataType for f in df.schema.fields}
        if not isinstance(types.get(name), ArrayType):
            arrays = ", ".join(n for n, t in types.items() if isinstance(t, ArrayType)) or "none"
            what = f"is a {types[name].simpleString()}, not an array" if name in types else "is not in the source"
            raise ValueError(
                f"explode names column {name!r}, which {what}; array columns after flattening: {arrays}. "
                "Fix `explode` in the dataset's config.json"
            )
        df = df.withColumn(name, F.explode_outer(F.col(name)))
        df = flatten_structs(df)
    return df


# ------------------------------------------------------------------ reading


def read_source(spark: SparkSession, uris: list[str], fmt: str, csv: CsvOptions) -> DataFrame:
    """Read the run's input files; CSV columns arrive as strings and are typed later."""
    if fmt == "csv":
        reader = (
            spark.read.option("header", csv.header)
            .option("sep", csv.delimiter)
            .option("encoding", csv.encoding)
            .option("quote", csv.quote)
            .option("escape", csv.escape)
            .option("multiLine", csv.multiline)
            .option("mode", "PERMISSIVE")
        )
        return reader.csv(uris)
    if fmt == "jsonl":
        return spark.read.json(uris)
    if fmt == "json":
        return spark.read.option("multiLine", True).json(uris)
    if fmt == "parquet":
        return spark.read.parquet(*uris)
    raise ValueError(f"unknown format {fmt!r}")


def infer_types(spark: SparkSession, uris: list[str], csv: CsvOptions, columns: list[str]) -> dict[str, str]:
    """Spark's own inference for CSV columns the config does not declare (one extra pass)."""
    inferred = (
        spark.read.option("header", csv.header)
        .option("sep", csv.delimiter)
        .option("encoding", csv.encoding)
        .option("quote", csv.quote)
        .option("escape", csv.escape)
        .option("multiLine", csv.multiline)
        .option("inferSchema", True)
        .option("nullValue", csv.null_values[0] if csv.null_values else "")
        .csv(uris)
    )
    return {name: field.dataType.simpleString() for name, field in zip(columns, inferred.schema.fields, strict=True)}


# ------------------------------------------------------------------ typing


def _typed(column: Column, source_is_string: bool, ctype: ColumnType) -> Column:
    if not source_is_string:
        return column.cast(ctype.spark_type)
    text = F.trim(column)
    if ctype.spark_type in ("int", "bigint"):
        # Spark's cast turns "12.5" into 12; an integer column must not silently truncate.
        # A '.' is the only thing the cast tolerates and an integer must not have (a cheap test, no regex).
        return F.when(~text.contains("."), text.cast(ctype.spark_type))
    if ctype.spark_type == "date" and ctype.fmt:
        return F.to_date(text, ctype.fmt)
    if ctype.spark_type == "timestamp" and ctype.fmt:
        return F.to_timestamp(text, ctype.fmt)
    return text.cast(ctype.spark_type)


def prepare(
    df: DataFrame,
    config: DatasetConfig,
    *,
    run_id: str,
    ingested_at: datetime,
    inferred: dict[str, str] | None = None,
) -> tuple[DataFrame, list[str]]:
    """Clean names, apply null values, type, add meta columns and a `reject_reason` per row.

    Returns the frame and its data column names. Each data column `c` keeps its original
    value in `_dw_orig_<i>` so rejected rows can be quarantined as they arrived. The same as
    `check_rules(prepare_types(...))`; a dataset with a transform hook runs the hook between the two.
    """
    typed, names = prepare_types(df, config, run_id=run_id, ingested_at=ingested_at, inferred=inferred)
    return check_rules(typed, config), names


def prepare_types(
    df: DataFrame,
    config: DatasetConfig,
    *,
    run_id: str,
    ingested_at: datetime,
    inferred: dict[str, str] | None = None,
    csv_source: bool = False,
) -> tuple[DataFrame, list[str]]:
    """Clean names, apply null values, type, add meta columns; `reject_reason` holds type failures only."""
    names = clean_names(df.columns)
    df = df.toDF(*names)
    is_string = {f.name: isinstance(f.dataType, StringType) for f in df.schema.fields}
    # Spark's CSV reader already turns empty fields into null; only the other markers cost a check
    # (an isin() per value of every string column otherwise).
    nulls = [v for v in config.csv.null_values if v != ""] if csv_source else config.csv.null_values
    declared = config.column_types
    inferred = inferred or {}

    selected: list[Column] = []
    checks: list[tuple[int, str, str]] = []  # (position, column, type label) of declared columns
    for i, name in enumerate(names):
        original = F.col(name)
        if is_string[name] and nulls:
            original = F.when(~original.isin(nulls), original)
        selected.append(original.alias(f"_dw_orig_{i}"))
        if name in declared:
            ctype = declared[name]
            typed = _typed(original, is_string[name], ctype)
            checks.append((i, name, f"{ctype.spark_type}:{ctype.fmt}" if ctype.fmt else ctype.spark_type))
        elif name in inferred and inferred[name] != "string":
            typed = _typed(original, is_string[name], ColumnType(inferred[name]))
        else:
            typed = original
        selected.append(typed.alias(name))

    df = df.select(
        *selected,
        F.lit(run_id).alias("meta_run_id"),
        F.lit(ingested_at).cast("timestamp").alias("meta_ingested_at"),
        F.substring_index(F.input_file_name(), "/", -1).alias("meta_source_file"),  # no array per row
        F.monotonically_increasing_id().alias(ORDER),
    )
    reasons = []
    for i, name, label in checks:
        original = F.col(f"_dw_orig_{i}")
        present = original.isNotNull() & (F.trim(original.cast("string")) != "")
        reasons.append(F.when(present & F.col(name).isNull(), F.lit(f"{name}: not a valid {label}")))
    return df.withColumn(REJECT_REASON, _joined(reasons)), names


def check_rules(df: DataFrame, config: DatasetConfig) -> DataFrame:
    """Add the primary key's and the quality rules' reasons to `reject_reason` (needs it and `_dw_order`)."""
    reasons = [F.col(REJECT_REASON), *_rule_reasons(config.primary_key, config.quality)]
    df = df.withColumn(REJECT_REASON, _joined(reasons))
    df = _reject_repeats(df, config.primary_key, "duplicate primary key")
    for column in config.quality.unique:
        df = _reject_repeats(df, [column], f"{column}: not unique")
    return df


def rule_columns(config: DatasetConfig) -> list[str]:
    """Columns the primary key and the quality rules name, each once, in config order."""
    rules = config.quality
    named = [*config.primary_key, *rules.not_null, *rules.unique, *rules.accepted_values]
    return list(dict.fromkeys(named))


def _rule_reasons(primary_key: list[str], rules: QualityRules) -> list[Column]:
    reasons = [F.when(F.col(c).isNull(), F.lit(f"{c}: primary key is null")) for c in primary_key]
    reasons += [F.when(F.col(c).isNull(), F.lit(f"{c}: null (not_null rule)")) for c in rules.not_null]
    for column, values in rules.accepted_values.items():
        allowed = F.col(column).cast("string").isin([str(v).lower() if isinstance(v, bool) else str(v) for v in values])
        reasons.append(F.when(F.col(column).isNotNull() & ~allowed, F.lit(f"{column}: not an accepted value")))
    return reasons


def _joined(reasons: list[Column]) -> Column:
    if not reasons:
        return F.lit(None).cast("string")
    joined = F.concat_ws("; ", *reasons)  # concat_ws skips nulls
    return F.when(joined != "", joined)


def _reject_repeats(df: DataFrame, key: list[str], reason: str) -> DataFrame:
    """Reject every clean row whose key repeats an earlier clean row (source order)."""
    if not key:
        return df
    clean = F.col(REJECT_REASON).isNull()
    window = Window.partitionBy(*[F.col(c) for c in key], clean).orderBy(ORDER)
    repeated = clean & F.row_number().over(window).__gt__(1)
    for c in key:
        repeated = repeated & F.col(c).isNotNull()
    return df.withColumn(REJECT_REASON, F.when(repeated, F.lit(reason)).otherwise(F.col(REJECT_REASON)))


def kept_rows(df: DataFrame, names: list[str]) -> DataFrame:
    """Rows that passed, typed, with the meta columns: the bronze table."""
    return df.filter(F.col(REJECT_REASON).isNull()).select(*names, *META_COLUMNS)


def rejected_rows(df: DataFrame, names: list[str]) -> DataFrame:
    """Rows that failed, with their original values and the reason: the quarantine."""
    originals = [F.col(f"_dw_orig_{i}").cast("string").alias(name) for i, name in enumerate(names)]
    return df.filter(F.col(REJECT_REASON).isNotNull()).select(*originals, REJECT_REASON, *META_COLUMNS)


# ------------------------------------------------------------------ with a transform hook
#
# Typing rejects go to quarantine as they arrived and never reach the hook; the hook gets the
# clean rows' typed data and meta columns; the primary key and quality rules run on what it returns.


def hook_input(typed: DataFrame, names: list[str]) -> DataFrame:
    """What a transform hook sees: the rows that typed cleanly, data columns then meta columns."""
    return typed.filter(F.col(REJECT_REASON).isNull()).select(*names, *META_COLUMNS)


def hook_output_problems(df: DataFrame, config: DatasetConfig) -> list[str]:
    """What is wrong with a hook's result for the checks that follow it, as advice; empty when fine."""
    columns = set(df.columns)
    problems = []
    missing_meta = [c for c in META_COLUMNS if c not in columns]
    if missing_meta:
        problems.append(f"keep the meta columns {', '.join(missing_meta)} (select them, or use withColumn)")
    internal = sorted(c for c in columns if c == REJECT_REASON or c.startswith("_dw_"))
    if internal:
        problems.append(f"rename {', '.join(internal)}: reject_reason and _dw_* are the job's own columns")
    missing = [c for c in rule_columns(config) if c not in columns]
    if missing:
        problems.append(f"return the columns the primary key and quality rules name: {', '.join(missing)}")
    return problems


def checked_hook_output(df: DataFrame, config: DatasetConfig) -> tuple[DataFrame, list[str]]:
    """The hook's rows with the key and rules applied, and their data columns (meta columns last)."""
    names = [c for c in df.columns if c not in META_COLUMNS]
    df = df.select(
        *names,
        *META_COLUMNS,
        F.monotonically_increasing_id().alias(ORDER),  # the hook's row order, for "first row wins"
        F.lit(None).cast("string").alias(REJECT_REASON),
    )
    return check_rules(df, config), names


def hook_rejected_rows(checked: DataFrame, names: list[str]) -> DataFrame:
    """Rows the key or a rule rejected after the hook, their values as text, as the quarantine holds them."""
    values = [F.col(name).cast("string").alias(name) for name in names]
    return checked.filter(F.col(REJECT_REASON).isNotNull()).select(*values, REJECT_REASON, *META_COLUMNS)
