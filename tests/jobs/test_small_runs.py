"""What a small bronze run costs in Spark jobs (each a fixed start-up cost far above its data) and files.

Counted per run with a job group of its own on the shared local[1] session; the figures are what a user
pays on every small dataset, so a bookkeeping job creeping back in fails here.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dwlib import bronze
from dwlib.config import DatasetConfig
from dwlib.lake import LocalLake

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
RUN = "20300101T000000Z"
_groups = itertools.count()


def counted_run(spark, ctx: bronze.JobContext) -> tuple[bronze.RunSummary, int]:
    """run_bronze, and the number of Spark jobs it launched."""
    group = f"small-run-{next(_groups)}"
    sc = spark.sparkContext
    sc.setJobGroup(group, "counted bronze run")
    try:
        summary = bronze.run_bronze(spark, ctx)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    return summary, len(sc.statusTracker().getJobIdsForGroup(group))


def parquet_files(lake: LocalLake, prefix: str) -> list[Path]:
    return sorted(lake.path(prefix).glob("*.parquet"))


def test_the_demo_sample_is_two_spark_jobs_and_one_file(spark, core, tmp_path):
    """243 rows, 3 rejected: one job writes bronze, one the quarantine (its reasons counted on the way)."""
    config = DatasetConfig.model_validate(json.loads((ROOT / "datasets/fda-nsde/config.json").read_text()))
    lake = LocalLake(tmp_path / "lake")
    ctx = bronze.JobContext(
        core=core, dataset=config, lake=lake, run_id=RUN, sample_dir=ROOT / "datasets/fda-nsde/sample"
    )
    summary, jobs = counted_run(spark, ctx)
    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (243, 240, 3)
    assert summary.rejected_by_reason == {
        "duplicate primary key": 1,
        "marketing_start_date: not a valid date:yyyyMMdd": 1,
        "ndc11: primary key is null": 1,
    }
    assert jobs <= 2
    assert summary.output_files == 1 and len(parquet_files(lake, "bronze/fda_nsde/")) == 1
    assert pq.read_table(lake.path("bronze/fda_nsde/")).num_rows == 240
    quarantine = parquet_files(lake, f"quarantine/fda-nsde/run_id={RUN}/")
    assert len(quarantine) == 1 and pq.read_table(quarantine[0]).num_rows == 3


def small_config(**extra) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {
            "dataset": "tiny",
            "description": "a small dataset",
            "data_size_category": "small",
            "landing": True,
            "format": "csv",
            "columns": {"id": "int", "n": "double", "note": "string"},  # all declared: nothing to infer
            "primary_key": ["id"],
            **extra,
        }
    )


def sample_run(spark, core, tmp_path: Path, text: str, **extra) -> tuple[bronze.RunSummary, int, LocalLake]:
    sample = tmp_path / "sample"
    shutil.rmtree(sample, ignore_errors=True)
    sample.mkdir(parents=True)
    (sample / "in.csv").write_text(text)
    lake = LocalLake(tmp_path / "lake")
    ctx = bronze.JobContext(core=core, dataset=small_config(**extra), lake=lake, run_id=RUN, sample_dir=sample)
    summary, jobs = counted_run(spark, ctx)
    return summary, jobs, lake


def test_a_small_run_with_nothing_rejected_is_one_spark_job(spark, core, tmp_path):
    text = "id,n,note\n" + "".join(f"{i},{i / 4},row {i}\n" for i in range(500))
    summary, jobs, lake = sample_run(spark, core, tmp_path, text)
    assert summary.status == "succeeded", summary.error
    assert (summary.rows_in, summary.rows_kept, summary.rows_rejected) == (500, 500, 0)
    assert jobs == 1
    assert len(parquet_files(lake, "bronze/tiny/")) == 1
    assert not lake.path(f"quarantine/tiny/run_id={RUN}").exists()


@pytest.mark.parametrize("rows", [120_000, 420_000], ids=["1.5 MB, one task", "5.5 MB, read in parallel"])
def test_a_few_megabytes_with_repeated_keys_make_one_file_and_the_same_figures(spark, core, tmp_path, rows):
    """Above the size where the checked rows are cached: still one file, the first row of a key kept."""
    keys = rows - 20_000  # the last 20,000 rows repeat the first rows' keys
    text = "id,n,note\n" + "".join(f"{i % keys},{'x' if i % 9_999 == 0 else i},row {i}\n" for i in range(rows))
    assert len(text) > bronze.RECOMPUTE_INPUT_BYTES
    summary, jobs, lake = sample_run(spark, core, tmp_path, text, quality={"max_rejected_fraction": 0.5})
    assert summary.status == "succeeded", summary.error
    bad = set(range(0, rows, 9_999))
    first_clean: set[int] = set()
    repeats = 0
    for i in range(rows):  # a clean row whose key an earlier clean row has is a repeat
        if i not in bad:
            repeats += i % keys in first_clean
            first_clean.add(i % keys)
    assert summary.rows_in == rows
    assert summary.rejected_by_reason == {"n: not a valid double": len(bad), "duplicate primary key": repeats}
    assert summary.rows_rejected == len(bad) + repeats
    if len(text) <= bronze.ONE_TASK_INPUT_BYTES:
        assert jobs <= 3  # the cache, bronze, the quarantine
    assert len(parquet_files(lake, "bronze/tiny/")) == 1
    kept = pq.read_table(lake.path("bronze/tiny/")).to_pydict()
    assert len(kept["id"]) == len(set(kept["id"])) == summary.rows_kept


CODEGEN_SETTINGS = ("spark.sql.codegen.wholeStage", "spark.sql.codegen.factoryMode")


def settings_at_writes(monkeypatch, spark) -> list[tuple[str, ...]]:
    """The codegen settings in force as each of the run's Parquet writes ran."""
    seen: list[tuple[str, ...]] = []
    write = bronze.write_parquet

    def recording(df, uri):
        seen.append(tuple(spark.conf.get(key) for key in CODEGEN_SETTINGS))
        write(df, uri)

    monkeypatch.setattr(bronze, "write_parquet", recording)
    return seen


def demo_run(spark, core, lake: LocalLake) -> bronze.RunSummary:
    config = DatasetConfig.model_validate(json.loads((ROOT / "datasets/fda-nsde/config.json").read_text()))
    ctx = bronze.JobContext(
        core=core, dataset=config, lake=lake, run_id=RUN, sample_dir=ROOT / "datasets/fda-nsde/sample"
    )
    summary = bronze.run_bronze(spark, ctx)
    assert summary.status == "succeeded", summary.error
    return summary


def table_rows(path: Path) -> list[dict]:
    rows = pq.read_table(path).drop(["meta_ingested_at"]).to_pylist()
    return sorted(rows, key=lambda row: json.dumps(row, default=str, sort_keys=True))


def test_a_one_task_input_is_checked_interpreted_with_the_same_output(spark, core, tmp_path, monkeypatch):
    """Interpreted for the run's own writes only, then the session as it was; rows, types, quarantine and
    figures exactly as with Spark's generated code."""
    before = tuple(spark.conf.get(key) for key in CODEGEN_SETTINGS)
    seen = settings_at_writes(monkeypatch, spark)
    interpreted = demo_run(spark, core, LocalLake(tmp_path / "interpreted"))
    assert seen == [tuple(bronze.INTERPRETED[key] for key in CODEGEN_SETTINGS)] * 2  # bronze, quarantine
    assert tuple(spark.conf.get(key) for key in CODEGEN_SETTINGS) == before

    monkeypatch.setattr(bronze, "INTERPRETED", {})
    seen.clear()
    compiled = demo_run(spark, core, LocalLake(tmp_path / "compiled"))
    assert seen == [before] * 2
    for figure in ("rows_in", "rows_kept", "rows_rejected", "rejected_by_reason", "schema", "output_files"):
        assert getattr(interpreted, figure) == getattr(compiled, figure), figure
    for folder in ("bronze/fda_nsde", f"quarantine/fda-nsde/run_id={RUN}"):
        with_code, without = tmp_path / "compiled" / folder, tmp_path / "interpreted" / folder
        assert pq.read_schema(next(without.glob("*.parquet"))) == pq.read_schema(next(with_code.glob("*.parquet")))
        assert table_rows(without) == table_rows(with_code)


def test_an_input_read_in_parallel_keeps_generated_code(spark, core, tmp_path, monkeypatch):
    before = tuple(spark.conf.get(key) for key in CODEGEN_SETTINGS)
    seen = settings_at_writes(monkeypatch, spark)
    text = "id,n,note\n" + "".join(f"{i},{i},row {i}\n" for i in range(420_000))
    assert len(text) > bronze.ONE_TASK_INPUT_BYTES
    summary, _, _ = sample_run(spark, core, tmp_path, text)
    assert summary.status == "succeeded", summary.error
    assert seen and set(seen) == {before}


# No primary key: a key's window (a small input's check) would hold the filter above the typing on its own.
DECIMAL_CONFIG = {
    "columns": {"id": "int", "n": "decimal(12,2)", "note": "string"},
    "primary_key": [],
    "quality": {"max_rejected_fraction": 0.9},
}
DECIMAL_TEXTS = ["12.50", " 7.25 ", "1,000.00", "3.14159", "1e3", "", "abc", "99.\ufffd", "0.10", "-4.00"]


def plans_at_writes(monkeypatch, spark) -> list[tuple[str, str | None]]:
    """Each of the run's Parquet writes: its executed plan and the optimizer rules left out as it ran."""
    seen: list[tuple[str, str | None]] = []
    write = bronze.write_parquet

    def recording(df, uri):
        plan = df._jdf.queryExecution().executedPlan().toString()
        seen.append((plan, spark.conf.get("spark.sql.optimizer.excludedRules", None)))
        write(df, uri)

    monkeypatch.setattr(bronze, "write_parquet", recording)
    return seen


def test_the_kept_write_casts_each_value_once_and_keeps_the_same_rows(spark, core, tmp_path, monkeypatch):
    """The kept rows' filter stays above the typing: a decimal typed from text is cast once a row, not once in
    the checks and again in the projection; same rows and reasons as with Spark's pushdown; session restored."""
    text = "id,n,note\n" + "".join(f"{i},{DECIMAL_TEXTS[i % len(DECIMAL_TEXTS)]!r},row {i}\n" for i in range(400))
    text = text.replace("'", '"')
    mine = "org.apache.spark.sql.catalyst.optimizer.PushProjectionThroughLimit"  # a user's own setting, kept
    spark.conf.set("spark.sql.optimizer.excludedRules", mine)
    try:
        seen = plans_at_writes(monkeypatch, spark)
        above, _, lake_above = sample_run(spark, core, tmp_path / "above", text, **DECIMAL_CONFIG)
        assert spark.conf.get("spark.sql.optimizer.excludedRules") == mine
    finally:
        spark.conf.unset("spark.sql.optimizer.excludedRules")
    kept_plan, excluded = seen[0]
    assert kept_plan.count("as decimal(12,2))") == 1, kept_plan
    assert excluded.split(",") == [mine, *bronze.FILTER_STAYS_ABOVE_TYPING]
    assert [rules for _, rules in seen[1:]] == [mine]  # the quarantine's write: the session as it was

    monkeypatch.setattr(bronze, "FILTER_STAYS_ABOVE_TYPING", ())
    seen.clear()
    pushed, _, lake_pushed = sample_run(spark, core, tmp_path / "pushed", text, **DECIMAL_CONFIG)
    assert seen[0][0].count("as decimal(12,2))") >= 2  # Spark's pushdown: in the checks, then the projection
    assert above.status == pushed.status == "succeeded", (above.error, pushed.error)
    assert (above.rows_in, above.rows_kept) == (pushed.rows_in, pushed.rows_kept) == (400, 240)
    assert above.rejected_by_reason == pushed.rejected_by_reason
    assert above.rejected_by_reason == {  # "1,000.00", "1e3", "abc"; "3.14159"; "99.\ufffd"
        "n: not a valid decimal(12,2)": 120,
        "n: decimal(12,2): more than 2 decimal places": 40,
        "n: invalid utf-8 bytes": 40,
    }
    for folder in ("bronze/tiny", f"quarantine/tiny/run_id={RUN}"):
        assert table_rows(lake_above.path(folder)) == table_rows(lake_pushed.path(folder))
