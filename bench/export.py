"""DynamoDB export: the Lambda handler, called directly, against moto, as the table grows.

moto serves DynamoDB and S3 from its own process (bench.motoserve), so the handler's process
holds only the handler: its peak RSS growth (VmHWM reset before the call, minus VmRSS before)
and tracemalloc peak are the handler's alone, and so is its CPU time. Each repeat is a fresh
interpreter that first exports a 100-item table (imports, botocore models, clients), then
exports the measured table once untraced (time, CPU, RSS); the first repeat exports it once more
under tracemalloc (which triples the handler's CPU time; its peak is the same to the byte from
one run to the next, so one traced export per item count is enough).

Wall time includes moto's own work (mostly serializing Scan pages, ~10x the handler's CPU),
so items per second of wall time is a floor set by moto; items per handler CPU-second is the
handler's own rate.
"""

from __future__ import annotations

import gc
import os
import resource
import time
import tracemalloc
from typing import Any

from bench.common import MIB, PeakRss, Server, child_env, log, run_worker, stats
from bench.motoserve import BUCKET, DATASET, REGION, TABLE, WARM_TABLE


def _aws_env(port: int) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",
        "BUCKET_NAME": BUCKET,
        "DATASET": DATASET,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def measure(item_counts: list[int], repeat: int) -> dict[str, Any]:
    result: dict[str, Any] = {"items": {}}
    for items in item_counts:
        log(f"export: loading {items:,} items into moto")
        started = time.perf_counter()
        with Server("bench.motoserve", str(items), timeout=1200, env=child_env(PYTHONUNBUFFERED="1")) as server:
            load_s = time.perf_counter() - started
            runs = []
            for index in range(repeat):
                one = run_worker(
                    "export",
                    {"items": items, "run": index, "trace": index == 0},
                    timeout=3600,
                    env=child_env(**_aws_env(server.port)),
                )
                runs.append(one)
                log(
                    f"export {items:,} items, run {index + 1}: {one['seconds']:.1f} s wall, "
                    f"{one['cpu_seconds']:.1f} s handler CPU, RSS growth {one['rss_growth'] / MIB:.1f} MiB"
                    + (f", tracemalloc peak {one['tracemalloc_peak'] / MIB:.1f} MiB" if one["tracemalloc_peak"] else "")
                )
        result["items"][str(items)] = {
            "items": items,
            "csv_bytes": runs[-1]["csv_bytes"],
            "moto_load_s": round(load_s, 1),
            "seconds": stats([r["seconds"] for r in runs], "s"),
            "items_per_s": stats([items / r["seconds"] for r in runs], "items/s", 0),
            "handler_cpu_s": stats([r["cpu_seconds"] for r in runs], "s"),
            "items_per_cpu_s": stats([items / max(r["cpu_seconds"], 1e-9) for r in runs], "items/CPU-s", 0),
            "rss_growth_mib": stats([r["rss_growth"] / MIB for r in runs], "MiB", 1),
            "rss_peak_mib": stats([r["rss_peak"] / MIB for r in runs], "MiB", 1),
            "tracemalloc_peak_mib": stats(
                [r["tracemalloc_peak"] / MIB for r in runs if r["tracemalloc_peak"]], "MiB", 2
            ),
        }
    return result


class FakeContext:
    """What the handler reads of a Lambda context: 15 minutes left, always."""

    function_name = "pp-dw-export-bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pp-dw-export-bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def work(args: dict[str, Any]) -> dict[str, Any]:
    import boto3

    from lambdas.dynamodb_csv_export.handler import handler

    items, run = args["items"], args["run"]
    run_ids = iter(f"2030010{1 + run}T0000{s:02d}Z" for s in range(60))

    def export(table: str) -> dict[str, Any]:
        os.environ["TABLE_NAME"] = table
        answer = handler({"run_id": next(run_ids)}, FakeContext())
        if table == TABLE and answer["rows"] != items:
            raise RuntimeError(f"exported {answer['rows']} rows, expected {items}")
        return answer

    export(WARM_TABLE)
    gc.collect()
    with PeakRss() as memory:
        cpu, started = _cpu(), time.perf_counter()
        answer = export(TABLE)
        seconds, cpu_seconds = time.perf_counter() - started, _cpu() - cpu
    traced = None
    if args.get("trace", True):
        gc.collect()
        tracemalloc.start()
        try:
            export(TABLE)
            traced = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    size = boto3.client("s3").head_object(Bucket=answer["bucket"], Key=answer["key"])["ContentLength"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_before": memory.before,
        "rss_peak": memory.peak,
        "rss_growth": memory.growth,
        "peak_reset": memory.reset,
        "tracemalloc_peak": traced,
        "csv_bytes": size,
    }
