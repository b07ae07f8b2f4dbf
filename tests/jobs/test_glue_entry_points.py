"""The deployed Glue scripts as a user runs them by hand, and the switches the stack sets for them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from dwlib import entry, gold, jobs, transform
from dwlib.lake import LocalLake
from dwlib.naming import Naming

ROOT = Path(__file__).resolve().parents[2]
RUN = "20261121T060000Z"
DATASET = "app-users"  # a DynamoDB export: its files are dropped under raw/, so no network is needed


def drop_sample(lake: LocalLake) -> int:
    """The export's drop: the CSV, then its non-empty marker."""
    sample = ROOT / "datasets" / DATASET / "sample" / f"{DATASET}.csv"
    lake.put_file(sample, Naming.export_key(DATASET, RUN))
    lake.write_bytes(Naming.drop_marker_key(DATASET, RUN), json.dumps({"files": [sample.name]}).encode())
    return sample.stat().st_size


def run_script(script: Path, *args: str, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop(jobs.FORCE_DRY_RUN, None)
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT
    )


@pytest.mark.slow
@pytest.mark.spark
def test_the_glue_script_runs_on_a_fresh_lake_from_the_checkout(tmp_path):
    """README: `python glue_jobs/bronze_job.py --dataset … --lake_uri .lake --run_id …` with no job config yet."""
    lake = LocalLake(tmp_path / "lake")
    drop_sample(lake)
    assert not lake.exists(Naming("pp-dw", "pp_dw").job_config_key(DATASET))

    done = run_script(
        ROOT / "glue_jobs" / "bronze_job.py",
        *("--dataset", DATASET, "--lake_uri", str(lake.root), "--run_id", RUN),
        pythonpath=ROOT / "glue_jobs",
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    table = pq.read_table(lake.path("bronze/app_users/"))
    assert table.num_rows == 60  # the sample's rows; the _SUCCESS marker is not read as data
    ledger = json.loads(lake.read_bytes(f"runs/{DATASET}/run_id={RUN}.json"))
    assert ledger["status"] == "succeeded"


def test_outside_a_checkout_a_missing_job_config_is_one_paragraph_and_exit_1(tmp_path):
    """The deployed script and dwlib, as Glue has them: no datasets/ folder beside them."""
    shutil.copytree(ROOT / "glue_jobs", tmp_path / "deployed" / "glue", ignore=shutil.ignore_patterns("__pycache__"))
    lake = tmp_path / "lake"

    for script in ("bronze_job.py", "gold_job.py"):
        done = run_script(
            tmp_path / "deployed" / "glue" / script,
            *("--dataset", DATASET, "--lake_uri", str(lake), "--run_id", RUN),
            pythonpath=tmp_path / "deployed" / "glue",
        )
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        (line,) = [ln for ln in done.stderr.splitlines() if ln.strip()]
        assert line.startswith("error: ")
        assert f"{lake}/etl/{DATASET}/job_config.json does not exist" in line
        assert f"dw run {DATASET} --lake {lake}" in line and "make deploy" in line


def test_an_unknown_dataset_in_a_checkout_names_the_known_ones(tmp_path):
    with pytest.raises(jobs.JobSetupError, match=r"no dataset 'nope'.*fda-nsde"):
        jobs.find_job_config(LocalLake(tmp_path), "nope")


def test_a_malformed_run_id_argument_is_a_setup_error_not_a_traceback(tmp_path, capsys):
    code = entry.main(
        entry.run_bronze_job,
        jobs.BRONZE_ARGS,
        ["bronze_job.py", "--dataset", DATASET, "--lake_uri", str(tmp_path), "--run_id", "raw"],
    )
    assert code == 1
    assert "run id 'raw' is not of the form YYYYMMDDTHHMMSSZ" in capsys.readouterr().err


def glue_argv(lake: LocalLake, force: bool, **overrides: str) -> list[str]:
    """What Glue passes: the job's default arguments as the stack sets them, the pipeline's overrides, its own."""
    defaults = jobs.default_arguments(DATASET, str(lake.root), jobs.BRONZE_ARGS, force_dry_run=force)
    defaults.update({f"--{k}": v for k, v in overrides.items()})
    argv = ["bronze_job.py", "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1"]
    for key, value in defaults.items():
        argv += [key, value]
    return argv


def test_force_dry_run_set_by_the_stack_reaches_the_job_on_glue(on_glue, tmp_path, capsys, monkeypatch):
    """`cdk deploy -c force_dry_run=true` sets --force_dry_run true; the pipeline's --dry_run false cannot undo it."""
    monkeypatch.delenv(jobs.FORCE_DRY_RUN, raising=False)
    lake = LocalLake(tmp_path / "lake")
    core, dataset, *_ = jobs.find_job_config(lake, DATASET)  # from the checkout, then deployed as the stack does
    lake.write_json(Naming.of(core).job_config_key(DATASET), jobs.job_config_document(core, dataset))
    drop_sample(lake)

    def no_spark():
        raise AssertionError("a dry run must not start Spark")

    argv = glue_argv(lake, force=True, run_id=RUN, dry_run="false")
    assert entry.main(lambda _spark, args: entry.run_bronze_job(no_spark, args), jobs.BRONZE_ARGS, argv) == 0
    assert "dry run" in capsys.readouterr().out
    assert not lake.has_prefix("bronze/") and not lake.has_prefix("runs/")


def test_a_staged_deployment_s_job_prints_and_publishes_to_its_stage_s_names(on_glue, tmp_path, capsys, monkeypatch):
    """`-c stage=dev`: the stack writes the stage into the job config; the job's names are the stage's."""
    monkeypatch.delenv(jobs.FORCE_DRY_RUN, raising=False)
    lake = LocalLake(tmp_path / "lake")
    core, dataset, *_ = jobs.find_job_config(lake, DATASET)
    lake.write_json(Naming.of(core).job_config_key(DATASET), jobs.job_config_document(core, dataset, "dev"))
    drop_sample(lake)

    argv = glue_argv(lake, force=False, run_id=RUN, dry_run="true")
    assert entry.main(lambda _spark, args: entry.run_bronze_job(lambda: None, args), jobs.BRONZE_ARGS, argv) == 0
    plan = capsys.readouterr().out
    assert "Glue job pp-dw-dev-bronze-app-users, crawler pp-dw-dev-bronze-app-users-crawler" in plan
    assert "pipeline pp-dw-dev-pipeline-app-users" in plan
    ctx = entry.job_context({"dataset": DATASET, "lake_uri": str(lake.root), "run_id": RUN, "raw_run_id": "none"})
    assert ctx.naming.metrics_namespace == "pp-dw-dev/pipeline"  # where the staged stack's alarms look


def test_on_glue_a_job_that_cannot_start_raises_so_the_run_is_failed(on_glue, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(jobs.JobSetupError):
        entry.main(entry.run_bronze_job, jobs.BRONZE_ARGS, glue_argv(lake, force=False, run_id=RUN, dataset="nope"))


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ({"dry_run": "false", "force_dry_run": "false"}, None, False),
        ({"dry_run": "true", "force_dry_run": "false"}, None, True),
        ({"dry_run": "false", "force_dry_run": "true"}, None, True),
        ({"dry_run": "false", "force_dry_run": "false"}, "1", True),
        ({}, "0", False),
    ],
)
def test_is_dry_run(args, env, expected, monkeypatch):
    monkeypatch.delenv(jobs.FORCE_DRY_RUN, raising=False)
    if env is not None:
        monkeypatch.setenv(jobs.FORCE_DRY_RUN, env)
    assert jobs.is_dry_run(args) is expected


@pytest.mark.spark
def test_no_parquet_summary_files_even_if_a_cluster_default_asks_for_them(spark, tmp_path):
    """_metadata/_common_metadata: written with level ALL (so the setting is live here), pinned off by configure."""
    frame = spark.range(0, 1000).selectExpr("id", "cast(id as string) AS s").repartition(3)
    spark.conf.set(jobs.PARQUET_SUMMARY_LEVEL, "ALL")
    try:
        frame.write.parquet(str(tmp_path / "all"))
        assert {"_metadata", "_common_metadata"} <= {p.name for p in (tmp_path / "all").iterdir()}
        jobs.configure(spark)
        frame.write.parquet(str(tmp_path / "pinned"))
        assert not [p.name for p in (tmp_path / "pinned").iterdir() if p.name.startswith("_")]
    finally:
        spark.conf.set(jobs.PARQUET_SUMMARY_LEVEL, "NONE")


def deployed(lake: LocalLake, models: dict[str, bytes]) -> None:
    """The dataset as the stack deploys it: its job config and its gold models under etl/{dataset}/."""
    core, dataset, *_ = jobs.find_job_config(lake, DATASET)
    lake.write_json(Naming.of(core).job_config_key(DATASET), jobs.job_config_document(core, dataset))
    for name, data in models.items():
        lake.write_bytes(f"{Naming.etl_prefix(DATASET)}gold/{name}.sql", data)


def gold_argv(lake: LocalLake) -> list[str]:
    """A gold dry run with every argument the stack and the pipeline pass (as Glue requires them all)."""
    arguments = {
        **jobs.default_arguments(DATASET, str(lake.root), jobs.GOLD_ARGS),
        "--run_id": RUN,
        "--dry_run": "true",
    }
    return ["gold_job.py", *(item for pair in arguments.items() for item in pair)]


LATIN1_MODEL = "-- Café count\nSELECT 1 AS n\n".encode("latin-1")


def test_a_deployed_gold_model_that_is_not_utf8_is_named_with_the_fix_not_a_codec_error(tmp_path, capsys, monkeypatch):
    """As `dw run` says of the same file: the Glue job names it (and the dataset file it came from), exit 1 locally."""
    monkeypatch.delenv(jobs.FORCE_DRY_RUN, raising=False)
    lake = LocalLake(tmp_path / "lake")
    deployed(lake, {"cafe": LATIN1_MODEL})

    assert entry.main(entry.run_gold_job, jobs.GOLD_ARGS, gold_argv(lake)) == 1
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert line == (
        f"error: {lake.root}/etl/{DATASET}/gold/cafe.sql (deployed from datasets/{DATASET}/gold/cafe.sql): is not "
        "UTF-8 text (byte 0xe9 at line 1, column 7, likely Latin-1 or Windows-1252); save the file as UTF-8 and "
        "deploy it again"
    )


def test_on_glue_a_gold_model_that_is_not_utf8_fails_the_job_run_naming_it(on_glue, tmp_path, monkeypatch):
    monkeypatch.delenv(jobs.FORCE_DRY_RUN, raising=False)
    lake = LocalLake(tmp_path / "lake")
    deployed(lake, {"cafe": LATIN1_MODEL})
    with pytest.raises(jobs.JobSetupError, match=r"gold/cafe\.sql.*is not UTF-8 text.*save the file as UTF-8"):
        entry.main(entry.run_gold_job, jobs.GOLD_ARGS, gold_argv(lake))


def test_a_deployed_gold_model_with_a_byte_order_mark_reads_as_dw_run_reads_it(tmp_path):
    """The mark is dropped on Glue as locally: the model's first line is its expectation, not a stray character."""
    model = b"\xef\xbb\xbf-- expect: row_count > 0\nSELECT 1 AS n\n"
    lake = LocalLake(tmp_path / "lake")
    deployed(lake, {"bom": model})
    folder = tmp_path / DATASET
    (folder / "gold").mkdir(parents=True)
    (folder / "gold" / "bom.sql").write_bytes(model)

    ctx = entry.job_context({"dataset": DATASET, "lake_uri": str(lake.root), "run_id": RUN, "raw_run_id": "none"})
    assert entry.deployed_models(ctx) == gold.model_sources(folder) == {"bom": model[3:].decode()}


@pytest.mark.spark
def test_a_glue_job_stopped_by_sigterm_settles_its_run_and_gives_back_its_lock(on_glue, spark, tmp_path, monkeypatch):
    """A stopped or timed-out job run: the driver gets SIGTERM while a Spark job runs. Python's default ended the
    process there: the entry said `running` and the lock held the dataset's next run off until the job's timeout
    had passed, and the staging folder stayed. Now the run unwinds as `dw run` does, and the job run fails saying so."""
    lake = LocalLake(tmp_path / "lake")
    core, dataset, *_ = jobs.find_job_config(lake, DATASET)
    naming = Naming.of(core)
    lake.write_json(naming.job_config_key(DATASET), jobs.job_config_document(core, dataset))
    drop_sample(lake)
    read_input = transform.read_input

    def slow_read(session, *args, **kwargs):
        # A job that runs until cancelled, stopped by the signal a second in, while the run holds the lock.
        assert lake.exists(naming.lock_key(DATASET))
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        session.range(0, 10**12, 1, 2).selectExpr("sum(id % 7)").collect()
        return read_input(session, *args, **kwargs)

    monkeypatch.setattr(transform, "read_input", slow_read)
    assert threading.current_thread() is threading.main_thread(), "the signal must reach the test's own thread"
    previous = signal.getsignal(signal.SIGTERM)
    argv = glue_argv(lake, force=False, run_id=RUN)
    with mock_aws(), pytest.raises(entry.JobRunFailed, match="interrupted: SIGTERM") as failed:
        entry.main(lambda _spark, args: entry.run_bronze_job(spark, args), jobs.BRONZE_ARGS, argv)

    assert "lock was given back" in str(failed.value)
    entry_ = json.loads(lake.read_bytes(naming.run_summary_key(DATASET, RUN)))
    assert entry_["status"] == "failed" and entry_["error"].startswith("interrupted (SIGTERM)"), entry_["error"]
    assert not lake.exists(naming.lock_key(DATASET)), "the next run must not wait out the job's timeout"
    assert not lake.has_prefix(Naming.staging_prefix("bronze", DATASET, RUN))
    assert not lake.has_prefix("bronze/")
    assert not spark.sparkContext.statusTracker().getActiveJobsIds(), "the Spark job was cancelled"
    assert signal.getsignal(signal.SIGTERM) is previous


def _signal_after(
    monkeypatch, owner, name: str, key: str | None = None, before: bool = False, signum: int = signal.SIGTERM
) -> list[str]:
    """Send this process `signum` from inside `owner.name` (before or after the real call; for `key` only, if given),
    the first time it is called: the moment a stopped job run's signal may find the driver in."""
    real, sent = getattr(owner, name), []

    def signalling(*args, **kwargs):
        hit = not sent and (key is None or key in args)
        if hit and before:
            sent.append(name)
            os.kill(os.getpid(), signum)
        result = real(*args, **kwargs)
        if hit and not before:
            sent.append(name)
            os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(owner, name, signalling)
    return sent


@pytest.mark.spark
@pytest.mark.parametrize("moment", ["lock written", "first entry written", "outcome written", "lock given back"])
def test_sigterm_while_the_lock_or_the_outcome_is_written_waits_for_the_write(on_glue, spark, tmp_path, monkeypatch, moment):
    """The signal raised where it found the driver: just after the lock's file was created (its version not yet read,
    so the run never gave it back), while the `runs` row was written (the finished run's entry left saying `running`),
    or while the lock was given back (left held). The next run waited out the job's timeout, or met a false entry.
    Now those steps finish first; then the job run fails saying it was interrupted."""
    from dwlib import metrics
    from dwlib.lake import LocalLake as Local

    lake = LocalLake(tmp_path / "lake")
    core, dataset, *_ = jobs.find_job_config(lake, DATASET)
    naming = Naming.of(core)
    lake.write_json(naming.job_config_key(DATASET), jobs.job_config_document(core, dataset))
    drop_sample(lake)
    lock = naming.lock_key(DATASET)
    entry_key = naming.run_summary_key(DATASET, RUN)
    sent = {
        "lock written": lambda: _signal_after(monkeypatch, Local, "create_exclusive", key=lock),
        "first entry written": lambda: _signal_after(monkeypatch, Local, "write_bytes", key=entry_key),
        "outcome written": lambda: _signal_after(monkeypatch, metrics, "record_run", before=True),
        "lock given back": lambda: _signal_after(monkeypatch, Local, "delete_if_unchanged", key=lock, before=True),
    }[moment]()
    previous = signal.getsignal(signal.SIGTERM)
    argv = glue_argv(lake, force=False, run_id=RUN)
    with mock_aws(), pytest.raises(entry.JobRunFailed, match="interrupted: SIGTERM") as failed:
        entry.main(lambda _spark, args: entry.run_bronze_job(spark, args), jobs.BRONZE_ARGS, argv)

    assert "took effect once that was done: its ledger entry says how the run ended" in str(failed.value)
    assert sent, "the signal was sent"
    assert not lake.exists(lock), "the lock was given back: the next run need not wait out the job's timeout"
    assert signal.getsignal(signal.SIGTERM) is previous
    key = naming.run_summary_key(DATASET, RUN)
    if moment == "lock written":  # stopped before the run began: nothing written
        assert not lake.exists(key) and not lake.has_prefix("bronze/")
        return
    if moment == "first entry written":  # stopped as it began: its entry says so, not `running` for good
        entry_ = json.loads(lake.read_bytes(key))
        assert entry_["status"] == "failed", entry_
        assert entry_["error"].startswith("interrupted (SIGTERM) before it published anything"), entry_["error"]
        assert not lake.has_prefix("bronze/")
        return
    entry_ = json.loads(lake.read_bytes(key))
    assert entry_["status"] == "succeeded", entry_  # the run had finished: its outcome stands, written whole
    assert lake.exists(Naming.ops_run_key(DATASET, RUN, "bronze")), "the runs table's row is written"
    assert pq.read_table(lake.path("bronze/app_users/")).num_rows == 60


@pytest.mark.spark
def test_ctrl_c_while_the_outcome_is_written_waits_though_pyspark_put_its_handler_in(on_glue, spark, tmp_path, monkeypatch):
    """PySpark puts its own SIGINT handler in place when it starts its context, and that one raises a plain
    KeyboardInterrupt wherever the signal finds the driver: a Ctrl-C while the outcome was written cut the write in
    two, as SIGTERM did. The entry point takes SIGINT back once the session is made."""
    from dwlib import metrics

    lake = LocalLake(tmp_path / "lake")
    core, dataset, *_ = jobs.find_job_config(lake, DATASET)
    naming = Naming.of(core)
    lake.write_json(naming.job_config_key(DATASET), jobs.job_config_document(core, dataset))
    drop_sample(lake)
    sent = _signal_after(monkeypatch, metrics, "record_run", before=True, signum=signal.SIGINT)

    def session_as_pyspark_starts_it():
        def pyspark_handler(signum, frame):  # what SparkContext installs on the main thread: cancel, then raise
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, pyspark_handler)
        return spark

    previous = signal.getsignal(signal.SIGINT)
    with mock_aws(), pytest.raises(entry.JobRunFailed, match="interrupted: SIGINT, which came while"):
        entry.main(
            lambda _spark, args: entry.run_bronze_job(session_as_pyspark_starts_it, args),
            jobs.BRONZE_ARGS,
            glue_argv(lake, force=False, run_id=RUN),
        )
    assert sent
    assert json.loads(lake.read_bytes(naming.run_summary_key(DATASET, RUN)))["status"] == "succeeded"
    assert not lake.exists(naming.lock_key(DATASET))
    assert signal.getsignal(signal.SIGINT) is previous


def test_ctrl_c_through_pyspark_s_own_handler_is_one_line_and_exit_130(tmp_path, capsys):
    """PySpark puts its own SIGINT handler in place of the entry's when it starts its context, and that one raises
    a plain KeyboardInterrupt: the script printed a traceback and exited 1 after the run had settled."""

    def run(_spark, _args):
        raise KeyboardInterrupt  # what PySpark's handler raises, after the run's own cleanup

    argv = ["bronze_job.py", "--dataset", DATASET, "--lake_uri", str(tmp_path / "lake")]
    assert entry.main(run, jobs.BRONZE_ARGS, argv) == 130
    assert capsys.readouterr().err.startswith("interrupted: SIGINT; the run's ledger entry says so")


def test_on_glue_ctrl_c_through_pyspark_s_handler_fails_the_job_run_saying_so(on_glue, tmp_path):
    def run(_spark, _args):
        raise KeyboardInterrupt

    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(entry.JobRunFailed, match="interrupted: SIGINT"):
        entry.main(run, jobs.BRONZE_ARGS, glue_argv(lake, force=False, run_id=RUN))
