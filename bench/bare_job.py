"""`python -m bench.bare_job [--short-run] CSV OUT SCHEMA [NULL_VALUE] [DATE_FORMAT]`: the cold floor of a bronze run.

What a bare `spark-submit` script does with the same file: start Spark (the same `local_session()` the
`dw` command starts, so both pay the same JVM and settings), read the CSV with the declared schema (a
DDL string), write ZSTD Parquet. Nothing else: no checks, no meta columns, no ledger. `--short-run`: the
JVM options `dw run --sample` starts a small sample's JVM with (`local_session(short_run=True)`), for the
figure that shows what they save a script too.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    short_run = "--short-run" in argv
    argv = [a for a in argv if a != "--short-run"]
    csv, out, schema = argv[:3]
    null_value = argv[3] if len(argv) > 3 else ""
    date_format = argv[4] if len(argv) > 4 else "yyyy-MM-dd"
    from dwlib.jobs import local_session

    spark = local_session("pp-dw-bare", short_run=short_run)
    (
        spark.read.schema(schema)
        .option("header", True)
        .option("nullValue", null_value)
        .option("dateFormat", date_format)
        .csv(csv)
        .write.mode("overwrite")
        .option("compression", "zstd")
        .parquet(out)
    )
    # No spark.stop(), as `dw run` does not either: the JVM exits when this process does.


if __name__ == "__main__":
    main(sys.argv[1:])
