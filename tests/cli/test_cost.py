"""`dw list`'s cost figures, the settings behind them, and the run history as a table in `dw query`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dw import cost
from dw.query import run_query
from dwlib import metrics
from dwlib.config import ConfigError, DatasetConfig, load_core_config, load_project
from dwlib.lake import LocalLake
from dwlib.naming import Naming

ROOT = Path(__file__).resolve().parents[2]


def dataset(**extra) -> DatasetConfig:
    return DatasetConfig(
        dataset="dd", description="x", data_size_category="small", source_url="https://example.org/d.csv", **extra
    )


def ledger(lake: LocalLake, name: str, seconds: list[float], layer="bronze", status="succeeded", first=10):
    for i, s in enumerate(seconds):
        run_id = f"202611{first + i:02d}T060000Z"
        summary = {
            "dataset": name, "layer": layer, "run_id": run_id, "status": status,
            "started_at": "2026-11-21T06:00:00+00:00",
            "finished_at": f"2026-11-21T06:{int(s // 60):02d}:{int(s % 60):02d}+00:00",
        }  # fmt: skip
        lake.write_json(Naming("pp-dw", "pp_dw").run_summary_key(name, run_id, layer), summary)


def test_before_any_run_the_size_category_gives_the_estimate(core, tmp_path):
    est = cost.estimate(core, dataset(schedule="cron(0 6 * * ? *)"), ["bronze"], tmp_path)
    # small: 2 x G.1X for 2 minutes at $0.44 per DPU-hour, 365 runs a year
    assert est.per_run == pytest.approx(2 * 1 * (2 / 60) * 0.44)
    assert est.per_month == pytest.approx(est.per_run * 365 / 12)
    assert "small size estimate" in est.text() and "flex would save" in est.text()


def test_the_median_of_recent_successful_runs_and_the_one_minute_minimum(core, tmp_path):
    lake = LocalLake(tmp_path)
    ledger(lake, "dd", [10, 20, 30])  # all under a minute: Glue bills the minute
    ledger(lake, "dd", [3000], status="failed", first=20)  # a failed run does not count
    est = cost.estimate(core, dataset(), ["bronze"], tmp_path)
    assert est.per_run == pytest.approx(2 * (60 / 3600) * 0.44)
    assert est.per_month is None and "on demand" in est.text()
    assert "median of 3 local run(s)" in est.text()
    ledger(lake, "dd", [600, 900, 1200], layer="gold")
    both = cost.estimate(core, dataset(), ["bronze", "gold"], tmp_path)
    assert both.per_run == pytest.approx(2 * ((60 + 900) / 3600) * 0.44)


def test_flex_is_priced_lower_and_its_saving_shown(core, tmp_path):
    est = cost.estimate(core, dataset(schedule="rate(1 day)", execution_class="flex"), ["bronze"], tmp_path)
    assert est.per_run == pytest.approx(2 * (2 / 60) * 0.29)
    saving = (0.44 - 0.29) * 2 * (2 / 60) * 730 / 24
    assert est.flex_saving_per_month == pytest.approx(saving)
    assert f"flex saves ${saving:,.2f}/month" in est.text()


@pytest.mark.parametrize(
    ("schedule", "runs"),
    [
        ("rate(1 day)", 730 / 24),
        ("rate(6 hours)", 730 / 6),
        ("cron(0 6 * * ? *)", 365 / 12),
        ("cron(0 6,18 * * ? *)", 2 * 365 / 12),
        ("cron(0 7 ? * MON *)", 52 / 12),  # 2027 has 52 Mondays
        ("cron(0 7 ? * MON-FRI *)", 261 / 12),
        ("cron(0 0 1 * ? *)", 1),
        ("cron(0 0 L * ? *)", 1),
        (None, None),
    ],
)
def test_runs_per_month_follow_the_schedule(schedule, runs):
    found = cost.runs_per_month(schedule)
    assert found == (None if runs is None else pytest.approx(runs))


def test_flex_needs_g1x_or_g2x_workers(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(ROOT / "datasets", root / "datasets")
    core = json.loads((ROOT / "config.json").read_text())
    core["glue_worker_configs"]["small"]["worker_type"] = "G.4X"
    (root / "config.json").write_text(json.dumps(core))
    config = json.loads((root / "datasets/fda-nsde/config.json").read_text())
    (root / "datasets/fda-nsde/config.json").write_text(json.dumps({**config, "execution_class": "flex"}))
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    problems = [str(p) for p in caught.value.problems]
    assert any("fda-nsde/config.json: execution_class: flex runs only on G.1X or G.2X" in p for p in problems)


def test_a_reject_warning_at_or_above_the_hard_budget_is_refused():
    with pytest.raises(ValueError, match="reject_warning_fraction 0.05 must be below"):
        dataset(monitoring={"reject_warning_fraction": 0.05})
    with pytest.raises(ValueError, match="expected_every_hours"):
        dataset(monitoring={"freshness": True})
    assert dataset(monitoring={"freshness": True, "expected_every_hours": 24}).monitoring.expected_every_hours == 24


def test_unknown_monitoring_keys_are_errors(tmp_path):
    with pytest.raises(ValueError, match="extra"):
        dataset(monitoring={"freshnes": True})
    bad = json.loads((ROOT / "config.json").read_text())
    bad["prices"]["glue_dpu_hour"] = -1
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError):
        load_core_config(tmp_path / "config.json")


def test_run_history_is_a_table_in_dw_query(tmp_path):
    lake = LocalLake(tmp_path)
    naming = Naming("pp-dw", "pp_dw")
    for run_id, status in (("20261121T060000Z", "succeeded"), ("20261122T060000Z", "failed")):
        summary = {
            "dataset": "fda-nsde", "layer": "bronze", "run_id": run_id, "status": status, "rows_in": 12,
            "rows_kept": 10, "rows_rejected": 2, "started_at": "2026-11-21T06:00:00+00:00",
            "finished_at": "2026-11-21T06:01:30+00:00", "error": "boom" if status == "failed" else None,
            "schema_changed": False, "code_version": "git:abc", "config_hash": "sha256:00",
        }  # fmt: skip
        metrics.record_run(lake, summary)
    result = run_query(
        "SELECT run_id, status, rows_kept, rejected_fraction, duration_seconds, error, code_version "
        "FROM pp_dw_ops.runs WHERE dataset = 'fda-nsde' ORDER BY run_id",
        tmp_path,
        naming,
    )
    assert result.rows == [
        ("20261121T060000Z", "succeeded", 10, pytest.approx(1 / 6, abs=1e-6), 90.0, None, "git:abc"),
        ("20261122T060000Z", "failed", 10, pytest.approx(1 / 6, abs=1e-6), 90.0, "boom", "git:abc"),
    ]
    assert result.types[:3] == ["varchar", "varchar", "bigint"]


def test_dw_list_shows_the_cost_of_every_dataset_and_the_price_date(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dw.cli", "list", "--lake", str(tmp_path / "lake")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {
        line.split("│")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("│ ") and "│" in line[2:]
    }
    assert "$0.029/run, $0.89/month" in rows["fda-nsde"]  # daily, small: 2 x G.1X for 2 minutes
    assert "on demand" in rows["epa-daily-aqi"]
    assert "2026-12-01" in result.stdout and "$0.44/DPU-hour" in result.stdout
