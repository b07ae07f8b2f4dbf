"""Golden templates: every stack of a few projects, synthesized and normalised, to compare a refactor of
stacks/ against. A deploy of an existing stack replaces nothing only if logical IDs, resources and
properties stay the same; the golden files pin exactly that.

    python -m tests.infra.golden --write   # regenerate tests/infra/golden/ (a deliberate template change)

Asset hashes are normalised (they follow the job library's and the handler's code, not the stacks'),
and so are the cdk-nag acknowledgment metadata, which are synth-time notes and never reach AWS.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
HASH = re.compile(r"\b[0-9a-f]{64}\b")


def edge_project(target: Path) -> Path:
    """The repository's datasets plus one of each edge the stacks branch on: a source secret, a secret on an
    Iceberg table with gold models, a relative source file, a landing folder, flex workers, a reserved export concurrency."""
    target.mkdir(parents=True)
    shutil.copyfile(ROOT / "config.json", target / "config.json")
    shutil.copytree(ROOT / "datasets", target / "datasets")

    def add(name: str, **fields) -> Path:
        folder = target / "datasets" / name
        shutil.copytree(target / "datasets" / "ourairports", folder, ignore=shutil.ignore_patterns("gold"))
        config = json.loads((folder / "config.json").read_text())
        config.update(dataset=name, **fields)
        (folder / "config.json").write_text(json.dumps(config))
        return folder

    secret = {"secret": "pp-dw/shop-export", "header": "X-Export-Key"}
    add("shop-export", source_url="https://shop.example.com/export/orders.csv", source_auth=secret)
    add(
        "shop-iceberg",
        source_url="https://shop.example.com/export/items.csv",
        source_auth=secret,
        table_format="iceberg",
        load_mode="merge",
        schedule=None,
    )
    # Gold models of an Iceberg dataset: Iceberg tables its gold job commits (no gold crawler).
    gold = target / "datasets" / "shop-iceberg" / "gold"
    gold.mkdir()
    (gold / "items_total.sql").write_text("SELECT count(*) AS items FROM pp_dw_bronze.shop_iceberg\n")
    (gold / "items_per_total.sql").write_text("SELECT items, 1 AS one FROM pp_dw_gold.items_total\n")
    folder = add("city-file", source_url="data/cities.csv", execution_class="flex")
    (folder / "data").mkdir()
    (folder / "data" / "cities.csv").write_text("id,city\n1,Oslo\n")
    drops = add("drops", landing=True, schedule=None)
    config = json.loads((drops / "config.json").read_text())
    config.pop("source_url", None)
    (drops / "config.json").write_text(json.dumps(config))
    users = target / "datasets" / "app-users"
    shutil.copytree(users, target / "datasets" / "app-users-held")
    config = json.loads((users / "config.json").read_text())
    config.update(dataset="app-users-held", dynamodb_table="app-users-held", export={"reserved_concurrency": 3})
    config.pop("schedule", None)
    (target / "datasets" / "app-users-held" / "config.json").write_text(json.dumps(config))
    return target


# name: (project folder maker, context)
CONFIGURATIONS = {
    "default": (None, {}),
    "dev-destroy": (None, {"stage": "dev", "destroy-data": "true"}),
    "edge-qa-dry": (edge_project, {"stage": "qa", "force_dry_run": "true"}),
}


def normalise(template: dict) -> dict:
    text = HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True))
    template = json.loads(text)
    for resource in template.get("Resources", {}).values():
        metadata = resource.get("Metadata")
        if metadata:
            metadata.pop("cdk_nag", None)
            metadata.pop("aws:cdk:path", None)  # construct paths are not deployed; logical IDs are
            if not metadata:
                del resource["Metadata"]
    return template


def synthesize(name: str, workdir: Path) -> dict[str, dict]:
    """{stack name: normalised template} of one configuration."""
    from app import build_app, new_app
    from dwlib.config import load_project

    make, context = CONFIGURATIONS[name]
    root = make(workdir / "project") if make else ROOT
    outdir = workdir / "cdk.out"
    assembly = build_app(load_project(root), new_app(str(outdir), **context)).synth()
    return {stack.stack_name: normalise(stack.template) for stack in assembly.stacks}


def write() -> None:
    shutil.rmtree(GOLDEN, ignore_errors=True)
    for name in CONFIGURATIONS:
        with tempfile.TemporaryDirectory() as work:
            for stack, template in synthesize(name, Path(work)).items():
                path = GOLDEN / name / f"{stack}.template.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(template, indent=1, sort_keys=True) + "\n")


def golden(name: str) -> dict[str, dict]:
    return {p.name.removesuffix(".template.json"): json.loads(p.read_text()) for p in (GOLDEN / name).glob("*.json")}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(__doc__)
    write()
