"""`dw` stopped from outside (Ctrl-C, SIGTERM) and the inputs that would have stopped it badly.

A stop exits 130 (SIGINT) or 143 (SIGTERM) with one `interrupted:` line and no traceback; a run stopped
midway leaves a ledger entry that says so, no lock and no staging folder. Signals are sent to a real `dw`
process; the tests wait for a state of the lake (a file, a folder) rather than for fixed times.
"""

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
SPARK_BANNER = ("Setting default log level to", "To adjust logging level use sc.setLogLevel")


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
    # Spark's JVM, a process of its own, prints its start-up banner when it gets that far, maybe after dw exits.
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(SPARK_BANNER)]
    assert lines and lines[-1].startswith(f"interrupted: {name}"), show(result)
    assert [line for line in lines if line.startswith("interrupted")] == [lines[-1]], show(result)


def entries(lake: Path) -> dict[str, dict]:
    folder = lake / "runs" / DATASET
    return {p.name: json.loads(p.read_text()) for p in folder.glob("run_id=*.json")} if folder.is_dir() else {}


# ------------------------------------------------------------------ a run stopped midway


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_run_stopped_in_spark_says_so_in_the_ledger_and_leaves_no_lock_nor_staging(tmp_path, signum):
    lake = tmp_path / "lake"
    proc = start("run", DATASET, "--sample", "--lake", lake)
    staging = lake / "staging" / "bronze" / DATASET
    # The sample is unpacked to staging/ just before Spark reads it: the run is then in its work, well before
    # its publish.
    wait_for(proc, staging.is_dir, "staging folder")
    result = stopped(proc, signum)
    assert_interrupted(result, signum)
    assert f"`dw runs {DATASET}` shows what the run left" in result.stderr, show(result)

    [(name, entry)] = entries(lake).items()
    assert entry["status"] == "failed", entry
    said = f"interrupted ({signal.Signals(signum).name}) before it published anything"
    assert entry["error"].startswith(said), entry["error"]
    assert "Bronze keeps its previous data" in entry["error"]
    rows = list((lake / "ops" / "runs").glob(f"{DATASET}.*.json"))  # the `runs` table's row says the same
    assert [json.loads(r.read_text())["status"] for r in rows] == ["failed"], rows
    assert not (lake / "runs" / DATASET / "_lock.json").exists()
    assert not any(staging.rglob("*")), sorted(staging.rglob("*"))

    listed = dw("list", "--lake", lake, cwd=ROOT)
    assert f"{entry['run_id']} bronze failed" in listed.stdout, show(listed)


def test_the_run_after_a_killed_one_deletes_what_it_left_in_staging(tmp_path):
    """SIGKILL: nothing of the killed run can clean up; the next run, taking over its lock, does and says so."""
    lake = tmp_path / "lake"
    proc = start("run", DATASET, "--sample", "--lake", lake)
    staging = lake / "staging" / "bronze" / DATASET
    wait_for(proc, lambda: any(p.is_file() for p in staging.rglob("*")), "staged file")
    proc.kill()
    proc.communicate(timeout=EXIT_WAIT)
    [killed] = [p.name.removeprefix("run_id=") for p in staging.iterdir()]
    after = dw("run", DATASET, "--sample", "--layer", "raw", "--lake", lake, cwd=ROOT)
    assert after.returncode == 0, show(after)
    assert f"took over the lock of run {killed}" in after.stdout, show(after)
    assert f"deleted what run {killed} left in staging: staging/bronze/{DATASET}/run_id={killed}/" in after.stdout
    assert not any(p.is_file() for p in (lake / "staging").rglob("*"))


def test_dw_list_shows_a_run_that_never_finished_as_dw_runs_does(tmp_path):
    """A run killed outright (SIGKILL: nothing can clean up) leaves its entry `running`: both commands flag it."""
    lake = tmp_path / "lake"
    run_id = "20260101T000000Z"
    folder = lake / "runs" / DATASET
    folder.mkdir(parents=True)
    dead = {"run_id": run_id, "layer": "bronze", "status": "running"}
    (folder / f"run_id={run_id}.json").write_text(json.dumps(dead))
    runs = dw("runs", DATASET, "--lake", lake, cwd=ROOT)
    assert f"{run_id} bronze: its entry says running and no run holds the lock" in runs.stdout, show(runs)
    listed = dw("list", "--lake", lake, cwd=ROOT)
    assert f"{run_id} bronze incomplete" in listed.stdout, show(listed)


@pytest.mark.parametrize("moment", ["taken", "given back"])
def test_dw_stopped_while_it_takes_or_gives_back_the_lock_gives_it_back(tmp_path, monkeypatch, moment):
    """dw's own handler (in process: the moment is chosen by sending the signal from inside the lake's write). A
    stop between the lock's file being created and its version being read left a lock the run did not know it
    held; a stop inside the release left it held. Both held the next run off until the job's timeout passed."""
    from types import SimpleNamespace

    from dw import cli
    from dwlib import ledger
    from dwlib.lake import LocalLake
    from dwlib.naming import Naming
    from dwlib.run import Interrupted

    lake = LocalLake(tmp_path / "lake")
    naming = Naming("pp-dw", "pp_dw")
    key = naming.lock_key(DATASET)
    name = "create_exclusive" if moment == "taken" else "delete_if_unchanged"
    real = getattr(LocalLake, name)

    def signalling(self, *args):
        result = real(self, *args)
        if args[0] == key:
            os.kill(os.getpid(), signal.SIGTERM)  # dw's handler runs here, on this thread, as for a real stop
        return result

    monkeypatch.setattr(LocalLake, name, signalling)
    monkeypatch.setitem(cli.STATE, "interrupted", None)
    ctx = SimpleNamespace(
        lock=None, lake=lake, naming=naming, name=DATASET, run_id="20261121T060000Z",
        core=SimpleNamespace(glue_defaults=SimpleNamespace(timeout_minutes=60)),
    )  # fmt: skip
    previous = signal.signal(signal.SIGTERM, cli._interrupt)
    worked = []
    try:
        with pytest.raises(Interrupted) as stop, ledger.holding(ctx, "bronze"):
            worked.append(lake.exists(key))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stop.value.exit_code == 143
    assert worked == ([] if moment == "taken" else [True]), "a stop while the lock is taken ends the run before it works"
    assert not lake.exists(key), "the lock was given back"


# ------------------------------------------------------------------ a stop before the run starts


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6, 1.0, 1.5])
def test_ctrl_c_in_the_first_moments_of_a_run_exits_130_at_once(tmp_path, delay):
    """While the Spark thread imports beside the CLI's own imports: never a hang, never a traceback."""
    lake = tmp_path / "lake"
    proc = start("run", DATASET, "--sample", "--lake", lake)
    time.sleep(delay)  # the point of the test is the moment, not a state to wait for
    result = stopped(proc, signal.SIGINT)
    if result.returncode == -signal.SIGINT:  # before Python ran a line of dw: the interpreter's own default
        return
    if result.returncode == 1 and result.stderr.startswith("Fatal Python error: init_import_site"):
        # Still in the interpreter's start (site's .pth files, on a cold machine compiling them): Python's own
        # refusal, before dw's first line; nothing was written
        assert not lake.exists(), show(result)
        return
    assert_interrupted(result, signal.SIGINT)
    assert not (lake / "runs" / DATASET / "_lock.json").exists()


# ------------------------------------------------------------------ dw query


def test_ctrl_c_during_a_query_exits_130_in_one_line(tmp_path):
    # Long enough to be running when the signal comes: DuckDB cannot shortcut a sum over 10^10 rows.
    sql = (
        "SELECT sum((x * y) % 7) AS n FROM UNNEST(sequence(1, 100000)) AS a(x) "
        "CROSS JOIN UNNEST(sequence(1, 100000)) AS b(y)"
    )
    proc = start("query", sql, "--lake", tmp_path / "lake")
    tasks = Path(f"/proc/{proc.pid}/task")
    wait_for(proc, lambda: len(list(tasks.iterdir())) > 2, "DuckDB's threads")  # the connection is open
    time.sleep(1)
    result = stopped(proc, signal.SIGINT)
    assert_interrupted(result, signal.SIGINT)
    assert result.stderr.strip() == "interrupted: SIGINT", show(result)


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
    assert_error(result, f"{query}: is not UTF-8 text (byte 0xe9 at line 1, column 12", "save the file as UTF-8")
