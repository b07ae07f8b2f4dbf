"""Roles by need: a dataset whose source needs secrets gets its own job role, with the shared role's
rights plus exactly its secrets; every other dataset's jobs use the shared role, by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from dwlib.config import load_project, table_format_of
from dwlib.naming import Naming

ROOT = Path(__file__).resolve().parents[2]
PROJECT = load_project(ROOT)
DATASETS = sorted(PROJECT.datasets)
WITH_SECRETS = [name for name in DATASETS if PROJECT.datasets[name].secrets]
# An Iceberg dataset's role also commits its own catalog table (tests/infra/test_iceberg_stack.py).
OWN_ROLE = WITH_SECRETS + [n for n in DATASETS if table_format_of(PROJECT.core, PROJECT.datasets[n]) == "iceberg"]
SHARED_ROLE_ARN = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/pp-dw-glue-job-role"


@pytest.fixture(scope="module")
def templates(stacks, project):
    naming = Naming.of(project.core)
    found = {name: Template.from_stack(stacks[naming.dataset_stack(name)]) for name in project.datasets}
    found["core"] = Template.from_stack(stacks[naming.core_stack])
    return found


def statements(template: Template, role_id: str) -> list[dict]:
    policies = template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def actions(statement: dict) -> tuple[str, ...]:
    action = statement["Action"]
    return tuple(sorted(action if isinstance(action, list) else [action]))


def test_an_example_dataset_needs_a_secret(templates):
    assert WITH_SECRETS, "an example dataset must read an authenticated API"
    assert len(WITH_SECRETS) < len(DATASETS)
    assert "secretsmanager" not in json.dumps(templates["core"].to_json())  # the shared role reads none


@pytest.mark.parametrize("name", DATASETS)
def test_jobs_use_the_dataset_role_only_when_it_needs_secrets(templates, name):
    template = templates[name]
    roles = template.find_resources(
        "AWS::IAM::Role", {"Properties": {"RoleName": Match.string_like_regexp("job-role")}}
    )
    jobs = template.find_resources("AWS::Glue::Job")
    assert jobs
    if name not in WITH_SECRETS:
        assert "secretsmanager" not in json.dumps(template.to_json())
    if name not in OWN_ROLE:
        assert roles == {}
        assert all(text(job["Properties"]["Role"]) == SHARED_ROLE_ARN for job in jobs.values())
        assert "secretsmanager" not in json.dumps(template.to_json())
        return
    (role_id,) = roles
    assert roles[role_id]["Properties"]["RoleName"] == f"pp-dw-{name}-job-role"
    assert roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in roles[role_id]["Properties"]
    # bronze and (when there are models) gold both run as the dataset's role
    assert all(job["Properties"]["Role"] == {"Fn::GetAtt": [role_id, "Arn"]} for job in jobs.values())


@pytest.mark.parametrize("name", WITH_SECRETS)
def test_the_dataset_role_reads_exactly_its_secrets(templates, project, name):
    template = templates[name]
    (role_id,) = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": f"pp-dw-{name}-job-role"}})
    secret_statements = [s for s in statements(template, role_id) if "secretsmanager" in json.dumps(s["Action"])]
    assert len(secret_statements) == 1
    (statement,) = secret_statements
    assert statement["Action"] == "secretsmanager:GetSecretValue" and "Condition" not in statement
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert [text(r) for r in resources] == [
        f"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{secret}-??????"
        for secret in project.datasets[name].secrets
    ]


@pytest.mark.parametrize("name", WITH_SECRETS)
def test_the_dataset_role_has_the_shared_roles_rights_and_nothing_else(templates, name):
    template, core = templates[name], templates["core"]
    (role_id,) = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": f"pp-dw-{name}-job-role"}})
    (shared_id,) = core.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": "pp-dw-glue-job-role"}})
    own = [s for s in statements(template, role_id) if "secretsmanager" not in json.dumps(s["Action"])]
    shared = statements(core, shared_id)
    assert [actions(s) for s in own] == [actions(s) for s in shared]

    for mine, theirs in zip(own, shared, strict=True):
        if "kms:Decrypt" in actions(mine):  # the key is in the core stack: by ARN there, by alias here
            assert mine["Resource"] == "*"
            assert mine["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/pp-dw"}}
            assert theirs["Resource"]["Fn::GetAtt"][0].startswith("LogsKey") and "Condition" not in theirs
            continue
        assert mine.get("Condition") == theirs.get("Condition")
        assert resources(mine) == resources(theirs)


def resources(statement: dict) -> list[str]:
    """A statement's resources with the lake bucket's ARN written as BUCKET, however it is referenced."""
    found = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return [_normal(r) for r in found]


def _normal(resource) -> str:
    if isinstance(resource, dict) and resource.get("Fn::GetAtt", [""])[0].startswith("Lake"):
        return "BUCKET"  # the core stack's own bucket
    if isinstance(resource, dict) and "Fn::Join" in resource:
        parts = resource["Fn::Join"][1]
        if isinstance(parts[0], dict) and _normal(parts[0]) == "BUCKET":
            return "BUCKET" + "".join(parts[1:])
    # a dataset stack's bucket, by its conventional name
    return text(resource).replace("arn:${AWS::Partition}:s3:::pp-dw-${AWS::AccountId}", "BUCKET")


def text(value) -> str:
    """A template value as one string: `Ref`s as ${AWS::...}, a literal partition written as a Ref."""
    if isinstance(value, str):
        return value.replace("arn:aws:", "arn:${AWS::Partition}:")
    if isinstance(value, dict) and "Ref" in value:
        return f"${{{value['Ref']}}}"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return text(separator.join(text(part) for part in parts))
    return json.dumps(value, sort_keys=True)
