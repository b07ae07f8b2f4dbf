"""What the Glue entry points share: their arguments, the deployed job config, the session.

The stack passes exactly the arguments named here (a test checks both sides agree); on
Glue they are read with getResolvedOptions by the entry point, locally by `parse_local`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dwlib.config import CoreConfig, DatasetConfig
from dwlib.lake import Lake
from dwlib.naming import Naming, check_run_id, new_run_id

if TYPE_CHECKING:  # imported where a session is made: `dw query` and `dw validate` start without Spark
    from pyspark.sql import SparkSession

# Glue requires every resolved option to be present, so optional ones carry a sentinel.
NONE = "none"
AUTO = "auto"
BRONZE_ARGS = ("dataset", "lake_uri", "run_id", "raw_run_id", "dry_run", "force_dry_run")
GOLD_ARGS = ("dataset", "lake_uri", "run_id", "dry_run", "force_dry_run")
ARG_DEFAULTS = {"run_id": AUTO, "raw_run_id": NONE, "dry_run": "false", "force_dry_run": "false"}
# Locally the environment switch; on Glue the stack sets the job argument --force_dry_run
# (`cdk deploy -c force_dry_run=true`), because Glue passes job arguments, not environment variables.
FORCE_DRY_RUN = "DW_FORCE_DRY_RUN"


def parse_local(names: tuple[str, ...], argv: list[str]) -> dict[str, str]:
    """The local twin of awsglue.utils.getResolvedOptions for the same `--name value` pairs."""
    parser = argparse.ArgumentParser(description="Run a pp-dw Glue job locally with Glue's arguments.")
    for name in names:
        if name in ARG_DEFAULTS:
            parser.add_argument(f"--{name}", default=ARG_DEFAULTS[name])
        else:
            parser.add_argument(f"--{name}", required=True)
    known, _ = parser.parse_known_args(argv)  # Glue adds its own --JOB_ID etc.; ignore them like it does
    return vars(known)


def default_arguments(
    dataset: str, lake_uri: str, names: tuple[str, ...], *, force_dry_run: bool = False
) -> dict[str, str]:
    """The `--name: value` defaults the stack gives a job (the pipeline overrides run ids and dry_run)."""
    values = {"dataset": dataset, "lake_uri": lake_uri, **ARG_DEFAULTS}
    if force_dry_run:
        values["force_dry_run"] = "true"
    return {f"--{name}": values[name] for name in names}


def _true(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("true", "1", "yes")


def is_dry_run(args: dict[str, str]) -> bool:
    """A dry run when asked (--dry_run), or forced by the deployment (--force_dry_run) or the environment."""
    return (
        _true(args.get("dry_run"))
        or _true(args.get("force_dry_run"))
        or os.environ.get(FORCE_DRY_RUN, "") not in ("", "0")
    )


def resolve_run_id(value: str | None) -> str:
    return new_run_id() if value in (None, "", AUTO) else check_run_id(value)


def optional(value: str | None) -> str | None:
    return None if value in (None, "", NONE) else value


def job_config_document(core: CoreConfig, dataset: DatasetConfig, stage: str = "") -> dict:
    """What the stack deploys to etl/{dataset}/job_config.json (with the stage, so jobs print its names)."""
    document = {
        "core": core.model_dump(mode="json", by_alias=True, exclude_none=True),
        "dataset": dataset.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return {**document, "stage": stage} if stage else document


class JobConfig(NamedTuple):
    """What a job runs with: the configs, the checkout's dataset folder (None when deployed), the stage."""

    core: CoreConfig
    dataset: DatasetConfig
    dataset_dir: Path | None = None  # set only when the config came from a checkout's datasets/ folder
    stage: str = ""  # the deployment's `-c stage=…`, as the stack wrote it into the document


class JobSetupError(RuntimeError):
    """The job cannot start: what is missing and what to run first, as one paragraph."""


def load_job_config(lake: Lake, dataset: str, naming: Naming | None = None) -> JobConfig:
    """Read the deployed job config, once; the key does not depend on the prefixes."""
    key = (naming or Naming("x", "x")).job_config_key(dataset)
    document = lake.read_json(key)
    return JobConfig(
        CoreConfig.model_validate(document["core"]),
        DatasetConfig.model_validate(document["dataset"]),
        stage=str(document.get("stage", "")),
    )


# glue_jobs/dwlib/jobs.py -> the checkout; inside dwlib.zip on Glue there is no such folder.
CHECKOUT = Path(__file__).resolve().parents[2]


def find_job_config(lake: Lake, dataset: str, checkout: Path | None = None) -> JobConfig:
    """The deployed job config, else (a local lake run from a checkout) the project's own datasets/ folder.

    Returns the configs and the dataset folder when they came from the checkout (relative sources,
    transform.py and gold/*.sql are then read from there).
    """
    key = Naming("x", "x").job_config_key(dataset)
    if lake.exists(key):
        return load_job_config(lake, dataset)
    root = checkout or CHECKOUT
    if not lake.root_uri.startswith("s3://") and (root / "config.json").is_file():
        from dwlib.config import ConfigError, load_project

        try:
            project = load_project(root)
        except ConfigError as exc:
            raise JobSetupError(
                f"{lake.root_uri}/{key} does not exist and the project at {root} has configuration problems "
                f"({'; '.join(map(str, exc.problems[:3]))}): run `dw validate` and fix them first"
            ) from None
        if dataset in project.datasets:
            return JobConfig(project.core, project.datasets[dataset], project.dataset_dir(dataset))
        known = ", ".join(project.datasets) or "none"
        raise JobSetupError(
            f"no dataset {dataset!r}: {lake.root_uri}/{key} does not exist and {root}/datasets/ has no "
            f"{dataset}/config.json (datasets there: {known}); check --dataset"
        )
    raise JobSetupError(
        f"{lake.root_uri}/{key} does not exist: the job reads its dataset's configuration from there. "
        f"On AWS the dataset stack deploys it (`make deploy`); for a local lake, run "
        f"`dw run {dataset} --lake {lake.root_uri}` once from the project checkout, which writes it, "
        "or run this script from the checkout so it reads datasets/ directly."
    )


def configure(spark: SparkSession) -> SparkSession:
    """Session settings the jobs rely on, on Glue and locally alike."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # A date that does not match its format becomes null (and the row is rejected), not an error.
    spark.conf.set("spark.sql.legacy.timeParserPolicy", "CORRECTED")
    spark.conf.set("spark.sql.parquet.compression.codec", "zstd")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "static")
    # Dates are written as they are, in the proleptic Gregorian calendar Athena and DuckDB read: Spark 3.5's
    # default refuses to write one before 1582 (a placeholder such as 0001-01-01 failed the whole run) rather
    # than guess at Spark 2's hybrid calendar, which no reader of this lake uses. Not the INT96 timestamps of
    # Parquet tables: the same setting for them cost about 10 % of a bronze run's CPU (make bench, 300 MB),
    # so a timestamp before 1900 still fails the run, with errors.MEANINGS saying why.
    spark.conf.set("spark.sql.parquet.datetimeRebaseModeInWrite", "CORRECTED")
    # No Parquet summary files (_metadata, _common_metadata): Spark's default since SPARK-15719, pinned
    # here so a cluster default cannot turn them on. They cost a footer read per file at commit and
    # are stale the moment a file changes; see README, "Parquet summary files".
    spark.conf.set(PARQUET_SUMMARY_LEVEL, "NONE")
    # No constraint propagation: the optimizer derives every constraint each projection implies, and a bronze
    # plan checks each column of a wide file through several projections (typing, quarantine reasons, quality
    # rules), so the constraints grow combinatorially: a 22-column, 4.7 KB CSV spent minutes planning and ran
    # the driver out of heap. It only infers extra filters (IsNotNull on join keys and the like); results
    # are the same without it.
    spark.conf.set("spark.sql.constraintPropagation.enabled", "false")
    return spark


PARQUET_SUMMARY_LEVEL = "parquet.summary.metadata.level"


def end_spark_jobs(spark: SparkSession, wait_seconds: float = 20) -> None:
    """Cancel the session's jobs and wait (a while) until none runs: a run stopped by a signal deletes its staging
    folder next, which a task still writing would fill again."""
    context = spark.sparkContext
    context.cancelAllJobs()
    tracker, deadline = context.statusTracker(), time.monotonic() + wait_seconds
    while tracker.getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.1)


QUIET_LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
appender.console.layout.alwaysWriteExceptions = false
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = off
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = off
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = off
logger.writer.name = org.apache.spark.sql.execution.datasources.FileFormatWriter
logger.writer.level = off
"""
# A failed task reaches the job as an exception, which the job sums up in one paragraph (and keeps
# whole in the run ledger); the executor's own report of it would only print the Java stack again.


def _quiet_logging() -> str:
    """A log4j2 config that keeps Spark's start-up chatter out of the terminal (errors still show)."""
    # Named by its content: checkouts with another version of it never overwrite each other's.
    digest = hashlib.sha256(QUIET_LOG4J.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"pp-dw-log4j2-{digest}.properties"
    if not path.exists() or path.read_text() != QUIET_LOG4J:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(QUIET_LOG4J)
        os.replace(tmp, path)  # a JVM starting meanwhile reads the whole file, never half of it
    return f"-Dlog4j.configurationFile=file:{path} -Duser.timezone=UTC"


@contextlib.contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """The session with these SQL settings while the block runs, then as it was (unset if it was unset)."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


EXCLUDED_RULES = "spark.sql.optimizer.excludedRules"


def excluding_rules(spark: SparkSession, rules: tuple[str, ...]) -> dict[str, str]:
    """`session_settings` that leave these optimizer rules out, beside any the session already leaves out."""
    excluded = [r for r in (spark.conf.get(EXCLUDED_RULES, None) or "").split(",") if r.strip()]
    return {EXCLUDED_RULES: ",".join([*excluded, *[r for r in rules if r not in excluded]])}


MIN_PARTITIONS = "spark.sql.files.minPartitionNum"
MAX_PARTITION_BYTES = "spark.sql.files.maxPartitionBytes"
# How far above Spark's default split size (128 MB) `whole_waves` may go to save a wave of tasks.
WAVE_STRETCH = 1.25


def whole_waves(spark: SparkSession, sizes: list[int]) -> dict[str, str]:
    """`session_settings` under which a read of files of these sizes (bytes) runs in as few whole waves of tasks
    as it can.

    Spark cuts a read into splits of at most `spark.sql.files.maxPartitionBytes` (128 MiB), and into smaller ones
    only while the input (each file counted with `spark.sql.files.openCostInBytes` more) is below that size
    times the cores. Just above it, the last split runs alone while the other cores wait: a 284 MiB file on 2
    cores is read as 128, 128 and 28 MiB, three tasks in two waves. Here the split size is the input over the
    cores times the waves it needs (`spark.sql.files.minPartitionNum`, which Spark divides the input by), so
    every wave is full; and, unless the session sets `maxPartitionBytes` itself, a split may be up to a quarter
    above it where that saves a wave: that file is then read as two splits of 142 MiB, in one wave. A bronze run
    of it (the bench's 3 M-row CSV) took 6.29 s so, 6.60 s in two full waves (4 splits of 71 MiB) and 6.65 s as
    Spark cuts it (bench/README.md). Nothing where the input fits one wave, or where the session sets
    `minPartitionNum`.
    """
    conf = spark._jsparkSession.sessionState().conf()  # the sizes as Spark parses them ("128MB")
    if conf.filesMinPartitionNum().isDefined():
        return {}
    cores = int(spark._jsparkSession.leafNodeDefaultParallelism())  # what Spark divides the input by
    cap, open_cost = int(conf.filesMaxPartitionBytes()), int(conf.filesOpenCostInBytes())
    total = sum(size + open_cost for size in sizes)
    if cores < 1 or cap < 1 or total <= cores * cap:
        return {}
    stretched = cap if conf.contains(MAX_PARTITION_BYTES) else int(cap * WAVE_STRETCH)
    waves = -(-total // (cores * stretched))
    split = -(-total // (cores * waves))
    settings = {MIN_PARTITIONS: str(cores * waves)}
    if split > cap:
        settings[MAX_PARTITION_BYTES] = str(split)
    return settings


# A fresh JVM spends most of a small run's CPU in HotSpot's optimizing compiler (C2), compiling Spark's
# planner, Janino and the executor for a speed the run ends too soon to use: on the demo sample (243 rows)
# the driver's CPU went from 32 s to 17 s with the quick compiler (C1) alone, and a bare read-and-write
# script's from 20 s to 12 s. An input of a few MB is done before C2 would pay back; bigger inputs keep it.
SHORT_RUN_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
SHORT_RUN_INPUT_BYTES = 4 * 1024**2
# HotSpot leaves a method of more than 8,000 bytes of bytecode to its interpreter, whatever runs through it.
# Spark's generated code for a wide bronze projection (a check per declared column) passes that size: on the
# 300 MB orders CSV the kept write took 17 s, 30.8 s with a primary key (its rule grows the method), and
# 13.5 s / 14.6 s with such methods compiled. Every local session compiles them.
COMPILE_HUGE_METHODS = "-XX:-DontCompileHugeMethods"


def local_session(app_name: str = "pp-dw", cores: str = "*", short_run: bool = False) -> SparkSession:
    """Spark local mode as Glue 5.1 would run the same code (Spark 3.5, UTC, no UI).

    `short_run`: the caller knows the input is at most SHORT_RUN_INPUT_BYTES (e.g. `dw run --sample`):
    the JVM starts with SHORT_RUN_JAVA_OPTIONS. JVM options count only when this starts the JVM.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    java_options = f"{_quiet_logging()} {COMPILE_HUGE_METHODS}"
    if short_run:
        java_options = f"{java_options} {SHORT_RUN_JAVA_OPTIONS}"
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", os.environ.get("DW_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.adaptive.enabled", "true")
        # No .crc or _SUCCESS litter in the local lake: what DuckDB and people read stays clean.
        .config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
        .config("spark.hadoop.fs.file.impl.disable.cache", "true")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.executor.extraJavaOptions", java_options)
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return configure(spark)
