"""`dw run` starts Spark's JVM before the CLI's own imports when its command line says Spark will be needed."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dw import cli
from dwlib import jobs


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
    monkeypatch.setattr(cli._EarlySpark, "start", classmethod(lambda cls, name, short_run=False: started.append(name)))
    monkeypatch.delenv("DW_FORCE_DRY_RUN", raising=False)
    cli._EarlySpark.start_for_argv(argv)
    assert started == ([app] if app else [])


def test_no_early_start_when_dry_runs_are_forced(monkeypatch):
    started = []
    monkeypatch.setattr(cli._EarlySpark, "start", classmethod(lambda cls, name, short_run=False: started.append(name)))
    monkeypatch.setenv("DW_FORCE_DRY_RUN", "1")
    cli._EarlySpark.start_for_argv(["/venv/bin/dw", "run", "fda-nsde"])
    assert started == []


def project_with_sample(root: Path, files: dict[str, bytes], zipped: dict[str, int] | None = None) -> Path:
    """A project whose dataset `tiny` has these sample files (and a zip of `zipped` members of zeros)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text("{}")
    sample = root / "datasets" / "tiny" / "sample"
    sample.mkdir(parents=True)
    for name, data in files.items():
        (sample / name).write_bytes(data)
    if zipped:
        with zipfile.ZipFile(sample / "extract.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for name, size in zipped.items():
                archive.writestr(name, b"0" * size)
    return root


@pytest.mark.parametrize(
    ("files", "zipped", "argv_tail", "short"),
    [
        ({"in.csv": b"id\n1\n"}, None, ["--sample"], True),
        ({}, {"in.csv": 3 * 1024**2}, ["--sample", "--layer", "bronze"], True),
        ({"in.csv": b"id\n1\n"}, None, [], False),  # the real source: its size is not known yet
        ({}, {"in.csv": jobs.SHORT_RUN_INPUT_BYTES + 1}, ["--sample"], False),  # a small zip of a big CSV
        ({"a.csv": b"x" * (3 * 1024**2), "b.csv": b"x" * (2 * 1024**2)}, None, ["--sample"], False),
        ({".hidden": b"x" * (5 * 1024**2), "in.csv": b"id\n1\n"}, None, ["--sample"], True),  # not read
        ({"broken.zip": b"not a zip"}, None, ["--sample"], False),
    ],
)
def test_a_small_sample_starts_the_jvm_for_a_short_run(monkeypatch, tmp_path, files, zipped, argv_tail, short):
    """`dw run X --sample` of at most SHORT_RUN_INPUT_BYTES (a zip by its members) starts a short-run JVM."""
    started = []
    monkeypatch.setattr(
        cli._EarlySpark, "start", classmethod(lambda cls, name, short_run=False: started.append(short_run))
    )
    monkeypatch.delenv("DW_FORCE_DRY_RUN", raising=False)
    monkeypatch.delenv("DW_PROJECT", raising=False)
    root = project_with_sample(tmp_path / "project", files, zipped)
    (root / "datasets" / "tiny" / "sub").mkdir()
    monkeypatch.chdir(root / "datasets" / "tiny" / "sub")  # found upwards, as find_root finds it
    cli._EarlySpark.start_for_argv(["/venv/bin/dw", "run", "tiny", *argv_tail])
    assert started == [short]


def test_no_short_run_without_a_project_or_a_sample(monkeypatch, tmp_path):
    monkeypatch.delenv("DW_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert not cli.small_sample("tiny")
    root = project_with_sample(tmp_path / "elsewhere", {"in.csv": b"id\n1\n"})
    assert not cli.small_sample("tiny")
    monkeypatch.setenv("DW_PROJECT", str(root))
    assert cli.small_sample("tiny") and not cli.small_sample("other")


def test_the_cli_and_the_session_agree_on_a_short_runs_size(monkeypatch, tmp_path):
    monkeypatch.delenv("DW_PROJECT", raising=False)
    monkeypatch.chdir(project_with_sample(tmp_path / "at", {"in.csv": b"x" * jobs.SHORT_RUN_INPUT_BYTES}))
    assert cli.small_sample("tiny")
    monkeypatch.chdir(project_with_sample(tmp_path / "over", {"in.csv": b"x" * (jobs.SHORT_RUN_INPUT_BYTES + 1)}))
    assert not cli.small_sample("tiny")


@pytest.mark.spark
@pytest.mark.parametrize("short_run", [True, False])
def test_a_jvm_compiles_huge_methods_and_a_short_runs_has_the_quick_compiler_only(short_run):
    """A JVM of its own (the tests' session is already started): its arguments, as the JVM itself reports them.

    Every local JVM compiles Spark's huge generated methods (a wide bronze check is one); only a short run's stops
    at the quick compiler."""
    code = (
        "import json; from dwlib.jobs import local_session; "
        f"s = local_session('pp-dw-short', cores='1', short_run={short_run}); "
        "print(json.dumps(list(s._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    arguments = json.loads(done.stdout.strip().splitlines()[-1])
    assert (jobs.SHORT_RUN_JAVA_OPTIONS in arguments) is short_run
    assert jobs.COMPILE_HUGE_METHODS in arguments
    assert any(a.startswith("-Dlog4j.configurationFile=") for a in arguments)  # the usual options stay
