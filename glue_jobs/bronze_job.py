"""Glue entry point of the bronze job: arguments, session, then the shared library does the work.

Deployed to s3://{bucket}/etl/{dataset}/glue/bronze_job.py with dwlib.zip beside it.
Runs locally too: `python glue_jobs/bronze_job.py --dataset X --lake_uri .lake`.
"""

import sys

from dwlib.jobs import BRONZE_ARGS, parse_local


def resolved_args(argv: list[str]) -> dict[str, str]:
    try:
        from awsglue.utils import getResolvedOptions  # only on Glue
    except ImportError:
        return parse_local(BRONZE_ARGS, argv[1:])
    return getResolvedOptions(argv, list(BRONZE_ARGS))


def main(argv: list[str] | None = None) -> int:
    args = resolved_args(argv if argv is not None else sys.argv)
    from pyspark.sql import SparkSession

    from dwlib.entry import run_bronze_job

    return run_bronze_job(SparkSession.builder.getOrCreate(), args)


if __name__ == "__main__":
    main()  # a failed run raises JobRunFailed, which marks the Glue job run FAILED for the pipeline
