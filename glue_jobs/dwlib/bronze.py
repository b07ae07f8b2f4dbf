"""The bronze job: source -> raw/ -> clean, typed, checked -> bronze/ (kill-and-fill, safely).

`run_bronze` is what both the Glue entry point and `dw run` call. Bronze is replaced only
after every check passed; any failure leaves the previous table as it was, and the run
summary says what happened.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from dwlib import fetch, iceberg, jobs, ledger, transform
from dwlib import keys as key_check
from dwlib.config import CsvOptions, DatasetConfig
from dwlib.errors import malformed_record
from dwlib.hook import HookError, TransformHook, load_hook
from dwlib.lake import Lake, LakeError
from dwlib.naming import DROPPED_SOURCES, TRANSFORM_HOOK, Naming, table_name

# The run's types and skeleton live in dwlib.run (shared with gold); these names stay importable from here.
from dwlib.run import (  # noqa: F401
    JobContext,
    JobFailed,
    LayoutError,
    Publisher,
    RunSummary,
    Target,
    fail_with,
    guarded_run,
    housekeeping,
    publish,
    publisher_for,
    write_parquet,
)
from dwlib.secrets import SecretError, resolve_all

# Parquet of typical CSV is about a quarter of its size; aim at files of ~128 MB.
TARGET_FILE_BYTES = 128 * 1024**2
CSV_TO_PARQUET_RATIO = 4
# Inputs this small are read in one task anyway (Spark's openCostInBytes: a file below it is one split);
# they run in one task from the read to the write, so the key check's window needs no shuffle and the
# output is one file. Larger small inputs keep their read parallelism.
ONE_TASK_INPUT_BYTES = 4 * 1024**2
# Inputs this small check their keys in a window (see transform.check_rules) and keep the checked rows in
# memory after the bronze write, so the quarantine write does not read, type and check the source again (on
# a small run each Spark job costs more than its data).
CACHE_INPUT_BYTES = 16 * 1024**2
# ...except below this size, where reading and checking the input again for the quarantine costs less than
# filling the cache, which adaptive execution runs as a Spark job of its own before the write.
RECOMPUTE_INPUT_BYTES = 1024**2
# Up to this many rejected rows, their reasons are collected as the quarantine is written (an observation,
# no job of its own); more are counted from the written quarantine by a grouped count.
FEW_REJECTED = 100_000
# Inputs of one task (ONE_TASK_INPUT_BYTES) are checked and written with Spark's expressions interpreted, not
# compiled: for a few MB the generated Java costs more to compile than the rows cost to evaluate (the demo's
# 243 rows made ~30 Janino compilations of ~380 KB of source on a cold JVM). Same expressions, same values;
# set for the run's own queries and restored after.
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
# The kept write's filter (no check failed) stays above the projection that types each column. Spark would push
# it below, writing each typed value's expression into the filter, and a filter's code shares nothing with the
# projection above it: every decimal typed from text was cast twice a row (in the present check, then in the
# projection), ~0.5 CPU s of a 3.1-million-row orders file. Left above, the projection types each value once and
# the checks read it. Not with a transform hook: its own filters keep their pushdown. Both rules: the optimizer
# also runs the second on its own, outside the first.
FILTER_STAYS_ABOVE_TYPING = (
    "org.apache.spark.sql.catalyst.optimizer.PushDownPredicates",
    "org.apache.spark.sql.catalyst.optimizer.PushPredicateThroughNonJoin",
)


# Whether a CSV input above CACHE_INPUT_BYTES has the reader type the declared columns it can (see
# transform.reader_types); False types every column from text. Internal: tests and the benchmark compare both.
READER_TYPING = True


def source_description(dataset: DatasetConfig) -> str:
    kind = dataset.source_kind
    if kind == "source_url":
        return dataset.source_url or ""
    if kind == "api_endpoints":
        return ", ".join(e.url.split("?")[0] for e in dataset.api_endpoints or [])
    if kind == "dynamodb_table":
        return f"dynamodb:{dataset.dynamodb_table}"
    return "landing"


# ------------------------------------------------------------------ steps


def land_raw(ctx: JobContext, summary: RunSummary) -> list[str]:
    """Put the run's original files under raw/{dataset}/run_id=.../ and return their keys.

    A fetch (the source, an API, --sample) closes the folder with its manifest once every file is landed; a
    replay (`raw_run_id`) takes only a closed folder's listed files (see ledger.raw_run_files).
    """
    naming, lake = ctx.naming, ctx.lake
    kind = ctx.dataset.source_kind
    if ctx.raw_run_id:
        prefix = naming.raw_prefix(ctx.name, ctx.raw_run_id)
        if not lake.data_files(prefix):
            raise JobFailed(f"no raw files under {prefix}: pick a run id that `dw runs {ctx.name}` lists")
        try:
            keys, note = ledger.raw_run_files(lake, naming, ctx.name, ctx.raw_run_id, dropped=kind in DROPPED_SOURCES)
        except ledger.IncompleteRawRun as exc:
            raise JobFailed(str(exc)) from None
        if note:
            summary.notes.append(note)
        return keys
    prefix = naming.raw_prefix(ctx.name, ctx.run_id)
    if ctx.sample_dir is not None or kind not in DROPPED_SOURCES:
        # A retry of this run id fetches again: until it has landed every file, the folder is not closed.
        ledger.open_raw_manifest(lake, naming, ctx.name, ctx.run_id)
    if ctx.sample_dir is not None:
        files = sorted(p for p in ctx.sample_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise JobFailed(f"{ctx.sample_dir} has no sample files: drop a small extract of the source there")
        for path in files:
            lake.put_file(path, prefix + path.name)
            summary.bytes_fetched += path.stat().st_size
        return _closed(ctx, [prefix + p.name for p in files])
    try:
        secrets = resolve_all(ctx.secrets, ctx.dataset.secrets)
    except SecretError as exc:
        raise JobFailed(f"{exc}; nothing was fetched") from None
    if kind == "source_url":
        result = fetch.fetch_source(
            ctx.dataset.source_url,
            lake,
            prefix,
            dataset_dir=ctx.dataset_dir,
            deployed_prefix=naming.etl_prefix(ctx.name),  # on Glue: the dataset folder as the stack deployed it
            policy=ctx.policy,
            auth=ctx.dataset.source_auth,
            secrets=secrets,
        )
    elif kind == "api_endpoints":
        result = fetch.fetch_api(ctx.dataset.api_endpoints or [], lake, prefix, policy=ctx.policy, secrets=secrets)
    else:
        # dynamodb_table and landing: the files were put there before the run (export Lambda, a drop), and the
        # dropper's _SUCCESS closed the folder.
        if not lake.data_files(prefix):
            what = "the export Lambda has not written" if kind == "dynamodb_table" else "nobody has dropped"
            raise JobFailed(f"no files under {prefix}: {what} this run's files yet; start the run with their run_id")
        try:
            keys = ledger.drop_files(lake, naming, ctx.name, ctx.run_id)
        except ledger.IncompleteRawRun as exc:
            raise JobFailed(f"{exc}. Nothing was published") from None
        sizes = {o.key: o.size for o in lake.data_files(prefix)}
        summary.bytes_fetched = sum(sizes.get(k, 0) for k in keys)
        return keys
    summary.bytes_fetched = result.bytes
    return _closed(ctx, result.keys)


def _closed(ctx: JobContext, keys: list[str]) -> list[str]:
    """Write the fetched run's manifest, last: from now on the raw run may be replayed."""
    try:
        ledger.write_raw_manifest(ctx.lake, ctx.naming, ctx.name, ctx.run_id, keys)
    except ledger.IncompleteRawRun as exc:
        raise JobFailed(f"{exc}; the raw run is not closed, run again") from None
    return keys


def output_file_count(input_bytes: int, fmt: str) -> int:
    ratio = CSV_TO_PARQUET_RATIO if fmt in ("csv", "json", "jsonl") else 1
    return max(1, math.ceil(input_bytes / ratio / TARGET_FILE_BYTES))


def sized(df: DataFrame, files: int, input_files: int, input_bytes: int, shuffled: int = 0) -> DataFrame:
    """Avoid thousands of tiny files without serializing a big job into one task.

    Estimates the read partitions from the input (one per file, or per 128 MB split), or `shuffled`
    when a shuffle may have made that many, instead of asking Spark, which would plan the whole query
    once more.
    """
    partitions = max(input_files, math.ceil(input_bytes / TARGET_FILE_BYTES), shuffled)
    return df.coalesce(files) if partitions > 4 * files else df


def previous_run(ctx: JobContext, warnings: list[str] | None = None) -> dict[str, Any] | None:
    """The ledger entry of the dataset's last successful bronze run (not this one's).

    An entry that is not readable (truncated, edited by hand) is skipped, with a line in `warnings` naming it.
    """
    for obj in sorted(ctx.lake.list(ctx.naming.runs_prefix(ctx.name)), key=lambda o: o.key, reverse=True):
        if Naming.run_id_of_entry(obj.key) is None:  # the lock, publish journals
            continue
        try:
            past = ledger.read_entry(ctx.lake, obj.key)
        except ledger.UnreadableEntry as exc:
            if warnings is not None:
                warnings.append(f"warning: skipped for the schema comparison: {exc}")
            continue
        if past is None:
            continue
        if past.get("layer") == "bronze" and past.get("status") == "succeeded" and past.get("run_id") != ctx.run_id:
            return past
    return None


def schema_diff(old: list[dict[str, str]] | None, new: list[dict[str, str]]) -> dict[str, Any]:
    if old is None:
        return {}
    before, after = {c["name"]: c["type"] for c in old}, {c["name"]: c["type"] for c in new}
    return {
        "added": [n for n in after if n not in before],
        "removed": [n for n in before if n not in after],
        "retyped": {n: f"{before[n]} -> {after[n]}" for n in after if n in before and before[n] != after[n]},
    }


def transform_hook(ctx: JobContext) -> TransformHook | None:
    """The dataset's transform.py: from its folder locally, from etl/{dataset}/ on Glue; None if absent."""
    if ctx.dataset_dir is not None:
        path = ctx.dataset_dir / TRANSFORM_HOOK
        return load_hook(ctx.name, path.read_bytes(), str(path)) if path.is_file() else None
    key = ctx.naming.transform_hook_key(ctx.name)
    if not ctx.lake.exists(key):
        return None
    return load_hook(ctx.name, ctx.lake.read_bytes(key), ctx.lake.uri(key))  # the bytes: load_hook decodes, naming it


def _flagged(df: DataFrame, flag: str) -> Any:
    """How many rows have this internal flag set; 0 where the frame has no such column.

    `_dw_rejected`: the row fails a check; `_dw_suspect`: may be half of a row a quoted line break split (CSV
    read line by line); `_dw_doubtful`: the reader could not type the record and its raw text may not split into
    its fields (see transform).
    """
    column = F.col(flag) if flag in df.columns else F.lit(False)
    return F.count(F.when(column, 1))  # an aggregate either way: observe() takes nothing else


def _untyped(read: transform.Source) -> Column:
    """Per record: not null where the reader could not type it and its text was split instead. Read without the
    split, such a record stops the read (`transform.read_csv`): nothing to count."""
    return F.col(transform.SPLIT) if transform.SPLIT in read.df.columns else F.lit(None)


def _staged_repeats(spark: SparkSession, lake: Lake, prefix: str, config: DatasetConfig) -> list[str]:
    """The keys (primary key, `unique` columns) that repeat among the staged kept rows under `prefix`.

    Read in the driver (`dwlib.keys`: the key columns of the staged files, sorted or hashed there) when
    they fit; a Spark key-only aggregate otherwise. Both are exact; the driver's read costs a fraction of
    the Spark job's read, shuffle and aggregate (measured in bench/README.md).
    """
    found = key_check.repeated_keys(lake, prefix, [config.primary_key, *[[c] for c in config.quality.unique]])
    if found is None:
        found = transform.repeated_keys(spark.read.parquet(lake.uri(prefix)), config)
    return found


def _staged_rows(spark: SparkSession, lake: Lake, prefix: str) -> int:
    """The rows of the staged Parquet files under `prefix`: the sum of their footers' counts, read in the driver
    (a ranged GET or two per file on S3). A count as the rows are written costs every row a call into an
    aggregate: 0.3-0.4 CPU seconds of a 3.1 million-row run (bench/README.md)."""
    rows = key_check.parquet_rows(lake, prefix)
    return rows if rows is not None else spark.read.parquet(lake.uri(prefix)).count()


def transform_and_check(
    spark: SparkSession, ctx: JobContext, raw_keys: list[str], summary: RunSummary, split_first: bool = False
) -> str:
    """Read, type and check the run's files; write bronze to staging and rejects to quarantine.

    Returns the staging prefix holding the new bronze; raises JobFailed if a check fails, and
    HookError if the dataset's transform hook does. `split_first`: a CSV typed by the reader is read with
    the text split of the records it cannot type from the start (the dataset's last run had such records).
    """
    naming, lake, config = ctx.naming, ctx.lake, ctx.dataset
    staging = naming.staging_prefix("bronze", ctx.name, ctx.run_id)
    lake.delete_prefix(staging)
    with summary.step("unpack"):
        keys = fetch.unpack_for_reading(
            lake, raw_keys, staging + "input/", fetch.UnpackLimits(**config.archive.model_dump()), fmt=config.format
        )
    fmt = config.input_format(keys[0])
    if fmt == "csv" and not transform.java_charset(spark, config.csv.encoding):
        raise JobFailed(
            f"csv.encoding {config.csv.encoding!r} is not a charset Spark (Java) knows; use utf-8, iso-8859-1, "
            "windows-1252, utf-16 or another Java charset name, in the dataset's config.json"
        )
    uris = [lake.uri(k) for k in keys]
    # A drop's `_SUCCESS` manifest (the DynamoDB export's): its attributes' types, the rows it wrote.
    manifest = _drop_manifest(ctx)
    listed = [o for k in keys for o in lake.list(k)]
    input_bytes = sum(o.size for o in listed)
    hook = transform_hook(ctx)
    summary.transform_hook = hook.file if hook else None
    small = input_bytes <= CACHE_INPUT_BYTES
    # One input file (a run's usual case): every row's `meta_source_file` is its name, a constant.
    one_file = transform.spark_file_name(spark, uris[0]) if [o.key for o in listed] == keys[:1] else None
    one_task = input_bytes <= ONE_TASK_INPUT_BYTES

    # A small input is checked in one pass and its quarantine comes from the same rows (see check_rules and
    # the cache below); a large one's quarantine is a job of its own, which reads the source again as text.
    # With a hook, the typing rejects go to quarantine from the typed frame (see `rejected_frame`): read as text.
    typing = READER_TYPING and fmt == "csv" and not small and hook is None
    ingested_at = datetime.now(UTC)

    def attempt(
        csv: CsvOptions, repeats_after: bool = True, reader_typing: bool = typing, split: bool = split_first
    ) -> tuple[DataFrame, Callable[[], DataFrame], bool]:
        """One read-type-check-write; True last if a quoted line break may have split a row (read again).

        With reader typing, the first read is planned as if every record typed (`split` off: what a bare job
        plans, and what a clean file needs); the first record that does not stops it. The run is then read,
        typed and written again with the text split of such records (`transform.read_csv`'s `split`), which is
        where its rejects come from, and its summary says how many there were (`csv_untyped_records`): the
        dataset's next run starts with the split.

        A large input's key and `unique` columns are checked for repeats after the write, on the staged
        Parquet (their columns only), instead of in a pass over the source before it: usually nothing
        repeats and that is all. If something does, the run is checked and written again, repeats rejected.
        The rejected rows come as a function: the frame is built (a Spark job or two) only if some were.
        """
        try:
            read = transform.read_input(
                spark, uris, fmt, csv, transform.reader_types(config) if reader_typing else None, split=split
            )
        except ValueError as exc:  # a source its format cannot read whole (several JSON values in a .json)
            raise JobFailed(str(exc)) from None
        source = read.df
        if one_task:
            # One task from the read to the write: the key check's window needs no shuffle (one partition
            # already holds every key), and the output is one file, not one per shuffle partition.
            source = source.coalesce(1)
        summary.renamed_columns, summary.missing_columns = read.renamed, read.missing
        # What the read could not check (a CSV too large to scan for its quotes), once however often the run is read.
        summary.notes += [note for note in read.notes if note not in summary.notes]
        if not transform.data_columns(source):
            raise JobFailed(f"the source files {', '.join(keys)} have no columns: check `format` and `csv` options")
        # The source's own names and what they became: a CSV's headers; a JSON or Parquet source's leaf paths.
        if read.groups:
            named = [pair for g in read.groups for pair in zip(g.header, g.names, strict=True)]
        else:
            originals = transform.source_column_names(source)
            named = list(zip(originals, transform.clean_names(originals), strict=True))
        contested = transform.contested_names(named, [*config.columns, *config.primary_key])
        if contested:
            raise JobFailed(
                "; ".join(
                    f"declared column {name!r} is contested: source columns {', '.join(map(repr, sources))} in "
                    f"{', '.join(keys)} all clean to {name!r} and none is spelled {name!r}, so which one holds its "
                    "data cannot be told"
                    for name, sources in contested.items()
                )
                + ". Fix: rename all but one of them at the source (or give the one that holds the data the "
                "declared name exactly); the others are then kept as `<name>_2`, ..."
            )
        try:
            source = transform.flatten(source, config.explode)
        except ValueError as exc:
            raise JobFailed(str(exc)) from None
        if config.source_kind == "dynamodb_table":
            # DynamoDB is schemaless: the export's header is the attributes some item of this run carries, so a
            # declared attribute no item has (yet, or any more) is a column of NULLs, not a config naming a
            # column the source does not have.
            present = set(transform.clean_names(transform.data_columns(source)))
            absent = [name for name in config.columns if name not in present]
            if absent:
                internal = [c for c in source.columns if c not in transform.data_columns(source)]
                source = source.select(
                    *transform.data_columns(source),
                    *[F.lit(None).cast("string").alias(name) for name in absent],
                    *internal,
                )
                missing = {file: list(columns) for file, columns in summary.missing_columns.items()}
                for key in keys:
                    missing[key.rsplit("/", 1)[-1]] = [*missing.get(key.rsplit("/", 1)[-1], []), *absent]
                summary.missing_columns = missing
                note = (
                    f"declared columns no item of this export carries, read as NULL in every row: {', '.join(absent)}"
                )
                if note not in summary.notes:  # once, however often the run is read again
                    summary.notes.append(note)
        cleaned = transform.clean_names(transform.data_columns(source))
        # The rows are counted as they come in, where they are narrow (one per row the split below sees;
        # `check_rules` keeps them one for one), and the kept ones in the footers of the files written.
        # Counting them at the split itself would stop Spark's generated code there and copy every typed and
        # original value of every row once more (a third of a clean run's time, measured on 11 columns).
        counted_in = Observation("bronze-in")
        if hook is None:
            source = source.observe(
                counted_in,
                F.count(F.lit(1)).alias("rows_in"),
                _flagged(source, transform.SUSPECT).alias("suspects"),
                _flagged(source, transform.DOUBTFUL).alias("doubtful"),
                F.count(_untyped(read)).alias("untyped"),
            )
        inferred = None
        if fmt == "csv" and any(n not in config.columns for n in cleaned):
            inferred = transform.infer_types(spark, uris, csv, cleaned, groups=read.groups)
            inferred.update(_exported_as_text(ledger.manifest_types(manifest), read.groups))
        # With a hook, the key and the rules may name columns the hook makes; they are checked on its output.
        unknown = _columns_named_but_absent(config, cleaned, rules=hook is None)
        if unknown:
            raise JobFailed(
                f"config names columns the source does not have: {'; '.join(unknown)}; "
                f"the source's cleaned columns are: {', '.join(cleaned)}"
            )

        def typed_from(frame: DataFrame, reader_typed: dict[str, str]) -> tuple[DataFrame, list[str]]:
            return transform.prepare_types(
                frame,
                config,
                run_id=ctx.run_id,
                ingested_at=ingested_at,
                inferred=inferred,
                csv_source=fmt == "csv",
                null_markers=fmt == "csv",
                encoding={"csv": config.csv.encoding, "json": "utf-8", "jsonl": "utf-8"}.get(fmt),
                reader_typed=reader_typed,
                source_file=one_file,
            )

        typed, names = typed_from(source, read.typed)
        later = False
        if hook is None:
            later = repeats_after and not small and bool(config.primary_key or config.quality.unique)
            prepared = transform.check_rules(typed, config, small_input=small, repeats_checked_later=later)
            data_names = names
        else:
            returned = hook.apply(transform.hook_input(typed, names))
            problems = transform.hook_output_problems(returned, config)
            if problems:
                raise HookError(
                    f"{ctx.name}: transform hook {hook.file}: transform(df) returned a frame the checks cannot "
                    f"use: {'; '.join(problems)}"
                )
            prepared, data_names = transform.checked_hook_output(returned, config, ctx.run_id, ingested_at)
        if hook is not None:  # the hook's result is not one for one with the source: counted at the split
            prepared = prepared.observe(
                counted_in,
                F.count(F.lit(1)).alias("rows_in"),
                _flagged(prepared, transform.REJECTED).alias("rows_rejected"),
                _flagged(prepared, transform.SUSPECT).alias("suspects"),
            )
        if (small and input_bytes > RECOMPUTE_INPUT_BYTES) or hook is not None:
            # With a hook, always: the kept rows and the quarantine are two writes of its result, and a hook need
            # not give the same rows twice (a Python UDF with random choices, an order a shuffle decides).
            prepared = prepared.persist(StorageLevel.MEMORY_AND_DISK)
            cached.append(prepared)

        def rejected_frame() -> DataFrame:
            typed_rejects, checked = typed, prepared
            if read.typed:
                # The reader-typed values of a row it typed are not its text: the quarantine keeps rows as they
                # arrived, so it reads the source again as text. The same files, splits and options give the
                # same rows in the same order (`_dw_order`), typed and checked the same way.
                again = transform.read_input(spark, uris, fmt, csv).df
                again = again.coalesce(1) if one_task else again
                typed_rejects, _ = typed_from(transform.flatten(again, config.explode), {})
                if hook is None:
                    checked = transform.check_rules(
                        typed_rejects, config, small_input=small, repeats_checked_later=later
                    )
            if hook is None:
                return transform.rejected_rows(checked, names)
            # typing rejects as they arrived, then what the key and rules rejected after the hook
            return transform.rejected_rows(typed_rejects, names).unionByName(
                transform.hook_rejected_rows(prepared, data_names), allowMissingColumns=True
            )

        kept_frame = transform.kept_rows(prepared, data_names)
        if one_task:  # a hook's joins may have shuffled it again
            kept = kept_frame.coalesce(1)
        else:
            # On a small input, a key check's window or a hook's joins may have shuffled the rows into this many
            # partitions; one file is then a single cheap task after the shuffle.
            keyed = hook is not None or config.primary_key or config.quality.unique
            shuffled = int(spark.conf.get("spark.sql.shuffle.partitions")) if small and keyed else 0
            kept = sized(kept_frame, output_file_count(input_bytes, fmt), len(keys), input_bytes, shuffled)
        in_place = jobs.excluding_rules(spark, FILTER_STAYS_ABOVE_TYPING) if hook is None else {}
        if not one_task:
            in_place |= jobs.whole_waves(spark, [o.size for o in listed])
        try:
            with jobs.session_settings(spark, in_place):
                write_parquet(kept, lake.uri(staging + "output/"))
            untyped = False
        except Exception as exc:  # noqa: BLE001 (all but one kind are raised again, as they came)
            if hook is not None and (failed := hook.running_failure(exc)) is not None:
                raise failed from exc
            if not (read.unsplit and malformed_record(exc)):
                raise
            untyped = True
        if untyped:
            # A record the reader could not type (usually none) stopped the read: read again with the text
            # split (the staged output is overwritten), as a text read would type and check it. Retried outside
            # the handler: the failure's message holds the record, which a later error must not chain to.
            return attempt(csv, repeats_after=repeats_after, reader_typing=reader_typing, split=True)
        counted = counted_in.get  # each `get` converts the JVM's map again (Py4J round trips)
        if hook is None and read.typed:
            summary.csv_untyped_records = int(counted["untyped"])
        if hook is None and int(counted["doubtful"]):
            # A record the reader could not type may have been split wrongly: type the whole input from text
            # (the staged output is overwritten). Rare: it takes a NUL, U+FFFF or a trailing form feed.
            return attempt(csv, repeats_after=repeats_after, reader_typing=False)
        if hook is None and later and _staged_repeats(spark, lake, staging + "output/", config):
            return attempt(csv, repeats_after=False, reader_typing=reader_typing, split=split)
        suspects = int(counted["suspects"])
        summary.rows_in = int(counted["rows_in"])
        if hook is None:
            summary.rows_kept = _staged_rows(spark, lake, staging + "output/")
            summary.rows_rejected = summary.rows_in - summary.rows_kept
        else:
            summary.rows_rejected = int(counted["rows_rejected"])
            summary.rows_kept = summary.rows_in - summary.rows_rejected
        if hook is not None:
            # The hook's result need not read all of its input, so the source's rows are counted in a
            # pass of their own: rows_in = kept + rejected + dropped by the hook.
            returned_rows = summary.rows_in
            counts = typed.agg(
                F.count(F.lit(1)), _flagged(typed, transform.REJECTED), _flagged(typed, transform.SUSPECT)
            ).first()
            source_rows, type_rejected, suspects = int(counts[0]), int(counts[1]), int(counts[2])
            summary.rows_in = source_rows
            summary.rows_rejected += type_rejected
            # Net: a hook that drops some rows and adds others (explode) shows only the difference.
            net = source_rows - type_rejected - returned_rows
            summary.rows_dropped_by_transform, summary.rows_added_by_transform = max(net, 0), max(-net, 0)
        return kept, rejected_frame, read.line_mode_guess and suspects > 0

    cached: list[DataFrame] = []
    try:
        with jobs.session_settings(spark, {**(INTERPRETED if one_task else {}), **_case_settings(fmt)}):
            return _check_and_quarantine(spark, ctx, summary, staging, attempt, ledger.manifest_rows(manifest))
    finally:
        for frame in cached:
            frame.unpersist()


def _drop_manifest(ctx: JobContext) -> dict:
    """The run's drop manifest (a `_SUCCESS` holding JSON, as the DynamoDB export writes), else {}."""
    if ctx.dataset.source_kind not in DROPPED_SOURCES or ctx.sample_dir is not None:
        return {}
    return ledger.drop_manifest(ctx.lake, ctx.naming, ctx.name, ctx.raw_run_id or ctx.run_id)


# DynamoDB types whose text is typed by inference: numbers and booleans. Any other (S, B, M, L, SS, NS, BS) is text.
_INFERRED_DYNAMODB_TYPES = frozenset({"N", "BOOL", "NULL"})


def _exported_as_text(types: dict[str, set[str]], groups: list[transform.HeaderGroup]) -> dict[str, str]:
    """{column: "string"} for each exported attribute ever seen as a string, binary, map, list or set: its text is
    its value (`"1.10"`, `"NaN"`, `"TRUE"` stay as written), whatever inference made of it."""
    text = {name for name, kinds in types.items() if kinds - _INFERRED_DYNAMODB_TYPES}
    return {
        column: "string"
        for group in groups
        for original, column in zip(group.header, group.names, strict=True)
        if original in text
    }


def _columns_named_but_absent(config: DatasetConfig, cleaned: list[str], *, rules: bool) -> list[str]:
    """`field: column, ...` for each config field naming columns the source lacks (`rules`: the primary key and
    quality rules too, which a transform hook's output is checked for instead)."""
    quality = config.quality
    fields = {"columns": list(config.columns)}
    if rules:
        fields |= {
            "primary_key": config.primary_key,
            "quality.not_null": quality.not_null,
            "quality.unique": quality.unique,
            "quality.accepted_values": list(quality.accepted_values),
        }
    return [
        f"{field}: {', '.join(sorted(set(absent)))}"
        for field, names in fields.items()
        if (absent := [c for c in names if c not in cleaned])
    ]


def _case_settings(fmt: str) -> dict[str, str]:
    """JSON keys and Parquet columns are told apart by case (`Name` and `name` are two keys): read and typed
    case-sensitively, they clean to `name` and `name_2` as CSV headers do, where Spark's default would fail
    the run on the pair. CSV headers are matched by the job's own header parsing."""
    return {} if fmt == "csv" else {"spark.sql.caseSensitive": "true"}


def _check_and_quarantine(
    spark: SparkSession,
    ctx: JobContext,
    summary: RunSummary,
    staging: str,
    attempt: Callable[[CsvOptions], tuple[DataFrame, Callable[[], DataFrame], bool]],
    said_rows: int | None = None,
) -> str:
    """`said_rows`: the rows the drop's manifest says it holds (the DynamoDB export's count), if it says."""
    naming, lake, config = ctx.naming, ctx.lake, ctx.dataset
    with summary.step("transform"):
        kept, rejected, reread = attempt(config.csv)
        if reread:
            # Line by line, a quote showed up in a value or a malformed row: the file may hold quoted line
            # breaks. Read it again whole; the staged output above is overwritten.
            summary.csv_read_again_multiline = True
            kept, rejected, _ = attempt(config.csv.model_copy(update={"multiline": True}))
    summary.schema = [{"name": f.name, "type": f.dataType.simpleString()} for f in kept.schema.fields]
    if said_rows is not None and said_rows != summary.rows_in:
        files = ", ".join(summary.raw_keys) or naming.raw_prefix(ctx.name, ctx.raw_run_id or ctx.run_id)
        raise JobFailed(
            f"the run read {summary.rows_in} rows from {files}, but its {ledger.DROP_MARKER} says the export wrote "
            f"{said_rows}: a row was split or lost between the export and the read (a line break or carriage "
            "return the writer did not quote?), so its values cannot be trusted. Nothing was published; export "
            "the table again (a new run id) and report the file"
        )

    if not summary.rows_rejected:
        # An earlier attempt of this run id may have quarantined rows: they are not this run's.
        lake.delete_prefix(naming.quarantine_prefix(ctx.name, ctx.run_id))
    if summary.rows_rejected:
        with summary.step("quarantine"):
            quarantine = naming.quarantine_prefix(ctx.name, ctx.run_id)
            few = summary.rows_rejected <= FEW_REJECTED
            observed = Observation("quarantine")
            rejected_frame = rejected()
            if few:
                # The reasons ride along with the write (no job of their own): every row's `a; b`, joined
                # with the same separator, splits into the same reasons as the rows one by one.
                rejected_frame = rejected_frame.observe(
                    observed, F.array_join(F.collect_list(transform.REJECT_REASON), "; ").alias("reasons")
                )
            write_parquet(rejected_frame.coalesce(1), lake.uri(quarantine))
            if few:
                reasons = Counter(observed.get["reasons"].split("; "))
            else:
                written = spark.read.parquet(lake.uri(quarantine))
                counts = (
                    written.select(F.explode(F.split(transform.REJECT_REASON, "; ")).alias("reason"))
                    .groupBy("reason")
                    .count()
                    .collect()
                )
                reasons = Counter({r["reason"]: int(r["count"]) for r in counts})
            summary.rejected_by_reason = dict(sorted(reasons.items()))

    if summary.rows_in == 0:
        raise JobFailed("the source has no rows; bronze keeps its previous data")
    kept_or_rejected = summary.rows_kept + summary.rows_rejected
    if kept_or_rejected == 0:
        raise JobFailed(
            f"the transform hook {summary.transform_hook} returned no rows of {summary.rows_in}; "
            "bronze keeps its previous data"
        )
    if summary.rows_kept == 0 and config.load_mode == "full":
        # Even where the quality budget allows every row to be rejected: a kill-and-fill with nothing to
        # fill would replace the table with an empty one.
        dropped = summary.rows_dropped_by_transform
        hooked = f" (of {summary.rows_in} rows in, the transform hook dropped {dropped})" if dropped else ""
        raise JobFailed(
            f"every one of the {summary.rows_rejected} rows the checks saw was rejected{hooked}; bronze keeps its "
            f"previous data. See {naming.quarantine_prefix(ctx.name, ctx.run_id)} for the reasons and fix the source "
            "or the config."
        )
    fraction = summary.rows_rejected / kept_or_rejected
    limit = config.quality.max_rejected_fraction
    if fraction > limit:
        top = ", ".join(f"{reason} ({n})" for reason, n in list(summary.rejected_by_reason.items())[:5])
        raise JobFailed(
            f"{summary.rows_rejected} of {kept_or_rejected} rows rejected ({fraction:.1%}), above "
            f"quality.max_rejected_fraction {limit:.1%}; bronze keeps its previous data. Reasons: {top}. "
            f"See {naming.quarantine_prefix(ctx.name, ctx.run_id)} and fix the source or the config."
        )
    return staging + "output/"


def bronze_target(ctx: JobContext) -> Target:
    """The dataset's bronze table: its folder, its catalog name, how a run replaces its rows."""
    naming = ctx.naming
    return Target(
        layer="bronze",
        prefix=naming.bronze_prefix(ctx.name),
        identifier=iceberg.bronze_identifier(naming, ctx.name),
        journal="bronze",
        about={"layer": "bronze"},
        load_mode=ctx.dataset.load_mode,
        partition_by=tuple(ctx.dataset.partition_by),
        raw_run_id=ctx.raw_run_id,
    )


def run_bronze(spark: SparkSession, ctx: JobContext) -> RunSummary:
    """One bronze run, start to finish; writes runs/{dataset}/run_id=....json whatever happens.

    Raises ledger.RunRefused (nothing written) when another run of the dataset holds the lock or
    the given run id already names a run that succeeded.
    """
    naming = ctx.naming
    publisher = publisher_for(ctx)

    def new_summary() -> RunSummary:
        return RunSummary(
            dataset=ctx.name,
            run_id=ctx.run_id,
            layer="bronze",
            source="sample" if ctx.sample_dir else source_description(ctx.dataset),
            raw_run_id=ctx.raw_run_id,
            output_prefix=naming.bronze_prefix(ctx.name),
            crawler_command=(
                f"aws glue start-crawler --name {naming.crawler('bronze', ctx.name)}" if publisher.needs_crawler else ""
            ),
            table_format=publisher.table_format,
        )

    target = bronze_target(ctx)

    def work(summary: RunSummary, entry: str) -> None:
        try:
            publisher.check_layout(ctx, target)  # before anything is fetched: a folder of the other format
            last = previous_run(ctx, summary.notes)
            with summary.step("fetch"):
                summary.raw_keys = land_raw(ctx, summary)
            with publisher.writing(spark):
                # What the last run learned of the files: records the reader could not type are read with the
                # split at once, instead of after a read planned for a clean file (read twice).
                split_first = bool(last and last.get("csv_untyped_records"))
                staged = transform_and_check(spark, ctx, summary.raw_keys, summary, split_first)
            diff = schema_diff(last.get("schema") if last else None, summary.schema)
            summary.schema_change = diff
            summary.schema_changed = any(diff.values()) if diff else None
            summary.status = "publishing"
            with summary.step("publish"):
                done = publisher.publish(spark, ctx, summary, entry, staged, target)
            summary.output_files, summary.output_bytes = done.files, done.bytes
            if done.commit:
                summary.iceberg = done.commit
            summary.status = "succeeded"
        except HookError as exc:
            summary.status, summary.error = "failed", f"{exc}; bronze keeps its previous data"
            summary.traceback = exc.trace
        except fetch.FetchError as exc:
            summary.status, summary.error = "failed", f"fetch failed: {exc}; bronze keeps its previous data"

    return guarded_run(
        ctx,
        "bronze",
        new_summary,
        work,
        staging=naming.staging_prefix("bronze", ctx.name, ctx.run_id),
        expected=(JobFailed, iceberg.IcebergError, LakeError),
        kept="Bronze keeps its previous data.",
    )


def run_raw(ctx: JobContext) -> RunSummary:
    """`dw run --layer raw`: fetch only, under the same lock and ledger rules as the other layers."""

    def new_summary() -> RunSummary:
        return RunSummary(dataset=ctx.name, run_id=ctx.run_id, layer="raw", source=source_description(ctx.dataset))

    def work(summary: RunSummary, entry: str) -> None:
        with summary.step("fetch"):
            summary.raw_keys = land_raw(ctx, summary)
        summary.status = "succeeded"

    return guarded_run(ctx, "raw", new_summary, work, expected=(JobFailed, fetch.FetchError))


def input_warnings(summary: RunSummary) -> list[str]:
    """What reading the input decided that a person should know: renamed columns, columns a file lacks."""
    lines = []
    if summary.renamed_columns:
        renames = ", ".join(f"{original!r} -> {name}" for original, name in summary.renamed_columns.items())
        lines.append(
            f"warning: source columns renamed (two headers clean to one name, a header takes a name the job "
            f"adds, or a header is empty): {renames}"
        )
    for file, columns in summary.missing_columns.items():
        lines.append(f"warning: {file} has no column(s) {', '.join(columns)}; they are NULL in its rows")
    if summary.csv_read_again_multiline:
        lines.append(
            "note: the CSV was read twice: a quote inside a value or a malformed row meant a quoted line break "
            "may have split a row, so it was read again with multiline on; set csv.multiline to true (or false "
            "if values never hold line breaks) to read it once"
        )
    return lines


def describe_outcome(summary: RunSummary) -> str:
    """What a person reads at the end of a run: counts, the crawler command, the schema news."""
    notes = "".join(f"{line}\n" for line in housekeeping(summary))
    if summary.status != "succeeded":
        failed = f"{notes}{summary.dataset} {summary.layer} run {summary.run_id} failed: {summary.error}"
        return "\n".join([failed, *input_warnings(summary)])
    dropped = ""
    if summary.transform_hook and summary.rows_added_by_transform:
        dropped = f", {summary.rows_added_by_transform} more made by the transform hook"
    elif summary.transform_hook:
        dropped = f", {summary.rows_dropped_by_transform} dropped by the transform hook"
    lines = [
        f"{summary.dataset} bronze run {summary.run_id} succeeded: {summary.rows_in} rows in, "
        f"{summary.rows_kept} kept, {summary.rows_rejected} rejected{dropped}; "
        f"{summary.output_files} file(s), {summary.output_bytes} bytes at {summary.output_prefix}",
    ]
    if summary.table_format == "iceberg":
        commit = summary.iceberg
        lines.append(
            f"committed snapshot {commit.get('snapshot_id')} of the Iceberg table {commit.get('table')} "
            f"({summary.dataset}: load_mode {commit.get('load_mode', '') or 'see config'}; "
            f"{commit.get('files_added')} file(s) added, {commit.get('files_removed')} removed); "
            "no crawler is needed: the job keeps the catalog table itself"
        )
        if commit.get("schema_change", {}).get("added") or commit.get("schema_change", {}).get("retyped"):
            lines.append(f"schema evolved: {commit['schema_change']}")
        if commit.get("expiry_error"):
            lines.append(
                f"warning: the snapshot is committed, but expiring old snapshots failed ({commit['expiry_error']}); "
                "old snapshots and unused files stay until a later run's expiry succeeds"
            )
        return notes + "\n".join([*lines, *input_warnings(summary)])
    if summary.schema_changed is None:
        lines.append("first bronze run (no earlier schema): run the crawler to create the table:")
    elif summary.schema_changed:
        lines.append(f"schema changed since the last run ({summary.schema_change}): run the crawler:")
    else:
        lines.append("schema unchanged since the last run; the crawler is only needed for a new table:")
    lines.append(f"  {summary.crawler_command}")
    return notes + "\n".join([*lines, *input_warnings(summary)])


def plan(ctx: JobContext) -> list[str]:
    """`--dry-run`: every name and path the run would use, and what the source looks like. Writes nothing."""
    naming, name, config = ctx.naming, ctx.name, ctx.dataset
    run_id = ctx.run_id
    lines = [f"plan for {name} bronze run {run_id} (dry run: nothing is written)"]
    refused: list[str] = []  # what the real run would stop at, after the plan
    dropped = config.source_kind in DROPPED_SOURCES
    if ctx.raw_run_id:
        prefix = naming.raw_prefix(name, ctx.raw_run_id)
        files = ctx.lake.data_files(prefix)
        lines.append(f"  source: kept raw run {prefix} ({len(files)} file(s), {sum(f.size for f in files)} bytes)")
        if not files:
            refused.append(f"no raw files under {prefix}: pick a run id that `dw runs {name}` lists")
        else:
            try:
                ledger.raw_run_files(ctx.lake, naming, name, ctx.raw_run_id, dropped=dropped)
            except ledger.IncompleteRawRun as exc:
                refused.append(str(exc))
    elif ctx.sample_dir is not None:
        files = [p for p in sorted(ctx.sample_dir.glob("*")) if p.is_file()]
        sizes = ", ".join(f"{p.name} {p.stat().st_size} bytes" for p in files) or "none: add a sample"
        lines.append(f"  source: sample {ctx.sample_dir} ({sizes})")
    elif config.source_kind == "source_url":
        probe = fetch.probe_source(
            config.source_url,
            dataset_dir=ctx.dataset_dir,
            policy=ctx.policy,
            lake=ctx.lake,
            deployed_prefix=naming.etl_prefix(name),
        )
        size = f"{probe.size} bytes" if probe.size is not None else "size unknown"
        state = "reachable" if probe.reachable else "NOT reachable"
        lines.append(f"  source: {source_description(config)} ({state}, {size}; {probe.detail})")
    elif config.source_kind == "api_endpoints":
        for endpoint in config.api_endpoints or []:
            probe = fetch.probe_source(endpoint.url, policy=ctx.policy)
            state = "reachable" if probe.reachable else "NOT reachable"
            auth, sent = endpoint.auth, ""
            if auth is not None:
                place = f"query parameter {auth.query_param}" if auth.query_param else f"header {auth.header_name}"
                sent = f"; secret {auth.secret} as {place}"
            lines.append(f"  source: API {endpoint.url.split('?')[0]} ({state}; paging {endpoint.paging.kind}{sent})")
    else:
        files = ctx.lake.data_files(naming.raw_prefix(name, run_id))
        lines.append(
            f"  source: {source_description(config)}, files under {naming.raw_prefix(name, run_id)}: {len(files)}"
        )
        if files:
            try:
                ledger.drop_files(ctx.lake, naming, name, run_id)
            except ledger.IncompleteRawRun as exc:
                refused.append(str(exc))
    lines += [
        f"  raw:        {ctx.lake.uri(naming.raw_prefix(name, run_id))}",
        f"  staging:    {ctx.lake.uri(naming.staging_prefix('bronze', name, run_id))}",
        f"  bronze:     {ctx.lake.uri(naming.bronze_prefix(name))} -> table "
        f"{naming.database('bronze')}.{table_name(name)}",
        f"  quarantine: {ctx.lake.uri(naming.quarantine_prefix(name, run_id))}",
        f"  summary:    {ctx.lake.uri(naming.run_summary_key(name, run_id))}",
        f"  Glue job {naming.job('bronze', name)}, "
        + (
            "no crawler (the job commits the Iceberg table, load_mode " + config.load_mode + ")"
            if iceberg.is_iceberg(ctx.core, config)
            else f"crawler {naming.crawler('bronze', name)}"
        )
        + f", pipeline {naming.state_machine(name)}",
        f"  columns declared: {len(config.columns)}, primary key: {', '.join(config.primary_key) or 'none'}, "
        f"max rejected fraction: {config.quality.max_rejected_fraction}",
    ]
    try:
        publisher_for(ctx).check_layout(ctx, bronze_target(ctx))
    except LayoutError as exc:
        lines.append(f"  REFUSED: the run would stop before fetching: {exc}")
    lines += [f"  REFUSED: the run would stop before reading its input: {why}" for why in refused]
    hook_file = ctx.dataset_dir / TRANSFORM_HOOK if ctx.dataset_dir is not None else None
    if hook_file is not None and hook_file.is_file():
        lines.append(f"  transform hook: {hook_file} (after typing, before the checks)")
    return lines
