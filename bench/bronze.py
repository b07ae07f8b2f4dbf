"""Bronze: `run_bronze` on a LocalLake versus a bare Spark job and DuckDB, on the same CSV.

All Spark runs share one child process and one `local_session()`, so the bronze job and its
floor see the same JVM, the same session config and the same warm page cache. Each figure is
warmed up once on a small slice of the CSV before the timed runs.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import MB, ROOT, WORK, children_cpu_s, log, progress, run_worker, stats
from bench.data import COLUMNS, CSV_NAME, dataset_config, duckdb_columns, head_csv, link_or_copy, orders_csv

WARMUP_BYTES = 8 * MB  # DuckDB's warm-up input; the Spark jobs warm up on the whole CSV


# ------------------------------------------------------------------ parent


def measure(size_mb: float, repeat: int, ablation: bool) -> dict[str, Any]:
    csv, csv_bytes, rows = orders_csv(size_mb)
    folder = WORK / "bronze"
    shutil.rmtree(folder, ignore_errors=True)
    dataset_dir = folder / "dataset"
    link_or_copy(csv, dataset_dir / CSV_NAME)
    warmup_dir = folder / "warmup"
    head_csv(csv, warmup_dir / CSV_NAME, WARMUP_BYTES)
    log(f"bronze: {csv_bytes / MB:.1f} MB, {rows:,} rows, {repeat} run(s) each of bronze, bare Spark and DuckDB")
    args = {
        "dataset_dir": str(dataset_dir),
        "warmup_dir": str(warmup_dir),
        "folder": str(folder),
        "repeat": repeat,
        "rows": rows,
        "ablation": ablation,
    }
    raw = run_worker("bronze", args, timeout=3600)
    shutil.rmtree(folder, ignore_errors=True)

    bronze_s = [r["seconds"] for r in raw["bronze"]]
    pk_s = [r["seconds"] for r in raw.get("bronze_pk", [])]
    bare_s = [r["seconds"] for r in raw["bare"]]
    duck_s = [r["seconds"] for r in raw["duckdb"]]
    last = raw["bronze"][-1]
    steps = {name: stats([r["steps"].get(name, 0.0) for r in raw["bronze"]], "s") for name in last["steps"]}
    return {
        "input": {"csv_bytes": csv_bytes, "csv_mb": round(csv_bytes / MB, 1), "rows": rows, "columns": len(COLUMNS)},
        "bronze_s": stats(bronze_s, "s"),
        "bronze_pk_s": stats(pk_s, "s"),
        "bare_spark_s": stats(bare_s, "s"),
        "bronze_cpu_s": stats([r["cpu_s"] for r in raw["bronze"]], "s"),
        "bronze_pk_cpu_s": stats([r["cpu_s"] for r in raw.get("bronze_pk", [])], "s"),
        "bare_spark_cpu_s": stats([r["cpu_s"] for r in raw["bare"]], "s"),
        "duckdb_s": stats(duck_s, "s"),
        "bronze_steps_s": steps,
        "bronze_rows_per_s": stats([rows / s for s in bronze_s], "rows/s", 0),
        "bronze_mb_per_s": stats([csv_bytes / MB / s for s in bronze_s], "MB/s", 2),
        "bare_spark_mb_per_s": stats([csv_bytes / MB / s for s in bare_s], "MB/s", 2),
        "duckdb_mb_per_s": stats([csv_bytes / MB / s for s in duck_s], "MB/s", 2),
        "bytes": {
            "source_csv": csv_bytes,
            "bronze": last["bytes"],
            "bronze_files": last["files"],
            "bare_spark": raw["bare"][-1]["bytes"],
            "bare_spark_files": raw["bare"][-1]["files"],
            "duckdb": raw["duckdb"][-1]["bytes"],
            "duckdb_files": 1,
        },
        "warmup_s": raw["warmup"],
        "ablation_s": raw.get("ablation", {}),
        "iceberg_s": raw.get("iceberg", {}),
        "ablation_errors": raw.get("ablation_errors", {}),
        "spark_session": raw["session"],
    }


# ------------------------------------------------------------------ child


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith(("_", ".")))


def _parquet_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def work(args: dict[str, Any]) -> dict[str, Any]:
    import duckdb
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from dwlib import transform
    from dwlib.bronze import JobContext, run_bronze
    from dwlib.config import DatasetConfig, load_core_config
    from dwlib.jobs import local_session
    from dwlib.lake import LocalLake

    folder = Path(args["folder"])
    dataset_dir, warmup_dir = Path(args["dataset_dir"]), Path(args["warmup_dir"])
    lake = LocalLake(folder / "lake")
    core = load_core_config(ROOT / "config.json")
    config = DatasetConfig.model_validate(dataset_config())
    spark = local_session("pp-dw-bench")

    def cpu_s() -> float:
        """CPU seconds (user + system) of Spark's JVM (this worker's child) and of this interpreter (the
        driver's own work: the key check, the footers, the ledger): what a run costs the machine, which a
        neighbour's load moves far less than the wall time."""
        return children_cpu_s() + time.process_time()

    session = {
        key: spark.conf.get(key, None)
        for key in ("spark.master", "spark.driver.memory", "spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled")
    }
    session["default_parallelism"] = spark.sparkContext.defaultParallelism
    spark_types = {
        "bigint": T.LongType(),
        "string": T.StringType(),
        "date:yyyyMMdd": T.DateType(),
        "decimal(12,2)": T.DecimalType(12, 2),
        "int": T.IntegerType(),
        "boolean": T.BooleanType(),
    }
    schema = T.StructType([T.StructField(name, spark_types[ctype]) for _, name, ctype, _, _ in COLUMNS])
    runs = iter(range(10_000))

    def run_id() -> str:
        return (datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=next(runs))).strftime("%Y%m%dT%H%M%SZ")

    def bronze(source_dir: Path, dataset: DatasetConfig = config) -> dict[str, Any]:
        shutil.rmtree(lake.path("raw"), ignore_errors=True)  # keep the disk to one raw copy
        ctx = JobContext(core=core, dataset=dataset, lake=lake, run_id=run_id(), dataset_dir=source_dir)
        started, cpu = time.perf_counter(), cpu_s()
        summary = run_bronze(spark, ctx)
        seconds, cpu = time.perf_counter() - started, cpu_s() - cpu
        if summary.status != "succeeded":
            raise RuntimeError(f"bronze run failed: {summary.error}\n{summary.traceback or ''}")
        return {
            "seconds": seconds,
            "cpu_s": cpu,
            "rows_in": summary.rows_in,
            "rows_kept": summary.rows_kept,
            "bytes": summary.output_bytes,
            "files": summary.output_files,
            "steps": summary.durations_seconds,
        }

    def bare(csv: Path) -> dict[str, Any]:
        out = folder / "bare"
        started, cpu = time.perf_counter(), cpu_s()
        (
            spark.read.schema(schema)
            .option("header", True)
            .option("dateFormat", "yyyyMMdd")
            .csv(str(csv))
            .write.mode("overwrite")
            .option("compression", "zstd")
            .parquet(str(out))
        )
        seconds, cpu = time.perf_counter() - started, cpu_s() - cpu
        files = _parquet_files(out)
        return {
            "seconds": seconds,
            "cpu_s": cpu,
            "bytes": sum(f.stat().st_size for f in files),
            "files": len(files),
            "out": out,
        }

    def duck(csv: Path) -> dict[str, Any]:
        out = folder / "duckdb.parquet"
        out.unlink(missing_ok=True)
        con = duckdb.connect()
        started = time.perf_counter()
        con.execute(
            f"COPY (SELECT * FROM read_csv('{csv}', header = true, dateformat = '%Y%m%d', "
            f"columns = {duckdb_columns()})) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
        )
        seconds = time.perf_counter() - started
        con.close()
        return {"seconds": seconds, "bytes": out.stat().st_size, "out": out}

    keyed = DatasetConfig.model_validate({**dataset_config(), "primary_key": ["order_id"]})
    csv, warm_csv = dataset_dir / CSV_NAME, warmup_dir / CSV_NAME
    # A whole untimed run of each Spark job first: a JVM's first pass over the data is up to 60 % slower
    # (JIT, heap growth), and a small slice does not warm it enough.
    warmup = {
        "bronze": bronze(dataset_dir)["seconds"],
        "bare": bare(csv)["seconds"],
        "duckdb": duck(warm_csv)["seconds"],
    }
    progress(f"warm-up: bronze {warmup['bronze']:.1f} s, bare Spark {warmup['bare']:.1f} s")
    result: dict[str, Any] = {
        "warmup": warmup,
        "bronze": [],
        "bronze_pk": [],
        "bare": [],
        "duckdb": [],
        "session": session,
    }
    for index in range(args["repeat"]):
        # Alternate the order, so no job always inherits another's garbage.
        order = ("bare", "bronze", "bronze_pk") if index % 2 == 0 else ("bronze_pk", "bronze", "bare")
        for name in order:
            one = bare(csv) if name == "bare" else bronze(dataset_dir, keyed if name == "bronze_pk" else config)
            rows = _parquet_rows(_parquet_files(one.pop("out"))) if name == "bare" else one["rows_kept"]
            if rows != args["rows"]:
                raise RuntimeError(f"{name} wrote {rows} rows, expected {args['rows']}")
            result[name].append(one)
            progress(f"run {index + 1}: {name} {one['seconds']:.2f} s")
        one = duck(csv)
        if _parquet_rows([one.pop("out")]) != args["rows"]:
            raise RuntimeError("DuckDB wrote a different row count")
        result["duckdb"].append(one)
        progress(f"run {index + 1}: duckdb {one['seconds']:.2f} s")

    if args.get("ablation"):
        # Where bronze's time goes: the same read and write with bronze's steps added one at a time.
        out = str(folder / "ablation")

        ablation: dict[str, float | None] = {}
        errors: dict[str, str] = {}

        def step(name: str, make) -> None:
            """Time writing the frame `make()` builds; a step the current dwlib no longer supports is noted."""
            try:
                runs = []
                for _ in range(2):  # the better of two: one run alone is at the mercy of a GC or a neighbour
                    df = make()
                    started = time.perf_counter()
                    df.write.mode("overwrite").option("compression", "zstd").parquet(out)
                    runs.append(time.perf_counter() - started)
                ablation[name] = round(min(runs), 3)
            except Exception as exc:  # dwlib moves; the other steps still count
                ablation[name], errors[name] = None, f"{type(exc).__name__}: {exc}"[:300]

        def strings():
            return transform.read_source(spark, [str(csv)], "csv", config.csv)

        def plain():
            source = strings()  # CSV columns arrive cleaned, beside the reader's internal ones
            names, types = transform.data_columns(source), config.column_types
            return source.select(
                *[
                    (F.to_date(F.col(n), types[n].fmt) if types[n].fmt else F.col(n).cast(types[n].spark_type)).alias(n)
                    for n in names
                ]
            )

        def prepared():
            frame, names = transform.prepare(strings(), config, run_id=run_id(), ingested_at=datetime.now(UTC))
            return transform.kept_rows(frame, names)

        def sketch():
            # The alternative: the CSV reader parses the declared types itself (as the floor does) and
            # flags the lines it cannot parse in a corrupt-record column; bronze's meta columns added.
            corrupt = "_corrupt_record"
            checked = (
                spark.read.schema(T.StructType([*schema.fields, T.StructField(corrupt, T.StringType())]))
                .option("header", True)
                .option("dateFormat", "yyyyMMdd")
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", corrupt)
                .option("ignoreLeadingWhiteSpace", True)
                .option("ignoreTrailingWhiteSpace", True)
                .csv(str(csv))
            )
            return checked.filter(F.col(corrupt).isNull()).select(
                *schema.fieldNames(),
                F.lit("20300101T000000Z").alias("meta_run_id"),
                F.current_timestamp().alias("meta_ingested_at"),
                F.substring_index(F.input_file_name(), "/", -1).alias("meta_source_file"),
            )

        ablation["0_bare_spark_floor"] = round(min(r["seconds"] for r in result["bare"]), 3)
        step("1_read_strings_write", strings)
        step("2_strings_plain_casts", plain)
        step("3_prepare_kept_rows", prepared)
        ablation["4_run_bronze"] = round(min(r["seconds"] for r in result["bronze"]), 3)
        ablation["5_run_bronze_with_primary_key"] = round(min(r["seconds"] for r in result["bronze_pk"]), 3)
        step("6_sketch_typed_read_corrupt_record_check", sketch)
        if errors:
            result["ablation_errors"] = errors
        result["ablation"] = ablation
        progress(f"ablation: {ablation}")
    result["iceberg"] = iceberg_runs(bronze, dataset_dir, result, args["repeat"])
    spark.stop()
    return result


def iceberg_runs(bronze, dataset_dir: Path, result: dict[str, Any], repeat: int = 2) -> dict[str, Any]:
    """The same file into an Iceberg table: a full load, and a merge by key onto a table that already holds
    every key (the worst case: every data file has a hit). Goal: at most 1.2x the Parquet run.

    The Parquet, full and merge runs alternate (at least 2 rounds, the order reversed every other round),
    so a neighbour's load falls on all three alike; the ratios are of medians."""
    import statistics

    from dwlib.config import DatasetConfig

    out: dict[str, Any] = {}
    try:
        full = DatasetConfig.model_validate({**dataset_config(), "dataset": "bench-iceberg", "table_format": "iceberg"})
        merge = DatasetConfig.model_validate(
            {
                **dataset_config(),
                "dataset": "bench-iceberg-merge",
                "table_format": "iceberg",
                "load_mode": "merge",
                "primary_key": ["order_id"],
            }
        )
        bronze(dataset_dir, full)  # creates the table
        out["merge_first_s"] = round(bronze(dataset_dir, merge)["seconds"], 3)  # every key now in the table
        runs: dict[str, list[float]] = {"parquet": [], "full": [], "merge": []}
        kinds = {"parquet": None, "full": full, "merge": merge}
        for index in range(max(2, repeat)):
            order = list(runs) if index % 2 == 0 else list(reversed(runs))
            for name in order:
                one = bronze(dataset_dir) if kinds[name] is None else bronze(dataset_dir, kinds[name])
                runs[name].append(one["seconds"])
                progress(f"iceberg round {index + 1}: {name} {one['seconds']:.2f} s")
        median = {name: statistics.median(seconds) for name, seconds in runs.items()}
        out["parquet_s"] = round(median["parquet"], 3)
        out["full_s"] = round(median["full"], 3)
        out["merge_all_keys_again_s"] = round(median["merge"], 3)
        out["runs_s"] = {name: [round(s, 3) for s in seconds] for name, seconds in runs.items()}
        out["full_vs_parquet"] = round(median["full"] / median["parquet"], 2)
        out["merge_vs_parquet"] = round(median["merge"] / median["parquet"], 2)
        progress(f"iceberg: {out}")
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out
