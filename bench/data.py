"""Generated inputs: the orders CSV (DuckDB, deterministic), its dataset config, the fetch file.

Everything lands under bench/work/ (git-ignored) and is reused by later runs of the same size.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import MB, MIB, WORK, log

GENERATOR_VERSION = 1
BYTES_PER_ROW = 95.5  # measured average of the rows below; sets the row count for a target size
NULL_EVERY = 20  # one value in 20 is null (5 %), per nullable column

# (header in the CSV, cleaned name, dataset config type, DuckDB type, DuckDB expression over row number i)
COLUMNS: list[tuple[str, str, str, str, str]] = [
    ("Order ID", "order_id", "bigint", "BIGINT", "i"),
    (
        "CustomerCode",
        "customer_code",
        "string",
        "VARCHAR",
        "'C' || lpad(CAST(h(i, 1) % 500000 AS VARCHAR), 7, '0')",
    ),
    (
        "Customer Name",
        "customer_name",
        "string",
        "VARCHAR",
        "(['Acme Corp', 'Globex', 'Initech', 'Umbrella', 'Stark Industries', 'Wayne Enterprises', 'Soylent', "
        "'Hooli', 'Vandelay Industries', 'Tyrell'])[1 + h(i, 3) % 10] || ' ' || CAST(h(i, 4) % 1000 AS VARCHAR)",
    ),
    ("Region", "region", "string", "VARCHAR", "(['EU', 'US', 'APAC', 'LATAM', 'MEA'])[1 + h(i, 6) % 5]"),
    (
        "Order Date",
        "order_date",
        "date:yyyyMMdd",
        "DATE",
        "strftime(DATE '2015-01-01' + CAST(h(i, 8) % 3650 AS INTEGER), '%Y%m%d')",
    ),
    (
        "Ship Date",
        "ship_date",
        "date:yyyyMMdd",
        "DATE",
        "strftime(DATE '2015-01-01' + CAST(h(i, 10) % 3700 AS INTEGER), '%Y%m%d')",
    ),
    ("Amount", "amount", "decimal(12,2)", "DECIMAL(12,2)", "CAST((h(i, 12) % 10000000) / 100.0 AS DECIMAL(12,2))"),
    ("Quantity", "quantity", "int", "INTEGER", "CAST(h(i, 14) % 500 AS INTEGER)"),
    ("Is Priority", "is_priority", "boolean", "BOOLEAN", "h(i, 16) % 2 = 0"),
    ("StoreId", "store_id", "int", "INTEGER", "CAST(h(i, 18) % 100000 AS INTEGER)"),
    (
        "Notes",
        "notes",
        "string",
        "VARCHAR",
        "md5(CAST(i AS VARCHAR))[1:12] || ' ' || (['fragile', 'express', 'gift wrap', 'standard', 'bulk'])"
        "[1 + h(i, 20) % 5]",
    ),
]
DATASET = "bench-orders"
CSV_NAME = "orders.csv"


def duckdb_columns() -> str:
    """The `columns={...}` argument of DuckDB's read_csv: the same explicit types the config declares."""
    return "{" + ", ".join(f"'{header}': '{duck}'" for header, _, _, duck, _ in COLUMNS) + "}"


def dataset_config(source_url: str = CSV_NAME) -> dict[str, Any]:
    """The bench dataset: every column's type declared, so bronze infers nothing."""
    return {
        "dataset": DATASET,
        "description": "Generated orders for the benchmark suite",
        "data_size_category": "medium",
        "source_url": source_url,
        "format": "csv",
        "columns": {name: ctype for _, name, ctype, _, _ in COLUMNS},
    }


def _manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _generated(path: Path, manifest: Path, wanted: dict[str, Any]) -> int | None:
    """The size of a file generated earlier with the same generator and rows, or None to make it again."""
    known = _manifest(manifest)
    if (
        known
        and {k: known.get(k) for k in wanted} == wanted
        and path.exists()
        and path.stat().st_size == known["bytes"]
    ):
        return known["bytes"]
    return None


def _write_rows(path: Path, selects: list[str], rows: int, options: str = "") -> int:
    """Write rows 0..rows-1 of the SELECT list as a CSV with DuckDB (`h(i, salt)`: a per-column hash),
    atomically: the file appears whole or not at all. Returns its size."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("CREATE MACRO h(i, s) AS CAST(hash(i, s) % 1000000007 AS BIGINT)")
        tmp = path.with_name(f".{path.name}.tmp")
        con.execute(
            f"COPY (SELECT {', '.join(selects)} FROM range({rows}) t(i) ORDER BY i) "
            f"TO '{tmp}' (FORMAT csv, HEADER, DELIMITER ','{', ' + options if options else ''})"
        )
    finally:
        con.close()
    os.replace(tmp, path)
    return path.stat().st_size


def orders_csv(size_mb: float) -> tuple[Path, int, int]:
    """A CSV of about size_mb MB (10^6 bytes): (path, bytes, rows). Generated once per size."""
    rows = max(1000, round(size_mb * MB / BYTES_PER_ROW))
    folder = WORK / "data" / f"orders-{rows}"
    path, manifest = folder / CSV_NAME, folder / "manifest.json"
    wanted = {"generator": GENERATOR_VERSION, "rows": rows}
    if (size := _generated(path, manifest, wanted)) is not None:
        return path, size, rows

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"generating {rows:,} rows of CSV (~{size_mb:g} MB) with DuckDB into {path.relative_to(WORK.parent.parent)}")
    started = time.perf_counter()
    selects = []
    for header, _, _, _, expression in COLUMNS:
        if header == "Order ID":
            selects.append(f'{expression} AS "{header}"')
        else:  # ~5 % nulls, independently per column
            salt = 100 + len(selects)
            selects.append(f'CASE WHEN h(i, {salt}) % {NULL_EVERY} = 0 THEN NULL ELSE {expression} END AS "{header}"')
    size = _write_rows(path, selects, rows)
    manifest.write_text(json.dumps({**wanted, "bytes": size, "columns": [c[1] for c in COLUMNS]}))
    log(f"generated {size / MB:.1f} MB in {time.perf_counter() - started:.1f} s")
    return path, size, rows


def head_csv(source: Path, target: Path, size_bytes: int) -> Path:
    """The first whole lines of a CSV (header included) up to about size_bytes: a warm-up input."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, open(target, "wb") as out:
        out.writelines(src.readlines(size_bytes))
    return target


def link_or_copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def fetch_file(size_mib: int) -> Path:
    """A file of exactly size_mib MiB of CSV-like text for the loopback download (content is irrelevant)."""
    folder = WORK / "fetch" / "serve"
    path = folder / f"blob-{size_mib}MiB.csv"
    if path.exists() and path.stat().st_size == size_mib * MIB:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("blob-*"):
        old.unlink()
    log(f"writing a {size_mib} MiB file to serve over loopback")
    lines = b"".join(
        f"{i},C{i * 7919 % 500000:07d},Customer {i % 1000},EU,20240101,20240105,{i % 99991 / 100:.2f},"
        f"{i % 500},true,{i % 100000},note {i:08x}\n".encode()
        for i in range(40_000)
    )
    block = (lines * (MIB // len(lines) + 2))[:MIB]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        for _ in range(size_mib):
            out.write(block)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ wide, real-shaped data

# Shaped like a real operational dataset (nycflights13's `flights`): 19 columns, most of them integers
# and doubles, nulls spelled `NA`, a timestamp. (column, dataset config type, DuckDB type, expression)
WIDE_COLUMNS: list[tuple[str, str, str, str]] = [
    ("year", "int", "INTEGER", "2013"),
    ("month", "int", "INTEGER", "1 + h(i, 1) % 12"),
    ("day", "int", "INTEGER", "1 + h(i, 2) % 28"),
    ("dep_time", "int", "INTEGER", "h(i, 3) % 2400"),
    ("sched_dep_time", "int", "INTEGER", "500 + h(i, 4) % 1900"),
    ("dep_delay", "double", "DOUBLE", "CAST(h(i, 5) % 120 - 20 AS DOUBLE)"),
    ("arr_time", "int", "INTEGER", "h(i, 6) % 2400"),
    ("sched_arr_time", "int", "INTEGER", "h(i, 7) % 2400"),
    ("arr_delay", "double", "DOUBLE", "CAST(h(i, 8) % 150 - 40 AS DOUBLE)"),
    ("carrier", "string", "VARCHAR", "(['UA', 'AA', 'B6', 'DL', 'EV', 'MQ', 'US', 'WN'])[1 + h(i, 9) % 8]"),
    ("flight", "int", "INTEGER", "1 + h(i, 10) % 6000"),
    ("tailnum", "string", "VARCHAR", "'N' || CAST(100 + h(i, 11) % 900 AS VARCHAR) || 'UA'"),
    ("origin", "string", "VARCHAR", "(['EWR', 'LGA', 'JFK'])[1 + h(i, 12) % 3]"),
    ("dest", "string", "VARCHAR", "(['IAH', 'MIA', 'BQN', 'ATL', 'ORD', 'FLL', 'IAD', 'MCO'])[1 + h(i, 13) % 8]"),
    ("air_time", "double", "DOUBLE", "CAST(20 + h(i, 14) % 600 AS DOUBLE)"),
    ("distance", "double", "DOUBLE", "CAST(80 + h(i, 15) % 4900 AS DOUBLE)"),
    ("hour", "double", "DOUBLE", "CAST(5 + h(i, 16) % 19 AS DOUBLE)"),
    ("minute", "double", "DOUBLE", "CAST(h(i, 17) % 60 AS DOUBLE)"),
    (
        "time_hour",
        "timestamp",
        "TIMESTAMP",
        "TIMESTAMP '2013-01-01 05:00:00' + to_hours(CAST(h(i, 18) % 8760 AS BIGINT))",
    ),
]
WIDE_NULLABLE = {"dep_time", "dep_delay", "arr_time", "arr_delay", "tailnum", "air_time"}  # ~3 % NA each
WIDE_DATASET = "bench-flights"
WIDE_CSV = "flights.csv"
WIDE_BYTES_PER_ROW = 103.0  # measured average; sets the row count for a target size


def wide_config(source_url: str = WIDE_CSV) -> dict[str, Any]:
    """The wide dataset: every column declared, `NA` as the null marker, as the real file spells it."""
    return {
        "dataset": WIDE_DATASET,
        "description": "Generated flights-shaped rows for the benchmark suite",
        "data_size_category": "medium",
        "source_url": source_url,
        "format": "csv",
        "csv": {"null_values": ["", "NA"]},
        "columns": {name: ctype for name, ctype, _, _ in WIDE_COLUMNS},
    }


def wide_duckdb_columns() -> str:
    return "{" + ", ".join(f"'{name}': '{duck}'" for name, _, duck, _ in WIDE_COLUMNS) + "}"


def wide_csv(size_mb: float) -> tuple[Path, int, int]:
    """A flights-shaped CSV of about size_mb MB: (path, bytes, rows). Generated once per size."""
    rows = max(1000, round(size_mb * MB / WIDE_BYTES_PER_ROW))
    folder = WORK / "data" / f"flights-{rows}"
    path, manifest = folder / WIDE_CSV, folder / "manifest.json"
    wanted = {"generator": GENERATOR_VERSION, "rows": rows}
    if (size := _generated(path, manifest, wanted)) is not None:
        return path, size, rows

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"generating {rows:,} flights-shaped rows (~{size_mb:g} MB) with DuckDB into {path}")
    selects = []
    for position, (name, _, _, expression) in enumerate(WIDE_COLUMNS):
        if name in WIDE_NULLABLE:
            expression = f"CASE WHEN h(i, {200 + position}) % 33 = 0 THEN NULL ELSE {expression} END"
        selects.append(f'{expression} AS "{name}"')
    size = _write_rows(path, selects, rows, "NULLSTR 'NA', TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S'")
    manifest.write_text(json.dumps({**wanted, "bytes": size}))
    return path, size, rows
