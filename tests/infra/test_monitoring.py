"""Alarms, dashboard and run-history table as synthesized: what an operator is paged for and sees."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from dwlib.metrics import RUN_COLUMNS
from dwlib.naming import Naming
from stacks.monitoring import MAX_ALARM_LOOKBACK_HOURS, freshness_watch, schedule_interval_hours


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


def test_a_daily_dataset_alarms_when_its_last_success_is_older_than_a_day_plus_grace(templates, naming, project):
    found = alarms(templates, naming, "fda-nsde")  # cron(0 6 * * ? *)
    fresh = found["pp-dw-alarm-fda-nsde-freshness"]
    grace = project.core.monitoring.freshness_grace_hours
    assert fresh["MetricName"] == "HoursSinceSuccess" and fresh["Namespace"] == "pp-dw/pipeline"
    assert fresh["Statistic"] == "Maximum" and fresh["Threshold"] == 24 + grace
    assert fresh["ComparisonOperator"] == "GreaterThanThreshold"
    assert fresh["Period"] == 3600 and fresh["EvaluationPeriods"] == fresh["DatapointsToAlarm"] == 2
    assert fresh["TreatMissingData"] == "breaching"  # no age at all (the check stopped) alarms too
    assert {"Name": "Layer", "Value": "bronze"} in fresh["Dimensions"]
    assert topic_arn_in(fresh["AlarmActions"]) and "stale" in fresh["AlarmDescription"]


def test_every_scheduled_dataset_gets_a_freshness_alarm_however_rare_its_schedule(templates, naming, project):
    scheduled = [name for name, d in project.datasets.items() if d.schedule]
    assert "ourairports" in scheduled  # weekly: 7 days plus grace, beyond what an alarm can look back
    for name in scheduled:
        window = (
            schedule_interval_hours(project.datasets[name].schedule) + project.core.monitoring.freshness_grace_hours
        )
        fresh = alarms(templates, naming, name)[f"pp-dw-alarm-{name}-freshness"]
        assert fresh["Threshold"] == window and fresh["MetricName"] == "HoursSinceSuccess", name


def test_no_alarm_looks_back_further_than_cloudwatch_allows(templates):
    # PutMetricAlarm: Period x EvaluationPeriods <= 604,800 s (7 days), <= 86,400 s for periods under an hour.
    for template in templates.values():
        for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
            props = alarm["Properties"]
            periods = [props["Period"]] if "Period" in props else [
                m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m
            ]  # fmt: skip
            for period in periods:
                limit = MAX_ALARM_LOOKBACK_HOURS * 3600 if period >= 3600 else 86_400
                assert period * props["EvaluationPeriods"] <= limit, props["AlarmName"]


def test_a_dataset_without_schedule_gets_no_freshness_alarm(templates, naming):
    found = alarms(templates, naming, "epa-daily-aqi")
    assert "pp-dw-alarm-epa-daily-aqi-freshness" not in found
    assert "pp-dw-alarm-epa-daily-aqi-reject-rate" in found


def test_freshness_of_a_dataset_with_gold_watches_its_last_layer(templates, naming, project):
    found = alarms(templates, naming, "ourairports")
    fresh = found["pp-dw-alarm-ourairports-freshness"]
    assert {"Name": "Layer", "Value": "gold"} in fresh["Dimensions"]
    assert fresh["Threshold"] == 7 * 24 + project.core.monitoring.freshness_grace_hours
    assert {"pp-dw-alarm-ourairports-bronze-duration", "pp-dw-alarm-ourairports-gold-duration"} <= set(found)


def freshness_resources(templates, naming):
    core = templates[naming.core_stack]
    function = next(
        f["Properties"] for f in core.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == "pp-dw-freshness"
    )  # fmt: skip
    rule = next(
        r["Properties"] for r in core.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("Name") == "pp-dw-freshness"
    )  # fmt: skip
    return core, function, rule


def test_the_hourly_check_publishes_the_age_every_freshness_alarm_reads(templates, naming, project):
    _, function, rule = freshness_resources(templates, naming)
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    env = function["Environment"]["Variables"]
    assert env["METRICS_NAMESPACE"] == "pp-dw/pipeline" and env["AGE_METRIC"] == "HoursSinceSuccess"
    assert env["SUCCESS_METRIC"] == "Succeeded" and function["Runtime"] == "python3.14"
    assert function["LoggingConfig"]["LogFormat"] == "JSON"  # one JSON record per line, the figures in it
    listed = [item for target in rule["Targets"] for item in json.loads(target["Input"])["watch"]]
    assert listed == freshness_watch(project)
    # Every dataset's age is published (the dashboard shows it); those with a window have an alarm on it.
    assert sorted(item[0] for item in listed) == sorted(project.datasets)
    assert ["epa-daily-aqi", "bronze"] in listed  # on demand: an age, no alarm
    watched = [item for item in listed if len(item) == 3]
    # Each dataset stack's alarm and the core stack's watch list agree on the metric's dimensions and window.
    every_alarm = {}
    for name in project.datasets:
        every_alarm.update(alarms(templates, naming, name))
    fresh = {a["AlarmName"]: a for a in every_alarm.values() if a["AlarmName"].endswith("-freshness")}
    assert sorted(fresh) == sorted(f"pp-dw-alarm-{d}-freshness" for d, _, _ in watched)
    for dataset, layer, window in watched:
        alarm = fresh[f"pp-dw-alarm-{dataset}-freshness"]
        assert alarm["Threshold"] == window
        assert alarm["Dimensions"] == [
            {"Name": "Dataset", "Value": dataset}, {"Name": "Layer", "Value": layer},
            {"Name": "Stage", "Value": "default"},
        ]  # fmt: skip


def test_the_check_may_only_read_metrics_and_put_its_own(templates, naming):
    core, function, _ = freshness_resources(templates, naming)
    role_id = function["Role"]["Fn::GetAtt"][0]
    role = core.to_json()["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    actions = sorted(a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    assert actions == ["cloudwatch:GetMetricData", "cloudwatch:PutMetricData", "logs:CreateLogStream",
                       "logs:PutLogEvents"]  # fmt: skip
    put = next(s for s in statements if s["Action"] == "cloudwatch:PutMetricData")
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": "pp-dw/pipeline"}}
    logs = next(s for s in statements if s["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"])
    assert "Ref" in json.dumps(logs["Resource"]) or "GetAtt" in json.dumps(logs["Resource"])  # its own log group


def test_a_monthly_schedule_gets_a_freshness_alarm_beyond_seven_days(project):
    template = one_stack(project, "fda-nsde", schedule="cron(0 6 1 * ? *)")
    found = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    fresh = found["pp-dw-alarm-fda-nsde-freshness"]
    assert fresh["Threshold"] == 31 * 24 + project.core.monitoring.freshness_grace_hours > MAX_ALARM_LOOKBACK_HOURS
    assert fresh["Period"] * fresh["EvaluationPeriods"] <= MAX_ALARM_LOOKBACK_HOURS * 3600


def test_a_window_longer_than_cloudwatch_keeps_data_is_refused(project):
    from dwlib.config import DatasetMonitoring

    dataset = project.datasets["epa-daily-aqi"].model_copy(
        update={"monitoring": DatasetMonitoring(freshness=True, expected_every_hours=20_000)}
    )
    datasets = {**project.datasets, "epa-daily-aqi": dataset}
    fake = type("P", (), {"core": project.core, "datasets": datasets, "dataset_dir": project.dataset_dir})()
    with pytest.raises(ValueError, match=r"datasets/epa-daily-aqi/config.json: monitoring: .*20006 hours"):
        freshness_watch(fake)


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
    assert "alarm:pp-dw-alarm-ourairports-freshness" in body  # weekly: watched too
    assert "alarm:pp-dw-alarm-epa-daily-aqi-freshness" not in body
    assert "hours since last success" in body
    for metric in ("RowsKept", "RowsRejected", "DurationSeconds", "Succeeded", "ExecutionsFailed", "ProcessedBytes",
                   "HoursSinceSuccess"):  # fmt: skip
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
        ("cron(0 0 L * ? *)", 744),
        ("cron(0 6,18 * * ? *)", 24),
        # Never shorter than the real gap: a yearly or first-Monday schedule must not alarm between runs.
        ("cron(0 0 1 1 ? *)", 366 * 24),
        ("cron(0 0 1 1,7 ? *)", 366 * 24),
        ("cron(0 9 ? * MON#1 *)", 35 * 24),
        ("cron(0 9 ? * 6L *)", 35 * 24),
        ("cron(0 6 * * ? 2027)", 24),
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
    assert found["pp-dw-alarm-epa-daily-aqi-freshness"]["Threshold"] == 14
    assert found["pp-dw-alarm-epa-daily-aqi-reject-rate"]["Threshold"] == 0.01
    duration = found["pp-dw-alarm-epa-daily-aqi-bronze-duration"]
    assert duration["Threshold"] == 30 * 60 and duration["ComparisonOperator"] == "GreaterThanThreshold"


def test_standard_jobs_keep_glues_default_execution_class(project):
    jobs = one_stack(project, "epa-daily-aqi").find_resources("AWS::Glue::Job")
    assert all("ExecutionClass" not in j["Properties"] for j in jobs.values())


def test_a_stage_with_more_datasets_than_a_dashboard_holds_gets_more_pages(project, tmp_path):
    """CloudWatch refuses a dashboard of more than 500 widgets or 2,500 metrics, and the core stack's deploy
    with it: 250 datasets (4 widgets each) are three pages, each within both limits, each dataset on one."""
    import dataclasses

    import aws_cdk as cdk

    from stacks.monitoring import DATASETS_PER_DASHBOARD, LakeDashboard

    template = project.datasets["fda-nsde"]
    names = [f"d{i:03d}" for i in range(250)]
    many = dataclasses.replace(
        project, root=tmp_path, datasets={n: template.model_copy(update={"dataset": n}) for n in names}
    )
    stack = cdk.Stack(cdk.App(), "Core")
    LakeDashboard(stack, "Operations", project=many)
    dashboards = Template.from_stack(stack).find_resources("AWS::CloudWatch::Dashboard")
    by_name = {r["Properties"]["DashboardName"]: r["Properties"]["DashboardBody"] for r in dashboards.values()}
    assert sorted(by_name) == ["pp-dw-lake", "pp-dw-lake-2", "pp-dw-lake-3"]
    shown = []
    for body in by_name.values():
        text = "".join(part if isinstance(part, str) else "X" for part in body["Fn::Join"][1])
        widgets = json.loads(text)["widgets"]
        metrics = [m for w in widgets for m in w["properties"].get("metrics", [])]
        assert len(widgets) <= 500 and len(metrics) <= 2500
        shown += [w["properties"]["title"].split(":")[0] for w in widgets if w["type"] == "alarm"]
    assert sorted(shown) == names and DATASETS_PER_DASHBOARD == 100
