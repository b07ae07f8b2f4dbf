"""Pure DataFrame -> DataFrame steps of the bronze job: names, types, meta columns, rejects.

Built-in Spark functions only (no Python UDFs), so the plan stays in the JVM on Glue.
"""

from __future__ import annotations

import codecs
import csv as pycsv
import functools
import hashlib
import io
import itertools
import json
import mmap
import os
import re
import shutil
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    NumericType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from dwlib import quality
from dwlib.config import (
    META_COLUMNS,
    REJECT_REASON,
    WIDE_ENCODING,
    ColumnType,
    CsvOptions,
    DatasetConfig,
    QualityRules,
    camel_split,
)
from dwlib.naming import LIMITS

# The quarantine's column of a malformed record's text as it arrived (Spark's corrupt-record text), null for others.
RAW_RECORD = "raw_record"
# Whether a row is rejected, beside its reason text: the bronze write filters on this boolean alone, so the
# reason text (a string per failed check, joined) is computed only where the quarantine asks for it.
REJECTED = "_dw_rejected"
# Names the job adds next to the data columns; a source column never takes one (see `clean_names`).
RESERVED = (*META_COLUMNS, REJECT_REASON, RAW_RECORD)
ORDER = "_dw_order"  # source order, for "the first row in source order is kept" (see `_source_order`)
# Internal columns start with `_dw_`; a cleaned name never starts with `_`, so they cannot collide.
CORRUPT = "_dw_corrupt"  # Spark's raw text of a record it could not split into the header's fields
MALFORMED = "_dw_malformed"  # why a record is malformed (wrong field count, broken JSON), else null
RAW = "_dw_raw"  # a malformed record's text as the reader read it (its fields, extra ones too), else null
# Line mode only: true when a record could be half of one a quoted line break split (see `read_csv`).
SUSPECT = "_dw_suspect"
# CSV read with declared types (see `reader_types`): a record the reader could not type, split into its
# fields as text (a struct of strings by final name), else null. Only such records take the string typing.
SPLIT = "_dw_split"
# ...and true where that split may not be the record's fields (see `_read_group`): the run is typed from text.
DOUBTFUL = "_dw_doubtful"
REPLACEMENT_CHAR = "\ufffd"  # what a decoder puts where bytes are invalid in the declared encoding


# ------------------------------------------------------------------ names


def clean_name(name: str) -> str:
    """`Marketing Start Date` -> `marketing_start_date`, `ProductNDC` -> `product_ndc`."""
    text = re.sub(r"[^0-9a-zA-Z]+", "_", camel_split(name.strip())).strip("_").lower()
    if text and text[0].isdigit():
        text = f"c_{text}"
    return text


def clean_names(
    names: list[str], reserved: tuple[str, ...] = RESERVED, positions: list[int] | None = None
) -> list[str]:
    """Unique snake_case names, each decided by the names alone, never by where a name stands among them.

    Names that clean to one name (`Unit Price`, `unit_price`) are numbered: a name already spelled as the
    clean name (`unit_price`) keeps it, the others follow in the sorted order of their text (case-folded,
    then as written) and get `_2`, `_3`... skipping names taken, so the same headers get the same names in any order. Only one text written twice keeps its
    order. The job's own columns (`reserved`: the meta columns and `reject_reason`) count as taken, so a
    source column `meta_run_id` becomes `meta_run_id_2`. A header with text that cleans to nothing
    (`店名`, `#`) is named after its characters (`unnamed_name`); an empty one is `column_<position>`
    (`positions`: each name's column number, else its place in `names`). A name longer than Glue's 255
    characters is cut to 246 and ends in `_` and 8 hex digits of a hash of the whole name (`capped_name`).
    """
    positions = positions or list(range(1, len(names) + 1))
    bases = [
        capped_name(clean_name(name) or unnamed_name(name, position))
        for name, position in zip(names, positions, strict=True)
    ]
    taken: set[str] = set(reserved)
    result: list[str] = [""] * len(names)
    by_base: dict[str, list[int]] = {}
    for i, base in enumerate(bases):
        by_base.setdefault(base, []).append(i)
    # A name no other cleans to, and no job column takes, is kept first, so a suffix never takes it.
    for base, members in by_base.items():
        if len(members) == 1 and base not in taken:
            result[members[0]] = base
            taken.add(base)
    for base, members in by_base.items():
        if result[members[0]]:
            continue
        # A name already spelled as its clean name keeps it: `first_name` is never moved to `first_name_2` by a
        # `first name` or ` first_name` that sorts before it (a declared column would take the other's data).
        order = sorted(members, key=lambda i: (names[i] != base, _folded(names[i]), names[i].strip(), positions[i]))
        for i in order:
            candidate, suffix = base, 2
            while candidate in taken:
                tail = f"_{suffix}"
                candidate, suffix = f"{base[: NAME_MAX - len(tail)]}{tail}", suffix + 1
            taken.add(candidate)
            result[i] = candidate
    return result


NAME_MAX = LIMITS["glue_column"].max_length  # Glue's limit on a column name (255)


def capped_name(name: str) -> str:
    """A clean name cut to Glue's 255 characters, ending in a hash of the whole name so two long names that start
    alike stay two names (as `unnamed_name` does)."""
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{name[: NAME_MAX - 9].rstrip('_')}_{digest}"


def contested_names(columns: list[tuple[str, str]], declared: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """Declared names that two or more source columns clean to, none spelled as the declared name itself: which of
    them holds the declared column's data cannot be told. `columns`: (source name, final name) pairs, a CSV's
    headers file by file (a header matched across files is one column however each file spells it).
    {declared: [source names]}."""
    found = {}
    for name in dict.fromkeys(declared):
        holders = {original for original, final in columns if final == name}
        others = {
            original for original, final in columns if final != name and capped_name(clean_name(original)) == name
        }
        if others and holders and name not in holders:
            found[name] = sorted(holders | others)
    return found


def _folded(name: str) -> str:
    """A header as matched regardless of case: trimmed, in one Unicode form (NFC), case-folded."""
    return unicodedata.normalize("NFC", name.strip()).casefold()


UNNAMED_MAX = 100  # characters of a name made of a header's code points; a longer one ends in a hash of it


def unnamed_name(name: str, position: int) -> str:
    """The name of a header that cleans to nothing: made of its characters' code points, `店名` -> `u5e97_u540d`
    (the same wherever the column stands; case-folded, as cleaning lowercases); `column_<position>` when empty."""
    text = _folded(name)
    if not text:
        return f"column_{position}"
    spelled = "_".join(f"u{ord(char):x}" for char in text if not char.isspace())
    if len(spelled) > UNNAMED_MAX:
        digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]
        spelled = f"{spelled[: UNNAMED_MAX - 9].rstrip('_')}_{digest}"
    return spelled


def renamed_columns(originals: list[str], cleaned: list[str]) -> dict[str, str]:
    """Renames beyond plain cleaning (collisions, reserved names, empty headers): {original: cleaned}.

    An original that appears more than once is keyed `name (column N)` so no entry hides another.
    """
    counts: dict[str, int] = {}
    for name in originals:
        counts[name] = counts.get(name, 0) + 1
    renamed = {}
    for position, (original, name) in enumerate(zip(originals, cleaned, strict=True), start=1):
        if name != clean_name(original):
            renamed[original if counts[original] == 1 else f"{original} (column {position})"] = name
    return renamed


def data_columns(df: DataFrame) -> list[str]:
    """The frame's columns without the job's internal ones."""
    return [c for c in df.columns if c not in (MALFORMED, RAW, CORRUPT, SUSPECT, SPLIT, DOUBTFUL)]


# ------------------------------------------------------------------ nested records


def _leaves(schema: StructType, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], DataType]]:
    """Every non-struct field, depth first in schema order, with its path of field names."""
    found = []
    for f in schema.fields:
        if isinstance(f.dataType, StructType) and f.dataType.fields:
            found += _leaves(f.dataType, (*path, f.name))
        else:
            found.append(((*path, f.name), f.dataType))
    return found


def _column(path: tuple[str, ...]) -> Column:
    # getField takes a name literally, so keys with dots, spaces or backticks are safe.
    column = F.col(f"`{path[0].replace('`', '``')}`")
    for name in path[1:]:
        column = column.getField(name)
    return column


def flatten_structs(df: DataFrame) -> DataFrame:
    """Struct columns become one column per leaf: `address.city` -> `address_city`, recursively.

    Names are cleaned and made unique as `clean_names` does (in schema order); arrays stay
    arrays. A frame without structs is returned as it is.
    """
    if not any(isinstance(f.dataType, StructType) for f in _data_schema(df).fields):
        return df
    internal = [c for c in df.columns if c not in data_columns(df)]
    leaves = _leaves(_data_schema(df))
    names = clean_names([".".join(path) for path, _ in leaves])
    return df.select(*[_column(path).alias(name) for (path, _), name in zip(leaves, names, strict=True)], *internal)


def source_column_names(df: DataFrame) -> list[str]:
    """What `flatten_structs` names from: each leaf's path, `address.city`."""
    return [".".join(path) for path, _ in _leaves(_data_schema(df))]


def _data_schema(df: DataFrame) -> StructType:
    data = data_columns(df)
    return StructType([f for f in df.schema.fields if f.name in data])


def flatten(df: DataFrame, explode: list[str] | tuple[str, ...] = ()) -> DataFrame:
    """Flatten structs, then turn each `explode` array column into one row per element (in order).

    An exploded array of structs is flattened again (`items` -> `items_sku`, `items_qty`). A row
    whose array is empty or null is kept once, with a null element, so no record vanishes.
    ValueError names a column that is missing or not an array, and lists the arrays there are.
    """
    df = flatten_structs(df)
    for name in explode:
        types = {f.name: f.dataType for f in df.schema.fields}
        if not isinstance(types.get(name), ArrayType):
            arrays = ", ".join(n for n, t in types.items() if isinstance(t, ArrayType)) or "none"
            what = f"is a {types[name].simpleString()}, not an array" if name in types else "is not in the source"
            raise ValueError(
                f"explode names column {name!r}, which {what}; array columns after flattening: {arrays}. "
                "Fix `explode` in the dataset's config.json"
            )
        df = df.withColumn(name, F.explode_outer(F.col(name)))
        df = flatten_structs(df)
    return df


# ------------------------------------------------------------------ reading


HEAD_BYTES = 256 * 1024  # read from the start of each file to find its header record


@dataclass
class HeaderGroup:
    """Files whose header is the same, read in one go: their fields, in file order, by final name."""

    uris: list[str]
    names: list[str]
    header: list[str]
    # Files type inference may read (headerless: those whose first row has the expected width).
    infer_from: list[str] | None = None
    # The reader's `lineSep`: "\n" where the run's lines end in LF and a CR alone is a character of a value.
    line_sep: str | None = None


@dataclass
class Source:
    """The run's input as one frame, data columns by final name, and what reading it had to decide."""

    df: DataFrame
    renamed: dict[str, str] = field(default_factory=dict)  # non-trivial renames, {original: cleaned}
    missing: dict[str, list[str]] = field(default_factory=dict)  # file -> columns its header lacks
    groups: list[HeaderGroup] = field(default_factory=list)  # CSV: one per distinct header
    # CSV with `multiline` unset, read line by line: `_dw_suspect` says which rows could be halves
    # of a row a quoted line break split; if any is, the caller reads again with multiline on.
    line_mode_guess: bool = False
    # CSV columns the reader typed itself (`read_csv`'s `typed`); their text, where a record did not type, is
    # in `_dw_split`. Empty: every column arrived as text.
    typed: dict[str, str] = field(default_factory=dict)
    # What the read could not check, for the run's notes: CSV files the driver did not scan (`_scan_csv_files`).
    notes: list[str] = field(default_factory=list)

    @property
    def unsplit(self) -> bool:
        """Read with `split` off: a record the reader could not type fails the Spark job that reads it, which
        must then read again with `split` on (see `_read_group`)."""
        return bool(self.typed) and SPLIT not in self.df.columns


def read_source(spark: SparkSession, uris: list[str], fmt: str, csv: CsvOptions) -> DataFrame:
    """Read the run's input files; CSV columns arrive as strings and are typed later."""
    return read_input(spark, uris, fmt, csv).df


def read_input(
    spark: SparkSession,
    uris: list[str],
    fmt: str,
    csv: CsvOptions,
    typed: dict[str, str] | None = None,
    split: bool = True,
) -> Source:
    """Read the run's input files, matching columns by name across files, never by position.

    CSV columns arrive as strings under their final (cleaned, unique) names and are typed later
    (`csv.multiline` None: line by line, with `_dw_suspect`; see `read_csv`);
    other formats keep their own names until `flatten`/`prepare_types` clean them. A record that
    cannot be read (wrong field count, broken JSON) has its reason in `_dw_malformed`.
    """
    if fmt == "csv":
        return read_csv(spark, uris, csv, typed, split)
    heads: list[bytes | None] = []
    if fmt == "json":
        heads = read_heads(spark, uris, JSON_HEAD_BYTES)
        other = _not_text([_file(uri) for uri in uris], heads, "json")
        if other:
            raise ValueError(other)
        several = [_file(uri) for uri, head in zip(uris, heads, strict=True) if _several_values(head)]
        if several:
            # Read whole (`json`), a file is one value: Spark would keep its first record and drop the rest.
            raise ValueError(
                f"{', '.join(several)} holds several JSON values, one after another (a record a line?), where "
                'format json reads one value a file (an object, or an array of records). Set "format": "jsonl" in '
                "the dataset's config.json"
            )
    if fmt == "jsonl":
        heads = read_heads(spark, uris, JSONL_HEAD_BYTES)
        other = _not_text([_file(uri) for uri in uris], heads, "json")
        if other:
            raise ValueError(other)
        wide = _wide_texts([_file(uri) for uri in uris], heads, None)
        if wide:
            # Spark splits JSON Lines at the byte 0x0A, half of a UTF-16 line break: the byte left over is a record.
            raise ValueError(
                f"{'; '.join(wide)}: JSON Lines are read line by line, at the byte that ends a UTF-8 line, half of a "
                "wider character (a broken record is left at each line end). Fix: convert it to UTF-8"
            )
    if fmt in ("json", "jsonl"):
        try:
            df = _read_json(spark, uris, fmt, empty_key=any(_empty_key(head) for head in heads))
        except Exception as error:  # noqa: BLE001 - Py4J or Spark
            _refuse_repeated_name(spark, uris, error, fmt)
            raise
        if CORRUPT in df.columns:
            data = data_columns(df)
            reason = _tied_to(F.lit("malformed: not a valid JSON record"), data)
            df = df.select(
                *[_column((c,)) for c in data],
                F.when(F.col(CORRUPT).isNotNull(), reason).alias(MALFORMED),
                F.col(CORRUPT).alias(RAW),
            )
    elif fmt == "parquet":
        # mergeSchema: every file's columns, by name; without it Spark takes one file's columns and
        # silently drops a column only other files have.
        try:
            df = spark.read.option("mergeSchema", len(uris) > 1).parquet(*uris)
        except Exception as error:  # noqa: BLE001 - Py4J or Spark: only a merge of two types is read another way
            if "Illegal Parquet type: INT64 (TIMESTAMP(NANOS" in str(error):
                raise ValueError(
                    f"{', '.join(_file(uri) for uri in uris)}: a column of nanosecond timestamps (TIMESTAMP(NANOS), "
                    "what pandas writes by default), which Spark does not read. Fix: write microseconds (pandas: "
                    'to_parquet(..., coerce_timestamps="us"); pyarrow: write_table(..., coerce_timestamps="us"))'
                ) from None
            merge = ("CANNOT_MERGE_INCOMPATIBLE_DATA_TYPE", "Failed to merge incompatible data types")
            _refuse_repeated_name(spark, uris, error, fmt)
            if len(uris) < 2 or not any(text in str(error) for text in merge):
                raise
            df = _read_parquet_widened(spark, uris)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    originals = source_column_names(df)
    return Source(df, renamed_columns(originals, clean_names(originals)))


def _refuse_repeated_name(spark: SparkSession, uris: list[str], error: Exception, fmt: str) -> None:
    """A ValueError naming the files and the name where `error` is Spark's refusal of a record or file that holds a
    name twice (a JSON object with a key twice, a Parquet file with two columns of one name), which Spark's message
    (`COLUMN_ALREADY_EXISTS`, "rename the existing column") names no file of; returns otherwise."""
    found = re.search(r"COLUMN_ALREADY_EXISTS\]? The column `(.*?)` already exists", str(error))
    if found is None:
        return
    files = []
    for uri in uris if len(uris) > 1 else []:  # which files, a file at a time (as the run fails anyway)
        reader = spark.read.option("multiLine", fmt == "json")
        try:
            reader.parquet(uri).schema if fmt == "parquet" else reader.json(uri).schema  # noqa: B018
        except Exception as one:  # noqa: BLE001 - Py4J or Spark
            if "COLUMN_ALREADY_EXISTS" in str(one):
                files.append(_file(uri))
        if len(files) == 5:
            break
    where = ", ".join(files or [_file(uri) for uri in uris])
    if fmt == "parquet":
        raise ValueError(
            f"{where}: two columns named {found[1]!r} in one file, which no reader tells apart. Fix: write the file "
            "with each column name once"
        ) from None
    raise ValueError(
        f"{where}: a record holds the key {found[1]!r} more than once, so which of its values is meant cannot be told. "
        "Fix: write each key once per object"
    ) from None


def _read_parquet_widened(spark: SparkSession, uris: list[str]) -> DataFrame:
    """Parquet files whose columns Spark's mergeSchema could not merge: read per schema and unioned by name, a column
    of integers of several widths (int32 and int64) as the widest, floats and doubles as double, decimals as the one
    that holds them all (the most whole digits and the most places). Other differences (a number and a string) fail,
    naming the column and each file's type: a type a reader would pick would change one file's values."""
    schemas = [spark.read.parquet(uri).schema for uri in uris]
    types: dict[str, dict[str, DataType]] = {}  # column -> {file: its type}, columns in the order first met
    for uri, schema in zip(uris, schemas, strict=True):
        for f in schema.fields:
            types.setdefault(f.name, {})[_file(uri)] = f.dataType
    merged: dict[str, DataType] = {}
    conflicts = []
    for name, by_file in types.items():
        kinds = list(dict.fromkeys(by_file.values()))
        wider = kinds[0] if len(kinds) == 1 else _wider(kinds)
        if wider is None:
            shown = ", ".join(f"{t.simpleString()} in {file}" for file, t in by_file.items())
            conflicts.append(f"column {name} is {shown}")
        else:
            merged[name] = wider
    if conflicts:
        raise ValueError(
            f"Parquet files of one run hold a column in types that do not merge: {'; '.join(conflicts)}. Fix: write the "
            "column with one type in every file (or run the files apart)"
        )
    groups: dict[str, list[str]] = {}
    for uri, schema in zip(uris, schemas, strict=True):
        groups.setdefault(schema.json(), []).append(uri)
    frames = []
    for members in groups.values():
        frame = spark.read.parquet(*members)
        frames.append(frame.select(*[F.col(f"`{c}`").cast(merged[c]).alias(c) for c in frame.columns]))
    df = frames[0]
    for frame in frames[1:]:
        df = df.unionByName(frame, allowMissingColumns=True)
    return df


_INTEGRAL = (ByteType, ShortType, IntegerType, LongType)  # narrowest first


def _wider(kinds: list[DataType]) -> DataType | None:
    """The type that holds every value of each of `kinds` exactly, where they are all integers, all floating point
    or all decimals; else None."""
    if all(isinstance(k, _INTEGRAL) for k in kinds):
        return max(kinds, key=lambda k: [isinstance(k, t) for t in _INTEGRAL].index(True))
    if all(isinstance(k, (FloatType, DoubleType)) for k in kinds):
        return DoubleType()
    if all(isinstance(k, (TimestampType, TimestampNTZType)) for k in kinds):
        return TimestampType()  # a local time (`isAdjustedToUTC` false) as UTC, the session's zone, as a cast reads it
    if all(isinstance(k, DecimalType) for k in kinds):
        whole = max(k.precision - k.scale for k in kinds)
        scale = max(k.scale for k in kinds)
        return DecimalType(whole + scale, scale) if whole + scale <= 38 else None
    return None


# Field metadata of a JSON source's column: `float` on a number column read as the decimal that holds each of its
# values exactly (Spark infers a double, which rounds `12345678901234567.12`), undeclared ones are then doubles as
# inferred; `wide` on one no decimal(38) holds, read as text (a whole number's exact, a fraction's as the double
# Spark reads); `text` on a text column (its JSON strings, and any number as its JSON text, the same way).
JSON_NUMBER = "dw_json"


JSONL_HEAD_BYTES = 64 * 1024  # of a JSON Lines file, read to tell its encoding and whether a key is empty
# A key that is empty: `""` and a colon after an object's `{` or a `,` (in JSON text `""` elsewhere is an empty string,
# followed by a comma, a bracket or a brace; a quote inside a string is escaped).
_EMPTY_KEY = re.compile(r'(?:^|[{,])[ \t\r\n]*""[ \t\r\n]*:')


def _empty_key(head: bytes | None) -> bool:
    """Whether a JSON file's first bytes hold a key that is empty (`{"": 1}`), in the encoding they show."""
    if not head or b'""' not in head and b"\0" not in head:
        return False
    return bool(_EMPTY_KEY.search(head.decode(json.detect_encoding(head), errors="replace")))


def _read_json(spark: SparkSession, uris: list[str], fmt: str, empty_key: bool = False) -> DataFrame:
    """JSON records, their types inferred as Spark does, except a number column Spark infers as double: read as the
    decimal that holds every value of it exactly (a second inference pass, with `prefersDecimal`), when one does
    (38 digits, no NaN or 1e400). `prepare_types` casts it to the declared type exactly, or to double if undeclared.

    `empty_key`: the files' first bytes hold a key that is empty (`""`), which Spark's inference leaves out with its
    values; read as a text column (a string, or the JSON text of any other value), named as an empty CSV header is.
    """

    def reader() -> Any:
        return (
            spark.read.option("multiLine", fmt == "json")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
        )

    inferred = reader().json(uris).schema
    exact = None
    if any(isinstance(t, DoubleType) for _, t in _leaves(inferred)):
        # `1e3` is a decimal of scale -3 to the inference, which Spark refuses unless told (made scale 0 below).
        key = "spark.sql.legacy.allowNegativeScaleOfDecimal"
        before = spark.conf.get(key, None)
        spark.conf.set(key, "true")
        try:
            exact = reader().option("prefersDecimal", True).json(uris).schema
        finally:
            if before is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before)
        if (CORRUPT in exact.fieldNames()) != (CORRUPT in inferred.fieldNames()):
            exact = None  # a value no decimal holds (NaN, 1e400) would make its record unreadable: read as text
    schema = _json_schema(inferred, exact)
    if empty_key and "" not in schema.fieldNames():
        # First, where Spark's inference (keys in sorted order) would put it.
        schema = StructType([StructField("", StringType(), True, {JSON_NUMBER: "text"}), *schema.fields])
    return reader().schema(schema).json(uris)


def _json_schema(inferred: StructType, exact: StructType | None) -> StructType:
    """`inferred` with each double that `exact` (the `prefersDecimal` inference) holds in a decimal as that decimal,
    marked `float`, and each string marked `text` (`JSON_NUMBER`)."""
    fields = []
    for f in inferred.fields:
        other = exact[f.name].dataType if exact is not None and f.name in exact.fieldNames() else None
        kind = f.dataType
        if isinstance(kind, StructType):
            kind = _json_schema(kind, other if isinstance(other, StructType) else None)
        elif isinstance(kind, DoubleType):
            whole, scale = (
                (other.precision - other.scale, max(other.scale, 0)) if isinstance(other, DecimalType) else (0, 99)
            )
            if whole + scale <= 38:
                fields.append(
                    StructField(f.name, DecimalType(whole + scale, scale), f.nullable, {JSON_NUMBER: "float"})
                )
            else:  # no decimal holds them all: their JSON text (a fraction's as the double Spark reads)
                fields.append(StructField(f.name, StringType(), f.nullable, {JSON_NUMBER: "wide"}))
            continue
        elif isinstance(kind, StringType) and f.name != CORRUPT:
            fields.append(StructField(f.name, kind, f.nullable, {JSON_NUMBER: "text"}))
            continue
        fields.append(StructField(f.name, kind, f.nullable, f.metadata))
    return StructType(fields)


JSON_HEAD_BYTES = 8 * 1024 * 1024  # of a `json` file, read to see whether its first value is all it holds


def _several_values(head: bytes | None) -> bool:
    """Whether a file's first bytes hold a whole JSON value and more after it, as Spark's JSON reader reads it: in
    the encoding its first bytes show (UTF-16 and UTF-32 too), strings in single quotes as well as double. A first
    value longer than the head (`JSON_HEAD_BYTES`) cannot tell, and counts as one."""
    if not head:
        return False
    text = head.decode(json.detect_encoding(head), errors="replace").lstrip("\ufeff \t\r\n")
    end = _first_value_end(text)
    return end is not None and bool(text[end:].strip(" \t\r\n"))


def _first_value_end(text: str) -> int | None:
    """Where the JSON value at the start of `text` ends; None when it does not end within it. Objects and arrays are
    matched bracket by bracket, skipping strings in either quote (Jackson, Spark's parser, takes single quotes)."""
    if not text or text[0] not in "{[":
        try:
            return json.JSONDecoder().raw_decode(text)[1]
        except ValueError:
            return None
    depth, i, quote = 0, 0, ""
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _tied_to(value: Column, data: list[str]) -> Column:
    # Spark refuses a raw-file query that needs only the corrupt-record column; a reason that also
    # reads a data column (an empty substring of it, so the text is unchanged) is never such a query.
    return F.concat_ws("", value, F.substring(_column((data[0],)), 1, 0)) if data else value


# Spark's CSV reader (univocity) stops a record at `maxColumns` fields, 20,480 by default, with
# "ArrayIndexOutOfBoundsException: Index 20480": a DynamoDB table whose items carry more attributes, or any wider
# file, failed there. The limit is set from the header read before (twice its width: a ragged row with more
# fields is still quarantined as malformed), at least the default; a header Spark reads itself gets a wide one.
# A header wider than MAX_CSV_COLUMNS fails the read by name: past it Spark's plans overflow the stack
# (StackOverflowError after minutes, measured with 20,501 columns).
SPARK_MAX_COLUMNS = 20_480
MAX_CSV_COLUMNS = SPARK_MAX_COLUMNS
HEADER_MAX_COLUMNS = 1_000_000


def max_columns(width: int | None) -> int:
    """The reader's `maxColumns` for files whose header has `width` fields (None: not known yet)."""
    return HEADER_MAX_COLUMNS if width is None else max(SPARK_MAX_COLUMNS, 2 * width + 16)


def _csv_reader(
    spark: SparkSession, csv: CsvOptions, header: bool, width: int | None = 0, line_sep: str | None = None
) -> Any:
    reader = spark.read.option("lineSep", line_sep) if line_sep else spark.read
    return (
        reader.option("header", header)
        .option("maxColumns", max_columns(width))
        .option("sep", csv.delimiter)
        .option("encoding", csv.encoding)
        .option("quote", csv.quote)
        .option("escape", csv.escape)
        .option("multiLine", bool(csv.multiline))
        .option("mode", "PERMISSIVE")
    )


def java_charset(spark: SparkSession, name: str) -> bool:
    """Whether Java, which decodes Spark's text sources, has a charset of this name."""
    try:
        return bool(spark.sparkContext._jvm.java.nio.charset.Charset.isSupported(name))
    except Exception:  # noqa: BLE001 - IllegalCharsetNameException: no charset has such a name
        return False


def read_heads(spark: SparkSession, uris: list[str], size: int = HEAD_BYTES) -> list[bytes | None]:
    """The first `size` bytes of each file as Spark sees them (its file systems and codecs: .gz, .bz2);
    None for a file that could not be opened that way."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    codecs_ = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf)

    def head(uri: str) -> bytes | None:
        try:
            path = jvm.org.apache.hadoop.fs.Path(uri)
            stream = path.getFileSystem(conf).open(path)
            try:
                codec = codecs_.getCodec(path)
                if codec is not None:
                    stream = codec.createInputStream(stream)
                return bytes(stream.readNBytes(size))
            finally:
                stream.close()
        except Exception:  # noqa: BLE001 - any failure: Spark reads the header itself instead
            return None

    if len(uris) == 1:
        return [head(uris[0])]
    with ThreadPoolExecutor(max_workers=8) as pool:  # S3 round trips, not CPU
        return list(pool.map(head, uris))


WIDE_HEAD_BYTES = 4096  # of a file's first bytes, enough to tell UTF-16 or UTF-32 text from a one-byte encoding's
_BOMS = (  # longest first: UTF-32LE's starts with UTF-16LE's
    (codecs.BOM_UTF32_LE, "32", "LE"),
    (codecs.BOM_UTF32_BE, "32", "BE"),
    (codecs.BOM_UTF16_LE, "16", "LE"),
    (codecs.BOM_UTF16_BE, "16", "BE"),
)


def wide_text(head: bytes) -> tuple[str, str, bool] | None:
    """(`16` or `32`, `LE` or `BE`, whether a byte order mark says so) for a file's first bytes in UTF-16 or UTF-32;
    None for text of one byte a character (ASCII, UTF-8, Latin-1...). Without a byte order mark: the NUL bytes that
    the high bytes of ASCII characters are, at every second (or three of every four) byte."""
    for bom, bits, order in _BOMS:
        if head.startswith(bom):
            return bits, order, True
    sample = head[:WIDE_HEAD_BYTES]
    sample = sample[: len(sample) - len(sample) % 4]
    if len(sample) < 4 or sample.count(0) * 4 < len(sample):
        return None
    share = [sample[r::4].count(0) / (len(sample) // 4) for r in range(4)]
    for bits, order, nul in (
        ("32", "LE", (1, 2, 3)),
        ("32", "BE", (0, 1, 2)),
        ("16", "LE", (1, 3)),
        ("16", "BE", (0, 2)),
    ):
        if all(share[r] >= 0.5 for r in nul) and all(share[r] <= 0.1 for r in range(4) if r not in nul):
            return bits, order, False
    return None


# The first bytes of files that are no text: what each is (a file named `.csv` that is a gzip, a zip, Parquet...).
_MAGIC = (
    (re.compile(rb"\x1f\x8b"), "gzip"),
    (re.compile(rb"PK(\x03\x04|\x05\x06|\x07\x08)"), "zip (or an Excel .xlsx)"),
    (re.compile(rb"PAR1"), "Parquet"),
    (re.compile(rb"BZh[1-9]1AY&SY"), "bzip2"),
    (re.compile(rb"\xfd7zXZ\x00"), "xz"),
    (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd"),
    (re.compile(rb"7z\xbc\xaf\x27\x1c"), "7-Zip"),
    (re.compile(rb"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), "OLE2 (an Excel .xls)"),
    (re.compile(rb"%PDF-"), "PDF"),
    (re.compile(rb"Obj\x01"), "Avro"),
)


def _not_text(names: list[str], heads: list[bytes | None], fmt: str) -> str | None:
    """A message naming the files whose first bytes are another kind of file's (read as text, its bytes were rows
    and its header a column name, and a run could keep them), else None."""
    found = []
    for name, head in zip(names, heads, strict=True):
        kind = next((kind for magic, kind in _MAGIC if head and magic.match(head)), None)
        if kind is not None:
            found.append(f"{name} is a {kind} file")
    if not found:
        return None
    return (
        f"{', '.join(found)}, not {fmt.upper()} text (its first bytes say so). Fix: name the file for what it is "
        '(.gz and .bz2 are decompressed, a .zip is unpacked), or set the dataset\'s "format"'
    )


def _wide_texts(names: list[str], heads: list[bytes | None], declared: str | None) -> list[str]:
    """For each file in UTF-16 or UTF-32 that `declared` (a CSV's encoding, None for a source read as UTF-8) does not
    decode, or in UTF-8 by its byte order mark where another encoding is declared, what it is and the encoding to set. Java's `UTF-16` and `UTF-32` read a byte order mark, and without one
    big-endian; `UTF-16LE` and the like one byte order, a mark being a character of the text."""
    spelled = re.fullmatch(r"(?:utf|ucs)-?(16|32|2|4)(?:-?(be|le))?", (declared or "").lower()) if declared else None
    family = {"2": "16", "4": "32"}.get(spelled[1], spelled[1]) if spelled and WIDE_ENCODING.match(declared) else None
    order = (spelled[2] or "").upper() if spelled else ""
    try:
        utf8 = declared is None or codecs.lookup(declared).name == "utf-8"
    except LookupError:
        utf8 = False  # a name only Java knows (x-MacRoman): not UTF-8
    found = []
    for name, head in zip(names, heads, strict=True):
        if head and head.startswith(codecs.BOM_UTF8) and not utf8:
            # UTF-8's byte order mark: read in a one-byte encoding, `é` is `Ã©` in every value, with no invalid byte.
            found.append(
                f"{name} is UTF-8 text (its byte order mark), which csv.encoding {declared!r} decodes to other "
                'characters (é as Ã©). Fix: set "csv": {"encoding": "utf-8"} (the default) in the dataset\'s config.json'
            )
            continue
        wide = wide_text(head) if head else None
        if wide is None:
            continue
        bits, endian, bom = wide
        if bits == family and (order == endian or (not order and (bom or endian == "BE"))):
            continue  # decoded as it is written
        spelled_as = f"UTF-{bits}" if bom else f"UTF-{bits}{endian}"
        how = "its byte order mark" if bom else "NUL bytes between its characters"
        text = f"{name} is {spelled_as} text ({how})"
        if declared is not None:
            text += (
                f", which csv.encoding {declared!r} does not decode (read as it, every value is garbled). Fix: set "
                f'"csv": {{"encoding": "{spelled_as}"}} in the dataset\'s config.json'
            )
        found.append(text)
    return found


def _head_records(head: bytes, csv: CsvOptions, truncated: bool) -> Iterator[list[str]] | None:
    """The non-empty records of a file's first bytes, split as the CSV options say (the last line, which
    `truncated` bytes may have cut, left out); None for an unknown encoding name or no whole line."""
    try:
        text = codecs.getincrementaldecoder(csv.encoding)(errors="replace").decode(head, final=not truncated)
    except LookupError:
        return None
    text = text.removeprefix("\ufeff")
    if truncated:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut < 0:
            return None
        text = text[: cut + 1]
    same = csv.escape == csv.quote
    reader = pycsv.reader(
        io.StringIO(text, newline=""),
        delimiter=csv.delimiter,
        quotechar=csv.quote,
        doublequote=same,
        escapechar=None if same else csv.escape,
    )
    # Spark skips blank lines too
    return (record for record in reader if len(record) > 1 or (record and record[0].strip()))


def parse_header(head: bytes, csv: CsvOptions, truncated: bool = False) -> list[str] | None:
    """The first non-empty record of a file's first bytes, split as the CSV options say.

    [] for an empty file; None when it cannot be told from these bytes (an unknown encoding name, a
    first record longer than the bytes read).
    """
    records = _head_records(head, csv, truncated)
    try:
        return next(records, None if truncated else []) if records is not None else None
    except pycsv.Error:
        return None


_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_DOUBLE_WORDS = {"NaN", "Inf", "-Inf", "Infinity", "+Infinity", "-Infinity"}  # the reader's and Java's
_INTEGER_BOUNDS = {"int": 2**31, "bigint": 2**63}


def _surely_typed(text: str, spark_type: str) -> bool:
    """Whether the CSV reader types this text as `spark_type` for certain (False where not sure)."""
    if spark_type == "timestamp":  # no format: what a cast takes; surely this ISO form
        return _surely_date(text, "yyyy-MM-dd HH:mm:ss") or _surely_date(text, "yyyy-MM-dd'T'HH:mm:ss")
    if spark_type.startswith(("date:", "timestamp:")):
        return _surely_date(text, spark_type.partition(":")[2])
    if spark_type in _INTEGER_BOUNDS:
        bound = _INTEGER_BOUNDS[spark_type]
        return bool(_INTEGER.fullmatch(text)) and -bound <= int(text) < bound
    if spark_type == "double":
        return bool(_DOUBLE.fullmatch(text)) or text in _DOUBLE_WORDS
    return text.lower() in ("true", "false")


@functools.cache
def _date_pattern(fmt: str) -> tuple[re.Pattern[str], list[str]]:
    parts = re.findall(r"yyyy|MM|dd|HH|mm|ss|'T'|.", fmt)
    regex = "".join(f"({_DATE_FIELDS[p]})" if p in _DATE_FIELDS else re.escape(p.strip("'")) for p in parts)
    return re.compile(regex, re.ASCII), [p for p in parts if p in _DATE_FIELDS]


def _surely_date(text: str, fmt: str) -> bool:
    """Whether `text` is a real date (and time of day) written exactly as the plain format `fmt` says."""
    pattern, fields = _date_pattern(fmt)
    match = pattern.fullmatch(text)
    if not match:
        return False
    value = dict(zip(fields, map(int, match.groups()), strict=True))
    try:
        datetime(value.get("yyyy", 1970), value.get("MM", 1), value.get("dd", 1), value.get("HH", 0),
                 value.get("mm", 0), value.get("ss", 0))  # fmt: skip
    except ValueError:  # year 0 too: a year to Java, not to Python (not sure, then)
        return False
    return True


_DELIMITERS = (
    ";",
    "\t",
    "|",
    ",",
)  # what a CSV file is often delimited by, tried where the declared one splits nothing


def _other_delimiter(heads: list[tuple[str, bytes | None]], csv: CsvOptions) -> str | None:
    """A message for the files the declared delimiter splits into one column, whose header and first records (at least
    two) all hold another delimiter the same number of times: a `;`-delimited file read as one column of `a;b;c`
    text. None for the others (a file of one column really, a single record)."""
    found = []
    for name, head in heads:
        records = _head_records(head, csv, len(head) >= HEAD_BYTES) if head else None
        try:
            first = list(itertools.islice(records or (), 50))
        except pycsv.Error:
            continue
        if len(first) < 2 or any(len(record) != 1 for record in first):
            continue
        for delimiter in _DELIMITERS:
            counts = {record[0].count(delimiter) for record in first}
            if delimiter != csv.delimiter and len(counts) == 1 and counts != {0}:
                found.append(f"{name} ({delimiter!r}, {counts.pop()} in its header and each of its first rows)")
                break
    if not found:
        return None
    shown = "; ".join(found)
    return (
        f"a file the delimiter {csv.delimiter!r} splits into one column holds another delimiter: {shown}. Read as is, "
        f'each row would be one value. Fix: set "csv": {{"delimiter": ...}} in the dataset\'s config.json'
    )


def untyped_in_heads(heads: list[bytes | None], csv: CsvOptions, names: list[str], typed: dict[str, str]) -> bool:
    """Whether the files' first bytes hold a record the reader may not type: of another width than the header's,
    or with a value in a `typed` column (by position in `names`) the reader may refuse.

    Only a guess of how to read first (`read_csv`'s `split`): what decides is what the whole read finds. So only
    the first HEAD_BYTES of all the files together are judged (a Python parse of 256 KB costs some 30 ms: a run of
    thousands of files would pay seconds for a guess).
    """
    at = {i: typed[n] for i, n in enumerate(names) if n in typed}
    markers = {"", reader_null_marker(csv)}
    judged = 0
    for head in heads:
        if judged >= HEAD_BYTES:
            break
        judged += len(head or b"")
        records = _head_records(head, csv, len(head) >= HEAD_BYTES) if head is not None else None
        try:
            for record in itertools.islice(records or (), 1 if csv.header else 0, None):
                if len(record) != len(names):
                    return True
                if any(record[i] not in markers and not _surely_typed(record[i], t) for i, t in at.items()):
                    return True
        except pycsv.Error:
            return True
    return False


# Encodings in which the quote character is one byte that no other character's bytes contain.
_ONE_BYTE_QUOTE = {"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252"}
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4", ".deflate", ".snappy", ".xz", ".zip")
_SLICE = 16 * 1024**2  # bytes of a mapped file copied at a time to count line breaks in


@dataclass
class CsvScan:
    """What the driver's scan of one CSV file found, following its quotes to the end of the file as the
    CSV reader reads them: a quote opens a quoted value only at the start of a field (elsewhere it is a character
    of the value); inside one, a doubled quote (or the escape character and a quote) is a quote of the value."""

    quoted: bool = False  # the file holds the quote character
    unclosed_line: int | None = None  # the line where a quoted value opens that the file ends inside
    quoted_break: bool = False  # a quoted value holds a line break
    # The kinds of line ending outside quoted values ("CRLF", "LF", "CR"), in that order; of a file with more than
    # one, the line each first ends.
    endings: list[str] = field(default_factory=list)
    first_line: dict[str, int] = field(default_factory=dict)

    @property
    def mixed(self) -> bool:
        return len(self.endings) > 1


def _scan_csv_files(uris: list[str], csv: CsvOptions, spark: SparkSession | None = None) -> list[CsvScan | None]:
    """Each file's `CsvScan`; None for a file not scanned: an encoding in which the quote, delimiter or escape is not
    one byte of its own, a file that could not be opened, and (see `_scan_copied`) an S3 object or compressed file
    without `spark`, one larger than the driver's disk allows, or compressed in a way Spark does not decompress."""
    try:
        encoding = codecs.lookup(csv.encoding).name
    except LookupError:
        return [None] * len(uris)
    if encoding not in _ONE_BYTE_QUOTE or any(ord(c) > 127 for c in (csv.quote, csv.delimiter, csv.escape)):
        return [None] * len(uris)
    scans: list[CsvScan | None] = [None] * len(uris)
    copied: list[int] = []  # files read through Spark's file system to a local copy
    for i, uri in enumerate(uris):
        path = uri.removeprefix("file://") if uri.startswith("file://") else uri
        if "://" in path or path.startswith("file:") or path.lower().endswith(_COMPRESSED):
            copied.append(i)
            continue
        try:
            with open(path, "rb") as handle:
                scans[i] = _scan_mapped(handle, csv, encoding)
        except (OSError, ValueError):
            scans[i] = None
    if copied and spark is not None:
        workers = min(_COPY_WORKERS, len(copied))
        try:
            room = (shutil.disk_usage(tempfile.gettempdir()).free - _COPY_DISK_SPARE) // workers
        except OSError:
            room = 0
        limit = min(_COPY_LIMIT, room)
        if limit > 0:
            with ThreadPoolExecutor(max_workers=workers) as pool:  # S3 round trips; the scans take turns (GIL)
                found = list(pool.map(lambda i: _scan_copied(spark, uris[i], csv, encoding, limit), copied))
            for i, scan in zip(copied, found, strict=True):
                scans[i] = scan
    return scans


# A file the driver cannot map where it is (an S3 object, a compressed file) is copied to local disk (decompressed)
# by Spark's own file system and codecs in the JVM, never through Py4J (about 20 MB/s there, 500+ MB/s here), and
# scanned there: up to this many bytes a file, and no more than the temporary folder's free space (less a spare
# GiB) shared by the copies at once. A larger file is not scanned (`Source.notes` says so).
_COPY_LIMIT = 4 * 1024**3
_COPY_DISK_SPARE = 1024**3
_COPY_WORKERS = 4


def _scan_mapped(handle: Any, csv: CsvOptions, encoding: str) -> CsvScan:
    if os.fstat(handle.fileno()).st_size == 0:
        return CsvScan()
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _scan_csv(data, csv, encoding)


def _scan_copied(spark: SparkSession, uri: str, csv: CsvOptions, encoding: str, limit: int) -> CsvScan | None:
    """`CsvScan` of a file as Spark reads it (its file system: s3:// on Glue; its codecs: .gz, .bz2), copied by the
    JVM to a local temporary file that is mapped, scanned and deleted. None: the file is larger than `limit`
    (decompressed), is compressed in a way Spark does not decompress, or could not be read."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    handle, local = tempfile.mkstemp(prefix="dw-scan-", suffix=".csv")
    os.close(handle)
    try:
        path = jvm.org.apache.hadoop.fs.Path(uri)
        codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(path)
        if codec is None and uri.lower().endswith(_COMPRESSED):
            return None  # Spark reads its compressed bytes as they are: no text to scan
        raw = path.getFileSystem(conf).open(path)
        stream = raw
        try:
            if codec is not None:
                stream = codec.createInputStream(raw)
            out = jvm.java.io.FileOutputStream(local)
            try:  # up to limit + 1 bytes, so a larger file is told apart without copying it whole
                size = jvm.org.apache.commons.io.IOUtils.copyLarge(stream, out, 0, limit + 1)
            finally:
                out.close()
        finally:
            stream.close()
            if stream is not raw:
                raw.close()
        if size > limit:
            return None
        with open(local, "rb") as copy:
            return _scan_mapped(copy, csv, encoding)
    except Exception:  # noqa: BLE001 - Py4J or the file system: not scanned, as a file that could not be opened
        return None
    finally:
        os.unlink(local)


@functools.cache
def _csv_patterns(quote: str, delimiter: str, escape: str) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """(up to 4096 fields, each with the delimiter or line break after it, whose quoted values hold no line break;
    one closed quoted value of any length). Possessive: nothing is tried twice."""
    q, d, e = (re.escape(c.encode("ascii")) for c in (quote, delimiter, escape))
    if quote == escape:
        one_line = b"%s[^%s\r\n]*+(?:%s%s[^%s\r\n]*+)*+%s" % (q, q, q, q, q, q)
        quoted = b"%s[^%s]*+(?:%s%s[^%s]*+)*+%s" % (q, q, q, q, q, q)
    else:
        one_line = b"%s[^%s%s\r\n]*+(?:%s[^\r\n][^%s%s\r\n]*+)*+%s" % (q, q, e, e, q, e, q)
        quoted = b"%s[^%s%s]*+(?:%s[\\s\\S][^%s%s]*+)*+%s" % (q, q, e, e, q, e, q)
    rest = b"[^%s\r\n]*+" % d  # after a closing quote, or in a value that does not open with one: plain text
    unquoted = b"(?:[^%s%s\r\n]%s)?" % (q, d, rest)
    run = b"(?:(?:%s%s|%s)[%s\r\n]){0,4096}+" % (one_line, rest, unquoted, d)
    return re.compile(run), re.compile(quoted)


def _scan_csv(data: Any, csv: CsvOptions, encoding: str) -> CsvScan:
    """One file's `CsvScan`, from its bytes (`data`: an mmap, never copied whole). A regular expression takes
    thousands of fields at a time; only a quoted value holding a line break (or never closed), or a last field
    without a line break after it, is looked at on its own."""
    quote = csv.quote.encode("ascii")
    scan = CsvScan(quoted=data.find(quote) >= 0)
    inside: list[tuple[int, int]] = []  # quoted values holding line breaks: (start, end)
    if scan.quoted:
        run, quoted = _csv_patterns(csv.quote, csv.delimiter, csv.escape)
        rest = re.compile(b"[^%s\r\n]*+" % re.escape(csv.delimiter.encode("ascii")))
        pos = 3 if encoding == "utf-8" and data[:3] == codecs.BOM_UTF8 else 0
        size = len(data)
        while pos < size:
            end = run.match(data, pos).end()
            if end > pos:
                pos = end
                continue
            if data[pos : pos + 1] == quote:  # a quoted value the run did not take
                value = quoted.match(data, pos)
                if value is None:
                    scan.unclosed_line = _breaks(data, 0, pos)[3] + 1
                    break
                if sum(_breaks(data, pos, value.end())[:3]):
                    scan.quoted_break = True
                    inside.append((pos, value.end()))
                pos = value.end()
            pos = rest.match(data, pos).end() + 1  # the rest of the field, and its delimiter or line break
    if data.find(b"\r") < 0:  # LF alone (or no line break): not counted
        scan.endings = ["LF"] if data.find(b"\n") >= 0 else []
        return scan
    crlf, lf, cr, _ = _breaks(data, 0, len(data))
    for start, end in inside:
        in_value = _breaks(data, start, end)
        crlf, lf, cr = crlf - in_value[0], lf - in_value[1], cr - in_value[2]
    scan.endings = [kind for kind, n in (("CRLF", crlf), ("LF", lf), ("CR", cr)) if n]
    if scan.mixed:
        scan.first_line = _first_lines(data, inside)
    return scan


def _breaks(data: Any, start: int, end: int) -> tuple[int, int, int, int]:
    """(CRLF, lone LF, lone CR, all line breaks) in data[start:end], counted a slice at a time."""
    crlf = lf = cr = 0
    for at in range(start, end, _SLICE):
        chunk = data[at : min(at + _SLICE, end)]
        crlf += chunk.count(b"\r\n")
        lf += chunk.count(b"\n")
        cr += chunk.count(b"\r")
        if chunk.endswith(b"\r") and at + len(chunk) < end and data[at + len(chunk)] == 10:
            crlf += 1  # a CRLF across two slices
    return crlf, lf - crlf, cr - crlf, crlf + (lf - crlf) + (cr - crlf)


def _first_lines(data: Any, inside: list[tuple[int, int]]) -> dict[str, int]:
    """The line each kind of line ending outside quoted values first ends (for the message of a mixed file)."""
    first: dict[str, int] = {}
    spans = iter(inside)
    span = next(spans, None)
    for line, match in enumerate(re.finditer(rb"\r\n|\r|\n", data), start=1):
        while span is not None and match.start() >= span[1]:
            span = next(spans, None)
        if span is not None and span[0] <= match.start() < span[1]:
            continue
        first.setdefault({b"\r\n": "CRLF", b"\n": "LF", b"\r": "CR"}[match.group()], line)
        if len(first) == 3:
            break
    return first


def _spark_header(spark: SparkSession, uri: str, csv: CsvOptions) -> list[str]:
    return _csv_reader(spark, csv, csv.header, width=None).csv(uri).columns


def _words(text: str) -> str:
    """A header's words, as cleaning reads them but keeping every script's letters and digits: `Unit Price`,
    `unit_price` and `UnitPrice` are `unit_price`, `Größe` is `grösse`, `店名` is `店名`. A header of no letter
    or digit (`#`) is its text."""
    return re.sub(r"[\W_]+", "_", _folded(camel_split(text))).strip("_") or _folded(text)


def _match_keys(headers: list[list[str]]) -> list[list[tuple[str, int]]]:
    """Each file's columns as matched across files: (key, occurrence), never by a column's position.

    A header is trimmed (its BOM and quotes are gone already) and in one Unicode form (NFC). Headers with the
    same words match (`Unit Price`, ` unit_price`: see `_words`), as they clean to one name, unless one file
    holds two of them: those are then told apart in every file, case-folded (`Unit Price`, `UNIT PRICE`
    match; `unit_price` is another column), or as written if a file holds two spellings (`Name`, `name`).
    Letters cleaning drops are never dropped here: `Größe` and `Grüße`, `店名` and `住所` are different
    columns. A text written twice in one header (or two empty headers) is its 1st, 2nd occurrence.
    """
    exact = [[unicodedata.normalize("NFC", name.strip()) for name in header] for header in headers]
    by_words: set[str] = set()  # words two texts of one file share
    by_folded: set[str] = set()  # case-folded text two spellings of one file share
    for header in exact:
        distinct = set(header)
        by_words |= {w for w, n in Counter(_words(t) for t in distinct).items() if n > 1}
        by_folded |= {f for f, n in Counter(_folded(t) for t in distinct).items() if n > 1}

    def key(text: str) -> str:
        if _words(text) not in by_words:
            return f"w:{_words(text)}" if text else ""
        return f"f:{_folded(text)}" if _folded(text) not in by_folded else f"x:{text}"

    keyed = []
    for header in exact:
        seen: Counter[str] = Counter()
        keys = []
        for text in header:
            seen[key(text)] += 1
            keys.append((key(text), seen[key(text)]))
        keyed.append(keys)
    return keyed


def _unmatchable(files: list[tuple[str, list[str]]], keys: list[list[tuple[str, int]]]) -> str | None:
    """Why these files' columns cannot be matched by header, else None: a header empty or written twice, in
    files whose headers differ (which such column is which is then only a guess from its position)."""
    if len({tuple(k for k, _ in file_keys) for file_keys in keys}) == 1:
        return None  # one header (give or take case and spaces): its columns are read alike in every file
    for key in dict.fromkeys(k for file_keys in keys for k, _ in file_keys):
        holding = [(uri, header, file_keys) for (uri, header), file_keys in zip(files, keys, strict=True)
                   if any(k == key for k, _ in file_keys)]  # fmt: skip
        if len({tuple(k for k, _ in file_keys) for _, _, file_keys in holding}) == 1:
            continue
        if key == "" or any(sum(k == key for k, _ in file_keys) > 1 for _, _, file_keys in holding):
            what = "an empty header" if key == "" else f"the header {key[2:]!r} written more than once"
            shown = "; ".join(f"{_file(uri)}: {', '.join(map(repr, header))}" for uri, header, _ in holding)
            return (
                f"cannot match the columns of these CSV files by header: {what}, in files whose headers differ "
                f"({shown}); which such column is which would be a guess from its position. Give every column "
                "its own name in the header, or drop files with different headers in separate runs"
            )
    return None


def read_csv(
    spark: SparkSession, uris: list[str], csv: CsvOptions, typed: dict[str, str] | None = None, split: bool = True
) -> Source:
    """CSV, matched by header name across files; one Spark read per distinct header.

    Each file's header is read first (a few KB per file) and given to Spark as the schema, so a
    run with one header is one read and Spark does not sniff the header itself. Files whose
    headers differ (another order, a column more or less) are read per header and unioned by
    name; a column some files lack is NULL in their rows. Headers match on their words (`_match_keys`), so
    `Unit Price` in one file and `unit_price` in another are one column; headers that would be matched by position
    (empty, written twice, in files whose headers differ) fail the read (ValueError). A record whose field count
    differs from its header's (a ragged row, half of a line-broken row) gets a `_dw_malformed` reason.

    `csv.multiline` None (the default) reads line by line, which Spark splits across tasks, and
    marks `_dw_suspect` where a quote character appears in a value or a malformed record. A quoted
    line break always leaves one: the row's last half holds the closing quote, either inside a
    value or opening an unclosed one, which makes the record malformed. No suspect row: the file
    had no quoted line breaks and this read is right. A single-column file, where an unclosed
    quote is not malformed, is read with multiline on.

    `typed` ({final name: type}, from `reader_types`): columns the reader parses itself when the files have one
    header (see `_read_group`); `Source.typed` says which it did. `split` False: a record the reader could not
    type fails the read, which the caller then reads with `split` (`Source.unsplit`).
    """
    heads = read_heads(spark, uris)
    other = _not_text([_file(uri) for uri in uris], heads, "csv")
    if other:
        raise ValueError(other)
    wide = _wide_texts([_file(uri) for uri in uris], heads, csv.encoding)
    if wide:
        raise ValueError(f"{'; '.join(wide)}, or convert the file to UTF-8")
    headers: list[list[str] | None] = [
        parse_header(head, csv, truncated=len(head) >= HEAD_BYTES) if head is not None else None for head in heads
    ]
    headers = [h if h is not None else _spark_header(spark, uri, csv) for h, uri in zip(headers, uris, strict=True)]
    files = [(uri, h) for uri, h in zip(uris, headers, strict=True) if h]  # empty files have no rows
    if not files:
        return Source(spark.createDataFrame([], StructType([])))
    other = _other_delimiter([(_file(uri), head) for uri, head in zip(uris, heads, strict=True)], csv)
    if other:
        raise ValueError(other)
    wide = [(uri, len(h)) for uri, h in files if len(h) > MAX_CSV_COLUMNS]
    if wide:
        shown = ", ".join(f"{_file(uri)} ({width} columns)" for uri, width in wide)
        raise ValueError(
            f"{shown}: more columns than the {MAX_CSV_COLUMNS} the bronze job reads from a CSV file (Spark's CSV "
            "reader and plans stop there). Fix: write fewer columns; for a DynamoDB table, whose CSV has a column per "
            "distinct attribute name in the run, keep varying keys in one map attribute (exported as one JSON "
            "column) rather than as attributes of their own"
        )
    guess = csv.multiline is None and max(len(h) for _, h in files) > 1
    # The driver follows each file's quotes to its end (`CsvScan`; an S3 object or compressed file from a local
    # copy): a record no read gets right is refused, and a file whose lines end in more than one way is read line by
    # line (see `_unreadable`).
    scans = _scan_csv_files([uri for uri, _ in files], csv, spark)
    scanned = all(scan is not None for scan in scans)
    # Lines that end in LF, with a CR alone here and there outside quotes (a value's carriage return): each CR would
    # end a line, and cut its row in two, the first half kept where its width is the header's. Read with LF alone
    # ending a line, a CR is a character of its value. Only where no file's lines end in CRLF or in CR alone.
    line_sep = (
        "\n"
        if scanned
        and all(scan.endings in ([], ["LF"], ["LF", "CR"]) for scan in scans if scan is not None)
        and any(scan.endings == ["LF", "CR"] for scan in scans if scan is not None)
        else None
    )
    lone_cr = []  # what the run's notes say of such files: a CR taken for a character may have ended a row
    if line_sep:
        lone_cr = [
            f"{_file(uri)} (first on line {scan.first_line.get('CR', '?')})"
            for (uri, _), scan in zip(files, scans, strict=True)
            if scan is not None and scan.mixed
        ]
        scans = [replace(scan, endings=["LF"]) if scan is not None and scan.mixed else scan for scan in scans]
    refused = _unreadable([_file(uri) for uri, _ in files], scans, csv)
    if refused:
        raise ValueError(refused)
    if csv.multiline is not False and any(scan is not None and scan.mixed for scan in scans):
        # Read whole, the reader ends records at the first kind of line ending it finds and takes the others as
        # characters of a value (the rows after one merge); line by line, every kind ends a line. No quoted value
        # holds a line break (`_unreadable`), so line by line is right, and no row is suspect.
        guess, csv = False, csv.model_copy(update={"multiline": False})
    if guess and scanned and not any(scan.quoted for scan in scans if scan is not None):
        # No quote character anywhere, so no quoted line break: line by line is right, and no row is suspect.
        guess, csv = False, csv.model_copy(update={"multiline": False})
    if csv.multiline is None and not guess:
        csv = csv.model_copy(update={"multiline": True})
    groups: dict[tuple[str, ...], HeaderGroup] = {}
    if not csv.header:
        width = len(files[0][1])
        names = clean_names([f"_c{i}" for i in range(width)])
        final = dict(enumerate(names))
        groups[()] = HeaderGroup(
            [uri for uri, _ in files],
            names,
            [f"_c{i}" for i in range(width)],
            [uri for uri, h in files if len(h) == width],  # Spark infers the width from the first row it sees
            line_sep,
        )
        expected = f"the first row of {_file(files[0][0])} has {width}"
    else:
        keys = _match_keys([header for _, header in files])
        unmatchable = _unmatchable(files, keys)
        if unmatchable:
            raise ValueError(unmatchable)
        originals: dict[tuple[str, int], tuple[str, int]] = {}  # key: (its first file's header, its position)
        for (_, header), file_keys in zip(files, keys, strict=True):
            for position, (key, name) in enumerate(zip(file_keys, header, strict=True), start=1):
                originals.setdefault(key, (name, position))
        names = clean_names([n for n, _ in originals.values()], positions=[p for _, p in originals.values()])
        final = dict(zip(originals, names, strict=True))
        for (uri, header), file_keys in zip(files, keys, strict=True):
            group = groups.setdefault(
                tuple(header), HeaderGroup([], [final[k] for k in file_keys], list(header), line_sep=line_sep)
            )
            group.uris.append(uri)
        expected = None
    # Typed by the reader only when every file has the same header: one frame, one set of raw-text fields.
    typed = {n: t for n, t in (typed or {}).items() if n in final.values()} if len(groups) == 1 else {}
    # A file whose first records the reader would not type (padded numbers, a second null marker, ragged rows)
    # is read with the split at once: read as a clean file first, it would be read twice.
    split = split or (bool(typed) and untyped_in_heads(heads, csv, next(iter(groups.values())).names, typed))
    frames = [
        _read_group(spark, csv, g, expected or f"header has {len(g.names)}", guess, typed, split)
        for g in groups.values()
    ]
    df = frames[0]
    for frame in frames[1:]:
        df = df.unionByName(frame, allowMissingColumns=True)
    ordered = list(final.values())
    missing = {}
    for g in groups.values():
        absent = [n for n in ordered if n not in g.names]
        for uri in g.uris if absent else []:
            missing[_file(uri)] = absent
    renamed: dict[str, str] = {}
    for g in groups.values():
        renamed.update(renamed_columns(g.header, g.names))
    internal = [] if typed and not split else [MALFORMED, RAW]
    if guess:
        internal.append(SUSPECT)
    if typed and split:
        internal += [SPLIT, DOUBTFUL]
    unscanned = [_file(uri) for (uri, _), scan in zip(files, scans, strict=True) if scan is None]
    notes = [
        f"not scanned for a quoted value never closed or lines ending in more than one way: {', '.join(unscanned)} "
        f"(larger than {_COPY_LIMIT >> 30} GiB or the driver's free disk, compressed in a way Spark does not "
        "decompress, unreadable to the driver, or an encoding whose quote is not one byte); rows of such a file can "
        "be lost without a failure"
    ] if unscanned else []  # fmt: skip
    if lone_cr:
        notes.append(
            f"a carriage return alone, outside quotes, is read as a character of its value, the lines ending in LF: "
            f"{', '.join(lone_cr)}; if some lines of such a file end in CR alone (an old Mac file joined to it), "
            "convert it to one line ending and run again"
        )
    return Source(df.select(*ordered, *internal), renamed, missing, list(groups.values()), guess, typed, notes)


def _unreadable(names: list[str], scans: list[CsvScan | None], csv: CsvOptions) -> str | None:
    """Why the scanned files cannot be read without losing rows, else None: a file ends inside a quoted value (read
    whole, every line after its quote is one value; line by line, the quote is dropped), or a file's lines end in
    more than one way (CRLF and LF) where it must be read whole: a quoted value holds a line break, or a file that
    was not scanned may hold one. Each file named, with its line."""
    unclosed = [f"{name}: the quote opened on line {scan.unclosed_line}" for name, scan in zip(names, scans, strict=True)
                if scan is not None and scan.unclosed_line is not None]  # fmt: skip
    if unclosed:
        return (
            f"a quoted value is never closed ({'; '.join(unclosed)}): the file ends inside it, so whether the lines "
            "after it are rows or part of that value cannot be told (the reader would take them all as one value, "
            f"or drop the quote). Close the quote, or write a {csv.quote} that is part of a value as "
            f"{csv.quote}{csv.quote} inside a quoted value, and run again"
        )
    mixed = [(name, scan) for name, scan in zip(names, scans, strict=True) if scan is not None and scan.mixed]
    if not mixed or csv.multiline is False:
        return None
    breaks = [name for name, scan in zip(names, scans, strict=True) if scan is not None and scan.quoted_break]
    unscanned = [name for name, scan in zip(names, scans, strict=True) if scan is None]
    if not breaks and not unscanned:
        return None
    shown = "; ".join(
        f"{name}: " + ", ".join(f"{kind} first on line {scan.first_line.get(kind, '?')}" for kind in scan.endings)
        for name, scan in mixed
    )
    why = (
        f"a quoted value holds a line break in {', '.join(breaks)}"
        if breaks
        else f"{', '.join(unscanned)} could not be scanned for quoted line breaks (too large for the driver's disk, "
        "or unreadable there)"
    )
    return (
        f"lines end in more than one way ({shown}) and {why}, so the files must be read whole, where the reader "
        "ends records at the first kind of line ending only and would merge the rows after another kind. Convert "
        "the file to one kind of line ending (all CRLF or all LF), or set csv.multiline to false if no value "
        "holds a line break, and run again"
    )


def spark_file_name(spark: SparkSession, uri: str) -> str:
    """The name `input_file_name()` gives this file's rows, after its last `/`: Spark's qualified path, as a URI
    (so `a b.csv` is `a%20b.csv`)."""
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri)
    qualified = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).makeQualified(path)
    return str(qualified.toUri().toString()).rsplit("/", 1)[-1]


def _file(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def reader_null_marker(csv: CsvOptions) -> str | None:
    """The null marker `read_csv` has Spark's CSV reader turn into null as it parses: the first non-empty one
    without a quote, delimiter or escape character in it (such a marker is compared after reading instead)."""
    special = {csv.quote, csv.delimiter, csv.escape}
    return next((v for v in csv.null_values if v and not any(c in special for c in v)), None)


def _read_group(
    spark: SparkSession,
    csv: CsvOptions,
    group: HeaderGroup,
    expected: str,
    suspect: bool = False,
    typed: dict[str, str] | None = None,
    split: bool = True,
) -> DataFrame:
    """One header group's rows, text by final name plus `_dw_malformed` (and `_dw_suspect`).

    With `typed`, those columns are parsed by the reader (what a bare Spark job does) and a record where one
    does not parse gets its raw text in `_dw_corrupt`, like a record of the wrong width. Such a record
    (normally none) is split again as text (`_dw_split`), where `prepare_types` finds the typed columns' text
    and types and checks it as a text read would; a split that finds the wrong field count is the malformed
    record of a text read. `_dw_doubtful` marks such a record whose raw text may not be the record.

    `split` False: no `_dw_malformed`, `_dw_split` or `_dw_doubtful`. The reader reads in FAILFAST mode with no
    corrupt-record column, so the plan holds only what a bare job's plan holds: such a record (of the wrong
    width or not) fails the read (`errors.malformed_record` tells that failure apart), and the run reads again
    with `split`. Asking for the corrupt-record column alone has Spark copy every field of every row into a
    second row (about 2 CPU seconds in a clean 300 MB file, measured).
    """
    typed = typed or {}
    fields = [StructField(n, _reader_type(typed[n]) if n in typed else StringType()) for n in group.names]
    clean = bool(typed) and not split
    if clean:
        df = (
            _csv_reader(spark, csv, csv.header, len(fields), group.line_sep)
            .schema(StructType(fields))
            .option("mode", "FAILFAST")
        )
    else:
        schema = StructType([*fields, StructField(CORRUPT, StringType())])
        df = (
            _csv_reader(spark, csv, csv.header, len(fields), group.line_sep)
            .option("columnNameOfCorruptRecord", CORRUPT)
            .schema(schema)
        )
    for option, kind in (("dateFormat", "date:"), ("timestampFormat", "timestamp:")):
        for fmt in {t.removeprefix(kind) for t in typed.values() if t.startswith(kind)}:  # one at most
            df = df.option(option, fmt)
    if any(t.startswith(("date", "timestamp")) for t in typed.values()):
        # A date or timestamp is parsed by its format alone: with the fallback to Spark 2's parser, the reader
        # would also take what the format does not (`2026-1-1`).
        df = df.option("enableDateTimeParsingFallback", False)
    marker = reader_null_marker(csv)
    options = {"sep": csv.delimiter, "quote": csv.quote, "escape": csv.escape, "mode": "PERMISSIVE"}
    if group.line_sep:
        options["lineSep"] = group.line_sep  # a CR alone is a character of its value there too
    if marker is not None:
        # The reader compares each field with nullValue as it parses (the comparison it makes anyway), instead
        # of a comparison per value of every column afterwards. An empty field, quoted or not, stays null: the
        # reader gives an unquoted one nullValue and a quoted one emptyValue, so both are set to the marker.
        df = df.option("nullValue", marker).option("emptyValue", marker)
        options.update(nullValue=marker, emptyValue=marker)
    df = df.csv(group.uris)
    if clean:
        columns = [*group.names]
        if suspect:
            # A typed value holds no quote character; the text columns are tested as a text read tests them.
            quoted = [F.col(name).contains(csv.quote) for name in group.names if name not in typed]
            columns.append(_any_of(quoted).alias(SUSPECT))
        return df.select(*columns)
    reason = F.format_string(f"malformed: %d fields, {expected}", _field_count(F.col(CORRUPT), csv))
    reason = _tied_to(reason, group.names)
    if not typed:
        header = _header_copy(csv, group, [F.col(name) for name in group.names], marker)
        malformed = F.when(F.col(CORRUPT).isNotNull(), reason).when(header, HEADER_COPY)
        columns = [*group.names, malformed.alias(MALFORMED), F.col(CORRUPT).alias(RAW)]
        if suspect:
            quoted = [F.col(name).contains(csv.quote) for name in [CORRUPT, *group.names]]
            columns.append(_any_of(quoted).alias(SUSPECT))
        return df.select(*columns)
    # The same options as the file read (header aside): the same fields and nulls.
    text_schema = ", ".join(f"`{n}` STRING" for n in [*group.names, CORRUPT])
    split = F.from_csv(F.col(CORRUPT), text_schema, {**options, "columnNameOfCorruptRecord": CORRUPT})
    df = df.select(*group.names, F.when(F.col(CORRUPT).isNotNull(), split).alias(SPLIT), CORRUPT)
    wrong_width = F.col(SPLIT)[CORRUPT].isNotNull()
    # A text column's value is the reader's in any record (a record of the wrong width is rejected whatever
    # its values); a typed column's, where the reader could not type it, is its text in the split.
    texts = [F.col(SPLIT)[name] if name in typed else F.col(name) for name in group.names]
    header = _header_copy(csv, group, texts, marker)
    columns = [
        *group.names,
        F.when(wrong_width, reason).when(header, HEADER_COPY).alias(MALFORMED),
        F.when(wrong_width, F.col(CORRUPT)).alias(RAW),
    ]
    if suspect:
        # As a text read: a quote in a record of the wrong width, or in any value.
        values = [F.col(SPLIT)[name] if name in typed else F.col(name) for name in group.names]
        quoted = [wrong_width & F.col(CORRUPT).contains(csv.quote), *(v.contains(csv.quote) for v in values)]
        columns.append(_any_of(quoted).alias(SUSPECT))
    # The raw text Spark keeps of a record is not always the record: its CSV parser drops a trailing form feed
    # (a last field of only that reads as empty), and splitting a text with U+0000 or U+FFFF stops there.
    doubtful = F.col(CORRUPT).contains("\u0000") | F.col(CORRUPT).contains("\uffff")
    if group.names[-1] in typed:
        doubtful = doubtful | (~wrong_width & F.col(CORRUPT).endswith(csv.delimiter))
    columns.append(F.when(F.col(SPLIT).isNotNull(), doubtful).otherwise(False).alias(DOUBTFUL))
    return df.select(*columns, SPLIT)


HEADER_COPY = "malformed: a copy of the file's header"


def _header_copy(csv: CsvOptions, group: HeaderGroup, texts: list[Column], marker: str | None) -> Column:
    """Whether a record's fields (`texts`, as the reader split them) are its file's header again: files joined
    together, or an export that writes its header on every page. A header of one field, whose value could be a
    value, and a headerless file have none."""
    if not csv.header or len(group.header) < 2:
        return F.lit(False)
    same = []
    for position, (name, text) in enumerate(zip(group.header, texts, strict=True)):
        if name in ("", marker):
            same.append(text.isNull())
        elif position == 0:  # first: most rows differ here, and the rest is not compared
            same.append(text.isin(name, "\ufeff" + name))  # a joined file's byte order mark
        else:
            same.append(text == name)
    return F.coalesce(_all(same), F.lit(False))


def _field_count(record: Column, csv: CsvOptions) -> Column:
    """Fields in a raw record: delimiters outside quotes, plus one (for the message; Spark did the flagging)."""

    def esc(char: str) -> str:
        return char if char.isalnum() else "\\" + char

    q, d, e = esc(csv.quote), esc(csv.delimiter), esc(csv.escape)
    # A quoted value opens at the start of a field (elsewhere a quote is a plain character) and runs
    # to its closing quote, or to the end if unclosed. Written as an unrolled loop: linear, no recursion.
    inner = f"[^{q}]*(?:{q}{q}[^{q}]*)*" if csv.escape == csv.quote else f"[^{q}{e}]*(?:{e}.[^{q}{e}]*)*"
    unquoted = F.regexp_replace(record, f"(^|{d}){q}{inner}({q}|$)", "$1")
    return F.length(F.regexp_replace(unquoted, f"[^{d}]", "")) + 1


def infer_types(
    spark: SparkSession,
    uris: list[str],
    csv: CsvOptions,
    columns: list[str],
    groups: list[HeaderGroup] | None = None,
) -> dict[str, str]:
    """Spark's own inference for CSV columns the config does not declare (one extra pass), and a pass over the text
    of those it took for numbers: one that a number would not give back (`_NUMBER_TEXT`) stays a string.

    Per header group when the files' headers differ; a column inferred differently in two groups is a string.
    """
    found: dict[str, set[str]] = {}
    for group in groups or [HeaderGroup(uris, columns, columns)]:

        def reader(width: int = len(group.names), line_sep: str | None = group.line_sep) -> Any:  # a new one each time
            return _csv_reader(spark, csv, csv.header, width, line_sep).option(
                "nullValue", csv.null_values[0] if csv.null_values else ""
            )

        files = group.infer_from or group.uris
        inferred = reader().option("inferSchema", True).csv(files)
        # Headerless files take their width from whichever line Spark sees first; a column it did not
        # see stays a string (its rows of another width are quarantined as malformed anyway).
        fields = list(zip(group.names, inferred.schema.fields, strict=False))
        numbers = [(i, name) for i, (name, f) in enumerate(fields) if isinstance(f.dataType, NumericType)]
        strings = reader().csv(files)
        marker = csv.null_values[0] if csv.null_values else ""
        copies = _header_copy(csv, group, [_column((c,)) for c in strings.columns], marker)
        kept_as_text = _written_as_text(strings.filter(~copies), numbers) if numbers else set()
        for name, f in fields:
            found.setdefault(name, set()).add("string" if name in kept_as_text else f.dataType.simpleString())
    return {name: types.pop() if len(types) == 1 else "string" for name, types in found.items()}


# A number's text that a number type gives back, give or take its form (`1.50` is 1.5, `1e3` 1000.0): ASCII digits,
# an optional '-', point and exponent, no space, sign or suffix. Java, and so Spark's inference, also reads `+7`,
# ` 7`, `12d`, `0x1p3` and other scripts' digits (`٠٠٧`) as numbers: typed, `٠٠٧`, `007` and `7` become one value
# (one key), and a zip code `02101` loses its digit. A column with any other text, or a leading zero, stays a string.
_NUMBER_TEXT = r"^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$|^-?Infinity$|^NaN$"
_LEADING_ZERO = r"^-?0[0-9]"


def _written_as_text(strings: DataFrame, numbers: list[tuple[int, str]]) -> set[str]:
    """Of the columns Spark inferred as numbers (position, name), those with a value that is not `_NUMBER_TEXT` or
    has a leading zero: one pass over their text. They stay strings."""
    columns = strings.columns

    def text(value: Column) -> Column:
        return ~value.rlike(_NUMBER_TEXT) | value.rlike(_LEADING_ZERO)

    flags = strings.agg(*[F.max(text(_column((columns[i],)))).alias(f"c{i}") for i, _ in numbers]).first()
    return {name for i, name in numbers if flags is not None and flags[f"c{i}"]}


# ------------------------------------------------------------------ typing

# Declared types Spark's CSV reader may parse itself: where it accepts a value, `_typed` accepts it too and
# gives the same value (tests/jobs/test_reader_types.py checks this on hostile values through both paths).
# Where it does not, the record is typed from its text as before. Also a date or timestamp with a plain format
# (see `_plain_format`). Not decimals: the reader's parser for those accepts text that `_typed` rejects (`1,000`,
# extra places it rounds). Not doubles, nor timestamps without a format: the reader takes what `_typed` rejects
# (`1e400` as infinity, `1e-400` as 0; a time alone as today's, `2026` as its first instant), and leaves no text
# to tell them from `Infinity`, `0` or `2026-01-01`.
_READER_TYPES: dict[str, DataType] = {
    "int": IntegerType(),
    "bigint": LongType(),
    "boolean": BooleanType(),
}
# A date or timestamp format the reader is given (`dateFormat`, `timestampFormat`, one each per read) only if made
# of these fields and separators: numbers only, no zone, no text, so its parse and `to_date(text, format)`'s or
# `to_timestamp`'s agree (the same pattern builder; the reader's lenient fallback of Spark 2 is turned off).
# {field: digits it takes}.
_DATE_FIELDS = {"yyyy": "[0-9]{4}", "MM": "[0-9]{2}", "dd": "[0-9]{2}", "HH": "[0-9]{2}", "mm": "[0-9]{2}",
                "ss": "[0-9]{2}"}  # fmt: skip
_DATE_FORMAT = re.compile(r"(?:yyyy|MM|dd|HH|mm|ss|'T'|[-/. :_])+")
# Decimal digits outside ASCII (Arabic-Indic, Devanagari, fullwidth...; the Basic Multilingual Plane, where
# Java's Integer.parseInt, which the CSV reader uses, accepts them) and their ASCII digit.
_UNICODE_DIGITS = "".join(chr(c) for c in range(0x80, 0x10000) if unicodedata.category(chr(c)) == "Nd")
_ASCII_DIGITS = "".join(str(unicodedata.decimal(c)) for c in _UNICODE_DIGITS)


def reader_types(config: DatasetConfig) -> dict[str, str]:
    """Declared CSV columns the reader can type (see `_READER_TYPES`), {name: type}. The reader takes one date
    format and one timestamp format: the dates of the dataset's most used plain format (`_plain_format`),
    typed `date:FORMAT`, and the timestamps of its most used one, `timestamp:FORMAT`.

    Not a column a null marker the reader does not handle (`reader_null_marker`) could parse as: that text
    must become null, and the reader would give it a value.
    """
    marker = reader_null_marker(config.csv)
    others = [v for v in config.csv.null_values if v not in ("", marker)]
    formats = {kind: Counter() for kind in ("date", "timestamp")}
    for t in config.column_types.values():
        if t.spark_type in formats and _plain_format(t.fmt):
            formats[t.spark_type][t.label] += 1
    chosen = {counts.most_common(1)[0][0] for counts in formats.values() if counts}
    found = {}
    for name, ctype in config.column_types.items():
        if any(_may_parse(v, ctype.spark_type) for v in others):
            continue
        if ctype.spark_type in _READER_TYPES or ctype.label in chosen:
            found[name] = ctype.label
    return found


def _plain_format(fmt: str | None) -> bool:
    """A date or timestamp format the reader may be given (`_DATE_FORMAT`)."""
    return bool(fmt and _DATE_FORMAT.fullmatch(fmt))


def _reader_type(typed: str) -> DataType:
    kind = typed.partition(":")[0]
    return {"date": DateType(), "timestamp": TimestampType()}.get(kind) or _READER_TYPES[typed]


def _may_parse(text: str, spark_type: str) -> bool:
    word = text.strip().lower()
    if spark_type == "boolean":
        return word in ("true", "false")
    return any(c.isdigit() for c in text) or word.lstrip("+-") in ("nan", "inf", "infinity")


def _typed(
    column: Column, source_is_string: bool, ctype: ColumnType, source: DataType | None = None, json: bool = False
) -> Column:
    """`column` as the declared type, null where it does not hold one (the checks give the reason).

    `source`: the type of a source that is not text (JSON, Parquet), where known. `json`: the text of a JSON
    column (`JSON_NUMBER`), whose numbers arrived typed: an integer column keeps a whole number in any form
    (`2.0`, `1e3`), as it does a typed source's.
    """
    if not source_is_string:
        if ctype.spark_type in ("date", "timestamp") and isinstance(source, (NumericType, BooleanType)):
            # A cast reads a number as seconds since 1970 (1700000000 was 2023-11-14 22:13:20, `20240101` into
            # `date:yyyyMMdd` a time in 1970, true a microsecond) or fails the run (into a date): typed from its
            # text, as a CSV value is.
            return _typed(column.cast("string"), True, ctype)
        if ctype.spark_type == "string" and isinstance(source, (ArrayType, MapType, StructType)):
            # A cast writes Spark's display of it, not JSON: `["a, b"]` and `["a","b"]` were both `[a, b]`.
            return F.to_json(column)
        return _cast_whole(column, source, ctype.spark_type)
    text = F.trim(column)
    if ctype.spark_type in ("int", "bigint"):
        # Spark's cast turns "12.5" into 12; an integer column must not silently truncate.
        # A '.' is the only thing the cast tolerates and an integer must not have (a cheap test, no regex).
        # Digits of other scripts count as digits (as in Java's and Python's integer parsing); tried only
        # where the cast found no number.
        digits = F.translate(text, _UNICODE_DIGITS, _ASCII_DIGITS).cast(ctype.spark_type)
        integer = F.when(~text.contains("."), F.coalesce(text.cast(ctype.spark_type), digits))
        if not json:
            return integer
        # A JSON number's exact value: whole (no place left after its exponent), and in range (a wider cast
        # overflows to null).
        whole = text.rlike(_DECIMAL_TEXT) & (_decimal_places(text) == 0)
        value = text.cast("decimal(38,0)")
        in_range = value.between(-(_INTEGER_BOUNDS[ctype.spark_type]), _INTEGER_BOUNDS[ctype.spark_type] - 1)
        return F.coalesce(integer, F.when(whole & in_range, value.cast(ctype.spark_type)))
    if ctype.spark_type == "date" and ctype.fmt:
        return F.to_date(text, ctype.fmt)
    if ctype.spark_type == "timestamp" and ctype.fmt:
        return F.to_timestamp(text, ctype.fmt)
    if ctype.spark_type == "date":
        # A cast fills in what is missing (`2024` is 2024-01-01) and drops a time of day: a whole date only.
        return F.when(text.rlike(f"{_WHOLE_DATE}{_BLANK}$"), text.cast("date"))
    if ctype.spark_type == "timestamp":
        # A cast takes a time alone as today's (a value that depends on the day of the run), a year as its first
        # instant, and cuts digits past microseconds: a whole date, and no digit it would cut.
        cut = _only_where(text.contains("."), text.rlike(r"\.[0-9]{6}[0-9]*[1-9]"))
        # An OR tests its right side only where its left is not true: the regex only for a text of another shape.
        whole = (_usual_date_shape(text) | text.rlike(f"{_WHOLE_DATE}([T\\x00-\\x20]|$)")) & ~cut
        instant = text.cast("timestamp")
        # A time in a named zone that its clocks skip (`2024-03-10 02:30 America/New_York`, a daylight saving gap) is
        # moved on by the cast (to 03:30): the time the zone's clocks show at the instant must be the time written.
        # Tested only where a zone name may end the text (two regexes and two casts a row cost a 2.9 M-row run with
        # one timestamp column 1.9 s of 9 s).
        zone = F.regexp_extract(text, _ZONE_NAME, 1)
        written = F.regexp_replace(text, _ZONE_NAME, "").cast("timestamp")
        skipped = _only_where(_may_name_a_zone(text), (zone != "") & (F.from_utc_timestamp(instant, zone) != written))
        return F.when(whole & ~F.coalesce(skipped, F.lit(False)), instant)
    if ctype.spark_type == "double":
        # A cast makes `1e400` infinite and `1e-400` zero: only an infinity's or a zero's text gives one. It is Java's
        # parseDouble, which also reads Java literals (`12d`, `5f`, `0x1p3`): a number is decimal digits, a point and
        # an exponent, as an integer column and type inference read one, or a word for NaN or an infinity.
        number = text.cast("double")  # where it is null, so is the result: a guard that is null changes nothing
        invented = _only_where(F.abs(number) == float("inf"), ~F.lower(text).rlike(_INFINITY))
        invented |= _only_where(number == 0, ~text.rlike(_ZERO))
        not_plain = _only_where(_may_not_be_plain(text), ~text.rlike(_PLAIN_DOUBLE))
        invented |= _only_where(not_plain, ~F.lower(text).rlike(_DOUBLE_WORD))
        return F.when(~invented, number)
    return text.cast(ctype.spark_type)


def _ends_in(text: Column, characters: str) -> Column:
    """Whether `text` ends in one of these characters (byte comparisons: no copy, no regex)."""
    return _any([text.endswith(c) for c in characters])


def _may_not_be_plain(text: Column) -> Column:
    """False only for a text that, where a cast to double reads it, is a plain number (`_PLAIN_DOUBLE`): what else
    Java's parseDouble reads ends in a letter or a blank (`12d`, `5f`, `NaN`, `Infinity`, `1e3` and a tab) or is
    hexadecimal (`0x1p3`). A cheap guard for the regex, which took 0.2 s of a 9 s run with six double columns."""
    return text.contains("x") | text.contains("X") | ~_ends_in(text, "0123456789.")


def _usual_date_shape(text: Column) -> Column:
    """True only for a text that, where a cast to timestamp reads it, starts with a whole date (`_WHOLE_DATE`): its
    first `-` fifth and its second eighth, after no sign (`2024-03-10 ...`). A cheap test before the regex, which
    cost 0.6 s of a 9 s run of 2.9 M rows with one timestamp column."""
    unsigned = ~text.startswith("-") & ~text.startswith("+")
    return unsigned & (F.locate("-", text) == 5) & (F.locate("-", text, 6) == 8)


def _may_name_a_zone(text: Column) -> Column:
    """False only for a text `_ZONE_NAME` finds no zone in: a region has a `/`, an abbreviation ends the text in a
    letter (or a blank after it)."""
    return text.contains("/") | ~_ends_in(text, "0123456789")


# A zone named at the end of a timestamp, after its time: a region (`America/New_York`) or an abbreviation (`PST`).
_ZONE_NAME = r"(?<=[0-9])[ \t]*([A-Za-z][A-Za-z_]*(?:/[A-Za-z0-9_+-]+)+|[A-Z]{3,4})[\x00-\x20]*$"
_BLANK = r"[\x00-\x20]*"  # what a cast trims besides spaces (tabs, line breaks, other control characters)
# A date as a cast reads it, whole: a year (of any length, signed), a month and a day.
_WHOLE_DATE = f"^{_BLANK}[+-]?[0-9]{{4,}}-[0-9]{{1,2}}-[0-9]{{1,2}}"
_INFINITY = f"^{_BLANK}[+-]?inf(inity)?{_BLANK}$"  # what a cast to double reads as one, in any case
# A zero as a double column reads it (plain digits, see `_PLAIN_DOUBLE`): any zero digits, a point, an exponent.
_ZERO = f"^{_BLANK}[+-]?0*[.]?0*([eE][+-]?[0-9]+)?{_BLANK}$"
# A number a double column takes: ASCII digits with a point and an exponent (no Java suffix `d`/`f`, no hexadecimal);
# or a word the cast reads as NaN or an infinity (lower-cased first).
_PLAIN_DOUBLE = f"^{_BLANK}[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?{_BLANK}$"
_DOUBLE_WORD = f"^{_BLANK}([+-]?inf(inity)?|nan){_BLANK}$"


def _cast_whole(column: Column, source: DataType | None, spark_type: str) -> Column:
    """A typed source's value as `spark_type`, null where the cast would lose anything: a cast truncates (2.7 to
    bigint is 2), wraps (3000000000 to int), rounds (12.345 to decimal(10,2)) and makes any number but 0 true, so
    the value must come back whole when cast back to its source's type (2.0 to bigint is 2, kept)."""
    typed = column.cast(spark_type)
    if isinstance(source, BooleanType) and spark_type not in ("boolean", "string"):
        return F.lit(None).cast(spark_type)  # a cast makes true 1 (1.0, 1.00): a boolean is no number
    if source is None or spark_type == "string" or not isinstance(source, _CAST_BACK):
        return typed  # a string's checks reject nothing (see `prepare_types`): its cast is its value
    if spark_type == "double" and isinstance(source, DecimalType):
        return typed  # a double is the nearest (a JSON number read exactly, see `_read_json`), as inferred
    return F.when(typed.cast(source) == column, typed)


# Source types whose value a cast back compares with (NaN equals NaN in Spark SQL).
_CAST_BACK = (NumericType, BooleanType, DateType, TimestampType)


def prepare(
    df: DataFrame,
    config: DatasetConfig,
    *,
    run_id: str,
    ingested_at: datetime,
    inferred: dict[str, str] | None = None,
    encoding: str | None = None,
) -> tuple[DataFrame, list[str]]:
    """Clean names, apply null values, type, add meta columns and a `reject_reason` per row.

    Returns the frame and its data column names. Each data column `c` keeps its original
    value in `_dw_orig_<i>` so rejected rows can be quarantined as they arrived. The same as
    `check_rules(prepare_types(...))`; a dataset with a transform hook runs the hook between the two.
    """
    typed, names = prepare_types(
        df, config, run_id=run_id, ingested_at=ingested_at, inferred=inferred, encoding=encoding
    )
    return check_rules(typed, config), names


def prepare_types(
    df: DataFrame,
    config: DatasetConfig,
    *,
    run_id: str,
    ingested_at: datetime,
    inferred: dict[str, str] | None = None,
    csv_source: bool = False,
    encoding: str | None = None,
    reader_typed: dict[str, str] | None = None,
    source_file: str | None = None,
    null_markers: bool = True,
) -> tuple[DataFrame, list[str]]:
    """Clean names, apply null values, type, add meta columns; `reject_reason` holds type failures only.

    `csv_source`: read by `read_csv`, whose reader already made empty fields and one marker null; else every
    marker of `csv.null_values` is compared here. `null_markers` False: a JSON or Parquet source, which says null
    itself: no marker is one (`""` and `"NA"` there are values).

    `source_file`: the run's one input file's name as `spark_file_name` gives it, for `meta_source_file` (else
    taken from each row's file, a string cut per row).

    `reader_typed`: the CSV columns the reader typed (`Source.typed`); a record it could not type is typed
    from its text in `_dw_split`, and only there is such a column's `_dw_orig_<i>` its text (elsewhere null:
    the quarantine of such a frame is built from a text read, see bronze). Read without the split
    (`Source.unsplit`), such a record is rejected as malformed and the reader's values are the only ones.

    Also rejected here: a record the reader marked malformed (`_dw_malformed`); with `encoding` (text
    sources), a string value holding U+FFFD, which is what the decoder made of bytes invalid in that
    encoding; a decimal with more decimal places than its scale, which a cast would round.
    """
    data = data_columns(df)
    names = clean_names(data)
    malformed = [F.col(MALFORMED)] if MALFORMED in df.columns else []
    raw = [F.col(RAW)] if RAW in df.columns else []  # a malformed record's text, for the quarantine
    suspect = [F.col(SUSPECT)] if SUSPECT in df.columns else []
    reader_typed = reader_typed or {}
    # Read without a split (`read_csv`'s `split`), the reader's values are the only ones: a record it could not
    # type is rejected as malformed, and its run read again with the split.
    split = [F.col(SPLIT)] if reader_typed and SPLIT in df.columns else []
    df = df.select(
        *[_column((c,)).alias(n) for c, n in zip(data, names, strict=True)], *malformed, *raw, *suspect, *split
    )
    source_types = {f.name: f.dataType for f in df.schema.fields}
    json_as = {f.name: f.metadata.get(JSON_NUMBER) for f in df.schema.fields}  # see `_read_json`
    is_string = {n: isinstance(t, StringType) for n, t in source_types.items()}
    # Columns whose text the checks below read: the text ones, and the reader-typed ones read with the split
    # (text where untyped). Read without it, the reader typed every value of those or failed the read.
    textual = {n: is_string[n] or (n in reader_typed and bool(split)) for n in names}
    # Spark's CSV reader already turns empty fields and one marker into null (`read_csv`); only the other
    # markers cost a check (an isin() per value of every string column otherwise).
    if not null_markers:
        nulls: list[str] = []
    elif csv_source:
        nulls = [v for v in config.csv.null_values if v not in ("", reader_null_marker(config.csv))]
    else:
        nulls = config.csv.null_values
    declared = config.column_types
    inferred = inferred or {}

    selected: list[Column] = []
    checks: list[tuple[int, str, ColumnType]] = []  # (position, column, type) of declared columns
    binary_text: list[tuple[int, str]] = []  # (position, column) of bytes (Parquet BINARY) declared as a string
    for i, name in enumerate(names):
        if name in reader_typed and not split:
            # Nothing to check: the reader typed every value, or the read failed (FAILFAST, see `_read_group`).
            selected += [F.lit(None).cast("string").alias(f"_dw_orig_{i}"), F.col(name)]
            continue
        if name in reader_typed:
            text = F.col(SPLIT)[name]  # null unless the reader could not type the record
            if nulls:
                text = F.when(~text.isin(nulls), text)
            selected.append(text.alias(f"_dw_orig_{i}"))
            # What the reader typed is what the text gives (tests/jobs/test_reader_types.py); else the text.
            typed = F.coalesce(F.col(name), F.when(F.col(SPLIT).isNotNull(), _typed(text, True, declared[name])))
            checks.append((i, name, declared[name]))
            selected.append(typed.alias(name))
            continue
        original = F.col(name)
        if is_string[name] and nulls:
            original = F.when(~original.isin(nulls), original)
        if json_as[name] == "wide":
            original = F.regexp_replace(original, '^"(.*)"$', "$1")  # Spark quotes NaN and Infinity as text
        selected.append(original.alias(f"_dw_orig_{i}"))
        if name in declared:
            ctype = declared[name]
            json = json_as[name] in ("text", "wide")
            typed = _typed(original, is_string[name], ctype, source_types[name], json=json)
            if ctype.spark_type == "string" and json_as[name] == "float":
                typed = _number_text(original, source_types[name].scale)
            if ctype.spark_type == "string" and isinstance(source_types[name], BinaryType):
                # A cast keeps the bytes as they are, which written as a Parquet string need not be UTF-8 (a file
                # no reader reads); decoded, an invalid byte is U+FFFD, and the row is quarantined for it.
                typed = F.decode(original, "UTF-8")
                binary_text.append((i, name))
            checks.append((i, name, ctype))
        elif name in inferred and inferred[name] != "string":
            typed = _typed(original, is_string[name], ColumnType(inferred[name]))
        elif json_as[name] in ("float", "wide"):
            typed = original.cast("double")  # undeclared: a double, as Spark infers it
        else:
            typed = original
        selected.append(typed.alias(name))

    file_name = None if source_file is not None else _file_name()  # one file: its name is a constant
    df = df.select(
        *selected,
        *malformed,
        *raw,
        *suspect,
        F.lit(run_id).alias("meta_run_id"),
        F.lit(ingested_at).cast("timestamp").alias("meta_ingested_at"),
        (F.lit(source_file) if file_name is None else file_name).alias("meta_source_file"),
        _source_order(file_name).alias(ORDER),
    )
    # Each check is (condition, reason): the kept/rejected split tests one boolean per row, and the
    # reason text is built only for a row that failed (a CASE branch is evaluated lazily).
    problems: list[Problem] = []
    if malformed:
        problems.append((F.col(MALFORMED).isNotNull(), F.col(MALFORMED)))
    if encoding:
        typed_as = {f.name: f.dataType for f in df.schema.fields}
        problems += _invalid_bytes(
            [(i, n, not isinstance(typed_as[n], StringType)) for i, n in enumerate(names) if textual[n]], encoding
        )
    for i, name in binary_text:  # bytes that are not UTF-8 do not come back from their text
        original = F.col(f"_dw_orig_{i}")
        problems.append(
            (original.isNotNull() & (F.encode(F.col(name), "UTF-8") != original), F.lit(f"{name}: invalid utf-8 bytes"))
        )
    for i, name, ctype in checks:
        if ctype.spark_type == "string":
            continue  # a string's typed value is its (trimmed) text or its cast: null only where that was null
        original = F.col(f"_dw_orig_{i}")
        # A typed value is null only where its text was null, blank or unparsable. The text's tests come first:
        # a condition stops at its first false part, and the typed value is a cast (of a decimal, a formatted
        # date...) that a filter Spark pushed below the typing computes again (the quarantine's, a hook's input).
        present = original.isNotNull() & (F.trim(original.cast("string")) != "") & F.col(name).isNull()
        problems.append((present, F.lit(f"{name}: not a valid {ctype.label}")))
        if textual[name]:
            problems += _rounded(name, F.trim(original), ctype)
        if json_as.get(name) in ("text", "wide") and ctype.spark_type.startswith(("int", "bigint", "decimal")):
            problems += _read_as_double(name, F.trim(original))
    return _with_reasons(df, problems, previous=False), names


def _number_text(number: Column, scale: int) -> Column:
    """A JSON number read as the decimal that holds its column's every value (`_read_json`), as text: its digits, with
    no zero the column's scale added (`0.1` is not `0.10` because another row holds `1.25`), never in E notation."""
    # format_number prints the exact decimal at its scale, grouped (a cast to string would write `1.0E-7`).
    plain = F.regexp_replace(F.format_number(number, scale), ",", "")
    return F.regexp_replace(F.regexp_replace(plain, r"(\.[0-9]*?)0+$", "$1"), r"\.$", "") if scale else plain


Problem = tuple[Column, Column]  # (the row fails this check, the reason it gives)


def _only_where(guard: Column, test: Column) -> Column:
    """`guard AND test`, with `test` computed only for a row where `guard` holds (false where it does not or is null).

    For `guard & test`, Spark's subexpression elimination computes every part that `test` repeats (a translated
    text, a regex's groups) for every row before the condition is tested, since both sides of an AND count as
    always evaluated: a decimal column's exact places test, though its cheap guard passed a row in a thousand,
    cost 0.6 s of a 7 s run on 3 M rows. A CASE branch is computed only where its condition holds.
    """
    return F.when(guard, test).otherwise(F.lit(False))


def _file_name() -> Column:
    """Each row's file's name, as `meta_source_file` holds it (unique within a run: see fetch.unpack_for_reading)."""
    return F.substring_index(F.input_file_name(), "/", -1)


def _source_order(file_name: Column | None) -> Column:
    """A row's place in the run's source, for "the first row in source order wins": its file, in the order of
    `file_name` (its `meta_source_file`), then its place in that file. Spark plans a run's largest file first, so
    a row id alone would order the files by size; within one file the ids rise with the offset (a file's splits
    keep their order, and partitions are filled in turn). Of one file (`file_name` None), the row id is the whole
    order."""
    row = F.monotonically_increasing_id()
    return row if file_name is None else F.struct(file_name.alias("file"), row.alias("row"))


def _any(conditions: list[Column]) -> Column:
    anywhere = conditions[0]
    for condition in conditions[1:]:
        anywhere = anywhere | condition
    return anywhere


def _any_of(conditions: list[Column]) -> Column:
    """True where any condition is (a null one counts as false); false where there are none."""
    return F.coalesce(_any(conditions), F.lit(False)) if conditions else F.lit(False)


def _with_reasons(df: DataFrame, problems: list[Problem], previous: bool = True) -> DataFrame:
    """`df` with the checks in `problems` applied: `_dw_rejected` (a boolean, never null) and `reject_reason`.

    `reject_reason` is `reason; reason` of the checks a row fails, after the reasons it already has with
    `previous`, else null. The two always agree (`_dw_rejected` is `reject_reason IS NOT NULL`), but a query
    that reads only the boolean (the bronze write) is planned without the reason texts: a CASE per check and
    a string join per row cost a fifth of a wide clean run, and make the generated method too big to compile.
    """
    if not problems:
        return df if previous else df.withColumns({REJECTED: F.lit(False), REJECT_REASON: F.lit(None).cast("string")})
    # A check that is null (unknown) rejects nothing, as in CASE WHEN.
    failed = _any_of([condition for condition, _ in problems])
    texts = [F.when(condition, reason) for condition, reason in problems]
    if not previous:
        return df.withColumns({REJECTED: failed, REJECT_REASON: F.when(failed, F.concat_ws("; ", *texts))})
    before = F.col(REJECT_REASON)
    return df.withColumns(
        {
            REJECTED: F.col(REJECTED) | failed,
            # concat_ws skips nulls: a row's earlier reasons, then this pass's
            REJECT_REASON: F.when(failed, F.concat_ws("; ", before, *texts)).otherwise(before),
        }
    )


def _invalid_bytes(columns: list[tuple[int, str, bool]], encoding: str) -> list[Problem]:
    """`name: invalid utf-8 bytes` for each string value holding U+FFFD (the decoder's stand-in).

    `columns`: (position, name, typed) of the source's text columns. A typed column's (a number, a date...)
    value that parsed cannot hold U+FFFD, so it counts only where the value is null; its text is searched
    first all the same, since the typed value may be a cast that a filter pushed below the typing computes again.
    """
    if not columns:
        return []
    holds = [
        (
            (F.col(f"_dw_orig_{i}").contains(REPLACEMENT_CHAR) & F.col(name).isNull())
            if typed
            else F.col(f"_dw_orig_{i}").contains(REPLACEMENT_CHAR),
            name,
        )
        for i, name, typed in columns
    ]
    # A byte search per text value (U+FFFD's first byte, 0xEF, is rare in text), no copy of the row; the
    # per-column text is built only for a row where one matched.
    anywhere = _any([condition for condition, _ in holds])
    which = F.concat_ws("; ", *[F.when(c, F.lit(f"{name}: invalid {encoding.lower()} bytes")) for c, name in holds])
    return [(anywhere, which)]


def _rounded(name: str, text: Column, ctype: ColumnType) -> list[Problem]:
    """A reason when casting text to decimal(p,s) would round it: its exact value has more than s decimal places."""
    match = re.fullmatch(r"decimal\((\d+),(\d+)\)", ctype.spark_type)
    if not match:
        return []
    scale = int(match[2])
    reason = F.lit(f"{name}: {ctype.spark_type}: more than {scale} decimal places")
    # Only text with more than `scale` characters after its '.', or an exponent, can round: a cheap
    # test before the exact one, which reads the text's digits.
    point = F.instr(text, ".")
    long_tail = (point > 0) & (F.length(text) - point > scale)
    suspect = (long_tail | text.contains("e") | text.contains("E")) & F.col(name).isNotNull()
    return [(_only_where(suspect, _decimal_places(text) > scale), reason)]


def _read_as_double(name: str, text: Column) -> list[Problem]:
    """A reason for a JSON fraction of 16 or more significant digits where Spark gives a number's text as the double
    it reads (a JSON text column, `JSON_NUMBER`): the double may have rounded it (`1.2345678901234568E16`). Fewer
    digits come back as written."""
    mantissa = F.regexp_replace(F.regexp_extract(text, r"^[+-]?([0-9.]*)", 1), r"\.", "")
    digits = F.regexp_replace(F.regexp_replace(mantissa, "^0+", ""), "0+$", "")
    fraction = text.contains(".") | text.contains("e") | text.contains("E")
    reason = F.lit(f"{name}: a JSON fraction of 16 or more digits, which Spark reads here through a double, not "
                   "exactly")  # fmt: skip
    return [(_only_where(fraction, F.length(digits) >= 16), reason)]


# A number as a decimal cast reads it (Java's BigDecimal): digits, a point, digits, an exponent.
_DECIMAL_TEXT = r"^[+-]?([0-9]*)\.?([0-9]*)(?:[eE]([+-]?[0-9]+))?$"


def _decimal_places(text: Column) -> Column:
    """The decimal places of the exact value `text` spells, by its digits, not by the text's shape: `12.340` and
    `1.234E+1` have 2, `5E-3` 3, `100E-2` none. A cast to a finer decimal would round `1E-40` to 0 first."""
    text = F.translate(text, _UNICODE_DIGITS, _ASCII_DIGITS)  # digits of other scripts, as BigDecimal reads them
    whole, tail = F.regexp_extract(text, _DECIMAL_TEXT, 1), F.regexp_extract(text, _DECIMAL_TEXT, 2)
    exponent = F.coalesce(F.regexp_extract(text, _DECIMAL_TEXT, 3).cast("bigint"), F.lit(0))
    digits = F.concat(whole, tail)
    # Trailing zeros of the digits are no places (`1.50`, `100E-2`); a zero has none at all.
    zeros = F.length(digits) - F.length(F.regexp_replace(digits, "0+$", ""))
    places = F.length(tail) - exponent - zeros
    return F.when(text.rlike(_DECIMAL_TEXT) & digits.rlike("[1-9]"), places).otherwise(F.lit(0))


def check_rules(
    df: DataFrame, config: DatasetConfig, *, small_input: bool = False, repeats_checked_later: bool = False
) -> DataFrame:
    """Add the primary key's and the quality rules' reasons to `reject_reason` (needs it and `_dw_order`).

    Runs a Spark job per key (the primary key, each `unique` column) to learn whether any value
    repeats, see `_reject_repeats`; with `small_input` (a few MB) a window over the key instead,
    which for so little data costs fewer Spark jobs than the aggregate and the join. With
    `repeats_checked_later`, only the per-row reasons: the caller checks the kept rows for repeats
    (`repeated_keys`) and, if one repeats, checks again without it.
    """
    df = _with_reasons(df, _rule_reasons(config.primary_key, config.quality, df))
    if repeats_checked_later:
        return df
    repeats = _reject_repeats_in_window if small_input else _reject_repeats
    df = repeats(df, config.primary_key, "duplicate primary key")
    for column in config.quality.unique:
        df = repeats(df, [column], f"{column}: not unique")
    return df


def repeated_keys(kept: DataFrame, config: DatasetConfig) -> list[str]:
    """The keys (the primary key, each `unique` column) a non-null value of which repeats in `kept`.

    On kept rows this is exactly the question `_reject_repeats` asks of the clean rows: none repeats,
    then the repeat checks would reject nothing. Read from written Parquet it reads the key columns only.
    """
    found = []
    for key in [config.primary_key, *[[c] for c in config.quality.unique]]:
        if not key:
            continue
        present = _all([F.col(c).isNotNull() for c in key])
        counts = kept.filter(present).groupBy(*key).agg(F.count(F.lit(1)).alias("_dw_n"))
        if not counts.filter(F.col("_dw_n") > 1).isEmpty():
            found.append(", ".join(key))
    return found


def rule_columns(config: DatasetConfig) -> list[str]:
    """Columns the primary key and the quality rules name, each once, in config order."""
    rules = config.quality
    named = [*config.primary_key, *rules.not_null, *rules.unique, *rules.accepted_values]
    return list(dict.fromkeys(named))


def _rule_reasons(primary_key: list[str], rules: QualityRules, df: DataFrame) -> list[Problem]:
    types = {f.name: f.dataType for f in df.schema.fields}
    return quality.row_problems(quality.bronze_rules(primary_key, rules), types)


FIRST = "_dw_first"  # the source position of a repeated key's first clean row


def _reject_repeats(df: DataFrame, key: list[str], reason: str) -> DataFrame:
    """Reject every clean row whose key repeats an earlier clean row (source order).

    First a key-only aggregate (the key's columns are all it reads, a few bytes a row through the
    shuffle): does any non-null key occur twice at all? Usually not, and then nothing else is done.
    Otherwise the clean rows' keys that repeat, each with its first row's position, are joined back
    (broadcast when small): a clean row of such a key that is not its first row is rejected. Never a
    sort of whole rows.
    """
    if not key:
        return df
    present = _all([F.col(c).isNotNull() for c in key])
    repeats = df.filter(present).groupBy(*key).agg(F.count(F.lit(1)).alias("_dw_n")).filter(F.col("_dw_n") > 1)
    if repeats.isEmpty():
        return df
    clean = ~F.col(REJECTED)
    firsts = (
        df.filter(clean & present)
        .groupBy(*key)
        .agg(F.min(ORDER).alias(FIRST), F.count(F.lit(1)).alias("_dw_n"))
        .filter(F.col("_dw_n") > 1)
        .drop("_dw_n")
    )
    joined = df.join(firsts, on=key, how="left").select(*df.columns, FIRST)  # df's columns in df's order
    repeated = clean & F.col(FIRST).isNotNull() & (F.col(ORDER) != F.col(FIRST))
    return _mark_repeated(joined, repeated, reason).drop(FIRST)


def _mark_repeated(df: DataFrame, repeated: Column, reason: str) -> DataFrame:
    """Reject the clean rows `repeated` selects (a repeat is a clean row's only reason)."""
    repeated = F.coalesce(repeated, F.lit(False))
    return df.withColumns(
        {
            REJECTED: F.col(REJECTED) | repeated,
            REJECT_REASON: F.when(repeated, F.lit(reason)).otherwise(F.col(REJECT_REASON)),
        }
    )


def _reject_repeats_in_window(df: DataFrame, key: list[str], reason: str) -> DataFrame:
    """`_reject_repeats` for a small input: one pass, the rows sorted by key (cheap when they are few)."""
    if not key:
        return df
    clean = ~F.col(REJECTED)
    window = Window.partitionBy(*[F.col(c) for c in key], clean).orderBy(ORDER)
    repeated = clean & (F.row_number().over(window) > 1) & _all([F.col(c).isNotNull() for c in key])
    return _mark_repeated(df, repeated, reason)


def _all(conditions: list[Column]) -> Column:
    every = conditions[0]
    for condition in conditions[1:]:
        every = every & condition
    return every


def kept_rows(df: DataFrame, names: list[str]) -> DataFrame:
    """Rows that passed, typed, with the meta columns: the bronze table."""
    return df.filter(~F.col(REJECTED)).select(*names, *META_COLUMNS)


def rejected_rows(df: DataFrame, names: list[str]) -> DataFrame:
    """Rows that failed, with their original values and the reason: the quarantine. A malformed record (of another
    width than its header, broken JSON) has its whole text in `raw_record`, fields beyond the header's too."""
    binary = {f.name for f in df.schema.fields if isinstance(f.dataType, BinaryType)}
    # Bytes (Parquet BINARY) in base64: cast to text, bytes that are not UTF-8 would make the quarantine unreadable.
    originals = [
        (
            F.base64(F.col(f"_dw_orig_{i}")) if f"_dw_orig_{i}" in binary else F.col(f"_dw_orig_{i}").cast("string")
        ).alias(name)
        for i, name in enumerate(names)
    ]
    raw = F.col(RAW) if RAW in df.columns else F.lit(None).cast("string")
    return df.filter(F.col(REJECTED)).select(*originals, REJECT_REASON, raw.alias(RAW_RECORD), *META_COLUMNS)


# ------------------------------------------------------------------ with a transform hook
#
# Typing rejects go to quarantine as they arrived and never reach the hook; the hook gets the
# clean rows' typed data and meta columns; the primary key and quality rules run on what it returns.


def hook_input(typed: DataFrame, names: list[str]) -> DataFrame:
    """What a transform hook sees: the rows that typed cleanly, data columns then meta columns."""
    return typed.filter(~F.col(REJECTED)).select(*names, *META_COLUMNS)


def hook_output_problems(df: DataFrame, config: DatasetConfig) -> list[str]:
    """What is wrong with a hook's result for the checks that follow it, as advice; empty when fine."""
    columns = set(df.columns)
    problems = []
    missing_meta = [c for c in META_COLUMNS if c not in columns]
    if missing_meta:
        problems.append(f"keep the meta columns {', '.join(missing_meta)} (select them, or use withColumn)")
    internal = sorted(c for c in columns if c.lower() == REJECT_REASON or c.lower().startswith("_dw_"))
    if internal:
        problems.append(f"rename {', '.join(internal)}: reject_reason and _dw_* are the job's own columns")
    missing = [c for c in rule_columns(config) if c not in columns]
    if missing:
        problems.append(f"return the columns the primary key and quality rules name: {', '.join(missing)}")
    return problems


def checked_hook_output(
    df: DataFrame, config: DatasetConfig, run_id: str, ingested_at: datetime
) -> tuple[DataFrame, list[str]]:
    """The hook's rows with the key and rules applied, and their data columns (meta columns last). The run's id and
    time are the job's, whatever the hook made of them; `meta_source_file` is the hook's (it may merge rows), as
    text."""
    names = [c for c in df.columns if c not in META_COLUMNS]
    df = df.select(
        *names,
        F.lit(run_id).alias("meta_run_id"),
        F.lit(ingested_at).cast("timestamp").alias("meta_ingested_at"),
        F.col("meta_source_file").cast("string").alias("meta_source_file"),
        # "First row wins" in the hook's row order, file by file as the source's.
        _source_order(F.col("meta_source_file")).alias(ORDER),
        F.lit(False).alias(REJECTED),
        F.lit(None).cast("string").alias(REJECT_REASON),
    )
    return check_rules(df, config), names


def hook_rejected_rows(checked: DataFrame, names: list[str]) -> DataFrame:
    """Rows the key or a rule rejected after the hook, their values as text, as the quarantine holds them."""
    values = [F.col(name).cast("string").alias(name) for name in names]
    raw = F.lit(None).cast("string").alias(RAW_RECORD)  # the hook's rows are well-formed
    return checked.filter(F.col(REJECTED)).select(*values, REJECT_REASON, raw, *META_COLUMNS)
