"""How a dataset's runs start, by source kind: a schedule, a drop's arrival under raw/, or both.

A new source kind is one class here and one entry in SOURCE_KINDS.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn

from dwlib.config import DatasetConfig
from dwlib.naming import DROP_MARKER, Naming
from stacks.export import DynamoDbExport
from stacks.nag import acknowledge
from stacks.tokens import empty_input, schedule_expression


def arrival_detail_pattern(bucket_name: str, raw_dataset_prefix: str) -> dict:
    """Only a drop's marker, and only when it has bytes: console folders and empty objects start nothing.

    The key is matched in plain and URL-encoded form (`=` as %3D), whichever S3 puts in the event.
    """
    return {
        "bucket": {"name": [bucket_name]},
        "object": {
            "key": [
                {"wildcard": f"{raw_dataset_prefix}run_id=*/{DROP_MARKER}"},
                {"wildcard": f"{raw_dataset_prefix}run_id%3D*/{DROP_MARKER}"},
            ],
            "size": [{"numeric": [">", 0]}],
        },
    }


class Triggers:
    """A pulled source (a URL, API endpoints): its schedule, if any, starts the pipeline.

    Subclasses change what the schedule starts (`schedule_target`) and whether a drop's marker
    under raw/ starts the pipeline (`arrival`). Everything is created in the stack's own scope, with
    the construct IDs (and so logical IDs) the stack always had: Schedule, ArrivalRule, Export.
    """

    arrival = False

    def __init__(
        self,
        stack: Stack,
        *,
        naming: Naming,
        dataset: DatasetConfig,
        bucket: s3.IBucket,
        topic_arn: str,
        state_machine: sfn.IStateMachine,
        export_code_dir: Path | None = None,
    ):
        self.stack, self.naming, self.dataset = stack, naming, dataset
        self.bucket, self.topic_arn, self.state_machine = bucket, topic_arn, state_machine
        self.export_code_dir = export_code_dir
        self.export_function: lambda_.IFunction | None = None
        self.arrival_rule: events.Rule | None = None
        self.prepare()
        if dataset.schedule:
            self.schedule = self._schedule()
        if self.arrival:
            self.arrival_rule = self._arrival_rule()

    def prepare(self) -> None:
        """What the schedule's target needs, before the schedule."""

    def schedule_target(self) -> scheduler.IScheduleTarget:
        return scheduler_targets.StepFunctionsStartExecution(self.state_machine, input=empty_input())

    def _schedule(self) -> scheduler.Schedule:
        name = self.dataset.dataset
        return scheduler.Schedule(
            self.stack,
            "Schedule",
            schedule_name=self.naming.schedule(name),
            description=f"Runs the {name} pipeline: {self.dataset.schedule}",
            schedule=schedule_expression(self.dataset.schedule),
            target=self.schedule_target(),
        )

    def _arrival_rule(self) -> events.Rule:
        name = self.dataset.dataset
        raw = self.naming.raw_dataset_prefix(name)
        return events.Rule(
            self.stack,
            "ArrivalRule",
            rule_name=self.naming.arrival_rule(name),
            description=f"A non-empty {DROP_MARKER} under {raw}run_id=…/ closes a drop and starts one {name} run",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail=arrival_detail_pattern(self.bucket.bucket_name, raw),
            ),
            # The whole event: the pipeline reads (and URL-decodes) the key itself.
            targets=[events_targets.SfnStateMachine(self.state_machine)],
        )


class Landing(Triggers):
    """Files dropped under raw/{dataset}/run_id=…/: the drop's marker starts the pipeline."""

    arrival = True


class DynamoDbTable(Triggers):
    """A DynamoDB table: the schedule runs the export, and the exported file's arrival runs the pipeline."""

    arrival = True

    def prepare(self) -> None:
        assert self.export_code_dir is not None, "build_lambda_asset('dynamodb_csv_export') first"
        dataset, naming = self.dataset, self.naming
        self.export = DynamoDbExport(
            self.stack,
            "Export",
            naming=naming,
            dataset=dataset.dataset,
            table_name=dataset.dynamodb_table,
            category=dataset.data_size_category,
            bucket=self.bucket,
            failure_topic=sns.Topic.from_topic_arn(self.stack, "Failures", self.topic_arn),
            key_alias=naming.key_alias,
            code_dir=self.export_code_dir,
            reserved_concurrency=dataset.export.reserved_concurrency,
        )
        self.export_function = self.export.function

    def schedule_target(self) -> scheduler.IScheduleTarget:
        return scheduler_targets.LambdaInvoke(self.export.function, input=empty_input())

    def _schedule(self) -> scheduler.Schedule:
        schedule = super()._schedule()
        stack = self.stack
        function_arn = f"<{stack.get_logical_id(self.export.function.node.default_child)}.Arn>"
        for role in [c for c in stack.node.children if c.node.id.startswith("SchedulerRoleForTarget")]:
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "The Scheduler's role may invoke any version of the export function (CDK's LambdaInvoke target)",
                [f"Resource::{function_arn}:*"],
            )
        return schedule


SOURCE_KINDS: dict[str, type[Triggers]] = {
    "source_url": Triggers,
    "api_endpoints": Triggers,
    "landing": Landing,
    "dynamodb_table": DynamoDbTable,
}
