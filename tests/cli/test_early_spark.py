"""`dw run` starts Spark's JVM before the CLI's own imports when its command line says Spark will be needed."""

from __future__ import annotations

import pytest

from dw import cli


@pytest.mark.parametrize(
    ("argv", "app"),
    [
        (["/venv/bin/dw", "run", "fda-nsde", "--sample"], "dw-fda-nsde"),
        (["/repo/dw/cli.py", "--stage", "prod", "--debug", "run", "x", "--layer", "gold"], "dw-x"),
        (["/venv/bin/dw", "run", "x", "--layer=bronze"], "dw-x"),
        (["/venv/bin/dw", "run", "x", "--layer", "raw"], None),  # fetch only: no Spark
        (["/venv/bin/dw", "run", "x", "--layer=raw"], None),
        (["/venv/bin/dw", "run", "x", "--dry-run"], None),
        (["/venv/bin/dw", "run", "--help"], None),
        (["/venv/bin/dw", "query", "SELECT 1"], None),
        (["/venv/bin/dw", "--stage", "run", "list"], None),  # `run` is --stage's value here
        (["/venv/bin/pytest", "run", "x"], None),  # not the dw command
    ],
)
def test_the_jvm_starts_early_only_for_runs_that_need_spark(monkeypatch, argv, app):
    started = []
    monkeypatch.setattr(cli._EarlySpark, "start", classmethod(lambda cls, name: started.append(name)))
    monkeypatch.delenv("DW_FORCE_DRY_RUN", raising=False)
    cli._EarlySpark.start_for_argv(argv)
    assert started == ([app] if app else [])


def test_no_early_start_when_dry_runs_are_forced(monkeypatch):
    started = []
    monkeypatch.setattr(cli._EarlySpark, "start", classmethod(lambda cls, name: started.append(name)))
    monkeypatch.setenv("DW_FORCE_DRY_RUN", "1")
    cli._EarlySpark.start_for_argv(["/venv/bin/dw", "run", "fda-nsde"])
    assert started == []
