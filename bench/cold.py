"""Cold: whole processes, as a user runs them. `dw run` against a bare Spark script, and DuckDB.

Two cases, each against floors measured in the same run, the candidate and its floor alternating
(A B A B) so that a neighbour's load falls on both:

- wide: `dw run bench-flights --layer bronze` on a generated flights-shaped CSV (19 columns, mostly
  integers and doubles, `NA` nulls, a timestamp) in a project folder of its own under bench/work/,
  against `python -m bench.bare_job` (Spark reads the CSV with the declared schema and writes ZSTD
  Parquet) and a `python -c` process running DuckDB's COPY of the same file.
- small: `dw run fda-nsde --sample` (the demo dataset, 243 rows, end to end: unzip, type, the primary
  key and quality rules, publish) against the bare script on the sample's CSV, and DuckDB; also the
  bare script with the short-run JVM options `dw run --sample` uses (a figure, not the floor).

Every timing is from process start to exit. The JVM's start is in both; it is the floor here.
"""

from __future__ import annotations

import csv as csv_module
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.common import MB, ROOT, WORK, child_env, log, stats
from bench.data import WIDE_COLUMNS, WIDE_CSV, WIDE_DATASET, link_or_copy, wide_config, wide_csv, wide_duckdb_columns

SMALL_DATASET = "fda-nsde"
SPARK_DDL = {"int": "INT", "double": "DOUBLE", "string": "STRING", "timestamp": "TIMESTAMP"}
SMALL_COLUMNS = [  # the sample's CSV as the dataset config declares it
    ("item_code", "STRING"), ("ndc11", "STRING"), ("proprietary_name", "STRING"), ("product_type", "STRING"),
    ("marketing_category", "STRING"), ("application_number_or_citation", "STRING"),
    ("marketing_start_date", "DATE"), ("marketing_end_date", "DATE"), ("billing_unit", "STRING"),
    ("inactivation_date", "DATE"), ("reactivation_date", "DATE"),
]  # fmt: skip


def _dw() -> list[str]:
    script = Path(sys.executable).with_name("dw")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dw.cli"]


def _env() -> dict[str, str]:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "glue_jobs"), env.get("PYTHONPATH", "")])
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user runs it: bytecode caches in use
    env.pop("DW_LAKE", None)
    env.pop("DW_PROJECT", None)
    return env


def _timed(command: list[str], cwd: Path, what: str) -> float:
    """Seconds from start to the process's exit (not to its pipes' end: a JVM it leaves behind exits on its own)."""
    log_path = WORK / "cold" / ".output.log"
    with open(log_path, "wb") as output:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, env=_env(), stdout=output, stderr=subprocess.STDOUT)
        code = proc.wait(3600)
        seconds = time.perf_counter() - started
    if code != 0:
        tail = log_path.read_bytes().decode(errors="replace")[-1500:]
        raise RuntimeError(f"{what} failed (exit {code}):\n{tail}")
    return seconds


def _duckdb(csv: Path, out: Path, options: str, columns: str) -> list[str]:
    code = "import duckdb, sys; duckdb.connect().execute(sys.argv[1])"
    sql = f"COPY (SELECT * FROM read_csv('{csv}', header = true, {options}columns = {columns})) TO '{out}' " \
          "(FORMAT parquet, COMPRESSION zstd)"  # fmt: skip
    return [sys.executable, "-c", code, sql]


def _alternate(commands: dict[str, tuple[list[str], Path, Any]], repeat: int, label: str) -> dict[str, list[float]]:
    """Each command once untimed (page cache, bytecode), then `repeat` rounds in alternating order."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, (command, cwd, before) in commands.items():
        before()
        _timed(command, cwd, f"{label} {name}")
    names = list(commands)
    for index in range(repeat):
        for name in names if index % 2 == 0 else reversed(names):
            command, cwd, before = commands[name]
            before()
            times[name].append(_timed(command, cwd, f"{label} {name}"))
            log(f"  {label} run {index + 1}: {name} {times[name][-1]:.2f} s")
    return times


def _project(folder: Path, csv: Path) -> Path:
    """A project of one dataset (the wide one), so `dw run` finds it as a user's checkout would."""
    project = folder / "project"
    shutil.rmtree(project, ignore_errors=True)
    dataset_dir = project / "datasets" / WIDE_DATASET
    dataset_dir.mkdir(parents=True)
    shutil.copyfile(ROOT / "config.json", project / "config.json")
    (dataset_dir / "config.json").write_text(json.dumps(wide_config(), indent=2))
    link_or_copy(csv, dataset_dir / WIDE_CSV)
    return project


def measure(size_mb: float, repeat: int) -> dict[str, Any]:
    folder = WORK / "cold"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    result: dict[str, Any] = {}

    # ---- wide
    csv, csv_bytes, rows = wide_csv(size_mb)
    project = _project(folder, csv)
    lake = folder / "lake-wide"
    log(f"cold wide: {csv_bytes / MB:.1f} MB, {rows:,} rows, {len(WIDE_COLUMNS)} columns; {repeat} round(s)")

    def fresh_lake() -> None:
        shutil.rmtree(lake, ignore_errors=True)  # every run a first run: one raw copy on disk

    ddl = ", ".join(f"{name} {SPARK_DDL[ctype]}" for name, ctype, _, _ in WIDE_COLUMNS)
    wide = _alternate(
        {
            "dw_run": (
                [*_dw(), "run", WIDE_DATASET, "--layer", "bronze", "--lake", str(lake), "--run-id", "20300101T000000Z"],
                project,
                fresh_lake,
            ),
            "bare_spark": (
                [sys.executable, "-m", "bench.bare_job", str(csv), str(folder / "bare-wide"), ddl, "NA"],
                ROOT,
                lambda: None,
            ),
            "duckdb": (
                _duckdb(csv, folder / "duck-wide.parquet", "nullstr = 'NA', ", wide_duckdb_columns()),
                ROOT,
                lambda: None,
            ),
        },
        repeat,
        "wide",
    )
    summary = json.loads(next((lake / "runs" / WIDE_DATASET).glob("run_id=*.json")).read_text())
    if summary.get("rows_kept") != rows:
        raise RuntimeError(f"dw run kept {summary.get('rows_kept')} rows of {rows}: {summary.get('error')}")
    result["wide"] = {
        "input": {
            "csv_bytes": csv_bytes,
            "csv_mb": round(csv_bytes / MB, 1),
            "rows": rows,
            "columns": len(WIDE_COLUMNS),
        },
        "dw_run_s": stats(wide["dw_run"], "s"),
        "bare_spark_s": stats(wide["bare_spark"], "s"),
        "duckdb_s": stats(wide["duckdb"], "s"),
        "dw_run_steps_s": summary.get("durations_seconds", {}),
    }

    # ---- small: the demo dataset from its sample
    small_lake = folder / "lake-small"
    sample = ROOT / "datasets" / SMALL_DATASET / "sample"
    small_csv = folder / "small" / "sample.csv"
    small_csv.parent.mkdir(parents=True)
    archive = next(sample.glob("*.zip"))
    with zipfile.ZipFile(archive) as zipped:
        small_csv.write_bytes(zipped.read(zipped.namelist()[0]))
    small_rows = sum(1 for _ in small_csv.open("rb")) - 1
    log(f"cold small: `dw run {SMALL_DATASET} --sample`, {small_rows} rows; {repeat} round(s)")

    def fresh_small() -> None:
        shutil.rmtree(small_lake, ignore_errors=True)

    with small_csv.open(newline="", encoding="utf-8") as text:
        header = next(csv_module.reader(text))  # DuckDB matches `columns` to the header's own names
    duck_types = ["VARCHAR" if t == "STRING" else t for _, t in SMALL_COLUMNS]
    duck_columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in zip(header, duck_types, strict=True)) + "}"
    small = _alternate(
        {
            "dw_run": (
                [*_dw(), "run", SMALL_DATASET, "--sample", "--lake", str(small_lake), "--run-id", "20300101T000000Z"],
                ROOT,
                fresh_small,
            ),
            "bare_spark": (
                [
                    sys.executable, "-m", "bench.bare_job", str(small_csv), str(folder / "bare-small"),
                    ", ".join(f"{n} {t}" for n, t in SMALL_COLUMNS), "NA", "yyyyMMdd",
                ],
                ROOT,
                lambda: None,
            ),
            # Not the floor (a user's script starts a default JVM): the bare script with the JVM options
            # `dw run --sample` gives a small sample's JVM, to show what they save either way.
            "bare_spark_short_jvm": (
                [
                    sys.executable, "-m", "bench.bare_job", "--short-run", str(small_csv), str(folder / "bare-small-short"),
                    ", ".join(f"{n} {t}" for n, t in SMALL_COLUMNS), "NA", "yyyyMMdd",
                ],
                ROOT,
                lambda: None,
            ),
            "duckdb": (
                _duckdb(small_csv, folder / "duck-small.parquet", "nullstr = ['', 'NA'], dateformat = '%Y%m%d', ignore_errors = true, ", duck_columns),
                ROOT,
                lambda: None,
            ),
        },
        max(repeat, 3),  # small runs are short: more rounds cost little and steady the median
        "small",
    )  # fmt: skip
    summary = json.loads(next((small_lake / "runs" / SMALL_DATASET).glob("run_id=*.json")).read_text())
    result["small"] = {
        "input": {"rows": small_rows, "csv_bytes": small_csv.stat().st_size},
        "dw_run_s": stats(small["dw_run"], "s"),
        "bare_spark_s": stats(small["bare_spark"], "s"),
        "bare_spark_short_jvm_s": stats(small["bare_spark_short_jvm"], "s"),
        "duckdb_s": stats(small["duckdb"], "s"),
        "dw_run_steps_s": summary.get("durations_seconds", {}),
        "rows_kept": summary.get("rows_kept"),
        "rows_rejected": summary.get("rows_rejected"),
    }
    shutil.rmtree(folder, ignore_errors=True)
    return result
