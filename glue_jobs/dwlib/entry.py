"""From resolved job arguments to a finished run: shared by the Glue entry points."""

from __future__ import annotations

from pyspark.sql import SparkSession

from dwlib import bronze, gold, jobs, ledger
from dwlib.lake import Lake
from dwlib.secrets import SecretsManagerSecrets


class JobRunFailed(RuntimeError):
    """Raised on Glue so the job run, and the pipeline, are marked FAILED with the reason."""


def job_context(args: dict[str, str]) -> bronze.JobContext:
    lake = Lake.from_uri(args["lake_uri"])
    core, dataset = jobs.load_job_config(lake, args["dataset"])
    return bronze.JobContext(
        core=core,
        dataset=dataset,
        lake=lake,
        run_id=jobs.resolve_run_id(args.get("run_id")),
        raw_run_id=jobs.optional(args.get("raw_run_id")),
        auto_run_id=args.get("run_id") in (None, "", jobs.AUTO),
        secrets=SecretsManagerSecrets(),  # read only when the source needs a secret, with the job's role
    )


def run_bronze_job(spark: SparkSession, args: dict[str, str]) -> int:
    ctx = job_context(args)
    if jobs.is_dry_run(args):
        print("\n".join(bronze.plan(ctx)))
        return 0
    try:
        summary = bronze.run_bronze(jobs.configure(spark), ctx)
    except ledger.RunRefused as exc:  # another run holds the lock, or the run id is taken: nothing written
        raise JobRunFailed(str(exc)) from None
    print(bronze.describe_outcome(summary))
    if summary.status != "succeeded":
        raise JobRunFailed(summary.error)
    return 0


def deployed_models(ctx: bronze.JobContext) -> dict[str, str]:
    """The dataset's models as the stack deployed them: etl/{dataset}/gold/*.sql."""
    prefix = f"{ctx.naming.etl_prefix(ctx.name)}gold/"
    return {
        obj.key[len(prefix) : -len(".sql")]: ctx.lake.read_bytes(obj.key).decode("utf-8")
        for obj in ctx.lake.list(prefix)
        if obj.key.endswith(".sql") and "/" not in obj.key[len(prefix) :]
    }


def run_gold_job(spark: SparkSession, args: dict[str, str]) -> int:
    ctx = job_context(args)
    models = deployed_models(ctx)
    if jobs.is_dry_run(args):
        print(f"plan for {ctx.name} gold run {ctx.run_id} (dry run): models {', '.join(sorted(models)) or 'none'}")
        return 0
    try:
        summary = gold.run_gold(jobs.configure(spark), ctx, models)
    except ledger.RunRefused as exc:
        raise JobRunFailed(str(exc)) from None
    print(gold.describe_gold(summary))
    if summary.status != "succeeded":
        raise JobRunFailed(summary.error)
    return 0
