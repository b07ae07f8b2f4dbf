"""A run on Glue publishes the metrics the alarms read: same namespace, names and dimensions."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from dwlib import entry, jobs, metrics
from dwlib.lake import LocalLake
from dwlib.naming import Naming

ROOT = Path(__file__).resolve().parents[2]
RUN = "20261121T060000Z"
DATASET = "app-users"  # its files are dropped under raw/: no network


def deployed_lake(tmp_path: Path, drop: bool = True) -> tuple[LocalLake, Naming]:
    lake = LocalLake(tmp_path / "lake")
    core, dataset, *_ = jobs.find_job_config(lake, DATASET)
    naming = Naming.of(core)
    lake.write_json(naming.job_config_key(DATASET), jobs.job_config_document(core, dataset))
    if drop:
        sample = ROOT / "datasets" / DATASET / "sample" / f"{DATASET}.csv"
        lake.put_file(sample, Naming.export_key(DATASET, RUN))
        lake.write_bytes(Naming.drop_marker_key(DATASET, RUN), b'{"files": ["app-users.csv"]}')
    return lake, naming


def glue_argv(lake: LocalLake, **overrides: str) -> list[str]:
    args = jobs.default_arguments(DATASET, str(lake.root), jobs.BRONZE_ARGS, force_dry_run=False)
    args.update({f"--{k}": v for k, v in overrides.items()})
    argv = ["bronze_job.py", "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1"]
    for key, value in args.items():
        argv += [key, value]
    return argv


@pytest.fixture(scope="module")
def alarm_metrics() -> list[tuple[str, str, frozenset]]:
    """(namespace, metric name, dimensions) of every run-metric alarm of the app-users stack, as synthesized."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from dwlib.config import load_project
    from stacks.assets import build_glue_assets, build_lambda_asset
    from stacks.dataset_stack import DatasetStack

    project = load_project(ROOT)
    app = cdk.App()
    stack = DatasetStack(
        app,
        "Test",
        core=project.core,
        dataset=project.datasets[DATASET],
        dataset_dir=project.dataset_dir(DATASET),
        glue_assets_dir=build_glue_assets(),
        export_code_dir=build_lambda_asset("dynamodb_csv_export"),
    )
    found = []
    for alarm in Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        stats = (
            [props]
            if "MetricName" in props
            else [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        )
        for stat in stats:
            if stat["Namespace"].startswith("AWS/"):  # the export function's Errors: AWS's own metric
                continue
            dims = frozenset((d["Name"], d["Value"]) for d in stat.get("Dimensions", []))
            found.append((stat["Namespace"], stat["MetricName"], dims))
    return [m for m in found if not m[0].startswith("AWS/")]


def published(naming: Naming) -> dict[tuple[str, frozenset], float]:
    client = boto3.client("cloudwatch")
    out = {}
    for metric in client.list_metrics(Namespace=naming.metrics_namespace)["Metrics"]:
        dims = frozenset((d["Name"], d["Value"]) for d in metric["Dimensions"])
        stats = client.get_metric_statistics(
            Namespace=naming.metrics_namespace,
            MetricName=metric["MetricName"],
            Dimensions=metric["Dimensions"],
            StartTime="2000-01-01T00:00:00Z",
            EndTime="2100-01-01T00:00:00Z",
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        out[(metric["MetricName"], dims)] = max(p["Maximum"] for p in stats)
    return out


def freshness_handler():
    import importlib.util

    spec = importlib.util.spec_from_file_location("freshness_handler", ROOT / "lambdas" / "freshness" / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.spark
def test_a_glue_run_publishes_every_metric_an_alarm_reads(on_glue, spark, tmp_path, alarm_metrics, monkeypatch):
    lake, naming = deployed_lake(tmp_path)
    monkeypatch.setenv("METRICS_NAMESPACE", naming.metrics_namespace)  # as FreshnessCheck sets it
    started = time.time()
    with mock_aws():
        code = entry.main(
            lambda _s, args: entry.run_bronze_job(spark, args), jobs.BRONZE_ARGS, glue_argv(lake, run_id=RUN)
        )
        assert code == 0
        sent = published(naming)
        # The freshness alarm reads the age the hourly function derives from the run's Succeeded.
        ages = freshness_handler().handler({"watch": [[DATASET, "bronze", 30]]}, None, boto3.client("cloudwatch"))
        checked = time.time()
        aged = published(naming)
    kinds = {name for _, name, _ in alarm_metrics}
    # freshness, reject rate, duration
    assert {metrics.AGE_METRIC, "RejectedFraction", "DurationSeconds"} <= kinds
    for namespace, name, dims in alarm_metrics:
        assert namespace == naming.metrics_namespace == "pp-dw/pipeline"
        if name == metrics.AGE_METRIC:
            assert (name, dims) in aged, f"alarm reads {name} {sorted(dims)}, the check sent {sorted(aged)}"
            # The run succeeded between `started` and `checked`; the age counts from the start of that hour, so it
            # is at most an hour more (plus the rounding to 0.01 h), even when an hour began in between.
            assert 0 <= aged[(name, dims)] <= 1 + (checked - started) / 3600 + 0.01
            continue
        assert (name, dims) in sent, f"alarm reads {name} {sorted(dims)}, the run sent {sorted(sent)}"
    assert ages["published"][0]["last_success"] is not None
    bronze = frozenset({("Dataset", DATASET), ("Layer", "bronze"), ("Stage", "default")})
    assert sent[("Succeeded", bronze)] == 1
    assert sent[("RowsKept", bronze)] == 60 and sent[("RowsIn", bronze)] == 60
    assert sent[("RowsRejected", bronze)] == 0 and sent[("RejectedFraction", bronze)] == 0
    assert sent[("BytesWritten", bronze)] > 0 and sent[("DurationSeconds", bronze)] > 0
    assert set(metrics.METRICS) == {name for name, _ in sent}


def test_a_failed_glue_run_still_publishes_and_succeeded_is_zero(on_glue, tmp_path):
    lake, naming = deployed_lake(tmp_path, drop=False)
    with mock_aws():
        with pytest.raises(entry.JobRunFailed):  # no raw run to re-read: the run fails, and says so
            entry.main(
                lambda _s, args: entry.run_bronze_job(lambda: _no_spark(), args),
                jobs.BRONZE_ARGS,
                glue_argv(lake, run_id=RUN, raw_run_id="20200101T000000Z"),
            )
        sent = published(naming)
    bronze = frozenset({("Dataset", DATASET), ("Layer", "bronze"), ("Stage", "default")})
    assert sent[("Succeeded", bronze)] == 0
    assert sent[("RowsKept", bronze)] == 0
    ledger = json.loads(lake.read_bytes(naming.run_summary_key(DATASET, RUN)))
    assert ledger["status"] == "failed"
    assert ledger["code_version"] and ledger["config_hash"].startswith("sha256:")


def _no_spark():
    from dwlib.jobs import local_session

    return local_session("pp-dw-tests", cores="1")


def test_locally_nothing_is_published(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "awsglue.utils", raising=False)
    assert not metrics.on_glue()


def test_metric_data_of_a_failed_run_keeps_what_it_measured():
    summary = {
        "dataset": "d", "layer": "bronze", "status": "failed", "rows_in": 200, "rows_kept": 0,
        "rows_rejected": 50, "output_bytes": 0, "schema_changed": True,
        "started_at": "2026-11-21T06:00:00+00:00", "finished_at": "2026-11-21T06:02:30+00:00",
    }  # fmt: skip
    data = {d["MetricName"]: d for d in metrics.metric_data(summary, Naming("pp-dw-dev", "pp_dw_dev"))}
    assert data["RejectedFraction"]["Value"] == 0.25
    assert data["DurationSeconds"]["Value"] == 150 and data["DurationSeconds"]["Unit"] == "Seconds"
    assert data["Succeeded"]["Value"] == 0 and data["SchemaChanged"]["Value"] == 1
    assert data["RowsIn"]["Dimensions"] == [
        {"Name": "Dataset", "Value": "d"}, {"Name": "Layer", "Value": "bronze"}, {"Name": "Stage", "Value": "default"}
    ]  # fmt: skip


def test_a_metrics_outage_does_not_fail_the_run(capsys):
    class Broken:
        def put_metric_data(self, **_):
            raise RuntimeError("endpoint unreachable")

    summary = {"dataset": "d", "layer": "gold", "status": "succeeded"}
    assert metrics.publish(summary, Naming("pp-dw", "pp_dw"), client=Broken()) is False
    assert "could not publish" in capsys.readouterr().err


def test_the_runs_table_row_has_every_declared_column_in_order():
    row = metrics.run_record({"dataset": "d", "layer": "bronze", "run_id": RUN, "status": "succeeded",
                              "started_at": "2026-11-21T06:00:00+00:00", "rows_in": 3, "rows_rejected": 1})  # fmt: skip
    assert list(row) == [c for c, _ in metrics.RUN_COLUMNS]
    assert row["started_at"] == "2026-11-21 06:00:00" and row["rejected_fraction"] == round(1 / 3, 6)
