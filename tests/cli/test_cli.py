"""`dw` through its real entry point: what a user types, sees, and finds in the lake afterwards.

Every test runs the installed `dw` script in a subprocess, in a throwaway copy of the project,
with `--lake` in tmp. Spark runs are slow, so the three runs that start Spark (a good run, a
bronze re-run from a kept raw run, a run that fails its quality check) are started once per
module by the `pipeline` fixture, in the background as early as possible, and shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from functools import cached_property
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.xdist_group("cli")

ROOT = Path(__file__).resolve().parents[2]
DATASET = "fda-nsde"
SAMPLE = ROOT / "datasets" / DATASET / "sample" / "Comprehensive_NDC_SPL_Data_Elements_File.zip"
RUN_ID = "20260101T000000Z"  # the good run
RAW_RUN_ID = "20260102T000000Z"  # `--layer raw`
RERUN_ID = "20260102T010000Z"  # `--raw-run-id RAW_RUN_ID --layer bronze`
FAILED_RUN_ID = "20260103T000000Z"  # quality.max_rejected_fraction 0.001
# Every shipped dataset folder (the project copies hold them all), as `dw` orders them.
DATASETS = sorted(p.parent.name for p in ROOT.glob("datasets/*/config.json"))
KNOWN = ", ".join(DATASETS)
COMMANDS = ("validate", "list", "run", "query", "tables", "runs", "new")
COUNT_SQL = "SELECT count(*) AS n FROM pp_dw_bronze.fda_nsde"
QUICK_TIMEOUT = 120
SPARK_TIMEOUT = 420

_script = Path(sys.executable).with_name("dw")
DW = [str(_script)] if _script.is_file() else [sys.executable, "-m", "dw.cli"]


# ------------------------------------------------------------------ helpers


# What the caller's environment must not pass to a `dw` under test: dw's own settings; what makes rich
# draw colour or a terminal's output in a pipe (or not on a terminal); the JVM options whose "Picked up
# ..." line comes before dw's own `error:`.
NOT_PASSED = (
    "DW_PROJECT", "DW_LAKE", "DW_FORCE_DRY_RUN", "DW_STAGE",
    "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "NO_COLOR",
    "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
)  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    """The environment of a `dw` under test: the caller's, less NOT_PASSED, TERM=dumb, then `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
    env.update(
        TERM="dumb",  # a test on a pseudo-terminal sets its own
        COLUMNS="240",  # rich wraps tables to 80 columns when not on a terminal
        SPARK_LOCAL_IP="127.0.0.1",
        PYTHONDONTWRITEBYTECODE="1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    env.update(extra)
    return env


def dw(*args, cwd: Path, timeout: float = QUICK_TIMEOUT, **env: str) -> subprocess.CompletedProcess:
    """Run `dw ARGS` in cwd and return what the user saw."""
    return subprocess.run(
        [*DW, *map(str, args)], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout
    )


class Background:
    """A `dw` started now and waited for later (its own process group, so it can be stopped whole)."""

    def __init__(self, *args, cwd: Path):
        self.args = [*DW, *map(str, args)]
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._result: subprocess.CompletedProcess | None = None

    def wait(self) -> subprocess.CompletedProcess:
        if self._result is None:
            try:
                out, err = self.proc.communicate(timeout=SPARK_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.stop()
                raise
            self._result = subprocess.CompletedProcess(self.args, self.proc.returncode, out, err)
        return self._result

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()


def show(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, show(result)
    assert "Traceback" not in result.stderr, show(result)


def assert_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 1, an `error:` line with every fragment, and no traceback."""
    assert result.returncode == 1, show(result)
    assert "Traceback" not in result.stderr + result.stdout, show(result)
    assert result.stderr.startswith("error: "), show(result)
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{show(result)}"


def copy_project(target: Path) -> Path:
    """What the `project_copy` fixture makes, for module-scoped fixtures."""
    target.mkdir(parents=True)
    shutil.copyfile(ROOT / "config.json", target / "config.json")
    shutil.copytree(ROOT / "datasets", target / "datasets")
    return target


def edit_config(project: Path, dataset: str, change) -> None:
    path = project / "datasets" / dataset / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config, indent=2) + "\n")


def lake_files(lake: Path) -> list[str]:
    """Every file of the lake, as a key relative to its root."""
    if not lake.exists():
        return []
    return sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file())


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def line_with(text: str, fragment: str) -> str:
    lines = [line for line in text.splitlines() if fragment in line]
    assert lines, f"no line with {fragment!r} in:\n{text}"
    return lines[0]


# ------------------------------------------------------------------ the Spark runs, once per module


class Pipeline:
    """The module's three Spark runs, each in its own project copy and lake.

    - good: `dw run fda-nsde --sample` into an empty lake.
    - raw + rerun: `--layer raw --sample`, then (sample folder deleted, source URL unreachable)
      `--raw-run-id RAW_RUN_ID --layer bronze`.
    - failed: a copy of the good run's project and lake, `quality.max_rejected_fraction` set to
      0.001, then `dw run fda-nsde --sample` again.
    Started in the background; each property waits for its run.
    """

    def __init__(self, base: Path):
        self.base = base
        self.good_project = copy_project(base / "good" / "project")
        self.good_lake = base / "good" / "lake"
        self._good = Background(
            "run", DATASET, "--sample", "--lake", self.good_lake, "--run-id", RUN_ID, cwd=self.good_project
        )
        self._failed: Background | None = None

        self.raw_project = copy_project(base / "raw" / "project")
        self.raw_lake = base / "raw" / "lake"
        self.raw = dw(
            "run", DATASET, "--layer", "raw", "--sample", "--lake", self.raw_lake, "--run-id", RAW_RUN_ID,
            cwd=self.raw_project,
        )  # fmt: skip
        self.raw_files = lake_files(self.raw_lake)
        # The re-run may read only the kept raw run: no sample to fall back on, no reachable source.
        shutil.rmtree(self.raw_project / "datasets" / DATASET / "sample")
        edit_config(self.raw_project, DATASET, lambda c: c.update(source_url="https://source.invalid/gone.zip"))
        self._rerun = Background(
            "run", DATASET, "--raw-run-id", RAW_RUN_ID, "--layer", "bronze", "--lake", self.raw_lake,
            "--run-id", RERUN_ID, cwd=self.raw_project,
        )  # fmt: skip

    @cached_property
    def good(self) -> subprocess.CompletedProcess:
        result = self._good.wait()
        self._start_failed()
        return result

    def _start_failed(self) -> None:
        if self._failed is not None:
            return
        self.failed_project = self.base / "failed" / "project"
        self.failed_lake = self.base / "failed" / "lake"
        shutil.copytree(self.good_project, self.failed_project)
        if self.good_lake.exists():
            shutil.copytree(self.good_lake, self.failed_lake)
        self.bronze_before = file_bytes(self.failed_lake / "bronze" / "fda_nsde")
        edit_config(self.failed_project, DATASET, lambda c: c["quality"].update(max_rejected_fraction=0.001))
        self._failed = Background(
            "run", DATASET, "--sample", "--lake", self.failed_lake, "--run-id", FAILED_RUN_ID, cwd=self.failed_project
        )

    @cached_property
    def rerun(self) -> subprocess.CompletedProcess:
        return self._rerun.wait()

    @cached_property
    def failed(self) -> subprocess.CompletedProcess:
        self.good  # noqa: B018 - the failing run starts from the good run's lake
        assert self._failed is not None
        return self._failed.wait()

    def stop(self) -> None:
        for run in (self._good, self._rerun, self._failed):
            if run is not None:
                run.stop()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    runs = Pipeline(tmp_path_factory.mktemp("cli-pipeline"))
    yield runs
    runs.stop()


@pytest.fixture(scope="module", autouse=True)
def _start_spark_early(request):
    """Start the Spark runs before the quick tests when any selected test of this module needs them."""
    items = [item for item in request.session.items if item.module is request.module]
    if any("pipeline" in item.fixturenames for item in items):
        request.getfixturevalue("pipeline")


# ------------------------------------------------------------------ help


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_usage_and_an_example(command, tmp_path):
    args = ["--help"] if command is None else [command, "--help"]
    result = dw(*args, cwd=tmp_path)
    assert_ok(result)
    assert "Usage: " in result.stdout
    assert "Example" in result.stdout
    if command is not None:
        assert f"dw {command}" in result.stdout


def test_help_lists_every_command(tmp_path):
    result = dw("--help", cwd=tmp_path)
    assert_ok(result)
    for command in COMMANDS:
        assert f"│ {command} " in result.stdout, result.stdout


# ------------------------------------------------------------------ validate


def test_validate_ok_on_the_shipped_project():
    result = dw("validate", cwd=ROOT)
    assert_ok(result)
    assert result.stdout.startswith(f"ok: config.json and {len(DATASETS)} dataset(s) valid: {KNOWN}"), show(result)


def test_validate_ok_from_another_folder_with_dw_project(project_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = dw("validate", cwd=elsewhere, DW_PROJECT=str(project_copy))
    assert_ok(result)
    assert f"ok: config.json and {len(DATASETS)} dataset(s) valid: {KNOWN}" in result.stdout


def test_validate_outside_a_project_says_where_to_go(tmp_path):
    result = dw("validate", cwd=tmp_path)
    assert_error(result, "no project here", "DW_PROJECT")


def break_project(project: Path) -> None:
    """Two broken folders and an unparsable query."""
    edit_config(project, "fda-nsde", lambda c: c.update(colums={}))
    edit_config(project, "ourairports", lambda c: c.update(schedule="every day"))
    (project / "datasets" / "fda-nsde" / "queries" / "x.sql").write_text("SELEC FROM\n")


UNKNOWN_KEY = "datasets/fda-nsde/config.json: colums: unknown key; remove it or fix its spelling"
BAD_SCHEDULE = "datasets/ourairports/config.json: schedule: 'every day' is not an EventBridge Scheduler expression"
BAD_SQL = "datasets/fda-nsde/queries/x.sql: line 1 column "


def test_validate_lists_every_config_problem(project_copy):
    break_project(project_copy)
    result = dw("validate", cwd=project_copy)
    assert "Traceback" not in result.stderr, show(result)
    lines = result.stderr.splitlines()
    assert any(line.startswith(UNKNOWN_KEY) for line in lines), show(result)
    assert "(allowed: $schema, api_endpoints, archive, columns," in line_with(result.stderr, "colums:")
    assert any(line.startswith(BAD_SCHEDULE) for line in lines), show(result)
    assert "problem(s) found" in lines[-1]
    assert result.stdout == ""


def test_validate_lists_sql_problems_alongside_config_problems(project_copy):
    break_project(project_copy)
    result = dw("validate", cwd=project_copy)
    assert any(line.startswith(BAD_SQL) for line in result.stderr.splitlines()), show(result)
    assert "3 problem(s) found" in result.stderr, show(result)


def test_validate_exits_1_on_problems(project_copy):
    break_project(project_copy)
    result = dw("validate", cwd=project_copy)
    assert result.returncode == 1, show(result)


def test_validate_lists_an_unparsable_query(project_copy):
    (project_copy / "datasets" / "fda-nsde" / "queries" / "x.sql").write_text("SELEC FROM\n")
    result = dw("validate", cwd=project_copy)
    assert "Traceback" not in result.stderr, show(result)
    line = line_with(result.stderr, "x.sql")
    assert line.startswith(BAD_SQL), show(result)
    assert "does not parse as athena SQL" in line
    assert "1 problem(s) found" in result.stderr


def test_validate_refuses_models_of_two_datasets_that_read_each_other(project_copy):
    """Gold tables are global, so a cycle may run through two datasets; neither could ever run."""
    (project_copy / "datasets" / "fda-nsde" / "gold").mkdir(exist_ok=True)
    (project_copy / "datasets" / "fda-nsde" / "gold" / "x1.sql").write_text("SELECT n FROM pp_dw_gold.x2\n")
    (project_copy / "datasets" / "ourairports" / "gold" / "x2.sql").write_text("SELECT n FROM pp_dw_gold.x1\n")
    result = dw("validate", cwd=project_copy)
    assert result.returncode == 1, show(result)
    line = line_with(result.stderr, "read each other in a cycle")
    assert "models of datasets fda-nsde, ourairports read each other in a cycle" in line, show(result)
    assert "x1" in line and "x2" in line
    assert "1 problem(s) found" in result.stderr, show(result)


def test_validate_names_a_bad_model_name_once(project_copy):
    """`cdk deploy` refuses it too (load_project); `dw validate` says it once, not once per check."""
    (project_copy / "datasets" / "ourairports" / "gold" / "Bad-Name.sql").write_text("SELECT 1 AS one\n")
    result = dw("validate", cwd=project_copy)
    assert result.returncode == 1, show(result)
    line = line_with(result.stderr, "Bad-Name.sql")
    assert line.startswith("datasets/ourairports/gold/Bad-Name.sql: model name 'Bad-Name' must be"), show(result)
    assert "1 problem(s) found" in result.stderr, show(result)


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        ("SELECT * FROM csv.`/etc/passwd`", "reads the file path csv.`/etc/passwd`"),
        ("SELECT reflect('java.nio.file.Files', 'readAllLines', '/etc/passwd') AS x", "calls reflect()"),
        ("ADD JAR /tmp/evil.jar", "found ADD JAR /tmp/evil.jar"),
    ],
    ids=["csv-path", "reflect", "add-jar"],
)
def test_validate_refuses_a_gold_model_that_reads_a_file(project_copy, sql, construct):
    (project_copy / "datasets" / "ourairports" / "gold" / "leak.sql").write_text(sql + "\n")
    result = dw("validate", cwd=project_copy)
    assert result.returncode == 1, show(result)
    assert "Traceback" not in result.stderr, show(result)
    line = line_with(result.stderr, "leak.sql")
    assert line.startswith("datasets/ourairports/gold/leak.sql: "), show(result)
    assert construct in line and "only by catalog name" in line, show(result)
    assert "1 problem(s) found" in result.stderr, show(result)


def test_validate_refuses_what_aws_would_refuse_at_deploy(project_copy):
    edit_config(project_copy, "ourairports", lambda c: c.update(schedule="cron(0 6 * * * *)"))
    glue = project_copy / "datasets" / "glue"
    shutil.copytree(project_copy / "datasets" / "fda-enforcement", glue)  # an API source with auth
    edit_config(project_copy, "glue", lambda c: c.update(dataset="glue"))
    queries = project_copy / "datasets" / "fda-nsde" / "queries"
    (queries / "demo-2.sql").write_text("SELECT 1\n")
    (queries / "demo_2.sql").write_text("SELECT 2\n")
    result = dw("validate", cwd=project_copy)
    assert result.returncode == 1, show(result)
    assert "Traceback" not in result.stderr, show(result)
    lines = result.stderr.splitlines()
    assert line_with(result.stderr, "ourairports").startswith(
        "datasets/ourairports/config.json: schedule: 'cron(0 6 * * * *)': day-of-month '*' and day-of-week '*': "
        "exactly one of them must be ?"
    ), show(result)
    assert line_with(result.stderr, "glue-job-role").startswith(
        "datasets/glue/config.json: dataset: IAM role name 'pp-dw-glue-job-role' of dataset glue (its own job role) "
        "is already that of the core stack pp-dw-core (the shared Glue job role)"
    ), show(result)
    assert line_with(result.stderr, "demo_2.sql").startswith(
        "datasets/fda-nsde/queries/demo_2.sql: maps to the same Athena named query resource (QueryDemo2) as "
        "queries/demo-2.sql"
    ), show(result)
    assert lines[-1].startswith("3 problem(s) found"), show(result)


# ------------------------------------------------------------------ list


def test_list_shows_every_dataset_with_its_aws_names(project_copy, tmp_path):
    result = dw("list", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_ok(result)
    assert f"{len(DATASETS)} dataset(s)" in result.stdout
    for name in DATASETS:
        row = line_with(result.stdout, f"│ {name} ")
        assert f"pp-dw-bronze-{name}" in row
        assert f"pp_dw_bronze.{name.replace('-', '_')}" in row
        assert row.rstrip("│ ").endswith("never"), row
        # An Iceberg dataset's stack has no crawler: its job keeps the catalog table (tests/cli/test_iceberg_names.py)
        assert (f"pp-dw-bronze-{name}-crawler" in result.stdout) == (name != "usgs-earthquakes")
        assert f"pp-dw-pipeline-{name}" in result.stdout
    assert "cron(0 6 * * ? *)" in result.stdout
    assert "rate(7 days)" in result.stdout
    assert not (tmp_path / "lake").exists()


# ------------------------------------------------------------------ dry runs and other runs that start no Spark


PLAN_LINES = (
    f"plan for fda-nsde bronze run {RUN_ID} (dry run: nothing is written)",
    "Glue job pp-dw-bronze-fda-nsde, crawler pp-dw-bronze-fda-nsde-crawler, pipeline pp-dw-pipeline-fda-nsde",
    "bronze/fda_nsde -> table pp_dw_bronze.fda_nsde",
    f"raw/fda-nsde/run_id={RUN_ID}",
    "Comprehensive_NDC_SPL_Data_Elements_File.zip 23625 bytes",
    "max rejected fraction: 0.05",
)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--dry-run"], {}),
        ([], {"DW_FORCE_DRY_RUN": "1"}),
        (["--layer", "raw"], {"DW_FORCE_DRY_RUN": "1"}),
    ],
    ids=["--dry-run", "DW_FORCE_DRY_RUN", "DW_FORCE_DRY_RUN-layer-raw"],
)
def test_dry_run_prints_the_plan_and_writes_nothing(project_copy, tmp_path, args, env):
    lake = tmp_path / "lake"
    before = file_bytes(project_copy)
    result = dw("run", DATASET, "--sample", "--lake", lake, "--run-id", RUN_ID, *args, cwd=project_copy, **env)
    assert_ok(result)
    for line in PLAN_LINES:
        assert line in result.stdout, show(result)
    assert str(lake) in result.stdout
    assert lake_files(lake) == []
    assert file_bytes(project_copy) == before


def test_run_gold_layer_without_models_says_how_to_add_one(project_copy, tmp_path):
    result = dw("run", DATASET, "--layer", "gold", "--sample", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_error(result, f"{DATASET} has no gold models", f"datasets/{DATASET}/gold/MODEL.sql")
    assert lake_files(tmp_path / "lake") == []


def test_raw_run_id_that_was_never_kept(project_copy, tmp_path):
    lake = tmp_path / "lake"
    result = dw("run", DATASET, "--layer", "bronze", "--raw-run-id", RUN_ID, "--lake", lake, cwd=project_copy)
    assert_error(result, f"no raw files under raw/fda-nsde/run_id={RUN_ID}/", "dw runs fda-nsde")
    assert not (lake / "raw").exists()


def plant_raw_run(lake: Path, run_id: str) -> Path:
    """A kept raw run, as `dw run --layer raw --sample` leaves it."""
    raw = lake / "raw" / DATASET / f"run_id={run_id}"
    raw.mkdir(parents=True)
    shutil.copyfile(SAMPLE, raw / SAMPLE.name)
    return raw


def test_runs_lists_a_raw_only_run(project_copy, tmp_path):
    lake = tmp_path / "lake"
    assert_ok(
        dw("run", DATASET, "--layer", "raw", "--sample", "--lake", lake, "--run-id", RAW_RUN_ID, cwd=project_copy)
    )
    result = dw("runs", DATASET, "--lake", lake, cwd=project_copy)
    assert_ok(result)
    assert "raw" in line_with(result.stdout, RAW_RUN_ID)


def test_layer_raw_with_raw_run_id_reports_only_what_exists(project_copy, tmp_path):
    lake = tmp_path / "lake"
    plant_raw_run(lake, RAW_RUN_ID)
    args = ("run", DATASET, "--layer", "raw", "--raw-run-id", RAW_RUN_ID, "--run-id", RERUN_ID, "--lake", lake)
    result = dw(*args, cwd=project_copy)
    assert "Traceback" not in result.stderr, show(result)
    if result.returncode == 0:
        assert f"run_id={RERUN_ID}" not in result.stdout or (lake / "raw" / DATASET / f"run_id={RERUN_ID}").is_dir()
        assert " 0 bytes" not in result.stdout, show(result)
    else:
        assert_error(result, "--raw-run-id")


# ------------------------------------------------------------------ errors


def test_unknown_dataset_lists_the_datasets(project_copy, tmp_path):
    result = dw("run", "nope", "--sample", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_error(result, "no dataset 'nope'", f"datasets are {KNOWN} (")
    assert not (tmp_path / "lake").exists()


def test_unknown_dataset_in_runs(project_copy, tmp_path):
    assert_error(dw("runs", "nope", "--lake", tmp_path, cwd=project_copy), f"datasets are {KNOWN} (")


def test_debug_shows_the_traceback(project_copy, tmp_path):
    result = dw("--debug", "run", "nope", "--lake", tmp_path / "lake", cwd=project_copy)
    assert result.returncode == 1, show(result)
    assert "Traceback (most recent call last)" in result.stderr
    assert "DwError: no dataset 'nope'" in result.stderr


@pytest.mark.parametrize("option", ["--run-id", "--raw-run-id"])
def test_bad_run_id_names_the_format(project_copy, tmp_path, option):
    lake = tmp_path / "lake"
    result = dw("run", DATASET, "--sample", "--lake", lake, option, "2026-01-01", cwd=project_copy)
    assert_error(result, "'2026-01-01'", "YYYYMMDDTHHMMSSZ", "20261121T060000Z")
    assert not lake.exists()


def test_missing_sample_folder(project_copy, tmp_path):
    shutil.rmtree(project_copy / "datasets" / DATASET / "sample")
    result = dw("run", DATASET, "--sample", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_error(result, "sample does not exist", "--sample")


@pytest.mark.parametrize(
    "args",
    [["run", DATASET, "--bogus"], ["query", "--format", "xml", "SELECT 1"], ["run"], ["nosuchcommand"]],
    ids=["unknown-option", "bad-choice", "missing-argument", "unknown-command"],
)
def test_usage_errors_show_usage_without_traceback(project_copy, args):
    result = dw(*args, cwd=project_copy)
    assert result.returncode != 0, show(result)
    assert "Usage: " in result.stderr, show(result)
    assert "--help' for help." in result.stderr, show(result)
    assert "Traceback" not in result.stderr + result.stdout, show(result)
    assert result.stdout == ""


def test_query_needs_sql_or_a_file(project_copy, tmp_path):
    assert_error(dw("query", "--lake", tmp_path, cwd=project_copy), "--file")


def test_query_refuses_both_sql_and_a_file(project_copy, tmp_path):
    demo = project_copy / "datasets" / DATASET / "queries" / "demo.sql"
    assert_error(dw("query", "--lake", tmp_path, "--file", demo, "SELECT 1", cwd=project_copy), "not both")


def test_query_file_that_does_not_exist(project_copy, tmp_path):
    assert_error(dw("query", "--lake", tmp_path, "--file", "nope.sql", cwd=project_copy), "nope.sql does not exist")


def test_query_on_an_empty_lake(project_copy, tmp_path):
    result = dw("query", "--lake", tmp_path / "lake", COUNT_SQL, cwd=project_copy)
    assert_error(result, "table pp_dw_bronze.fda_nsde does not exist in the local lake", "tables: (none)", "dw run")


def test_query_that_does_not_parse(project_copy, tmp_path):
    assert_error(dw("query", "--lake", tmp_path, "SELEC FROM", cwd=project_copy), "could not parse the SQL")


def test_query_shows_values_that_look_like_markup_as_they_are(project_copy, tmp_path):
    """An array value [rx, lot-1] was a blank cell, [/usr/bin] a crash, [bold]x[/bold] shown as x: Rich read them as
    markup. The table shows each value as it is, and so do dw tables (column names) and dw runs (error texts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "lake" / "bronze" / "odd"
    folder.mkdir(parents=True)
    values = ["[rx, lot-1]", "[/usr/bin]", "[bold red]ALERT[/bold red]"]
    pq.write_table(pa.table({"id": [1, 2, 3], "text": values, "[x]": [["a", "b"], ["/c"], []]}), folder / "p.parquet")
    result = dw("query", "--lake", tmp_path / "lake", 'SELECT * FROM pp_dw_bronze.odd ORDER BY id', cwd=project_copy)
    assert_ok(result)
    for shown in [*values, "[a, b]", "[/c]", "[x]"]:
        assert shown in result.stdout, show(result)
    tables = dw("tables", "--lake", tmp_path / "lake", cwd=project_copy)
    assert_ok(tables)
    assert "[x]" in tables.stdout, show(tables)


def test_a_lake_that_is_a_file_is_refused(project_copy, tmp_path):
    lake = tmp_path / "lake.txt"
    lake.write_text("not a lake")
    for args in (("tables",), ("query", "SELECT 1"), ("runs", DATASET)):
        assert_error(dw(*args, "--lake", lake, cwd=project_copy), f"{lake} is not a folder: --lake (or DW_LAKE)")


def test_tables_and_runs_on_an_empty_lake(project_copy, tmp_path):
    lake = tmp_path / "lake"
    tables = dw("tables", "--lake", lake, cwd=project_copy)
    assert_ok(tables)
    assert f"no tables in {lake} yet" in tables.stdout
    runs = dw("runs", DATASET, "--lake", lake, cwd=project_copy)
    assert_ok(runs)
    assert "no runs of fda-nsde" in runs.stdout
    assert not lake.exists()


# ------------------------------------------------------------------ new


def test_new_scaffolds_a_valid_dataset(project_copy):
    result = dw("new", "city-bikes", "--source-url", "https://example.org/trips.csv", cwd=project_copy)
    assert_ok(result)
    assert "created datasets/city-bikes/" in result.stdout
    folder = project_copy / "datasets" / "city-bikes"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "gold", "queries", "sample"]
    for sub in ("sample", "gold", "queries"):
        assert (folder / sub).is_dir()
    config = json.loads((folder / "config.json").read_text())
    assert config["$schema"] == "../../schemas/dataset-config.schema.json"
    assert config["dataset"] == "city-bikes"
    assert config["source_url"] == "https://example.org/trips.csv"
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# city-bikes")
    assert "pp_dw_bronze.city_bikes" in readme

    validate = dw("validate", cwd=project_copy)
    assert_ok(validate)
    with_new = ", ".join(sorted([*DATASETS, "city-bikes"]))
    assert f"{len(DATASETS) + 1} dataset(s) valid: {with_new}" in validate.stdout

    again = dw("new", "city-bikes", "--source-url", "https://example.org/other.csv", cwd=project_copy)
    assert_error(again, "city-bikes already exists")
    assert json.loads((folder / "config.json").read_text()) == config


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        ("Bad_Name", "https://example.org/x.csv", "is not a dataset name"),
        ("local-file", "data/x.csv", "source_url: file 'data/x.csv' not found"),
        (
            "d" * 50,
            "https://example.org/x.csv",
            "EventBridge rule name 'pp-dw-failures-" + "d" * 50 + "' 65 characters",
        ),
    ],
)
def test_new_refuses_an_invalid_dataset_and_leaves_nothing(project_copy, name, source, message):
    before = sorted(p.name for p in (project_copy / "datasets").iterdir())
    result = dw("new", name, "--source-url", source, cwd=project_copy)
    assert_error(result, "the new dataset would not be valid", message)
    assert sorted(p.name for p in (project_copy / "datasets").iterdir()) == before


# ------------------------------------------------------------------ JSON Schema


def test_published_schemas_match_the_models():
    from dw.project import SCHEMAS, json_schema

    for file_name, model in SCHEMAS.items():
        published = json.loads((ROOT / "schemas" / file_name).read_text())
        assert published == json_schema(model), f"schemas/{file_name} is stale: run `dw schema`"
    assert set(SCHEMAS) == {"dataset-config.schema.json", "core-config.schema.json"}


def test_dw_schema_regenerates_the_published_files(project_copy):
    result = dw("schema", cwd=project_copy)
    assert_ok(result)
    for name in ("dataset-config.schema.json", "core-config.schema.json"):
        assert (project_copy / "schemas" / name).read_text() == (ROOT / "schemas" / name).read_text()


def _validator(file_name: str):
    import jsonschema

    schema = json.loads((ROOT / "schemas" / file_name).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("config", sorted(ROOT.glob("datasets/*/config.json")), ids=lambda p: p.parent.name)
def test_shipped_dataset_configs_follow_the_schema(config):
    data = json.loads(config.read_text())
    errors = [e.message for e in _validator("dataset-config.schema.json").iter_errors(data)]
    assert errors == []
    assert (config.parent / data["$schema"]).resolve() == ROOT / "schemas" / "dataset-config.schema.json"


def test_core_config_follows_the_schema():
    data = json.loads((ROOT / "config.json").read_text())
    assert [e.message for e in _validator("core-config.schema.json").iter_errors(data)] == []
    assert (ROOT / data["$schema"]).resolve() == ROOT / "schemas" / "core-config.schema.json"


def test_dataset_schema_rejects_an_unknown_key():
    data = json.loads((ROOT / "datasets" / DATASET / "config.json").read_text())
    data["colums"] = {}
    errors = [e.message for e in _validator("dataset-config.schema.json").iter_errors(data)]
    assert any("colums" in e for e in errors), errors


# ------------------------------------------------------------------ a good run, end to end


def test_run_sample_succeeds(pipeline):
    result = pipeline.good
    assert_ok(result)
    assert f"fda-nsde bronze run {RUN_ID}: succeeded" in result.stdout
    outcome = line_with(result.stdout, f"fda-nsde bronze run {RUN_ID} succeeded:")
    assert "243 rows in, 240 kept, 3 rejected" in outcome
    assert "at bronze/fda_nsde/" in outcome
    assert "first bronze run" in result.stdout
    assert "  aws glue start-crawler --name pp-dw-bronze-fda-nsde-crawler" in result.stdout.splitlines()


def test_run_writes_bronze_parquet(pipeline):
    pipeline.good  # noqa: B018
    bronze = pipeline.good_lake / "bronze" / "fda_nsde"
    files = sorted(bronze.rglob("*"))
    assert files, lake_files(pipeline.good_lake)
    assert all(f.suffix == ".parquet" for f in files if f.is_file()), files  # no _SUCCESS or .crc litter
    import pyarrow.parquet as pq

    assert pq.read_table(bronze).num_rows == 240


def test_run_quarantines_the_rejected_rows(pipeline):
    pipeline.good  # noqa: B018
    quarantine = pipeline.good_lake / "quarantine" / DATASET / f"run_id={RUN_ID}"
    assert list(quarantine.glob("*.parquet")), lake_files(pipeline.good_lake)
    import pyarrow.parquet as pq

    assert pq.read_table(quarantine).num_rows == 3


def test_run_keeps_the_raw_file_byte_for_byte(pipeline):
    pipeline.good  # noqa: B018
    raw = pipeline.good_lake / "raw" / DATASET / f"run_id={RUN_ID}" / SAMPLE.name
    assert raw.read_bytes() == SAMPLE.read_bytes()


def test_run_writes_its_summary_and_cleans_staging(pipeline):
    pipeline.good  # noqa: B018
    summary = json.loads((pipeline.good_lake / "runs" / DATASET / f"run_id={RUN_ID}.json").read_text())
    assert summary["status"] == "succeeded"
    assert summary["run_id"] == RUN_ID
    assert summary["layer"] == "bronze"
    assert (summary["rows_in"], summary["rows_kept"], summary["rows_rejected"]) == (243, 240, 3)
    assert sum(summary["rejected_by_reason"].values()) == 3
    assert summary["raw_keys"] == [f"raw/fda-nsde/run_id={RUN_ID}/{SAMPLE.name}"]
    assert summary["crawler_command"] == "aws glue start-crawler --name pp-dw-bronze-fda-nsde-crawler"
    assert summary["error"] is None
    files = lake_files(pipeline.good_lake)
    assert not [f for f in files if f.startswith("staging/")], files
    assert {f.split("/")[0] for f in files} == {"bronze", "etl", "ops", "quarantine", "raw", "runs"}


def test_query_csv(pipeline):
    pipeline.good  # noqa: B018
    result = dw("query", "--lake", pipeline.good_lake, "--format", "csv", COUNT_SQL, cwd=pipeline.good_project)
    assert_ok(result)
    assert result.stdout == "n\n240\n"


def test_query_json(pipeline):
    pipeline.good  # noqa: B018
    result = dw("query", "--lake", pipeline.good_lake, "--format", "json", COUNT_SQL, cwd=pipeline.good_project)
    assert_ok(result)
    assert json.loads(result.stdout) == [{"n": 240}]


def test_query_table_with_the_lake_from_dw_lake(pipeline):
    pipeline.good  # noqa: B018
    result = dw("query", COUNT_SQL, cwd=pipeline.good_project, DW_LAKE=str(pipeline.good_lake))
    assert_ok(result)
    assert "│ 240 " in result.stdout
    assert "1 row(s)" in result.stdout


def test_query_file(pipeline):
    pipeline.good  # noqa: B018
    demo = Path("datasets") / DATASET / "queries" / "demo.sql"
    result = dw("query", "--lake", pipeline.good_lake, "--format", "csv", "--file", demo, cwd=pipeline.good_project)
    assert_ok(result)
    header, *rows = result.stdout.splitlines()
    assert header == "marketing_category,packages,first_start,last_start"
    assert rows
    assert 0 < sum(int(row.split(",")[1]) for row in rows) <= 240


def test_query_unknown_table_lists_the_tables(pipeline):
    pipeline.good  # noqa: B018
    result = dw("query", "--lake", pipeline.good_lake, "SELECT * FROM pp_dw_bronze.nope", cwd=pipeline.good_project)
    assert_error(result, "table pp_dw_bronze.nope does not exist", "tables: pp_dw_bronze.fda_nsde")


def test_tables(pipeline):
    pipeline.good  # noqa: B018
    result = dw("tables", "--lake", pipeline.good_lake, cwd=pipeline.good_project)
    assert_ok(result)
    row = line_with(result.stdout, "pp_dw_bronze.fda_nsde")
    assert [cell.strip() for cell in row.strip("│ ").split("│")][2] == "240", row
    assert "marketing_start_date date" in result.stdout


def test_runs(pipeline):
    pipeline.good  # noqa: B018
    result = dw("runs", DATASET, "--lake", pipeline.good_lake, cwd=pipeline.good_project)
    assert_ok(result)
    row = line_with(result.stdout, RUN_ID)
    assert "bronze" in row
    assert "succeeded" in row
    assert "│ 243 " in row and "│ 240 " in row


def test_list_shows_the_last_run(pipeline):
    pipeline.good  # noqa: B018
    result = dw("list", "--lake", pipeline.good_lake, cwd=pipeline.good_project)
    assert_ok(result)
    assert f"{RUN_ID} bronze succeeded" in line_with(result.stdout, "│ fda-nsde ")
    for name in DATASETS:
        if name != DATASET:
            assert "never" in line_with(result.stdout, f"│ {name} "), result.stdout


# ------------------------------------------------------------------ raw only, then bronze from the kept raw run


def test_layer_raw_writes_only_raw(pipeline):
    assert_ok(pipeline.raw)
    raw_key = f"raw/fda-nsde/run_id={RAW_RUN_ID}/{SAMPLE.name}"
    assert "1 file(s), 23625 bytes under" in pipeline.raw.stdout
    assert raw_key in pipeline.raw_files
    # Besides the raw file: the job config `dw run` mirrors, perhaps a ledger entry; no bronze, quarantine, staging.
    # The run history's row (ops/runs/) is written for every run and layer, raw included.
    kept = ("etl/fda-nsde/", "runs/fda-nsde/", "ops/runs/fda-nsde.")
    manifest = f"raw/fda-nsde/run_id={RAW_RUN_ID}/_manifest.json"  # closes the fetched run: it may be replayed
    assert (pipeline.raw_lake / manifest).is_file()
    others = [f for f in pipeline.raw_files if f not in (raw_key, manifest) and not f.startswith(kept)]
    assert others == [], pipeline.raw_files
    assert (pipeline.raw_lake / raw_key).read_bytes() == SAMPLE.read_bytes()


def test_bronze_rerun_from_a_kept_raw_run(pipeline):
    result = pipeline.rerun
    assert_ok(result)
    assert "243 rows in, 240 kept, 3 rejected" in line_with(result.stdout, f"run {RERUN_ID} succeeded:")
    summary = json.loads((pipeline.raw_lake / "runs" / DATASET / f"run_id={RERUN_ID}.json").read_text())
    assert summary["status"] == "succeeded"
    assert summary["raw_run_id"] == RAW_RUN_ID
    assert summary["raw_keys"] == [f"raw/fda-nsde/run_id={RAW_RUN_ID}/{SAMPLE.name}"]
    assert not (pipeline.raw_lake / "raw" / DATASET / f"run_id={RERUN_ID}").exists()
    count = dw("query", "--lake", pipeline.raw_lake, "--format", "csv", COUNT_SQL, cwd=pipeline.raw_project)
    assert_ok(count)
    assert count.stdout == "n\n240\n"


def test_a_sample_run_on_the_short_run_jvm_writes_what_a_default_jvm_writes(pipeline):
    """The good run (`--sample`: a JVM with the quick compiler only) and the re-run of the same zip (no
    `--sample`: the default JVM) publish the same rows, types and quarantine, and the same figures."""
    assert_ok(pipeline.good)
    assert_ok(pipeline.rerun)
    varying = ["meta_run_id", "meta_ingested_at"]

    def table(folder: Path) -> tuple[object, list[str]]:
        data = pq.read_table(folder).drop(varying)
        return data.schema, sorted(json.dumps(row, default=str, sort_keys=True) for row in data.to_pylist())

    assert table(pipeline.good_lake / "bronze" / "fda_nsde") == table(pipeline.raw_lake / "bronze" / "fda_nsde")
    good_quarantine = pipeline.good_lake / "quarantine" / DATASET / f"run_id={RUN_ID}"
    assert table(good_quarantine) == table(pipeline.raw_lake / "quarantine" / DATASET / f"run_id={RERUN_ID}")
    good = json.loads((pipeline.good_lake / "runs" / DATASET / f"run_id={RUN_ID}.json").read_text())
    rerun = json.loads((pipeline.raw_lake / "runs" / DATASET / f"run_id={RERUN_ID}.json").read_text())
    for figure in ("rows_in", "rows_kept", "rows_rejected", "rejected_by_reason", "schema", "output_files"):
        assert good[figure] == rerun[figure], figure


# ------------------------------------------------------------------ a run that fails its quality check


def test_failed_run_says_why_in_one_paragraph(pipeline):
    result = pipeline.failed
    assert "Traceback" not in result.stderr + result.stdout, show(result)
    reason = line_with(result.stdout, f"fda-nsde bronze run {FAILED_RUN_ID} failed:")
    assert "3 of 243 rows rejected" in reason
    assert "quality.max_rejected_fraction" in reason
    assert "bronze keeps its previous data" in reason
    assert f"quarantine/fda-nsde/run_id={FAILED_RUN_ID}/" in reason
    assert "aws glue start-crawler" not in result.stdout


def test_failed_run_exits_1(pipeline):
    assert pipeline.failed.returncode == 1, show(pipeline.failed)


def test_failed_run_leaves_bronze_byte_identical(pipeline):
    pipeline.failed  # noqa: B018
    assert pipeline.bronze_before, "the good run left no bronze to protect"
    assert file_bytes(pipeline.failed_lake / "bronze" / "fda_nsde") == pipeline.bronze_before
    count = dw("query", "--lake", pipeline.failed_lake, "--format", "csv", COUNT_SQL, cwd=pipeline.failed_project)
    assert count.stdout == "n\n240\n", show(count)


def test_failed_run_is_in_the_ledger(pipeline):
    pipeline.failed  # noqa: B018
    summary = json.loads((pipeline.failed_lake / "runs" / DATASET / f"run_id={FAILED_RUN_ID}.json").read_text())
    assert summary["status"] == "failed"
    assert "max_rejected_fraction" in summary["error"]
    assert summary["traceback"] is None
    assert list((pipeline.failed_lake / "quarantine" / DATASET / f"run_id={FAILED_RUN_ID}").glob("*.parquet"))
    assert not (pipeline.failed_lake / "staging").exists() or not lake_files(pipeline.failed_lake / "staging")

    runs = dw("runs", DATASET, "--lake", pipeline.failed_lake, cwd=pipeline.failed_project)
    assert_ok(runs)
    assert "failed" in line_with(runs.stdout, FAILED_RUN_ID)
    assert "succeeded" in line_with(runs.stdout, RUN_ID)
    assert runs.stdout.index(FAILED_RUN_ID) < runs.stdout.index(RUN_ID)  # newest first
    listing = dw("list", "--lake", pipeline.failed_lake, cwd=pipeline.failed_project)
    assert f"{FAILED_RUN_ID} bronze failed" in line_with(listing.stdout, "│ fda-nsde ")


# ------------------------------------------------------------------ runs that meet each other, die, or read bad files


def ledger_entries(lake: Path) -> dict[str, dict]:
    folder = lake / "runs" / DATASET
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("run_id=*.json"))}


def test_two_runs_at_once_one_refuses_clearly(project_copy, tmp_path):
    lake = tmp_path / "lake"
    runs = [Background("run", DATASET, "--sample", "--lake", lake, cwd=project_copy) for _ in range(2)]
    try:
        results = [run.wait() for run in runs]
    finally:
        for run in runs:
            run.stop()
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], "\n".join(map(show, results))
    ok, refused = sorted(results, key=lambda r: r.returncode)
    assert_ok(ok)
    assert_error(
        refused,
        f"another run of {DATASET} (run id 20",
        f"holds the lock; wait for it or remove runs/{DATASET}/_lock.json if it died",
    )
    assert "at org.apache" not in refused.stderr
    # The ledger and bronze agree: one run, and it is the one that wrote bronze.
    entries = ledger_entries(lake)
    assert [e["status"] for e in entries.values()] == ["succeeded"], entries
    import pyarrow.parquet as pq

    table = pq.read_table(lake / "bronze" / "fda_nsde")
    assert table.num_rows == 240
    assert set(table.column("meta_run_id").to_pylist()) == {next(iter(entries.values()))["run_id"]}
    assert not (lake / "runs" / DATASET / "_lock.json").exists()


def test_a_killed_run_is_listed_as_incomplete_and_its_lock_taken_over(project_copy, tmp_path):
    import time

    lake = tmp_path / "lake"
    killed_id = "20260105T000000Z"
    raw = lake / "raw" / DATASET / f"run_id={killed_id}" / SAMPLE.name
    manifest = raw.parent / "_manifest.json"  # written once the fetch has landed every file
    run = Background("run", DATASET, "--sample", "--lake", lake, "--run-id", killed_id, cwd=project_copy)
    try:
        deadline = time.monotonic() + SPARK_TIMEOUT
        while not (raw.is_file() and manifest.is_file()):
            assert run.proc.poll() is None, show(run.wait())
            assert time.monotonic() < deadline, "the run never landed its raw file"
            time.sleep(0.02)
    finally:
        run.stop()  # SIGKILL to the whole process group: no `finally` of ours runs
    assert ledger_entries(lake)[f"run_id={killed_id}.json"]["status"] == "running"
    assert (lake / "runs" / DATASET / "_lock.json").exists()

    listing = dw("runs", DATASET, "--lake", lake, cwd=project_copy)
    assert_ok(listing)
    assert "incomplete" in line_with(listing.stdout, f"│ {killed_id}")
    advice = line_with(listing.stdout, f"  {killed_id} bronze:")
    assert f"dw run {DATASET} --raw-run-id {killed_id}" in advice
    assert f"delete raw/{DATASET}/run_id={killed_id}/" in advice

    replay = dw("run", DATASET, "--raw-run-id", killed_id, "--layer", "bronze", "--lake", lake, cwd=project_copy,
                timeout=SPARK_TIMEOUT)  # fmt: skip
    assert_ok(replay)
    assert f"took over the lock of run {killed_id}" in replay.stdout
    assert "243 rows in, 240 kept, 3 rejected" in replay.stdout


def _gzip_truncated(folder: Path) -> str:
    import gzip
    import zipfile

    with zipfile.ZipFile(SAMPLE) as archive:
        text = archive.read(archive.namelist()[0])
    header, _, body = text.partition(b"\n")
    data = gzip.compress(header + b"\n" + body * 40)
    (folder / "nsde.csv.gz").write_bytes(data[: len(data) // 2])
    return "nsde.csv.gz"


def _parquet_damaged(folder: Path) -> str:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"ndc11": [str(i) for i in range(2000)]}), buffer)
    data = buffer.getvalue()
    (folder / "nsde.parquet").write_bytes(data[:4] + b"\0" * 200 + data[204:])
    return "nsde.parquet"


def _as_parquet(config: dict) -> None:
    config.update(format="parquet", columns={}, primary_key=[])
    config.pop("csv", None)
    config.pop("quality", None)


@pytest.mark.parametrize(
    ("make", "change", "cause", "debug"),
    [
        (_gzip_truncated, lambda c: None, "truncated", False),
        (_parquet_damaged, _as_parquet, "not readable Parquet", False),
        (_parquet_damaged, _as_parquet, "not readable Parquet", True),
    ],
    ids=["truncated-gzip", "damaged-parquet", "damaged-parquet-debug"],
)
def test_a_file_spark_cannot_read_fails_in_one_paragraph(project_copy, tmp_path, make, change, cause, debug):
    sample = project_copy / "datasets" / DATASET / "sample"
    shutil.rmtree(sample)
    sample.mkdir()
    name = make(sample)
    edit_config(project_copy, DATASET, change)
    lake = tmp_path / "lake"
    run_id = "20260106T000000Z"
    args = ["--debug"] if debug else []
    result = dw(*args, "run", DATASET, "--sample", "--lake", lake, "--run-id", run_id, cwd=project_copy,
                timeout=SPARK_TIMEOUT)  # fmt: skip
    assert result.returncode == 1, show(result)
    message = line_with(result.stdout, f"{DATASET} bronze run {run_id} failed:")
    assert len(message) <= 700, message
    assert f"raw/{DATASET}/run_id={run_id}/{name}" in message
    assert cause in message
    assert "at org.apache" not in result.stdout
    entry = ledger_entries(lake)[f"run_id={run_id}.json"]
    assert "at org.apache" not in entry["error"]
    if name.endswith(".parquet"):  # Spark meets the damage; a truncated .gz is caught before it is opened
        assert "at org.apache" in entry["traceback"]
    if debug:
        assert "at org.apache" in result.stderr  # --debug: the whole trace
    else:
        assert "at org.apache" not in result.stderr, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
