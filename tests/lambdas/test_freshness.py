"""The freshness function against moto's CloudWatch: the age it publishes is what the alarm compares.

Run metrics are put as the jobs put them (dwlib.metrics.metric_data), at the times of past runs,
and the function is called as the hourly rule calls it, with the watch list the core stack gives it.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from dwlib.metrics import AGE_METRIC, metric_data
from dwlib.naming import Naming

ROOT = Path(__file__).resolve().parents[2]
NAMING = Naming("pp-dw", "pp_dw")
NAMESPACE = NAMING.metrics_namespace


def load_handler():
    spec = importlib.util.spec_from_file_location("freshness_handler", ROOT / "lambdas" / "freshness" / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cloudwatch(monkeypatch):
    monkeypatch.setenv("METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("STAGE_DIMENSION", "default")
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def run(client, dataset: str, layer: str, status: str, finished: datetime) -> None:
    """One finished run's metrics, exactly as a Glue job publishes them."""
    summary = {
        "dataset": dataset, "layer": layer, "status": status, "rows_in": 10, "rows_kept": 10,
        "started_at": (finished - timedelta(minutes=3)).isoformat(), "finished_at": finished.isoformat(),
    }  # fmt: skip
    client.put_metric_data(Namespace=NAMESPACE, MetricData=metric_data(summary, NAMING))


def published(client, dataset: str, layer: str, now: datetime) -> list[float]:
    dims = [{"Name": "Dataset", "Value": dataset}, {"Name": "Layer", "Value": layer},
            {"Name": "Stage", "Value": "default"}]  # fmt: skip
    found = client.get_metric_statistics(
        Namespace=NAMESPACE, MetricName=AGE_METRIC, Dimensions=dims, StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1), Period=60, Statistics=["Maximum"],
    )  # fmt: skip
    return [p["Maximum"] for p in found["Datapoints"]]


def test_ages_are_hours_since_the_last_success_however_long_ago(cloudwatch):
    handler = load_handler()
    now = datetime.now(UTC)
    run(cloudwatch, "daily", "bronze", "succeeded", now - timedelta(hours=30))
    run(cloudwatch, "daily", "bronze", "succeeded", now - timedelta(hours=5, minutes=10))
    run(cloudwatch, "daily", "bronze", "failed", now - timedelta(hours=1))  # a later failure is no success
    run(cloudwatch, "monthly", "gold", "succeeded", now - timedelta(days=20))  # far beyond an alarm's 7 days
    run(cloudwatch, "monthly", "bronze", "succeeded", now - timedelta(hours=2))  # another layer: not watched

    result = handler.handler({"watch": [["daily", "bronze", 30], ["monthly", "gold", 750]]}, None, cloudwatch)

    ages = {(p["dataset"], p["layer"]): p["hours"] for p in result["published"]}
    # Counted from the start of the hour of the success: at most one hour more than the real age.
    assert 5 + 10 / 60 <= ages["daily", "bronze"] <= 6 + 10 / 60 + 0.05
    assert 480 <= ages["monthly", "gold"] <= 481.05
    assert published(cloudwatch, "daily", "bronze", now) == [ages["daily", "bronze"]]
    assert published(cloudwatch, "monthly", "gold", now) == [ages["monthly", "gold"]]


def test_a_dataset_whose_runs_stopped_or_only_fail_is_older_than_its_window(cloudwatch):
    handler = load_handler()
    now = datetime.now(UTC)
    run(cloudwatch, "weekly", "bronze", "failed", now - timedelta(hours=3))
    run(cloudwatch, "weekly", "bronze", "succeeded", now - timedelta(days=8))  # past its 174-hour window
    run(cloudwatch, "gone", "bronze", "succeeded", now - timedelta(days=30))  # past the window plus a day
    watch = [["weekly", "bronze", 174], ["silent", "bronze", 30], ["gone", "bronze", 174]]
    result = handler.handler({"watch": watch}, None, cloudwatch)
    ages = {p["dataset"]: p for p in result["published"]}
    assert ages["weekly"]["hours"] > 174  # the alarm's threshold: it fires
    assert 8 * 24 <= ages["weekly"]["hours"] <= 8 * 24 + 1.05
    assert ages["gone"]["last_success"] is None and ages["gone"]["hours"] == 174 + 24
    # Never succeeded (or not within the window plus a day): the lookback, which is past the window.
    assert ages["silent"]["last_success"] is None and ages["silent"]["hours"] == 30 + 24
    assert published(cloudwatch, "silent", "bronze", now) == [54.0]


def test_a_dataset_without_a_window_gets_its_age_over_all_of_cloudwatchs_retention(cloudwatch):
    handler = load_handler()
    now = datetime.now(UTC)
    run(cloudwatch, "on-demand", "bronze", "succeeded", now - timedelta(days=100))
    result = handler.handler({"watch": [["on-demand", "bronze"], ["never", "bronze", None]]}, None, cloudwatch)
    ages = {p["dataset"]: p for p in result["published"]}
    assert 2400 <= ages["on-demand"]["hours"] <= 2401.05
    assert ages["never"]["last_success"] is None and ages["never"]["hours"] == 455 * 24


def test_no_watch_list_publishes_nothing(cloudwatch):
    handler = load_handler()
    assert handler.handler({}, None, cloudwatch) == {"published": []}
    assert cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"] == []


def test_lookback_never_passes_cloudwatchs_retention():
    handler = load_handler()
    assert handler.lookback_hours(30) == 54
    assert handler.lookback_hours(10_000) == 10_024
    assert handler.lookback_hours(20_000) == 455 * 24
    assert handler.lookback_hours(None) == 455 * 24


class PagedCloudWatch:
    """A client that answers GetMetricData in pages, oldest first (as ScanBy does not promise across
    pages), and records what was put."""

    def __init__(self, pages: list[list[tuple[datetime, float]]]):
        self.pages, self.calls, self.put = pages, [], []

    def get_metric_data(self, **request):
        self.calls.append(request)
        index = int(request.get("NextToken", "0"))
        stamps, values = zip(*self.pages[index], strict=True) if self.pages[index] else ((), ())
        answer = {"MetricDataResults": [{"Id": "succeeded", "Timestamps": list(stamps), "Values": list(values)}]}
        if index + 1 < len(self.pages):
            answer["NextToken"] = str(index + 1)
        return answer

    def put_metric_data(self, **request):
        self.put.append(request)


def test_every_page_is_read_and_the_newest_success_wins(monkeypatch):
    monkeypatch.setenv("METRICS_NAMESPACE", NAMESPACE)
    handler = load_handler()
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    hour = now.replace(minute=0)
    client = PagedCloudWatch([
        [(hour - timedelta(hours=40), 1.0), (hour - timedelta(hours=3), 0.0)],
        [],
        [(hour - timedelta(hours=2), 1.0), (hour - timedelta(hours=1), 0.0)],
    ])  # fmt: skip
    monkeypatch.setattr(handler, "datetime", type("Frozen", (), {"now": staticmethod(lambda tz: now)}))
    result = handler.handler({"watch": [["d", "bronze", 30]]}, None, client)
    assert len(client.calls) == 3 and client.calls[1]["NextToken"] == "1"
    assert result["published"][0]["hours"] == 2.5  # from the start of the newest hour with a success
    query = client.calls[0]
    assert query["EndTime"] == hour + timedelta(hours=1) and query["StartTime"] == hour + timedelta(hours=1 - 55)
    assert query["MetricDataQueries"][0]["MetricStat"]["Period"] == 3600
    [put] = client.put
    assert put["Namespace"] == NAMESPACE and put["MetricData"][0]["Value"] == 2.5
