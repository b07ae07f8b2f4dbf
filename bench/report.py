"""Goals, and the three outputs of a run: results/latest.json, results/latest.png, README's table."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench.common import MB

GOALS = {
    "bronze_vs_spark": "bronze run <= 1.5x the bare Spark job (median wall time)",
    "fetch_memory": "fetch peak RSS growth <= 256 MiB for a 1 GB source (worst run)",
    "fetch_throughput": "fetch throughput >= 70% of curl's (median MB/s)",
    "export_memory_flat": "export peak memory grows <= 64 MiB from 10k to 100k items (RSS growth and tracemalloc, worst run)",
    "synth_scaling": "synth of 50 datasets <= 2x synth of 1 (median, in-process synth)",
    "bronze_primary_key": "bronze run with `primary_key` <= 1.3x the bare Spark job (median wall time)",
    "cold_wide": "`dw run --layer bronze`, cold, wide real-shaped CSV <= 1.3x a bare Spark script (median wall time)",
    "cold_small": "`dw run` of the demo dataset's sample (243 rows), cold, <= 1.25x a bare Spark script (median)",
    "bronze_bytes": "bronze output bytes <= 1.1x DuckDB's ZSTD Parquet of the same data",
    "query_trivial": '`dw query "SELECT 1"` <= 1.5 s from process start to answer (median)',
    "query_demo": "`dw query` of the fda-nsde demo query on the sample lake <= 1.5 s (median)",
}


ABLATION = {
    "0_bare_spark_floor": "bare Spark floor (best run)",
    "1_read_strings_write": "CSV read as strings, written as is",
    "2_strings_plain_casts": "+ plain casts to the declared types",
    "3_prepare_kept_rows": "+ `transform.prepare` and `kept_rows` (checks, meta columns)",
    "4_run_bronze": "`run_bronze` (its best timed run: + observe, fetch, ledger, publish)",
    "5_run_bronze_with_primary_key": "`run_bronze` with `primary_key: [order_id]` (its best timed run)",
    "6_sketch_typed_read_corrupt_record_check": "sketch: typed CSV read + corrupt-record check + meta columns",
}


def _goal(key: str, measured: float | None, limit: float, unit: str, *, at_most: bool = True, **detail: Any) -> dict:
    if measured is None:
        return {"id": key, "goal": GOALS[key], "measured": None, "limit": limit, "unit": unit, "pass": None, **detail}
    passed = measured <= limit if at_most else measured >= limit
    return {
        "id": key,
        "goal": GOALS[key],
        "measured": round(measured, 3),
        "limit": limit,
        "unit": unit,
        "pass": bool(passed),
        **detail,
    }


def _cpu_ratio(bronze: dict[str, Any], key: str) -> float | None:
    """Median CPU seconds of a bronze run over the bare job's (recorded since 2026-12-03; None before)."""
    run, bare = (bronze.get(k, {}).get("median") for k in (key, "bare_spark_cpu_s"))
    return round(run / bare, 3) if run and bare else None


def goals(figures: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    bronze = figures.get("bronze")
    if bronze and "error" not in bronze:
        ratio = bronze["bronze_s"]["median"] / bronze["bare_spark_s"]["median"]
        out.append(
            _goal(
                "bronze_vs_spark",
                ratio,
                1.5,
                "x",
                bronze_s=bronze["bronze_s"]["median"],
                bare_spark_s=bronze["bare_spark_s"]["median"],
                best_runs_ratio=round(bronze["bronze_s"]["min"] / bronze["bare_spark_s"]["min"], 3),
                duckdb_s=bronze["duckdb_s"]["median"],
                cpu_ratio=_cpu_ratio(bronze, "bronze_cpu_s"),
            )
        )
        if bronze.get("bronze_pk_s", {}).get("median"):
            out.append(
                _goal(
                    "bronze_primary_key",
                    bronze["bronze_pk_s"]["median"] / bronze["bare_spark_s"]["median"],
                    1.3,
                    "x",
                    bronze_pk_s=bronze["bronze_pk_s"]["median"],
                    bare_spark_s=bronze["bare_spark_s"]["median"],
                    cpu_ratio=_cpu_ratio(bronze, "bronze_pk_cpu_s"),
                )
            )
        sizes = bronze["bytes"]
        out.append(
            _goal(
                "bronze_bytes",
                sizes["bronze"] / sizes["duckdb"],
                1.1,
                "x",
                bronze_bytes=sizes["bronze"],
                duckdb_bytes=sizes["duckdb"],
                bare_spark_bytes=sizes["bare_spark"],
            )
        )
    cold = figures.get("cold")
    if cold and "error" not in cold:
        wide, small = cold["wide"], cold["small"]
        out.append(
            _goal(
                "cold_wide",
                wide["dw_run_s"]["median"] / wide["bare_spark_s"]["median"],
                1.3,
                "x",
                applicable=wide["input"]["csv_mb"] >= 250,
                csv_mb=wide["input"]["csv_mb"],
                dw_run_s=wide["dw_run_s"]["median"],
                bare_spark_s=wide["bare_spark_s"]["median"],
                duckdb_s=wide["duckdb_s"]["median"],
            )
        )
        out.append(
            _goal(
                "cold_small",
                small["dw_run_s"]["median"] / small["bare_spark_s"]["median"],
                1.25,
                "x",
                dw_run_s=small["dw_run_s"]["median"],
                bare_spark_s=small["bare_spark_s"]["median"],
                duckdb_s=small["duckdb_s"]["median"],
            )
        )
    fetch = figures.get("fetch")
    if fetch and "error" not in fetch:
        applies = fetch["input"]["bytes"] >= 1000**3
        out.append(
            _goal(
                "fetch_memory",
                fetch["fetch_peak_rss_growth_mib"]["max"],
                256,
                "MiB",
                source_mib=fetch["input"]["mib"],
                applicable=applies,
                peak_rss_mib=fetch["fetch_peak_rss_mib"]["max"],
                curl_peak_rss_mib=fetch["curl_peak_rss_mib"]["max"],
            )
        )
        out.append(
            _goal(
                "fetch_throughput",
                fetch["fetch_mb_per_s"]["median"] / fetch["curl_mb_per_s"]["median"],
                0.7,
                "x of curl",
                at_most=False,
                fetch_mb_per_s=fetch["fetch_mb_per_s"]["median"],
                curl_mb_per_s=fetch["curl_mb_per_s"]["median"],
                download_only_ratio=round(
                    fetch["fetch_download_mb_per_s"]["median"] / fetch["curl_mb_per_s"]["median"], 3
                ),
            )
        )
    export = figures.get("export")
    if export and "error" not in export and len(export["items"]) >= 2:
        counts = sorted(export["items"], key=int)
        small, large = export["items"][counts[0]], export["items"][counts[-1]]
        rss = large["rss_growth_mib"]["max"] - small["rss_growth_mib"]["max"]
        traced = large["tracemalloc_peak_mib"]["max"] - small["tracemalloc_peak_mib"]["max"]
        out.append(
            _goal(
                "export_memory_flat",
                max(rss, traced),
                64,
                "MiB",
                items=[int(counts[0]), int(counts[-1])],
                applicable=int(counts[0]) <= 10_000 and int(counts[-1]) >= 100_000,
                rss_growth_delta_mib=round(rss, 2),
                tracemalloc_peak_delta_mib=round(traced, 2),
            )
        )
    synth = figures.get("synth")
    if synth and "error" not in synth and len(synth["datasets"]) >= 2:
        counts = sorted(synth["datasets"], key=int)
        one, many = synth["datasets"][counts[0]], synth["datasets"][counts[-1]]
        out.append(
            _goal(
                "synth_scaling",
                many["synth_s"]["median"] / one["synth_s"]["median"],
                2.0,
                "x",
                datasets=[int(counts[0]), int(counts[-1])],
                applicable=counts[0] == "1" and counts[-1] == "50",
                synth_s=[one["synth_s"]["median"], many["synth_s"]["median"]],
                with_startup_ratio=round(many["total_s"]["median"] / one["total_s"]["median"], 3),
            )
        )
    query = figures.get("query")
    if query and "error" not in query:
        for name in ("trivial", "demo"):
            out.append(
                _goal(f"query_{name}", query[f"{name}_s"]["median"], 1.5, "s", cpu_s=query[f"{name}_cpu_s"]["median"])
            )
    return out


# ------------------------------------------------------------------ the figures table


def _row(name: str, s: dict[str, Any] | None, fmt: str = "{:,.2f}") -> str:
    if not s or s.get("median") is None:
        return f"| {name} | n/a | | | |"
    return f"| {name} | {fmt.format(s['median'])} | {fmt.format(s['min'])} | {fmt.format(s['max'])} | {s['unit']} |"


def figures_table(figures: dict[str, Any]) -> list[str]:
    lines = ["| figure | median | min | max | unit |", "|---|---:|---:|---:|---|"]
    b = figures.get("bronze")
    if b and "error" not in b:
        csv = f"{b['input']['csv_mb']} MB CSV, {b['input']['rows']:,} rows"
        lines += [
            _row(f"bronze run, `run_bronze` ({csv})", b["bronze_s"]),
            _row("bronze run with `primary_key: [order_id]`", b.get("bronze_pk_s")),
            _row("bare Spark: CSV with explicit schema to ZSTD Parquet", b["bare_spark_s"]),
            _row("bronze run: CPU (Spark's JVM + Python, user + system)", b.get("bronze_cpu_s")),
            _row("bronze run with `primary_key`: CPU", b.get("bronze_pk_cpu_s")),
            _row("bare Spark: CPU", b.get("bare_spark_cpu_s")),
            _row("DuckDB: COPY read_csv to ZSTD Parquet", b["duckdb_s"]),
            _row("bronze rows per second", b["bronze_rows_per_s"], "{:,.0f}"),
            _row("bronze MB per second (CSV)", b["bronze_mb_per_s"]),
            _row("bare Spark MB per second", b["bare_spark_mb_per_s"]),
            _row("DuckDB MB per second", b["duckdb_mb_per_s"]),
        ]
        for step, s in b["bronze_steps_s"].items():
            lines.append(_row(f"bronze step `{step}`", s))
        for step, seconds in b.get("ablation_s", {}).items():
            shown = "error" if seconds is None else f"{seconds:,.2f}"
            lines.append(f"| bronze ablation (best of 2): {ABLATION.get(step, step)} | {shown} | | | s |")
        ice = b.get("iceberg_s") or {}
        for key, what in (
            ("full_s", "Iceberg bronze run, full load (goal: at most 1.2x the Parquet run)"),
            ("merge_all_keys_again_s", "Iceberg bronze run, merge touching every key (goal: at most 1.2x)"),
        ):
            if key in ice:
                ratio = ice[key.replace("_s", "_vs_parquet").replace("merge_all_keys_again", "merge")]
                lines.append(f"| {what}: {ratio}x | {ice[key]:,.2f} | | | s |")
        if "error" in ice:
            lines.append(f"| Iceberg bronze runs failed: {ice['error']} | | | | |")
    c = figures.get("cold")
    if c and "error" not in c:
        w, m = c["wide"], c["small"]
        wide = f"{w['input']['csv_mb']} MB, {w['input']['rows']:,} rows, {w['input']['columns']} columns"
        lines += [
            _row(f"cold `dw run --layer bronze`, wide CSV ({wide}), whole process", w["dw_run_s"]),
            _row("cold bare Spark script, same CSV and schema, whole process", w["bare_spark_s"]),
            _row("cold DuckDB COPY, same CSV, whole process", w["duckdb_s"]),
        ]
        lines += [
            f"| cold wide `dw run` step `{k}` (last run) | {v:,.2f} | | | s |" for k, v in w["dw_run_steps_s"].items()
        ]
        lines += [
            _row(f"cold `dw run fda-nsde --sample` ({m['input']['rows']} rows, end to end)", m["dw_run_s"]),
            _row("cold bare Spark script on the sample's CSV", m["bare_spark_s"]),
            *(
                [
                    _row(
                        "cold bare Spark script, sample's CSV, short-run JVM (not the floor)",
                        m["bare_spark_short_jvm_s"],
                    )
                ]
                if "bare_spark_short_jvm_s" in m
                else []
            ),
            _row("cold DuckDB COPY of the sample's CSV", m["duckdb_s"]),
        ]
        lines += [
            f"| cold small `dw run` step `{k}` (last run) | {v:,.2f} | | | s |" for k, v in m["dw_run_steps_s"].items()
        ]
    f = figures.get("fetch")
    if f and "error" not in f:
        lines += [
            _row(
                f"fetch_source of {f['input']['mib']} MiB over loopback (download + landing in the lake)", f["fetch_s"]
            ),
            _row("fetch_source MB per second", f["fetch_mb_per_s"], "{:,.1f}"),
            _row("fetch_source download only, MB per second", f["fetch_download_mb_per_s"], "{:,.1f}"),
            _row("curl -o, same file", f["curl_s"]),
            _row("curl MB per second", f["curl_mb_per_s"], "{:,.1f}"),
            _row("fetch_source peak RSS growth", f["fetch_peak_rss_growth_mib"], "{:,.1f}"),
            _row("fetch_source process peak RSS", f["fetch_peak_rss_mib"], "{:,.1f}"),
            _row("curl peak RSS", f["curl_peak_rss_mib"], "{:,.1f}"),
        ]
    e = figures.get("export")
    if e and "error" not in e:
        for count, x in sorted(e["items"].items(), key=lambda kv: int(kv[0])):
            n = f"{int(count):,} items"
            lines += [
                _row(f"export {n}: items per second (wall, moto included)", x["items_per_s"], "{:,.0f}"),
                _row(f"export {n}: items per handler CPU-second", x["items_per_cpu_s"], "{:,.0f}"),
                _row(f"export {n}: peak RSS growth", x["rss_growth_mib"], "{:,.1f}"),
                _row(f"export {n}: tracemalloc peak", x["tracemalloc_peak_mib"], "{:,.1f}"),
                _row(f"export {n}: process peak RSS", x["rss_peak_mib"], "{:,.1f}"),
            ]
    s = figures.get("synth")
    if s and "error" not in s:
        for count, x in sorted(s["datasets"].items(), key=lambda kv: int(kv[0])):
            lines += [
                _row(f"synth, {count} dataset(s), {x['stacks']} stacks: in process", x["synth_s"]),
                _row(f"synth, {count} dataset(s): whole process (imports, jsii start)", x["total_s"]),
            ]
    if b and "error" not in b:
        sizes = b["bytes"]
        lines += [
            f"| source CSV | {sizes['source_csv'] / MB:,.1f} | | | MB |",
            f"| bronze output ({sizes['bronze_files']} files) | {sizes['bronze'] / MB:,.1f} | | | MB |",
            f"| bare Spark output ({sizes['bare_spark_files']} files) | {sizes['bare_spark'] / MB:,.1f} | | | MB |",
            f"| DuckDB output (1 file) | {sizes['duckdb'] / MB:,.1f} | | | MB |",
        ]
    q = figures.get("query")
    if q and "error" not in q:
        lines += [
            _row('`dw query "SELECT 1"`: process start to answer', q["trivial_s"]),
            _row("`dw query --file datasets/fda-nsde/queries/demo.sql` (sample lake)", q["demo_s"]),
            _row('`dw query "SELECT 1"`: CPU (user + system)', q["trivial_cpu_s"]),
            _row("`dw query` demo: CPU (user + system)", q["demo_cpu_s"]),
        ]
    for name in ("bronze", "cold", "fetch", "export", "synth", "query"):
        if figures.get(name, {}).get("error"):
            lines.append(f"| {name} | error: {figures[name]['error'].splitlines()[0][:120]} | | | |")
    return lines


def goals_table(goal_list: list[dict[str, Any]]) -> list[str]:
    lines = ["| goal | measured | limit | result |", "|---|---:|---:|---|"]
    for g in goal_list:
        verdict = "n/a" if g["pass"] is None else ("PASS" if g["pass"] else "**FAIL**")
        if g.get("applicable") is False:
            verdict += " (not at the goal's size)"
        measured = "n/a" if g["measured"] is None else f"{g['measured']:,.3g} {g['unit']}"
        if g.get("cpu_ratio"):
            measured += f" (CPU {g['cpu_ratio']:,.3g} x)"
        lines.append(f"| {g['goal']} | {measured} | {g['limit']:g} {g['unit']} | {verdict} |")
    return lines


def machine_lines(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average"])
    return [
        f"- machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu_model']}, Linux {m['kernel']}",
        f"- software: Python {m['python']}, {m['java']}, Spark {m['spark']}, DuckDB {m['duckdb']}, "
        f"{(m['curl'] or 'no curl').split(' (')[0]}",
        f"- run: {result['created_at']}, {result['duration_s'] / 60:.1f} min, "
        f"`{result['command']}`, load average at start {load}",
    ]


# ------------------------------------------------------------------ outputs


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


START, END = "<!-- bench:latest:start -->", "<!-- bench:latest:end -->"


def update_readme(result: dict[str, Any], readme: Path) -> bool:
    """Replace the README's latest-figures section; False if the markers are missing."""
    if not readme.exists():
        return False
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    body = [
        START,
        *machine_lines(result),
        "",
        "Goals:",
        "",
        *goals_table(result["goals"]),
        "",
        "Figures (each over the run's repeats):",
        "",
        *figures_table(result["figures"]),
        "",
        "![latest figures](results/latest.png)",
        END,
    ]
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    readme.write_text(pattern.sub(lambda _: "\n".join(body), text))
    return True


def _bars(ax, labels: list[str], series: list[dict | None], colors: list[str], unit: str, title: str) -> None:
    values = [s["median"] if s else 0 for s in series]
    low = [s["median"] - s["min"] if s else 0 for s in series]
    high = [s["max"] - s["median"] if s else 0 for s in series]
    bars = ax.bar(labels, values, yerr=[low, high], capsize=5, color=colors)
    for bar, value, top in zip(bars, values, high, strict=True):  # above the whisker, not on it
        ax.annotate(
            _short(value), (bar.get_x() + bar.get_width() / 2, value + top), ha="center", va="bottom", fontsize=8
        )
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=8)


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _missing(ax, title: str, why: str = "not run") -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = result["figures"]
    fig, axes = plt.subplots(2, 4, figsize=(22, 10))
    (a_time, a_rate, a_bytes, a_goals), (a_fetch, a_fmem, a_export, a_synth) = axes
    blue, orange, green, grey = "#4C72B0", "#DD8452", "#55A868", "#8C8C8C"

    b = figures.get("bronze")
    if b and "error" not in b:
        title = f"bronze vs floors, {b['input']['csv_mb']} MB CSV ({b['input']['rows']:,} rows): wall time"
        _bars(
            a_time,
            ["run_bronze", "bare Spark", "DuckDB"],
            [b["bronze_s"], b["bare_spark_s"], b["duckdb_s"]],
            [blue, orange, green],
            "seconds (median, whiskers min-max)",
            title,
        )
        _bars(
            a_rate,
            ["run_bronze", "bare Spark", "DuckDB"],
            [b["bronze_mb_per_s"], b["bare_spark_mb_per_s"], b["duckdb_mb_per_s"]],
            [blue, orange, green],
            "MB of CSV per second",
            f"throughput; bronze {b['bronze_rows_per_s']['median']:,.0f} rows/s",
        )
        sizes = b["bytes"]
        labels = [
            "source CSV",
            f"bronze ({sizes['bronze_files']} files)",
            f"bare Spark ({sizes['bare_spark_files']})",
            "DuckDB (1)",
        ]
        values = [sizes["source_csv"], sizes["bronze"], sizes["bare_spark"], sizes["duckdb"]]
        bars = a_bytes.bar(labels, [v / MB for v in values], color=[grey, blue, orange, green])
        for bar, value in zip(bars, values, strict=True):
            a_bytes.annotate(
                f"{value / MB:,.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
            )
        a_bytes.set_ylabel("MB")
        a_bytes.set_title("bronze output size", fontsize=10)
        a_bytes.tick_params(axis="x", labelsize=8)
    else:
        for ax, title in ((a_time, "bronze wall time"), (a_rate, "bronze throughput"), (a_bytes, "bronze bytes")):
            _missing(ax, title, b["error"][:60] if b else "not run")

    f = figures.get("fetch")
    if f and "error" not in f:
        _bars(
            a_fetch,
            ["fetch_source", "its download", "curl -o"],
            [f["fetch_mb_per_s"], f["fetch_download_mb_per_s"], f["curl_mb_per_s"]],
            [blue, "#8FA9D6", green],
            "MB per second",
            f"fetch of {f['input']['mib']} MiB over loopback: throughput",
        )
        _bars(
            a_fmem,
            ["fetch_source growth", "fetch_source process", "curl process"],
            [f["fetch_peak_rss_growth_mib"], f["fetch_peak_rss_mib"], f["curl_peak_rss_mib"]],
            [blue, "#8FA9D6", green],
            "MiB",
            "fetch: peak RSS (goal: growth <= 256 MiB)",
        )
    else:
        _missing(a_fetch, "fetch throughput", f["error"][:60] if f else "not run")
        _missing(a_fmem, "fetch peak memory", f["error"][:60] if f else "not run")

    e = figures.get("export")
    if e and "error" not in e:
        counts = sorted(e["items"], key=int)
        x = range(len(counts))
        width = 0.27
        for offset, key, label, color in (
            (-width, "rss_growth_mib", "RSS growth", blue),
            (0, "tracemalloc_peak_mib", "tracemalloc peak", orange),
            (width, "rss_peak_mib", "process peak RSS", grey),
        ):
            meds = [e["items"][c][key]["median"] for c in counts]
            errs = [
                [e["items"][c][key]["median"] - e["items"][c][key]["min"] for c in counts],
                [e["items"][c][key]["max"] - e["items"][c][key]["median"] for c in counts],
            ]
            a_export.bar([i + offset for i in x], meds, width, yerr=errs, capsize=4, label=label, color=color)
        a_export.set_xticks(list(x))
        a_export.set_xticklabels(
            [
                f"{int(c):,} items\n{e['items'][c]['items_per_s']['median']:,.0f}/s wall, "
                f"{e['items'][c]['items_per_cpu_s']['median']:,.0f}/CPU-s"
                for c in counts
            ],
            fontsize=8,
        )
        a_export.set_ylabel("MiB")
        a_export.legend(fontsize=8)
        a_export.set_title("DynamoDB export handler: peak memory", fontsize=10)
    else:
        _missing(a_export, "DynamoDB export", e["error"][:60] if e else "not run")

    s = figures.get("synth")
    if s and "error" not in s:
        counts = sorted(s["datasets"], key=int)
        xs = [int(c) for c in counts]
        for key, label, color in (("synth_s", "in process", blue), ("total_s", "whole process", grey)):
            meds = [s["datasets"][c][key]["median"] for c in counts]
            errs = [
                [s["datasets"][c][key]["median"] - s["datasets"][c][key]["min"] for c in counts],
                [s["datasets"][c][key]["max"] - s["datasets"][c][key]["median"] for c in counts],
            ]
            a_synth.errorbar(xs, meds, yerr=errs, marker="o", capsize=4, label=label, color=color)
        one = s["datasets"][counts[0]]["synth_s"]["median"]
        a_synth.plot(xs, [2 * one] * len(xs), "--", color="red", label="goal: 2x one dataset")
        a_synth.set_ylim(bottom=0)
        a_synth.set_xlabel("datasets")
        a_synth.set_ylabel("seconds")
        a_synth.legend(fontsize=8)
        a_synth.set_title("cdk synth (build_app + synth)", fontsize=10)
    else:
        _missing(a_synth, "synth", s["error"][:60] if s else "not run")

    a_goals.axis("off")
    a_goals.set_title("goals", fontsize=10)
    y = 0.95
    for g in result["goals"]:
        ok = g["pass"]
        color = "grey" if ok is None else ("green" if ok else "red")
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        measured = "n/a" if g["measured"] is None else f"{g['measured']:,.3g} {g['unit']}"
        if g.get("cpu_ratio"):
            measured += f" (CPU {g['cpu_ratio']:,.3g} x)"
        a_goals.text(0.0, y, f"{verdict}", color=color, fontsize=10, weight="bold", transform=a_goals.transAxes)
        note = " - not at the goal's size" if g.get("applicable") is False else ""
        a_goals.text(
            0.13, y, f"{g['id']}: {measured} (limit {g['limit']:g}){note}", fontsize=9, transform=a_goals.transAxes
        )
        y -= 0.065
    ablation = (figures.get("bronze") or {}).get("ablation_s") or {}
    if ablation:
        y -= 0.04
        a_goals.text(0.0, y, "where bronze's time goes (best of 2 runs, s):", fontsize=9, transform=a_goals.transAxes)
        for step, seconds in ablation.items():
            y -= 0.048
            shown = "error" if seconds is None else f"{seconds:6.1f}"
            a_goals.text(0.02, y, shown, fontsize=8, family="monospace", transform=a_goals.transAxes)
            a_goals.text(0.13, y, ABLATION.get(step, step).replace("`", ""), fontsize=8, transform=a_goals.transAxes)
    m = result["machine"]
    a_goals.text(
        0.0,
        0.0,
        f"{m['cores']} cores, {m['memory_gib']} GiB, {m['cpu_model']}\n"
        f"Python {m['python']}, Spark {m['spark']}, DuckDB {m['duckdb']}\n"
        f"{result['created_at']}, repeat {result['params']['repeat']}, {result['duration_s'] / 60:.1f} min",
        fontsize=8,
        color="dimgrey",
        transform=a_goals.transAxes,
    )
    fig.suptitle("pp-dw benchmarks (bars: median of the repeats, whiskers: min to max)", fontsize=13)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def print_summary(result: dict[str, Any]) -> None:
    print("\n".join(goals_table(result["goals"])))
    print()
    print("\n".join(figures_table(result["figures"])))
