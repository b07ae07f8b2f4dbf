"""`dw query` over the local lake's Iceberg tables, read through the catalog the jobs commit to.

The catalog (SQLite, `_iceberg/catalog.db` in the lake) names each table's current metadata; a
table's rows are the data files of a snapshot, which DuckDB reads. Also Athena's time travel
(`FOR VERSION AS OF <snapshot id>`, `FOR TIMESTAMP AS OF <timestamp>`) and its metadata tables
(`"t$snapshots"`, `"t$history"`, `"t$files"`), with Athena's column names. PyIceberg and its
catalog are imported only when the lake has Iceberg tables: a Parquet-only lake pays nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlglot import exp

from dwlib.naming import LAYERS, Naming

METADATA_TABLES = ("snapshots", "history", "files")


def _catalog(lake_root: Path):
    if not (Path(lake_root) / Naming.iceberg_catalog_key()).is_file():
        return None  # no Iceberg table was ever committed here: nothing more is imported
    from dwlib.iceberg import local_catalog

    return local_catalog(lake_root)


def _load(cat, identifier: tuple[str, ...]):
    """The catalog's table, or None: not in the catalog, or its metadata file gone (its folder moved aside when
    the dataset switched to Parquet, until that run drops the entry): such a table is no table here."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return cat.load_table(identifier)
    except (NoSuchTableError, FileNotFoundError):
        return None


def _path(uri: str) -> Path:
    return Path("/" + uri.removeprefix("file:").lstrip("/")) if uri.startswith("file:") else Path(uri)


def table_folders(lake_root: Path) -> set[Path]:
    """The folders the catalog's tables live in: `dw query` does not read them as plain Parquet."""
    cat = _catalog(lake_root)
    if cat is None:
        return set()
    folders = set()
    for namespace in cat.list_namespaces():
        for identifier in cat.list_tables(namespace):
            table = _load(cat, identifier)
            if table is not None:
                folders.add(_path(table.location()).resolve())
    return folders


def tables(lake_root: Path, naming: Naming, make: Callable[..., Any]) -> list[Any]:
    """A TableInfo (built by `make`) per Iceberg table of the bronze and gold databases, at its current snapshot."""
    cat = _catalog(lake_root)
    if cat is None:
        return []
    out = []
    databases = {naming.database(layer) for layer in LAYERS}
    for namespace in cat.list_namespaces():
        if namespace[0] not in databases:
            continue
        for identifier in cat.list_tables(namespace):
            table = _load(cat, identifier)
            info = _info(make, identifier, table, None) if table is not None else None
            if info is not None:
                out.append(info)
    return out


def _info(make: Callable[..., Any], identifier: tuple[str, ...], table: Any, snapshot_id: int | None, name: str = ""):
    from dwlib.iceberg import current_files

    files = [_path(f) for f in current_files(table, snapshot_id)]
    if not files:  # a snapshot without rows (a gold model's empty result): an empty table with its columns
        schema = _schema(table, snapshot_id)
        return make(
            identifier[0], name or identifier[-1], _path(table.location()), 0, 0,
            kind="arrow", arrow=schema.as_arrow().empty_table(),
            columns=tuple((f.name, str(f.field_type)) for f in schema.fields),
        )  # fmt: skip
    return make(
        identifier[0],
        name or identifier[-1],
        _path(table.location()),
        len(files),
        sum(f.stat().st_size for f in files if f.exists()),
        kind="iceberg",
        data=tuple(str(f) for f in files),
        columns=tuple((f.name, str(f.field_type)) for f in _schema(table, snapshot_id).fields),
    )


def _schema(table: Any, snapshot_id: int | None) -> Any:
    """The schema a snapshot was written with (time travel reads the columns of its day)."""
    if snapshot_id is None:
        return table.schema()
    snapshot = table.snapshot_by_id(snapshot_id)
    by_id = {s.schema_id: s for s in table.schemas().values()} if isinstance(table.schemas(), dict) else {}
    return by_id.get(getattr(snapshot, "schema_id", None), table.schema())


def bind(statement: exp.Expression, lake_root: Path, naming: Naming, make: Callable[..., Any], error) -> list[Any]:
    """Tables the statement reads by time travel or as metadata tables, as extra TableInfos.

    Rewrites `t FOR VERSION AS OF 1` to a table of that snapshot (named `t@1`), and leaves
    `"t$snapshots"` as written; `error(message)` makes the QueryError to raise.
    """
    wanted = [t for t in statement.find_all(exp.Table) if t.args.get("version") is not None or "$" in t.name]
    if not wanted:
        return []
    cat = _catalog(lake_root)
    extra: dict[str, Any] = {}
    for node in wanted:
        base, _, meta = node.name.partition("$")
        database = node.db.lower() or _only_database(cat, base.lower(), naming)
        identifier = (database, base.lower())
        table = _load(cat, identifier) if cat is not None and database else None
        if table is None:
            raise error(
                f"{'.'.join(p for p in identifier if p)} is not an Iceberg table of the local lake: time travel and "
                '"$snapshots", "$history", "$files" apply to tables with "table_format": "iceberg"'
            )
        version = node.args.get("version")
        if version is not None:
            if meta:
                raise error(f'time travel applies to a table, not to the metadata table "{node.name}"')
            snapshot_id = _snapshot(table, version, error, ".".join(identifier))
            name = f"{identifier[1]}@{snapshot_id}"
            node.set("this", exp.to_identifier(name, quoted=True))
            node.set("db", exp.to_identifier(database))
            node.set("version", None)
            if (database, name) not in extra:
                info = _info(make, identifier, table, snapshot_id, name)
                if info is None:
                    raise error(f"snapshot {snapshot_id} of {'.'.join(identifier)} has no data files")
                extra[(database, name)] = info
            continue
        if meta not in METADATA_TABLES:
            raise error(
                f'"{node.name}": the metadata tables supported locally are '
                + ", ".join(f'"{base}${m}"' for m in METADATA_TABLES)
            )
        node.set("db", exp.to_identifier(database))
        import pyarrow as pa

        arrow = getattr(table.inspect, meta)()
        if meta == "files":  # DuckDB takes no struct without fields (an unpartitioned table's `partition`)
            empty = [f.name for f in arrow.schema if pa.types.is_struct(f.type) and f.type.num_fields == 0]
            arrow = arrow.drop_columns(empty)
        extra[(database, node.name.lower())] = make(
            database, node.name.lower(), _path(table.location()), 0, 0, kind="arrow", arrow=arrow
        )
    return list(extra.values())


def _only_database(cat, name: str, naming: Naming) -> str:
    if cat is None:
        return ""
    found = [naming.database(layer) for layer in LAYERS if _load(cat, (naming.database(layer), name)) is not None]
    return found[0] if len(found) == 1 else ""


TIMESTAMP = re.compile(
    r"^\s*(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?))?\s*(Z|UTC|[+-]\d{2}:?\d{2}|[A-Za-z_]+/[A-Za-z_/+-]+)?\s*$"
)


def _snapshot(table: Any, version: exp.Version, error, name: str) -> int:
    """The snapshot id Athena would read for `FOR VERSION AS OF` / `FOR TIMESTAMP AS OF`."""
    kind = str(version.this).upper()
    value = version.expression
    if kind == "VERSION":
        if not (isinstance(value, exp.Literal) and not value.is_string and re.fullmatch(r"\d+", value.name)):
            raise error(f'FOR VERSION AS OF takes a snapshot id (a number from "{name.split(".")[-1]}$snapshots")')
        snapshot_id = int(value.name)
        if table.snapshot_by_id(snapshot_id) is None:
            known = ", ".join(str(s.snapshot_id) for s in table.metadata.snapshots) or "none"
            raise error(f"{name} has no snapshot {snapshot_id}; its snapshots: {known}")
        return snapshot_id
    if kind == "TIMESTAMP":
        when = _timestamp(value, error)
        snapshot = table.snapshot_as_of_timestamp(int(when.timestamp() * 1000))
        if snapshot is None:
            first = min((s.timestamp_ms for s in table.metadata.snapshots), default=None)
            since = datetime.fromtimestamp(first / 1000, UTC).isoformat() if first else "never"
            raise error(f"{name} has no snapshot at or before {when.isoformat()} (its first snapshot: {since})")
        return snapshot.snapshot_id
    raise error(f"FOR {kind} AS OF is not supported locally; use FOR VERSION AS OF or FOR TIMESTAMP AS OF")


def _timestamp(value: exp.Expression, error) -> datetime:
    literal = value.this if isinstance(value, exp.Cast) else value
    if not (isinstance(literal, exp.Literal) and literal.is_string):
        raise error(
            "FOR TIMESTAMP AS OF is supported locally with a timestamp literal "
            "(TIMESTAMP '2026-12-01 06:00:00 UTC'), not an expression"
        )
    match = TIMESTAMP.match(literal.name)
    if not match:
        raise error(f"FOR TIMESTAMP AS OF: {literal.name!r} is not a timestamp ('YYYY-MM-DD hh:mm:ss[.fff] [zone]')")
    day, clock, zone = match.groups()
    naive = datetime.fromisoformat(f"{day}T{clock or '00:00:00'}")
    if zone in (None, "Z", "UTC"):
        return naive.replace(tzinfo=UTC)  # Athena's session zone is UTC
    if zone[0] in "+-":
        return datetime.fromisoformat(f"{day}T{clock or '00:00:00'}{zone[:3]}:{zone[-2:]}")
    try:
        return naive.replace(tzinfo=ZoneInfo(zone))
    except ZoneInfoNotFoundError:
        raise error(f"FOR TIMESTAMP AS OF: unknown time zone {zone!r}") from None
