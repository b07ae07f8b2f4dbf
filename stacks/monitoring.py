"""Operations on AWS: per-dataset alarms, the stage's dashboard, the run-history table.

The metric names, dimensions and namespace come from dwlib.metrics and dwlib.naming, the
same code that publishes them from the jobs, so an alarm always reads what a run sends.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from aws_cdk import Annotations, Aws, Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from dwlib.config import CRON, RATE, CoreConfig, DatasetConfig, Project
from dwlib.metrics import DEFAULT_STAGE, RUN_COLUMNS
from dwlib.naming import Naming
from stacks.defaults import stage_of

HOUR = 3600
# CloudWatch evaluates at most 7 days of hourly periods (Period x EvaluationPeriods <= 604,800 s).
MAX_FRESHNESS_HOURS = 7 * 24


def schedule_interval_hours(expr: str) -> float:
    """The longest expected gap between two scheduled runs, in hours.

    rate(): exact. cron(): conservative, from the most restrictive field: a day-of-month, month
    or year that is not `*` gives 31 days (monthly, or rarer, which exceeds what an alarm can
    watch); a day-of-week other than `*`/`?` gives 7 days; an hour field of `*` gives 1 hour and
    `*/n` or `a/n` gives n hours; anything else (fixed hours, lists, ranges) gives 1 day.
    """
    if match := RATE.match(expr):
        value, unit = int(match["value"]), match["unit"].rstrip("s")
        return value * {"minute": 1 / 60, "hour": 1, "day": 24}[unit]
    match = CRON.match(expr)
    if not match:
        raise ValueError(f"{expr!r} is neither rate() nor cron()")
    _minutes, hours, day_of_month, month, day_of_week, year = match["fields"].split(" ")
    if day_of_month not in ("*", "?") or month != "*" or year != "*":
        return 31 * 24
    if day_of_week not in ("*", "?"):
        return 7 * 24
    if hours == "*":
        return 1
    if step := re.fullmatch(r"(?:\*|\d+)/(\d+)", hours):
        return int(step[1])
    return 24


def _metric(naming: Naming, name: str, dataset: str, layer: str, statistic: str, period_s: int) -> cw.Metric:
    return cw.Metric(
        namespace=naming.metrics_namespace,
        metric_name=name,
        dimensions_map={"Dataset": dataset, "Layer": layer, "Stage": DEFAULT_STAGE},
        statistic=statistic,
        period=Duration.seconds(period_s),
    )


def freshness_window_hours(core: CoreConfig, dataset: DatasetConfig) -> float | None:
    """The window in which a success must appear (expected interval plus grace); None: no freshness alarm
    (not scheduled and not asked for, or turned off)."""
    own = dataset.monitoring
    if own.freshness is False or (own.freshness is None and not dataset.schedule):
        return None
    expected = own.expected_every_hours
    if expected is None:
        expected = schedule_interval_hours(dataset.schedule) if dataset.schedule else 0.0
    grace = own.freshness_grace_hours
    return expected + (grace if grace is not None else core.monitoring.freshness_grace_hours)


class DatasetMonitoring(Construct):
    """A dataset's alarms, each to the failures topic: freshness, reject-rate warning, duration,
    and the export function's errors when it has one."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        naming: Naming,
        core: CoreConfig,
        dataset: DatasetConfig,
        topic: sns.ITopic,
        layers: Sequence[str],
        export_function: lambda_.IFunction | None = None,
    ):
        super().__init__(scope, construct_id)
        self.naming, self.dataset, self.core = naming, dataset, core
        self.action = cw_actions.SnsAction(topic)
        self.alarms: dict[str, cw.Alarm | cw.AnomalyDetectionAlarm] = {}
        name, defaults, own = dataset.dataset, core.monitoring, dataset.monitoring

        hours = self.freshness_hours()
        if hours is not None:
            if hours > MAX_FRESHNESS_HOURS:
                Annotations.of(self).add_warning_v2(
                    "pp-dw:freshness",
                    f"{name}: no freshness alarm: a successful run is expected only every {hours:g} hours "
                    f"(schedule plus grace), beyond the {MAX_FRESHNESS_HOURS} hours a CloudWatch alarm can watch",
                )
            else:
                # One hourly period per hour of the window, all breaching: no success anywhere in it.
                periods = max(1, math.ceil(hours))
                last = layers[-1]  # the dataset is fresh when its last layer succeeded
                self._add(
                    "freshness",
                    cw.Alarm(
                        self,
                        "Freshness",
                        alarm_name=naming.alarm(name, "freshness"),
                        alarm_description=(
                            f"{name} is stale: no successful {last} run in the last {periods} hours "
                            f"(expected every {self.expected_hours():g} h plus {self.grace_hours():g} h grace). "
                            f"Check the pipeline {naming.state_machine(name)} and `dw runs {name}`."
                        ),
                        metric=_metric(naming, "Succeeded", name, last, "Maximum", HOUR),
                        threshold=1,
                        comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                        evaluation_periods=periods,
                        datapoints_to_alarm=periods,
                        # Runs that stop entirely send nothing: silence is staleness.
                        treat_missing_data=cw.TreatMissingData.BREACHING,
                    ),
                )

        warning = self.reject_warning()
        self._add(
            "reject-rate",
            cw.Alarm(
                self,
                "RejectRate",
                alarm_name=naming.alarm(name, "reject-rate"),
                alarm_description=(
                    f"{name}: a bronze run rejected more than {warning:.2%} of its rows (the run fails at "
                    f"{dataset.quality.max_rejected_fraction:.2%}). See quarantine/{name}/ for the reasons."
                ),
                metric=_metric(naming, "RejectedFraction", name, "bronze", "Maximum", HOUR),
                threshold=warning,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
        )

        limit = own.max_duration_minutes or defaults.max_duration_minutes
        band = own.duration_band_stddevs or defaults.duration_band_stddevs
        for layer in layers:
            metric = _metric(naming, "DurationSeconds", name, layer, "Maximum", HOUR)
            alarm_name = naming.alarm(name, f"{layer}-duration")
            if limit:
                alarm = cw.Alarm(
                    self,
                    f"{layer.title()}Duration",
                    alarm_name=alarm_name,
                    alarm_description=f"{name}: a {layer} run took longer than {limit} minutes",
                    metric=metric,
                    threshold=limit * 60,
                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                )
            else:
                alarm = cw.AnomalyDetectionAlarm(
                    self,
                    f"{layer.title()}Duration",
                    alarm_name=alarm_name,
                    alarm_description=(
                        f"{name}: a {layer} run took far longer than usual (above CloudWatch's anomaly band of "
                        f"{band:g} standard deviations over its recent runs)"
                    ),
                    metric=metric,
                    std_devs=band,
                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_UPPER_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                )
            self._add(f"{layer}-duration", alarm)

        if export_function is not None:
            self._add(
                "export-errors",
                cw.Alarm(
                    self,
                    "ExportErrors",
                    alarm_name=naming.alarm(name, "export-errors"),
                    alarm_description=f"{name}: the DynamoDB export function {naming.export_function(name)} failed",
                    metric=export_function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
                    threshold=1,
                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                ),
            )

    def _add(self, kind: str, alarm: cw.Alarm | cw.AnomalyDetectionAlarm) -> None:
        alarm.add_alarm_action(self.action)
        self.alarms[kind] = alarm

    def expected_hours(self) -> float:
        own = self.dataset.monitoring
        if own.expected_every_hours is not None:
            return own.expected_every_hours
        return schedule_interval_hours(self.dataset.schedule) if self.dataset.schedule else 0.0

    def grace_hours(self) -> float:
        own = self.dataset.monitoring
        return (
            own.freshness_grace_hours
            if own.freshness_grace_hours is not None
            else (self.core.monitoring.freshness_grace_hours)
        )

    def freshness_hours(self) -> float | None:
        return freshness_window_hours(self.core, self.dataset)

    def reject_warning(self) -> float:
        own = self.dataset.monitoring.reject_warning_fraction
        if own is not None:
            return own
        return self.core.monitoring.reject_warning_ratio * self.dataset.quality.max_rejected_fraction


def allow_alarms(topic: sns.Topic, key: kms.IKey, naming: Naming) -> None:
    """CloudWatch alarms of this stage may publish to the (encrypted) failures topic; other stages' may not."""
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DatasetAlarms",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "ArnLike": {
                    "aws:SourceArn": _alarm_arn(naming.alarm("*", "*"))
                }
            },
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsToEncryptedTopic",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
        )
    )


def _alarm_arn(name: str) -> str:
    return f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:{name}"


class LakeDashboard(Construct):
    """One CloudWatch dashboard for the stage: a row per dataset, then pipelines and Athena.

    Lives in the core stack and names every dataset's metrics and alarms by convention, so it
    never references a dataset stack's resources.
    """

    def __init__(self, scope: Construct, construct_id: str, *, project: Project):
        super().__init__(scope, construct_id)
        naming = Naming.of(project.core, stage_of(scope))
        day = 24 * HOUR
        self.dashboard = cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=naming.dashboard,
            default_interval=Duration.days(14),
        )
        self.dashboard.add_widgets(
            cw.TextWidget(
                markdown=f"# {naming.etl_resource_prefix} lake\nPer dataset: freshness (alarm state), the last "
                "run's outcome (1 succeeded, 0 failed), rows kept and rejected, and duration per run. Run "
                f"history in SQL: `SELECT * FROM {naming.ops_database}.runs ORDER BY started_at DESC`.",
                width=24,
                height=2,
            )
        )
        pipelines = []
        for name in sorted(project.datasets):
            layers = ["bronze"] + (["gold"] if any((project.dataset_dir(name) / "gold").glob("*.sql")) else [])

            def metric(metric_name: str, layer: str, statistic: str, label: str, period: int = day) -> cw.Metric:
                return _metric(naming, metric_name, name, layer, statistic, period).with_(label=label)  # noqa: B023

            # The alarms DatasetMonitoring creates for it, by name: the dashboard never waits for a dataset stack.
            window = freshness_window_hours(project.core, project.datasets[name])
            kinds = ["freshness"] if window is not None and window <= MAX_FRESHNESS_HOURS else []
            kinds += ["reject-rate", *(f"{layer}-duration" for layer in layers)]
            alarms = [
                cw.Alarm.from_alarm_arn(self, f"{name}-{kind}", _alarm_arn(naming.alarm(name, kind))) for kind in kinds
            ]
            self.dashboard.add_widgets(
                cw.AlarmStatusWidget(alarms=alarms, title=f"{name}: alarms", width=4, height=4),
                cw.SingleValueWidget(
                    metrics=[metric("Succeeded", layer, "Minimum", f"{layer} last run ok", HOUR) for layer in layers],
                    title=f"{name}: last run (1 ok, 0 failed)",
                    sparkline=True,
                    width=4,
                    height=4,
                ),
                cw.GraphWidget(
                    title=f"{name}: bronze rows per day",
                    left=[
                        metric("RowsKept", "bronze", "Sum", "kept"),
                        metric("RowsRejected", "bronze", "Sum", "rejected"),
                    ],
                    width=8,
                    height=4,
                ),
                cw.GraphWidget(
                    title=f"{name}: run duration (s)",
                    left=[metric("DurationSeconds", layer, "Maximum", layer, HOUR) for layer in layers],
                    width=8,
                    height=4,
                ),
            )
            state_machine = (
                f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:{naming.state_machine(name)}"
            )
            pipelines.append(
                cw.Metric(
                    namespace="AWS/States",
                    metric_name="ExecutionsFailed",
                    dimensions_map={"StateMachineArn": state_machine},
                    statistic="Sum",
                    period=Duration.days(1),
                    label=name,
                )
            )
        athena = cw.MathExpression(
            expression=(
                'SUM(SEARCH(\'{AWS/Athena,QueryState,QueryType,WorkGroup} MetricName="ProcessedBytes" '
                f"WorkGroup=\"{naming.workgroup}\"', 'Sum', 86400))"
            ),
            label="bytes scanned per day",
            period=Duration.days(1),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Failed pipeline runs per day", left=pipelines or [athena], width=12, height=5),
            cw.GraphWidget(title=f"Athena {naming.workgroup}: bytes scanned", left=[athena], width=12, height=5),
        )


class RunHistoryTable(Construct):
    """`{database_prefix}_ops.runs`: one row per run and layer, from the JSON lines the jobs write
    under ops/runs/ (declared, not crawled: the columns are a contract)."""

    def __init__(self, scope: Construct, construct_id: str, *, naming: Naming, bucket: s3.IBucket):
        super().__init__(scope, construct_id)
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=naming.ops_database,
                description=f"Operations tables of {naming.etl_resource_prefix}: run history",
                location_uri=bucket.s3_url_for_object("ops/"),
            ),
        )
        self.table = glue.CfnTable(
            self,
            "Runs",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=naming.ops_database,
            table_input=glue.CfnTable.TableInputProperty(
                name="runs",
                description="One row per bronze or gold run (the run ledger), written by the jobs",
                table_type="EXTERNAL_TABLE",
                parameters={"classification": "json", "EXTERNAL": "TRUE"},
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=bucket.s3_url_for_object(naming.ops_runs_prefix()),
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.openx.data.jsonserde.JsonSerDe",
                        parameters={"ignore.malformed.json": "true"},
                    ),
                    columns=[glue.CfnTable.ColumnProperty(name=c, type=t) for c, t in RUN_COLUMNS],
                ),
            ),
        )
        self.table.node.add_dependency(self.database)


__all__ = ["DatasetMonitoring", "LakeDashboard", "RunHistoryTable", "allow_alarms", "schedule_interval_hours"]
