"""Runs that cannot trample each other: the publish journal, the dataset lock, unique run ids, incomplete runs.

S3 through moto, with a client that fails the way S3 does (DeleteObjects answers 200 and lists
per-key `Errors`) or dies between the copy and the delete; the local lake on a tmp directory.
No Spark: the "next run" is `run_raw`, which takes the same lock and ledger path as bronze and gold.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from dwlib import bronze, ledger
from dwlib.config import DatasetConfig
from dwlib.lake import LakeError, LocalLake, S3Lake
from dwlib.naming import Naming
from dwlib.run import Interrupted

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "lake-bucket"
DATASET = "shop-orders"
BRONZE = "bronze/shop_orders/"
OLD = [f"{BRONZE}part-0000{i}-old.parquet" for i in range(3)]
NEW = [f"{BRONZE}part-0000{i}-new.parquet" for i in range(2)]
STAGED = "staging/bronze/shop-orders/run_id=20260102T000000Z/output/"
FIRST, SECOND, THIRD = "20260101T000000Z", "20260102T000000Z", "20260103T000000Z"


class SimulatedKill(BaseException):
    """The job dying (SIGKILL, a Glue timeout) at a chosen call: nothing after it runs."""


class FlakyS3:
    """A boto3 S3 client that refuses to delete some keys (as S3 reports it) or dies at a chosen call."""

    def __init__(self, client, *, refuse: set[str] = frozenset(), die_at: str | None = None):
        self._client, self.refuse, self.die_at = client, set(refuse), die_at
        self.calls: list[str] = []

    def delete_objects(self, *, Bucket, Delete):  # noqa: N803 - boto3's names
        self.calls.append("delete_objects")
        if self.die_at == "delete_objects":
            raise SimulatedKill()
        keep = [o for o in Delete["Objects"] if o["Key"] not in self.refuse]
        answer = self._client.delete_objects(Bucket=Bucket, Delete={**Delete, "Objects": keep}) if keep else {}
        errors = [{"Key": o["Key"], "Code": "AccessDenied", "Message": "Access Denied"} for o in Delete["Objects"]
                  if o["Key"] in self.refuse]  # fmt: skip
        return {**answer, "Errors": errors} if errors else answer

    def copy(self, *args, **kwargs):
        self.calls.append("copy")
        if self.die_at == "copy" and self.calls.count("copy") == 2:
            raise SimulatedKill()
        return self._client.copy(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def config() -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"dataset": DATASET, "description": "orders", "data_size_category": "small", "landing": True}
    )


def plant(lake, keys: list[str], tag: bytes = b"x") -> None:
    for key in keys:
        lake.write_bytes(key, tag + key.encode())


def keys_under(lake, prefix: str) -> list[str]:
    return sorted(o.key for o in lake.list(prefix))


def sample_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "sample"
    folder.mkdir(exist_ok=True)
    (folder / "orders.csv").write_text("order_id\n1\n")
    return folder


def ctx_for(core, lake, run_id: str, **extra) -> bronze.JobContext:
    return bronze.JobContext(core=core, dataset=config(), lake=lake, run_id=run_id, **extra)


def a_publishing_run(core, lake, run_id: str) -> bronze.RunSummary:
    """A run that gets as far as bronze's publish (what run_bronze does around it, without Spark)."""
    ctx = ctx_for(core, lake, run_id)

    def new_summary():
        return bronze.RunSummary(dataset=DATASET, run_id=run_id, layer="bronze", source="landing", rows_in=5)

    def work(summary, entry):
        summary.status = "publishing"
        try:
            bronze.publish(ctx, summary, entry, STAGED, BRONZE, "bronze", layer="bronze")
            summary.status = "succeeded"
        except LakeError as exc:
            summary.status, summary.error = "failed", str(exc)

    return bronze.guarded_run(ctx, "bronze", new_summary, work)


def entry(lake, run_id: str, layer: str = "bronze") -> dict:
    return lake.read_json(Naming("pp-dw", "pp_dw").run_summary_key(DATASET, run_id, layer))


# ------------------------------------------------------------------ 5. publishing to S3


def test_s3_delete_errors_fail_the_publish_naming_the_keys_and_the_next_run_finishes_it(s3, core, tmp_path):
    plain = S3Lake(BUCKET, client=s3)
    plant(plain, OLD, b"old")
    plant(plain, [STAGED + k.rsplit("/", 1)[1] for k in NEW], b"new")
    flaky = S3Lake(BUCKET, client=FlakyS3(s3, refuse={OLD[0], OLD[2]}))

    first = a_publishing_run(core, flaky, SECOND)

    assert first.status == "failed"
    assert OLD[0] in first.error and OLD[2] in first.error and "AccessDenied" in first.error
    assert "may hold the files of two runs" in first.error
    # What a reader sees right now: both generations, and the ledger says so instead of "succeeded".
    assert keys_under(plain, BRONZE) == sorted([OLD[0], OLD[2], *NEW])
    assert entry(plain, SECOND)["status"] == "failed"
    assert plain.exists("runs/shop-orders/_publish/bronze.json")

    # The next run (S3 healthy again) finishes the publish before anything else.
    nxt = bronze.run_raw(ctx_for(core, plain, THIRD, sample_dir=sample_dir(tmp_path)))
    assert nxt.status == "succeeded", nxt.error
    assert keys_under(plain, BRONZE) == sorted(NEW)  # exactly one generation
    assert not plain.has_prefix("runs/shop-orders/_publish/")
    assert any("completed" in line and SECOND in line for line in nxt.finished_for_others)
    fixed = entry(plain, SECOND)
    assert fixed["status"] == "succeeded" and fixed["error"] is None
    assert fixed["publish_finished"]["by_run_id"] == THIRD


def test_s3_publish_killed_between_copy_and_delete_is_completed_by_the_next_run(s3, core, tmp_path):
    plain = S3Lake(BUCKET, client=s3)
    plant(plain, OLD, b"old")
    plant(plain, [STAGED + k.rsplit("/", 1)[1] for k in NEW], b"new")
    dying = S3Lake(BUCKET, client=FlakyS3(s3, die_at="delete_objects"))

    with pytest.raises(SimulatedKill):
        a_publishing_run(core, dying, SECOND)
    assert keys_under(plain, BRONZE) == sorted([*OLD, *NEW])  # the window: both generations
    assert entry(plain, SECOND)["status"] == "publishing"

    nxt = bronze.run_raw(ctx_for(core, plain, THIRD, sample_dir=sample_dir(tmp_path)))
    assert nxt.status == "succeeded", nxt.error
    assert keys_under(plain, BRONZE) == sorted(NEW)
    assert [plain.read_bytes(k)[:3] for k in NEW] == [b"new", b"new"]
    assert entry(plain, SECOND)["status"] == "succeeded"
    assert entry(plain, SECOND)["output_files"] == 2
    assert not plain.has_prefix(STAGED)


def test_s3_publish_killed_while_copying_is_rolled_back_by_the_next_run(s3, core, tmp_path):
    plain = S3Lake(BUCKET, client=s3)
    plant(plain, OLD, b"old")
    plant(plain, [STAGED + k.rsplit("/", 1)[1] for k in NEW], b"new")
    flaky = FlakyS3(s3, die_at="copy")

    def die_everywhere(**kwargs):  # the process is gone: its own rollback never runs
        raise SimulatedKill()

    flaky.delete_objects = die_everywhere
    with pytest.raises(SimulatedKill):
        a_publishing_run(core, S3Lake(BUCKET, client=flaky), SECOND)
    assert keys_under(plain, BRONZE) == sorted([*OLD, NEW[0]])

    nxt = bronze.run_raw(ctx_for(core, plain, THIRD, sample_dir=sample_dir(tmp_path)))
    assert nxt.status == "succeeded", nxt.error
    assert keys_under(plain, BRONZE) == sorted(OLD)  # the previous table, whole
    rolled = entry(plain, SECOND)
    assert rolled["status"] == "failed"
    assert "rolled the publish back" in rolled["error"] and "keeps its previous data" in rolled["error"]


def test_s3_delete_prefix_checks_every_key(s3):
    plain = S3Lake(BUCKET, client=s3)
    plant(plain, OLD)
    with pytest.raises(LakeError, match="did not delete 1 of 3") as caught:
        S3Lake(BUCKET, client=FlakyS3(s3, refuse={OLD[1]})).delete_prefix(BRONZE)
    assert OLD[1] in str(caught.value)


def test_local_publish_killed_between_the_two_renames_is_undone(core, tmp_path, monkeypatch):
    lake = LocalLake(tmp_path / "lake")
    plant(lake, OLD, b"old")
    plant(lake, [STAGED + k.rsplit("/", 1)[1] for k in NEW], b"new")
    real_replace = os.replace

    dead = []

    def replace(src, dst):  # dies as the new folder is moved into place, after the old one was parked
        if dead or Path(src) == lake.path(STAGED):
            dead.append(src)  # and stays dead: its own rollback never runs
            raise SimulatedKill()
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SimulatedKill):
        a_publishing_run(core, lake, SECOND)
    monkeypatch.setattr(os, "replace", real_replace)
    assert keys_under(lake, BRONZE) == []  # the table is parked under a hidden name
    assert entry(lake, SECOND)["status"] == "publishing"

    nxt = bronze.run_raw(ctx_for(core, lake, THIRD, sample_dir=sample_dir(tmp_path)))
    assert nxt.status == "succeeded", nxt.error
    assert keys_under(lake, BRONZE) == sorted(OLD)
    assert entry(lake, SECOND)["status"] == "failed"


GOLD = "gold/shop_orders/orders_by_day/"
GOLD_STAGED = "staging/gold/shop-orders/run_id=20260102T000000Z/orders_by_day/"


class JournalKept(LocalLake):
    """A lake whose publish journals cannot be removed (a read-only `_publish/` folder)."""

    def delete_prefix(self, prefix: str) -> int:
        if "/_publish/" in prefix:
            raise PermissionError(13, "Permission denied", str(self.path(prefix)))
        return super().delete_prefix(prefix)


def a_table(lake, prefix: str, run_id: str, order_ids: list[int]) -> None:
    """A Parquet table's folder as a run writes it: its rows carry the run's meta_run_id."""
    out = pa.BufferOutputStream()
    pq.write_table(pa.table({"order_id": order_ids, "meta_run_id": [run_id] * len(order_ids)}), out)
    lake.write_bytes(f"{prefix}part-00000-{run_id}.parquet", out.getvalue().to_pybytes())


def rows_of(lake, prefix: str) -> list[tuple[int, str]]:
    tables = [pq.read_table(pa.BufferReader(lake.read_bytes(o.key))) for o in lake.data_files(prefix)]
    return sorted((row["order_id"], row["meta_run_id"]) for t in tables for row in t.to_pylist())


def what_the_next_run_finds(core, lake, tmp_path, layer: str, holds: str, outcome: str | None) -> None:
    """The next run, with nothing new to publish, finishes whatever the failed publish left; then the table
    holds the rows of one run, and the ledger says which."""
    final = BRONZE if layer == "bronze" else GOLD
    nxt = bronze.run_raw(ctx_for(core, lake, THIRD, sample_dir=sample_dir(tmp_path)))
    assert nxt.status == "succeeded", nxt.error
    assert rows_of(lake, final) == ([(1, FIRST), (2, FIRST)] if holds == FIRST else [(3, SECOND)])
    assert not lake.has_prefix(f"runs/{DATASET}/_publish/")
    second = entry(lake, SECOND, layer)
    assert second["status"] == ("succeeded" if holds == SECOND else "failed")
    ops_row = json.loads(lake.read_bytes(Naming.ops_run_key(DATASET, SECOND, layer)))  # pp_dw_ops.runs
    assert (ops_row["status"], ops_row["error"]) == (second["status"], second["error"])
    if layer == "gold":
        assert second["models"][0]["status"] == second["status"]
    if holds == SECOND:
        assert second["error"] is None
    if outcome is None:
        assert nxt.finished_for_others == []
    else:
        assert [f"{outcome} it" in line and SECOND in line for line in nxt.finished_for_others] == [True]
    if outcome == "completed" and layer == "bronze":
        assert second["output_files"] == 1


def a_run_publishing_to(layer: str, core, lake, run_id: str) -> bronze.RunSummary:
    """A bronze run, or a gold run of one model, up to its publish (what run_bronze and run_gold do around it)."""
    ctx = ctx_for(core, lake, run_id)

    def new_summary():
        return bronze.RunSummary(dataset=DATASET, run_id=run_id, layer=layer, source="landing", rows_in=2)

    def work(summary, entry):
        if layer == "bronze":
            summary.status = "publishing"
            bronze.publish(ctx, summary, entry, STAGED, BRONZE, "bronze", layer="bronze")
            summary.status = "succeeded"
            return
        model = {"name": "orders_by_day", "status": "publishing", "error": None}
        summary.models = [model]
        try:
            bronze.publish(ctx, summary, entry, GOLD_STAGED, GOLD, "gold.orders_by_day", layer="gold",
                           model="orders_by_day")  # fmt: skip
            model["status"] = "succeeded"
        except Exception as exc:  # run_gold fails the model, and the run with it
            model["status"], model["error"] = "failed", str(exc)
            summary.error = f"orders_by_day failed: {exc}"
        summary.status = model["status"]

    return bronze.guarded_run(ctx, layer, new_summary, work, staging=f"staging/{layer}/{DATASET}/", kept="kept.")


@pytest.mark.parametrize("layer", ["bronze", "gold"])
def test_a_run_killed_before_its_ops_row_leaves_no_run_missing_from_the_runs_table(core, tmp_path, monkeypatch, layer):
    """SIGKILL at the write of the pp_dw_ops.runs row: the next run finishes the publish and writes entry and row."""
    from dwlib import metrics

    final, staged = (BRONZE, STAGED) if layer == "bronze" else (GOLD, GOLD_STAGED)
    lake = LocalLake(tmp_path / "lake")
    a_table(lake, final, FIRST, [1, 2])
    a_table(lake, staged, SECOND, [3])
    real = metrics.record_run
    monkeypatch.setattr(metrics, "record_run", lambda *_: (_ for _ in ()).throw(SimulatedKill()))
    with pytest.raises(SimulatedKill):
        a_run_publishing_to(layer, core, lake, SECOND)
    monkeypatch.setattr(metrics, "record_run", real)
    lake.delete_prefix(f"runs/{DATASET}/_lock.json")
    what_the_next_run_finds(core, lake, tmp_path, layer, SECOND, "completed")


@pytest.mark.parametrize("layer", ["bronze", "gold"])
def test_a_final_entry_without_its_ops_row_gets_one_from_the_next_run(core, tmp_path, monkeypatch, layer):
    """The final entry written, the row not (a kill in between, or a run of an older version): the next run
    writes the row from the entry, so pp_dw_ops.runs and the ledger agree."""
    from dwlib import metrics, run

    final, staged = (BRONZE, STAGED) if layer == "bronze" else (GOLD, GOLD_STAGED)
    lake = LocalLake(tmp_path / "lake")
    a_table(lake, final, FIRST, [1, 2])
    a_table(lake, staged, SECOND, [3])
    real = metrics.record_run
    monkeypatch.setattr(metrics, "record_run", lambda *_: None)
    monkeypatch.setattr(run, "forget_publishes", lambda *_: (_ for _ in ()).throw(SimulatedKill()))
    with pytest.raises(SimulatedKill):
        a_run_publishing_to(layer, core, lake, SECOND)
    monkeypatch.setattr(metrics, "record_run", real)
    monkeypatch.undo()
    assert entry(lake, SECOND, layer)["status"] == "succeeded"
    assert not lake.exists(Naming.ops_run_key(DATASET, SECOND, layer))
    lake.delete_prefix(f"runs/{DATASET}/_lock.json")
    what_the_next_run_finds(core, lake, tmp_path, layer, SECOND, None)


# Each step of a local publish failing: (the step, the run that dies there, whose rows the table holds after
# the next run, what the next run says it did with the publish).
PUBLISH_STEPS = [
    ("parking the old folder", False, FIRST, None),
    ("parking the old folder, journal kept", False, FIRST, "rolled back"),
    ("moving the new folder in", False, FIRST, None),
    ("after moving the new folder in", True, SECOND, "completed"),
    # The publish finished and the entry says succeeded: the next run removes the journal, with nothing to say.
    ("removing the journal", False, SECOND, None),
]


@pytest.mark.parametrize("layer", ["bronze", "gold"])
@pytest.mark.parametrize(("step", "dies", "holds", "outcome"), PUBLISH_STEPS, ids=[s[0] for s in PUBLISH_STEPS])
def test_a_local_publish_failing_at_any_step_leaves_the_ledger_saying_whose_rows_the_table_holds(
    core, tmp_path, monkeypatch, layer, step, dies, holds, outcome
):
    final, staged = (BRONZE, STAGED) if layer == "bronze" else (GOLD, GOLD_STAGED)
    lake = LocalLake(tmp_path / "lake")
    a_table(lake, final, FIRST, [1, 2])
    a_table(lake, staged, SECOND, [3])
    failing = JournalKept(lake.root) if "journal" in step else lake
    real_replace, dead = os.replace, []

    def replace(src, dst):
        if dead:  # the process is gone: nothing after it runs
            raise SimulatedKill()
        if step.startswith("parking") and Path(src) == lake.path(final) and ".replaced-" in str(dst):
            raise PermissionError(13, "Permission denied", str(src))  # as a read-only folder refuses it
        if Path(src) == lake.path(staged) and Path(dst) == lake.path(final):
            if step == "moving the new folder in":
                raise PermissionError(13, "Permission denied", str(src))
            if step == "after moving the new folder in":
                real_replace(src, dst)
                dead.append(src)
                raise SimulatedKill()
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    if dies:
        with pytest.raises(SimulatedKill):
            a_run_publishing_to(layer, core, failing, SECOND)
    else:  # the run says succeeded exactly when the table holds its rows
        assert a_run_publishing_to(layer, core, failing, SECOND).status == ("succeeded" if holds == SECOND else "failed")
    monkeypatch.setattr(os, "replace", real_replace)

    what_the_next_run_finds(core, lake, tmp_path, layer, holds, outcome)
    assert sorted(p.name for p in lake.path(final).parent.iterdir()) == [lake.path(final).name]  # nothing parked
    if holds == FIRST:
        assert "Permission denied" in entry(lake, SECOND, layer)["error"]


class RefusingS3(FlakyS3):
    """S3 refusing one step of a publish with AccessDenied: a copy, or a write of the journal in a given state."""

    def __init__(self, client, *, refuse_copy: bool = False, refuse_journal: str | None = None, **kwargs):
        super().__init__(client, **kwargs)
        self.refuse_copy, self.refuse_journal = refuse_copy, refuse_journal

    def _denied(self, operation: str) -> ClientError:
        return ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, operation)

    def copy(self, *args, **kwargs):
        if self.refuse_copy and self.calls.count("copy") == 0:
            self.calls.append("copy")
            raise self._denied("CopyObject")
        return super().copy(*args, **kwargs)

    def put_object(self, **kwargs):
        if (
            self.refuse_journal
            and "/_publish/" in kwargs["Key"]
            and f'"{self.refuse_journal}"'.encode() in kwargs["Body"]
        ):
            raise self._denied("PutObject")
        return self._client.put_object(**kwargs)


# Each step of an S3 publish failing: (the step, how S3 refuses it, whose rows the table holds after the next
# run, what the next run says it did with the publish). Deletes of the old files refused: see above.
S3_PUBLISH_STEPS = [
    ("copying the new files", {"refuse_copy": True}, FIRST, None),
    ("writing the commit point", {"refuse_journal": "deleting"}, FIRST, None),  # the run removed its copies itself
    ("removing the journal", {"refuse": {f"runs/{DATASET}/_publish/bronze.json",
                                         f"runs/{DATASET}/_publish/gold.orders_by_day.json"}}, SECOND, None),
]  # fmt: skip


@pytest.mark.parametrize("layer", ["bronze", "gold"])
@pytest.mark.parametrize(
    ("step", "refusal", "holds", "outcome"), S3_PUBLISH_STEPS, ids=[s[0] for s in S3_PUBLISH_STEPS]
)
def test_an_s3_publish_failing_at_any_step_leaves_the_ledger_saying_whose_rows_the_table_holds(
    s3, core, tmp_path, layer, step, refusal, holds, outcome
):
    plain = S3Lake(BUCKET, client=s3)
    a_table(plain, BRONZE if layer == "bronze" else GOLD, FIRST, [1, 2])
    a_table(plain, STAGED if layer == "bronze" else GOLD_STAGED, SECOND, [3])

    done = a_run_publishing_to(layer, core, S3Lake(BUCKET, client=RefusingS3(s3, **refusal)), SECOND)
    assert done.status == ("succeeded" if holds == SECOND else "failed")  # exactly when the table holds its rows
    what_the_next_run_finds(core, plain, tmp_path, layer, holds, outcome)


# ------------------------------------------------------------------ 9. one run at a time, unique run ids


@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path):
    if request.param == "local":
        yield LocalLake(tmp_path / "lake")
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield S3Lake(BUCKET, "lake", client=client)


def test_a_second_run_refuses_clearly_and_writes_nothing(any_lake, core, tmp_path):
    holder = ledger.RunLock(any_lake, Naming.of(core), DATASET, 120)
    holder.acquire(FIRST, "bronze")
    before = keys_under(any_lake, "")
    with pytest.raises(ledger.RunRefused) as refused:
        bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))
    message = str(refused.value)
    assert f"another run of {DATASET} (run id {FIRST}, started " in message
    assert f"wait for it or remove runs/{DATASET}/_lock.json if it died" in message
    assert keys_under(any_lake, "") == before
    holder.release()
    assert bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path))).status == "succeeded"
    assert not any_lake.exists(f"runs/{DATASET}/_lock.json")  # released in `finally`


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    "holder",
    [
        pytest.param({"host": socket.gethostname(), "age": timedelta(seconds=5), "pid": "dead"}, id="dead-local-pid"),
        pytest.param({"host": "ip-10-0-0-1", "age": timedelta(hours=3), "pid": 7}, id="older-than-the-job-timeout"),
        # A pid of this machine that is alive, but names a process started after the lock: the number was reused.
        pytest.param({"host": socket.gethostname(), "age": timedelta(hours=1), "pid": "live"}, id="same-host-pid-reused"),
        pytest.param({"host": "x", "age": timedelta(seconds=5), "pid": 7, "garbled": True}, id="unreadable"),
    ],
)
def test_a_stale_lock_is_taken_over(any_lake, core, tmp_path, holder, request):
    started = (datetime.now(UTC) - holder["age"]).isoformat(timespec="seconds")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) if holder["pid"] == "live" else None
    request.addfinalizer(lambda: other and other.kill())
    pid = dead_pid() if holder["pid"] == "dead" else other.pid if other else holder["pid"]
    document = {"run_id": FIRST, "host": holder["host"], "pid": pid, "started_at": started, "owner": "someone"}
    any_lake.write_bytes(f"runs/{DATASET}/_lock.json", b"{" if holder.get("garbled") else json.dumps(document).encode())
    summary = bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))
    assert summary.status == "succeeded", summary.error
    assert summary.lock_taken_over is not None
    assert "took over the lock of run" in "\n".join(bronze.housekeeping(summary))
    assert not any_lake.exists(f"runs/{DATASET}/_lock.json")


def test_a_young_lock_of_a_live_process_of_this_machine_is_respected(any_lake, core, tmp_path):
    started = datetime.now(UTC).isoformat(timespec="seconds")  # taken by this process, which started before
    any_lake.write_json(f"runs/{DATASET}/_lock.json", {"run_id": FIRST, "host": socket.gethostname(),
                                                       "pid": os.getpid(), "started_at": started})  # fmt: skip
    with pytest.raises(ledger.RunRefused, match=re.escape(f"run id {FIRST}, started {started}")):
        bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))


def test_an_old_lock_of_a_live_process_of_this_machine_is_respected(any_lake, core, tmp_path, monkeypatch):
    """A local run may outlast the job timeout (nothing stops it): its lock holds while its process lives."""
    started = datetime.now(UTC) - timedelta(minutes=core.glue_defaults.timeout_minutes + 60)
    stamp = started.isoformat(timespec="seconds")
    any_lake.write_json(f"runs/{DATASET}/_lock.json", {"run_id": FIRST, "host": socket.gethostname(),
                                                       "pid": os.getpid(), "started_at": stamp})  # fmt: skip
    # The holder's process started just before it took the lock (this process is younger than the lock's age).
    monkeypatch.setattr(ledger, "_process_start", lambda pid: started - timedelta(seconds=3), raising=False)
    with pytest.raises(ledger.RunRefused, match=re.escape(f"run id {FIRST}, started {stamp}")):
        bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))
    monkeypatch.setattr(ledger, "_process_start", lambda pid: None, raising=False)  # no /proc: respected too
    with pytest.raises(ledger.RunRefused):
        bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))


def test_the_start_of_a_process_is_read_from_proc():
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        begun = ledger._process_start(child.pid)
        assert begun is not None and abs((datetime.now(UTC) - begun).total_seconds()) < 10
    finally:
        child.kill()
    assert ledger._process_start(dead_pid()) is None


def test_a_live_lock_of_another_machine_is_respected(any_lake, core, tmp_path):
    started = (datetime.now(UTC) - timedelta(minutes=30)).isoformat(timespec="seconds")
    any_lake.write_json(f"runs/{DATASET}/_lock.json", {"run_id": FIRST, "host": "ip-10-0-0-1", "pid": 7,
                                                       "started_at": started, "owner": "glue"})  # fmt: skip
    with pytest.raises(ledger.RunRefused, match=re.escape(f"run id {FIRST}, started {started}")):
        bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))


def test_two_takeovers_of_one_stale_lock_cannot_both_win(any_lake):
    key = f"runs/{DATASET}/_lock.json"
    any_lake.write_bytes(key, b'{"stale": true}')
    _, token = any_lake.read_versioned(key)
    assert any_lake.replace_if_unchanged(key, token, b'{"run": "a"}')
    assert not any_lake.replace_if_unchanged(key, token, b'{"run": "b"}')
    assert any_lake.read_bytes(key) == b'{"run": "a"}'
    assert not any_lake.create_exclusive(key, b'{"run": "c"}')
    assert not any_lake.delete_if_unchanged(key, token)
    assert any_lake.read_bytes(key) == b'{"run": "a"}'


@pytest.mark.parametrize("operation", ["PutObject", "DeleteObject"], ids=["taken", "given back"])
def test_a_409_on_the_lock_is_sent_again_not_taken_for_another_run(core, monkeypatch, operation):
    """S3 answers 409 ConditionalRequestConflict (not 412) while another conditional write to the key is under way,
    and asks for a retry. Read as the condition failing, a 409 on taking the lock refused the run ("another run
    holds the lock") and one on giving it back left it held, so the next run waited out the job's timeout."""
    from dwlib import lake as lake_module
    from tests.s3_answers import answer_409

    monkeypatch.setattr(lake_module, "CONFLICT_DELAYS", (0.0,) * 4, raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        s3 = S3Lake(BUCKET, "lake", client=client)
        answered = answer_409(client, operation, "/_lock.json", times=2)
        lock = ledger.RunLock(s3, Naming.of(core), DATASET, 120)
        lock.acquire(FIRST, "bronze")
        assert s3.exists(f"runs/{DATASET}/_lock.json")
        lock.release()
        assert answered == [409, 409]
        assert not s3.exists(f"runs/{DATASET}/_lock.json"), "the lock was given back"
        # A 409 that does not end is neither the lock taken nor refused: said so, not "another run holds the lock".
        answer_409(client, operation, "/_lock.json", times=99)
        lock = ledger.RunLock(s3, Naming.of(core), DATASET, 120)
        if operation == "PutObject":
            with pytest.raises(LakeError, match="409 ConditionalRequestConflict to each of 5 tries"):
                lock.acquire(SECOND, "bronze")
            assert not s3.exists(f"runs/{DATASET}/_lock.json")
        else:
            lock.acquire(SECOND, "bronze")
            with pytest.raises(LakeError, match=f"the run's lock stays. Remove runs/{DATASET}/_lock.json before"):
                lock.release()


def test_a_lock_whose_reply_was_lost_is_this_run_s_not_another_s(core):
    """S3 stored the lock, its reply was lost and the SDK sent the put again, which S3 refused (the key is there):
    the run took its own lock for another run's and refused to start, naming its own pid as the holder."""
    from tests.s3_answers import lose_first_reply

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        s3 = S3Lake(BUCKET, "lake", client=client)
        resent = lose_first_reply(client, "PutObject", "/_lock.json")
        lock = ledger.RunLock(s3, Naming.of(core), DATASET, 120)
        lock.acquire(FIRST, "bronze")
        assert resent == [200] and lock.token is not None
        lock.release()
        assert not s3.exists(f"runs/{DATASET}/_lock.json"), "the lock, known as its own, was given back"


def test_runs_of_the_same_second_get_different_run_ids(any_lake, core, tmp_path):
    first = bronze.run_raw(ctx_for(core, any_lake, FIRST, sample_dir=sample_dir(tmp_path), auto_run_id=True))
    second = bronze.run_raw(ctx_for(core, any_lake, FIRST, sample_dir=sample_dir(tmp_path), auto_run_id=True))
    assert (first.run_id, second.run_id) == (FIRST, "20260101T000001Z")
    assert entry(any_lake, FIRST, "raw")["raw_keys"] == [f"raw/{DATASET}/run_id={FIRST}/orders.csv"]
    assert entry(any_lake, second.run_id, "raw")["status"] == "succeeded"


def test_a_given_run_id_that_succeeded_is_refused_and_a_failed_one_is_retried(any_lake, core, tmp_path):
    assert bronze.run_raw(ctx_for(core, any_lake, FIRST, sample_dir=sample_dir(tmp_path))).status == "succeeded"
    with pytest.raises(ledger.RunRefused, match=f"run id {FIRST} of {DATASET} already names a raw run that succeeded"):
        bronze.run_raw(ctx_for(core, any_lake, FIRST, sample_dir=sample_dir(tmp_path)))
    assert entry(any_lake, FIRST, "raw")["status"] == "succeeded"  # untouched

    failed = bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=tmp_path / "missing-sample-dir"))
    assert failed.status == "failed"
    retried = bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))
    assert retried.status == "succeeded"
    assert [a["status"] for a in entry(any_lake, SECOND, "raw")["previous_attempts"]] == ["failed"]


# ------------------------------------------------------------------ 10. runs that never finished


def test_incomplete_runs_are_found_with_how_to_replay_or_clean(any_lake, core):
    naming = Naming.of(core)
    any_lake.write_json(naming.run_summary_key(DATASET, FIRST), {"run_id": FIRST, "layer": "bronze",
                                                                  "status": "running"})  # fmt: skip
    for run_id in (FIRST, SECOND):  # closed drops: the dropper wrote its _SUCCESS last
        any_lake.write_bytes(f"raw/{DATASET}/run_id={run_id}/orders.csv", b"a\n1\n")  # SECOND: no entry at all
        any_lake.write_bytes(f"raw/{DATASET}/run_id={run_id}/_SUCCESS", b"done")
    any_lake.write_json(naming.run_summary_key(DATASET, THIRD), {"run_id": THIRD, "layer": "bronze",
                                                                  "status": "succeeded"})  # fmt: skip
    # shop-orders is a landing dataset: its raw runs are drops, closed by their dropper's _SUCCESS.
    found = {(i.run_id, i.layer): i for i in ledger.incomplete_runs(any_lake, naming, DATASET, 120, dropped=True)}
    assert set(found) == {(FIRST, "bronze"), (SECOND, "raw")}
    assert f"dw run {DATASET} --raw-run-id {FIRST}" in found[(FIRST, "bronze")].advice
    assert f"delete raw/{DATASET}/run_id={FIRST}/" in found[(FIRST, "bronze")].advice
    assert f"dw run {DATASET} --raw-run-id {SECOND}" in found[(SECOND, "raw")].advice

    # The same entry is not incomplete while its run holds the lock.
    lock = ledger.RunLock(any_lake, naming, DATASET, 120)
    lock.acquire(FIRST, "bronze")
    assert (FIRST, "bronze") not in {
        (i.run_id, i.layer) for i in ledger.incomplete_runs(any_lake, naming, DATASET, 120)
    }
    lock.release()


def test_s3_gold_model_publish_killed_midway_is_completed_and_its_entry_corrected(s3, core, tmp_path):
    plain = S3Lake(BUCKET, client=s3)
    final = "gold/shop_orders/orders_by_day/"
    staged = "staging/gold/shop-orders/run_id=20260102T000000Z/orders_by_day/"
    plant(plain, [final + "part-old.parquet"], b"old")
    plant(plain, [staged + "part-new.parquet"], b"new")
    ctx = ctx_for(core, S3Lake(BUCKET, client=FlakyS3(s3, die_at="delete_objects")), SECOND)

    def new_summary():
        return bronze.RunSummary(dataset=DATASET, run_id=SECOND, layer="gold", source="gold/orders_by_day.sql")

    def work(summary, entry):
        summary.models = [{"name": "orders_by_day", "status": "publishing", "error": None}]
        bronze.publish(ctx, summary, entry, staged, final, "gold.orders_by_day", layer="gold", model="orders_by_day")

    with pytest.raises(SimulatedKill):
        bronze.guarded_run(ctx, "gold", new_summary, work)
    assert plain.exists("runs/shop-orders/_publish/gold.orders_by_day.json")
    assert keys_under(plain, final) == [final + "part-new.parquet", final + "part-old.parquet"]

    nxt = bronze.run_raw(ctx_for(core, plain, THIRD, sample_dir=sample_dir(tmp_path)))
    assert nxt.status == "succeeded", nxt.error
    assert keys_under(plain, final) == [final + "part-new.parquet"]
    gold_entry = entry(plain, SECOND, "gold")
    assert gold_entry["status"] == "succeeded"
    assert gold_entry["models"][0]["status"] == "succeeded"


# ------------------------------------------------------------------ 11. raw runs: only a finished fetch is replayed


def api_config() -> DatasetConfig:
    return DatasetConfig.model_validate({
        "dataset": DATASET, "description": "orders", "data_size_category": "small",
        "api_endpoints": [{"url": "https://api.example.org/east", "records": "results"},
                          {"url": "https://api.example.org/west", "records": "results"}],
    })  # fmt: skip


def fake_fetch(monkeypatch, *, die_after: int | None = None):
    """fetch_api landing endpoint_0.jsonl and endpoint_1.jsonl; with `die_after`, the job dies after that many."""
    from dwlib import fetch

    def fetch_api(endpoints, lake, prefix, **_):
        keys = []
        for i in range(len(endpoints)):
            if die_after is not None and i == die_after:
                raise SimulatedKill()
            keys.append(f"{prefix}endpoint_{i}.jsonl")
            lake.write_bytes(keys[-1], b'{"order_id": %d}\n' % i)
        return fetch.FetchResult("api", keys, 16 * len(keys), len(keys), False, 0.1)

    monkeypatch.setattr(fetch, "fetch_api", fetch_api)


def api_ctx(core, lake, run_id: str, **extra) -> bronze.JobContext:
    return bronze.JobContext(core=core, dataset=api_config(), lake=lake, run_id=run_id, **extra)


def test_a_fetch_killed_midway_is_never_replayed_and_dw_runs_says_run_again(any_lake, core, monkeypatch):
    plant(any_lake, [BRONZE + "part-0-old.parquet"], b"old")
    fake_fetch(monkeypatch, die_after=1)  # the first endpoint landed, the second never did
    with pytest.raises(SimulatedKill):
        bronze.run_raw(api_ctx(core, any_lake, FIRST))
    raw = f"raw/{DATASET}/run_id={FIRST}/"
    assert sorted(keys_under(any_lake, raw)) == [raw + "_manifest.json", raw + "endpoint_0.jsonl"]
    assert any_lake.read_json(raw + "_manifest.json")["state"] == "fetching"  # the fetch never finished

    any_lake.delete_prefix(f"runs/{DATASET}/_lock.json")
    found = {(i.run_id, i.layer): i for i in ledger.incomplete_runs(any_lake, Naming.of(core), DATASET, 120)}
    advice = found[(FIRST, "raw")].advice
    assert "--raw-run-id" not in advice.split("run again without")[0]
    assert f"the raw run {raw} is incomplete" in advice
    assert f"run again without --raw-run-id: dw run {DATASET}" in advice

    replay = bronze.run_bronze(None, api_ctx(core, any_lake, SECOND, raw_run_id=FIRST))
    assert replay.status == "failed"
    assert f"the raw run {raw} is incomplete: its fetch was stopped midway" in replay.error
    assert f"run again without --raw-run-id (`dw run {DATASET}`)" in replay.error
    assert keys_under(any_lake, BRONZE) == [BRONZE + "part-0-old.parquet"]  # bronze untouched


def test_a_retried_run_id_killed_midway_is_not_replayable_and_nothing_under_raw_is_deleted(
    any_lake, core, monkeypatch
):
    """The first attempt closed the folder; the retry of that run id dies midway: the old manifest must not
    stand for it. The job's role may not delete under raw/ (stacks/job_rights.py), so nothing may try."""
    fake_fetch(monkeypatch)
    assert bronze.run_raw(api_ctx(core, any_lake, FIRST)).status == "succeeded"
    entry_key = Naming.of(core).run_summary_key(DATASET, FIRST, "raw")  # as if a later step had failed it
    any_lake.write_json(entry_key, {**any_lake.read_json(entry_key), "status": "failed"})
    deleted = []
    real_delete = any_lake.delete_prefix
    monkeypatch.setattr(any_lake, "delete_prefix", lambda prefix: deleted.append(prefix) or real_delete(prefix))
    fake_fetch(monkeypatch, die_after=1)
    with pytest.raises(SimulatedKill):
        bronze.run_raw(api_ctx(core, any_lake, FIRST))
    assert [d for d in deleted if d.startswith("raw/")] == []
    any_lake.delete_prefix(f"runs/{DATASET}/_lock.json")
    with pytest.raises(ledger.IncompleteRawRun, match="its fetch was stopped midway"):
        ledger.raw_run_files(any_lake, Naming.of(core), DATASET, FIRST, dropped=False)


def test_a_finished_fetch_writes_its_manifest_and_a_replay_checks_every_file(any_lake, core, monkeypatch):
    fake_fetch(monkeypatch)
    assert bronze.run_raw(api_ctx(core, any_lake, FIRST)).status == "succeeded"
    raw = f"raw/{DATASET}/run_id={FIRST}/"
    manifest = any_lake.read_json(raw + "_manifest.json")
    assert [(f["key"], f["size"]) for f in manifest["files"]] == [("endpoint_0.jsonl", 16), ("endpoint_1.jsonl", 16)]
    naming = Naming.of(core)
    assert ledger.incomplete_runs(any_lake, naming, DATASET, 120) == []
    assert ledger.raw_run_files(any_lake, naming, DATASET, FIRST, dropped=False) == (
        [raw + "endpoint_0.jsonl", raw + "endpoint_1.jsonl"], "")

    any_lake.write_bytes(raw + "endpoint_1.jsonl", b"cut")  # a file changed since the fetch
    replay = bronze.run_bronze(None, api_ctx(core, any_lake, SECOND, raw_run_id=FIRST))
    assert replay.status == "failed"
    assert f"{raw}endpoint_1.jsonl is 3 bytes, the manifest says 16" in replay.error
    any_lake.delete_prefix(raw + "endpoint_1.jsonl")
    with pytest.raises(ledger.IncompleteRawRun, match=f"{raw}endpoint_1.jsonl is missing"):
        ledger.raw_run_files(any_lake, naming, DATASET, FIRST, dropped=False)


def test_a_raw_run_kept_before_manifests_is_replayed_only_when_its_entry_lists_its_files(any_lake, core):
    naming = Naming.of(core)
    raw = f"raw/{DATASET}/run_id={FIRST}/"
    plant(any_lake, [raw + "endpoint_0.jsonl", raw + "endpoint_1.jsonl"])
    with pytest.raises(ledger.IncompleteRawRun, match="is incomplete"):  # no entry says the fetch finished
        ledger.raw_run_files(any_lake, naming, DATASET, FIRST, dropped=False)
    any_lake.write_json(naming.run_summary_key(DATASET, FIRST), {"run_id": FIRST, "layer": "bronze",
                        "status": "failed", "raw_keys": [raw + "endpoint_0.jsonl", raw + "endpoint_1.jsonl"]})  # fmt: skip
    keys, note = ledger.raw_run_files(any_lake, naming, DATASET, FIRST, dropped=False)
    assert keys == [raw + "endpoint_0.jsonl", raw + "endpoint_1.jsonl"]
    assert "predates raw manifests" in note and "its ledger entry says its fetch finished with 2 file(s)" in note
    # A drop (landing) is closed by its dropper's _SUCCESS: its files are replayed as they are.
    drop = f"raw/{DATASET}/run_id={SECOND}/"
    plant(any_lake, [drop + "a.csv", drop + "_SUCCESS"])
    assert ledger.raw_run_files(any_lake, naming, DATASET, SECOND, dropped=True) == ([drop + "a.csv"], "")


def test_a_local_put_file_killed_midway_leaves_nothing_under_the_key(tmp_path, monkeypatch):
    import shutil

    lake = LocalLake(tmp_path / "lake")
    source = tmp_path / "big.csv"
    source.write_bytes(b"x" * 1000)

    def dies_midway(src, dst):
        Path(dst).write_bytes(b"x" * 10)
        raise SimulatedKill()

    monkeypatch.setattr(shutil, "copyfile", dies_midway)
    with pytest.raises(SimulatedKill):
        lake.put_file(source, "raw/x/run_id=20260101T000000Z/big.csv")
    assert list(lake.list("raw/x/")) == []


# ------------------------------------------------------------------ 12. S3 refusing whole requests mid-publish


class UnreachableS3(FlakyS3):
    """S3 failing whole requests as AWS can: DeleteObjects answering 503 SlowDown or no connection at all, a
    journal PutObject answering 500; each `times` times in a row (then answering again)."""

    def __init__(self, client, *, fail: str, times: int = 99):
        super().__init__(client)
        self.fail, self.left = fail, times

    def _failure(self, operation: str) -> Exception:
        from botocore.exceptions import EndpointConnectionError

        self.left -= 1
        if self.fail == "delete-net":
            return EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")
        code, status = ("SlowDown", 503) if self.fail == "delete-5xx" else ("InternalError", 500)
        return ClientError({"Error": {"Code": code, "Message": "Please reduce your request rate."},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, operation)  # fmt: skip

    def delete_objects(self, **kwargs):
        if self.fail.startswith("delete") and self.left > 0:
            raise self._failure("DeleteObjects")
        return super().delete_objects(**kwargs)

    def put_object(self, **kwargs):
        if self.fail == "journal" and b'"deleting"' in kwargs["Body"] and self.left > 0:
            raise self._failure("PutObject")
        return self._client.put_object(**kwargs)


@pytest.mark.parametrize("fail", ["delete-5xx", "delete-net"])
def test_s3_deletes_refused_whole_leave_a_failed_run_saying_two_generations_and_the_next_run_finishes(
    s3, core, tmp_path, monkeypatch, fail
):
    from dwlib import lake as lake_module

    monkeypatch.setattr(lake_module, "RETRY_DELAYS", (0, 0), raising=False)
    plain = S3Lake(BUCKET, client=s3)
    a_table(plain, BRONZE, FIRST, [1, 2])
    a_table(plain, STAGED, SECOND, [3])
    done = a_run_publishing_to("bronze", core, S3Lake(BUCKET, client=UnreachableS3(s3, fail=fail)), SECOND)
    assert done.status == "failed"
    assert "may hold the files of two runs" in done.error and "the next run of shop-orders finishes" in done.error
    assert "keeps its previous data" not in done.error and "kept." not in done.error
    assert rows_of(plain, BRONZE) == [(1, FIRST), (2, FIRST), (3, SECOND)]  # what readers see until the next run
    what_the_next_run_finds(core, plain, tmp_path, "bronze", SECOND, "completed")


@pytest.mark.parametrize("fail", ["delete-5xx", "delete-net", "journal"])
def test_s3_requests_refused_once_are_sent_again_and_the_publish_succeeds(s3, core, tmp_path, monkeypatch, fail):
    from dwlib import lake as lake_module

    monkeypatch.setattr(lake_module, "RETRY_DELAYS", (0, 0), raising=False)
    plain = S3Lake(BUCKET, client=s3)
    a_table(plain, BRONZE, FIRST, [1, 2])
    a_table(plain, STAGED, SECOND, [3])
    done = a_run_publishing_to("bronze", core, S3Lake(BUCKET, client=UnreachableS3(s3, fail=fail, times=1)), SECOND)
    assert done.status == "succeeded", done.error
    assert rows_of(plain, BRONZE) == [(3, SECOND)]
    assert not plain.has_prefix(f"runs/{DATASET}/_publish/")


def test_s3_commit_point_refused_for_good_removes_the_copies_and_keeps_the_previous_table(
    s3, core, tmp_path, monkeypatch
):
    from dwlib import lake as lake_module

    monkeypatch.setattr(lake_module, "RETRY_DELAYS", (0, 0), raising=False)
    plain = S3Lake(BUCKET, client=s3)
    a_table(plain, BRONZE, FIRST, [1, 2])
    a_table(plain, STAGED, SECOND, [3])
    done = a_run_publishing_to("bronze", core, S3Lake(BUCKET, client=UnreachableS3(s3, fail="journal")), SECOND)
    assert done.status == "failed" and done.error.endswith("kept.")
    assert rows_of(plain, BRONZE) == [(1, FIRST), (2, FIRST)]
    what_the_next_run_finds(core, plain, tmp_path, "bronze", FIRST, None)


def test_a_local_run_killed_after_its_publish_is_completed_not_left_publishing(core, tmp_path, monkeypatch):
    from dwlib import metrics

    lake = LocalLake(tmp_path / "lake")
    a_table(lake, BRONZE, FIRST, [1, 2])
    a_table(lake, STAGED, SECOND, [3])

    def killed(*_):
        raise SimulatedKill()  # the publish is done; the final ledger entry is never written

    monkeypatch.setattr(metrics, "stamp", killed)
    with pytest.raises(SimulatedKill):
        a_run_publishing_to("bronze", core, lake, SECOND)
    monkeypatch.undo()
    assert entry(lake, SECOND)["status"] == "publishing"
    assert rows_of(lake, BRONZE) == [(3, SECOND)]
    lake.delete_prefix(f"runs/{DATASET}/_lock.json")
    what_the_next_run_finds(core, lake, tmp_path, "bronze", SECOND, "completed")
    found = ledger.incomplete_runs(lake, Naming.of(core), DATASET, 120, dropped=True)
    assert found == []


def test_dw_runs_advises_no_deletes_for_a_run_killed_after_its_publish(core, tmp_path, monkeypatch):
    from dwlib import metrics

    lake = LocalLake(tmp_path / "lake")
    a_table(lake, STAGED, SECOND, [3])
    plant(lake, [f"raw/{DATASET}/run_id={SECOND}/orders.csv"])
    monkeypatch.setattr(metrics, "stamp", lambda *_: (_ for _ in ()).throw(SimulatedKill()))
    with pytest.raises(SimulatedKill):
        a_run_publishing_to("bronze", core, lake, SECOND)
    lake.delete_prefix(f"runs/{DATASET}/_lock.json")
    [found] = ledger.incomplete_runs(lake, Naming.of(core), DATASET, 120, dropped=True)
    assert f"its publish journal runs/{DATASET}/_publish/bronze.json remains" in found.why
    assert "delete nothing: the table may hold this run's files" in found.advice
    assert "delete raw/" not in found.advice


# ------------------------------------------------------------------ 13. no secret in the ledger, whole or in part


def a_secret() -> str:
    import secrets as random_bytes

    from dwlib.secrets import register

    key = "sk_live_" + random_bytes.token_hex(20)
    register([key])
    return key


def a_run_that(core, lake, work) -> bronze.RunSummary:
    ctx = ctx_for(core, lake, SECOND)

    def new_summary():
        return bronze.RunSummary(dataset=DATASET, run_id=SECOND, layer="bronze", source="landing")

    return bronze.guarded_run(ctx, "bronze", new_summary, work, kept="Bronze keeps its previous data.")


def every_text(lake) -> str:
    return "\n".join(lake.read_bytes(o.key).decode() for o in lake.list(""))


@pytest.mark.parametrize("at", [370, 385, 398])
def test_a_secret_cut_by_the_error_limit_leaves_no_part_of_itself(core, tmp_path, at):
    key = a_secret()  # 48 characters, starting `at` characters into the message: across the 400-character cut
    lake = LocalLake(tmp_path / "lake")

    def work(summary, entry):
        raise RuntimeError("x" * at + key + " is not a valid key for this account")

    summary = a_run_that(core, lake, work)
    assert summary.status == "failed" and summary.error.endswith("Bronze keeps its previous data.")
    for text in (summary.error, every_text(lake)):
        assert key[:12] not in text and key[-12:] not in text


def test_a_secret_a_source_echoed_into_a_column_name_is_scrubbed_everywhere(core, tmp_path):
    key = a_secret()
    lake = LocalLake(tmp_path / "lake")

    def work(summary, entry):
        summary.schema = [{"name": f"invalid key {key}", "type": "string"}]
        summary.renamed_columns = {f"<h1>{key}</h1>": "h1"}
        summary.rejected_by_reason = {f"not an int: {key}": 1}
        summary.status = "succeeded"

    summary = a_run_that(core, lake, work)
    assert summary.schema == [{"name": "invalid key ***", "type": "string"}]
    text = every_text(lake)
    assert key not in text and "invalid key ***" in text
    assert lake.has_prefix("ops/runs/") and key not in str(summary.as_dict())


def test_a_secret_cut_by_the_spark_cause_limit_leaves_no_part_of_itself():
    from dwlib import errors

    key = a_secret()
    java = RuntimeError(f"org.apache.spark.SparkException: {'y' * 225}{key} refused\n\tat org.apache.spark.X.y(X.java:1)")
    described = errors.describe(java, ledger_key="runs/x/run_id=20260101T000000Z.json")
    assert described.startswith("Spark failed") and key[:12] not in described
    assert key[:12] not in errors.full_trace(java)


# ------------------------------------------------------------------ 14. a damaged ledger entry is named, never a KeyError


@pytest.mark.parametrize("text", ["[1, 2]", "null", '{"run_id": "2026', '{"layer": "bronze", "status": "succeeded"}',
                                  json.dumps({"run_id": SECOND, "layer": "bronze", "status": "succeeded",
                                              "schema": "oops"})])  # fmt: skip
def test_a_damaged_entry_is_skipped_by_the_next_runs_with_a_warning_naming_it(any_lake, core, tmp_path, text):
    naming = Naming.of(core)
    any_lake.write_json(naming.run_summary_key(DATASET, FIRST), {"run_id": FIRST, "layer": "bronze",
                        "status": "succeeded", "schema": [{"name": "order_id", "type": "int"}]})  # fmt: skip
    any_lake.write_bytes(naming.run_summary_key(DATASET, SECOND), text.encode())
    warnings: list[str] = []
    last = bronze.previous_run(ctx_for(core, any_lake, THIRD), warnings)
    assert last["run_id"] == FIRST
    assert [f"run_id={SECOND}.json" in w and "restore it or delete it" in w for w in warnings] == [True]
    assert ledger.incomplete_runs(any_lake, naming, DATASET, 120, dropped=True) == []
    # A retry of the damaged run id is allowed (its attempt is kept as unreadable); other runs go on.
    assert bronze.run_raw(ctx_for(core, any_lake, THIRD, sample_dir=sample_dir(tmp_path))).status == "succeeded"
    retried = bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))
    assert retried.status == "succeeded", retried.error


# ------------------------------------------------------------------ hand-edited ledger entries


def wrong_values(field: str) -> list:
    """Values of a type no reader of `field` expects."""
    kinds = {
        **dict.fromkeys(ledger._COUNTS, ["12", 1.5, True, []]),
        **dict.fromkeys(ledger._TEXTS, [1, [], {}]),
        **dict.fromkeys(ledger._TIMES, [1, [], "yesterday", "2026-11-02T00:00:00"]),
        **dict.fromkeys(ledger._BOOLS, [[], "yes", 1, {}]),
        **dict.fromkeys(ledger._TEXT_LISTS, ["a", {}, [1], [None]]),
        **dict.fromkeys(ledger._OBJECT_LISTS, ["a", {}, [1], ["x"], [{"name": 1}], [{"status": []}]]),
        **dict.fromkeys(ledger._DICTS, ["a", [], 1]),
        "run_id": [1, [], "yesterday"],
        "layer": [1, [], "silver"],
        "durations_seconds": ["a", [], {"fetch": "1"}, {"fetch": True}],
        "rejected_by_reason": ["a", [], {"not_null": "3"}],
        "renamed_columns": ["a", [], {"A B": 1}],
        "missing_columns": ["a", [], {"f.csv": "x"}, {"f.csv": [1]}],
    }
    return kinds[field]


@pytest.mark.parametrize("field", ledger.READ_FIELDS)
def test_an_entry_with_a_field_of_the_wrong_type_is_unreadable_never_a_traceback(tmp_path, field):
    from dwlib import metrics

    lake = LocalLake(tmp_path / "lake")
    key = f"runs/{DATASET}/run_id={FIRST}.json"
    good = {"run_id": FIRST, "dataset": DATASET, "layer": "bronze", "status": "succeeded",
            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00"}  # fmt: skip
    lake.write_json(key, good)
    assert ledger.read_entry(lake, key) == good
    for value in wrong_values(field):
        lake.write_json(key, {**good, field: value})
        with pytest.raises(ledger.UnreadableEntry, match=f"its {field}|it has no {field}"):
            ledger.read_entry(lake, key)
    # What passes is read by every reader without a crash: the `runs` row, the metrics, the duration.
    assert metrics.run_record(good)["duration_seconds"] == 60.0


def test_a_naive_start_and_an_aware_finish_still_give_a_duration():
    from dwlib import metrics

    mixed = {"started_at": "2026-11-02T00:00:00", "finished_at": "2026-11-02T00:01:00+00:00"}
    assert metrics.duration_seconds(mixed) == 60.0


def test_a_dry_run_of_a_replay_of_an_unfinished_fetch_says_the_real_run_would_refuse(any_lake, core, monkeypatch):
    fake_fetch(monkeypatch, die_after=1)
    with pytest.raises(SimulatedKill):
        bronze.run_raw(api_ctx(core, any_lake, FIRST))
    any_lake.delete_prefix(f"runs/{DATASET}/_lock.json")
    plan = "\n".join(bronze.plan(api_ctx(core, any_lake, SECOND, raw_run_id=FIRST)))
    assert (f"REFUSED: the run would stop before reading its input: the raw run raw/{DATASET}/run_id={FIRST}/ is "
            "incomplete: its fetch was stopped midway") in plan  # fmt: skip


def test_a_local_write_killed_before_its_rename_leaves_no_object(tmp_path):
    """A SIGKILL between the hidden copy and its rename (the publish journal's, say): no object is listed, as on S3,
    so the next run does not find a journal folder that never empties."""
    lake = LocalLake(tmp_path / "lake")
    folder = tmp_path / "lake" / "runs" / DATASET / "_publish"
    folder.mkdir(parents=True)
    (folder / ".bronze.json.9c16df3287fb46e8be476ba7a15da230.tmp").write_text('{"run_id"')
    assert not lake.has_prefix(f"runs/{DATASET}/_publish/")
    assert list(lake.list(f"runs/{DATASET}/")) == []


# ------------------------------------------------------------------ 14. runs stopped from outside (Ctrl-C, SIGTERM)


def a_stopped_run(core, lake, stop: BaseException, *, status: str = "running") -> bronze.RunSummary:
    """A bronze run that is stopped in its work, with staging files written and its status `status`."""
    ctx = ctx_for(core, lake, SECOND)
    staging = Naming.of(core).staging_prefix("bronze", DATASET, SECOND)

    def new_summary():
        return bronze.RunSummary(dataset=DATASET, run_id=SECOND, layer="bronze", source="landing")

    def work(summary, entry):
        plant(lake, [f"{staging}output/part-00000.parquet"])
        summary.status = status
        raise stop

    with pytest.raises(type(stop)):
        bronze.guarded_run(ctx, "bronze", new_summary, work, staging=staging, kept="Bronze keeps its previous data.")
    return ctx


@pytest.mark.parametrize(
    ("stop", "said"),
    [(KeyboardInterrupt(), "SIGINT"), (Interrupted(signal.SIGTERM), "SIGTERM")],
    ids=["ctrl-c", "sigterm"],
)
def test_a_run_stopped_from_outside_is_failed_in_the_ledger_and_the_runs_table_and_leaves_nothing(
    any_lake, core, stop, said
):
    a_stopped_run(core, any_lake, stop)
    found = entry(any_lake, SECOND)
    assert found["status"] == "failed"
    assert found["error"] == f"interrupted ({said}) before it published anything. Bronze keeps its previous data."
    [row] = [o.key for o in any_lake.list("ops/runs/")]
    assert json.loads(any_lake.read_bytes(row))["status"] == "failed"
    assert keys_under(any_lake, "staging/") == []
    assert not any_lake.exists(f"runs/{DATASET}/_lock.json")
    assert ledger.incomplete_runs(any_lake, Naming.of(core), DATASET, 120, dropped=True) == []


def test_a_run_stopped_after_its_parquet_publish_is_recorded_as_succeeded_by_the_next_run(core, tmp_path):
    """Stopped between its publish and its final entry: the journal stays, so nothing advises deleting its rows."""
    lake = LocalLake(tmp_path / "lake")
    a_table(lake, BRONZE, FIRST, [1, 2])
    a_table(lake, STAGED, SECOND, [3])
    plant(lake, [f"raw/{DATASET}/run_id={SECOND}/orders.csv", f"raw/{DATASET}/run_id={SECOND}/_SUCCESS"])
    ctx = ctx_for(core, lake, SECOND)

    def work(summary, entry_key):
        summary.status = "publishing"
        bronze.publish(ctx, summary, entry_key, STAGED, BRONZE, "bronze", layer="bronze")
        raise KeyboardInterrupt  # after the publish, before the run says succeeded

    def new_summary():
        return bronze.RunSummary(dataset=DATASET, run_id=SECOND, layer="bronze", source="landing")

    with pytest.raises(KeyboardInterrupt):
        bronze.guarded_run(ctx, "bronze", new_summary, work)
    found = entry(lake, SECOND)
    assert found["status"] == "publishing"
    assert found["error"].startswith("interrupted (SIGINT) while publishing: the table may hold this run's rows")
    [incomplete] = ledger.incomplete_runs(lake, Naming.of(core), DATASET, 120, dropped=True)
    assert "delete nothing" in incomplete.advice and "delete raw/" not in incomplete.advice
    what_the_next_run_finds(core, lake, tmp_path, "bronze", SECOND, "completed")


def test_a_run_stopped_while_publishing_before_its_journal_failed_and_published_nothing(core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    a_stopped_run(core, lake, KeyboardInterrupt(), status="publishing")  # no journal: its publish never began
    found = entry(lake, SECOND)
    assert found["status"] == "failed"
    assert found["error"] == "interrupted (SIGINT) before it published anything. Bronze keeps its previous data."
    assert not lake.exists(f"runs/{DATASET}/_lock.json")


# ------------------------------------------------------------------ 15. Iceberg runs killed around their commit


TABLE = "pp_dw_bronze.shop_orders"


def an_iceberg_commit(core, lake, run_id: str, order_ids: list[int], model: str | None = None) -> int:
    """A commit as the runs make it (PyIceberg, the local catalog, the run id in the snapshot); its snapshot id."""
    from pyiceberg.exceptions import NoSuchTableError

    from dwlib import iceberg

    naming = Naming.of(core)
    identifier = iceberg.gold_identifier(naming, model) if model else iceberg.bronze_identifier(naming, DATASET)
    cat = iceberg.local_catalog(lake.root, create=True)
    cat.create_namespace_if_not_exists(identifier[0])
    rows = pa.table({"order_id": pa.array(order_ids, pa.int64())})
    try:
        table = cat.load_table(identifier)
    except NoSuchTableError:
        prefix = naming.gold_prefix(DATASET, model) if model else BRONZE
        table = cat.create_table(identifier, schema=rows.schema, location=iceberg.location(lake, prefix))
    table.append(rows, snapshot_properties={iceberg.RUN_PROPERTY: run_id})
    return table.current_snapshot().snapshot_id


def a_dead_iceberg_entry(core, lake, run_id: str, layer: str = "bronze", **extra) -> None:
    """The entry of a run killed while publishing (before or after its commit), its raw files kept."""
    document = {"dataset": DATASET, "run_id": run_id, "layer": layer, "status": "publishing", "table_format": "iceberg",
                **extra}  # fmt: skip
    lake.write_json(Naming.of(core).run_summary_key(DATASET, run_id, layer), document)
    plant(lake, [f"raw/{DATASET}/run_id={run_id}/orders.csv", f"raw/{DATASET}/run_id={run_id}/_SUCCESS"])


def test_dw_runs_never_advises_deleting_the_raw_files_of_an_iceberg_run_killed_after_its_commit(core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    an_iceberg_commit(core, lake, FIRST, [1, 2])
    snapshot = an_iceberg_commit(core, lake, SECOND, [3])
    a_dead_iceberg_entry(core, lake, SECOND)
    [found] = ledger.incomplete_runs(lake, Naming.of(core), DATASET, 120, dropped=True)
    assert found.run_id == SECOND
    assert f"stopped after its commit: pp_dw_bronze.shop_orders (snapshot {snapshot}) holds its rows" in found.why
    assert "delete nothing: the table holds this run's rows" in found.advice
    assert "delete raw/" not in found.advice


def test_the_next_run_records_an_iceberg_run_killed_after_its_commit_as_published(core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    an_iceberg_commit(core, lake, FIRST, [1, 2])
    snapshot = an_iceberg_commit(core, lake, SECOND, [3])
    a_dead_iceberg_entry(core, lake, SECOND, error="interrupted (SIGTERM) while publishing: the table may hold ...")
    summary = bronze.run_raw(ctx_for(core, lake, THIRD, sample_dir=sample_dir(tmp_path)))
    assert summary.status == "succeeded", summary.error
    said = "\n".join(bronze.housekeeping(summary))
    assert f"found bronze run {SECOND} stopped after its commit to {TABLE} (snapshot {snapshot}, " in said
    corrected = entry(lake, SECOND)
    assert (corrected["status"], corrected["error"]) == ("succeeded", None)
    assert corrected["iceberg"]["snapshot_id"] == snapshot
    assert corrected["output_files"] == 2  # FIRST's file and SECOND's
    assert any(n.startswith("killed after its commit to pp_dw_bronze.shop_orders") for n in corrected["notes"])
    row = json.loads(lake.read_bytes(f"ops/runs/{DATASET}.{SECOND}.bronze.json"))
    assert row["status"] == "succeeded"
    assert ledger.incomplete_runs(lake, Naming.of(core), DATASET, 120, dropped=True) == []


def test_the_next_run_records_an_iceberg_run_killed_before_its_commit_as_failed(core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    an_iceberg_commit(core, lake, FIRST, [1, 2])
    a_dead_iceberg_entry(core, lake, SECOND)
    [found] = ledger.incomplete_runs(lake, Naming.of(core), DATASET, 120, dropped=True)
    assert f"dw run {DATASET} --raw-run-id {SECOND}" in found.advice  # nothing of it in the table: replay it
    bronze.run_raw(ctx_for(core, lake, THIRD, sample_dir=sample_dir(tmp_path)))
    corrected = entry(lake, SECOND)
    assert corrected["status"] == "failed"
    assert corrected["error"].endswith("it stopped before its commit, so bronze keeps its previous data")


def test_a_gold_model_killed_after_its_commit_is_recorded_as_published(core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    an_iceberg_commit(core, lake, SECOND, [3], model="daily")
    models = [{"name": "daily", "status": "publishing"}, {"name": "weekly", "status": "succeeded"}]
    a_dead_iceberg_entry(core, lake, SECOND, layer="gold", models=models)
    [found] = ledger.incomplete_runs(lake, Naming.of(core), DATASET, 120, dropped=True)
    assert "delete nothing: the table holds this run's rows" in found.advice
    bronze.run_raw(ctx_for(core, lake, THIRD, sample_dir=sample_dir(tmp_path)))
    corrected = entry(lake, SECOND, "gold")
    assert corrected["status"] == "succeeded"
    assert [m["status"] for m in corrected["models"]] == ["succeeded", "succeeded"]


# ------------------------------------------------------------------ 16. what a killed run left in staging


def test_a_run_that_takes_over_a_dead_lock_deletes_what_the_dead_run_left_in_staging(any_lake, core, tmp_path):
    naming = Naming.of(core)
    left = [f"{naming.staging_prefix(layer, DATASET, FIRST)}output/part-00000.parquet" for layer in ("bronze", "gold")]
    other = f"{naming.staging_prefix('bronze', DATASET, THIRD)}output/part-00000.parquet"  # not the dead run's
    plant(any_lake, [*left, other])
    started = (datetime.now(UTC) - timedelta(seconds=5)).isoformat(timespec="seconds")
    holder = {"run_id": FIRST, "host": socket.gethostname(), "pid": dead_pid(), "started_at": started, "layer": "all"}
    any_lake.write_json(f"runs/{DATASET}/_lock.json", holder)
    summary = bronze.run_raw(ctx_for(core, any_lake, SECOND, sample_dir=sample_dir(tmp_path)))
    assert summary.status == "succeeded", summary.error
    assert keys_under(any_lake, "staging/") == [other]
    said = bronze.housekeeping(summary)
    deleted = f"staging/bronze/{DATASET}/run_id={FIRST}/, staging/gold/{DATASET}/run_id={FIRST}/"
    assert f"deleted what run {FIRST} left in staging: {deleted}" in said, said
    assert entry(any_lake, SECOND, "raw")["lock_taken_over"]["staging_deleted"] == deleted.split(", ")
