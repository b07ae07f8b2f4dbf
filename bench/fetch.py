"""Fetch: `dwlib.fetch.fetch_source` of a large file from a loopback HTTP server, versus `curl -o`.

`fetch_source` runs in a fresh interpreter per run; its peak RSS growth is VmHWM (reset just
before the call) minus VmRSS before the call, read in that process. curl's peak RSS is the
VmHWM of its process, polled from /proc until it exits. Both write to the same disk; `fetch_source` also copies the download
into the lake's raw area (LocalLake), which is part of its job and so part of its time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import MB, MIB, WORK, PeakRss, Server, child_env, log, run_worker, stats
from bench.data import fetch_file

RAW_PREFIX = "raw/bench-fetch/run_id=20300101T000000Z/"


def curl_once(url: str, out: Path) -> dict[str, Any]:
    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl is not installed; install it (apt-get install -y curl) to measure the floor")
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen([curl, "-sS", "--fail", "-o", str(out), url])
    # wait4's ru_maxrss would carry the parent's high-water mark across vfork+exec; curl's own
    # VmHWM (of its exec'd image, monotonic) is read from /proc until it exits instead.
    status_file, peak = Path(f"/proc/{proc.pid}/status"), 0
    while proc.poll() is None:
        try:
            match = re.search(r"^VmHWM:\s+(\d+) kB", status_file.read_text(), re.MULTILINE)
        except OSError:
            match = None
        if match:
            peak = max(peak, int(match[1]) * 1024)
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"curl failed with exit code {proc.returncode}")
    size = out.stat().st_size
    out.unlink()
    return {"seconds": seconds, "bytes": size, "maxrss": peak}


def measure(size_mib: int, repeat: int) -> dict[str, Any]:
    blob = fetch_file(size_mib)
    folder = WORK / "fetch"
    tmp = folder / "tmp"
    lake = folder / "lake"
    log(f"fetch: {size_mib} MiB over loopback, {repeat} run(s) each of curl and fetch_source")
    curl_runs, fetch_runs = [], []
    with Server("bench.httpserve", str(blob.parent)) as server:
        url = f"http://127.0.0.1:{server.port}/{blob.name}"
        for index in range(repeat):
            curl_runs.append(curl_once(url, folder / "curl.out"))
            shutil.rmtree(lake, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            one = run_worker("fetch", {"url": url, "lake": str(lake)}, timeout=900, env=child_env(TMPDIR=str(tmp)))
            if one["bytes"] != blob.stat().st_size:
                raise RuntimeError(f"fetch_source landed {one['bytes']} bytes, expected {blob.stat().st_size}")
            fetch_runs.append(one)
            shutil.rmtree(lake, ignore_errors=True)
            log(
                f"fetch run {index + 1}: curl {curl_runs[-1]['seconds']:.2f} s, fetch_source {one['seconds']:.2f} s "
                f"(download {one['download_seconds']:.2f} s), peak RSS growth {one['rss_growth'] / MIB:.1f} MiB"
            )
    size = blob.stat().st_size
    return {
        "input": {"bytes": size, "mib": size_mib},
        "fetch_s": stats([r["seconds"] for r in fetch_runs], "s"),
        "fetch_download_s": stats([r["download_seconds"] for r in fetch_runs], "s"),
        "curl_s": stats([r["seconds"] for r in curl_runs], "s"),
        "fetch_mb_per_s": stats([size / MB / r["seconds"] for r in fetch_runs], "MB/s", 1),
        "fetch_download_mb_per_s": stats([size / MB / r["download_seconds"] for r in fetch_runs], "MB/s", 1),
        "curl_mb_per_s": stats([size / MB / r["seconds"] for r in curl_runs], "MB/s", 1),
        "fetch_peak_rss_growth_mib": stats([r["rss_growth"] / MIB for r in fetch_runs], "MiB", 1),
        "fetch_peak_rss_mib": stats([r["rss_peak"] / MIB for r in fetch_runs], "MiB", 1),
        "fetch_rss_before_mib": stats([r["rss_before"] / MIB for r in fetch_runs], "MiB", 1),
        "curl_peak_rss_mib": stats([r["maxrss"] / MIB for r in curl_runs], "MiB", 1),
        "attempts": [r["attempts"] for r in fetch_runs],
    }


def work(args: dict[str, Any]) -> dict[str, Any]:
    from dwlib.fetch import fetch_source
    from dwlib.lake import LocalLake

    lake = LocalLake(Path(args["lake"]))
    done: dict[str, float] = {}

    def progress(have: int, total: int | None) -> None:
        if total is not None and have >= total and "download" not in done:
            done["download"] = time.perf_counter()

    with PeakRss() as memory:
        started = time.perf_counter()
        result = fetch_source(args["url"], lake, RAW_PREFIX, progress=progress)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "download_seconds": done.get("download", time.perf_counter()) - started,
        "bytes": result.bytes,
        "attempts": result.attempts,
        "rss_before": memory.before,
        "rss_peak": memory.peak,
        "rss_growth": memory.growth,
        "peak_reset": memory.reset,
    }
