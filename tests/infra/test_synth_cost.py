"""What a synth of many datasets costs per dataset stack (make bench, synth; issue 12 point 8), and that
the shortcuts taken for it give what the CDK's own constructs gave, in every environment."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template
from jsii._kernel.providers import process as jsii_process

from stacks import assets
from tests.infra.test_job_files import hostile_dataset

# Calls into the CDK's Node process that building one dataset stack of the bench's dataset (ourairports:
# a URL source with a schedule, bronze and gold) may make. Each is a round trip of a few tenths of a
# millisecond to a millisecond; it was 85 before this budget, about 60 with it.
CALLS_PER_DATASET_STACK = 62


@pytest.fixture
def node_calls(monkeypatch):
    """Every request the Python side sends to the CDK's Node process, by type, while the fixture is active."""
    calls: list[str] = []
    send = jsii_process._NodeProcess.send

    def counted(self, request, response_type):
        calls.append(type(request).__name__)
        return send(self, request, response_type)

    monkeypatch.setattr(jsii_process._NodeProcess, "send", counted)
    return calls


def test_a_dataset_stack_stays_within_its_budget_of_calls_into_node(project, node_calls, tmp_path):
    from app import new_app

    app = new_app(str(tmp_path / "cdk.out"))
    core = cdk.Stack(app, "Core")  # the app's first child, as the core stack is
    glue_assets = assets.build_glue_assets(tmp_path / "build")
    made = []
    for index in range(3):  # the first stack reads what the app's stacks share; the others must not
        before = len(node_calls)
        _airports_stack(app, project, glue_assets, index).add_stack_dependency(core)
        made.append(len(node_calls) - before)
    assert max(made[1:]) <= CALLS_PER_DATASET_STACK, (
        f"a dataset stack now makes {made[1:]} calls into the CDK's Node process (budget "
        f"{CALLS_PER_DATASET_STACK}); each one is paid again for every dataset at synth"
    )


@pytest.mark.parametrize(
    "env",
    [
        None,
        cdk.Environment(account="123456789012", region="eu-west-1"),
        cdk.Environment(account="210987654321", region="cn-north-1"),
    ],
    ids=["unresolved", "eu-west-1", "cn-north-1"],
)
def test_the_jobs_role_and_the_deployments_deny_are_what_the_cdks_constructs_give(project, tmp_path, env):
    """The shared job role's ARN and the deployment's deny statement are written in Python from the
    stack's partition and account, read once for all stacks with the same environment: they must be
    what Role.from_role_name and the imported bucket's arn_for_objects give, for that stack's env."""
    from aws_cdk import aws_s3 as s3

    from app import new_app
    from dwlib.naming import Naming

    app = new_app(str(tmp_path / "cdk.out"))
    cdk.Stack(app, "Core")
    naming = Naming.of(project.core)
    glue_assets = assets.build_glue_assets(tmp_path / "build")
    stacks = []
    # An unresolved stack first, so a stack with its own env cannot reuse what that one read.
    for stack_env in (None, env):
        stacks.append(_airports_stack(app, project, glue_assets, len(stacks), env=stack_env))
    stack = stacks[-1]
    expected_role = iam.Role.from_role_name(stack, "ExpectedRole", naming.job_role, mutable=False).role_arn
    # Named with the stack's account: the literal one when the env gives it (what the core stack names it).
    bucket = s3.Bucket.from_bucket_name(stack, "ExpectedLake", naming.bucket(stack.account))
    expected_deny = bucket.arn_for_objects(f"{naming.etl_prefix('ourairports')}*")
    template = Template.from_stack(stack)
    for job in template.find_resources("AWS::Glue::Job").values():
        assert job["Properties"]["Role"] == stack.resolve(expected_role)
    denies = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "OnlyThisDatasetsFiles"
    ]
    assert [d["NotResource"] for d in denies] == [stack.resolve(expected_deny)]


def test_a_datasets_zip_is_written_once_per_content(tmp_path):
    """A synth without changes leaves the dataset's zip as it is (writing and renaming it into place is a
    cost paid per dataset); a changed or damaged zip is made again."""
    folder = hostile_dataset(tmp_path / "x")
    build = tmp_path / "build"
    path, digest = assets.build_dataset_files(folder, "job_config.json", "{}", build)
    first = os.stat(path)
    again, digest_again = assets.build_dataset_files(folder, "job_config.json", "{}", build)
    assert (again, digest_again) == (path, digest)
    assert (os.stat(again).st_ino, os.stat(again).st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    Path(path).write_bytes(Path(path).read_bytes()[:-1] + b"\0")  # damaged: the same name and size
    assets.build_dataset_files(folder, "job_config.json", "{}", build)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
    assert not list(build.glob(".tmp-*"))  # no scratch file left behind


def _airports_stack(app, project, glue_assets, index: int, env=None):
    """The ourairports dataset's stack, numbered so that one app holds several."""
    from dwlib.naming import Naming
    from stacks.dataset_stack import DatasetStack

    return DatasetStack(
        app,
        f"{Naming.of(project.core).dataset_stack('ourairports')}-{index}",
        core=project.core,
        dataset=project.datasets["ourairports"],
        dataset_dir=project.dataset_dir("ourairports"),
        glue_assets_dir=glue_assets,
        env=env,
    )
