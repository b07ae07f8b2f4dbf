"""`dw`: the whole pipeline on a laptop, with the job code Glue runs and the SQL Athena runs."""

from __future__ import annotations

# ruff: noqa: E402 - `_EarlySpark` starts the JVM before the heavy imports below (see start_for_argv)
import concurrent.futures.thread  # noqa: F401 - before Spark's thread forks: see below
import contextlib
import csv
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any


def _exit_at_once(signum: int, frame: object, why: str = "before the command started; nothing was done") -> None:
    """SIGINT or SIGTERM before `main` is ready: nothing is written yet, so the process ends here and now. A
    KeyboardInterrupt raised into the imports below, while the Spark thread imports too, can leave an import
    lock held, and the process then hangs instead of exiting."""
    os.write(2, f"interrupted: {signal.Signals(signum).name} {why}\n".encode())
    os._exit(128 + signum)


def _is_dw(argv: list[str]) -> bool:
    """This process is the `dw` command (not a test or a script importing the module)."""
    return bool(argv) and Path(argv[0]).name in ("dw", "cli.py")


if _is_dw(sys.argv) and threading.current_thread() is threading.main_thread():
    for _signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signal, _exit_at_once)


class _EarlySpark:
    """Spark's JVM starting (seconds) on a thread of its own while `dw run` imports, checks its config and
    takes the run lock: on a small dataset that start is most of the run. It writes nothing; a run
    that stops before Spark is needed leaves the JVM to exit with this process."""

    _thread: threading.Thread | None = None
    _outcome: dict[str, Any] = {}

    @classmethod
    def start(cls, app_name: str, short_run: bool = False) -> None:
        """`short_run`: the input is known to be small (dwlib.jobs.local_session's JVM options for it)."""
        if cls._thread is not None:  # started from the command line already (`start_for_argv`)
            return

        def run() -> None:
            try:
                from dwlib.jobs import local_session

                cls._outcome["spark"] = local_session(app_name, short_run=short_run)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller of session()
                cls._outcome["error"] = exc

        cls._outcome = {}
        cls._thread = threading.Thread(target=run, name="spark-start", daemon=True)
        cls._thread.start()

    @classmethod
    def start_for_argv(cls, argv: list[str]) -> None:
        """Start at once when the command line is `dw [global options] run DATASET ...` and will need Spark:
        the JVM then starts while this module imports the CLI's libraries and the config models (seconds on
        a busy machine), not after. `run` itself starts it where this could not tell (tests, other callers)."""
        dry = os.environ.get("DW_FORCE_DRY_RUN", "") not in ("", "0")  # jobs.FORCE_DRY_RUN, not imported yet
        if not _is_dw(argv) or dry:
            return
        words = iter(argv[1:])
        for word in words:
            if word == "--stage":
                next(words, None)
            elif not word.startswith("-"):
                break
        else:
            return
        rest = list(words)
        if word != "run" or not rest or rest[0].startswith("-") or "--dry-run" in rest or "--help" in rest:
            return
        layer = next((rest[i + 1] for i, w in enumerate(rest[:-1]) if w == "--layer"), None)
        layer = next((w.split("=", 1)[1] for w in rest if w.startswith("--layer=")), layer)
        if layer != "raw":
            cls.start(f"dw-{rest[0]}", short_run="--sample" in rest and small_sample(rest[0]))

    @classmethod
    def session(cls, app_name: str):
        """The session started early, else one started now."""
        thread, cls._thread = cls._thread, None
        if thread is None:
            from dwlib.jobs import local_session

            return local_session(app_name)
        thread.join()
        if "error" in cls._outcome:
            raise cls._outcome["error"]
        return cls._outcome["spark"]


def small_sample(dataset: str) -> bool:
    """True when `dw run DATASET --sample` reads at most dwlib.jobs.SHORT_RUN_INPUT_BYTES, counted as bronze
    counts its input (a zip by its members' sizes, any other file as it is). The project is found by
    dw.project.find_root's rule, without importing it: its imports are what the JVM's start overlaps."""
    import zipfile

    limit = 4 * 1024**2  # dwlib.jobs.SHORT_RUN_INPUT_BYTES, not imported yet (tests/cli/test_early_spark.py)
    if os.environ.get("DW_PROJECT"):
        roots = [Path(os.environ["DW_PROJECT"])]
    else:
        here = Path.cwd().resolve()
        roots = [f for f in (here, *here.parents) if (f / "config.json").is_file() and (f / "datasets").is_dir()][:1]
    folder = roots[0] / "datasets" / dataset / "sample" if roots else None
    if folder is None or not folder.is_dir():
        return False
    total = 0
    try:
        for path in folder.iterdir():
            if not path.is_file() or path.name.startswith("."):  # what bronze.land_raw takes
                continue
            if path.suffix.lower() == ".zip":
                with zipfile.ZipFile(path) as archive:
                    total += sum(info.file_size for info in archive.infolist())
            else:
                total += path.stat().st_size
    except (OSError, zipfile.BadZipFile):  # bronze reports a broken sample; the JVM starts as usual
        return False
    return total <= limit


# The Spark thread starts the JVM with a `preexec_fn`, so Python runs its at-fork hooks around that fork. A module
# imported meanwhile by this thread that registers a pair of them (`concurrent.futures.thread`: acquire a lock
# before a fork, release it after) had only its second run, and Python printed `Exception ignored in: <built-in
# method release of _thread.lock>` and a traceback (`RuntimeError: release unlocked lock`) on a run that then
# succeeded. Imported above, its hooks are in place before any fork.
_EarlySpark.start_for_argv(sys.argv)

import typer
from rich.console import Console
from rich.table import Table

from dw.project import DwError, find_root, validate, write_schemas
from dwlib import stops
from dwlib.config import ConfigError, Project, check_dataset, load_project, resource_problems
from dwlib.jobs import FORCE_DRY_RUN, end_spark_jobs, job_config_document, resolve_run_id
from dwlib.naming import DROPPED_SOURCES, TRANSFORM_HOOK, Naming, check_stage, table_name
from dwlib.run import STOPS, Interrupted

HELP = """Run the pp-dw pipeline locally: the same Glue job code on Spark local mode, Athena SQL on DuckDB.

\b
Examples:
  dw validate
  dw list
  dw run fda-nsde --sample
  dw query "SELECT count(*) FROM pp_dw_bronze.fda_nsde"
  dw tables
  dw runs fda-nsde
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
# No markup: every text dw prints holds data (values, column names, reject reasons, error texts),
# and Rich would read `[/usr/bin]` or `[bold]` in them as markup: a cell shown blank, or a crash.
out = Console(highlight=False, markup=False, soft_wrap=True, width=None if sys.stdout.isatty() else 260)
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
STATE = {"debug": False}


def _lake_path(value: str | Path) -> Path:
    """--lake's folder; an empty one refused: Path("") is the current folder, which would put the lake's
    folders (raw/, bronze/, runs/…) wherever dw was started, usually the checkout."""
    if isinstance(value, Path):
        return value
    if not value.strip():
        raise DwError("--lake (or DW_LAKE) is empty: give the lake's folder, e.g. --lake .lake, or leave it out")
    return Path(value)


LakeOption = Annotated[
    Path,
    typer.Option("--lake", help="Local lake directory, laid out like the bucket.", envvar="DW_LAKE", parser=_lake_path),
]


class Layer(StrEnum):
    raw = "raw"
    bronze = "bronze"
    gold = "gold"
    all = "all"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    stage: Annotated[
        str, typer.Option("--stage", envvar="DW_STAGE", help="The stage deployed with -c stage=…: AWS names to print.")
    ] = "",
) -> None:
    STATE["debug"] = debug
    try:
        STATE["stage"] = check_stage(stage)
    except ValueError as exc:
        raise DwError(f"--stage / DW_STAGE: {exc}") from None


def _aws_naming(project: Project) -> Naming:
    """The AWS names of the stage given with --stage (the local lake's names never change)."""
    return Naming.of(project.core, STATE.get("stage", ""))


def _project() -> Project:
    try:
        return load_project(find_root())
    except ConfigError as exc:
        raise DwError("the configuration has problems:\n" + "\n".join(f"  {p}" for p in exc.problems)) from None


def _dataset(project: Project, name: str):
    if name not in project.datasets:
        known = ", ".join(project.datasets) or "none"
        raise DwError(
            f"no dataset {name!r}: datasets are {known} (a dataset is a folder datasets/NAME/ with a config.json)"
        )
    return project.datasets[name]


def _lake_dir(project: Project, lake: Path | None) -> Path:
    if lake is None and os.environ.get("DW_LAKE") == "":  # click reads an empty variable as unset
        raise DwError("DW_LAKE is empty: set it to the lake's folder, or unset it for the project's .lake")
    folder = (lake or project.root / ".lake").resolve()
    if folder.exists() and not folder.is_dir():
        raise DwError(f"{folder} is not a folder: --lake (or DW_LAKE) names the lake's folder, which dw makes if missing")
    return folder


# ------------------------------------------------------------------ validate / list


@app.command("validate")
def validate_command() -> None:
    """Check config.json and every dataset folder; list every problem at once.

    \b
    Example:
      dw validate
    """
    root = find_root()
    project, problems = validate(root)
    if problems:
        for problem in problems:
            err.print(str(problem), markup=False)
        err.print(f"{len(problems)} problem(s) found; fix them and run `dw validate` again.", markup=False)
        raise typer.Exit(1)
    assert project is not None
    out.print(f"ok: config.json and {len(project.datasets)} dataset(s) valid: {', '.join(project.datasets)}")


def _last_run(project: Project, lake_dir: Path, name: str) -> str:
    """The newest run of the dataset as `dw runs` shows it: `incomplete` when that command flags it (an entry still
    running with no live lock behind it, raw files without an entry), else its entry's status."""
    from dwlib import ledger
    from dwlib.lake import LocalLake

    naming = Naming.of(project.core)  # the local lake's names, whatever --stage says
    lake = LocalLake(lake_dir)
    folder = lake_dir / naming.runs_prefix(name)
    runs = sorted(folder.glob("run_id=*.json"), reverse=True) if folder.is_dir() else []
    dropped = project.datasets[name].source_kind in DROPPED_SOURCES
    try:
        timeout = project.core.glue_defaults.timeout_minutes
        flagged = ledger.incomplete_runs(lake, naming, name, timeout, dropped=dropped)
    except (OSError, ValueError):  # what `dw runs` would name; the entry alone still says something
        flagged = []
    incomplete = {(i.run_id, i.layer) for i in flagged}
    newest_raw = max((i.run_id for i in flagged if i.layer == "raw"), default="")
    if not runs:
        return f"{newest_raw} raw incomplete" if newest_raw else "never"
    key = runs[0].relative_to(lake_dir).as_posix()
    try:
        summary = ledger.read_entry(lake, key)
    except ledger.UnreadableEntry:
        return f"unreadable: {key} (dw runs {name})"
    if summary is None:
        return "never"
    if newest_raw > summary["run_id"]:  # a raw folder newer than every entry: a run killed before its first entry
        return f"{newest_raw} raw incomplete"
    status = "incomplete" if (summary["run_id"], summary["layer"]) in incomplete else summary["status"]
    return f"{summary['run_id']} {summary['layer']} {status}"


@app.command("list")
def list_command(lake: LakeOption = None) -> None:
    """One row per dataset: source, workers, schedule, AWS names, tables, last local run.

    \b
    Example:
      dw list
    """

    project = _project()
    naming = _aws_naming(project)
    lake_dir = _lake_dir(project, lake)
    table = Table(title=f"{len(project.datasets)} dataset(s)", show_lines=True)
    columns = (
        "dataset",
        "source",
        "size / workers",
        "schedule",
        "AWS names",
        "tables",
        "est. cost (USD)",
        "last local run",
    )
    for column in columns:
        # The last run stays on one line ("20260101T000000Z bronze succeeded"): people grep for it.
        table.add_column(column, overflow="fold", no_wrap=column == "last local run")
    for name, config in project.datasets.items():
        workers = project.core.glue_worker_configs[config.data_size_category]
        gold = sorted(p.stem for p in (project.dataset_dir(name) / "gold").glob("*.sql"))
        tables = [f"{naming.database('bronze')}.{table_name(name)}"] + [f"{naming.database('gold')}.{m}" for m in gold]
        table.add_row(
            name,
            config.source_kind,
            f"{config.data_size_category}: {workers.number_of_workers} x {workers.worker_type}",
            config.schedule or "on demand",
            "\n".join([naming.job("bronze", name), _crawler_cell(project, naming, name), naming.state_machine(name)]),
            "\n".join(tables),
            _estimate(project, config, ["bronze", "gold"] if gold else ["bronze"], lake_dir),
            _last_run(project, lake_dir, name),
        )
    out.print(table)
    prices = project.core.prices
    out.print(
        f"Costs: Glue at ${prices.glue_dpu_hour}/DPU-hour (flex ${prices.glue_flex_dpu_hour}), {prices.region} prices "
        f'of {prices.as_of} (config.json "prices"); 1-minute minimum per job run; estimates only.',
        markup=False,
    )
    if project.datasets:
        with_gold = [n for n in project.datasets if list((project.dataset_dir(n) / "gold").glob("*.sql"))]
        out.print(_aws_start_commands(naming, (with_gold or list(project.datasets))[0]), markup=False)


def _estimate(project: Project, config, layers: list[str], lake_dir: Path) -> str:
    from dw import cost

    try:
        return cost.estimate(project.core, config, layers, lake_dir).text()
    except (AttributeError, TypeError, ValueError, KeyError):  # an entry edited by hand (`dw runs` names it)
        return cost.estimate(project.core, config, layers, lake_dir / ".no-ledger").text()


def _crawler_cell(project: Project, naming: Naming, name: str) -> str:
    """The dataset's bronze crawler, or what an Iceberg dataset has instead (its stack creates no crawler)."""
    from dwlib.config import table_format_of

    if table_format_of(project.core, project.datasets[name]) == "iceberg":
        return "no crawler: the job keeps the Iceberg catalog table"
    return naming.crawler("bronze", name)


AWS_EXAMPLE_RUN = "20261121T060000Z"
# What the deployed pipeline takes as input (every field optional), one command per case.
AWS_EXAMPLES = (
    ("every layer now, a fresh run id", {}),
    ("a dry run of every job: plans, writes nothing", {"dry_run": True}),
    ("rerun only gold for a run", {"layers": ["gold"], "run_id": AWS_EXAMPLE_RUN}),
    ("replay a kept raw run into bronze, then gold", {"raw_run_id": AWS_EXAMPLE_RUN}),
    (
        "every field",
        {"layers": ["bronze"], "dry_run": True, "raw_run_id": AWS_EXAMPLE_RUN, "run_id": "20261122T060000Z"},
    ),
)


def _aws_start_commands(naming: Naming, dataset: str) -> str:
    machine = naming.state_machine(dataset)
    lines = [
        f"\nStart {dataset}'s pipeline on AWS (other datasets: change the name in the first line):",
        f"  ARN=$(aws stepfunctions list-state-machines --query \"stateMachines[?name=='{machine}'].stateMachineArn\""
        " --output text)",
    ]
    for label, payload in AWS_EXAMPLES:
        command = f"aws stepfunctions start-execution --state-machine-arn \"$ARN\" --input '{json.dumps(payload)}'"
        lines.append(f"  {command}   # {label}")
    return "\n".join(lines)


# ------------------------------------------------------------------ run


def _print_summary(summary) -> None:
    table = Table(title=f"{summary.dataset} {summary.layer} run {summary.run_id}: {summary.status}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("rows in", summary.rows_in),
        ("rows kept", summary.rows_kept),
        ("rows rejected", summary.rows_rejected),
        *((f"  {reason}", n) for reason, n in summary.rejected_by_reason.items()),
        # Raw headers and file names are the source's text, not markup.
        *((f"renamed column {original!r}", name) for original, name in summary.renamed_columns.items()),
        *((f"{file} lacks (NULL)", ", ".join(cols)) for file, cols in summary.missing_columns.items()),
        *([("rows dropped by transform.py", summary.rows_dropped_by_transform)] if summary.transform_hook else []),
        *([("rows made by transform.py", summary.rows_added_by_transform)] if summary.rows_added_by_transform else []),
        ("bytes fetched", summary.bytes_fetched),
        ("output files", summary.output_files),
        ("output bytes", summary.output_bytes),
        *((f"{step} seconds", f"{seconds:.2f}") for step, seconds in summary.durations_seconds.items()),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    out.print(table)


@app.command("run")
def run_command(
    dataset: Annotated[str, typer.Argument(help="Dataset folder name, e.g. fda-nsde.")],
    layer: Annotated[Layer, typer.Option(help="raw: fetch only; bronze; gold; all: as the pipeline does.")] = Layer.all,
    lake: LakeOption = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="YYYYMMDDTHHMMSSZ; default: now (UTC).")] = None,
    raw_run_id: Annotated[
        str | None, typer.Option("--raw-run-id", help="Re-run bronze from this kept raw run, without fetching.")
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Read datasets/DATASET/sample/ instead of the source.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help=f"Print the plan, probe the source, write nothing (or set {FORCE_DRY_RUN}=1)."),
    ] = False,
) -> None:
    """Run a dataset's pipeline locally with the Glue job code, on Spark local mode.

    \b
    Examples:
      dw run fda-nsde --sample             # offline, from the shipped sample
      dw run fda-nsde                      # fetch the real source, then bronze
      dw run fda-nsde --layer raw          # fetch only
      dw run fda-nsde --raw-run-id 20261121T060000Z --layer bronze
      dw run fda-nsde --dry-run            # the plan; nothing written

    \b
    On AWS the pipeline takes the same choices as input: `dw list` prints the
    `aws stepfunctions start-execution` command for each case.
    """
    if layer != Layer.raw and not dry_run and os.environ.get(FORCE_DRY_RUN, "") in ("", "0"):
        _EarlySpark.start(f"dw-{dataset}", short_run=sample and small_sample(dataset))
    from dwlib import bronze

    project = _project()
    config = _dataset(project, dataset)
    lake_dir = _lake_dir(project, lake)
    from dwlib.lake import LocalLake
    from dwlib.secrets import LocalSecrets

    sample_dir = project.dataset_dir(dataset) / "sample" if sample else None
    if sample_dir is not None and not sample_dir.is_dir():
        raise DwError(f"{sample_dir} does not exist: put a small extract of the source there to run with --sample")
    try:
        ctx = bronze.JobContext(
            core=project.core,
            dataset=config,
            lake=LocalLake(lake_dir),
            run_id=resolve_run_id(run_id),
            raw_run_id=resolve_run_id(raw_run_id) if raw_run_id else None,
            auto_run_id=run_id is None,
            dataset_dir=project.dataset_dir(dataset),
            sample_dir=sample_dir,
            secrets=LocalSecrets(project.root),  # DW_SECRET_<NAME>, else .secrets.json at the project root
        )
    except ValueError as exc:
        raise DwError(str(exc)) from None
    naming = Naming.of(project.core)
    if ctx.raw_run_id and not ctx.lake.data_files(naming.raw_prefix(dataset, ctx.raw_run_id)):
        raise DwError(
            f"no raw files under {naming.raw_prefix(dataset, ctx.raw_run_id)} in {lake_dir}: "
            f"pick a run id that `dw runs {dataset}` lists"
        )
    if dry_run or os.environ.get(FORCE_DRY_RUN, "") not in ("", "0"):
        out.print("\n".join(bronze.plan(ctx)), markup=False)
        return

    if layer == Layer.raw and raw_run_id:
        raise DwError("--raw-run-id replays a kept raw run into bronze; with --layer raw there is nothing to do")
    if layer == Layer.gold and not any((project.dataset_dir(dataset) / "gold").glob("*.sql")):
        raise DwError(f"{dataset} has no gold models: add datasets/{dataset}/gold/MODEL.sql (one SELECT each)")
    from dwlib import ledger

    STATE["after_stop"] = f"`dw runs {dataset}` shows what the run left"
    try:
        # The lock before Spark starts: a second run of the dataset refuses at once, having written nothing.
        with ledger.holding(ctx, layer.value):
            _run_layers(project, ctx, layer, lake_dir)
    except ledger.RunRefused as exc:
        raise DwError(str(exc)) from None


def _show_trace(summary) -> None:
    if STATE["debug"] and summary.traceback:
        err.print(summary.traceback, markup=False)


def _run_layers(project: Project, ctx, layer: Layer, lake_dir: Path) -> None:
    from dw.progress import RunProgress

    # The step, the download's bytes and rate, Spark's stages: drawn on stderr only when it is a terminal.
    with RunProgress(err) as progress:
        _run_layers_shown(project, ctx, layer, lake_dir, progress)


def _run_layers_shown(project: Project, ctx, layer: Layer, lake_dir: Path, progress) -> None:
    from dwlib import bronze

    dataset, config = ctx.name, ctx.dataset
    naming = ctx.naming
    if layer == Layer.raw:
        with progress.step(f"fetching {bronze.source_description(config)}"):
            summary = bronze.run_raw(ctx)
        for line in bronze.housekeeping(summary):
            out.print(line, markup=False)
        if summary.status != "succeeded":
            _show_trace(summary)
            raise DwError(f"{dataset} raw run {ctx.run_id} failed: {summary.error}")
        out.print(
            f"{len(summary.raw_keys)} file(s), {summary.bytes_fetched} bytes under "
            f"{lake_dir / naming.raw_prefix(dataset, ctx.run_id)}",
            markup=False,
        )
        return
    # dwlib.gold (and its SQL parser) only for a dataset that has models: a bronze run does not import them.
    models = {}
    if any((project.dataset_dir(dataset) / "gold").glob("*.sql")):
        from dwlib import gold

        models = gold.model_sources(project.dataset_dir(dataset))
    if layer == Layer.gold and not models:
        raise DwError(f"{dataset} has no gold models: add datasets/{dataset}/gold/MODEL.sql (one SELECT each)")
    # Mirror what the stack deploys, so `python glue_jobs/bronze_job.py --lake_uri DIR` runs too.
    ctx.lake.write_json(naming.job_config_key(dataset), job_config_document(project.core, config))
    hook = project.dataset_dir(dataset) / TRANSFORM_HOOK
    if hook.is_file():
        ctx.lake.write_bytes(naming.transform_hook_key(dataset), hook.read_bytes())
    else:
        ctx.lake.delete_prefix(naming.transform_hook_key(dataset))
    started = time.perf_counter()
    with progress.step("starting Spark (local mode)"):
        spark = _EarlySpark.session(f"dw-{dataset}")
    progress.watch(spark)
    ctx.on_stop = lambda: end_spark_jobs(spark)
    if layer in (Layer.bronze, Layer.all):
        with progress.step(f"{dataset} bronze: fetch, clean, type, check, publish"):
            summary = bronze.run_bronze(spark, ctx)
        _print_summary(summary)
        out.print(bronze.describe_outcome(summary), markup=False)
        if summary.status != "succeeded":
            _show_trace(summary)
            raise typer.Exit(1)
    if layer == Layer.gold or (layer == Layer.all and models):
        with progress.step(f"{dataset} gold: {len(models)} model(s)"):
            summary = gold.run_gold(spark, ctx, models)
        out.print(gold.describe_gold(summary), markup=False)
        if summary.status != "succeeded":
            _show_trace(summary)
            raise typer.Exit(1)
    out.print(f"total {time.perf_counter() - started:.1f} s; lake: {lake_dir}", markup=False)


# ------------------------------------------------------------------ query / tables / runs


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


@app.command("query")
def query_command(
    sql: Annotated[
        str | None, typer.Argument(help="Athena (Trino) SQL; tables by catalog name, e.g. pp_dw_bronze.fda_nsde.")
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the SQL from this file.")] = None,
    lake: LakeOption = None,
    output: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
) -> None:
    """Answer Athena SQL over the local lake with DuckDB, using the Glue catalog's names.

    \b
    Examples:
      dw query "SELECT marketing_category, count(*) FROM pp_dw_bronze.fda_nsde GROUP BY 1"
      dw query --format csv "SELECT * FROM pp_dw_bronze.ourairports LIMIT 5"
      dw query --file datasets/fda-nsde/queries/demo.sql
    """
    from dw.query import QueryError, athena_text, run_query
    from dwlib.errors import NotUtf8, utf8_text

    if (sql is None) == (file is None):
        raise DwError("give the SQL as an argument or with --file PATH, not both")
    if file is not None:
        if not file.is_file():
            raise DwError(f"{file} does not exist; give the path of a .sql file")
        try:
            sql = utf8_text(file.read_bytes())  # as `dw validate` reads the queries: a BOM dropped, else where
        except NotUtf8 as exc:
            raise DwError(f"{file}: {exc}") from None
        except OSError as exc:
            raise DwError(f"{file} cannot be read ({exc.strerror}); give the path of a readable .sql file") from None
    project = _project()
    try:
        result = run_query(sql, _lake_dir(project, lake), Naming.of(project.core))
    except QueryError as exc:
        raise DwError(str(exc)) from None
    if output == Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        # As Athena's CSV results: true, 1.50, [a, NULL], {k=v}, 2024-01-01 10:00:00.000 UTC; NULL is empty.
        writer.writerows([[athena_text(v, t) for v, t in zip(row, result.types, strict=True)] for row in result.rows])
    elif output == Format.json:
        rows = [dict(zip(result.columns, map(_plain, row), strict=True)) for row in result.rows]
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    else:
        table = Table(*[f"{c}\n{t}" for c, t in zip(result.columns, result.types, strict=True)])
        for row in result.rows:
            table.add_row(*["NULL" if v is None else athena_text(v, t) for v, t in zip(row, result.types, strict=True)])
        out.print(table)
        out.print(f"{len(result.rows)} row(s)")


@app.command("tables")
def tables_command(lake: LakeOption = None) -> None:
    """The local catalog: databases, tables, columns and types, rows, files, bytes.

    \b
    Example:
      dw tables --lake .lake
    """
    from dw.query import local_catalog, open_lake

    project = _project()
    naming = Naming.of(project.core)
    lake_dir = _lake_dir(project, lake)
    catalog = local_catalog(lake_dir, naming)
    if not catalog:
        out.print(f"no tables in {lake_dir} yet: run `dw run DATASET --sample` to make one")
        return
    con, unreadable = open_lake(lake_dir, naming)
    table = Table("table", "columns", "rows", "files", "bytes")
    for info in catalog:
        name = f"{info.database}.{info.table}"
        if name in unreadable:  # listed with the reason, the others still described
            table.add_row(name, unreadable[name], "", str(info.files), str(info.bytes))
            continue
        columns = con.execute(f'DESCRIBE "{info.database}"."{info.table}"').fetchall()
        rows = con.execute(f'SELECT count(*) FROM "{info.database}"."{info.table}"').fetchone()[0]
        table.add_row(
            name, "\n".join(f"{c[0]} {c[1].lower()}" for c in columns), str(rows), str(info.files), str(info.bytes)
        )
    out.print(table)


@app.command("runs")
def runs_command(dataset: Annotated[str, typer.Argument(help="Dataset folder name.")], lake: LakeOption = None) -> None:
    """The run ledger of a dataset (runs/DATASET/), newest first, with runs that never finished.

    A run is `incomplete` when its entry still says running and no live run holds the dataset's
    lock (it was killed), or when raw/DATASET/run_id=.../ has files and no entry; each gets the
    command that replays it and what to delete to clean it up.

    \b
    Example:
      dw runs fda-nsde
    """
    from dwlib import ledger
    from dwlib.lake import LocalLake

    project = _project()
    config = _dataset(project, dataset)
    naming = Naming.of(project.core)
    lake_dir = _lake_dir(project, lake)
    folder = lake_dir / naming.runs_prefix(dataset)
    files = sorted(folder.glob("run_id=*.json"), reverse=True) if folder.is_dir() else []
    local = LocalLake(lake_dir)
    dropped = config.source_kind in DROPPED_SOURCES  # drops are closed by their dropper, fetches by a manifest
    unfinished = ledger.incomplete_runs(local, naming, dataset, project.core.glue_defaults.timeout_minutes,
                                        dropped=dropped)  # fmt: skip
    incomplete = {(i.run_id, i.layer): i for i in unfinished}
    if not files and not incomplete:
        out.print(f"no runs of {dataset} in {lake_dir} yet: `dw run {dataset} --sample` makes one")
        return
    from dwlib import metrics

    # The figures each run publishes to CloudWatch on Glue, computed by the same code from the same entry.
    table = Table(
        "run id", "layer", "status", "in", "kept", "rejected", "rejected %", "seconds", "bytes written", "schema",
        "error",
    )  # fmt: skip
    for column in table.columns[:3]:
        column.no_wrap = True
    rows = []
    unreadable = []
    for path in files:
        parsed = Naming.run_id_of_entry(path.name)
        try:
            s = ledger.read_entry(local, path.relative_to(lake_dir).as_posix())
        except ledger.UnreadableEntry as exc:
            unreadable.append(str(exc))
            run_id, entry_layer = parsed or ("?", "?")
            rows.append((run_id, entry_layer, "unreadable", *[""] * 7, "see below"))
            continue
        if s is None:
            continue
        flagged = incomplete.pop(parsed, None) if parsed else None
        changed = {None: "first", True: "changed", False: "same"}.get(s.get("schema_changed"), "")
        counted = s.get("layer") != "raw"  # a fetch-only run reads no rows and writes no table
        rows.append((
            s["run_id"],
            s["layer"],
            "incomplete" if flagged else s["status"],
            str(s.get("rows_in", "")) if counted else "",
            str(s.get("rows_kept", "")) if counted else "",
            str(s.get("rows_rejected", "")) if counted else "",
            f"{metrics.rejected_fraction(s):.2%}" if counted else "",
            f"{metrics.duration_seconds(s):.1f}",
            str(s.get("output_bytes", "")) if counted else "",
            "" if flagged or not counted else changed,
            flagged.why if flagged else s.get("error") or "",
        ))  # fmt: skip
    for item in incomplete.values():  # raw folders that no entry accounts for
        rows.append((item.run_id, item.layer, "incomplete", *[""] * 7, item.why))
    for row in sorted(rows, key=lambda r: r[0], reverse=True):
        table.add_row(*row)
    out.print(table)
    for problem in unreadable:
        out.print(f"unreadable entry: {problem}", markup=False)
    if unfinished:
        out.print(f"{len(unfinished)} incomplete run(s):", markup=False)
        for item in sorted(unfinished, key=lambda i: i.run_id, reverse=True):
            out.print(f"  {item.run_id} {item.layer}: {item.why}; {item.advice}", markup=False)


# ------------------------------------------------------------------ new / schema


DATASET_README = """# {name}

{description}

- Source: `{source}`
- Table: `{database}.{table}`; run it locally with `dw run {name} --sample` once
  `sample/` holds a small extract of the source.
- Declare column types in `config.json` (`columns`), a `primary_key`, and `quality` rules;
  add Athena queries to `queries/*.sql` and gold models to `gold/*.sql`.
"""


@app.command("new")
def new_command(
    dataset: Annotated[str, typer.Argument(help="New dataset name: lowercase letters, digits and '-'.")],
    source_url: Annotated[str, typer.Option("--source-url", help="https, http, s3 or file URL of the source.")],
    description: Annotated[str | None, typer.Option(help="One line; shown in `dw list`.")] = None,
) -> None:
    """Scaffold a valid dataset folder: config (with JSON Schema), README, sample/, gold/, queries/.

    \b
    Example:
      dw new city-bikes --source-url https://example.org/trips.csv
    """
    root = find_root()
    folder = root / "datasets" / dataset
    if folder.exists():
        raise DwError(f"{folder} already exists; pick another name or edit that folder")
    project = _project()
    naming = Naming.of(project.core)
    config = {
        "$schema": "../../schemas/dataset-config.schema.json",
        "dataset": dataset,
        "description": description or f"{dataset}, from {source_url.split('?')[0]}",
        "data_size_category": "small",
        "source_url": source_url,
        "columns": {},
        "primary_key": [],
    }
    folder.mkdir(parents=True)
    try:
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        new, problems = check_dataset(folder, f"datasets/{dataset}/config.json")
        if new is not None and not problems:  # names AWS would refuse, as dw validate checks them
            every = resource_problems(root, project.core, {**project.datasets, dataset: new})
            problems = [p for p in every if p.file.startswith(f"datasets/{dataset}/")]
        if problems:
            raise DwError("the new dataset would not be valid:\n" + "\n".join(f"  {p}" for p in problems))
        for sub in ("sample", "gold", "queries"):
            (folder / sub).mkdir()
            (folder / sub / ".gitkeep").write_text("")
        (folder / "README.md").write_text(
            DATASET_README.format(
                name=dataset,
                description=config["description"],
                source=source_url,
                database=naming.database("bronze"),
                table=table_name(dataset),
            )
        )
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    out.print(f"created {folder.relative_to(root)}/: config.json, README.md, sample/, gold/, queries/")
    out.print(f"next: drop a small extract into datasets/{dataset}/sample/ and run `dw run {dataset} --sample`")


@app.command("schema", hidden=True)
def schema_command() -> None:
    """Regenerate schemas/*.schema.json from the config models."""
    for path in write_schemas(find_root()):
        out.print(f"wrote {path}")


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT and SIGTERM alike: the command unwinds (a run writes its entry, cleans its staging folder, gives
    back its lock), then `main` exits 128 + the signal. A second signal while that cleanup runs ends at once."""
    if STATE.get("interrupted"):
        _exit_at_once(signum, frame, "again, during the cleanup: stopped at once (the next run takes over the lock)")
    STATE["interrupted"] = Interrupted(signum)
    if not stops.defer(STATE["interrupted"]):  # deferred while a run takes or gives back its lock or writes its outcome
        raise STATE["interrupted"]


def _quiet_after_a_stop(record: logging.LogRecord) -> bool:
    """Drop py4j's reports of the stop (logged on the root logger, with the traceback): `KeyboardInterrupt while
    sending command`, and the calls that meet the gateway it closed. The one `interrupted:` line says it all."""
    if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
        return False
    return not (STATE.get("interrupted") and "py4j" in record.pathname)


def _stop(exc: BaseException) -> None:
    """One line and the shell's code for the signal (130 Ctrl-C, 143 SIGTERM), no traceback; then exit at once.

    os._exit, not sys.exit: what the command had to write is written (the run's cleanup ran while the exception
    unwound), and a normal exit would wait on Spark's gateway, torn mid-call by the signal, and print py4j's errors.
    """
    if not isinstance(exc, Interrupted):
        exc = STATE.get("interrupted") or Interrupted(signal.SIGINT)
    _end_children()
    after = f"; {STATE['after_stop']}" if STATE.get("after_stop") else ""
    err.print(f"interrupted: {exc.signal_name}{after}", markup=False)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(exc.exit_code)


def _end_children(wait_seconds: float = 10) -> None:
    """Stop this process's children (Spark's JVM, even one still starting) and wait for them, so that none outlives
    `dw` or prints after its last line. SIGTERM: the JVM runs its shutdown hooks (its temporary folders go), as it
    would on the end of its input when `dw` exits. Linux only (/proc); elsewhere the JVM exits on its own."""
    mine = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                mine.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    for pid in mine:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    while mine and time.monotonic() < deadline:
        for pid in list(mine):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            mine.remove(pid)
        time.sleep(0.05)


def _by_a_signal(exc: BaseException) -> bool:
    """The error came of a stop: raised after a signal (Spark's gateway cut mid-call, DuckDB's "interrupted",
    a run that failed of either), or typer's Exit(130) for a KeyboardInterrupt not raised by `_interrupt`
    (pyspark's own SIGINT handler, when a SparkContext was made on the main thread)."""
    return bool(STATE.get("interrupted")) or isinstance(exc.__context__, KeyboardInterrupt)


def main() -> None:
    for number in (signal.SIGINT, signal.SIGTERM):  # the CLI is ready: a stop now unwinds, as Ctrl-C does
        signal.signal(number, _interrupt)
    logging.getLogger().addFilter(_quiet_after_a_stop)
    try:
        code = app(standalone_mode=False)  # returns, rather than raises, the code of typer.Exit
    except STOPS as exc:
        _stop(exc)
    except (DwError, ValueError) as exc:
        if _by_a_signal(exc):
            _stop(exc)
        if STATE["debug"]:
            raise
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    except typer.Exit as exc:
        if exc.exit_code and _by_a_signal(exc):
            _stop(exc)
        sys.exit(exc.exit_code)
    except typer.Abort as exc:
        if _by_a_signal(exc):
            _stop(exc)
        sys.exit(1)
    except Exception as exc:  # usage errors and the unexpected: one line, exit 1
        if _by_a_signal(exc):
            _stop(exc)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click's usage errors, as typer vendors them
            exc.show()
            sys.exit(1)
        if STATE["debug"]:
            raise
        from dwlib.errors import describe

        err.print(f"error: {describe(exc)} (run with --debug for the traceback)", markup=False)
        sys.exit(1)
    if code and STATE.get("interrupted"):
        _stop(STATE["interrupted"])
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
