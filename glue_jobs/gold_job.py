"""Glue entry point of the gold job: every SQL model of the dataset, in dependency order.

Deployed to s3://{bucket}/etl/{dataset}/glue/gold_job.py with dwlib.zip beside it; the models
are deployed to etl/{dataset}/gold/*.sql. Runs locally too:
`python glue_jobs/gold_job.py --dataset X --lake_uri .lake --run_id 20261121T060000Z`.
"""

import sys

from dwlib.jobs import GOLD_ARGS, parse_local


def resolved_args(argv: list[str]) -> dict[str, str]:
    try:
        from awsglue.utils import getResolvedOptions  # only on Glue
    except ImportError:
        return parse_local(GOLD_ARGS, argv[1:])
    return getResolvedOptions(argv, list(GOLD_ARGS))


def main(argv: list[str] | None = None) -> int:
    args = resolved_args(argv if argv is not None else sys.argv)
    from pyspark.sql import SparkSession

    from dwlib.entry import run_gold_job

    return run_gold_job(SparkSession.builder.getOrCreate(), args)


if __name__ == "__main__":
    main()
