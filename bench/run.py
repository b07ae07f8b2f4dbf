"""`python -m bench.run`: measure, write bench/results/latest.json and latest.png, refresh the README.

Run from the repository root (as `make bench` does). See bench/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench import bronze, cold, export, fetch, query, report, synth
from bench.common import BENCH, RESULTS, log, machine

FIGURES = ("bronze", "cold", "fetch", "export", "synth", "query")
ALIASES = {
    "wide": "cold",
    "small": "cold",
    "bytes": "bronze",
    "throughput": "bronze",
    "spark": "bronze",
    "curl": "fetch",
    "cdk": "synth",
}


def _counts(text: str) -> list[int]:
    try:
        values = sorted({int(v.replace("_", "")) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("give at least one count, each 1 or more")
    return values


def _figures(text: str) -> list[str]:
    names = []
    for name in (n.strip().lower() for n in text.split(",") if n.strip()):
        name = ALIASES.get(name, name)
        if name not in FIGURES:
            raise argparse.ArgumentTypeError(f"unknown figure {name!r}; pick from {', '.join(FIGURES)}")
        names.append(name)
    return names


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark bronze, fetch, the DynamoDB export and synth against their floors; "
        "writes bench/results/latest.json and latest.png.",
    )
    parser.add_argument("--size-mb", type=float, help="bronze input CSV size in MB (default 300; --quick 30)")
    parser.add_argument(
        "--wide-mb",
        type=float,
        default=float(os.environ.get("BENCH_WIDE_MB", 0)) or None,
        help="cold figure's wide CSV size in MB (default 100, or $BENCH_WIDE_MB; the goal's size is 300; --quick 20)",
    )
    parser.add_argument("--repeat", type=int, help="timed runs per figure (default 3; --quick 1)")
    parser.add_argument(
        "--only",
        type=_figures,
        action="extend",
        metavar="NAME",
        help=f"run only these figures (repeatable or comma-separated): {', '.join(FIGURES)}",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 30 MB, 1 repeat, small fetch/export/synth")
    parser.add_argument("--fetch-mib", type=int, help="size of the downloaded file in MiB (default 1024; --quick 64)")
    parser.add_argument(
        "--export-items", type=_counts, help="item counts of the export, comma-separated (default 10000,100000)"
    )
    parser.add_argument(
        "--synth-datasets", type=_counts, help="dataset counts of the synth, comma-separated (default 1,10,50)"
    )
    parser.add_argument(
        "--ablation",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time bronze's steps one at a time, once each (default on)",
    )
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the figures in bench/README.md")
    args = parser.parse_args(argv)
    quick = args.quick
    args.size_mb = args.size_mb or (30.0 if quick else 300.0)
    args.wide_mb = args.wide_mb or (20.0 if quick else 100.0)
    args.repeat = args.repeat or (1 if quick else 3)
    args.fetch_mib = args.fetch_mib or (64 if quick else 1024)
    args.export_items = args.export_items or ([1000, 10_000] if quick else [10_000, 100_000])
    args.synth_datasets = args.synth_datasets or ([1, 5] if quick else [1, 10, 50])
    if args.repeat < 1 or args.size_mb <= 0 or args.wide_mb <= 0 or args.fetch_mib < 1:
        parser.error("--repeat, --size-mb, --wide-mb and --fetch-mib must be positive")
    args.only = list(dict.fromkeys(args.only or FIGURES))
    return args


def params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "size_mb": args.size_mb,
        "wide_mb": args.wide_mb,
        "repeat": args.repeat,
        "quick": args.quick,
        "fetch_mib": args.fetch_mib,
        "export_items": args.export_items,
        "synth_datasets": args.synth_datasets,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    latest = RESULTS / "latest.json"
    result: dict[str, Any] = {
        "schema": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": ("python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)).strip(),
        "params": params(args),
        "machine": machine(),
        "figures": {},
    }
    load = os.getloadavg()[0]
    if load > 0.5:
        log(
            f"load average is {load:.1f} before the start: other work on this machine will show in the figures; "
            "run again on an idle machine for figures to compare"
        )
    # Running a subset of figures with the same parameters keeps the other figures of the last run.
    if set(args.only) != set(FIGURES) and latest.exists():
        try:
            previous = json.loads(latest.read_text())
        except ValueError:
            previous = {}
        if previous.get("params") == result["params"]:
            result["figures"] = {k: v for k, v in previous.get("figures", {}).items() if k not in args.only}
            result["kept_from"] = previous.get("created_at")

    failed = []
    for name in args.only:
        log(f"--- {name}")
        begun = time.perf_counter()
        try:
            if name == "bronze":
                figure = bronze.measure(args.size_mb, args.repeat, args.ablation)
            elif name == "cold":
                figure = cold.measure(args.wide_mb, args.repeat)
            elif name == "fetch":
                figure = fetch.measure(args.fetch_mib, args.repeat)
            elif name == "export":
                figure = export.measure(args.export_items, args.repeat)
            elif name == "query":
                figure = query.measure(args.repeat)
            else:
                figure = synth.measure(args.synth_datasets, args.repeat)
        except Exception as exc:  # one broken figure must not lose the others
            traceback.print_exc()
            figure = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        figure["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        figure["figure_s"] = round(time.perf_counter() - begun, 1)
        result["figures"][name] = figure
        log(f"{name} took {figure['figure_s']:.0f} s")

    result["goals"] = report.goals(result["figures"])
    result["duration_s"] = round(time.perf_counter() - started, 1)
    result["machine"]["load_average_end"] = list(os.getloadavg())
    report.write_json(result, latest)
    report.plot(result, RESULTS / "latest.png")
    complete = all(name in result["figures"] for name in FIGURES)
    if complete and not args.quick and not args.no_readme and report.update_readme(result, BENCH / "README.md"):
        log("bench/README.md figures updated")
    report.print_summary(result)
    log(f"wrote {latest} and latest.png in {result['duration_s'] / 60:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
