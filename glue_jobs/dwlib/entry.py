"""From resolved job arguments to a finished run: shared by the Glue entry points."""

from __future__ import annotations

from pyspark.sql import SparkSession

from dwlib import bronze, jobs
from dwlib.lake import Lake


class JobRunFailed(RuntimeError):
    """Raised on Glue so the job run, and the pipeline, are marked FAILED with the reason."""


def bronze_context(args: dict[str, str]) -> bronze.JobContext:
    lake = Lake.from_uri(args["lake_uri"])
    core, dataset = jobs.load_job_config(lake, args["dataset"])
    return bronze.JobContext(
        core=core,
        dataset=dataset,
        lake=lake,
        run_id=jobs.resolve_run_id(args.get("run_id")),
        raw_run_id=jobs.optional(args.get("raw_run_id")),
    )


def run_bronze_job(spark: SparkSession, args: dict[str, str]) -> int:
    ctx = bronze_context(args)
    if jobs.is_dry_run(args):
        print("\n".join(bronze.plan(ctx)))
        return 0
    summary = bronze.run_bronze(jobs.configure(spark), ctx)
    print(bronze.describe_outcome(summary))
    if summary.status != "succeeded":
        raise JobRunFailed(summary.error)
    return 0
