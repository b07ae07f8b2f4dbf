"""Key questions about Parquet files a run just wrote, answered in the driver from their key columns.

A Spark job that asks "does any key repeat?" of a few million keys costs seconds of CPU (a read, a
shuffle of every key, a hash aggregate, a job's scheduling), where reading the same key columns with
PyArrow and sorting or hashing them in the driver takes a fraction of a second. So for keys that fit
in `DRIVER_KEY_BYTES` the question is answered here; for larger ones, a key of a type whose equality
Spark defines differently (floating point: Spark groups -0.0 with 0.0 and every NaN together), or
files this module cannot read, the functions return None and the caller asks Spark, as before.

The answers are exact: a repeated key is always found. Rows with a null key part never repeat (as in
Spark's `groupBy` after the not-null filter, and as a join never matches a null).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import pyarrow as pa

    from dwlib.lake import Lake

log = logging.getLogger(__name__)

# The most key-column bytes (uncompressed, from the files' footers) read into the driver: about 30
# million bigint keys. Sorting or hashing them needs a few times that in memory, well within a driver's.
DRIVER_KEY_BYTES = 256 * 2**20

Opener = Callable[[str], BinaryIO]


class _RangeFile(io.RawIOBase):
    """An S3 object as a seekable file: each read is one ranged GET, so PyArrow fetches the footer and
    the key columns' pages, never the whole object."""

    def __init__(self, client: Any, bucket: str, key: str, size: int):
        self.client, self.bucket, self.key, self.size, self.pos = client, bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        end = min(self.size, self.pos + len(buffer))
        if end <= self.pos:
            return 0
        body = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={self.pos}-{end - 1}")["Body"]
        data = body.read()
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def lake_files(lake: Lake, prefix: str) -> tuple[dict[str, int], Opener] | None:
    """The Parquet files under `prefix` (key: size) and a way to open each; None for a lake this module cannot read."""
    from dwlib.lake import LocalLake, S3Lake

    files = {o.key: o.size for o in lake.data_files(prefix) if o.key.endswith(".parquet")}
    if isinstance(lake, LocalLake):
        return files, lambda key: open(lake.path(key), "rb")  # noqa: SIM115 - closed by the reader
    if isinstance(lake, S3Lake):
        return files, lambda key: _RangeFile(lake.client, lake.bucket, lake._key(key), files[key])
    return None


def parquet_rows(lake: Lake, prefix: str) -> int | None:
    """The rows of the Parquet files under `prefix`, from their footers; None for a lake this module cannot read."""
    import pyarrow.parquet as pq

    located = lake_files(lake, prefix)
    if located is None:
        return None
    files, opener = located
    total = 0
    for path in files:
        with opener(path) as stream:
            total += pq.read_metadata(stream).num_rows
    return total


@dataclass
class KeptKeys:
    """The key columns `repeated_keys` read while `keeping()` was on, for a later question about the same files
    (an Iceberg merge matches the run's keys against the table's): the staged files are read once."""

    reads: list[tuple[str, str, dict[str, int], list[pa.Table]]] = field(default_factory=list)

    def take(self, lake: Lake, prefix: str, columns: list[str]) -> list[pa.Table] | None:
        """The tables of `columns` read from the Parquet files under `prefix`, if they are still the files read
        (same names, same sizes); None otherwise. Given once: the memory goes with it."""
        reads, self.reads = self.reads, []
        located = lake_files(lake, prefix)
        for root, read_prefix, files, tables in reads:
            if located is None or (root, read_prefix, files) != (lake.root_uri, prefix, located[0]):
                continue
            if all(c in t.column_names for t in tables for c in columns):
                return [t.select(columns) for t in tables]
        return None


_keeping: ContextVar[KeptKeys | None] = ContextVar("dwlib_keys_keeping", default=None)


@contextlib.contextmanager
def keeping() -> Iterator[KeptKeys]:
    """Keep the key columns `repeated_keys` reads inside the block in the KeptKeys it yields."""
    kept = KeptKeys()
    token = _keeping.set(kept)
    try:
        yield kept
    finally:
        _keeping.reset(token)


def _comparable(field: pa.Field) -> bool:
    """Types whose equality in Arrow is Spark's: exact values (no floating point), not nested."""
    import pyarrow as pa

    t = field.type
    return (
        pa.types.is_integer(t)
        or pa.types.is_boolean(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_decimal(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
    )


def read_keys(
    files: Iterable[str], opener: Opener, columns: list[str], limit: int | None = None
) -> list[pa.Table] | None:
    """Each file's `columns`, one table per file (in the order given); None when they are over `limit`
    bytes in all, or a file lacks one of them, or one is of a type `_comparable` refuses."""
    import pyarrow.parquet as pq

    files = list(files)
    limit = DRIVER_KEY_BYTES if limit is None else limit
    total = 0
    metas = []
    for path in files:
        with opener(path) as stream:
            meta = pq.read_metadata(stream)
        metas.append(meta)
        schema = meta.schema.to_arrow_schema()
        if any(schema.get_field_index(c) < 0 or not _comparable(schema.field(c)) for c in columns):
            return None
        index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        total += sum(
            meta.row_group(g).column(index[c]).total_uncompressed_size
            for g in range(meta.num_row_groups)
            for c in columns
        )
        if total > limit:
            return None
    tables = []
    for path, meta in zip(files, metas, strict=True):
        with opener(path) as stream:
            # INT96 timestamps (Spark's default) as microseconds: nanoseconds overflow outside 1677-2262
            parquet = pq.ParquetFile(stream, metadata=meta, coerce_int96_timestamp_unit="us")
            tables.append(parquet.read(columns=columns))
    return tables


def _present(table: pa.Table) -> pa.Table:
    return table.drop_null()  # a row with any null key part has no key


def repeats(table: pa.Table) -> bool:
    """Whether some row's key (all of the table's columns, none null) occurs in another row."""
    import numpy as np
    import pyarrow as pa

    table = _present(table)
    if table.num_rows < 2:
        return False
    if table.num_columns == 1:
        column = table.column(0)
        t = column.type
        if pa.types.is_integer(t) or pa.types.is_date(t) or pa.types.is_timestamp(t):
            # one integer-like column, the usual key: a sort and a look at neighbours (no hash table)
            values = np.sort(column.combine_chunks().to_numpy(zero_copy_only=False))
            return bool((values[1:] == values[:-1]).any())
    return table.group_by(table.column_names).aggregate([]).num_rows != table.num_rows


def repeated_keys(lake: Lake, prefix: str, keys: list[list[str]]) -> list[str] | None:
    """Of `keys` (each a list of columns), those a non-null value of which repeats in the Parquet files
    under `prefix`, each as "a, b"; None when the driver cannot answer (see the module's docstring)."""
    import pyarrow as pa

    keys = [k for k in keys if k]
    if not keys:
        return []
    located = lake_files(lake, prefix)
    if located is None:
        return None
    files, opener = located
    columns = list(dict.fromkeys(c for key in keys for c in key))
    try:
        tables = read_keys(files, opener, columns)
    except Exception as exc:  # the Spark check gives the same answer; this one only saves time
        log.warning("reading the key columns under %s in the driver failed (%s); Spark checks them", prefix, exc)
        return None
    if tables is None:
        return None
    kept = _keeping.get()
    if kept is not None:
        kept.reads.append((lake.root_uri, prefix, files, tables))
    whole = pa.concat_tables(tables) if tables else None
    if whole is None:
        return []
    return [", ".join(key) for key in keys if repeats(whole.select(key))]


def _integer_like(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_date(t) or pa.types.is_timestamp(t)


def hits(old: list[pa.Table], new: list[pa.Table]) -> list[int]:
    """For each table of `old`, how many of its rows have a key (every column, none null) found in `new`
    (the same columns; `old`'s are cast to `new`'s types, as a widened column's older files are read).

    The run's keys are indexed once for all of `old`: sorted (one integer-like column, the usual key) or
    hashed once over every old table at a time; never once per old table, which for a few million keys
    cost a second per table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    run = _present(pa.concat_tables(new)) if new else None  # read_keys gives the columns in `key`'s order
    if run is None or run.num_rows == 0 or not old:
        return [0 for _ in old]
    names = run.column_names
    if len(names) == 1 and _integer_like(run.schema.field(0).type):
        values = np.sort(run.column(0).combine_chunks().to_numpy(zero_copy_only=False))
        counts = []
        for table in old:
            # a null never matches; the rest as numbers of the run's type (days, microseconds, ...)
            column = table.column(0).cast(run.schema.field(0).type).drop_null().combine_chunks()
            wanted = column.to_numpy(zero_copy_only=False)
            at = np.searchsorted(values, wanted).clip(max=len(values) - 1)
            counts.append(int((values[at] == wanted).sum()))
        return counts
    # Every old table's rows in one table, each tagged with its table's position: one hash of the run's keys.
    tagged = pa.concat_tables(
        [
            table.select(names).cast(run.schema).append_column("__old", pa.array(np.full(table.num_rows, i, np.int32)))
            for i, table in enumerate(old)
        ]
    )
    if len(names) == 1:
        matched = tagged.filter(pc.is_in(tagged.column(0), value_set=run.column(0).combine_chunks(), skip_nulls=True))
    else:
        matched = tagged.join(run, names, join_type="left semi")
    per_table = np.bincount(matched.column("__old").to_numpy(), minlength=len(old))
    return [int(n) for n in per_table]


def merge_hits(
    opener: Opener, old_files: list[str], new_files: list[str], key: list[str], new: list[pa.Table] | None = None
) -> list[int] | None:
    """For each of `old_files`, how many rows hold a key of `new_files`' rows (`new`: those rows' `key`
    columns, when already read); None when the driver cannot answer (see the module's docstring): the
    caller asks Spark."""
    try:
        if new is None:
            new = read_keys(new_files, opener, key)
        old = read_keys(old_files, opener, key) if new is not None else None
        if old is None or new is None:
            return None
        return hits(old, new)
    except Exception as exc:  # the Spark join gives the same answer; this one only saves time
        log.warning("matching the merge's keys in the driver failed (%s); Spark matches them", exc)
        return None
