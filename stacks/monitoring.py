"""Operations on AWS: per-dataset alarms, the stage's dashboard, the run-history table.

The metric names, dimensions and namespace come from dwlib.metrics and dwlib.naming, the
same code that publishes them from the jobs, so an alarm always reads what a run sends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from dwlib.config import (
    CoreConfig,
    DatasetConfig,
    Project,
    freshness_problems,
    freshness_window_hours,
    schedule_interval_hours,
)
from dwlib.metrics import AGE_METRIC, DEFAULT_STAGE, RUN_COLUMNS, SUCCESS_METRIC
from dwlib.naming import Naming, fit
from stacks import defaults
from stacks.defaults import stage_of
from stacks.nag import acknowledge
from stacks.tokens import Aws

HOUR = 3600
# An alarm looks back at most 7 days (Period x EvaluationPeriods <= 604,800 s; 1 day for periods under an
# hour), so freshness is not "no success in N hourly periods": the freshness function publishes each
# dataset's hours since its last success, and the alarm compares that with the window, whatever its length.
MAX_ALARM_LOOKBACK_HOURS = 7 * 24
# Two hours in a row over the window (or without a figure): one late hourly check does not page.
FRESHNESS_PERIODS = 2


def _metric_props(naming: Naming, name: str, dataset: str, layer: str, statistic: str, period_s: int) -> dict:
    """A pipeline metric as an L1 alarm's properties."""
    return {
        "namespace": naming.metrics_namespace,
        "metric_name": name,
        "dimensions": [
            {"name": "Dataset", "value": dataset},
            {"name": "Layer", "value": layer},
            {"name": "Stage", "value": DEFAULT_STAGE},
        ],
        "period": period_s,
        "statistic": statistic,
    }


def _js_number(value: float) -> str:
    """A number as JavaScript prints it in a string: 3, not 3.0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


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
        topic_arn: str,
        layers: Sequence[str],
        export_function: lambda_.IFunction | None = None,
    ):
        super().__init__(scope, construct_id)
        self.naming, self.dataset, self.core = naming, dataset, core
        self.topic_arn = topic_arn
        # L1 alarms from plain data: the L2 Alarm, its Metric and its SNS action are each calls into the
        # CDK's Node process, and a dataset stack has four or five alarms. Same properties, same logical IDs.
        self.alarms: dict[str, cw.CfnAlarm] = {}
        name, defaults, own = dataset.dataset, core.monitoring, dataset.monitoring
        above = "GreaterThanThreshold"

        hours = self.freshness_hours()
        if hours is not None:
            last = layers[-1]  # the dataset is fresh when its last layer succeeded
            self._alarm(
                "freshness",
                f"{name} is stale: its last successful {last} run was more than {hours:g} hours ago (expected every "
                f"{self.expected_hours():g} h plus {self.grace_hours():g} h grace), or the hourly freshness check "
                f"{naming.freshness_function} stopped reporting. Check the pipeline {naming.state_machine(name)}, "
                f"`dw runs {name}` and the check's logs.",
                # Published hourly by the freshness function for any window: an alarm itself sees at most 7 days.
                _metric_props(naming, AGE_METRIC, name, last, "Maximum", HOUR),
                above,
                threshold=hours,
                periods=FRESHNESS_PERIODS,
                # No age at all means the check stopped: nothing then watches the dataset, so that pages too.
                missing="breaching",
            )

        warning = self.reject_warning()
        self._alarm(
            "reject-rate",
            f"{name}: a bronze run rejected more than {warning:.2%} of its rows (the run fails at "
            f"{dataset.quality.max_rejected_fraction:.2%}). See quarantine/{name}/ for the reasons.",
            _metric_props(naming, "RejectedFraction", name, "bronze", "Maximum", HOUR),
            above,
            threshold=warning,
        )

        limit = own.max_duration_minutes or defaults.max_duration_minutes
        band = own.duration_band_stddevs or defaults.duration_band_stddevs
        for layer in layers:
            metric = _metric_props(naming, "DurationSeconds", name, layer, "Maximum", HOUR)
            if limit:
                self._alarm(
                    f"{layer}-duration", f"{name}: a {layer} run took longer than {limit} minutes", metric, above,
                    threshold=limit * 60,
                )  # fmt: skip
            else:
                self._alarm(
                    f"{layer}-duration",
                    f"{name}: a {layer} run took far longer than usual (above CloudWatch's anomaly band of "
                    f"{band:g} standard deviations over its recent runs)",
                    metric,
                    "GreaterThanUpperThreshold",
                    std_devs=band,
                )

        if export_function is not None:
            self._alarm(
                "export-errors",
                f"{name}: the DynamoDB export function {naming.export_function(name)} failed",
                {
                    "namespace": "AWS/Lambda",
                    "metric_name": "Errors",
                    "dimensions": [{"name": "FunctionName", "value": export_function.function_name}],
                    "period": 300,
                    "statistic": "Sum",
                },
                "GreaterThanOrEqualToThreshold",
                threshold=1,
            )

    def _alarm(
        self,
        kind: str,
        description: str,
        metric: dict,
        comparison: str,
        *,
        threshold: float | None = None,
        std_devs: float | None = None,
        periods: int = 1,
        missing: str = "notBreaching",
    ) -> cw.CfnAlarm:
        """Every alarm of the dataset: named `{prefix}-alarm-{dataset}-{kind}`, sent to the topic; a fixed
        threshold, or with `std_devs` CloudWatch's anomaly band over the metric's history, rendered as
        the L2 alarms render them (the construct `{Kind}/Resource`, so the logical ID is the L2's)."""
        construct_id = "".join(part.title() for part in kind.split("-"))  # freshness -> Freshness
        props: dict = {
            "alarm_name": self.naming.alarm(self.dataset.dataset, kind),
            "alarm_description": description,
            "comparison_operator": comparison,
            "evaluation_periods": periods,
            "treat_missing_data": missing,
            "alarm_actions": [self.topic_arn],
        }
        if periods > 1:
            props["datapoints_to_alarm"] = periods
        if std_devs is not None:
            props["threshold_metric_id"] = "expr_1"
            props["metrics"] = [
                cw.CfnAlarm.MetricDataQueryProperty(
                    id="expr_1",
                    expression=f"ANOMALY_DETECTION_BAND(m0, {_js_number(std_devs)})",
                    label="Anomaly Detection Band",
                    return_data=True,
                ),
                cw.CfnAlarm.MetricDataQueryProperty(
                    id="m0",
                    metric_stat=cw.CfnAlarm.MetricStatProperty(
                        metric=cw.CfnAlarm.MetricProperty(
                            dimensions=[cw.CfnAlarm.DimensionProperty(**d) for d in metric["dimensions"]],
                            metric_name=metric["metric_name"],
                            namespace=metric["namespace"],
                        ),
                        period=metric["period"],
                        stat=metric["statistic"],
                    ),
                    return_data=True,
                ),
            ]
        else:
            props["threshold"] = threshold
            props.update(metric, dimensions=[cw.CfnAlarm.DimensionProperty(**d) for d in metric["dimensions"]])
        alarm = cw.CfnAlarm(Construct(self, construct_id), "Resource", **props)
        self.alarms[kind] = alarm
        return alarm

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
            conditions={"ArnLike": {"aws:SourceArn": _alarm_arn(naming.alarm("*", "*"))}},
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


def _metric_json(namespace: str, name: str, dimensions: dict[str, str], options: dict) -> list:
    """One metric of a widget as the CDK's dashboard JSON lists it: namespace, name, each dimension's name
    and value, then its options (the period only when it is not CloudWatch's default of 300 s)."""
    options = {k: v for k, v in options.items() if v is not None and not (k == "period" and v == 300)}
    return [namespace, name, *(part for item in dimensions.items() for part in item), options]


# CloudWatch takes at most 500 widgets (and 2,500 metrics) a dashboard: a page holds 100 datasets' rows
# (4 widgets and at most 8 metrics each, with the header and the pipelines and Athena graphs), and a
# stage with more datasets gets `{prefix}-lake-2`, `-3`, ...
DATASETS_PER_DASHBOARD = 100


class LakeDashboard(Construct):
    """The stage's CloudWatch dashboard: a row per dataset, then pipelines and Athena (one page per
    DATASETS_PER_DASHBOARD datasets, in name order).

    Lives in the core stack and names every dataset's metrics and alarms by convention, so it
    never references a dataset stack's resources.

    The body is written as the dashboard JSON it is, each widget and its place as the L2 Dashboard's
    rows laid them out, and handed to an L1 dashboard at the L2's path `Dashboard/Resource` (the same
    logical ID): the L2's widgets, metrics and imported alarms were about 17 calls into the CDK's Node
    process a dataset (make bench, synth).
    """

    def __init__(self, scope: Construct, construct_id: str, *, project: Project):
        super().__init__(scope, construct_id)
        self.project = project
        self.naming = Naming.of(project.core, stage_of(scope))
        names = sorted(project.datasets)
        pages = [names[i : i + DATASETS_PER_DASHBOARD] for i in range(0, len(names), DATASETS_PER_DASHBOARD)]
        self.dashboards = [
            cw.CfnDashboard(
                Construct(self, "Dashboard" if page == 1 else f"Dashboard{page}"),
                "Resource",
                dashboard_name=self.naming.dashboard_page(page),
                # The CDK's own JSON rendering, which turns the pseudo parameters inside strings into Fn::Join.
                dashboard_body=Stack.of(self).to_json_string(self._body(datasets)),
            )
            for page, datasets in enumerate(pages or [[]], start=1)
        ]
        self.dashboard = self.dashboards[0]

    def _body(self, datasets: list[str]) -> dict:
        """One page: the header, a row per dataset, the pipelines' failures and Athena's bytes scanned."""
        naming, project = self.naming, self.project
        day = 24 * HOUR
        region = Aws.REGION
        widgets: list[dict] = []
        y = 0

        def place(row: list[tuple[str, int, int, dict]]) -> None:
            """One row, left to right, as Dashboard.add_widgets placed it (each row here fits in 24 columns)."""
            nonlocal y
            x = 0
            for kind, width, height, properties in row:
                widgets.append(
                    {"type": kind, "width": width, "height": height, "x": x, "y": y, "properties": properties}
                )
                x += width
            y += max(height for _, _, height, _ in row)

        def graph(title: str, metrics: list, **extra) -> dict:
            return {"view": "timeSeries", "title": title, "region": region, **extra, "metrics": metrics, "yAxis": {}}

        place(
            [
                (
                    "text",
                    24,
                    2,
                    {
                        "markdown": f"# {naming.etl_resource_prefix} lake\nPer dataset: its alarms, the last run's "
                        "outcome (1 succeeded, 0 failed) and the hours since its last success; rows kept and "
                        "rejected, and duration per run. Run history in SQL: "
                        f"`SELECT * FROM {naming.ops_database}.runs ORDER BY started_at DESC`."
                    },
                )
            ]
        )
        pipelines = []
        for name in datasets:
            layers = ["bronze"] + (["gold"] if any((project.dataset_dir(name) / "gold").glob("*.sql")) else [])

            def metric(metric_name: str, layer: str, statistic: str, label: str, period: int = day) -> list:
                dimensions = {"Dataset": name, "Layer": layer, "Stage": DEFAULT_STAGE}  # noqa: B023
                return _metric_json(
                    naming.metrics_namespace,
                    metric_name,
                    dimensions,
                    {"label": label, "period": period, "stat": statistic},
                )

            # The alarms DatasetMonitoring creates for it, by name: the dashboard never waits for a dataset stack.
            window = freshness_window_hours(project.core, project.datasets[name])
            kinds = ["freshness"] if window is not None else []
            kinds += ["reject-rate", *(f"{layer}-duration" for layer in layers)]
            last_run = [metric("Succeeded", layer, "Minimum", f"{layer} last run ok", HOUR) for layer in layers]
            last_run.append(metric(AGE_METRIC, layers[-1], "Maximum", "hours since last success", HOUR))
            place(
                [
                    (
                        "alarm",
                        4,
                        4,
                        {
                            "title": f"{name}: alarms",
                            "alarms": [_alarm_arn(naming.alarm(name, kind)) for kind in kinds],
                        },
                    ),
                    (
                        "metric",
                        4,
                        4,
                        {
                            "view": "singleValue",
                            "title": f"{name}: last run (1 ok, 0 failed)",
                            "region": region,
                            "sparkline": True,
                            "metrics": last_run,
                        },
                    ),
                    (
                        "metric",
                        8,
                        4,
                        graph(
                            f"{name}: bronze rows per day",
                            [
                                metric("RowsKept", "bronze", "Sum", "kept"),
                                metric("RowsRejected", "bronze", "Sum", "rejected"),
                            ],
                        ),
                    ),
                    (
                        "metric",
                        8,
                        4,
                        graph(
                            f"{name}: run duration (s)",
                            [metric("DurationSeconds", layer, "Maximum", layer, HOUR) for layer in layers],
                        ),
                    ),
                ]
            )
            state_machine = (
                f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:{naming.state_machine(name)}"
            )
            pipelines.append(
                _metric_json(
                    "AWS/States",
                    "ExecutionsFailed",
                    {"StateMachineArn": state_machine},
                    {"label": name, "period": day, "stat": "Sum"},
                )
            )
        athena = [
            {
                "label": "bytes scanned per day",
                "expression": (
                    'SUM(SEARCH(\'{AWS/Athena,QueryState,QueryType,WorkGroup} MetricName="ProcessedBytes" '
                    f"WorkGroup=\"{naming.workgroup}\"', 'Sum', 86400))"
                ),
                "period": day,
            }
        ]
        place(
            [
                ("metric", 12, 5, graph("Failed pipeline runs per day", pipelines or [athena])),
                ("metric", 12, 5, graph(f"Athena {naming.workgroup}: bytes scanned", [athena])),
            ]
        )
        # Two weeks back by default (the L2's default_interval=Duration.days(14)).
        return {"start": "-P14D", "widgets": widgets}


# An event target's input holds at most 8,192 characters; the watch list is split over targets to fit.
MAX_TARGET_INPUT = 8192
MAX_TARGETS = 5  # per EventBridge rule


def freshness_watch(project: Project) -> list[list]:
    """[dataset, last layer, window hours] for every dataset with a freshness alarm (the same rule as its
    stack), [dataset, last layer] for one without, whose age only the dashboard shows."""
    problems = freshness_problems(project.core, project.datasets)  # load_project reports them first
    if problems:
        raise ValueError("; ".join(str(p) for p in problems))
    watch = []
    for name in sorted(project.datasets):
        window = freshness_window_hours(project.core, project.datasets[name])
        gold = any((project.dataset_dir(name) / "gold").glob("*.sql"))
        watch.append([name, "gold" if gold else "bronze", *([] if window is None else [window])])
    return watch


def _chunks(watch: list[list]) -> list[list[list]]:
    chunks: list[list[list]] = [[]]
    for item in watch:
        if chunks[-1] and len(json.dumps({"watch": [*chunks[-1], item]})) > MAX_TARGET_INPUT:
            chunks.append([])
        chunks[-1].append(item)
    return [c for c in chunks if c]


class FreshnessCheck(Construct):
    """The hourly function that publishes each dataset's hours since its last success.

    Its alarms live in the dataset stacks (DatasetMonitoring); this publishes what they read. It may
    read metrics (GetMetricData has no resource type) and put them only in the project's namespace;
    it reads nothing else.
    """

    def __init__(self, scope: Construct, construct_id: str, *, project: Project, code_dir: Path):
        super().__init__(scope, construct_id)
        naming = Naming.of(project.core, stage_of(scope))
        self.watch = freshness_watch(project)
        name = naming.freshness_function
        log_group = defaults.log_group(self, "Logs", f"/aws/lambda/{name}")
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Publishes {AGE_METRIC} to {naming.metrics_namespace} for the freshness alarms",
            inline_policies={
                "freshness": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"]),
                        iam.PolicyStatement(
                            actions=["cloudwatch:PutMetricData"],
                            resources=["*"],
                            conditions={"StringEquals": {"cloudwatch:namespace": naming.metrics_namespace}},
                        ),
                        iam.PolicyStatement(
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
                        ),
                    ]
                )
            },
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=name,
            description=fit(
                "lambda_function_description",
                "Hourly: hours since each watched dataset last succeeded, for its freshness alarm",
            ),
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(code_dir), exclude=["__pycache__", "*.pyc", "__init__.py"]),
            role=role,
            timeout=Duration.minutes(2),
            memory_size=256,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            environment={
                "METRICS_NAMESPACE": naming.metrics_namespace,
                "STAGE_DIMENSION": DEFAULT_STAGE,
                "AGE_METRIC": AGE_METRIC,
                "SUCCESS_METRIC": SUCCESS_METRIC,
            },
        )
        chunks = _chunks(self.watch)
        if len(chunks) > MAX_TARGETS:
            raise ValueError(
                f"{len(self.watch)} datasets are watched for freshness: more than one hourly rule's {MAX_TARGETS} "
                "targets can carry; turn freshness off (monitoring.freshness: false) where it is not needed"
            )
        self.rule = events.Rule(
            self,
            "Hourly",
            rule_name=naming.freshness_rule,
            description=f"Every hour: {name} publishes each watched dataset's {AGE_METRIC}",
            schedule=events.Schedule.rate(Duration.hours(1)),
            targets=[
                targets.LambdaFunction(self.function, event=events.RuleTargetInput.from_object({"watch": chunk}))
                for chunk in chunks
            ],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "GetMetricData has no resource type; PutMetricData has none either and a condition limits it to the "
            "project's run-metric namespace",
            ["Resource::*"],
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


__all__ = [
    "DatasetMonitoring",
    "FreshnessCheck",
    "LakeDashboard",
    "RunHistoryTable",
    "allow_alarms",
    "freshness_watch",
    "schedule_interval_hours",
]
