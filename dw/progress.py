"""What `dw run` shows while it works: the step, the download (bytes and rate), Spark's stages.

Only on a terminal. Anywhere else (a pipe, a CI log) nothing is drawn and no thread is started,
so logs hold the run's results and nothing else. The jobs never import this: on Glue nobody
listens to the fetch, and Spark's own console bar is off (dwlib.jobs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

POLL_SECONDS = 0.2  # how often Spark's status tracker is read: cheap (driver memory), and smooth enough


def _name(shown: str) -> str:
    """The file or endpoint a URL names, without its query (already redacted by dwlib.fetch)."""
    path = shown.split("?", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] or path


class RunProgress:
    """Live progress on `console` when it is a terminal; a no-op otherwise.

    Use as a context manager around the whole run; `step(label)` for each step, `watch(spark)`
    once a session exists. Downloads are picked up through `dwlib.fetch.reporting`.
    """

    def __init__(self, console: Console, poll_seconds: float = POLL_SECONDS):
        self.console = console
        self.enabled = console.is_terminal and not console.is_dumb_terminal
        self.poll_seconds = poll_seconds
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # the run's own summary is what stays on screen
        )
        self.downloads: dict[str, dict[str, Any]] = {}  # what -> task, start, bytes, total, rate
        self.stages: dict[int, dict[str, Any]] = {}  # stage id -> task, name, tasks, done
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._exit = ExitStack()

    def __enter__(self) -> RunProgress:
        if self.enabled:
            from dwlib import fetch

            self.progress.start()
            self._exit.enter_context(fetch.reporting(self.download))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._exit.close()
        if self.enabled:
            self.progress.stop()

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        task = self.progress.add_task(label, total=None, detail="")
        try:
            yield
        finally:
            self.progress.remove_task(task)

    # ------------------------------------------------------------------ downloads

    def download(self, shown: str, have: int, total: int | None) -> None:
        """A `dwlib.fetch` listener: bytes so far of `shown` (total None when the server did not say)."""
        now = time.monotonic()
        item = self.downloads.get(shown)
        if item is None or have < item["bytes"]:  # new, or started over after a server sent it whole again
            if item is not None:
                self.progress.remove_task(item["task"])
            task = self.progress.add_task(f"download {_name(shown)}", total=total, detail="")
            item = self.downloads[shown] = {"task": task, "start": now, "bytes": 0, "total": total, "rate": 0.0}
        elapsed = now - item["start"]
        item.update(bytes=have, total=total, rate=have / elapsed if elapsed > 0 else 0.0)
        of = f" of {decimal(total)}" if total is not None else ""
        detail = f"{decimal(have)}{of}, {decimal(int(item['rate']))}/s"
        self.progress.update(item["task"], completed=have, total=total, detail=detail)
        if total is not None and have >= total:
            self.progress.refresh()  # the last figure is drawn even when it came between two refreshes

    # ------------------------------------------------------------------ Spark stages

    def watch(self, spark: Any) -> None:
        """Follow the session's stages on a daemon thread (Spark's status tracker, polled)."""
        if not self.enabled or self._thread is not None:
            return
        tracker = spark.sparkContext.statusTracker()
        self._thread = threading.Thread(target=self._poll, args=(tracker,), name="dw-progress", daemon=True)
        self._thread.start()

    def _poll(self, tracker: Any) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                self.poll_once(tracker)
            except Exception:  # noqa: BLE001 - a progress display must never break a run (e.g. Spark stopping)
                return
            if stopping:  # one last look after the run asked to stop: a stage that ended since is drawn finished
                return
            self._stop.wait(self.poll_seconds)

    def poll_once(self, tracker: Any) -> None:
        active = set(tracker.getActiveStageIds())
        for stage_id in active | {s for s, item in self.stages.items() if not item["finished"]}:
            info = tracker.getStageInfo(stage_id)
            if info is None:
                continue
            item = self.stages.get(stage_id)
            if item is None:
                name = info.name.split(" at ", 1)[0]
                task = self.progress.add_task(f"Spark stage {stage_id}: {name}", total=info.numTasks, detail="")
                item = self.stages[stage_id] = {"task": task, "name": name, "finished": False}
            item.update(tasks=info.numTasks, done=info.numCompletedTasks, failed=info.numFailedTasks)
            failed = f", {info.numFailedTasks} failed" if info.numFailedTasks else ""
            self.progress.update(
                item["task"],
                total=info.numTasks,
                completed=info.numCompletedTasks,
                detail=f"{info.numCompletedTasks}/{info.numTasks} tasks{failed}",
            )
            if stage_id not in active:  # finished since the last look: its final count is drawn, then it goes
                item["finished"] = True
                self.progress.refresh()
                self.progress.remove_task(item["task"])
