"""Iceberg tables: Spark writes the Parquet data files, PyIceberg commits them in one snapshot.

Why PyIceberg commits rather than Spark's Iceberg runtime (README, "Iceberg tables"): the same
library commits on Glue (Glue catalog) and locally (a SQLite catalog under the lake), needs no
jar in the Spark session (Parquet datasets and small runs pay nothing), and `dw query` reads the
tables through the very same library and catalog.

A run's data files go to `{table}/data/raw_run_id={raw}/run_id={run}/` first; nothing reads them
until the commit names them. The commit (schema evolution, the files it removes, the files it
adds) is one catalog update: a reader sees the previous snapshot or the new one. A run that fails
before the commit deletes its data files and adds no snapshot. No cleanup deletes a file that a
snapshot of the table references (see `_attempt_folder` and `_discard`).

- full:   the snapshot replaces every data file of the table.
- append: adds the run's files; the files of an earlier run of the same raw run id are replaced,
          so replaying a raw run (`--raw-run-id`) never adds its rows twice. The raw run id is the
          last `raw_run_id=` folder of each file (see `raw_run_of`) and a snapshot property
          (`pp-dw.raw-run-id`).
- merge:  the run's files are added, and the files holding any of the run's keys removed (those
          that keep other rows rewritten without the run's keys, under `kept/raw_run_id={their
          raw run}/`): one row per primary key, the latest run's. Files whose key bounds miss the
          run's keys are not read (see `_merge`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from dwlib import jobs
from dwlib import keys as key_check
from dwlib.config import CoreConfig, DatasetConfig, parse_partition, table_format_of
from dwlib.lake import Lake, LocalLake
from dwlib.naming import Naming, table_name

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyspark.sql import DataFrame, SparkSession

PARQUET_TIMESTAMPS = "spark.sql.parquet.outputTimestampType"
RAW_RUN_PROPERTY = "pp-dw.raw-run-id"
RUN_PROPERTY = "pp-dw.run-id"
LOAD_MODE_PROPERTY = "pp-dw.load-mode"
# Where the data files of the run `run_id` (reading raw run `raw`) go, under the table's location.
DATA_FOLDER = "data"
KEPT_FOLDER = "kept"  # under a merging run's folder: the rows it rewrote, in a `raw_run_id=` folder per raw run
RAW_RUN_FOLDER = "raw_run_id"
# The column `_aligned` adds for the file each row was read from: a name no table's own column has (a table may
# well have a `__file` column of its own, which that column would overwrite).
FILE_COLUMN = "__pp_dw_source_file__"
UNKNOWN_RAW_RUN = "unknown"  # the folder of rewritten rows whose raw run no folder recorded (see `raw_run_of`)
METADATA_FOLDER = "metadata"  # the table's metadata files, under its location, as every Iceberg writer puts them
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

log = logging.getLogger(__name__)


class IcebergError(RuntimeError):
    """A commit that cannot be made (a narrowed column, a changed partition spec): the table is unchanged.

    `cast_fix`: a column's type is what is wrong, so a gold model's fix is a cast in its SELECT."""

    def __init__(self, message: str, *, cast_fix: bool = False) -> None:
        super().__init__(message)
        self.cast_fix = cast_fix


def is_iceberg(core: CoreConfig, dataset: DatasetConfig) -> bool:
    return table_format_of(core, dataset) == "iceberg"


def retention_days(core: CoreConfig, dataset: DatasetConfig) -> int:
    return dataset.snapshot_retention_days or core.snapshot_retention_days


# ------------------------------------------------------------------ the catalog


def catalog(lake: Lake, naming: Naming) -> Catalog:
    """The Glue Data Catalog for an S3 lake; a SQLite catalog at `_iceberg/catalog.db` in a local one."""
    if lake.root_uri.startswith("s3://"):
        import boto3
        from pyiceberg.catalog.glue import GlueCatalog

        # The job's region for both the catalog and the data files (PyArrow's S3 client does not ask boto3),
        # and the job role's credentials, found by each client's default chain.
        region = boto3.session.Session().region_name or os.environ.get("AWS_REGION", "")
        return GlueCatalog("glue", **{"glue.region": region, "s3.region": region})
    return local_catalog(Path(lake.root_uri), create=True)


def catalog_file(lake_root: Path) -> Path:
    return Path(lake_root) / Naming.iceberg_catalog_key()


def local_catalog(lake_root: Path, create: bool = False) -> Catalog | None:
    """The local lake's catalog; None when no Iceberg table was ever committed there (and not `create`)."""
    from pyiceberg.catalog.sql import SqlCatalog

    path = catalog_file(lake_root)
    if not path.is_file() and not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqlCatalog("pp_dw", uri=f"sqlite:///{path}", warehouse=f"file://{Path(lake_root).resolve()}")


def location(lake: Lake, prefix: str) -> str:
    """The table's location as the catalog keeps it: `file:///…` locally, `s3://…` on AWS."""
    uri = lake.uri(prefix).rstrip("/")
    return uri if "://" in uri else f"file://{uri}"


def live_data_files(table: Table, snapshot_id: int | None = None) -> dict[str, Any]:
    """Every data file of the current snapshot (or of `snapshot_id`), by path, read from its manifests.

    Not from a scan's plan: a scan leaves out files its statistics say hold no row, and a file the
    commit cannot see is a file a full load never removes and expiry never frees.
    """
    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
    if snapshot is None:
        return {}
    return {f.file_path: f for f in _data_files(table, snapshot.manifests(table.io))}


def _data_files(table: Table, manifests) -> Iterator[Any]:
    """The live data files the manifests list (entries of deleted files left out)."""
    for manifest in manifests:
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            yield entry.data_file


def current_files(table: Table, snapshot_id: int | None = None) -> list[str]:
    """The data files of the table's current snapshot (or of `snapshot_id`)."""
    if table.metadata.current_snapshot_id is None and snapshot_id is None:
        return []
    return list(live_data_files(table, snapshot_id))


def forget_moved_table(lake: Lake, naming: Naming, identifier: tuple[str, str], prefix: str) -> bool:
    """Drop the local catalog's entry for an Iceberg table whose folder was moved away (its metadata is gone).

    Only the catalog row goes (the files are wherever they were moved); on AWS the Glue table is
    deleted by hand, as the refusal that asked for the move says. True when an entry was dropped.
    """
    from pyiceberg.exceptions import NoSuchNamespaceError

    if not isinstance(lake, LocalLake) or not catalog_file(lake.root).is_file():
        return False
    if lake.has_prefix(f"{prefix}{METADATA_FOLDER}/"):
        return False
    cat = local_catalog(lake.root)
    try:
        listed = {tuple(t) for t in cat.list_tables(identifier[0])}
    except NoSuchNamespaceError:
        return False
    if tuple(identifier) not in listed:
        return False
    cat.drop_table(identifier)  # the catalog row only: SqlCatalog deletes no file
    log.warning("%s: the local catalog's entry for a moved Iceberg table was dropped", ".".join(identifier))
    return True


def read_current(spark: SparkSession, lake: Lake, naming: Naming, identifier: tuple[str, str], prefix: str):
    """The current snapshot of the Iceberg table at `prefix` as a DataFrame; None when `prefix` holds no Iceberg table.

    Gold models read an Iceberg table this way: its folder also holds the files of older snapshots. The rows
    come at the table's current schema, as Athena reads them: a column added after a file was written is NULL
    in that file's rows, a widened column is read at its new type (Spark reading the files together would take
    one file's schema and fail on the others). A snapshot without data files (a gold model whose result had no
    rows) reads as no rows with the table's columns, as an empty Parquet folder's file does.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    if not lake.has_prefix(f"{prefix}{METADATA_FOLDER}/"):
        return None
    table = catalog(lake, naming).load_table(identifier)
    columns = [(f.name, _spark_type(f.field_type)) for f in table.schema().fields]
    like = spark.createDataFrame([], StructType([StructField(n, t) for n, t in columns if t is not None]))
    files = current_files(table)
    rows = _aligned(spark, table, files, like).drop(FILE_COLUMN) if files else like
    return rows.select(
        *[F.col(_quoted(n)) if n in rows.columns else F.lit(None).cast(t or StringType()).alias(n) for n, t in columns]
    )


def _spark_type(field_type: Any) -> Any:
    """The Spark type of an Iceberg type, as Spark reads it from the Parquet files Spark writes; None for a
    type Spark does not write (time, uuid), whose column is then read as its files have it. Every part is
    nullable: a file's values are cast to it, and Spark casts nothing to a type that promises no null."""
    from pyiceberg import types as iceberg_types
    from pyspark.sql import types as spark_types

    if isinstance(field_type, iceberg_types.DecimalType):
        return spark_types.DecimalType(field_type.precision, field_type.scale)
    if isinstance(field_type, iceberg_types.StructType):
        fields = [(f, _spark_type(f.field_type)) for f in field_type.fields]
        if any(t is None for _, t in fields):
            return None
        return spark_types.StructType([spark_types.StructField(f.name, t) for f, t in fields])
    if isinstance(field_type, iceberg_types.ListType):
        element = _spark_type(field_type.element_type)
        return spark_types.ArrayType(element) if element else None
    if isinstance(field_type, iceberg_types.MapType):
        key, value = _spark_type(field_type.key_type), _spark_type(field_type.value_type)
        return spark_types.MapType(key, value) if key and value else None
    simple = {
        iceberg_types.BooleanType: spark_types.BooleanType,
        iceberg_types.IntegerType: spark_types.IntegerType,
        iceberg_types.LongType: spark_types.LongType,
        iceberg_types.FloatType: spark_types.FloatType,
        iceberg_types.DoubleType: spark_types.DoubleType,
        iceberg_types.DateType: spark_types.DateType,
        iceberg_types.TimestampType: spark_types.TimestampNTZType,
        iceberg_types.TimestamptzType: spark_types.TimestampType,
        iceberg_types.StringType: spark_types.StringType,
        iceberg_types.BinaryType: spark_types.BinaryType,
        iceberg_types.FixedType: spark_types.BinaryType,
    }
    kind = simple.get(type(field_type))
    return kind() if kind else None


def _spark_uri(path: str) -> str:
    """How Spark spells a local path the catalog keeps as file:///… (input_file_name() gives it back so)."""
    return "file:" + path.removeprefix("file://") if path.startswith("file:///") else path


# ------------------------------------------------------------------ writing


@dataclass
class Commit:
    """What one commit did, for the run summary."""

    table: str
    load_mode: str = "full"
    snapshot_id: int | None = None
    operation: str = ""
    files_added: int = 0
    files_removed: int = 0
    bytes_added: int = 0
    data_files: int = 0  # the table's data files after the commit
    data_bytes: int = 0
    schema_change: dict[str, Any] = field(default_factory=dict)
    committed: bool = False  # past this point the run's data files belong to the table
    expired_snapshots: int = 0
    orphans_removed: int = 0
    # merge: the old files whose key bounds could hold a run key, those holding one (all dropped),
    # and those rewritten because some of their rows stay
    files_scanned: int = 0
    files_hit: int = 0
    files_rewritten: int = 0
    expiry_error: str = ""  # the commit stands; expiry failed and is retried by the next run


@contextlib.contextmanager
def session_for(spark: SparkSession, iceberg: bool) -> Iterator[None]:
    """Parquet timestamps as Iceberg reads them (TIMESTAMP_MICROS, not INT96) while an Iceberg run writes.

    Parquet runs keep the session exactly as it was.
    """
    with jobs.session_settings(spark, {PARQUET_TIMESTAMPS: "TIMESTAMP_MICROS"} if iceberg else {}):
        yield


def _partition_columns(dataset: DatasetConfig) -> list[tuple[str, Any]]:
    """(helper column, Spark expression) per partition_by item: each written file holds one value of each."""
    from pyspark.sql import functions as F

    helpers = []
    for i, item in enumerate(dataset.partition_by):
        part = parse_partition(item)
        column = F.col(part.column)
        expression = {
            "identity": column,
            "year": F.date_trunc("year", column),
            "month": F.date_trunc("month", column),
            "day": F.to_date(column),
            "hour": F.date_trunc("hour", column),
        }[part.transform]
        helpers.append((f"part{i}_{part.transform}_{part.column}", expression))
    return helpers


def _partition_spec(schema: Any, dataset: DatasetConfig) -> Any:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, MonthTransform, YearTransform

    transforms = {
        "identity": IdentityTransform,
        "year": YearTransform,
        "month": MonthTransform,
        "day": DayTransform,
        "hour": HourTransform,
    }
    fields = []
    for i, item in enumerate(dataset.partition_by):
        part = parse_partition(item)
        source = schema.find_field(part.column)
        name = part.column if part.transform == "identity" else f"{part.column}_{part.transform}"
        fields.append(PartitionField(source.field_id, 1000 + i, transforms[part.transform](), name))
    return PartitionSpec(*fields)


def _spec_text(spec: Any, schema: Any) -> list[str]:
    out = []
    for f in spec.fields:
        column = schema.find_column_name(f.source_id)
        kind = str(f.transform)
        out.append(column if kind == "identity" else f"{kind}({column})")
    return out


def _write(df: DataFrame, uri: str, dataset: DatasetConfig, folders: tuple[str, ...] = ()) -> None:
    """Write `df` under `uri`, a file per value of each partition_by item; `folders`: columns of `df` that
    name a folder level above those (`raw_run_id=…/`) and are not written into the files."""
    helpers = _partition_columns(dataset)
    writer_df = df
    for name, expression in helpers:
        writer_df = writer_df.withColumn(name, expression)
    if helpers:
        writer_df = writer_df.repartition(*[n for n, _ in helpers])
    writer = writer_df.write.mode("overwrite").option("compression", "zstd")
    names = [*folders, *[n for n, _ in helpers]]
    if names:
        writer = writer.partitionBy(*names)
    with session_for(df.sparkSession, True):
        writer.parquet(uri)


def _move(lake: Lake, source: str, target: str) -> list[str]:
    """Move the staged Parquet files under `source` to `target` (a rename locally, a copy on S3)."""
    moved = []
    for obj in lake.data_files(source):
        if not obj.key.endswith(".parquet"):
            continue
        key = target + obj.key[len(source) :]
        if isinstance(lake, LocalLake):
            lake.path(key).parent.mkdir(parents=True, exist_ok=True)
            os.replace(lake.path(obj.key), lake.path(key))
        else:
            lake.client.copy_object(  # type: ignore[attr-defined]
                Bucket=lake.bucket,  # type: ignore[attr-defined]
                Key=lake._key(key),  # type: ignore[attr-defined]
                CopySource={"Bucket": lake.bucket, "Key": lake._key(obj.key)},  # type: ignore[attr-defined]
            )
        moved.append(key)
    return moved


def _aligned(
    spark: SparkSession, table: Table, files: list[str], like: DataFrame, columns: list[str] | None = None
) -> DataFrame:
    """The rows of `files` with the columns of `like` (types cast to it; columns it lacks kept), and FILE_COLUMN.

    Files written before a schema change differ in their columns; each group of files with one
    schema is read on its own, so Spark never has to merge two Parquet schemas. With `columns`,
    only those are read (Parquet reads no other column's pages).
    """
    import pyarrow.parquet as pq
    from pyiceberg.utils.concurrent import ExecutorFactory
    from pyspark.sql import functions as F

    def schema_of(path: str) -> str:
        with table.io.new_input(path).open() as stream:
            return str(pq.read_schema(stream))

    groups: dict[str, list[str]] = {}
    # Footers read side by side: a gold model reads every file of its tables (one request each on S3)
    for path, schema in zip(files, ExecutorFactory.get_or_create().map(schema_of, files), strict=True):
        groups.setdefault(schema, []).append(path)
    frames = []
    for group in groups.values():
        frame = spark.read.parquet(*[_spark_uri(f) for f in group])
        if columns is not None:
            frame = frame.select(*[_quoted(c) for c in columns])
        frames.append(frame.withColumn(FILE_COLUMN, F.input_file_name()))
    merged = frames[0]
    for frame in frames[1:]:
        merged = merged.unionByName(frame, allowMissingColumns=True)
    types = {f.name: f.dataType for f in like.schema.fields}
    return merged.select(
        *[F.col(_quoted(c)).cast(types[c]).alias(c) if c in types else F.col(_quoted(c)) for c in merged.columns]
    )


def _quoted(name: str) -> str:
    """A column name as Spark reads it literally: `x.y` is the column named so, not field y of a struct x."""
    return "`" + name.replace("`", "``") + "`"


def _merge(
    spark: SparkSession,
    lake: Lake,
    table: Table,
    old: dict[str, Any],
    dataset: DatasetConfig,
    written: list[str],
    kept_folder: str,
    result: Commit,
    run_keys: list[Any] | None = None,
) -> tuple[list[str], list[str]]:
    """The current files a merge of the run's files `written` removes, and the files it writes with their kept rows.

    Three cuts, each leaving the result as a rewrite of every file would: a file whose key bounds (the
    manifest's per-file lower and upper bounds) miss every run file's row-group key ranges is not read;
    the others are read for their key columns only, and a file whose every row has a run key is dropped
    without being read again (its record count says so); only a file that keeps some rows is rewritten.
    `run_keys`: the key columns of `written` (PyArrow tables) when the run's key check read them already.
    """

    keys = list(dataset.primary_key)

    @functools.cache
    def run_rows() -> DataFrame:
        # Only the Spark paths read the run's files, and once: opening them costs a Spark job (schema inference).
        return spark.read.parquet(*[lake.uri(k) for k in written])

    ranges = _key_ranges(table, [location(lake, k) for k in written], keys)
    fields = _key_fields(table, keys)
    candidates = [path for path, f in old.items() if fields is None or _may_hold(f, fields, ranges)]
    result.files_scanned = len(candidates)
    if not candidates:
        return [], []
    # How many rows of each candidate hold a run key: in the driver from the key columns when they fit
    # (dwlib.keys; a fraction of the Spark job's cost), else a Spark semi-join.
    opener = lambda path: table.io.new_input(path).open()  # noqa: E731
    counts = key_check.merge_hits(opener, candidates, [location(lake, k) for k in written], keys, new=run_keys)
    if counts is not None:
        hit = {path: count for path, count in zip(candidates, counts, strict=True) if count}
    else:
        by_name = {_file_uri(path): path for path in candidates}
        new = run_rows()
        hits = (
            _aligned(spark, table, candidates, new, columns=keys)
            .join(new.select(*keys), keys, "left_semi")
            .groupBy(FILE_COLUMN)
            .count()
            .collect()
        )
        hit = {_catalog_file(by_name, name): count for name, count in hits}
    partial = [path for path, count in hit.items() if count < old[path].record_count]
    result.files_hit, result.files_rewritten = len(hit), len(partial)
    if not partial:
        return list(hit), []
    new = run_rows()
    kept = (
        _aligned(spark, table, partial, new)
        .join(new.select(*keys), keys, "left_anti")
        # Each kept row stays filed under the raw run it came from, never the merging run's: an append that
        # replays a raw run removes the files of that raw run (see `raw_run_of`), and only its rows.
        .withColumn(RAW_RUN_FOLDER, _raw_run_column(FILE_COLUMN))
        .drop(FILE_COLUMN)
    )
    _write(kept, lake.uri(kept_folder), dataset, folders=(RAW_RUN_FOLDER,))
    return list(hit), [k for k in (o.key for o in lake.data_files(kept_folder)) if k.endswith(".parquet")]


LAST_RAW_RUN = rf".*/{RAW_RUN_FOLDER}=([^/]+)/(.*)"  # a data file's last `raw_run_id=` folder, and what follows


def raw_run_of(path: str) -> str | None:
    """The raw run whose rows a data file holds: its last `raw_run_id=` folder (a merge files the rows it
    rewrote under `kept/raw_run_id={their raw run}/`). None when unknown: a `kept/` file written without that
    folder (by an earlier version of this module) holds rows of several raw runs, so no replay removes it."""
    match = re.match(LAST_RAW_RUN, unquote(path))
    if match is None or match[1] == UNKNOWN_RAW_RUN or f"{KEPT_FOLDER}/" in match[2]:
        return None
    return match[1]


def _raw_run_column(path_column: str) -> Any:
    """`raw_run_of` of each row's file as a Spark column, UNKNOWN_RAW_RUN for None (run ids need no unquoting)."""
    from pyspark.sql import functions as F

    raw, rest = F.regexp_extract(path_column, LAST_RAW_RUN, 1), F.regexp_extract(path_column, LAST_RAW_RUN, 2)
    return F.when((raw == "") | rest.contains(f"{KEPT_FOLDER}/"), F.lit(UNKNOWN_RAW_RUN)).otherwise(raw)


def _file_uri(path: str) -> str:
    """One spelling of a file's location: a local file as `file:///…` whether written `file:/…` or `file:///…`."""
    return "file:///" + path.removeprefix("file:").lstrip("/") if path.startswith("file:/") else path


def _catalog_file(by_name: dict[str, str], spark_name: str) -> str:
    """The catalog's path (`by_name`: by `_file_uri`) of the file Spark's `input_file_name()` calls `spark_name`.

    The catalog keeps a file's path as it is written (a partition folder `created_at_month=2026-01-01 00%3A00%3A00`,
    as Spark escapes `:` in a partition value); Spark gives it back as a URI, quoted once more (`%20` for the space,
    `%253A`). Unquoting Spark's name once, and never the catalog's, gives the same path for every character.
    """
    path = by_name.get(_file_uri(unquote(spark_name)))
    if path is None:
        raise IcebergError(
            f"the merge matched keys in {spark_name}, which is none of the table's files it read: the table is "
            "unchanged; report this with the table's name and this message"
        )
    return path


KeyRange = dict[str, tuple[Any, Any] | None]  # key column: (min, max) of one row group; None: unknown


def _key_ranges(table: Table, paths: list[str], keys: list[str]) -> list[KeyRange]:
    """The key columns' (min, max) per row group of the run's files, from their Parquet footers."""
    import pyarrow.parquet as pq

    ranges: list[KeyRange] = []
    for path in paths:
        with table.io.new_input(path).open() as stream:
            meta = pq.read_metadata(stream)
        index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            one: KeyRange = {}
            for key in keys:
                stats = group.column(index[key]).statistics if key in index else None
                one[key] = _statistics_range(stats, meta.schema.column(index[key])) if stats is not None else None
            ranges.append(one)
    return ranges


def _statistics_range(stats: Any, column: Any) -> tuple[Any, Any] | None:
    """A row group's (min, max) of one column, comparable with the manifests' bounds; None when unknown.

    PyArrow does not decode every type's statistics: a decimal of precision up to 18 is stored as an INT32
    or INT64 unscaled number, whose statistics it refuses, so they are scaled here. Any other statistic it
    cannot decode bounds nothing: the table's files are then read, as for a file without statistics.
    """
    import pyarrow as pa

    if not stats.has_min_max:
        return None
    try:
        return _comparable(stats.min), _comparable(stats.max)
    except pa.ArrowException:
        pass
    if column.logical_type.type == "DECIMAL" and stats.physical_type in ("INT32", "INT64"):
        return Decimal(stats.min_raw).scaleb(-column.scale), Decimal(stats.max_raw).scaleb(-column.scale)
    return None


def _comparable(value: Any) -> Any:
    """A Parquet statistic as Iceberg's bounds decode: dates in days and timestamps in microseconds since 1970."""
    if isinstance(value, datetime):
        epoch = datetime(1970, 1, 1, tzinfo=UTC if value.tzinfo else None)
        return (value - epoch) // timedelta(microseconds=1)
    if isinstance(value, date):
        return (value - date(1970, 1, 1)).days
    return value


def _bound(field_type: Any, raw: bytes | None) -> Any:
    """A manifest bound as a Python value; None when absent or unreadable (then it bounds nothing)."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import DateType, IntegerType, LongType, TimestampType, TimestamptzType

    if raw is None:
        return None
    try:
        if isinstance(field_type, IntegerType | LongType | DateType | TimestampType | TimestamptzType):
            # a file written before int was widened to bigint keeps its 4-byte bounds
            return int.from_bytes(raw, "little", signed=True)
        return from_bytes(field_type, raw)
    except Exception:
        return None


def _key_fields(table: Table, keys: list[str]) -> dict[str, tuple[int, Any]] | None:
    """Each key column's (field id, type) in the table; None when one is missing (then no file is ruled out)."""
    schema = table.schema()
    fields = {}
    for key in keys:
        try:
            column = schema.find_field(key)
        except ValueError:
            return None
        fields[key] = (column.field_id, column.field_type)
    return fields


def _may_hold(data_file: Any, fields: dict[str, tuple[int, Any]], ranges: list[KeyRange]) -> bool:
    """Whether some row group of the run's files overlaps the file's bounds on every key column.

    A bound that is missing, unreadable or of another type than the statistic never rules a file out.
    Iceberg truncates string bounds (to 16 characters by default) outward, so they still enclose the values.
    """
    bounds = {
        key: (
            _bound(field_type, (data_file.lower_bounds or {}).get(field_id)),
            _bound(field_type, (data_file.upper_bounds or {}).get(field_id)),
        )
        for key, (field_id, field_type) in fields.items()
    }

    def overlaps(key: str, span: tuple[Any, Any] | None) -> bool:
        if span is None:
            return True
        lower, upper = bounds[key]
        try:
            return not ((upper is not None and upper < span[0]) or (lower is not None and lower > span[1]))
        except TypeError:
            return True

    return any(all(overlaps(key, group.get(key)) for key in fields) for group in ranges)


def _narrowing(exc: Exception) -> str:
    return str(exc).replace("Cannot change column type: ", "")


def commit(
    spark: SparkSession,
    lake: Lake,
    naming: Naming,
    dataset: DatasetConfig,
    *,
    identifier: tuple[str, str],
    prefix: str,
    staged: str,
    run_id: str,
    raw_run_id: str,
    load_mode: str,
    retention: int,
    before_commit: Callable[[], None] = lambda: None,
    kept_keys: key_check.KeptKeys | None = None,
) -> Commit:
    """Commit the checked Parquet output under `staged` to the Iceberg table `identifier` at `prefix`.

    Raises IcebergError (the table unchanged, the run's data files deleted) when the new data
    cannot be committed; `before_commit` runs just before the catalog is updated. `kept_keys`: what the
    run's key check read of the staged files (a merge then reads the run's keys no more).
    """
    from pyiceberg.exceptions import NoSuchIcebergTableError, NoSuchPropertyException, NoSuchTableError, ValidationError

    cat = catalog(lake, naming)
    name = ".".join(identifier)
    result = Commit(name, load_mode)
    if not lake.root_uri.startswith("s3://"):
        cat.create_namespace_if_not_exists(identifier[0])  # on AWS the core stack creates the databases
    try:
        table: Table | None = cat.load_table(identifier)
    except (NoSuchIcebergTableError, NoSuchPropertyException):  # a Glue table with another or no table_type
        raise IcebergError(
            f"the catalog has {name} as a table that is not Iceberg (the crawler's, from when {dataset.dataset} had "
            f'"table_format": "parquet"), so the Iceberg table cannot be created under that name. Delete it with '
            f"`aws glue delete-table --database-name {identifier[0]} --name {identifier[1]}` (its files are not "
            "touched) and run again. Nothing was committed"
        ) from None
    except NoSuchTableError:
        table = None
    table_location = location(lake, prefix)
    run_folder = _attempt_folder(lake, table, f"{prefix}{DATA_FOLDER}/{RAW_RUN_FOLDER}={raw_run_id}/run_id={run_id}")
    try:
        removed: list[str] = []
        kept: list[str] = []
        live = live_data_files(table) if table is not None else {}
        old_files = list(live)
        run_keys = None
        if load_mode == "merge" and old_files and kept_keys is not None:
            run_keys = kept_keys.take(lake, staged, list(dataset.primary_key))  # before the files move
        # The run's own rows go in as they were staged (moved, or written per partition, or with the columns
        # spelled as the table has them); a merge adds to them the kept rows of the files it must rewrite.
        io = table.io if table is not None else _io(cat, table_location)
        respelled = _respelled(spark, lake, io, table, staged, name)
        if dataset.partition_by or respelled is not None:
            rows = respelled if respelled is not None else spark.read.parquet(lake.uri(staged))
            _write(rows, lake.uri(run_folder), dataset)
            written = [k for k in (o.key for o in lake.data_files(run_folder)) if k.endswith(".parquet")]
        else:
            written = _move(lake, staged, run_folder)
        if load_mode == "merge" and old_files and written:
            removed, kept = _merge(
                spark, lake, table, live, dataset, written, f"{run_folder}{KEPT_FOLDER}/", result, run_keys=run_keys
            )
        if load_mode == "full":
            removed = old_files
        elif load_mode == "append":  # the rows of an earlier run of this raw run, wherever a merge filed them
            removed = [f for f in old_files if raw_run_of(f) == raw_run_id]
        if not written:
            raise IcebergError(f"the run wrote no data files under {lake.uri(run_folder)}")
        paths = [location(lake, k) for k in written + kept]
        properties = {RUN_PROPERTY: run_id, RAW_RUN_PROPERTY: raw_run_id, LOAD_MODE_PROPERTY: load_mode}
        _commit_files(
            cat,
            table,
            identifier,
            table_location,
            dataset,
            paths,
            removed,
            result,
            before_commit,
            properties,
            live=live,
        )
    except ValidationError as exc:
        _discard(lake, cat, identifier, run_folder)
        raise IcebergError(
            f"the new data cannot be committed to the Iceberg table {name}: {_narrowing(exc)}. Only added columns and "
            "widened types (int to bigint, float to double, a decimal's precision up) are applied; cast the column "
            "back in `columns` (or a transform hook), or start a new table. The table is unchanged",
            cast_fix=True,
        ) from None
    except BaseException:
        if not result.committed:  # once committed, the files are the table's: never delete them
            _discard(lake, cat, identifier, run_folder)
        raise
    try:
        result.expired_snapshots, result.orphans_removed = expire(cat.load_table(identifier), lake, prefix, retention)
    except Exception as exc:
        # The snapshot is committed: the run stands. Housekeeping that failed leaves old snapshots or
        # unused files (never wrong rows), the next run's expiry retries, and the ledger and the log say so.
        result.expiry_error = expiry_message(exc)
        log.warning(
            "%s: snapshot %s committed, but expiring old snapshots failed: %s",
            name,
            result.snapshot_id,
            result.expiry_error,
        )
    return result


def _respelled(
    spark: SparkSession, lake: Lake, io: Any, table: Table | None, staged: str, name: str
) -> DataFrame | None:
    """The staged rows with each column (and struct field) spelled as the table has it, when a spelling differs
    only in case; None when every name is the table's (or new). Raises IcebergError for names of the new data
    that differ only in case.

    Athena and Trino read column names case-insensitively and cannot read a table with two columns that differ
    only in case (trinodb/trino#22677): `AS Day` after `AS day` is the same column, and the table keeps its first
    spelling. The files are written with it too, since a reader maps a file's columns to the table's by name.
    """
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    staged_files = [o.key for o in lake.data_files(staged) if o.key.endswith(".parquet")]
    if not staged_files:
        return None
    # The names, from one footer (one Spark write: every staged file has the same columns); Spark reads the
    # rows only to respell them.
    try:
        with io.new_input(location(lake, staged_files[0])).open() as stream:
            schema = from_arrow_schema(pq.read_schema(stream))
    except TypeError:  # a type PySpark's Arrow conversion lacks
        schema = spark.read.parquet(lake.uri(staged)).schema
    _refuse_case_twins(schema, name)
    if table is None or _spelled_as(schema, table.schema().as_struct()) == schema:
        return None
    rows = spark.read.parquet(lake.uri(staged))
    spelled = _spelled_as(rows.schema, table.schema().as_struct())
    columns = []
    for old, new in zip(rows.schema.fields, spelled.fields, strict=True):
        column = F.col("`" + old.name.replace("`", "``") + "`")
        columns.append(column.cast(new.dataType).alias(new.name) if old != new else column)
    return rows.select(*columns)


def _spelled_as(kind: Any, known: Any) -> Any:
    """The Spark type `kind` with each struct field named as in the Iceberg type `known` when the names differ
    only in case (the field with the lowest id, the first spelling, where the table has two)."""
    from pyiceberg.types import ListType, MapType, StructType
    from pyspark.sql import types as T

    if isinstance(kind, T.StructType):
        fields: dict[str, Any] = {}
        for f in sorted(known.fields, key=lambda f: f.field_id) if isinstance(known, StructType) else []:
            fields.setdefault(f.name.lower(), f)
        out = []
        for f in kind.fields:
            match = fields.get(f.name.lower())
            name, inner = (match.name, match.field_type) if match is not None else (f.name, None)
            out.append(T.StructField(name, _spelled_as(f.dataType, inner), f.nullable, f.metadata))
        return T.StructType(out)
    if isinstance(kind, T.ArrayType):
        element = known.element_type if isinstance(known, ListType) else None
        return T.ArrayType(_spelled_as(kind.elementType, element), kind.containsNull)
    if isinstance(kind, T.MapType):
        value = known.value_type if isinstance(known, MapType) else None
        return T.MapType(kind.keyType, _spelled_as(kind.valueType, value), kind.valueContainsNull)
    return kind


def _refuse_case_twins(kind: Any, name: str, parent: str = "") -> None:
    """IcebergError when a struct of the Spark type `kind` (the top level too) has two fields differing only
    in case: Athena and Trino could not read the table."""
    from pyspark.sql import types as T

    if isinstance(kind, T.StructType):
        seen: dict[str, str] = {}
        for f in kind.fields:
            twin = seen.setdefault(f.name.lower(), f.name)
            if twin != f.name:
                raise IcebergError(
                    f"the new data has the columns {parent}{twin} and {parent}{f.name}, which differ only in case: "
                    f"Athena reads column names case-insensitively and cannot read the Iceberg table {name} with "
                    "both. Rename one of them (its alias in the model's SELECT, or in a transform hook). The table "
                    "is unchanged"
                )
            _refuse_case_twins(f.dataType, name, f"{parent}{f.name}.")
    elif isinstance(kind, T.ArrayType):
        _refuse_case_twins(kind.elementType, name, parent)
    elif isinstance(kind, T.MapType):
        _refuse_case_twins(kind.valueType, name, parent)


def _attempt_folder(lake: Lake, table: Table | None, base: str) -> str:
    """The folder this attempt of a run writes its data files to (`base/`), emptied of an earlier attempt's.

    An earlier attempt of the run id may have committed: killed after its commit (during expiry, its ledger
    entry still `publishing`, so the run id may be retried), or a replay whose run id is its raw run id. Its
    files are then the table's, and emptying the folder would leave the table naming files that are gone.
    So this attempt writes to the next folder no snapshot reads from (`base-2/`, `base-3/`…) and commits as
    any run does, rather than report the run done: it has read and checked its input anew, and its commit
    replaces the earlier attempt's rows in every load mode (full: all files; append: the files of its raw
    run; merge: the same keys), so the table holds what this attempt's ledger entry says. The earlier
    snapshot stays for time travel until it expires.
    """
    used: set[str] | None = None
    for attempt in itertools.count(1):
        folder = f"{base}/" if attempt == 1 else f"{base}-{attempt}/"
        files = lake.data_files(folder)
        if not files:
            break
        if used is None:
            used = {unquote(f) for f in _referenced_files(table)} if table is not None else set()
        if not any(unquote(location(lake, o.key)) in used for o in files):
            lake.delete_prefix(folder)  # an attempt that stopped before its commit
            break
        log.warning(
            "%s holds the data files of an earlier attempt of this run that the table committed; they stay, and "
            "this attempt writes beside them",
            lake.uri(folder),
        )
    return folder


def _discard(lake: Lake, cat: Catalog, identifier: tuple[str, str], folder: str) -> None:
    """Delete the data files a failed attempt wrote under `folder`, save those a snapshot of the table references.

    A commit that raised may have reached the catalog all the same (a time-out after Glue applied the
    update): the files it names are the table's. When the catalog cannot say, every file stays, and the
    next run's expiry deletes those no snapshot uses.
    """
    from pyiceberg.exceptions import NoSuchTableError

    files = [o.key for o in lake.data_files(folder)]
    if not files:
        return
    try:
        used = {unquote(f) for f in _referenced_files(cat.load_table(identifier))}
    except NoSuchTableError:
        used = set()
    except Exception as exc:
        log.warning(
            "%s: the failed run's data files under %s are kept (the catalog could not say which the table uses: "
            "%s); the next run's expiry deletes those no snapshot uses",
            ".".join(identifier),
            lake.uri(folder),
            expiry_message(exc),
        )
        return
    unused = [key for key in files if unquote(location(lake, key)) not in used]
    if len(unused) == len(files):
        lake.delete_prefix(folder)
        return
    log.warning(
        "%s: %d data file(s) under %s are in a snapshot of the table (the commit reached the catalog before the "
        "error): they stay",
        ".".join(identifier),
        len(files) - len(unused),
        lake.uri(folder),
    )
    for key in unused:
        lake.delete_prefix(key)


def expiry_message(exc: BaseException) -> str:
    """The exception's class and the first line of its message, URLs without credentials or query strings."""
    from dwlib.fetch import _redact
    from dwlib.secrets import scrub

    lines = (scrub(str(exc)) or "").strip().splitlines()  # scrubbed whole, before the cut below
    text = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", lambda m: _redact(m.group()), lines[0] if lines else "")
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _commit_files(
    cat: Catalog,
    table: Table | None,
    identifier: tuple[str, str],
    table_location: str,
    dataset: DatasetConfig,
    paths: list[str],
    removed: list[str],
    result: Commit,
    before_commit: Callable[[], None],
    properties: dict[str, str],
    live: dict[str, Any] | None = None,
) -> Commit:
    """`live`: the table's current data files, when the caller has read them already (`live_data_files`).

    Every column of the table is optional, whatever Spark wrote: Spark writes a column it knows is never null
    (`count(*)`, a literal, `meta_run_id`) as required, and Iceberg refuses a data file that lacks a required
    column, so a gold model that stops selecting one (or a source that loses one) could never commit again.
    The run's files still hold every value; the table just does not promise one. A table created before keeps
    its required columns until its next commit, which makes them optional in the same schema update."""
    import pyarrow.parquet as pq
    from pyiceberg.table import TableProperties

    with (table.io if table else _io(cat, table_location)).new_input(paths[0]).open() as stream:
        arrow_schema = pq.read_schema(stream)
    if table is None:
        from pyiceberg.catalog import Catalog as BaseCatalog
        from pyiceberg.schema import assign_fresh_schema_ids

        schema = assign_fresh_schema_ids(BaseCatalog._convert_schema_if_needed(_all_optional(arrow_schema)))
        table_properties = {
            TableProperties.PARQUET_COMPRESSION: "zstd",
            TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED: "true",
            TableProperties.METADATA_PREVIOUS_VERSIONS_MAX: "50",
            "format-version": "2",
            # Partition values are read from each file's bounds: keep them whole for partition columns.
            **{
                f"{TableProperties.METRICS_MODE_COLUMN_CONF_PREFIX}.{parse_partition(p).column}": "full"
                for p in dataset.partition_by
            },
        }
        tx = cat.create_table_transaction(
            identifier,
            schema=schema,
            location=table_location,
            partition_spec=_partition_spec(schema, dataset),
            properties=table_properties,
        )
        before: dict[str, str] = {}
    else:
        tx = table.transaction()
        before = {f.name: str(f.field_type) for f in table.schema().fields}
        wanted = [p.replace(" ", "") for p in dataset.partition_by]
        have = _spec_text(table.spec(), table.schema())
        if wanted != have:
            raise IcebergError(
                f"the Iceberg table {'.'.join(identifier)} is partitioned by {have or 'nothing'} and partition_by "
                f"now says {wanted or 'nothing'}: changing a table's partitioning is not done by a run; put "
                "partition_by back, or drop the table to start it anew. The table is unchanged"
            )
        _refuse_narrowing(table, arrow_schema, ".".join(identifier))
        with tx.update_schema() as update:
            update.union_by_name(_all_optional(arrow_schema))
            for path in _required_paths(table.schema().fields):
                update.make_column_optional(path)
    after = {f.name: str(f.field_type) for f in tx.table_metadata.schema().fields}
    if before:
        result.schema_change = {
            "added": [n for n in after if n not in before],
            "retyped": {n: f"{before[n]} -> {after[n]}" for n in after if n in before and before[n] != after[n]},
        }
    # Files carry no Iceberg field ids: the table reads them by column name, as the mapping says.
    tx.set_properties(
        **{TableProperties.DEFAULT_NAME_MAPPING: tx.table_metadata.schema().name_mapping.model_dump_json()}
    )
    # A file without rows (Spark writes one for an empty input) adds nothing; expiry deletes it below.
    data_files = _data_files_of(tx.table_metadata, paths, tx._table.io, ".".join(identifier))
    data_files = [f for f in data_files if f.record_count]
    old = {}
    if removed and table is not None:
        gone = set(removed)
        current = live if live is not None else live_data_files(table)
        old = {path: f for path, f in current.items() if path in gone}
    producer = tx.update_snapshot(snapshot_properties=properties)
    # Nothing removed: an "append" snapshot, as Athena and Spark label one.
    with producer.overwrite() if old else producer.fast_append() as snapshot:
        for data_file in old.values():
            snapshot.delete_data_file(data_file)
        for data_file in data_files:
            snapshot.append_data_file(data_file)
    before_commit()
    try:
        tx.commit_transaction()
    except Exception:
        # The catalog may have applied the commit before the error reached us (its reply lost to a reset or a
        # time-out): then the table's current snapshot is this run's, and the run's rows are what readers see.
        if not _current_snapshot_is(cat, identifier, properties.get(RUN_PROPERTY)):
            raise
        name = ".".join(identifier)
        log.warning("%s: the commit raised, but the table's current snapshot is this run's: it was applied", name)
    result.committed = True
    committed = cat.load_table(identifier)
    current = committed.current_snapshot()
    result.snapshot_id = current.snapshot_id if current else None
    result.operation = str(current.summary.operation.value) if current and current.summary else ""
    result.files_added, result.files_removed = len(data_files), len(old)
    result.bytes_added = sum(f.file_size_in_bytes for f in data_files)
    if live is not None and table is not None:
        # The commit replaced exactly `old` with `data_files` in the snapshot `live` was read from (a
        # concurrent change fails the commit): no need to read the new snapshot's manifests back.
        files = [f for path, f in live.items() if path not in old] + data_files
    else:
        files = list(live_data_files(committed).values())
    result.data_files, result.data_bytes = len(files), sum(f.file_size_in_bytes for f in files)
    return result


def _current_snapshot_is(cat: Catalog, identifier: tuple[str, str], run_id: str | None) -> bool:
    """Whether the table's current snapshot was committed by the run `run_id` (False if that cannot be read)."""
    try:
        current = cat.load_table(identifier).current_snapshot()
    except Exception:
        return False
    return bool(run_id) and current is not None and (current.summary or {}).get(RUN_PROPERTY) == run_id


def _all_optional(arrow_schema: Any) -> Any:
    """`arrow_schema` with every field nullable, those inside structs, lists and maps too (a map's keys aside)."""
    import pyarrow as pa

    return pa.schema([_optional(f) for f in arrow_schema], metadata=arrow_schema.metadata)


def _optional(field: Any) -> Any:
    import pyarrow as pa

    kind = field.type
    if pa.types.is_struct(kind):
        kind = pa.struct([_optional(c) for c in kind])
    elif pa.types.is_large_list(kind):
        kind = pa.large_list(_optional(kind.value_field))
    elif pa.types.is_list(kind):
        kind = pa.list_(_optional(kind.value_field))
    elif pa.types.is_map(kind):
        kind = pa.map_(kind.key_field, _optional(kind.item_field))
    return field.with_type(kind).with_nullable(True)


def _required_paths(fields: Any, parent: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every required field among the Iceberg `fields` and inside them (a map's keys aside)."""
    from pyiceberg.types import ListType, MapType, StructType

    for f in fields:
        path = (*parent, f.name)
        if f.required:
            yield path
        kind = f.field_type
        if isinstance(kind, StructType):
            yield from _required_paths(kind.fields, path)
        elif isinstance(kind, ListType):
            yield from _required_paths([kind.element_field], path)
        elif isinstance(kind, MapType):
            yield from _required_paths([kind.value_field], path)


def _data_files_of(table_metadata: Any, paths: list[str], io: Any, name: str) -> list[Any]:
    """The Iceberg data files of the Parquet files `paths`, checked against the table's schema.

    PyIceberg refuses a file that does not fit by printing a table of every column to standard output and
    raising it as a ValueError: neither reaches the user; an IcebergError names the columns instead.
    """
    import io as text_io

    import pyarrow.parquet as pq
    from pyiceberg.table import _parquet_files_to_data_files

    with contextlib.redirect_stdout(text_io.StringIO()):
        try:
            return list(_parquet_files_to_data_files(table_metadata, paths, io))
        except ValueError as exc:
            if not str(exc).startswith(("Mismatch in fields", "PyArrow table contains more columns")):
                raise
    from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids
    from pyiceberg.schema import promote

    table_fields = {f.name: f for f in table_metadata.schema().fields}
    columns: list[str] = []
    for path in paths:
        with io.new_input(path).open() as stream:
            held = {f.name: f for f in _pyarrow_to_schema_without_ids(pq.read_schema(stream)).fields}
        for column, f in table_fields.items():
            other = held.get(column)
            if other is None:
                if f.required:
                    columns.append(f"{column} (required {f.field_type}, not in the files)")
            elif other.field_type != f.field_type:
                try:
                    promote(other.field_type, f.field_type)
                except Exception:
                    columns.append(f"{column} ({f.field_type} in the table, {other.field_type} in the files)")
        columns += [f"{c} (not in the table)" for c in held if c not in table_fields]
    listed = ", ".join(dict.fromkeys(columns)) or "their columns"
    raise IcebergError(
        f"the new data files do not fit the Iceberg table {name}: {listed}. Write the table's columns at their "
        "types (a model's SELECT, a dataset's `columns`; a column left out reads NULL), or start a new table. The "
        "table is unchanged",
        cast_fix=True,
    ) from None


def _refuse_narrowing(table: Table, arrow_schema: Any, name: str) -> None:
    """A column whose new type is not the old one or a widening of it (int to bigint, float to double, a
    decimal's precision up) fails the run, naming the column; data that would still fit is refused too,
    because the source's declared type changed and a person should decide."""
    from pyiceberg.catalog import Catalog as BaseCatalog
    from pyiceberg.exceptions import ResolveError
    from pyiceberg.schema import promote
    from pyiceberg.types import DecimalType

    current: dict[str, Any] = {}
    for f in sorted(table.schema().fields, key=lambda f: f.field_id):  # by name in any case, the first spelling
        current.setdefault(f.name.lower(), f.field_type)
    for column in BaseCatalog._convert_schema_if_needed(arrow_schema).fields:
        old = current.get(column.name.lower())
        if old is None or old == column.field_type or not (old.is_primitive and column.field_type.is_primitive):
            continue
        try:
            promote(old, column.field_type)
            # The Iceberg spec widens a decimal's precision only at the same scale; PyIceberg 0.12's promote
            # compares the old scale with itself, so the scale is checked here.
            if isinstance(old, DecimalType) and old.scale != getattr(column.field_type, "scale", old.scale):
                raise ResolveError(f"Cannot change the scale of {old}")
        except ResolveError:
            declared = _declared_as(old)
            cast_back = (
                f"declare the column as {declared} again in `columns` (or cast it in a transform hook)"
                if declared
                else f"cast the column back to {old} in a transform hook (`columns` has no such type)"
            )
            raise IcebergError(
                f"the column {column.name} of the Iceberg table {name} is {old} and the new data has it as "
                f"{column.field_type}: a narrowing or incompatible change. Only added columns and widened types "
                f"(int to bigint, float to double, a decimal's precision up) are applied; {cast_back}, or start a "
                "new table. The table is unchanged",
                cast_fix=True,
            ) from None


def _declared_as(field_type: Any) -> str | None:
    """How a dataset's `columns` (and Spark SQL's CAST) spells an Iceberg type; None when `columns` has no such type."""
    from pyiceberg import types

    if isinstance(field_type, types.DecimalType):
        return f"decimal({field_type.precision},{field_type.scale})"
    spellings = {
        types.StringType: "string",
        types.IntegerType: "int",
        types.LongType: "bigint",
        types.DoubleType: "double",
        types.BooleanType: "boolean",
        types.DateType: "date",
        types.TimestampType: "timestamp",
        types.TimestamptzType: "timestamp",
    }
    return spellings.get(type(field_type))


def _io(cat: Catalog, table_location: str) -> Any:
    from pyiceberg.io import load_file_io

    return load_file_io(cat.properties, table_location)


# ------------------------------------------------------------------ housekeeping


def expire(table: Table, lake: Lake, prefix: str, days: int, now: datetime | None = None) -> tuple[int, int]:
    """Expire the snapshots no moment of the last `days` reads, then delete the data files no snapshot uses.

    Time travel reaches back `days` (README, "Expiry"): `FOR TIMESTAMP AS OF` a moment since the cutoff reads
    the snapshot current then, which for a moment before the next commit is the newest snapshot made at or
    before the cutoff. So that one stays with the current snapshot and every later one; a snapshot goes only
    when the one made current after it is older than the cutoff too.

    Returns (snapshots expired, files deleted). Runs after every commit, under the dataset's run lock,
    so no other writer can have files in flight.
    """
    now = now or datetime.now(UTC)
    cutoff_ms = (now - timedelta(days=days) - EPOCH) // timedelta(milliseconds=1)
    current = table.metadata.current_snapshot_id
    # What was current when: the snapshot log (a table without one: the snapshots in the order they were made)
    made_current = [(e.timestamp_ms, e.snapshot_id) for e in table.metadata.snapshot_log] or sorted(
        (s.timestamp_ms, s.snapshot_id) for s in table.metadata.snapshots
    )
    at_cutoff = [snapshot_id for at, snapshot_id in made_current if at <= cutoff_ms][-1:]
    old = [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.snapshot_id != current and s.snapshot_id not in at_cutoff and s.timestamp_ms < cutoff_ms
    ]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
        table = table.refresh()
    used = {unquote(f) for f in _referenced_files(table)}
    orphans = 0
    for obj in list(lake.data_files(f"{prefix}{DATA_FOLDER}/")):
        if unquote(location(lake, obj.key)) not in used:
            lake.delete_prefix(obj.key)
            orphans += 1
    if isinstance(lake, LocalLake):  # folders the deleted files leave empty
        data = lake.path(f"{prefix}{DATA_FOLDER}")
        for folder in sorted((p for p in data.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return len(old), orphans


def _referenced_files(table: Table) -> set[str]:
    """Every data file some snapshot reads: each manifest is read once, however many snapshots share it."""
    manifests = {m.manifest_path: m for s in table.metadata.snapshots for m in s.manifests(table.io)}
    return {f.file_path for f in _data_files(table, manifests.values())}


def bronze_identifier(naming: Naming, dataset: str) -> tuple[str, str]:
    return naming.database("bronze"), table_name(dataset)


def gold_identifier(naming: Naming, model: str) -> tuple[str, str]:
    """A gold model's table: `{prefix}_gold.{model}` (model names are unique across datasets)."""
    return naming.database("gold"), model
