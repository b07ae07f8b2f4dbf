"""Synth: `build_app(load_project(root), new_app(outdir)).synth()` for 1, 10 and 50 datasets.

Each project is a copy of config.json plus N copies of datasets/ourairports under new names.
Every synth runs in a fresh interpreter (a fresh jsii/node runtime), as `cdk synth` would.
`synth_s` is the in-process call (load_project, build_app with cdk-nag, synth); `total_s` is
the whole process, imports of aws_cdk and the jsii runtime's start included.
The Glue assets are built under bench/work/ instead of the repository's .build/.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, WORK, children_cpu_s, log, run_worker, stats

TEMPLATE = "ourairports"


def make_project(count: int) -> Path:
    project = WORK / "synth" / f"project-{count}"
    shutil.rmtree(project, ignore_errors=True)
    (project / "datasets").mkdir(parents=True)
    shutil.copyfile(ROOT / "config.json", project / "config.json")
    source = ROOT / "datasets" / TEMPLATE
    for index in range(1, count + 1):
        name = f"bench-{TEMPLATE}-{index:03d}"
        target = project / "datasets" / name
        shutil.copytree(source, target)
        config = json.loads((source / "config.json").read_text())
        config["dataset"] = name
        (target / "config.json").write_text(json.dumps(config, indent=2))
        # Gold tables are global: each copy gets its own model names (and reads its own models).
        models = sorted(p.stem for p in (target / "gold").glob("*.sql"))
        for path in sorted((target / "gold").glob("*.sql")):
            text = path.read_text()
            for model in models:
                text = text.replace(f"_gold.{model}", f"_gold.{model}_{index:03d}")
            (target / "gold" / f"{path.stem}_{index:03d}.sql").write_text(text)
            path.unlink()
    return project


def measure(counts: list[int], repeat: int) -> dict[str, Any]:
    result: dict[str, Any] = {"datasets": {}}
    for count in counts:
        project = make_project(count)
        runs = []
        for index in range(repeat):
            outdir = WORK / "synth" / f"cdk.out-{count}"
            shutil.rmtree(outdir, ignore_errors=True)
            one = run_worker("synth", {"project": str(project), "outdir": str(outdir)}, timeout=1800)
            runs.append(one)
            log(
                f"synth {count} dataset(s), run {index + 1}: {one['synth_s']:.1f} s in process "
                f"({one['wall_s']:.1f} s with start-up; CPU {one['cpu_s']:.1f} s Python + {one['node_cpu_s']:.1f} s node), "
                f"{one['stacks']} stacks, "
                f"{one['dataset_stack_constructs']} constructs and {one['dataset_stack_resources']} resources a dataset stack"
            )
        result["datasets"][str(count)] = {
            "datasets": count,
            "stacks": runs[-1]["stacks"],
            "template_bytes": runs[-1]["template_bytes"],
            "dataset_stack_constructs": runs[-1].get("dataset_stack_constructs"),
            "dataset_stack_resources": runs[-1].get("dataset_stack_resources"),
            "synth_s": stats([r["synth_s"] for r in runs], "s"),
            "import_s": stats([r["import_s"] for r in runs], "s"),
            "total_s": stats([r["wall_s"] for r in runs], "s"),
            "cpu_s": stats([r["cpu_s"] + r["node_cpu_s"] for r in runs], "s"),
        }
    shutil.rmtree(WORK / "synth", ignore_errors=True)
    return result


def work(args: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    import app
    from dwlib.config import load_project
    from stacks import assets

    imported = time.perf_counter()
    build = WORK / "synth" / "build"
    app.build_glue_assets = lambda **kw: assets.build_glue_assets(
        build, **kw
    )  # keep the repository's .build/ untouched
    outdir = Path(args["outdir"])
    begin, cpu_begin, node_begin = time.perf_counter(), time.process_time(), children_cpu_s()
    cdk_app = app.build_app(load_project(Path(args["project"])), app.new_app(str(outdir)))
    assembly = cdk_app.synth()
    done, cpu, node = time.perf_counter(), time.process_time() - cpu_begin, children_cpu_s() - node_begin
    templates = list(outdir.glob("*.template.json"))
    # The size of one dataset stack: constructs (each one calls into the CDK's Node process) and resources.
    stack = next(s for s in assembly.stacks if "-dataset-" in s.stack_name)
    built = cdk_app.node.find_child(stack.stack_name)
    return {
        "dataset_stack_constructs": len(built.node.find_all()),
        "dataset_stack_resources": len(stack.template["Resources"]),
        "import_s": imported - started,
        "synth_s": done - begin,
        # CPU seconds of the synth, which other load on the machine inflates far less than wall time:
        # this interpreter's, and the CDK's Node processes' (jsii's runtime and its child).
        "cpu_s": cpu,
        "node_cpu_s": node,
        "stacks": len(assembly.stacks),
        "template_bytes": sum(p.stat().st_size for p in templates),
    }
