"""Glue entry point of the gold job: every SQL model of the dataset, in dependency order.

Deployed to s3://{bucket}/etl/{dataset}/glue/gold_job.py with dwlib.zip beside it; the models
are deployed to etl/{dataset}/gold/*.sql. Runs locally too:
`python glue_jobs/gold_job.py --dataset X --lake_uri .lake --run_id 20261121T060000Z`.
"""

import sys

from dwlib import entry
from dwlib.jobs import GOLD_ARGS


def main(argv: list[str] | None = None) -> int:
    return entry.main(entry.run_gold_job, GOLD_ARGS, argv if argv is not None else sys.argv)


if __name__ == "__main__":
    # A failed run raises on Glue, which marks the job run FAILED for the pipeline; locally it exits 1.
    sys.exit(main())
