"""DynamoDB datasets: schedule -> export Lambda -> raw/ -> "Object Created" rule -> pipeline."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from dwlib.naming import Naming


@pytest.fixture(scope="module")
def exported(project, stacks):
    names = [n for n, d in project.datasets.items() if d.source_kind == "dynamodb_table"]
    assert names, "an example dataset must use dynamodb_table"
    name = names[0]
    return name, project.datasets[name], Template.from_stack(stacks[Naming.of(project.core).dataset_stack(name)])


def test_export_function(exported):
    name, config, template = exported
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": f"pp-dw-export-{name}",
            "Runtime": Match.string_like_regexp(r"^python3\.1[2-9]$"),
            "Handler": "handler.handler",
            # New accounts have a concurrency quota of 10 and refuse any reservation: none by default.
            "ReservedConcurrentExecutions": Match.absent(),
            "Timeout": Match.any_value(),
            "EphemeralStorage": {"Size": Match.any_value()},
            "Environment": {
                "Variables": Match.object_like(
                    {"TABLE_NAME": config.dynamodb_table, "DATASET": name, "BUCKET_NAME": Match.any_value()}
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 0,
            "DestinationConfig": {"OnFailure": {"Destination": Match.object_like({"Fn::Join": Match.any_value()})}},
        },
    )


def test_export_permissions_are_least_privilege(exported):
    name, config, template = exported
    (role,) = template.find_resources(
        "AWS::IAM::Role", {"Properties": {"Description": Match.string_like_regexp("^Exports DynamoDB")}}
    ).values()
    statements = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    by_action = {json.dumps(sorted(s["Action"])): s for s in statements if isinstance(s["Action"], list)}
    dynamo = by_action[json.dumps(["dynamodb:DescribeTable", "dynamodb:Scan"])]
    assert json.dumps(dynamo["Resource"]).endswith(f':table/{config.dynamodb_table}"]]}}')
    s3 = by_action[json.dumps(["s3:AbortMultipartUpload", "s3:PutObject"])]
    assert json.dumps(s3["Resource"]).endswith(f'/raw/{name}/*"]]}}')
    (read,) = [s for s in statements if s["Action"] == "s3:GetObject"]  # the run folders' claims only
    assert json.dumps(read["Resource"]).endswith(f'/raw/{name}/run_id=*/_EXPORT_STARTED"]]}}')
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]  # its own dataset's run folders only
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"raw/{name}/run_id=*"}}
    every_action = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    s3_actions = {"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject", "s3:ListBucket"}
    assert not {a for a in every_action if a.startswith("s3:")} - s3_actions
    assert not {a for a in every_action if a.startswith("dynamodb:")} - {"dynamodb:Scan", "dynamodb:DescribeTable"}


def test_schedule_runs_the_export(exported):
    name, config, template = exported
    template.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": config.schedule,
            "Target": Match.object_like({"Arn": {"Fn::GetAtt": [Match.string_like_regexp("ExportFunction"), "Arn"]}}),
        },
    )


def test_the_export_marker_arriving_under_raw_starts_the_pipeline(exported):
    """Only the marker the export writes last starts a run (one per export, not one per file);
    tests/infra/test_pipeline_on_aws.py walks the pattern and the pipeline with real-shaped events."""
    name, _, template = exported
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": f"pp-dw-arrival-{name}",
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": Match.any_value()},
                    "object": {
                        "key": [
                            {"wildcard": f"raw/{name}/run_id=*/_SUCCESS"},
                            {"wildcard": f"raw/{name}/run_id%3D*/_SUCCESS"},
                        ],
                        "size": [{"numeric": [">", 0]}],
                    },
                },
            },
            "Targets": [Match.object_like({"Arn": {"Ref": Match.string_like_regexp("Pipeline")}})],
        },
    )


def test_the_pipeline_may_start_itself_once_per_run_id(exported):
    """A drop's run is a child execution named by its run id; the role may start only this machine."""
    name, _, template = exported
    policies = json.dumps(template.find_resources("AWS::IAM::Policy"))
    assert "states:StartExecution" in policies
    assert f":stateMachine:pp-dw-pipeline-{name}" in policies


def test_reserved_concurrency_is_an_option(project, tmp_path):
    """`export.reserved_concurrency` in the dataset's config reserves it; validation bounds it."""
    from app import new_app
    from dwlib.config import DatasetConfig, ExportOptions
    from stacks.assets import build_glue_assets, build_lambda_asset
    from stacks.dataset_stack import DatasetStack

    name = next(n for n, d in project.datasets.items() if d.source_kind == "dynamodb_table")
    dataset = project.datasets[name].model_copy(update={"export": ExportOptions(reserved_concurrency=3)})
    stack = DatasetStack(
        new_app(str(tmp_path / "out")),
        "Reserved",
        core=project.core,
        dataset=dataset,
        dataset_dir=project.dataset_dir(name),
        glue_assets_dir=build_glue_assets(tmp_path / "glue"),
        export_code_dir=build_lambda_asset("dynamodb_csv_export", tmp_path / "lambdas"),
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function", {"FunctionName": f"pp-dw-export-{name}", "ReservedConcurrentExecutions": 3}
    )
    raw = {**dataset.model_dump(by_alias=True, exclude_none=True), "export": {"reserved_concurrency": 0}}
    with pytest.raises(ValueError, match="export.reserved_concurrency"):
        DatasetConfig.model_validate(raw)
