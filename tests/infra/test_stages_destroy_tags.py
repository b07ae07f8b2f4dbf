"""Stages side by side, destroy and redeploy, cost tags: asserted over every resource of every template.

The default app (`synthesized`) and a second copy (`synthesized_dev`: `-c stage=dev -c destroy-data=true`)
are synthesized from the same project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from tests.infra.physical_names import physical_names

ROOT = Path(__file__).resolve().parents[2]
# The physical names of the default stage as they were before stages existed (regenerate only on purpose).
DEFAULT_NAMES = Path(__file__).with_name("default_names.json")
RETAINED = {"Retain", "RetainExceptOnCreate", "Snapshot"}
DATA = {"AWS::S3::Bucket", "AWS::KMS::Key"}
# Retained and named: `make deploy` passes --import-existing-resources, so the next deploy adopts them.
IMPORTABLE_BY_NAME = {"AWS::S3::Bucket"}


def templates(assembly) -> dict[str, dict]:
    return {stack.stack_name: stack.template for stack in assembly.stacks}


def resources(assembly):
    for name, template in templates(assembly).items():
        for logical_id, resource in template["Resources"].items():
            yield name, logical_id, resource


def test_default_names_did_not_change(synthesized):
    _, assembly, _ = synthesized
    assert physical_names(templates(assembly)) == json.loads(DEFAULT_NAMES.read_text())


def test_a_stage_gives_every_physical_name_its_own(synthesized, synthesized_dev):
    default = physical_names(templates(synthesized[1]))
    dev = physical_names(templates(synthesized_dev[1]))
    assert set(dev) == set(default), "the same kinds of names in both copies"
    every_default = {n for names in default.values() for n in names}
    shared = {kind: sorted(set(names) & every_default) for kind, names in dev.items()}
    assert not any(shared.values()), {k: v for k, v in shared.items() if v}
    for kind in (
        "stack",
        "AWS::S3::Bucket BucketName",
        "AWS::Glue::Database DatabaseInput.Name",
        "AWS::Glue::Job Name",
        "AWS::Glue::Crawler Name",
        "AWS::IAM::Role RoleName",
        "AWS::StepFunctions::StateMachine StateMachineName",
        "AWS::Scheduler::Schedule Name",
        "AWS::Events::Rule Name",
        "AWS::SNS::Topic TopicName",
        "AWS::Athena::WorkGroup Name",
        "AWS::Glue::SecurityConfiguration Name",
        "AWS::Lambda::Function FunctionName",
        "AWS::Logs::LogGroup LogGroupName",
        "AWS::Athena::NamedQuery Name",
        "AWS::KMS::Alias AliasName",
    ):
        assert dev[kind], kind
        assert all("pp-dw-dev" in n or "pp_dw_dev" in n for n in dev[kind]), (kind, dev[kind])


def test_a_staged_named_query_reads_the_stages_databases(synthesized_dev):
    queries = [r for _, _, r in resources(synthesized_dev[1]) if r["Type"] == "AWS::Athena::NamedQuery"]
    sql = " ".join(q["Properties"]["QueryString"] for q in queries)
    assert "pp_dw_dev_" in sql
    assert "pp_dw_gold." not in sql and "pp_dw_bronze." not in sql


def test_with_destroy_data_nothing_is_retained(synthesized_dev):
    kept = [
        (stack, logical_id, r["Type"])
        for stack, logical_id, r in resources(synthesized_dev[1])
        if r.get("DeletionPolicy") in RETAINED or r.get("UpdateReplacePolicy") in RETAINED
    ]
    assert not kept


def test_without_destroy_data_only_data_is_retained_and_a_redeploy_adopts_it(synthesized):
    kept = [(s, i, r) for s, i, r in resources(synthesized[1]) if r.get("DeletionPolicy") in RETAINED]
    assert {r["Type"] for _, _, r in kept} == DATA
    named = {r["Type"] for _, _, r in kept if any(k.endswith("Name") for k in r.get("Properties", {}))}
    assert named <= IMPORTABLE_BY_NAME, named
    deploy = (ROOT / "Makefile").read_text().split("\ndeploy:", 1)[1].split("\n\n", 1)[0]
    assert "cdk deploy --all --import-existing-resources" in deploy


def taggable(kind: str) -> bool:
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", kind)
    return "Tags" in schema.schema.get("properties", {})


def tags_of(resource: dict) -> dict:
    tags = resource.get("Properties", {}).get("Tags", {})
    if isinstance(tags, list):
        return {t["Key"]: t["Value"] for t in tags}
    return dict(tags)


@pytest.mark.parametrize("which", ["synthesized", "synthesized_dev"])
def test_every_taggable_resource_carries_project_stage_and_dataset(which, request):
    assembly = request.getfixturevalue(which)[1]
    stage = "dev" if which == "synthesized_dev" else "default"
    checked, wrong = 0, []
    for stack, logical_id, resource in resources(assembly):
        if resource["Type"].startswith("Custom::") or not taggable(resource["Type"]):
            continue
        expected = {"project": "pp-dw", "stage": stage}
        if "-dataset-" in stack:
            expected["dataset"] = stack.split("-dataset-", 1)[1]
        found = tags_of(resource)
        checked += 1
        if {k: found.get(k) for k in expected} != expected:
            wrong.append((stack, logical_id, resource["Type"], found))
    assert checked > 50 and not wrong, wrong


@pytest.mark.parametrize("stage", ["Dev", "dev-1", "d" * 9, "1dev", "dev_x"])
def test_synth_refuses_a_stage_name_that_is_not_one(stage):
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"stage": stage}), "CDK_OUTDIR": "/nonexistent"}
    done = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"stage {stage!r} is not a stage name: use 1 to 8 lowercase letters and digits" in done.stderr
    assert "nothing was synthesized" in done.stderr


def test_a_stages_failure_topic_takes_only_its_own_stages_rules(synthesized, synthesized_dev):
    """Each topic's policy lets only its own stage's failure rules publish, not the other copy's."""
    from fnmatch import fnmatchcase

    from tests.infra.physical_names import _resolve

    def topic_patterns(assembly) -> list[str]:
        policies = [r for _, _, r in resources(assembly) if r["Type"] == "AWS::SNS::TopicPolicy"]
        statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
        (rules,) = [s for s in statements if s.get("Sid") == "DatasetFailureRules"]
        return [_resolve(arn).rsplit(":rule/", 1)[1] for arn in rules["Condition"]["ArnLike"]["aws:SourceArn"]]

    def rule_names(assembly) -> list[str]:
        return [
            r["Properties"]["Name"]
            for _, _, r in resources(assembly)
            if r["Type"] == "AWS::Events::Rule" and "failures" in r["Properties"]["Name"]
        ]

    default_rules, dev_rules = rule_names(synthesized[1]), rule_names(synthesized_dev[1])
    assert default_rules and dev_rules
    for own, other, patterns in (
        (default_rules, dev_rules, topic_patterns(synthesized[1])),
        (dev_rules, default_rules, topic_patterns(synthesized_dev[1])),
    ):
        assert all(any(fnmatchcase(rule, p) for p in patterns) for rule in own), (patterns, own)
        assert not any(fnmatchcase(rule, p) for p in patterns for rule in other), (patterns, other)


def test_a_stages_failure_topic_takes_only_its_own_stages_alarms(synthesized, synthesized_dev):
    """Each topic's policy lets only its own stage's CloudWatch alarms publish, not the other copy's."""
    from fnmatch import fnmatchcase

    from tests.infra.physical_names import _resolve

    def topic_pattern(assembly) -> str:
        policies = [r for _, _, r in resources(assembly) if r["Type"] == "AWS::SNS::TopicPolicy"]
        statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
        (alarms,) = [s for s in statements if s.get("Sid") == "DatasetAlarms"]
        return _resolve(alarms["Condition"]["ArnLike"]["aws:SourceArn"]).rsplit(":alarm:", 1)[1]

    def alarm_names(assembly) -> list[str]:
        return [
            r["Properties"]["AlarmName"] for _, _, r in resources(assembly) if r["Type"] == "AWS::CloudWatch::Alarm"
        ]

    default_alarms, dev_alarms = alarm_names(synthesized[1]), alarm_names(synthesized_dev[1])
    assert default_alarms and dev_alarms
    for own, other, pattern in (
        (default_alarms, dev_alarms, topic_pattern(synthesized[1])),
        (dev_alarms, default_alarms, topic_pattern(synthesized_dev[1])),
    ):
        assert all(fnmatchcase(alarm, pattern) for alarm in own), (pattern, own)
        assert not any(fnmatchcase(alarm, pattern) for alarm in other), (pattern, other)


@pytest.mark.parametrize("which", ["synthesized", "synthesized_dev"])
def test_a_workgroup_someone_queried_in_can_be_deleted_with_its_stack(which, request):
    """Athena refuses to delete a workgroup that holds query history ("WorkGroup is not empty") unless told to
    delete its contents: without that, `cdk destroy` of the core stack fails once anyone has run a query."""
    workgroups = [r for _, _, r in resources(request.getfixturevalue(which)[1]) if r["Type"] == "AWS::Athena::WorkGroup"]
    assert len(workgroups) == 1
    assert workgroups[0]["Properties"]["RecursiveDeleteOption"] is True
