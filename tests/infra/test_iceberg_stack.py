"""An Iceberg dataset's stack: no crawler (the job commits its table), and a job role that may read,
create and update exactly its own table in the Glue Data Catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from app import build_app, new_app
from dwlib.config import load_project, table_format_of
from dwlib.naming import Naming, table_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = load_project(ROOT)
ICEBERG = sorted(n for n, c in PROJECT.datasets.items() if table_format_of(PROJECT.core, c) == "iceberg")
PARQUET = sorted(n for n, c in PROJECT.datasets.items() if table_format_of(PROJECT.core, c) == "parquet")


@pytest.fixture(scope="module")
def templates(stacks, project):
    naming = Naming.of(project.core)
    return {name: Template.from_stack(stacks[naming.dataset_stack(name)]) for name in project.datasets}


def test_an_example_dataset_is_an_iceberg_merge():
    assert any(PROJECT.datasets[n].load_mode == "merge" for n in ICEBERG)


@pytest.mark.parametrize("name", ICEBERG)
def test_no_bronze_crawler_for_an_iceberg_table(templates, name):
    crawlers = templates[name].find_resources("AWS::Glue::Crawler")
    assert not [c for c in crawlers.values() if c["Properties"]["Name"] == f"pp-dw-bronze-{name}-crawler"]


def glue_statements(template: Template) -> list[dict]:
    """Statements on the Data Catalog (not the pipeline's glue:StartJobRun and friends)."""
    policies = template.find_resources("AWS::IAM::Policy")
    return [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(
            str(a).startswith("glue:") and ("Table" in a or "Database" in a or "Partition" in a or a == "glue:*")
            for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        )
    ]


@pytest.mark.parametrize("name", ICEBERG)
def test_the_job_role_commits_exactly_its_own_table(templates, name):
    template = templates[name]
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": f"pp-dw-{name}-job-role"}})
    (role_id,) = roles
    jobs = template.find_resources("AWS::Glue::Job")
    assert jobs and all(j["Properties"]["Role"] == {"Fn::GetAtt": [role_id, "Arn"]} for j in jobs.values())
    (statement,) = glue_statements(template)
    assert sorted(statement["Action"]) == ["glue:CreateTable", "glue:GetDatabase", "glue:GetTable", "glue:UpdateTable"]
    resources = [r["Fn::Join"][1] if isinstance(r, dict) else r for r in statement["Resource"]]
    assert "*" not in json.dumps(resources)
    assert catalog_objects(resources) == expected_objects(name, models_of(ROOT / "datasets" / name))


def models_of(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / "gold").glob("*.sql"))


def catalog_objects(resources: list) -> list[str]:
    """`catalog`, `database/x`, `table/x/y` of each ARN (joined with its pseudo parameters)."""
    texts = ["".join(p for p in r if isinstance(p, str)) if isinstance(r, list) else r for r in resources]
    return sorted(t.split(":")[-1] for t in texts)


def expected_objects(name: str, models: list[str], stage: str = "") -> list[str]:
    bronze, gold = f"pp_dw{stage}_bronze", f"pp_dw{stage}_gold"
    objects = ["catalog", f"database/{bronze}", f"table/{bronze}/{table_name(name)}"]
    if models:
        objects += [f"database/{gold}", *(f"table/{gold}/{m}" for m in models)]
    return sorted(objects)


@pytest.fixture(scope="module")
def gold_project(tmp_path_factory):
    """An Iceberg dataset with two gold models next to a Parquet one with two (the edge project's)."""
    from tests.infra.golden import edge_project

    root = edge_project(tmp_path_factory.mktemp("edge") / "project")
    for folder in (root / "datasets").iterdir():
        if folder.name not in ("shop-iceberg", "ourairports"):
            shutil.rmtree(folder)
    project = load_project(root)
    app = build_app(project, new_app(str(tmp_path_factory.mktemp("cdk.out"))))
    naming = Naming.of(project.core)
    stacks = {c.node.id: c for c in app.node.children}
    return root, {n: Template.from_stack(stacks[naming.dataset_stack(n)]) for n in project.datasets}


def test_no_gold_crawler_for_an_iceberg_dataset_with_models(gold_project):
    root, templates = gold_project
    assert len(models_of(root / "datasets" / "shop-iceberg")) == 2
    assert templates["shop-iceberg"].find_resources("AWS::Glue::Crawler") == {}
    jobs = templates["shop-iceberg"].find_resources("AWS::Glue::Job")
    assert sorted(j["Properties"]["Name"] for j in jobs.values()) == [
        "pp-dw-bronze-shop-iceberg",
        "pp-dw-gold-shop-iceberg",
    ]
    # A Parquet dataset's gold models are still crawled, one target per model folder.
    (crawler,) = [
        c["Properties"]
        for c in templates["ourairports"].find_resources("AWS::Glue::Crawler").values()
        if c["Properties"]["Name"] == "pp-dw-gold-ourairports-crawler"
    ]
    assert len(crawler["Targets"]["S3Targets"]) == 2


def test_the_iceberg_role_names_exactly_its_gold_model_tables(gold_project):
    root, templates = gold_project
    (statement,) = glue_statements(templates["shop-iceberg"])
    assert sorted(statement["Action"]) == ["glue:CreateTable", "glue:GetDatabase", "glue:GetTable", "glue:UpdateTable"]
    resources = [r["Fn::Join"][1] if isinstance(r, dict) else r for r in statement["Resource"]]
    assert "*" not in json.dumps(resources)
    assert catalog_objects(resources) == [
        "catalog",
        "database/pp_dw_bronze",
        "database/pp_dw_gold",
        "table/pp_dw_bronze/shop_iceberg",
        "table/pp_dw_gold/items_per_total",
        "table/pp_dw_gold/items_total",
    ]
    assert glue_statements(templates["ourairports"]) == []


@pytest.mark.parametrize("name", PARQUET)
def test_parquet_datasets_get_no_catalog_rights(templates, name):
    assert glue_statements(templates[name]) == []
    templates[name].has_resource_properties("AWS::Glue::Crawler", {"Name": f"pp-dw-bronze-{name}-crawler"})
