"""The longest names and descriptions validation accepts synthesize into templates AWS would accept.

Two datasets at every limit validation allows (the longest dataset name, description, schedule,
query file name, gold model name and DynamoDB table name) are synthesized, and every name and
description in every template is measured against the LIMITS table that validation uses. This is
what ties the validator to the stacks: a stack that builds a longer name than naming.py predicts,
or a description that grows with its input, fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from dwlib.config import load_project
from dwlib.naming import ACCOUNT_PLACEHOLDER, LIMITS, LONGEST_STAGE

ROOT = Path(__file__).resolve().parents[2]
# CloudFormation type -> {property: LIMITS kind}; nested paths are dotted.
PROPERTIES = {
    "AWS::S3::Bucket": {"BucketName": "s3_bucket"},
    "AWS::Glue::Database": {"DatabaseInput.Name": "glue_database"},
    "AWS::Glue::Job": {"Name": "glue_job", "Description": "glue_job_description"},
    "AWS::Glue::Crawler": {"Name": "glue_crawler", "Description": "glue_crawler_description"},
    "AWS::Glue::SecurityConfiguration": {"Name": "glue_security_configuration"},
    "AWS::StepFunctions::StateMachine": {"StateMachineName": "state_machine"},
    "AWS::Logs::LogGroup": {"LogGroupName": "log_group"},
    "AWS::Events::Rule": {"Name": "events_rule", "Description": "events_rule_description"},
    "AWS::Scheduler::Schedule": {"Name": "schedule", "Description": "schedule_description"},
    "AWS::IAM::Role": {"RoleName": "iam_role", "Description": "iam_role_description"},
    "AWS::Lambda::Function": {"FunctionName": "lambda_function", "Description": "lambda_function_description"},
    "AWS::Athena::NamedQuery": {"Name": "named_query", "Description": "named_query_description"},
    "AWS::Athena::WorkGroup": {"Name": "athena_workgroup"},
    "AWS::SNS::Topic": {"TopicName": "sns_topic"},
    "AWS::KMS::Alias": {"AliasName": "kms_alias"},
}
PSEUDO = {"AWS::AccountId": ACCOUNT_PLACEHOLDER, "AWS::Region": "ap-southeast-4", "AWS::Partition": "aws-us-gov"}


def resolve(value) -> str:
    """A name as deployed: pseudo parameters at their longest; anything else unresolvable fails the test."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in PSEUDO:
        return PSEUDO[value["Ref"]]
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(part) for part in parts)
    raise AssertionError(f"cannot measure {value!r}")


def longest_project(target: Path) -> Path:
    """config.json plus two datasets at the limits validation accepts for the prefix pp-dw (in every stage)."""
    target.mkdir()
    shutil.copyfile(ROOT / "config.json", target / "config.json")
    # 64 - len("pp-dw-{stage}-job-failures-") in the longest stage: the rule names are the tightest.
    api, export = "a" * 36, "e" * 36
    schedule = "cron(" + ",".join(str(m) for m in range(60))[:226].rstrip(",") + " 6 ? * MON-FRI *)"
    # 250 characters (the config's limit) and four-byte ones: the stack description at the CDK's 1024 UTF-16 bytes.
    description = "\U0001f4e6" * (1024 // 2 - len(f"{api}: ") - 250) + "x" * (250 - (1024 // 2 - len(f"{api}: ") - 250))
    common = {"description": description, "data_size_category": "small", "schedule": schedule}
    configs = {
        api: {"api_endpoints": [{"url": "https://api.example.com/items", "auth": {"secret": "s" * 512}}]},
        export: {"dynamodb_table": "t" * 255},
    }
    for name, source in configs.items():
        folder = target / "datasets" / name
        (folder / "queries").mkdir(parents=True)
        (folder / "gold").mkdir()
        (folder / "config.json").write_text(json.dumps({"dataset": name, **common, **source}))
        query = "q" * (LIMITS["named_query"].max_length - len(f"pp-dw-{LONGEST_STAGE}-{name}-"))
        (folder / "queries" / f"{query}.sql").write_text("SELECT 1")
        for index in range(12):  # many long models: the gold crawler's description lists them all
            (folder / "gold" / f"{name[0]}{index}{'m' * 240}.sql").write_text("SELECT 1 AS x")
    return target


@pytest.fixture(scope="module")
def longest(tmp_path_factory):
    from app import build_app, new_app

    project = load_project(longest_project(tmp_path_factory.mktemp("limits") / "project"))
    app = build_app(project, new_app(stage=LONGEST_STAGE))  # names at their longest: in the longest stage
    return [child for child in app.node.children if isinstance(child, Stack)]


def test_the_longest_accepted_names_synthesize_within_every_limit(longest):
    measured = {kind: 0 for kind in LIMITS}
    over = []
    for stack in longest:
        template = Template.from_stack(stack).to_json()
        checks = [("stack", stack.stack_name), ("stack_description", template.get("Description", ""))]
        for resource in template["Resources"].values():
            for path, kind in PROPERTIES.get(resource["Type"], {}).items():
                value = resource.get("Properties", {})
                for key in path.split("."):
                    value = value.get(key) if isinstance(value, dict) else None
                if value is not None:
                    checks.append((kind, resolve(value)))
        for kind, text in checks:
            size = LIMITS[kind].size(text)
            measured[kind] = max(measured[kind], size)
            if size > LIMITS[kind].max_length:
                over.append(f"{stack.stack_name}: {LIMITS[kind].what} is {size} {LIMITS[kind].unit}: {text[:80]}...")
    assert not over, "\n".join(over)
    # The names validation lets reach their limit exactly, so the test measures the edge, not the middle.
    # (Schedules and roles stop short of 64: the job-failure rule, longer, sets the dataset name's limit.)
    for kind in (
        "events_rule",
        "named_query",
        "lambda_function_description",
        "stack_description",
    ):
        assert measured[kind] == LIMITS[kind].max_length, (kind, measured[kind])


def test_schedules_run_in_utc(longest):
    """Validation reads cron() hours as UTC, which holds only while the stack sets no time zone."""
    schedules = [
        resource
        for stack in longest
        for resource in Template.from_stack(stack).to_json()["Resources"].values()
        if resource["Type"] == "AWS::Scheduler::Schedule"
    ]
    assert len(schedules) == 2
    assert {s["Properties"].get("ScheduleExpressionTimezone", "UTC") for s in schedules} <= {"UTC", "Etc/UTC"}
