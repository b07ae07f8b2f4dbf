"""`dw run` progress: drawn on a terminal (download bytes and rate, Spark stages), nothing in a pipe."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from rich.filesize import decimal

from dw.progress import RunProgress
from dwlib import fetch
from dwlib.fetch import RetryPolicy, fetch_api, fetch_source
from dwlib.lake import LocalLake
from tests.cli.test_cli import DW, SAMPLE, _env, assert_ok, dw, edit_config
from tests.loopback import MIB, Generated

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, timeout=5.0, max_total_seconds=30.0)
RAW = "raw/demo/run_id=20260101T000000Z/"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture(autouse=True)
def plain_terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same terminal whatever the caller's environment: rich's Console reads these variables."""
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("TTY_INTERACTIVE", "TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR", "CLICOLOR_FORCE"):
        monkeypatch.delenv(name, raising=False)


def terminal() -> tuple[Console, StringIO]:
    buffer = StringIO()
    return Console(file=buffer, force_terminal=True, width=160, color_system=None), buffer


def pipe() -> tuple[Console, StringIO]:
    buffer = StringIO()
    return Console(file=buffer, force_terminal=False, width=160), buffer


def test_a_download_shows_its_bytes_and_rate_on_a_terminal(server, tmp_path):
    size = 3 * MIB + 12345
    server.files["/big.csv"] = Generated(size)
    console, buffer = terminal()
    started = time.monotonic()
    with RunProgress(console) as progress:
        result = fetch_source(server.url("/big.csv"), LocalLake(tmp_path / "lake"), RAW, policy=FAST)
    seconds = time.monotonic() - started
    assert result.bytes == size
    item = progress.downloads[server.url("/big.csv")]
    assert item["bytes"] == item["total"] == size
    assert item["rate"] > 0 and item["rate"] >= size / seconds * 0.9  # bytes per second of the download itself
    shown = ANSI.sub("", buffer.getvalue())
    assert "download big.csv" in shown
    assert f"{decimal(size)} of {decimal(size)}, " in shown  # "3.2 MB of 3.2 MB, 410.2 MB/s"
    assert re.search(rf"{re.escape(decimal(size))} of {re.escape(decimal(size))}, [\d.]+ [kMG]?B/s", shown)
    assert fetch._listener is None  # nothing keeps listening after the run


def test_a_download_that_starts_over_shows_the_new_attempt_not_a_sum(server, tmp_path):
    from tests.loopback import half_then_close

    data = Generated(3 * MIB).block.tobytes() * 3
    server.files["/again.csv"] = data
    # The body breaks halfway; the server then ignores the Range request and sends the whole file again.
    server.scripts["/again.csv"] = [half_then_close(data), lambda h: h.serve(data, ignore_range=True)]
    console, buffer = terminal()
    with RunProgress(console) as progress:
        result = fetch_source(server.url("/again.csv"), LocalLake(tmp_path / "lake"), RAW, policy=FAST)
    assert result.attempts == 2
    [item] = progress.downloads.values()
    assert item["bytes"] == item["total"] == len(data)
    shown = ANSI.sub("", buffer.getvalue())
    assert f"{decimal(len(data))} of {decimal(len(data))}, " in shown
    # Never the two attempts added up, as bytes or total ("754.7 MB/s", a rate, holds "4.7 MB" as text).
    summed = re.escape(decimal(len(data) + len(data) // 2))
    assert not re.search(rf"(?<![\d.]){summed}(?!/s)", shown), shown


def test_a_download_in_a_pipe_prints_nothing_and_installs_nothing(server, tmp_path):
    server.files["/big.csv"] = Generated(2 * MIB)
    console, buffer = pipe()
    with RunProgress(console) as progress:
        assert fetch._listener is None
        fetch_source(server.url("/big.csv"), LocalLake(tmp_path / "lake"), RAW, policy=FAST)
        progress.watch(object())  # no Spark is touched either: no thread, nothing polled
        with progress.step("a step"):
            pass
    assert buffer.getvalue() == ""
    assert progress.downloads == {} and progress._thread is None


def test_a_callers_own_progress_still_gets_every_byte_while_dw_listens(server, tmp_path):
    size = MIB + 7
    server.files["/f.bin"] = Generated(size)
    mine: list[tuple[int, int | None]] = []
    console, _ = terminal()
    with RunProgress(console) as progress:
        fetch_source(server.url("/f.bin"), LocalLake(tmp_path / "lake"), RAW, policy=FAST,
                     progress=lambda n, t: mine.append((n, t)))  # fmt: skip
    assert mine[-1] == (size, size)
    assert progress.downloads[server.url("/f.bin")]["bytes"] == size


def test_api_pages_show_the_bytes_written_so_far(server, tmp_path):
    from dwlib.config import ApiEndpoint

    pages = {"0": [{"id": i, "name": f"row {i}"} for i in range(100)], "100": [{"id": 100, "name": "last"}], "101": []}

    def route(handler, params):
        handler.json({"results": pages.get(params.get("skip", "0"), [])})

    server.routes["/api"] = route
    endpoint = ApiEndpoint.model_validate({
        "url": server.url("/api"), "records": "results",
        "paging": {"kind": "offset", "param": "skip", "size_param": "limit", "size": 100},
    })  # fmt: skip
    console, buffer = terminal()
    lake = LocalLake(tmp_path / "lake")
    with RunProgress(console) as progress:
        result = fetch_api([endpoint], lake, RAW, policy=FAST)
    written = len(lake.read_bytes(RAW + "endpoint_0.jsonl"))
    assert result.bytes == written
    assert progress.downloads[server.url("/api")]["bytes"] == written
    assert progress.downloads[server.url("/api")]["total"] is None  # an API never says how much is left


def test_spark_stages_show_their_tasks_on_a_terminal(spark):
    console, buffer = terminal()
    with RunProgress(console, poll_seconds=0.05) as progress:
        progress.watch(spark)
        spark.sparkContext.setJobDescription("progress test")
        spark.range(0, 4, 1, 4).foreach(lambda _: time.sleep(0.4))
        # Spark's status tracker hears of the stage's end a moment after foreach returns; the poller's
        # next look then draws the final count. Wait for that look, however long a loaded machine takes.
        deadline = time.monotonic() + 30
        while not _foreach_finished(progress) and time.monotonic() < deadline:
            time.sleep(0.05)
    shown = ANSI.sub("", buffer.getvalue())
    stage = next(s for s in list(progress.stages.values()) if s["name"] == "foreach")
    assert stage["tasks"] == stage["done"] == 4 and stage["finished"]
    assert re.search(r"Spark stage \d+: foreach", shown) and "4/4 tasks" in shown, shown[-2000:]
    assert progress._thread is not None and not progress._thread.is_alive()


def _foreach_finished(progress: RunProgress) -> bool:
    return any(s["name"] == "foreach" and s["finished"] for s in list(progress.stages.values()))


def test_spark_stages_in_a_pipe_start_no_thread(spark):
    console, buffer = pipe()
    with RunProgress(console) as progress:
        progress.watch(spark)
        spark.range(0, 2, 1, 2).count()
    assert buffer.getvalue() == "" and progress._thread is None and progress.stages == {}


# ------------------------------------------------------------------ through `dw run`, on a real pseudo-terminal


def run_on_a_terminal(args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """`dw ARGS` with stdout and stderr on a pseudo-terminal, as a user at a shell sees it."""
    main, child = pty.openpty()
    env = _env(TERM="xterm-256color", COLUMNS="160", LINES="40")  # _env passes no NO_COLOR, FORCE_COLOR, ...
    proc = subprocess.Popen([*DW, *args], cwd=cwd, env=env, stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    chunks = []
    deadline = time.monotonic() + timeout
    exited_at = None  # when the child was seen gone: what it wrote last may still wait in the terminal
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:  # EIO: every process closed the terminal, and all it held has been read
                    break
                if not data:
                    break
                chunks.append(data)
            elif exited_at is None:
                if proc.poll() is not None:
                    exited_at = time.monotonic()  # read on, until EIO says the terminal is drained
            elif time.monotonic() - exited_at > 10:
                break  # gone, yet something it started still holds the terminal open and says nothing
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def served_project(project_copy, server):
    server.files["/nsde.zip"] = SAMPLE.read_bytes()
    edit_config(project_copy, "fda-nsde", lambda c: c.update(source_url=server.url("/nsde.zip")))
    return project_copy


def test_dw_run_shows_the_download_on_a_terminal(served_project, tmp_path):
    size = SAMPLE.stat().st_size
    code, seen = run_on_a_terminal(["run", "fda-nsde", "--layer", "raw", "--lake", str(tmp_path / "lake")],
                                   served_project)  # fmt: skip
    text = ANSI.sub("", seen)
    assert code == 0, text
    assert "download nsde.zip" in text and f"{decimal(size)} of {decimal(size)}, " in text, text
    assert f"{size} bytes under" in text  # the run's own result stays on screen


def test_dw_run_in_a_pipe_has_no_progress(served_project, tmp_path):
    size = SAMPLE.stat().st_size
    result = dw("run", "fda-nsde", "--layer", "raw", "--lake", tmp_path / "lake", cwd=served_project)
    assert_ok(result)
    assert result.stderr == "", result.stderr  # a CI log gets the result and nothing else
    assert result.stdout.strip().splitlines()[-1].startswith(f"1 file(s), {size} bytes under ")
    # No progress shapes: a "download nsde.zip" label, a rate ("410.2 MB/s", "512 bytes/s"), an escape code.
    # (Not a bare "/s": the last line's lake path may hold one, as in /scratch/...)
    assert "download nsde.zip" not in result.stdout and "\x1b" not in result.stdout, result.stdout
    assert not re.search(r"\d[\d.,]* ?(?:[kMGTPEZY]?B|bytes?)/s\b", result.stdout), result.stdout
    assert json.loads((tmp_path / "lake" / "runs" / "fda-nsde").glob("*.json").__next__().read_text())["status"] == (
        "succeeded"
    )
