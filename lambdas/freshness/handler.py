"""Publish, every hour, how long ago each watched dataset last succeeded.

A CloudWatch alarm can look back at most 7 days (Period x EvaluationPeriods <= 604,800 s), so a
weekly or monthly dataset cannot be watched by counting recent successes. This function turns
"when was the last success" into a metric of its own, `HoursSinceSuccess`, that an alarm
compares with the dataset's window however long that window is.

The event (from the hourly rule) lists what to watch: `{"watch": [[dataset, layer, window_hours],
...]}`, with no window (`[dataset, layer]`) for a dataset without a freshness alarm, whose age only the dashboard
shows (looked for over all 455 days). For each, the last hour in which the run metric `Succeeded` (published by every job run)
reached 1 is found with GetMetricData (hourly data points are kept 455 days); the age is counted
from the start of that hour, so it is at most one hour more than the real age. When no success
is found in the window plus a day, the age is reported as that lookback: older than the window,
which is all the alarm needs. The function never reads the lake.
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

# Only boto3, which the runtime has: nothing to install at synth. The function's log format is JSON
# (stacks/monitoring.py), so each line is one JSON record; the message is the figures, as JSON.
logger = logging.getLogger("freshness")
logger.setLevel(logging.INFO)

RETENTION_HOURS = 455 * 24  # CloudWatch keeps one-hour data points for 455 days
MARGIN_HOURS = 24  # look a day past the window: the age then shows how far past it a dataset is


def lookback_hours(window_hours: float | None) -> int:
    if window_hours is None:
        return RETENTION_HOURS
    return min(RETENTION_HOURS, math.ceil(window_hours) + MARGIN_HOURS)


def last_success(client: Any, namespace: str, metric: str, dimensions: list[dict], start: datetime,
                 end: datetime) -> datetime | None:  # fmt: skip
    """The start of the newest hour in [start, end) in which the metric's maximum reached 1."""
    request = {
        "MetricDataQueries": [
            {
                "Id": "succeeded",
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions},
                    "Period": 3600,
                    "Stat": "Maximum",
                },
                "ReturnData": True,
            }
        ],
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampDescending",
    }
    newest: datetime | None = None
    while True:
        response = client.get_metric_data(**request)
        for result in response["MetricDataResults"]:
            for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                if value >= 1 and (newest is None or stamp > newest):
                    newest = stamp
        token = response.get("NextToken")
        if not token:
            return newest
        request["NextToken"] = token


def ages(client: Any, watch: list[list[Any]], namespace: str, stage: str, metric: str,
         now: datetime) -> list[dict[str, Any]]:  # fmt: skip
    """One entry per watched (dataset, layer): its age in hours and whether a success was found."""
    found = []
    for dataset, layer, *window in watch:
        window_hours = window[0] if window and window[0] is not None else None
        dimensions = [
            {"Name": "Dataset", "Value": dataset},
            {"Name": "Layer", "Value": layer},
            {"Name": "Stage", "Value": stage},
        ]
        hours = lookback_hours(None if window_hours is None else float(window_hours))
        # Whole hours, so the newest bucket is the current one and none is cut in two.
        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        success = last_success(client, namespace, metric, dimensions, end - timedelta(hours=hours + 1), end)
        age = (now - success).total_seconds() / 3600 if success is not None else float(hours)
        found.append({"dataset": dataset, "layer": layer, "dimensions": dimensions, "hours": round(max(age, 0.0), 2),
                      "last_success": success.isoformat() if success else None, "window_hours": window_hours})  # fmt: skip
    return found


def handler(event: dict[str, Any], context: Any, client: Any = None) -> dict[str, Any]:
    namespace = os.environ["METRICS_NAMESPACE"]
    stage = os.environ.get("STAGE_DIMENSION", "default")
    age_metric = os.environ.get("AGE_METRIC", "HoursSinceSuccess")
    success_metric = os.environ.get("SUCCESS_METRIC", "Succeeded")
    watch = event.get("watch") or []
    client = client or boto3.client("cloudwatch")
    now = datetime.now(UTC)
    found = ages(client, watch, namespace, stage, success_metric, now)
    data = [
        {"MetricName": age_metric, "Dimensions": f["dimensions"], "Value": f["hours"], "Unit": "None", "Timestamp": now}
        for f in found
    ]
    for start in range(0, len(data), 500):  # PutMetricData takes at most 1,000 entries per call
        client.put_metric_data(Namespace=namespace, MetricData=data[start : start + 500])
    for f in found:
        window = f["window_hours"]
        figures = {k: v for k, v in f.items() if k != "dimensions"} | {
            "stale": window is not None and f["hours"] > float(window)
        }
        logger.info(json.dumps(figures))
    return {"published": [{k: f[k] for k in ("dataset", "layer", "hours", "last_success")} for f in found]}
