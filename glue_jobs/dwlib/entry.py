"""From resolved job arguments to a finished run: shared by the Glue entry points."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from pyspark.sql import SparkSession

from dwlib import bronze, gold, jobs, ledger, metrics, stops
from dwlib.lake import Lake
from dwlib.run import Interrupted
from dwlib.secrets import SecretsManagerSecrets


class JobRunFailed(RuntimeError):
    """Raised on Glue so the job run, and the pipeline, are marked FAILED with the reason."""


def job_context(args: dict[str, str]) -> bronze.JobContext:
    lake = Lake.from_uri(args["lake_uri"])
    config = jobs.find_job_config(lake, args["dataset"])
    try:
        run_id = jobs.resolve_run_id(args.get("run_id"))
        raw_run_id = jobs.optional(args.get("raw_run_id"))
        raw_run_id = jobs.resolve_run_id(raw_run_id) if raw_run_id else None
    except ValueError as exc:
        raise jobs.JobSetupError(f"{exc} (job arguments --run_id / --raw_run_id)") from None
    return bronze.JobContext(
        core=config.core,
        dataset=config.dataset,
        lake=lake,
        run_id=run_id,
        raw_run_id=raw_run_id,
        dataset_dir=config.dataset_dir,  # set only when the config came from a checkout's datasets/ folder
        auto_run_id=args.get("run_id") in (None, "", jobs.AUTO),
        stage=config.stage,
        secrets=SecretsManagerSecrets(),  # read only when the source needs a secret, with the job's role
    )


def main(run: Callable[[SparkLike, dict[str, str]], int], names: tuple[str, ...], argv: list[str]) -> int:
    """What both Glue entry points do: resolve Glue's arguments (or their local twins), then run.

    On Glue an error propagates, so the job run is marked FAILED with it; locally a run that cannot
    start or that fails prints one paragraph and returns 1, without a traceback.
    """
    try:
        from awsglue.utils import getResolvedOptions  # only on Glue
    except ImportError:
        args, on_glue = jobs.parse_local(names, argv[1:]), False
    else:
        args, on_glue = getResolvedOptions(argv, list(names)), True
    try:
        with _stops_unwind():
            return run(_session, args)
    except KeyboardInterrupt as exc:
        # The run unwound: its entry says it was interrupted, its staging is gone and its lock given back. A plain
        # KeyboardInterrupt is Ctrl-C through the handler PySpark puts in place of ours when it starts its context.
        stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        message = f"interrupted: {stop.signal_name}; the run's ledger entry says so and its lock was given back"
        if stops.came_while_settling(exc):
            message = (
                f"interrupted: {stop.signal_name}, which came while the run's lock or outcome was being written and "
                "took effect once that was done: its ledger entry says how the run ended, and its lock was given back"
            )
        if on_glue:
            raise JobRunFailed(message) from None
        print(message, file=sys.stderr)
        return stop.exit_code
    except (jobs.JobSetupError, JobRunFailed) as exc:
        if on_glue:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _stops_unwind() -> Iterator[None]:
    """SIGTERM and SIGINT raise `Interrupted`, so a job stopped from outside (a stopped or timed-out job run whose
    driver gets SIGTERM before it is killed; Ctrl-C locally) settles its run as `dw run` does: Spark's jobs
    cancelled, the ledger entry and the runs row saying `interrupted`, staging deleted, the lock given back, instead
    of an entry that says running and a lock the next run waits out. A signal while the lock is taken or given back,
    or while the run's outcome is written, takes effect once that is done (dwlib.stops). A second signal during the
    cleanup is left to the handler there was before (by default, the process ends at once)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread can take signals
        yield
        return
    numbers = (signal.SIGTERM, signal.SIGINT)
    before = {number: signal.getsignal(number) for number in numbers}

    def interrupt(signum: int, frame: object) -> None:
        for number, handler in before.items():
            signal.signal(number, handler)
        stop = Interrupted(signum)
        if not stops.defer(stop):  # deferred: the lock or the run's outcome is being written; raised right after
            raise stop

    global _unwinding
    for number in numbers:
        signal.signal(number, interrupt)
    _unwinding = interrupt
    try:
        yield
    finally:
        _unwinding = None
        for number, handler in before.items():
            signal.signal(number, handler)


# The handler `_stops_unwind` put in place, while it is: PySpark replaces the one of SIGINT when it starts its context.
_unwinding: Callable[[int, object], None] | None = None


def _take_back_sigint() -> None:
    """Put the run's SIGINT handler back in place of PySpark's, whose plain KeyboardInterrupt would cut the lock's or
    the outcome's write in two (dwlib.stops); ours cancels Spark's jobs too, as the run unwinds."""
    handler, main = _unwinding, threading.current_thread() is threading.main_thread()
    if handler is not None and main and signal.getsignal(signal.SIGINT) is not handler:
        signal.signal(signal.SIGINT, handler)


def _session() -> SparkSession:
    return SparkSession.builder.getOrCreate()


SparkLike = SparkSession | Callable[[], SparkSession]


def _spark(spark: SparkLike) -> SparkSession:
    """Spark starts only when a run needs it: a dry run or a missing config never waits for a session."""
    session = spark if isinstance(spark, SparkSession) else spark()
    _take_back_sigint()
    return session


def run_bronze_job(spark: SparkLike, args: dict[str, str]) -> int:
    ctx = job_context(args)
    if jobs.is_dry_run(args):
        print("\n".join(bronze.plan(ctx)))
        return 0
    session = jobs.configure(_spark(spark))
    ctx.on_stop = lambda: jobs.end_spark_jobs(session)
    try:
        summary = bronze.run_bronze(session, ctx)
    except ledger.RunRefused as exc:  # another run holds the lock, or the run id is taken: nothing written
        raise JobRunFailed(str(exc)) from None
    if metrics.on_glue():  # failed runs too: what they measured, and Succeeded 0
        metrics.publish(summary, ctx.naming)
    print(bronze.describe_outcome(summary))
    if summary.status != "succeeded":
        raise JobRunFailed(summary.error)
    return 0


def deployed_models(ctx: bronze.JobContext) -> dict[str, str]:
    """The dataset's models as the stack deployed them: etl/{dataset}/gold/*.sql (or the checkout's gold/).

    Decoded as `dw run` decodes them (gold.decode_model: a byte order mark dropped); a file that is not UTF-8 is a
    JobSetupError naming it, and the dataset file it was deployed from.
    """
    try:
        if ctx.dataset_dir is not None:
            return gold.model_sources(ctx.dataset_dir)
        prefix = f"{ctx.naming.etl_prefix(ctx.name)}gold/"
        return {
            (model := obj.key[len(prefix) : -len(".sql")]): gold.decode_model(
                ctx.lake.read_bytes(obj.key),
                f"{ctx.lake.uri(obj.key)} (deployed from datasets/{ctx.name}/gold/{model}.sql)",
            )
            for obj in ctx.lake.list(prefix)
            if obj.key.endswith(".sql") and "/" not in obj.key[len(prefix) :]
        }
    except gold.GoldError as exc:
        redeploy = " and deploy it again" if ctx.dataset_dir is None else ""
        raise jobs.JobSetupError(f"{exc}{redeploy}") from None


def run_gold_job(spark: SparkLike, args: dict[str, str]) -> int:
    ctx = job_context(args)
    models = deployed_models(ctx)
    if jobs.is_dry_run(args):
        print(f"plan for {ctx.name} gold run {ctx.run_id} (dry run): models {', '.join(sorted(models)) or 'none'}")
        return 0
    session = jobs.configure(_spark(spark))
    ctx.on_stop = lambda: jobs.end_spark_jobs(session)
    try:
        summary = gold.run_gold(session, ctx, models)
    except ledger.RunRefused as exc:
        raise JobRunFailed(str(exc)) from None
    if metrics.on_glue():
        metrics.publish(summary, ctx.naming)
    print(gold.describe_gold(summary))
    if summary.status != "succeeded":
        raise JobRunFailed(summary.error)
    return 0
