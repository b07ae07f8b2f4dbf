"""Glue entry point of the bronze job: arguments, session, then the shared library does the work.

Deployed to s3://{bucket}/etl/{dataset}/glue/bronze_job.py with dwlib.zip beside it.
Runs locally too: `python glue_jobs/bronze_job.py --dataset X --lake_uri .lake`.
"""

import sys

from dwlib import entry
from dwlib.jobs import BRONZE_ARGS


def main(argv: list[str] | None = None) -> int:
    return entry.main(entry.run_bronze_job, BRONZE_ARGS, argv if argv is not None else sys.argv)


if __name__ == "__main__":
    # A failed run raises on Glue, which marks the job run FAILED for the pipeline; locally it exits 1.
    sys.exit(main())
