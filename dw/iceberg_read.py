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
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlglot import exp

from dwlib.naming import LAYERS, Naming

METADATA_TABLES = ("snapshots", "history", "files")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        meta = meta.lower()  # Athena and Trino read the metadata table's suffix, as the table name, in any case
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
                + ", ".join(f'"{base.lower()}${m}"' for m in METADATA_TABLES)
            )
        node.set("db", exp.to_identifier(database))
        extra[(database, node.name.lower())] = make(
            database, node.name.lower(), _path(table.location()), 0, 0, kind="metadata", arrow=_metadata(table, meta)
        )
    return list(extra.values())


def _metadata(table: Any, meta: str) -> Any:
    """pyiceberg's metadata table with the types Trino's Iceberg connector gives its columns.

    `committed_at` and `made_current_at` are timestamp(3) with time zone (pyiceberg: a plain
    timestamp), `content` an integer (a tinyint), and the bounds of `$files` a map(integer, varchar)
    of readable values, {1=3, 2=2021-01-14} (pyiceberg: the raw little-endian bytes).
    """
    import pyarrow as pa

    arrow = getattr(table.inspect, meta)()
    retyped = {name: pa.timestamp("ms", tz="UTC") for name in ("committed_at", "made_current_at")}
    if meta == "files":  # DuckDB takes no struct without fields (an unpartitioned table's `partition`)
        empty = [f.name for f in arrow.schema if pa.types.is_struct(f.type) and f.type.num_fields == 0]
        arrow = arrow.drop_columns(empty)
        retyped["content"] = pa.int32()
        schema = table.schema()
        types = {field_id: schema.find_field(field_id).field_type for field_id in schema.field_ids}
        for name in ("lower_bounds", "upper_bounds"):
            readable = [_readable_bounds(types, bounds) for bounds in arrow[name].to_pylist()]
            arrow = arrow.set_column(
                arrow.column_names.index(name), name, pa.array(readable, pa.map_(pa.int32(), pa.string()))
            )
    for name, arrow_type in retyped.items():
        if name in arrow.column_names:
            arrow = arrow.set_column(arrow.column_names.index(name), name, arrow[name].cast(arrow_type))
    return arrow


def _readable_bounds(types: dict[int, Any], bounds: list[tuple[int, bytes]] | None) -> list[tuple[int, str]] | None:
    """A file's bounds by field id, each as Trino writes it; a field the table no longer has is left out, as
    Trino leaves it out."""
    if bounds is None:
        return None
    return [(field_id, _human(types[field_id], raw)) for field_id, raw in bounds if field_id in types]


def _human(field_type: Any, raw: bytes) -> str:
    """A bound's value as Iceberg's human string (Trino: Transforms.identity().toHumanString): 3, 2.50,
    2021-01-14, 2026-01-02T12:00Z, true; binary values in base64."""
    import base64
    import uuid

    from pyiceberg import types
    from pyiceberg.conversions import from_bytes

    value = from_bytes(field_type, raw)
    kind = str(field_type)
    if isinstance(field_type, types.BooleanType):
        return "true" if value else "false"
    if isinstance(field_type, types.FloatType | types.DoubleType):
        from dw.query import _java_double  # Java's Float/Double.toString, as the query results write them

        return _java_double(value, real=isinstance(field_type, types.FloatType))
    if isinstance(field_type, types.DateType):
        return (EPOCH.date() + timedelta(days=value)).isoformat()
    if isinstance(field_type, types.TimeType):
        return _java_clock(value * 1000)
    if kind in ("timestamp", "timestamptz", "timestamp_ns", "timestamptz_ns"):
        nanos = value if kind.endswith("_ns") else value * 1000
        days, of_day = divmod(nanos, 86_400_000_000_000)
        text = f"{(EPOCH.date() + timedelta(days=days)).isoformat()}T{_java_clock(of_day)}"
        return text + "Z" if kind.startswith("timestamptz") else text
    if isinstance(field_type, types.UUIDType):
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=value))
    if isinstance(field_type, types.BinaryType | types.FixedType):
        return base64.b64encode(value).decode()
    return str(value)


def _java_clock(nanos: int) -> str:
    """A time of day as Java's LocalTime.toString writes it: 12:00, 12:00:01, 12:00:01.500, 12:00:01.000001."""
    seconds, nano = divmod(nanos, 1_000_000_000)
    minutes, second = divmod(seconds, 60)
    text = f"{minutes // 60:02d}:{minutes % 60:02d}"
    if second or nano:
        text += f":{second:02d}"
    if nano % 1_000_000 == 0 and nano:
        return f"{text}.{nano // 1_000_000:03d}"
    if nano % 1000 == 0 and nano:
        return f"{text}.{nano // 1000:06d}"
    return f"{text}.{nano:09d}" if nano else text


def _only_database(cat, name: str, naming: Naming) -> str:
    if cat is None:
        return ""
    found = [naming.database(layer) for layer in LAYERS if _load(cat, (naming.database(layer), name)) is not None]
    return found[0] if len(found) == 1 else ""


# Trino's timestamp literal: a space before the time, the zone after it (or after the date).
TIMESTAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?: (\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,12}))?)?)?(?:\s*((?!T\d)[A-Za-z+-]\S*))?"
)
# The zone names Trino reads as UTC (its TimeZoneKey), and the prefixes it reads an offset after (GMT+5, Etc/GMT-3).
UTC_NAMES = {
    "GMT", "GMT0", "GMT+0", "GMT-0", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "UT", "UT+0", "UT-0",
    "Etc/UT", "Etc/UT+0", "Etc/UT-0", "UTC", "UTC+0", "UTC-0", "Etc/UTC", "Etc/UTC+0", "Etc/UTC-0", "+0000",
    "+00:00", "-0000", "-00:00", "Z", "Zulu", "UCT", "Greenwich", "Universal", "Etc/Universal", "Etc/UCT",
}  # fmt: skip
OFFSET_PREFIXES = ("Etc/GMT", "Etc/UTC", "Etc/UT", "GMT", "UTC", "UT")
TEMPORAL_POINTER = "Temporal pointers must be of type Timestamp, Timestamp with Time Zone, or Date"


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
        snapshot = table.snapshot_as_of_timestamp((when - EPOCH) // timedelta(milliseconds=1))  # exact, no float
        if snapshot is None:
            first = min((s.timestamp_ms for s in table.metadata.snapshots), default=None)
            since = datetime.fromtimestamp(first / 1000, UTC).isoformat() if first else "never"
            raise error(f"{name} has no snapshot at or before {when.isoformat()} (its first snapshot: {since})")
        return snapshot.snapshot_id
    raise error(f"FOR {kind} AS OF is not supported locally; use FOR VERSION AS OF or FOR TIMESTAMP AS OF")


def _timestamp(value: exp.Expression, error) -> datetime:
    """The instant of a FOR TIMESTAMP AS OF pointer, by Trino's rules.

    Trino takes a timestamp, a timestamp with time zone or a date, and refuses a string or a number
    ('2026-12-01' without TIMESTAMP) and NULL. Locally the pointer must be a literal, TIMESTAMP '...'
    or DATE '...' (the query's parser marks them `literal`): Athena also takes expressions and CASTs,
    whose value dw would have to compute as Trino does, so they are refused as not supported.
    """
    if isinstance(value, exp.Null):
        raise error("FOR TIMESTAMP AS OF NULL: Pointer value cannot be NULL (Athena refuses it too)")
    typed = isinstance(value, exp.Cast) and value.to.is_type(*TEMPORAL_TYPES)
    if isinstance(value, exp.Literal | exp.Cast) and not typed:
        if isinstance(value, exp.Cast):
            kind = value.to.sql(dialect="athena").lower()
        else:
            kind = f"varchar({len(value.name)})" if value.is_string else "number"
        raise error(
            f"FOR TIMESTAMP AS OF {value.sql(dialect='athena')}: Athena refuses a {kind} here ({TEMPORAL_POINTER}); "
            "write a timestamp literal, TIMESTAMP '2026-12-01 06:00:00 UTC'"
        )
    literal = value.this if typed else None
    if not (value.meta.get("literal") and isinstance(literal, exp.Literal) and literal.is_string):
        raise error(
            "FOR TIMESTAMP AS OF is supported locally with a literal, TIMESTAMP '2026-12-01 06:00:00 UTC' or "
            "DATE '2026-12-01', not with an expression or a CAST (Athena computes those; dw does not)"
        )
    when = _pointer(literal.name, value.to.is_type(exp.DataType.Type.DATE), error)
    if when >= datetime.now(UTC):
        raise error(f"FOR TIMESTAMP AS OF: Pointer value '{literal.name}' is not in the past (Athena refuses it too)")
    return when


TEMPORAL_TYPES = (exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ)


def _pointer(text: str, is_date: bool, error) -> datetime:
    """The instant a DATE or TIMESTAMP literal names; without a zone, in Athena's session zone, UTC."""
    match = TIMESTAMP.fullmatch(text.strip())
    if not match or (is_date and match.group(4, 8) != (None, None)):
        shape = "'YYYY-MM-DD'" if is_date else "'YYYY-MM-DD hh:mm:ss[.fff] [zone]', a space before the time"
        raise error(f"FOR TIMESTAMP AS OF: {text!r} is not a {'date' if is_date else 'timestamp'} literal ({shape})")
    year, month, day, hour, minute, second, fraction, zone_name = match.groups()
    try:
        naive = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
        )  # fmt: skip
    except ValueError as e:
        raise error(f"FOR TIMESTAMP AS OF: {text!r} is not a valid timestamp ({e})") from None
    zone = _zone(zone_name) if zone_name else UTC
    if zone is None:
        raise error(
            f"FOR TIMESTAMP AS OF: unknown time zone {zone_name!r} (Athena takes a zone id such as "
            "'Europe/Vienna', 'UTC' or 'GMT', or an offset such as '+01:00' or '+01')"
        )
    return naive.replace(tzinfo=zone)


def _zone(name: str) -> tzinfo | None:
    """The zone Trino reads `name` as (TimeZoneKey.getTimeZoneKey); None if it reads none."""
    if name in UTC_NAMES:
        return UTC
    prefix = next((p for p in OFFSET_PREFIXES if name.startswith(p) and name[len(p) : len(p) + 1] in ("+", "-")), None)
    if prefix:  # GMT+5, UTC-07:00, Etc/GMT+5 (the POSIX sign: five hours behind UTC)
        match = re.fullmatch(r"([+-])(\d{1,2})(?::(\d{1,2}))?", name[len(prefix) :])
        return _offset(match, posix=prefix == "Etc/GMT") if match else None
    if name[:1] in ("+", "-"):  # an offset as Java's ZoneOffset reads it: +1, +01, +01:30, +0130
        match = re.fullmatch(r"([+-])(\d{1,2})()", name) or re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
        return _offset(match) if match else None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _offset(match: re.Match, posix: bool = False) -> tzinfo | None:
    """The fixed zone of a (sign, hours, minutes) match; None past Trino's limit of 14 hours."""
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    offset = timedelta(hours=hours, minutes=minutes)
    if minutes > 59 or offset > timedelta(hours=14):
        return None
    return timezone(-offset if (sign == "-") != posix else offset)
