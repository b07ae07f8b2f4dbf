"""An Iceberg dataset's stack: no crawler (the job commits its table), and a job role that may read,
create and update exactly its own table in the Glue Data Catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

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
    text = json.dumps(resources)
    assert f"table/pp_dw_bronze/{table_name(name)}" in text and "*" not in text
    assert len(statement["Resource"]) == 3 and ":catalog" in text and "database/pp_dw_bronze" in text


@pytest.mark.parametrize("name", PARQUET)
def test_parquet_datasets_get_no_catalog_rights(templates, name):
    assert glue_statements(templates[name]) == []
    templates[name].has_resource_properties("AWS::Glue::Crawler", {"Name": f"pp-dw-bronze-{name}-crawler"})
