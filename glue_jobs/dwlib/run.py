"""One run of any layer (raw, bronze, gold): its context, its summary (the ledger entry), the lock-and-ledger
skeleton around its work, and publishing its output.

Both layers publish through a Publisher chosen from the dataset's `table_format`: `ParquetPublisher`
replaces a Parquet folder (kill-and-fill, journaled so that the next run finishes a publish this
one died in); `IcebergPublisher` commits the checked files as one snapshot of an Iceberg table.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dwlib import errors, fetch, iceberg, ledger, metrics, stops
from dwlib import keys as key_check
from dwlib.config import CoreConfig, DatasetConfig
from dwlib.lake import Lake, LakeError
from dwlib.naming import Naming
from dwlib.secrets import SecretResolver, scrub_value

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class JobFailed(Exception):
    """A run that failed for a reason the user can act on; bronze was not touched."""


class PublishUnfinished(LakeError):
    """A publish that stopped after its first copy: the table may hold two runs' files until the next run."""


class LayoutError(JobFailed):
    """The table's folder holds the files of the other table format: the run touches nothing."""


class Interrupted(KeyboardInterrupt):
    """The process was told to stop: `dw` raises it on SIGINT and on SIGTERM, so that both unwind as Ctrl-C does.

    A KeyboardInterrupt, because the libraries a run calls treat that one right: py4j closes the gateway
    connection it cut mid-answer (any other exception leaves the answer in the socket, and the next Spark call of
    a `finally` reads it as its own), and no `except Exception` of a job takes it for a crash."""

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum  # what a shell reports for a process the signal ended: 130, 143
        super().__init__(self.signal_name)


# What stops a run from outside: its entry says so (not `running`), then the stop goes on.
STOPS = (KeyboardInterrupt, SystemExit)


@dataclass
class JobContext:
    """Everything one run needs, resolved: configs, names, the lake and the run's ids."""

    core: CoreConfig
    dataset: DatasetConfig
    lake: Lake
    run_id: str
    raw_run_id: str | None = None  # re-run bronze from a kept raw run, without fetching
    dataset_dir: Path | None = None  # relative file sources; None on Glue
    sample_dir: Path | None = None  # `dw run --sample`: read these files instead of the source
    policy: fetch.RetryPolicy = field(default_factory=fetch.RetryPolicy)
    # API auth: Secrets Manager on Glue (entry.py), the environment or .secrets.json with `dw run`.
    secrets: SecretResolver | None = None
    auto_run_id: bool = False  # the run id came from the clock: the run may move it on to a free one
    stage: str = ""  # `-c stage=…` of the deployment: its names are the ones the run prints and publishes to
    lock: ledger.RunLock | None = None  # the dataset's run lock, while this process holds it
    # Journals of the publishes this run finished: removed once its final ledger entry is written (guarded_run).
    published: list[str] = field(default_factory=list)
    on_stop: Callable[[], None] | None = None  # a run stopped from outside: end what it started (dw: Spark's jobs)

    @property
    def naming(self) -> Naming:
        return Naming.of(self.core, self.stage)

    @property
    def name(self) -> str:
        return self.dataset.dataset


# What the job itself writes into a summary, from validated names and its clock, never a source's text: kept as
# it is when the rest is scrubbed (a short secret that is part of a run id must not make the entry unreadable).
OWN_FIELDS = frozenset(
    ("dataset", "run_id", "raw_run_id", "layer", "status", "started_at", "finished_at", "code_version", "config_hash")
)


@dataclass
class RunSummary:
    dataset: str
    run_id: str
    layer: str
    source: str
    status: str = "running"
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished_at: str | None = None
    raw_run_id: str | None = None
    bytes_fetched: int = 0
    raw_keys: list[str] = field(default_factory=list)
    # rows_in counts the source's rows (after `explode`); rows_in = kept + rejected + dropped by the hook.
    rows_in: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    rows_dropped_by_transform: int = 0  # transform.py: rows it dropped, net of those it added
    rows_added_by_transform: int = 0  # transform.py: rows it added (explode), net of those it dropped
    transform_hook: str | None = None  # the hook's file, when the dataset has one
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    # Source columns renamed beyond plain cleaning (two headers cleaning to one name, a header taking a
    # name the job adds, an empty header): {original header: column in bronze}.
    renamed_columns: dict[str, str] = field(default_factory=dict)
    # Several input files whose headers differ: {file: columns its header lacks}, NULL in its rows.
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    # CSV without `multiline`: read line by line, then read again with multiline on because a quote in
    # a value or a malformed row said a quoted line break may have split a row.
    csv_read_again_multiline: bool = False
    # A large CSV typed by Spark's reader: its records the reader could not type (a value it refused, a record of
    # another width), typed and checked from their text instead. A run after one that had some reads their text
    # split from the start rather than after a read planned for a clean file.
    csv_untyped_records: int = 0
    output_prefix: str = ""
    output_files: int = 0
    output_bytes: int = 0
    schema: list[dict[str, str]] = field(default_factory=list)
    schema_changed: bool | None = None
    schema_change: dict[str, Any] = field(default_factory=dict)
    durations_seconds: dict[str, float] = field(default_factory=dict)
    crawler_command: str = ""
    error: str | None = None
    traceback: str | None = None  # only for crashes: the ledger keeps it, the console does not
    models: list[dict[str, Any]] = field(default_factory=list)  # gold runs: one entry per model
    previous_attempts: list[dict[str, Any]] = field(default_factory=list)  # earlier tries of this run id
    finished_for_others: list[str] = field(default_factory=list)  # publishes of dead runs this run finished
    lock_taken_over: dict[str, Any] | None = None  # the dead run whose lock this run took
    notes: list[str] = field(default_factory=list)  # what a person should know about the run's input (a replay)
    code_version: str = ""  # git commit or library hash (metrics.code_version)
    config_hash: str = ""  # sha256 of the dataset config the run used
    table_format: str = "parquet"  # "iceberg": the run committed a snapshot instead of replacing a folder
    iceberg: dict[str, Any] = field(default_factory=dict)  # the commit: snapshot id, files added and removed

    def as_dict(self) -> dict[str, Any]:
        """The entry as the ledger keeps it: every string scrubbed of secret values (a source may echo a key
        into an error, a column name, a file name), but the run's own names and times (OWN_FIELDS)."""
        return scrub_value(dict(self.__dict__), keep=OWN_FIELDS)

    def scrub(self) -> None:
        """Scrub every string of the summary in place, so that what the console shows is what the ledger keeps."""
        for name, value in list(self.__dict__.items()):
            if name not in OWN_FIELDS:
                setattr(self, name, scrub_value(value))

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.durations_seconds[name] = round(time.perf_counter() - start, 3)


def write_parquet(df: DataFrame, uri: str) -> None:
    df.write.mode("overwrite").option("compression", "zstd").parquet(uri)


# ------------------------------------------------------------------ the run skeleton


def guarded_run(
    ctx: JobContext,
    layer: str,
    summary_of: Callable[[], RunSummary],
    work: Callable[[RunSummary, str], None],
    *,
    staging: str | None = None,
    expected: tuple[type[BaseException], ...] = (),
    kept: str = "",
) -> RunSummary:
    """What every run does around its work: the lock, a free run id, the `running` entry, the final entry.

    Raises ledger.RunRefused, having written nothing, when another run holds the lock or the run
    id is taken. `summary_of()` makes the run's summary once the run id is settled; publishes a
    dead run left half done are finished (or undone) before `work(summary, entry_key)` starts.
    An `expected` exception fails the run with its message; any other is a crash, described in one
    paragraph (ending with `kept`, what the layer keeps) with the whole trace in the ledger. The
    run's `staging` prefix is deleted whatever happens.
    """
    with ledger.holding(ctx, layer) as lock:
        early: list[BaseException] = []  # a stop while the run's id and first entry are written: raised just below
        with stops.settling(hand_over=early):
            attempts = ledger.claim_run_id(ctx, layer)
            lock.rename(ctx.run_id)
            summary: RunSummary = summary_of()
            summary.previous_attempts, summary.lock_taken_over = attempts, lock.took_over
            entry = ctx.naming.run_summary_key(ctx.name, ctx.run_id, layer)
            ctx.lake.write_json(entry, summary.as_dict())  # a run killed from here on is still found
        try:
            try:
                for stop in early:  # unwound as any stop of the run: its entry says so
                    raise stop
                summary.finished_for_others = ledger.finish_publishes(ctx)
                with contextlib.suppress(Exception):  # staging/ is never read; on S3 its lifecycle rule expires it
                    ledger.clear_dead_staging(ctx, lock)
            except Exception as exc:  # S3 refusing or unreachable: the journal stays for the run after this one
                summary.status = "failed"
                cause = str(exc) if isinstance(exc, LakeError) else errors.describe(exc)
                summary.error = (
                    f"an earlier run's unfinished publish could not be finished: {cause}; nothing else was done"
                )
            else:
                try:
                    work(summary, entry)
                # PublishUnfinished never "keeps its previous data": its message says what the table holds.
                except PublishUnfinished as exc:
                    summary.status, summary.error = "failed", str(exc)
                except expected as exc:
                    summary.status, summary.error = "failed", str(exc)
                except Exception as exc:  # a crash still gets a ledger entry and leaves the published tables alone
                    fail_with(summary, exc, ctx, entry, kept)
                except STOPS:
                    # The work's Spark jobs go on in the JVM after Python stops waiting for them: they end before
                    # staging is deleted, or their tasks would write into it again afterwards.
                    if ctx.on_stop is not None:
                        with contextlib.suppress(Exception):
                            ctx.on_stop()
                    raise
                finally:
                    if staging is not None:
                        # staging/ is never read; its lifecycle rule expires leftovers
                        with contextlib.suppress(Exception):
                            ctx.lake.delete_prefix(staging)
        except STOPS as exc:  # Ctrl-C, SIGTERM: the entry, the `runs` row and the lock are settled below, then it stops
            stopped(summary, exc, ctx, layer, kept)
            raise
        finally:
            with stops.settling():  # a stop now waits for the run's outcome to be written, then goes on
                settle(ctx, summary, entry)
    return summary


def settle(ctx: JobContext, summary: RunSummary, entry: str) -> None:
    """Write the run's outcome: its `runs` row, then its final ledger entry."""
    summary.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    summary.scrub()  # no secret in the ledger, the `runs` table or the console: every string of the summary
    metrics.stamp(summary, ctx.dataset)
    # The `runs` table's row before the final entry: a run killed between the two leaves an entry that still
    # says running or publishing, which the next run finishes (rewriting both) or `dw runs` flags; the other
    # way round, the row of a run whose entry is final would be missing for good.
    try:
        metrics.record_run(ctx.lake, summary)
    except Exception:  # the row refused (S3): the entry is still written, then the error told
        ctx.lake.write_json(entry, summary.as_dict())
        raise
    ctx.lake.write_json(entry, summary.as_dict())
    if summary.status not in ledger.ACTIVE:  # stopped while publishing: the journals tell the next run
        forget_publishes(ctx)


def forget_publishes(ctx: JobContext) -> None:
    """Remove the journals of the publishes this run finished, now that its ledger entry says what they did.

    A journal that cannot be removed (or a run killed before this) is found by the next run, which sees the
    publish completed and the entry already saying so.
    """
    done, ctx.published = ctx.published, []
    for journal in done:
        with contextlib.suppress(Exception):
            ctx.lake.delete_prefix(journal)


def fail_with(summary: RunSummary, exc: BaseException, ctx: JobContext, entry: str, kept: str) -> None:
    """A crash: one paragraph in `error`, the whole trace in `traceback`."""
    summary.status = "failed"
    inputs = summary.raw_keys or None
    described = errors.describe(exc, lake_root=ctx.lake.root_uri, inputs=inputs, ledger_key=entry)
    summary.error = f"{described} {kept}" if kept else described
    summary.traceback = errors.full_trace(exc)


def how_stopped(exc: BaseException) -> str:
    if isinstance(exc, Interrupted):
        return exc.signal_name
    return "SIGINT" if isinstance(exc, KeyboardInterrupt) else "the process exiting"  # Python's own Ctrl-C handler


def stopped(summary: RunSummary, exc: BaseException, ctx: JobContext, layer: str, kept: str) -> None:
    """The entry of a run stopped from outside says so, and what its tables hold, instead of `running` for good.

    A run stopped in a publish stays `publishing` while its outcome is for the next run of the dataset to find
    (a Parquet journal left, an Iceberg snapshot that may carry its run id), which corrects the entry then; a
    Parquet publish that left no journal never began or was put back, and the run failed."""
    how = how_stopped(exc)
    models = [m for m in summary.models if isinstance(m, dict)]
    publishing = [f"gold.{m.get('name')}" for m in models if m.get("status") == "publishing"]
    publishing += [layer] if summary.status == "publishing" and layer == "bronze" else []
    if publishing:
        if summary.table_format == "iceberg" or _journaled(ctx, publishing):
            summary.error = (
                f"interrupted ({how}) while publishing: the table may hold this run's rows; the next run of "
                f"{ctx.name} finishes or undoes the publish and corrects this entry"
            )
            return
        for model in models:
            if model.get("status") == "publishing":
                model["status"] = "failed"
        summary.status = "publishing"  # failed just below, as a run stopped before its publish
    if summary.status not in ledger.ACTIVE:
        return  # stopped after its outcome was settled (while its entry was being written): that outcome stands
    summary.status = "failed"
    published = [str(m.get("name")) for m in models if m.get("status") == "succeeded"]
    for model in models:
        if model.get("status") in ("pending", "running"):
            model["status"], model["error"] = "failed", f"interrupted ({how}) before it was published"
    if layer == "raw":
        summary.error = f"interrupted ({how}) while fetching: its raw files are incomplete, never replayed; run again"
    elif published:
        summary.error = (
            f"interrupted ({how}): model(s) {', '.join(published)} were published; "
            "the others keep their previous tables"
        )
    else:
        what = kept or ("The gold tables keep their previous data." if layer == "gold" else "")
        summary.error = f"interrupted ({how}) before it published anything. {what}".strip()


def _journaled(ctx: JobContext, targets: list[str]) -> bool:
    """Whether the journal of a publish of this run to one of `targets` (`bronze`, `gold.{model}`) is in the lake:
    the publish began, and either completed or is for the next run to finish or undo."""
    for target in targets:
        with contextlib.suppress(Exception):
            if ctx.lake.read_json(ctx.naming.publish_journal_key(ctx.name, target)).get("run_id") == ctx.run_id:
                return True
    return False


def housekeeping(summary: RunSummary) -> list[str]:
    """What a run did about earlier runs that died: their lock, their unfinished publishes."""
    lines = []
    if summary.lock_taken_over:
        dead = summary.lock_taken_over
        lines.append(
            f"took over the lock of run {dead.get('run_id')} (started {dead.get('started_at')}): {dead.get('why')}"
        )
        if dead.get("staging_deleted"):
            lines.append(f"deleted what run {dead.get('run_id')} left in staging: {', '.join(dead['staging_deleted'])}")
    lines += summary.finished_for_others
    lines += summary.notes
    if summary.previous_attempts:
        lines.append(f"attempt {len(summary.previous_attempts) + 1} of run id {summary.run_id} (earlier: "
                     + ", ".join(str(a.get("status")) for a in summary.previous_attempts) + ")")  # fmt: skip
    return lines


# ------------------------------------------------------------------ publishing


def publish(ctx: JobContext, summary: RunSummary, entry: str, staged: str, final: str, target: str, **about) -> None:
    """Replace `final` with `staged`, journaled so that the next run finishes it if this one dies midway."""
    journal = ctx.naming.publish_journal_key(ctx.name, target)
    ctx.lake.write_json(entry, summary.as_dict())  # the figures, before the point of no return
    try:
        ctx.lake.replace_prefix(staged, final, journal, {"run_id": ctx.run_id, **about})
        ctx.published.append(journal)  # kept until the final ledger entry is written
    except LakeError as exc:
        raise PublishUnfinished(
            f"publishing to {final} did not finish: {exc}. Until it does, {final} may hold the files of two "
            f"runs; the next run of {ctx.name} finishes or undoes this publish before it starts (journal {journal})"
        ) from None


@dataclass(frozen=True)
class Target:
    """Where one published table goes: its folder, its catalog name, and how a run replaces its rows."""

    layer: str  # bronze, gold
    prefix: str  # the table's folder in the lake
    identifier: tuple[str, str]  # (database, table)
    journal: str  # the Parquet publish journal's name: "bronze", "gold.{model}"
    about: dict[str, str] = field(default_factory=dict)  # written into the Parquet journal
    load_mode: str = "full"
    partition_by: tuple[str, ...] = ()
    raw_run_id: str | None = None  # the raw run the rows come from (Iceberg append replays)


@dataclass
class Published:
    """What a publish left in the table: its data files, and (Iceberg) the commit."""

    files: int = 0
    bytes: int = 0
    commit: dict[str, Any] = field(default_factory=dict)


class Publisher:
    """Replaces a table's rows with the checked files under a staging prefix, all or nothing."""

    table_format = ""
    needs_crawler = True

    def publish(
        self, spark: SparkSession, ctx: JobContext, summary: RunSummary, entry: str, staged: str, target: Target
    ) -> Published:
        raise NotImplementedError

    @contextlib.contextmanager
    def writing(self, spark: SparkSession) -> Iterator[None]:
        """The Spark session as the staged files must be written for this format."""
        yield

    def check_layout(self, ctx: JobContext, target: Target) -> None:
        """Raise LayoutError when the table's folder holds the other table format's files.

        A dataset switched between `parquet` and `iceberg` finds its old layout in the same folder: an
        Iceberg table beside Parquet files is read twice by whatever reads the folder, and a Parquet
        publish replaces the folder whole, Iceberg data and history included. So the run refuses before
        it fetches anything, and says how to move the old files aside; nothing is ever deleted for it.
        """


class ParquetPublisher(Publisher):
    """Kill-and-fill of the table's folder, journaled; the crawler catalogs the folder."""

    table_format = "parquet"

    def publish(self, spark, ctx, summary, entry, staged, target) -> Published:
        # An Iceberg table's folder moved aside by hand (check_layout asked for it): the local catalog's
        # entry for it names files that are gone, and would shadow the Parquet table in `dw query`.
        iceberg.forget_moved_table(ctx.lake, ctx.naming, target.identifier, target.prefix)
        publish(ctx, summary, entry, staged, target.prefix, target.journal, **target.about)
        files = ctx.lake.data_files(target.prefix)
        return Published(len(files), sum(f.size for f in files))

    def check_layout(self, ctx, target) -> None:
        lake, prefix = ctx.lake, target.prefix
        if lake.has_prefix(f"{prefix}{iceberg.METADATA_FOLDER}/"):
            raise LayoutError(
                f"{lake.uri(prefix)} holds the Iceberg table {'.'.join(target.identifier)} (its "
                f"{iceberg.DATA_FOLDER}/ and {iceberg.METADATA_FOLDER}/), written while {ctx.name} had "
                '"table_format": "iceberg"; a Parquet run replaces that folder whole and would delete the table '
                "and its snapshots, so nothing was done. To switch to Parquet, "
                + switch_steps(ctx, target, "iceberg")
                + '; or set "table_format": "iceberg" back'
            )


class IcebergPublisher(Publisher):
    """One atomic commit of an Iceberg table in the catalog (see dwlib.iceberg); no crawler."""

    table_format = "iceberg"
    needs_crawler = False

    def __init__(self) -> None:
        self.kept_keys: key_check.KeptKeys | None = None  # what the last write's key check read, for a merge

    def publish(self, spark, ctx, summary, entry, staged, target) -> Published:
        kept_keys, self.kept_keys = self.kept_keys, None
        dataset = ctx.dataset
        if tuple(dataset.partition_by) != target.partition_by:
            dataset = dataset.model_copy(update={"partition_by": list(target.partition_by)})
        done = iceberg.commit(
            spark,
            ctx.lake,
            ctx.naming,
            dataset,
            identifier=target.identifier,
            prefix=target.prefix,
            staged=staged,
            run_id=ctx.run_id,
            raw_run_id=target.raw_run_id or ctx.run_id,
            load_mode=target.load_mode,
            retention=iceberg.retention_days(ctx.core, ctx.dataset),
            before_commit=lambda: ctx.lake.write_json(entry, summary.as_dict()),  # the figures, before the commit
            kept_keys=kept_keys,
        )
        return Published(done.data_files, done.data_bytes, dict(done.__dict__))

    @contextlib.contextmanager
    def writing(self, spark):
        # The run's key check reads the staged key columns; a merge matches the same keys against the table.
        with iceberg.session_for(spark, True), key_check.keeping() as kept:
            yield
        self.kept_keys = kept

    def check_layout(self, ctx, target) -> None:
        lake, prefix = ctx.lake, target.prefix
        own = (f"{prefix}{iceberg.DATA_FOLDER}/", f"{prefix}{iceberg.METADATA_FOLDER}/")
        stray = [o.key for o in lake.data_files(prefix) if not o.key.startswith(own)]
        if stray:
            raise LayoutError(
                f"{lake.uri(prefix)} holds {len(stray)} file(s) of the Parquet table {'.'.join(target.identifier)} "
                f'(such as {stray[0][len(prefix) :]}), published while {ctx.name} had "table_format": "parquet"; '
                "an Iceberg table beside them would leave two generations in one folder for whatever reads it "
                "(the crawler's table in Athena, a query over the prefix), so nothing was done. To switch to Iceberg, "
                + switch_steps(ctx, target, "parquet")
                + '; or set "table_format": "parquet" back'
            )


def switch_steps(ctx: JobContext, target: Target, old_format: str) -> str:
    """How to move a table's folder of the old format aside (to backup/, which nothing crawls or reads), and
    drop its catalog table, for the lake the run writes to: the commands to type, on AWS or locally."""
    lake, prefix = ctx.lake, target.prefix
    backup = f"backup/{prefix.rstrip('/')}-{old_format}-{ctx.run_id}/"
    database, table = target.identifier
    if lake.root_uri.startswith("s3://"):
        return (
            f"move the folder aside with `aws s3 mv --recursive {lake.uri(prefix)} {lake.uri(backup)}` and delete "
            f"its catalog table with `aws glue delete-table --database-name {database} --name {table}` (the files "
            "stay in the backup); the next run then creates the table anew"
        )
    source, moved = lake.uri(prefix).rstrip("/"), lake.uri(backup).rstrip("/")
    forget = " (the local catalog forgets the moved Iceberg table by itself)" if old_format == "iceberg" else ""
    return (
        f"move the folder aside with `mkdir -p {moved.rsplit('/', 1)[0]} && mv {source} {moved}`{forget}; "
        "the next run then creates the table anew"
    )


def publisher_for(ctx: JobContext) -> Publisher:
    """The dataset's table format (its config.json, else the lake's) decides how its tables are published."""
    return IcebergPublisher() if iceberg.is_iceberg(ctx.core, ctx.dataset) else ParquetPublisher()
