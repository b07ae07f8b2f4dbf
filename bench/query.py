"""Query: `dw query` from process start to answer, for a trivial query and the demo query.

The lake is made once by `dw run fda-nsde --sample` under bench/work/query/ (Spark, untimed) and
reused. Each timing is a fresh `dw query` process, as a user runs it: interpreter start, imports,
the local catalog, DuckDB's views and macros, the translation and the answer.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, WORK, child_env, log, stats

DATASET = "fda-nsde"
DEMO = ROOT / "datasets" / DATASET / "queries" / "demo.sql"
TRIVIAL = "SELECT 1"


def _dw() -> list[str]:
    script = Path(sys.executable).with_name("dw")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dw.cli"]


def _lake() -> Path:
    lake = WORK / "query" / "lake"
    if not any((lake / "bronze").glob("*/*.parquet")):
        log(f"query: making the lake with `dw run {DATASET} --sample` (untimed)")
        subprocess.run(
            [*_dw(), "run", DATASET, "--sample", "--lake", str(lake)],
            cwd=ROOT,
            env=child_env(),
            check=True,
            capture_output=True,
            timeout=1800,
        )
    return lake


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env() -> dict[str, str]:
    """As a user runs it: Python's bytecode caches in use (the warm-up run writes them)."""
    env = child_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _time(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `dw query` process; CPU is what another load cannot inflate."""
    cpu, started = _cpu(), time.perf_counter()
    proc = subprocess.run([*_dw(), "query", *args], cwd=ROOT, env=_env(), capture_output=True, timeout=300)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dw query {args} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return elapsed, _cpu() - cpu


def measure(repeat: int) -> dict[str, Any]:
    lake = _lake()
    result: dict[str, Any] = {}
    for name, args in (
        ("trivial_s", ["--lake", str(lake), TRIVIAL]),
        ("demo_s", ["--lake", str(lake), "--file", str(DEMO)]),
    ):
        _time(args)  # warm-up: the page cache, not the process
        runs = [_time(args) for _ in range(max(repeat, 3))]
        result[name] = stats([wall for wall, _ in runs], "s")
        result[name.replace("_s", "_cpu_s")] = stats([cpu for _, cpu in runs], "s")
        log(
            f"query {name[:-2]}: median {result[name]['median']:.2f} s wall, "
            f"{result[name.replace('_s', '_cpu_s')]['median']:.2f} s CPU over {len(runs)} runs"
        )
    return result
