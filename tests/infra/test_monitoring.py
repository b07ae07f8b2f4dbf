"""Alarms, dashboard and run-history table as synthesized: what an operator is paged for and sees."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from dwlib.metrics import RUN_COLUMNS
from dwlib.naming import Naming
from stacks.monitoring import MAX_FRESHNESS_HOURS, schedule_interval_hours


@pytest.fixture(scope="module")
def naming(project) -> Naming:
    return Naming.of(project.core)


@pytest.fixture(scope="module")
def templates(stacks) -> dict[str, Template]:
    return {name: Template.from_stack(stack) for name, stack in stacks.items()}


def alarms(templates, naming, dataset) -> dict[str, dict]:
    found = templates[naming.dataset_stack(dataset)].find_resources("AWS::CloudWatch::Alarm")
    return {r["Properties"]["AlarmName"]: r["Properties"] for r in found.values()}


def topic_arn_in(actions) -> bool:
    return any("pp-dw-failures" in json.dumps(a) for a in actions)


def test_a_daily_dataset_alarms_when_no_run_succeeded_for_a_day_plus_grace(templates, naming, project):
    found = alarms(templates, naming, "fda-nsde")  # cron(0 6 * * ? *)
    fresh = found["pp-dw-alarm-fda-nsde-freshness"]
    grace = project.core.monitoring.freshness_grace_hours
    assert fresh["MetricName"] == "Succeeded" and fresh["Namespace"] == "pp-dw/pipeline"
    assert fresh["Period"] == 3600 and fresh["EvaluationPeriods"] == fresh["DatapointsToAlarm"] == 24 + grace
    assert fresh["ComparisonOperator"] == "LessThanThreshold" and fresh["Threshold"] == 1
    assert fresh["TreatMissingData"] == "breaching"  # runs that stop entirely alarm
    assert {"Name": "Layer", "Value": "bronze"} in fresh["Dimensions"]
    assert topic_arn_in(fresh["AlarmActions"]) and "stale" in fresh["AlarmDescription"]


def test_a_dataset_without_schedule_gets_no_freshness_alarm(templates, naming):
    found = alarms(templates, naming, "epa-daily-aqi")
    assert "pp-dw-alarm-epa-daily-aqi-freshness" not in found
    assert "pp-dw-alarm-epa-daily-aqi-reject-rate" in found


def test_freshness_of_a_dataset_with_gold_watches_its_last_layer(templates, naming, project):
    # ourairports runs weekly: 7 days plus grace is beyond what an alarm can watch (annotated instead)
    hours = (
        schedule_interval_hours(project.datasets["ourairports"].schedule)
        + project.core.monitoring.freshness_grace_hours
    )
    found = alarms(templates, naming, "ourairports")
    assert ("pp-dw-alarm-ourairports-freshness" in found) == (hours <= MAX_FRESHNESS_HOURS)
    assert {"pp-dw-alarm-ourairports-bronze-duration", "pp-dw-alarm-ourairports-gold-duration"} <= set(found)


def test_reject_rate_warns_below_the_hard_budget(templates, naming, project):
    for name, dataset in project.datasets.items():
        alarm = alarms(templates, naming, name)[f"pp-dw-alarm-{name}-reject-rate"]
        assert alarm["MetricName"] == "RejectedFraction"
        assert 0 < alarm["Threshold"] < dataset.quality.max_rejected_fraction
        assert alarm["Threshold"] == pytest.approx(
            project.core.monitoring.reject_warning_ratio * dataset.quality.max_rejected_fraction
        )
        assert alarm["TreatMissingData"] == "notBreaching" and topic_arn_in(alarm["AlarmActions"])


def test_duration_alarms_on_cloudwatchs_anomaly_band_by_default(templates, naming):
    alarm = alarms(templates, naming, "fda-nsde")["pp-dw-alarm-fda-nsde-bronze-duration"]
    assert alarm["ComparisonOperator"] == "GreaterThanUpperThreshold"
    expressions = [m.get("Expression", "") for m in alarm["Metrics"]]
    assert any(e.startswith("ANOMALY_DETECTION_BAND(") for e in expressions)
    stat = next(m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m)
    assert stat["Metric"]["MetricName"] == "DurationSeconds"


def test_the_export_functions_errors_page_the_topic(templates, naming):
    alarm = alarms(templates, naming, "app-users")["pp-dw-alarm-app-users-export-errors"]
    assert alarm["Namespace"] == "AWS/Lambda" and alarm["MetricName"] == "Errors"
    assert topic_arn_in(alarm["AlarmActions"])


def test_glue_job_runs_that_fail_outside_the_pipeline_reach_the_topic(templates, naming, project):
    for name in project.datasets:
        rules = templates[naming.dataset_stack(name)].find_resources("AWS::Events::Rule")
        job_rules = [
            r["Properties"] for r in rules.values() if r["Properties"]["Name"] == naming.job_failure_rule(name)
        ]
        assert job_rules and {"FAILED", "TIMEOUT"} <= set(job_rules[0]["EventPattern"]["detail"]["state"])


def test_alarms_may_publish_to_the_encrypted_topic(templates, naming):
    core = templates[naming.core_stack]
    policies = json.dumps(core.find_resources("AWS::SNS::TopicPolicy"))
    assert "cloudwatch.amazonaws.com" in policies and ":alarm:pp-dw-alarm-*-*" in policies
    key = json.dumps(core.find_resources("AWS::KMS::Key"))
    assert "cloudwatch.amazonaws.com" in key


def test_one_dashboard_shows_every_dataset_pipelines_and_athena(templates, naming, project):
    dashboards = templates[naming.core_stack].find_resources("AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1
    props = next(iter(dashboards.values()))["Properties"]
    assert props["DashboardName"] == "pp-dw-lake"
    body = json.dumps(props["DashboardBody"])
    for name in project.datasets:
        assert f"{name}: last run" in body and f"{name}: bronze rows per day" in body
        assert f"pp-dw-pipeline-{name}" in body and f"alarm:pp-dw-alarm-{name}-reject-rate" in body
    assert "alarm:pp-dw-alarm-fda-nsde-freshness" in body  # only alarms that exist: epa-daily-aqi has no schedule
    assert "alarm:pp-dw-alarm-epa-daily-aqi-freshness" not in body
    for metric in ("RowsKept", "RowsRejected", "DurationSeconds", "Succeeded", "ExecutionsFailed", "ProcessedBytes"):
        assert metric in body
    assert "pp-dw-workgroup" in body


def test_run_history_is_a_declared_json_table_in_the_ops_database(templates, naming):
    core = templates[naming.core_stack]
    databases = [r["Properties"]["DatabaseInput"]["Name"] for r in core.find_resources("AWS::Glue::Database").values()]
    assert "pp_dw_ops" in databases
    tables = core.find_resources("AWS::Glue::Table")
    table = next(r["Properties"] for r in tables.values() if r["Properties"]["TableInput"]["Name"] == "runs")
    assert table["DatabaseName"] == "pp_dw_ops"
    storage = table["TableInput"]["StorageDescriptor"]
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert [(c["Name"], c["Type"]) for c in storage["Columns"]] == list(RUN_COLUMNS)
    assert "/ops/runs/" in json.dumps(storage["Location"])


def test_job_roles_may_put_run_metrics_only_in_the_project_namespace(templates, naming):
    policies = json.dumps(templates[naming.core_stack].find_resources("AWS::IAM::Policy"))
    assert '"cloudwatch:namespace": ["Glue", "pp-dw/pipeline"]' in policies


@pytest.mark.parametrize(
    ("expr", "hours"),
    [
        ("rate(1 day)", 24),
        ("rate(6 hours)", 6),
        ("rate(30 minutes)", 0.5),
        ("cron(0 6 * * ? *)", 24),
        ("cron(0 */4 * * ? *)", 4),
        ("cron(15 * * * ? *)", 1),
        ("cron(0 7 ? * MON *)", 168),
        ("cron(0 7 ? * MON-FRI *)", 168),  # conservative: the weekend gap is 3 days
        ("cron(0 0 1 * ? *)", 744),
        ("cron(0 6,18 * * ? *)", 24),
    ],
)
def test_schedule_intervals_are_conservative(expr, hours):
    assert schedule_interval_hours(expr) == hours


def one_stack(project, name: str, **changes) -> Template:
    """A dataset's stack alone, with its config changed as a user would change config.json."""
    import aws_cdk as cdk

    from stacks.assets import build_glue_assets
    from stacks.dataset_stack import DatasetStack

    dataset = project.datasets[name].model_copy(update=changes)
    stack = DatasetStack(
        cdk.App(),
        "Test",
        core=project.core,
        dataset=type(dataset).model_validate(dataset.model_dump(by_alias=True)),
        dataset_dir=project.dataset_dir(name),
        glue_assets_dir=build_glue_assets(),
    )
    return Template.from_stack(stack)


def test_flex_and_per_dataset_thresholds_reach_the_template(project):
    from dwlib.config import DatasetMonitoring

    template = one_stack(
        project,
        "epa-daily-aqi",  # on demand: freshness only because the dataset asks for it
        execution_class="flex",
        monitoring=DatasetMonitoring(
            freshness=True, expected_every_hours=12, freshness_grace_hours=2, reject_warning_fraction=0.01,
            max_duration_minutes=30,
        ),
    )  # fmt: skip
    jobs = template.find_resources("AWS::Glue::Job")
    assert [j["Properties"].get("ExecutionClass") for j in jobs.values()] == ["FLEX"]
    found = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert found["pp-dw-alarm-epa-daily-aqi-freshness"]["EvaluationPeriods"] == 14
    assert found["pp-dw-alarm-epa-daily-aqi-reject-rate"]["Threshold"] == 0.01
    duration = found["pp-dw-alarm-epa-daily-aqi-bronze-duration"]
    assert duration["Threshold"] == 30 * 60 and duration["ComparisonOperator"] == "GreaterThanThreshold"


def test_standard_jobs_keep_glues_default_execution_class(project):
    jobs = one_stack(project, "epa-daily-aqi").find_resources("AWS::Glue::Job")
    assert all("ExecutionClass" not in j["Properties"] for j in jobs.values())
