"""`dw` stopped from outside, and the inputs that would have stopped it badly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.test_cli import DW, ROOT, _env, assert_error, dw, show

DATASET = "fda-nsde"
WAIT = 300  # seconds a state may take to appear on a loaded machine (Spark starting)
EXIT_WAIT = 60  # seconds a stopped dw may take to exit


def start(*args, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(
        [*DW, *map(str, args)], cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(proc: subprocess.Popen, ready, what: str) -> None:
    """Poll until `ready()`; fail (the process stopped) if it exits first or takes longer than WAIT."""
    deadline = time.monotonic() + WAIT
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"dw exited {proc.returncode} before {what}\n--- stdout\n{out}\n--- stderr\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {WAIT} s")
        time.sleep(0.05)


def stopped(proc: subprocess.Popen, signum: int) -> subprocess.CompletedProcess:
    os.kill(proc.pid, signum)
    try:
        out, err = proc.communicate(timeout=EXIT_WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"dw did not exit within {EXIT_WAIT} s of {signal.Signals(signum).name}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_interrupted(result: subprocess.CompletedProcess, signum: int) -> None:
    """The shell's code for the signal, one `interrupted:` line last on stderr, no traceback (py4j's included)."""
    name = signal.Signals(signum).name
    assert result.returncode == 128 + signum, show(result)
    assert "Traceback" not in result.stderr + result.stdout, show(result)
    assert "py4j" not in result.stderr.lower(), show(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"interrupted: {name}"), show(result)
    assert [line for line in lines if line.startswith("interrupted")] == [lines[-1]], show(result)


def entries(lake: Path) -> dict[str, dict]:
    folder = lake / "runs" / DATASET
    return {p.name: json.loads(p.read_text()) for p in folder.glob("run_id=*.json")} if folder.is_dir() else {}


# ------------------------------------------------------------------ inputs that would stop a command badly


@pytest.mark.parametrize(("args", "env"), [(["--lake", ""], {}), ([], {"DW_LAKE": ""})], ids=["--lake", "DW_LAKE"])
def test_an_empty_lake_is_refused_rather_than_the_current_folder(tmp_path, args, env):
    result = dw("run", DATASET, "--sample", "--layer", "raw", *args, cwd=tmp_path, DW_PROJECT=str(ROOT), **env)
    assert_error(result, "is empty", "lake's folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing written where dw was started"


def test_a_query_file_not_in_utf8_is_named_with_the_fix(tmp_path):
    query = tmp_path / "latin1.sql"
    query.write_bytes("SELECT 'café' AS place\n".encode("latin-1"))
    result = dw("query", "--file", query, "--lake", tmp_path / "lake", cwd=ROOT)
    assert_error(result, f"{query} is not UTF-8 text", "save it as UTF-8")
