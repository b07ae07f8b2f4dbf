"""What the Glue entry points share: their arguments, the deployed job config, the session.

The stack passes exactly the arguments named here (a test checks both sides agree); on
Glue they are read with getResolvedOptions by the entry point, locally by `parse_local`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dwlib.config import CoreConfig, DatasetConfig
from dwlib.lake import Lake
from dwlib.naming import Naming, check_run_id, new_run_id

if TYPE_CHECKING:  # imported where a session is made: `dw query` and `dw validate` start without Spark
    from pyspark.sql import SparkSession

# Glue requires every resolved option to be present, so optional ones carry a sentinel.
NONE = "none"
AUTO = "auto"
BRONZE_ARGS = ("dataset", "lake_uri", "run_id", "raw_run_id", "dry_run")
GOLD_ARGS = ("dataset", "lake_uri", "run_id", "dry_run")
ARG_DEFAULTS = {"run_id": AUTO, "raw_run_id": NONE, "dry_run": "false"}
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


def default_arguments(dataset: str, lake_uri: str, names: tuple[str, ...]) -> dict[str, str]:
    """The `--name: value` defaults the stack gives a job (the pipeline overrides run ids)."""
    values = {"dataset": dataset, "lake_uri": lake_uri, **ARG_DEFAULTS}
    return {f"--{name}": values[name] for name in names}


def is_dry_run(args: dict[str, str]) -> bool:
    return args.get("dry_run", "false").lower() == "true" or os.environ.get(FORCE_DRY_RUN, "") not in ("", "0")


def resolve_run_id(value: str | None) -> str:
    return new_run_id() if value in (None, "", AUTO) else check_run_id(value)


def optional(value: str | None) -> str | None:
    return None if value in (None, "", NONE) else value


def job_config_document(core: CoreConfig, dataset: DatasetConfig) -> dict:
    """What the stack deploys to etl/{dataset}/job_config.json."""
    return {
        "core": core.model_dump(mode="json", by_alias=True, exclude_none=True),
        "dataset": dataset.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def load_job_config(lake: Lake, dataset: str, naming: Naming | None = None) -> tuple[CoreConfig, DatasetConfig]:
    """Read the deployed job config; the key does not depend on the prefixes."""
    key = (naming or Naming("x", "x")).job_config_key(dataset)
    document = lake.read_json(key)
    return CoreConfig.model_validate(document["core"]), DatasetConfig.model_validate(document["dataset"])


def configure(spark: SparkSession) -> SparkSession:
    """Session settings the jobs rely on, on Glue and locally alike."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # A date that does not match its format becomes null (and the row is rejected), not an error.
    spark.conf.set("spark.sql.legacy.timeParserPolicy", "CORRECTED")
    spark.conf.set("spark.sql.parquet.compression.codec", "zstd")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "static")
    return spark


QUIET_LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


def _quiet_logging() -> str:
    """A log4j2 config that keeps Spark's start-up chatter out of the terminal (errors still show)."""
    path = Path(tempfile.gettempdir()) / "pp-dw-log4j2.properties"
    if not path.exists() or path.read_text() != QUIET_LOG4J:
        path.write_text(QUIET_LOG4J)
    return f"-Dlog4j.configurationFile=file:{path} -Duser.timezone=UTC"


def local_session(app_name: str = "pp-dw", cores: str = "*") -> SparkSession:
    """Spark local mode as Glue 5.1 would run the same code (Spark 3.5, UTC, no UI)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    java_options = _quiet_logging()
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
