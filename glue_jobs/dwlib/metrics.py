"""Every run measured: CloudWatch metrics on Glue, and one JSON line per run for the `runs` table.

The names here are the contract between the jobs and the alarms and dashboard of
stacks/monitoring.py, which read the same constants: a metric renamed here is renamed there.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from dwlib.naming import Naming
from dwlib.secrets import scrub_value

DEFAULT_STAGE = "default"  # a stage's own prefix already gives it its own namespace
DIMENSIONS = ("Dataset", "Layer", "Stage")
# metric name -> CloudWatch unit; one data point of each per run
METRICS: dict[str, str] = {
    "RowsIn": "Count",
    "RowsKept": "Count",
    "RowsRejected": "Count",
    "RejectedFraction": "None",
    "DurationSeconds": "Seconds",
    "BytesWritten": "Bytes",
    "SchemaChanged": "Count",
    "Succeeded": "Count",
}

# Hours since a dataset's layer last succeeded: published hourly by the freshness function (lambdas/freshness),
# not by the runs, so a dataset whose runs stop keeps being measured; its freshness alarm reads it.
AGE_METRIC = "HoursSinceSuccess"
SUCCESS_METRIC = "Succeeded"

# The `runs` table, in order: (column, Athena type). The core stack declares it, `dw query` reads it.
RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dataset", "string"),
    ("layer", "string"),
    ("run_id", "string"),
    ("status", "string"),
    ("started_at", "timestamp"),
    ("finished_at", "timestamp"),
    ("duration_seconds", "double"),
    ("rows_in", "bigint"),
    ("rows_kept", "bigint"),
    ("rows_rejected", "bigint"),
    ("rejected_fraction", "double"),
    ("bytes_fetched", "bigint"),
    ("bytes_written", "bigint"),
    ("output_files", "bigint"),
    ("schema_changed", "boolean"),
    ("error", "string"),
    ("source", "string"),
    ("raw_run_id", "string"),
    ("code_version", "string"),
    ("config_hash", "string"),
)


def _get(summary: Any, name: str, default: Any = None) -> Any:
    if isinstance(summary, dict):
        return summary.get(name, default)
    return getattr(summary, name, default)


def _time(text: str | None) -> datetime | None:
    """The moment `text` names; one without a zone is taken as UTC (what the runs write), so two always subtract."""
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) and text else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def duration_seconds(summary: Any) -> float:
    """Wall time from start to finish; the timed steps' sum when the timestamps are too coarse."""
    start, end = _time(_get(summary, "started_at")), _time(_get(summary, "finished_at"))
    wall = (end - start).total_seconds() if start and end else 0.0
    steps = sum(float(v) for v in (_get(summary, "durations_seconds") or {}).values())
    return round(max(wall, steps, 0.0), 3)


def rejected_fraction(summary: Any) -> float:
    """Rejected of the rows the checks saw: the share `quality.max_rejected_fraction` bounds. Without a transform
    hook that is every row in; with one, kept + rejected (the hook may drop rows, or make more)."""
    rejected = int(_get(summary, "rows_rejected") or 0)
    seen = int(_get(summary, "rows_in") or 0)
    if _get(summary, "transform_hook"):
        seen = int(_get(summary, "rows_kept") or 0) + rejected
    return round(rejected / seen, 6) if seen else 0.0


def metric_data(summary: Any, naming: Naming, stage: str = DEFAULT_STAGE) -> list[dict[str, Any]]:
    """The PutMetricData entries of one finished run (bronze or gold, succeeded or failed)."""
    dimensions = [
        {"Name": "Dataset", "Value": str(_get(summary, "dataset"))},
        {"Name": "Layer", "Value": str(_get(summary, "layer"))},
        {"Name": "Stage", "Value": stage},
    ]
    values = {
        "RowsIn": int(_get(summary, "rows_in") or 0),
        "RowsKept": int(_get(summary, "rows_kept") or 0),
        "RowsRejected": int(_get(summary, "rows_rejected") or 0),
        "RejectedFraction": rejected_fraction(summary),
        "DurationSeconds": duration_seconds(summary),
        "BytesWritten": int(_get(summary, "output_bytes") or 0),
        "SchemaChanged": 1 if _get(summary, "schema_changed") else 0,
        "Succeeded": 1 if _get(summary, "status") == "succeeded" else 0,
    }
    finished = _time(_get(summary, "finished_at"))
    entries = []
    for name, unit in METRICS.items():
        entry = {"MetricName": name, "Dimensions": dimensions, "Value": float(values[name]), "Unit": unit}
        if finished is not None:
            entry["Timestamp"] = finished
        entries.append(entry)
    return entries


def publish(summary: Any, naming: Naming, client: Any = None, stage: str = DEFAULT_STAGE) -> bool:
    """Send the run's metrics; a failure to send is printed, never turned into a failed run (the
    freshness alarm still notices a dataset whose successes stop arriving)."""
    try:
        if client is None:
            import boto3

            client = boto3.client("cloudwatch")
        client.put_metric_data(Namespace=naming.metrics_namespace, MetricData=metric_data(summary, naming, stage))
    except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more than its metrics
        print(f"warning: could not publish the run's metrics to {naming.metrics_namespace}: {exc}", file=sys.stderr)
        return False
    return True


def on_glue() -> bool:
    """entry.main imports awsglue.utils only on Glue."""
    return "awsglue.utils" in sys.modules


# ------------------------------------------------------------------ ledger: versions and run history


@cache
def code_version() -> str:
    """The git commit of the checkout (with `-dirty` when it has changes), else a hash of the job
    library's sources, which is what Glue runs (dwlib.zip carries no git metadata)."""
    here = Path(__file__).resolve().parent
    if here.is_dir():
        try:
            commit = subprocess.run(
                ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()  # fmt: skip
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--", "."],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()  # fmt: skip
            if commit:
                return f"git:{commit}{'-dirty' if dirty else ''}"
        except (OSError, subprocess.SubprocessError):
            pass
    digest = hashlib.sha256()
    for item in sorted(resources.files("dwlib").iterdir(), key=lambda p: p.name):
        if item.name.endswith(".py"):
            digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return f"dwlib:{digest.hexdigest()[:12]}"


def config_hash(dataset: Any) -> str:
    """sha256 of the dataset config as the job read it (canonical JSON), to tell which config ran."""
    document = dataset.model_dump(mode="json", by_alias=True, exclude={"schema_ref"})
    return "sha256:" + hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def stamp(summary: Any, dataset: Any) -> None:
    """Record the code version and config hash on a summary before it is written to the ledger."""
    summary.code_version = code_version()
    summary.config_hash = config_hash(dataset)


def _sql_time(text: str | None) -> str | None:
    moment = _time(text)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None


def run_record(summary: Any) -> dict[str, Any]:
    """One row of the `runs` table: the RUN_COLUMNS, timestamps as Athena's JSON SerDe reads them."""
    schema_changed = _get(summary, "schema_changed")
    record = {
        "dataset": _get(summary, "dataset"),
        "layer": _get(summary, "layer"),
        "run_id": _get(summary, "run_id"),
        "status": _get(summary, "status"),
        "started_at": _sql_time(_get(summary, "started_at")),
        "finished_at": _sql_time(_get(summary, "finished_at")),
        "duration_seconds": duration_seconds(summary),
        "rows_in": int(_get(summary, "rows_in") or 0),
        "rows_kept": int(_get(summary, "rows_kept") or 0),
        "rows_rejected": int(_get(summary, "rows_rejected") or 0),
        "rejected_fraction": rejected_fraction(summary),
        "bytes_fetched": int(_get(summary, "bytes_fetched") or 0),
        "bytes_written": int(_get(summary, "output_bytes") or 0),
        "output_files": int(_get(summary, "output_files") or 0),
        "schema_changed": None if schema_changed is None else bool(schema_changed),
        "error": _get(summary, "error"),
        "source": _get(summary, "source"),
        "raw_run_id": _get(summary, "raw_run_id"),
        "code_version": _get(summary, "code_version") or None,
        "config_hash": _get(summary, "config_hash") or None,
    }
    assert tuple(record) == tuple(c for c, _ in RUN_COLUMNS)
    return record


# The columns the job itself fills from validated names and its clock, never from a source's text.
OWN_COLUMNS = (
    "dataset",
    "layer",
    "run_id",
    "status",
    "started_at",
    "finished_at",
    "raw_run_id",
    "code_version",
    "config_hash",
)


def _run_row(summary: Any) -> tuple[str, bytes]:
    key = Naming.ops_run_key(_get(summary, "dataset"), _get(summary, "run_id"), _get(summary, "layer"))
    # Every string (a source may echo a key into any of them) but the run's own names and times.
    record = scrub_value(run_record(summary), keep=OWN_COLUMNS)
    return key, (json.dumps(record, default=str) + "\n").encode()


def record_run(lake: Any, summary: Any) -> None:
    """Write the run's row of the `runs` table next to the ledger (locally and on Glue alike)."""
    key, row = _run_row(summary)
    lake.write_bytes(key, row)


def ensure_run_row(lake: Any, entry: dict[str, Any]) -> bool:
    """Write the `runs` row of a finished ledger entry when it is missing or says otherwise; True if written.

    A run killed between its final entry and its row (or a row lost) is put right by the next run that looks."""
    key, row = _run_row(entry)
    try:
        if lake.exists(key) and json.loads(lake.read_bytes(key)) == json.loads(row):
            return False
    except ValueError:
        pass  # a damaged row: written again
    lake.write_bytes(key, row)
    return True
