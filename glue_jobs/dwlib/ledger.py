"""The run ledger's guards: one run of a dataset at a time, unique run ids, unfinished publishes.

A run of a dataset (bronze, gold, or `dw run --layer raw`) holds `runs/{dataset}/_lock.json`
while it works. Under the lock it finishes any publish a dead run left half done, claims a run
id no other run has used, and writes its ledger entry as `running` before it touches anything,
so that a run killed midway is still found (`incomplete_runs`).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dwlib import metrics, stops
from dwlib.lake import Lake, LakeError
from dwlib.naming import DROP_MARKER, RAW_MANIFEST, RUN_ID, Naming, next_run_id

ACTIVE = ("running", "publishing")  # what an entry says while its run works
# A lock of another machine is dead once a run could no longer be alive: Glue stops a job at its timeout.
STALE_MARGIN = timedelta(minutes=5)


class RunRefused(ValueError):
    """A run that must not start (another run holds the lock, or the run id is taken); nothing was written."""


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def _process_start(pid: int) -> datetime | None:
    """When process `pid` of this machine started (from /proc), or None where that cannot be read."""
    try:
        stat = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()  # noqa: SIM115 - one read
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command's "(...)"
        with open("/proc/stat", encoding="ascii") as boot:
            btime = next(int(line.split()[1]) for line in boot if line.startswith("btime "))
        return datetime.fromtimestamp(btime + ticks / os.sysconf("SC_CLK_TCK"), UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


# The lock's started_at is written to the second, after its process started; boot time is to the second too.
PID_CLOCK_SLACK = timedelta(seconds=5)


@dataclass
class LockState:
    holder: dict[str, Any]
    token: str
    stale_because: str | None  # None: the holder may still be working


def inspect_lock(lake: Lake, naming: Naming, dataset: str, timeout_minutes: int) -> LockState | None:
    """The dataset's lock, if any, and whether its holder is dead."""
    found = lake.read_versioned(naming.lock_key(dataset))
    if found is None:
        return None
    data, token = found
    try:
        holder = json.loads(data)
        started = datetime.fromisoformat(holder["started_at"])
    except (ValueError, KeyError, TypeError):
        return LockState({"run_id": "?", "started_at": "?"}, token, "the lock file is not readable")
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    same_host = holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
    if same_host and not _pid_alive(holder["pid"]):
        return LockState(holder, token, f"its process {holder['pid']} on {holder['host']} is gone")
    if same_host:
        # A live pid of this machine: nothing stops a local run at the job timeout, so its age says nothing. It is
        # dead only if the number now names a process that started after the lock (reused, after a reboot or in
        # a container); where /proc cannot tell, the lock is respected.
        begun = _process_start(holder["pid"])
        if begun is not None and begun > started + PID_CLOCK_SLACK:
            return LockState(
                holder, token, f"its process {holder['pid']} is gone: that pid now names a process started {_stamp(begun)}"
            )
        return LockState(holder, token, None)
    # Another machine's run (Glue) is dead once it is older than any run may last: Glue stops a job at its timeout.
    limit = timedelta(minutes=timeout_minutes) + STALE_MARGIN
    if _now() - started > limit:
        return LockState(holder, token, f"it is older than the job timeout ({timeout_minutes} minutes)")
    return LockState(holder, token, None)


class RunLock:
    """`runs/{dataset}/_lock.json`, taken with a conditional write and given back in `release`."""

    def __init__(self, lake: Lake, naming: Naming, dataset: str, timeout_minutes: int):
        self.lake, self.naming, self.dataset, self.timeout = lake, naming, dataset, timeout_minutes
        self.key = naming.lock_key(dataset)
        self.token: str | None = None
        self.holder: dict[str, Any] = {}
        self.took_over: dict[str, Any] | None = None  # the dead holder this lock replaced

    def _document(self, run_id: str, layer: str) -> bytes:
        self.holder = {
            "dataset": self.dataset,
            "run_id": run_id,
            "layer": layer,
            "owner": _owner(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:4]]),
            "started_at": _stamp(_now()),
        }
        return json.dumps(self.holder, indent=2).encode()

    def acquire(self, run_id: str, layer: str) -> None:
        data = self._document(run_id, layer)
        if self.lake.create_exclusive(self.key, data):
            self.token = self.lake.read_versioned(self.key)[1]  # type: ignore[index]
            return
        state = inspect_lock(self.lake, self.naming, self.dataset, self.timeout)
        if state is not None and state.stale_because is not None:
            # Replace exactly the dead holder's version: of two runs taking over at once, one wins.
            if self.lake.replace_if_unchanged(self.key, state.token, data):
                self.token = self.lake.read_versioned(self.key)[1]  # type: ignore[index]
                self.took_over = {**state.holder, "why": state.stale_because}
                return
            state = inspect_lock(self.lake, self.naming, self.dataset, self.timeout)
        if state is None:  # released in between: try once more from the start
            if self.lake.create_exclusive(self.key, data):
                self.token = self.lake.read_versioned(self.key)[1]  # type: ignore[index]
                return
            state = inspect_lock(self.lake, self.naming, self.dataset, self.timeout)
        holder = state.holder if state else {}
        raise RunRefused(
            f"another run of {self.dataset} (run id {holder.get('run_id', '?')}, started "
            f"{holder.get('started_at', '?')} by {holder.get('owner', '?')}, pid {holder.get('pid', '?')}) holds the "
            f"lock; wait for it or remove {self.key} if it died. Nothing was written."
        )

    def rename(self, run_id: str) -> None:
        """Record the run id the run ended up with (it may differ from the one it started with)."""
        if self.token is None or self.holder.get("run_id") == run_id:
            return
        data = json.dumps({**self.holder, "run_id": run_id}, indent=2).encode()
        if self.lake.replace_if_unchanged(self.key, self.token, data):
            self.holder["run_id"] = run_id
            self.token = self.lake.read_versioned(self.key)[1]  # type: ignore[index]

    def release(self) -> None:
        if self.token is not None:
            token, self.token = self.token, None
            try:
                self.lake.delete_if_unchanged(self.key, token)  # not ours any more: leave it to its holder
            except LakeError as exc:
                raise LakeError(
                    f"{exc}: the run's lock stays. Remove {self.key} before the next run of {self.dataset}, or that "
                    "run waits until the lock is stale"
                ) from None


@contextmanager
def holding(ctx, layer: str) -> Iterator[RunLock]:
    """Hold the dataset's lock for the block, unless this process holds it already (`dw run`: bronze then gold)."""
    if ctx.lock is not None:
        yield ctx.lock
        return
    lock = RunLock(ctx.lake, ctx.naming, ctx.name, ctx.core.glue_defaults.timeout_minutes)
    held = False
    try:
        # A stop while the lock is taken or given back waits for that: a lock written but not known as ours (no
        # token yet) would never be given back, and a release cut short would hold the next run off.
        with stops.settling():
            lock.acquire(ctx.run_id, layer)
            held, ctx.lock = True, lock
        yield lock
    finally:
        if held:
            with stops.settling():
                ctx.lock = None
                lock.release()


STAGED_LAYERS = ("bronze", "gold")  # the layers that stage files (a run holding the lock for "all" staged both)


def clear_dead_staging(ctx, lock: RunLock) -> list[str]:
    """Delete the staging folders of the dead run whose lock `lock` took over; the prefixes deleted.

    A run killed outright (SIGKILL, the machine gone) could not clean up, and nothing else would: each run deletes
    only its own run id's folder. Called once any publish the dead run left is finished: none reads its staged
    files (a local publish moves the folder or puts the old one back; on S3 the copies are made or removed)."""
    dead = lock.took_over
    if not dead or "staging_deleted" in dead:  # bronze and gold of one `dw run` share the lock: once
        return []
    deleted: list[str] = []
    dead["staging_deleted"] = deleted
    run_id = str(dead.get("run_id"))
    if not RUN_ID.match(run_id) or run_id == ctx.run_id:  # an unreadable lock; a retry of this very run id
        return deleted
    for layer in STAGED_LAYERS:
        prefix = ctx.naming.staging_prefix(layer, ctx.name, run_id)
        held = next(iter(ctx.lake.list(prefix)), None) is not None
        ctx.lake.delete_prefix(prefix)  # even when empty: a local lake keeps the folders a kill left empty
        if held:
            deleted.append(prefix)
    return deleted


# ------------------------------------------------------------------ run ids


def ledger_entries(lake: Lake, naming: Naming, dataset: str) -> dict[tuple[str, str], str]:
    """(run id, layer) -> key of every ledger entry of the dataset."""
    found = {}
    for obj in lake.list(naming.runs_prefix(dataset)):
        parsed = Naming.run_id_of_entry(obj.key)
        if parsed and obj.key.count("/") == 2:
            found[parsed] = obj.key
    return found


class UnreadableEntry(ValueError):
    """A ledger entry that is not a run's summary (truncated, edited by hand); the message names the file."""


# What a ledger entry's fields must be, where present: a hand edit that breaks one is named, not met as a KeyError
# or a TypeError in `dw runs`, `dw list` or a run. Every field a reader uses is in one of these.
_COUNTS = ("rows_in", "rows_kept", "rows_rejected", "rows_dropped_by_transform", "rows_added_by_transform",
           "bytes_fetched", "output_files", "output_bytes", "csv_untyped_records")  # fmt: skip
_TEXTS = ("dataset", "status", "source", "raw_run_id", "error", "traceback", "output_prefix", "crawler_command",
          "transform_hook", "code_version", "config_hash", "table_format")  # fmt: skip
_TIMES = ("started_at", "finished_at")  # ISO 8601 with a zone (the runs write UTC)
_BOOLS = ("schema_changed", "csv_read_again_multiline")
_TEXT_LISTS = ("raw_keys", "notes", "finished_for_others")
_OBJECT_LISTS = ("schema", "models", "previous_attempts")
_DICTS = ("durations_seconds", "rejected_by_reason", "renamed_columns", "missing_columns", "schema_change",
          "lock_taken_over", "iceberg", "publish_finished")  # fmt: skip
READ_FIELDS = ("run_id", "layer", *_COUNTS, *_TEXTS, *_TIMES, *_BOOLS, *_TEXT_LISTS, *_OBJECT_LISTS, *_DICTS)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"its {name} {value!r} is not text"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"its {name} {value!r} is not an ISO 8601 time"
    if moment.tzinfo is None:
        return f"its {name} {value!r} has no time zone (the runs write UTC: {value}+00:00)"
    return None


def _entry_problem(entry: Any) -> str | None:
    """What makes `entry` not a run's ledger entry, in words naming the field; None if it is one."""
    if not isinstance(entry, dict):
        return f"it holds a JSON {'null' if entry is None else type(entry).__name__}, not an object"
    run_id = entry.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        return "it has no run_id" if run_id is None else f"its run_id {run_id!r} is not a run id (YYYYMMDDTHHMMSSZ)"
    if entry.get("layer") not in ("raw", "bronze", "gold"):
        return f"its layer {entry.get('layer')!r} is not raw, bronze or gold"
    if not isinstance(entry.get("status"), str):
        return f"its status {entry.get('status')!r} is not text"
    present = {name: value for name, value in entry.items() if value is not None}
    for name in _COUNTS:
        if name in present and not _count(present[name]):
            return f"its {name} {present[name]!r} is not a whole number"
    for name in _TEXTS:
        if name in present and not isinstance(present[name], str):
            return f"its {name} {present[name]!r} is not text"
    for name in _TIMES:
        if name in present and (problem := _time_problem(name, present[name])):
            return problem
    for name in _BOOLS:
        if name in present and not isinstance(present[name], bool):
            return f"its {name} {present[name]!r} is not true, false or null"
    for name in (*_TEXT_LISTS, *_OBJECT_LISTS):
        if name in present and not isinstance(present[name], list):
            return f"its {name} {present[name]!r} is not a list"
    for name in _DICTS:
        if name in present and not isinstance(present[name], dict):
            return f"its {name} {present[name]!r} is not an object"
    for name in _TEXT_LISTS:
        for item in present.get(name, []):
            if not isinstance(item, str):
                return f"its {name} hold {item!r}, not text"
    for column in present.get("schema", []):
        if not (isinstance(column, dict) and isinstance(column.get("name"), str) and isinstance(column.get("type"), str)):
            return f"its schema holds {column!r}, not a {{name, type}} column"
    for name in ("models", "previous_attempts"):
        for item in present.get(name, []):
            if not isinstance(item, dict):
                return f"its {name} hold {item!r}, not an object"
            for field in ("name", "status", "error", "started_at", "finished_at"):
                if item.get(field) is not None and not isinstance(item[field], str):
                    return f"its {name} hold {field} {item[field]!r}, which is not text"
    for value in present.get("durations_seconds", {}).values():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"its durations_seconds hold {value!r}, not a number of seconds"
    for value in present.get("rejected_by_reason", {}).values():
        if not _count(value):
            return f"its rejected_by_reason hold {value!r}, not a number of rows"
    for value in present.get("renamed_columns", {}).values():
        if not isinstance(value, str):
            return f"its renamed_columns hold {value!r}, not a column name"
    for value in present.get("missing_columns", {}).values():
        if not (isinstance(value, list) and all(isinstance(c, str) for c in value)):
            return f"its missing_columns hold {value!r}, not a list of column names"
    return None


def read_entry(lake: Lake, key: str) -> dict[str, Any] | None:
    """The ledger entry at `key`, None if there is none; UnreadableEntry, naming the file and the fix, if it is not one."""
    found = lake.read_versioned(key)  # None when absent, on S3 and locally alike
    if found is None:
        return None
    try:
        entry = json.loads(found[0])
    except ValueError as exc:
        raise UnreadableEntry(f"{lake.uri(key)} is not readable JSON ({exc}); restore it or delete it") from None
    problem = _entry_problem(entry)
    if problem:
        raise UnreadableEntry(f"{lake.uri(key)} is not a run's ledger entry: {problem}; restore it or delete it")
    return entry


def raw_run_ids(lake: Lake, naming: Naming, dataset: str) -> set[str]:
    prefix = naming.raw_dataset_prefix(dataset)
    ids = set()
    for obj in lake.list(prefix):
        part = obj.key[len(prefix) :].split("/", 1)[0]
        if part.startswith("run_id="):
            ids.add(part.removeprefix("run_id="))
    return ids


class IncompleteRawRun(ValueError):
    """A kept raw run that must not be replayed: its fetch never finished, or its files changed since."""


FETCHING = "fetching"


def open_raw_manifest(lake: Lake, naming: Naming, dataset: str, run_id: str) -> None:
    """Mark a fetched raw run open before its fetch lands a file: a retry of a run id whose earlier attempt
    closed the folder must not leave that manifest standing for a fetch that then dies midway. Overwritten,
    not deleted: the jobs may not delete under raw/ (their role keeps what a source sent)."""
    opened = {"dataset": dataset, "run_id": run_id, "state": FETCHING, "written_at": _stamp(_now())}
    lake.write_json(naming.raw_manifest_key(dataset, run_id), opened)


def write_raw_manifest(lake: Lake, naming: Naming, dataset: str, run_id: str, keys: list[str]) -> dict[str, Any]:
    """Close a fetched raw run: its files and sizes, written last (a fetch killed midway has no manifest)."""
    prefix = naming.raw_prefix(dataset, run_id)
    sizes = {o.key: o.size for o in lake.list(prefix)}
    missing = [k for k in keys if k not in sizes]
    if missing:
        raise IncompleteRawRun(f"the fetch reported {', '.join(missing[:3])} but the lake does not hold it")
    manifest = {
        "dataset": dataset,
        "run_id": run_id,
        "state": "complete",
        "written_at": _stamp(_now()),
        "files": [{"key": k[len(prefix) :], "size": sizes[k]} for k in keys],
        "bytes": sum(sizes[k] for k in keys),
    }
    lake.write_json(naming.raw_manifest_key(dataset, run_id), manifest)
    return manifest


def _legacy_raw_keys(lake: Lake, naming: Naming, dataset: str, run_id: str) -> list[str] | None:
    """The raw keys a ledger entry of the run itself lists: its fetch finished (written before manifests)."""
    for layer in ("raw", "bronze"):
        key = naming.run_summary_key(dataset, run_id, layer)
        try:
            entry = read_entry(lake, key)
        except UnreadableEntry:
            continue
        if entry is None or entry.get("raw_run_id") not in (None, run_id):
            continue
        keys = entry.get("raw_keys")
        if isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys):
            return keys
    return None


def raw_run_files(lake: Lake, naming: Naming, dataset: str, run_id: str, *, dropped: bool) -> tuple[list[str], str]:
    """The files of a kept raw run to replay, and a note for the run (or ""); IncompleteRawRun if it must not be.

    A run the job fetched is replayable once its manifest says the fetch finished, and then only the files it
    lists, each still of its size. A drop (`dropped`: landing, dynamodb_table) is closed by its dropper's
    `_SUCCESS`, not by a manifest: its data files are replayed as they are. A fetched run kept before manifests
    existed is replayed only when its own ledger entry lists the files its finished fetch landed.
    """
    prefix = naming.raw_prefix(dataset, run_id)
    manifest_key = naming.raw_manifest_key(dataset, run_id)
    again = f"run again without --raw-run-id (`dw run {dataset}`), which fetches the source anew"
    present = {o.key: o.size for o in lake.list(prefix)}
    stopped = (
        f"the raw run {prefix} is incomplete: its fetch was stopped midway (its {RAW_MANIFEST} says it is still "
        f"{FETCHING}), and a replay would replace bronze with part of the source; {again}"
    )
    if manifest_key in present:
        try:
            manifest = lake.read_json(manifest_key)
            fetching = isinstance(manifest, dict) and manifest.get("state") == FETCHING
            listed = [] if fetching else [(prefix + str(f["key"]), int(f["size"])) for f in manifest["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise IncompleteRawRun(
                f"the raw run {prefix} cannot be replayed: its manifest {manifest_key} is not readable ({exc}); "
                f"{again}, or delete {prefix}"
            ) from None
        if fetching:
            raise IncompleteRawRun(stopped)
        problems = [
            f"{key} is missing" if key not in present else f"{key} is {present[key]} bytes, the manifest says {size}"
            for key, size in listed
            if present.get(key) != size
        ]
        if problems or not listed:
            raise IncompleteRawRun(
                f"the raw run {prefix} no longer holds what its fetch landed ({'; '.join(problems[:3]) or 'no files'}"
                f"{f' and {len(problems) - 3} more' if len(problems) > 3 else ''}), so a replay would publish "
                f"part of the source; {again}"
            )
        return [key for key, _ in listed], ""
    if dropped:
        return drop_files(lake, naming, dataset, run_id), ""
    legacy = _legacy_raw_keys(lake, naming, dataset, run_id)
    if legacy is not None and all(k in present for k in legacy):
        return legacy, (
            f"note: the raw run {prefix} predates raw manifests ({RAW_MANIFEST}); its ledger entry says its fetch "
            f"finished with {len(legacy)} file(s), and those are replayed"
        )
    raise IncompleteRawRun(
        f"the raw run {prefix} is incomplete: it has no {RAW_MANIFEST}, which a fetch writes once every file is "
        f"landed, so its fetch was stopped midway and a replay would replace bronze with part of the source; {again}"
        f", then delete {prefix}"
    )


def drop_files(lake: Lake, naming: Naming, dataset: str, run_id: str) -> list[str]:
    """The data files of a drop (landing, dynamodb_table) once its dropper closed it; IncompleteRawRun if not.

    A drop is closed by its non-empty `_SUCCESS`, written last. When the marker is a JSON manifest (the
    DynamoDB export Lambda's: `files`, `bytes`), the files it names must be there, of the bytes it says.
    """
    prefix = naming.raw_prefix(dataset, run_id)
    marker = naming.drop_marker_key(dataset, run_id)
    present = {o.key: o.size for o in lake.data_files(prefix)}
    sizes = {o.key: o.size for o in lake.list(prefix)}
    wait = (
        f"write its {DROP_MARKER} last, once every file is dropped (a DynamoDB export writes it when it finishes: "
        "wait for the export), then start the run again"
    )
    if sizes.get(marker) is None:
        raise IncompleteRawRun(
            f"the drop {prefix} is not closed: it has no {DROP_MARKER}, so its files may still be arriving and a run "
            f"would publish part of them; {wait}"
        )
    if sizes[marker] == 0:
        raise IncompleteRawRun(
            f"the drop {prefix} is not closed: its {DROP_MARKER} is empty (a marker is never empty); {wait}"
        )
    said = _marker_json(lake, marker)
    if isinstance(said.get("files"), list):
        named = [prefix + str(f) for f in said["files"]]
        missing = [k for k in named if k not in present]
        if missing:
            raise IncompleteRawRun(
                f"the drop {prefix} does not hold what its {DROP_MARKER} names ({', '.join(missing[:3])} missing), "
                f"so a run would publish part of it; {wait}"
            )
        total = said.get("bytes")
        if isinstance(total, int) and not isinstance(total, bool) and sum(present[k] for k in named) != total:
            raise IncompleteRawRun(
                f"the drop {prefix} holds {sum(present[k] for k in named)} bytes in the files its {DROP_MARKER} "
                f"names, which says {total}, so a run would publish part of it; {wait}"
            )
    if not present:
        raise IncompleteRawRun(f"the drop {prefix} holds no data files beside its {DROP_MARKER}")
    return sorted(present)


def drop_manifest(lake: Lake, naming: Naming, dataset: str, run_id: str) -> dict[str, Any]:
    """The drop's `_SUCCESS` as a JSON manifest (the DynamoDB export's: `files`, `bytes`, `rows`, `types`), else {}."""
    marker = naming.drop_marker_key(dataset, run_id)
    if not any(o.key == marker and o.size for o in lake.list(marker)):
        return {}
    return _marker_json(lake, marker)


def _marker_json(lake: Lake, marker: str) -> dict[str, Any]:
    """The marker's JSON object; {} for any other content (a landing drop's marker may say anything: its presence
    closes the folder)."""
    try:
        said = json.loads(lake.read_bytes(marker))
    except (ValueError, UnicodeDecodeError):
        return {}
    return said if isinstance(said, dict) else {}


def manifest_types(said: dict[str, Any]) -> dict[str, set[str]]:
    """A manifest's `types` ({attribute: [DynamoDB types]}), well formed, else {} (older exports have none)."""
    types = said.get("types")
    if not isinstance(types, dict):
        return {}
    return {
        str(name): {str(k) for k in kinds}
        for name, kinds in types.items()
        if isinstance(kinds, list) and all(isinstance(k, str) for k in kinds)
    }


def manifest_rows(said: dict[str, Any]) -> int | None:
    """A manifest's `rows`, when it gives a whole number."""
    rows = said.get("rows")
    return rows if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0 else None


def raw_run_replayable(lake: Lake, naming: Naming, dataset: str, run_id: str, *, dropped: bool) -> bool:
    try:
        raw_run_files(lake, naming, dataset, run_id, dropped=dropped)
    except IncompleteRawRun:
        return False
    return True


def claim_run_id(ctx, layer: str) -> list[dict[str, Any]]:
    """Make ctx.run_id a run id this run may use; returns the earlier attempts of the same run id.

    A run id chosen by the clock moves on by a second while the ledger or raw/ already knows it.
    A given run id is refused when its run of this layer succeeded (a run id names one run); a
    failed or dead attempt of it may be retried (Glue retries a job with the same id), and that
    attempt is kept in the new entry.
    """
    entries = ledger_entries(ctx.lake, ctx.naming, ctx.name)
    if ctx.auto_run_id:
        raw = raw_run_ids(ctx.lake, ctx.naming, ctx.name)
        taken = {run_id for run_id, _ in entries} | raw
        while ctx.run_id in taken:
            ctx.run_id = next_run_id(ctx.run_id)
        ctx.auto_run_id = False  # later layers of this run (gold after bronze) share the id
        return []
    key = entries.get((ctx.run_id, layer))
    if key is None:
        return []
    try:
        earlier = read_entry(ctx.lake, key) or {"status": "unreadable"}
    except (UnreadableEntry, OSError):
        earlier = {"status": "unreadable"}
    replay = getattr(ctx, "raw_run_id", None) == ctx.run_id
    if earlier.get("status") == "succeeded" and not replay:
        raise RunRefused(
            f"run id {ctx.run_id} of {ctx.name} already names a {layer} run that succeeded ({key}); a run id names "
            f"one run: leave out --run-id for a new one, or replay its raw files with "
            f"`dw run {ctx.name} --raw-run-id {ctx.run_id}`. Nothing was written."
        )
    attempts = list(earlier.pop("previous_attempts", []) or [])
    brief = {k: earlier.get(k) for k in ("status", "started_at", "finished_at", "error")}
    return [*attempts, brief]


# ------------------------------------------------------------------ unfinished publishes


def journal_targets(lake: Lake, naming: Naming, dataset: str) -> list[str]:
    folder = naming.publish_journal_key(dataset, "x").rsplit("/", 1)[0] + "/"
    return [o.key for o in lake.list(folder) if o.key.endswith(".json")]


def finish_publishes(ctx) -> list[str]:
    """Complete or roll back every publish of the dataset that a dead run left; fix its ledger entry.

    Returns one sentence per publish finished, for the run's summary.
    """
    lake, naming = ctx.lake, ctx.naming
    done = []
    for journal in journal_targets(lake, naming, ctx.name):
        record = lake.finish_publish(journal)
        if record is None:
            continue
        run_id, layer, model = record.get("run_id"), record.get("layer", "bronze"), record.get("model")
        if record["outcome"] == "completed" and run_id and _says_succeeded(ctx, run_id, layer, model):
            # A publish whose run finished and said so, killed before it removed the journal (or, by a run of
            # an older version, before it wrote its `runs` row): the row says what the entry says.
            _ensure_ops_row(ctx, run_id, layer)
            continue
        what = f"{layer} model {model}" if model else layer
        sentence = (
            f"found the unfinished publish of {what} run {run_id} to {record['final']} and {record['outcome']} "
            f"it ({record['detail']})"
        )
        done.append(sentence)
        if run_id:
            _correct_entry(ctx, run_id, layer, model, record["outcome"], record["final"])
    return done + _settle_iceberg_publishes(ctx)


def _says_succeeded(ctx, run_id: str, layer: str, model: str | None) -> bool:
    try:
        entry = read_entry(ctx.lake, ctx.naming.run_summary_key(ctx.name, run_id, layer))
    except (UnreadableEntry, ValueError):
        return False
    if not entry:
        return False
    if model:
        return any(isinstance(m, dict) and m.get("name") == model and m.get("status") == "succeeded"
                   for m in entry.get("models") or [])  # fmt: skip
    return entry.get("status") == "succeeded"


def _ensure_ops_row(ctx, run_id: str, layer: str) -> None:
    try:
        entry = read_entry(ctx.lake, ctx.naming.run_summary_key(ctx.name, run_id, layer))
    except UnreadableEntry:
        return
    if entry is not None and entry.get("status") not in ACTIVE:
        metrics.ensure_run_row(ctx.lake, entry)


def _correct_entry(ctx, run_id: str, layer: str, model: str | None, outcome: str, final: str) -> None:
    """Make the dead run's ledger entry say what its data became."""
    key = ctx.naming.run_summary_key(ctx.name, run_id, layer)
    try:
        entry = read_entry(ctx.lake, key)
    except UnreadableEntry:
        return  # nothing to correct in; `dw runs` shows the file as unreadable
    if entry is None:
        return
    note = {"by_run_id": ctx.run_id, "at": _stamp(_now()), "outcome": outcome}
    published = outcome == "completed"
    if model:
        for result in entry.get("models", []):
            if result.get("name") == model:
                stopped = (result.get("error") or "stopped while publishing").rstrip(".")
                result["status"] = "succeeded" if published else "failed"
                result["error"] = None if published else f"{stopped}; rolled back: the previous table is kept"
        statuses = {m.get("status") for m in entry.get("models", [])}
        if not statuses & set(ACTIVE):
            entry["status"] = "succeeded" if statuses <= {"succeeded"} else "failed"
            if entry["status"] == "succeeded":
                entry["error"] = None
    elif published:
        entry["status"] = "succeeded"
        entry["error"] = None
        files = ctx.lake.data_files(final)  # the dead run never got to count them
        entry["output_files"], entry["output_bytes"] = len(files), sum(f.size for f in files)
    else:
        entry["status"] = "failed"
        stopped = (entry.get("error") or "the run stopped while publishing").rstrip(".")  # its own failure, if any
        entry["error"] = f"{stopped}; run {ctx.run_id} rolled the publish back, so {layer} keeps its previous data"
    entry.setdefault("finished_at", None)
    entry["finished_at"] = entry["finished_at"] or note["at"]
    entry["publish_finished"] = note
    metrics.record_run(ctx.lake, entry)  # the `runs` table's row says what the entry now says, written first
    ctx.lake.write_json(key, entry)  # (as a run's own): killed between the two, the next run corrects both again


# ------------------------------------------------------------------ Iceberg publishes a dead run left


def iceberg_targets(naming: Naming, dataset: str, entry: dict[str, Any]) -> list[tuple[str | None, tuple[str, str]]]:
    """(gold model or None, catalog identifier) of each Iceberg table the run of `entry` was committing to when it
    stopped: its bronze table, or its gold models that say `publishing`. None for a Parquet run's entry."""
    if entry.get("status") not in ACTIVE or entry.get("table_format") != "iceberg":
        return []
    from dwlib import iceberg

    if entry.get("layer") == "bronze":
        return [(None, iceberg.bronze_identifier(naming, dataset))] if entry.get("status") == "publishing" else []
    if entry.get("layer") == "gold":
        return [
            (str(m["name"]), iceberg.gold_identifier(naming, str(m["name"])))
            for m in entry.get("models") or []
            if m.get("status") == "publishing" and isinstance(m.get("name"), str)
        ]
    return []


def iceberg_commit(lake: Lake, naming: Naming, identifier: tuple[str, str], run_id: str) -> dict[str, Any] | None:
    """The snapshot of the Iceberg table `identifier` that run `run_id` committed (its `pp-dw.run-id` property), or
    None when no snapshot has it; raises what the catalog raises when it cannot be read (then nobody can tell)."""
    from pathlib import Path

    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from dwlib import iceberg

    if lake.root_uri.startswith("s3://"):
        cat = iceberg.catalog(lake, naming)
    else:
        cat = iceberg.local_catalog(Path(lake.root_uri))  # never made here: no catalog, no commit
        if cat is None:
            return None
    try:
        table = cat.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None
    for snapshot in sorted(table.snapshots(), key=lambda s: s.timestamp_ms, reverse=True):
        said = snapshot.summary
        if said is not None and said.get(iceberg.RUN_PROPERTY) == run_id:
            files = iceberg.live_data_files(table, snapshot.snapshot_id)
            return {
                "table": ".".join(identifier),
                "snapshot_id": snapshot.snapshot_id,
                "operation": said.operation.value,
                "committed": True,
                "data_files": len(files),
                "data_bytes": sum(f.file_size_in_bytes for f in files.values()),
            }
    return None


def _settle_iceberg_publishes(ctx) -> list[str]:
    """Make the entry of each dead run that stopped while committing to an Iceberg table say what the table holds.

    Iceberg keeps no journal: the commit is one catalog update, and its snapshot carries the run id. A run killed
    after its commit (during expiry, or before its final entry) published its rows; one killed before it left
    the table as it was. A table whose catalog cannot be read is left for a later run: nothing is guessed.
    """
    lake, naming = ctx.lake, ctx.naming
    done = []
    for (run_id, _layer), key in sorted(ledger_entries(lake, naming, ctx.name).items()):
        if run_id == ctx.run_id:  # this run's own entry (gold after bronze in one `dw run`, a retry of the run id)
            continue
        try:
            entry = read_entry(lake, key)
        except (UnreadableEntry, OSError):
            continue
        targets = iceberg_targets(naming, ctx.name, entry or {})
        if not entry or not targets:
            continue
        try:
            commits = {model: iceberg_commit(lake, naming, identifier, run_id) for model, identifier in targets}
        except Exception:  # noqa: BLE001 - the catalog unreadable: the entry stays as it is, for a later run
            continue
        done += _record_iceberg_outcome(ctx, key, entry, targets, commits)
    return done


def _record_iceberg_outcome(ctx, key: str, entry: dict[str, Any], targets, commits) -> list[str]:
    run_id, layer = entry["run_id"], entry["layer"]
    note = {"by_run_id": ctx.run_id, "at": _stamp(_now())}
    sentences = []
    for model, identifier in targets:
        commit, table = commits[model], ".".join(identifier)
        what = f"{layer} model {model}" if model else layer
        if commit is not None:
            sentences.append(
                f"found {what} run {run_id} stopped after its commit to {table} (snapshot {commit['snapshot_id']}, "
                f"which holds its rows): its entry now says succeeded"
            )
        else:
            sentences.append(
                f"found {what} run {run_id} stopped before its commit to {table} (no snapshot has its run id): "
                "its entry now says failed; the table keeps its previous data"
            )
    stopped = (entry.get("error") or "the run stopped while publishing").rstrip(".")
    if layer == "gold":
        for result in entry.get("models") or []:
            if result.get("name") not in commits:
                continue
            if commits[result["name"]] is not None:
                result["status"], result["error"], result["iceberg"] = "succeeded", None, commits[result["name"]]
            else:
                result["status"] = "failed"
                result["error"] = f"{stopped}; it stopped before its commit: the previous table is kept"
        statuses = {m.get("status") for m in entry.get("models") or []}
        if not statuses & set(ACTIVE):
            entry["status"] = "succeeded" if statuses <= {"succeeded"} else "failed"
            entry["error"] = None if entry["status"] == "succeeded" else entry.get("error")
    elif commits[None] is not None:
        commit = commits[None]
        entry["status"], entry["error"] = "succeeded", None
        entry["iceberg"] = {**(entry.get("iceberg") or {}), **commit}
        entry["output_files"], entry["output_bytes"] = commit["data_files"], commit["data_bytes"]
    else:
        entry["status"] = "failed"
        entry["error"] = f"{stopped}; it stopped before its commit, so {layer} keeps its previous data"
    committed = [c["table"] for c in commits.values() if c is not None]
    if committed:
        entry["notes"] = [
            *(entry.get("notes") or []),
            f"killed after its commit to {', '.join(committed)} and before its final entry ({stopped}); run "
            f"{ctx.run_id} found the committed snapshot and recorded the run as published",
        ]
    entry["finished_at"] = entry.get("finished_at") or note["at"]
    entry["publish_finished"] = {**note, "outcome": "committed" if committed else "not committed"}
    metrics.record_run(ctx.lake, entry)  # the `runs` row first, as a run's own final entry (see _correct_entry)
    ctx.lake.write_json(key, entry)
    return sentences


# ------------------------------------------------------------------ runs nobody finished


@dataclass
class Incomplete:
    run_id: str
    layer: str
    why: str
    advice: str


def incomplete_runs(
    lake: Lake, naming: Naming, dataset: str, timeout_minutes: int, *, dropped: bool = False
) -> list[Incomplete]:
    """Runs whose entry says running with no live lock behind it, and raw folders no entry accounts for.

    `dropped`: the dataset's raw runs are drops (landing, dynamodb_table), closed by their dropper, not by a
    manifest; a fetched raw run without its manifest is advised a new run, never a replay.
    """
    entries = ledger_entries(lake, naming, dataset)
    state = inspect_lock(lake, naming, dataset, timeout_minutes)
    live = state.holder.get("run_id") if state and state.stale_because is None else None
    raw = raw_run_ids(lake, naming, dataset)
    used_raw: set[str] = set()
    found: list[Incomplete] = []
    journaled: dict[str, str] = {}  # run id -> the journal of a publish it started (and maybe finished)
    for journal in journal_targets(lake, naming, dataset):
        try:
            journaled.setdefault(str(lake.read_json(journal).get("run_id")), journal)
        except (ValueError, OSError, AttributeError):
            continue
    for (run_id, layer), key in sorted(entries.items()):
        try:
            entry = read_entry(lake, key)
        except (UnreadableEntry, OSError):
            continue  # `dw runs` lists it as unreadable, naming the file
        if entry is None:
            continue
        if entry.get("raw_run_id"):
            used_raw.add(entry["raw_run_id"])
        if entry.get("status") in ACTIVE and run_id != live and run_id in journaled:
            found.append(
                Incomplete(
                    run_id,
                    layer,
                    f"its entry says {entry['status']}, no run holds the lock, and its publish journal "
                    f"{journaled[run_id]} remains",
                    f"the next run of {dataset} (any layer) finishes or undoes that publish and corrects this entry; "
                    f"delete nothing: the table may hold this run's files",
                )
            )
        elif run_id != live and (committed := _iceberg_state(lake, naming, dataset, entry)) is not None:
            found.append(Incomplete(run_id, layer, committed[0], committed[1]))
        elif entry.get("status") in ACTIVE and run_id != live:
            source = entry.get("raw_run_id") or (run_id if run_id in raw else None)
            replayable = source is not None and raw_run_replayable(lake, naming, dataset, source, dropped=dropped)
            found.append(
                Incomplete(
                    run_id,
                    layer,
                    f"its entry says {entry['status']} and no run holds the lock",
                    _advice(dataset, run_id, layer, naming, raw=run_id in raw, entry=key,
                            raw_run_id=entry.get("raw_run_id"), replayable=replayable, dropped=dropped),  # fmt: skip
                )
            )
    with_entry = {run_id for run_id, _ in entries} | used_raw
    for run_id in sorted(raw - with_entry - ({live} if live else set())):
        replayable = raw_run_replayable(lake, naming, dataset, run_id, dropped=dropped)
        found.append(
            Incomplete(
                run_id,
                "raw",
                "raw files without a ledger entry",
                _advice(dataset, run_id, "raw", naming, raw=True, entry=None, replayable=replayable, dropped=dropped),
            )
        )
    return found


def _iceberg_state(lake: Lake, naming: Naming, dataset: str, entry: dict[str, Any]) -> tuple[str, str] | None:
    """(why, advice) for a dead run that stopped while committing to Iceberg and did commit (or may have: the
    catalog cannot be read); None when no table it was committing to holds its rows, and for any other entry."""
    targets = iceberg_targets(naming, dataset, entry)
    if not targets:
        return None
    status, run_id = entry["status"], entry["run_id"]
    settle = f"the next run of {dataset} (any layer) records what its commit did and corrects this entry"
    try:
        commits = [(identifier, iceberg_commit(lake, naming, identifier, run_id)) for _, identifier in targets]
    except Exception as exc:  # noqa: BLE001 - the catalog unreadable: the table may hold its rows
        return (
            f"its entry says {status}, no run holds the lock, and whether its Iceberg commit went through cannot be "
            f"told ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
            f"{settle}; delete nothing: the table may hold this run's rows",
        )
    held = [f"{'.'.join(identifier)} (snapshot {commit['snapshot_id']})" for identifier, commit in commits if commit]
    if not held:
        return None
    return (
        f"its entry says {status} and no run holds the lock, but it was stopped after its commit: "
        f"{', '.join(held)} holds its rows",
        f"{settle} (succeeded); delete nothing: the table holds this run's rows",
    )


def _advice(dataset: str, run_id: str, layer: str, naming: Naming, *, raw: bool, entry: str | None,
            raw_run_id: str | None = None, replayable: bool = True, dropped: bool = False) -> str:  # fmt: skip
    leftovers = [naming.raw_prefix(dataset, run_id)] if raw and layer != "gold" else []
    leftovers += [entry] if entry else []
    clean = f"or clean up: delete {' and '.join(leftovers)}"
    if layer == "gold":
        return f"run again: dw run {dataset} --layer gold; {clean}"
    source = raw_run_id or (run_id if raw else None)
    if source and replayable:
        return f"replay: dw run {dataset} --raw-run-id {source}; {clean}"
    if source and dropped:
        return (
            f"the drop {naming.raw_prefix(dataset, source)} is not closed (no non-empty {DROP_MARKER}, or its files "
            f"differ from what the {DROP_MARKER} names), so it cannot be run yet: write its {DROP_MARKER} last once "
            f"every file is dropped (or wait for the export), then: dw run {dataset} --raw-run-id {source}; {clean}"
        )
    if source:
        return (
            f"the raw run {naming.raw_prefix(dataset, source)} is incomplete (its fetch never finished: no "
            f"{RAW_MANIFEST}), so it cannot be replayed; run again without --raw-run-id: dw run {dataset}; {clean}"
        )
    return f"run again: dw run {dataset}; {clean}"
