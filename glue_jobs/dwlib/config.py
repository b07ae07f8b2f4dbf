"""Core and dataset configuration: loaded and validated once, at the edge.

The CDK app, the Glue jobs and the `dw` command all read configuration through this
module, so a folder that synthesizes is a folder the job can run. Unknown keys are an
error, never ignored. Problems are collected, not raised one at a time, so a user sees
every broken field of every folder in one go.
"""

from __future__ import annotations

import codecs
import html
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dwlib.naming import LIMITS, LONGEST_STAGE, MAX_STAGE_LENGTH, Naming, Resource, query_construct_id

SIZE_CATEGORIES = ("small", "medium", "large", "xlarge")
FLEX_WORKER_TYPES = ("G.1X", "G.2X")  # Glue's Flex execution class takes no other worker type
FORMATS = ("csv", "json", "jsonl", "parquet")
SOURCE_KEYS = ("source_url", "api_endpoints", "dynamodb_table", "landing")

DATASET_NAME = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# A gold model's file name is its Athena table's name and a part of its crawler's S3 path.
MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# S3 refuses a general purpose bucket whose name starts with one of these; the lake's buckets start with the prefix.
BUCKET_RESERVED_STARTS = ("xn--", "sthree-", "amzn-s3-demo-")
# Encodings whose line break is more than the byte \n (CsvOptions reads them whole).
WIDE_ENCODING = re.compile(r"^(utf-?(16|32)(-?(be|le))?|ucs-?[24])$", re.IGNORECASE)
SIMPLE_TYPES = ("string", "int", "bigint", "double", "boolean", "date", "timestamp")
DECIMAL_TYPE = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$")
# EventBridge Scheduler expressions (see schedule_problem): at most 256 characters.
SCHEDULE_MAX = 256
CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
RATE = re.compile(r"^rate\((?P<value>\S+) (?P<unit>\S+)\)$")
SOURCE_SCHEMES = ("https://", "http://", "s3://", "file://")
# Secrets Manager names: letters, digits and /_+=.@- ; header names are HTTP tokens.
SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# Query parameter names that carry a credential. A name is split into its words (camelCase, -, _, ., ;, [],
# a copied "&amp;" all separate words): api_key, x-api-key, apiSecret, AWSAccessKeyId, hapikey, sas_token,
# sig (Azure SAS), Signature (CloudFront), X-Amz-Signature / X-Amz-Credential / X-Amz-Security-Token (S3
# presigned), X-Goog-Signature, jwt, passphrase, appid (OpenWeather's key) ... A "key", "token", "sig" or
# "auth" is data after a word that says so (sort_key, page_token, next_token), or when a word other than "id"
# follows it (Key-Pair-Id, SignatureVersion, auth_type); keyword or monkey are one word, not "key".
_CREDENTIAL_WORDS = re.compile(
    r"^(?:.*(?:secret|passw|passphrase|apikey|apitoken|accesskey|accesstoken|authtoken|bearer|credential).*"
    r"|pass|pwd|jwt|appid|sas|otp)$"
)
# Credentials when they end the name (or come before "id"): signature_version or auth_type are settings.
_CREDENTIAL_ENDS = frozenset(("key", "token", "sig", "signature", "auth", "authorization"))
_DATA_KEY_WORDS = frozenset(
    re.findall(
        r"\w+",
        "sort partition primary foreign row group order search lookup hash range object cache idempotency map "
        "dict unique composite natural surrogate page next prev previous continuation pagination cursor sync "
        "resume start end last first offset index",
    )
)


def camel_split(text: str) -> str:
    """`_` where the case marks a word's start: `ProductNDC` -> `Product_NDC`, `AWSAccessKeyId` ->
    `AWS_Access_Key_Id` (column names are cleaned, and parameter and header names read, by these words)."""
    return re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text))


def _name_words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", camel_split(name).lower()) if w]


def _credential_name(name: str) -> bool:
    words = _name_words(name)
    for index, word in enumerate(words):
        if _CREDENTIAL_WORDS.match(word):
            return True
        if word in _CREDENTIAL_ENDS:
            before = words[index - 1] if index else ""
            after = words[index + 1 :]
            if before not in _DATA_KEY_WORDS and (not after or after == ["id"]):
                return True
    return False


def credential_params(names) -> list[str]:
    """The names among `names` that look like they carry a credential, sorted."""
    return sorted({name for name in names if _credential_name(name)})


def _query_names(query: str) -> list[str]:
    """The parameter names of a query (or fragment) as any server might split it: on & and on ;, with a
    URL copied out of HTML ("&amp;") unescaped first."""
    return [name for name, _ in parse_qsl(html.unescape(query).replace(";", "&"), keep_blank_values=True)]


def _no_credentials(url: str) -> None:
    """Refuse a URL that carries a credential: it would be stored in the run ledger and printed."""
    parts = urlsplit(url)
    advice = (
        "a URL is stored in every run summary and printed by --dry-run, so it must not carry a credential; "
        'put the credential in a secret and name it in "source_auth": {"secret": "pp-dw/NAME", "header": '
        '"Authorization", "scheme": "Bearer"} (or "query_param": "token"); for S3 give the s3:// URL, which '
        "the job reads with its role, instead of a presigned URL"
    )
    if "@" in parts.netloc:
        raise ValueError(f"the URL holds a user name or password before '@'; {advice}")
    # The fragment too: never sent, but kept in the ledger like the rest (OAuth puts tokens there).
    found = credential_params([*_query_names(parts.query), *_query_names(parts.fragment)])
    if found:
        raise ValueError(f"the URL holds {', '.join(found)}, which looks like a credential; {advice}")


def _relative_source(path: str) -> str:
    """A file inside the dataset folder, which the stack deploys beside the job (except sample/ and *.md)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) or ".." in parts or path.startswith("~"):
        raise ValueError(
            "a file source is a path inside the dataset folder, such as data/file.csv (the stack deploys the "
            "folder with the job, so Glue can read it); a file elsewhere does not exist on Glue: copy it into "
            "the folder, or upload it to S3 and give its s3:// URL"
        )
    # The stack deploys the folder without `sample` and `*.md`, by base name at any depth (stacks/assets.py).
    if "sample" in parts:
        raise ValueError(
            "files in a folder named sample are not deployed to AWS (sample/ is for `dw run --sample`), so Glue "
            "could not read it; move the file out of sample/, e.g. to data/"
        )
    if path.lower().endswith(".md"):
        raise ValueError("*.md files are not deployed to AWS; give the data file a name that fits its format")
    return path


_DIGITS = re.compile(r"[0-9]+")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # JAN..DEC or SUN..SAT, numbered from `low`
    slash: bool = True


# The six fields and ranges EventBridge Scheduler documents for cron(); `?`, `L`, `W` and `#`
# are handled per field below.
_CRON_FIELDS = (
    _CronField("minutes", 0, 59),
    _CronField("hours", 0, 23),
    _CronField("day-of-month", 1, 31),
    _CronField("month", 1, 12, _MONTHS),
    _CronField("day-of-week", 1, 7, _DAYS, slash=False),
    _CronField("year", 1970, 2199),
)


def _cron_value(text: str, field: _CronField) -> str | None:
    """None when `text` is one value of the field, else what is wrong with it."""
    if _DIGITS.fullmatch(text):
        if not field.low <= int(text) <= field.high:
            return f"{field.name} value {text} is outside {field.low}-{field.high}"
        return None
    if field.names and text in field.names:
        return None
    allowed = f"{field.low}-{field.high}" + (f" or {field.names[0]}-{field.names[-1]}" if field.names else "")
    return f"{field.name} value {text!r} is not a number in {allowed}"


def _cron_item(item: str, field: _CronField) -> str | None:
    """One comma-separated part of a field: *, a value, a range, an increment, or a field's L/W/# form."""
    if field.name == "day-of-month" and (item in ("L", "LW") or re.fullmatch(r"[0-9]{1,2}W", item)):
        return _cron_value(item[:-1], field) if item[0].isdigit() else None
    if field.name == "day-of-week":
        if item == "L":
            return None
        if item.endswith("L") and len(item) > 1:
            return _cron_value(item[:-1], field)
        if "#" in item:
            day, _, nth = item.partition("#")
            if not _DIGITS.fullmatch(nth) or not 1 <= int(nth) <= 5:
                return f"day-of-week {item!r}: the number after # is the week of the month, 1-5"
            return _cron_value(day, field)
    base, slash, step = item.partition("/")
    if slash:
        if not field.slash:
            return f"{field.name} does not take / increments"
        if not _DIGITS.fullmatch(step) or int(step) < 1:
            return f"{field.name} increment {step!r} is not a positive number"
    if base == "*":
        return None
    low, dash, high = base.partition("-")
    for part in (low, high) if dash else (low,):
        problem = _cron_value(part, field)
        if problem:
            return problem
    return None


def schedule_problem(expr: str) -> str | None:
    """What EventBridge Scheduler would refuse in a dataset's `schedule`, or None when it is valid.

    The grammar is the one the Scheduler documents: `rate(value unit)` with a positive whole value
    and a unit that agrees with it in number (`rate(1 day)`, `rate(5 days)`), or `cron()` with six
    fields separated by single spaces (minutes 0-59, hours 0-23, day-of-month 1-31 with ? L W,
    month 1-12 or JAN-DEC, day-of-week 1-7 or SUN-SAT with ? L #, year 1970-2199; `, - * /`),
    where exactly one of day-of-month and day-of-week is `?`. Expressions run in UTC: the stack
    sets no time zone. One-time `at()` schedules are refused: a dataset's schedule recurs.
    """
    if len(expr) > SCHEDULE_MAX:
        return f"is {len(expr)} characters; EventBridge Scheduler takes at most {SCHEDULE_MAX}"
    if expr.startswith("at("):
        return (
            "is a one-time at() schedule; a dataset's schedule recurs: use cron() or rate(), "
            "or start a single run by hand"
        )
    if match := RATE.match(expr):
        value, unit = match["value"], match["unit"]
        if not _DIGITS.fullmatch(value) or int(value) < 1:
            return f"rate value {value!r} must be a whole number of at least 1, such as rate(1 day) or rate(6 hours)"
        if unit not in ("minute", "minutes", "hour", "hours", "day", "days"):
            return f"rate unit {unit!r} is not one of minute(s), hour(s), day(s)"
        number = "singular" if int(value) == 1 else "plural"
        if (number == "plural") != unit.endswith("s"):
            right = unit.rstrip("s") + ("" if number == "singular" else "s")
            return f"rate({value} {unit}) needs the {number} unit: write rate({int(value)} {right})"
        return None
    match = CRON.match(expr)
    if not match:
        return "is not an EventBridge Scheduler expression; write cron(0 6 * * ? *) or rate(1 day)"
    fields = match["fields"].split(" ")
    if "" in fields:
        return "separate the six cron() fields by single spaces, as in cron(0 6 * * ? *)"
    if len(fields) != len(_CRON_FIELDS):
        return (
            "cron() needs six fields (minutes hours day-of-month month day-of-week year), "
            f"found {len(fields)}; write cron(0 6 * * ? *)"
        )
    for text, field in zip(fields, _CRON_FIELDS, strict=True):
        if text == "?":
            if field.name not in ("day-of-month", "day-of-week"):
                return f"? is only allowed in day-of-month or day-of-week, not in {field.name}"
            continue
        items = text.split(",")
        if field.name == "day-of-week" and "#" in text and len(items) > 1:
            return f"day-of-week {text!r}: a # expression stands alone in its field"
        for item in items:
            problem = _cron_item(item, field)
            if problem:
                return problem
    day_of_month, day_of_week = fields[2], fields[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        return (
            f"day-of-month {day_of_month!r} and day-of-week {day_of_week!r}: exactly one of them must be ?; "
            "write cron(0 6 * * ? *) for every day or cron(0 6 ? * MON *) for Mondays"
        )
    return None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ColumnType:
    """A declared column type: a Spark SQL type, and for dates/timestamps an optional parse format."""

    spark_type: str
    fmt: str | None = None

    @property
    def label(self) -> str:
        """The type as a config writes it: `int`, `date:yyyyMMdd`."""
        return f"{self.spark_type}:{self.fmt}" if self.fmt else self.spark_type


# Python text codecs that Java, and so Spark, has no charset for (utf-8 with a BOM is utf-8 to Spark).
PYTHON_ONLY_ENCODINGS = frozenset(
    {"utf-8-sig", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "mbcs", "oem"}
)
MAX_RETENTION_DAYS = 36_500  # a century: a date further back than that is past Python's dates
# The job's own columns, never a source's: a source column of one of these names is `{name}_2` in bronze.
META_COLUMNS = ("meta_run_id", "meta_ingested_at", "meta_source_file")
REJECT_REASON = "reject_reason"
JOB_COLUMNS = (*META_COLUMNS, REJECT_REASON)
# Spark 3's datetime pattern letters that parse (its "Datetime Patterns" page): E, F, q and Q only format, and the
# week-based Y, w, W, u, e and c are refused since Spark 3.0.
PARSE_LETTERS = frozenset("GyDMLdahKkHmsSVzOXxZ")
WEEK_LETTERS = frozenset("YwWuec")


# How many of a letter in a row Spark parses (Java's DateTimeFormatter, and Spark's own limits: five G, M or L
# are refused, seven y).
LETTER_COUNTS = {
    **dict.fromkeys("GML", range(1, 5)), "y": range(1, 7), **dict.fromkeys("dHhKkms", range(1, 3)),
    "D": range(1, 4), "S": range(1, 10), "a": range(1, 2), "V": range(2, 3), "z": range(1, 5), "O": (1, 4),
    **dict.fromkeys("XxZ", range(1, 6)),
}  # fmt: skip


def _format_problem(fmt: str) -> str | None:
    """What Spark would refuse in a date or timestamp parse format, or None: a letter it does not parse, too
    many of one in a row, an unclosed quote, a character Java reserves. Text in '...' is literal."""
    parts = fmt.split("'")
    if len(parts) % 2 == 0:
        return "a quote is not closed (write '' for a quote itself)"
    for i, part in enumerate(parts):
        if i % 2:
            continue  # quoted text ('' is a quote itself)
        reserved = sorted(set(part) & set("#{}"))
        if reserved:
            return f"{reserved[0]!r} is reserved in Java's patterns (quote literal text: '{reserved[0]}')"
        for letter, run in itertools.groupby(part):
            if not ("a" <= letter.lower() <= "z"):
                continue
            if letter in WEEK_LETTERS:
                return f"{letter!r} is a week-based field, which Spark does not parse (year: y, not Y; day: d)"
            if letter not in PARSE_LETTERS:
                return f"{letter!r} is not a field Spark parses (quote literal text: 'T')"
            count = len(list(run))
            if count not in LETTER_COUNTS.get(letter, range(1, 100)):
                return f"{letter * count!r}: Spark does not parse {count} {letter!r} in a row"
    return None


def parse_column_type(text: str) -> ColumnType:
    """Parse `int`, `decimal(10,2)`, `date:yyyyMMdd` and the like; ValueError says what is allowed."""
    base, _, fmt = text.strip().partition(":")
    base = base.strip().lower()
    if base in ("date", "timestamp"):
        problem = _format_problem(fmt.strip())
        if problem:
            raise ValueError(f"format {fmt.strip()!r}: {problem}")
        return ColumnType(base, fmt.strip() or None)
    if fmt:
        raise ValueError(f"only date and timestamp take a format, not {base!r}")
    if base in SIMPLE_TYPES:
        return ColumnType(base)
    match = DECIMAL_TYPE.match(base)
    if match:
        precision, scale = int(match[1]), int(match[2])
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"{base!r} needs 1 <= precision <= 38 and scale <= precision")
        return ColumnType(f"decimal({precision},{scale})")
    raise ValueError(
        f"unknown type {text!r}; use one of {', '.join(SIMPLE_TYPES)}, decimal(p,s), date:FORMAT or timestamp:FORMAT"
    )


def _check_type(text: str) -> str:
    parse_column_type(text)
    return text


def _check_column(name: str) -> str:
    if not COLUMN_NAME.match(name):
        raise ValueError(f"{name!r} is not a cleaned column name (lowercase letters, digits and _)")
    return name


ColumnName = Annotated[str, AfterValidator(_check_column)]
TypeText = Annotated[str, AfterValidator(_check_type)]


class CsvOptions(Strict):
    delimiter: str = Field(",", min_length=1, max_length=1)
    header: bool = True
    null_values: list[str] = Field(default_factory=lambda: [""])
    encoding: str = "utf-8"
    quote: str = Field('"', min_length=1, max_length=1)
    escape: str = Field('"', min_length=1, max_length=1)
    # Quoted values that span lines. Unset: read line by line (Spark splits big files across tasks)
    # and read again with multiline on if a quote in a value or a malformed row says a line break may
    # have split a row. true: always (each file is one task); false: never (see the README).
    multiline: bool | None = None

    @field_validator("encoding")
    @classmethod
    def _text_encoding(cls, name: str) -> str:
        # Spark decodes with Java's charsets, whose names are not all Python's (x-MacRoman, windows-31j): a name
        # Python does not know is left to the job, which asks Java before it reads. Python's codecs that are no
        # text encoding (rot13, base64) or that Java lacks (utf-8-sig) are refused here.
        try:
            info = codecs.lookup(name)
        except LookupError:
            return name
        if not info._is_text_encoding or info.name in PYTHON_ONLY_ENCODINGS:
            raise ValueError(f"{name!r} is not an encoding Spark reads; use utf-8, iso-8859-1, windows-1252 or utf-16")
        return name

    @field_validator("delimiter", "quote", "escape")
    @classmethod
    def _not_a_line_break(cls, char: str) -> str:
        if char in "\r\n":
            raise ValueError("a line break ends a row; pick another character")
        return char

    @model_validator(mode="before")
    @classmethod
    def _wide_encoding_read_whole(cls, data: Any) -> Any:
        # Line by line, Spark splits a file at the byte \n, which in UTF-16 or UTF-32 is half of a
        # character: every row comes out garbled. Read whole (multiline), the file is decoded first.
        if not (isinstance(data, dict) and WIDE_ENCODING.match(str(data.get("encoding", "")))):
            return data
        if data.get("multiline") is False:
            raise ValueError(
                f"encoding {data['encoding']} cannot be read line by line (a line break is more than one byte); "
                'remove "multiline": false'
            )
        return {**data, "multiline": True}


class QualityRules(Strict):
    not_null: list[ColumnName] = Field(default_factory=list)
    unique: list[ColumnName] = Field(default_factory=list)
    accepted_values: dict[ColumnName, list[str | int | float | bool]] = Field(default_factory=dict)
    max_rejected_fraction: float = Field(0.05, ge=0.0, le=1.0)


class Paging(Strict):
    """How an API pages: see the README's "API sources" section."""

    kind: Literal["none", "page", "offset", "cursor", "link"] = "none"
    param: str | None = None  # page number / offset / cursor query parameter
    size_param: str | None = None
    size: int = Field(100, ge=1)
    cursor_field: str | None = None  # where the next cursor sits in the response, e.g. meta.next
    # Where the response declares the number of records in all pages, e.g. meta.total: paging stops
    # once that many arrived, and fails if the pages end short of it.
    total_field: str | None = Field(None, min_length=1)
    max_pages: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _needs(self) -> Paging:
        if self.kind in ("page", "offset", "cursor") and not self.param:
            raise ValueError(f"paging kind {self.kind!r} needs 'param' (the query parameter to advance)")
        if self.kind == "cursor" and not self.cursor_field:
            raise ValueError("paging kind 'cursor' needs 'cursor_field' (where the next cursor sits)")
        return self


class ApiAuth(Strict):
    """Credentials of an endpoint, read from a secret at run time; the config holds only the secret's name.

    Sent either in a header (`header`, default `Authorization`; with `scheme` the value is sent as
    `{scheme} {secret}`, e.g. `Bearer abc`) or as a query parameter (`query_param`, e.g. `api_key`).
    Give at most one of `header` and `query_param`; with neither, the secret goes in the
    `Authorization` header. `scheme` only applies to a header.

    On AWS the job reads the secret from Secrets Manager (the dataset's own job role may read
    exactly its secrets); `dw run` reads `DW_SECRET_<NAME>` from the environment (the name upper-cased,
    every character other than a letter or digit as `_`) or `.secrets.json` at the project root.
    """

    secret: str = Field(description="Secrets Manager name, e.g. pp-dw/fda-api-key")
    header: str | None = None
    query_param: str | None = Field(None, min_length=1)
    scheme: str | None = None

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, name: str) -> str:
        if not SECRET_NAME.match(name):
            raise ValueError(
                f"{name!r} is not a Secrets Manager name; use 1-512 letters, digits and / _ + = . @ -, "
                "such as pp-dw/fda-api-key"
            )
        return name

    @field_validator("header", "scheme")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and not HEADER_NAME.match(value):
            raise ValueError(f"{value!r} is not an HTTP header name or scheme; write it like X-Api-Key or Bearer")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> ApiAuth:
        if self.header and self.query_param:
            raise ValueError("give 'header' or 'query_param', not both: the secret is sent in one place")
        if self.scheme and self.query_param:
            raise ValueError("'scheme' (such as Bearer) only applies to a header; remove it or use 'header'")
        return self

    @property
    def header_name(self) -> str | None:
        """The header that carries the secret, or None when it travels as a query parameter."""
        return None if self.query_param else self.header or "Authorization"


class ArchiveOptions(Strict):
    """How far a run's archives (.zip) and compressed files (.gz, .bz2) may expand: bytes and ratio,
    counted while decompressing; past either the run fails and staging is cleaned."""

    max_unpacked_bytes: int = Field(20 * 1024**3, ge=1, description="bytes out of all archives of one run")
    max_ratio: float = Field(
        200.0, ge=1.0, description="bytes out per byte of an archive, checked past the first 16 MiB"
    )


class ExportOptions(Strict):
    """The DynamoDB export function of a `dynamodb_table` dataset."""

    # None by default: a new account's Lambda concurrency quota is 10 and it refuses any reservation
    # (the account must keep 10 unreserved); set it where the quota was raised, to cap the export.
    reserved_concurrency: int | None = Field(
        None, ge=1, le=1000, description="reserved concurrent executions of the export function; none by default"
    )


class ApiEndpoint(Strict):
    url: str
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    paging: Paging = Field(default_factory=Paging)
    records: str | None = None  # dotted path to the list of rows in a response, e.g. data.items
    auth: ApiAuth | None = None

    @model_validator(mode="after")
    def _auth_param_is_free(self) -> ApiEndpoint:
        taken = {name for name in (self.paging.param, self.paging.size_param) if name} | set(self.params)
        if self.auth and self.auth.query_param in taken:
            raise ValueError(
                f"auth.query_param {self.auth.query_param!r} is also in params or paging; "
                "the secret's parameter must be set by auth alone"
            )
        return self

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError("an API endpoint must be an http(s) URL")
        return url

    @model_validator(mode="after")
    def _no_credentials(self) -> ApiEndpoint:
        parts = urlsplit(self.url)
        if "@" in parts.netloc:
            raise ValueError(
                "the URL holds a user name or password before '@'; put the credential in a secret and name it "
                'in "auth": {"secret": "pp-dw/NAME", "scheme": "Basic"} (the secret holding user:password)'
            )
        found = credential_params([*_query_names(parts.query), *_query_names(parts.fragment), *self.params])
        if found:
            raise ValueError(
                f"{', '.join(found)} in the URL or params looks like a credential, which would sit in the "
                'config in plain text; put it in a secret and name it in "auth": {"secret": "pp-dw/NAME", '
                f'"query_param": "{found[0]}"}}'
            )
        return self


class DatasetMonitoring(Strict):
    """Per-dataset alarm settings; anything left out takes the core config's `monitoring` default."""

    # None: a freshness alarm exactly when the dataset has a schedule. True without a schedule
    # needs `expected_every_hours`.
    freshness: bool | None = None
    expected_every_hours: float | None = Field(None, gt=0)
    freshness_grace_hours: float | None = Field(None, ge=0)
    # Absolute rejected fraction that warns; must stay below quality.max_rejected_fraction.
    reject_warning_fraction: float | None = Field(None, gt=0, lt=1)
    max_duration_minutes: int | None = Field(None, ge=1)
    duration_band_stddevs: float | None = Field(None, gt=0)


class DatasetConfig(Strict):
    schema_ref: str | None = Field(None, alias="$schema")
    dataset: str
    description: str = Field(min_length=1, max_length=250)
    data_size_category: Literal["small", "medium", "large", "xlarge"]
    schedule: str | None = None
    source_url: str | None = None
    api_endpoints: list[ApiEndpoint] | None = None
    dynamodb_table: str | None = None
    landing: bool | None = None
    # Credentials for an http(s) source_url, read from a secret like an API endpoint's `auth`.
    source_auth: ApiAuth | None = None
    format: Literal["csv", "json", "jsonl", "parquet"] | None = None
    csv: CsvOptions = Field(default_factory=CsvOptions)
    archive: ArchiveOptions = Field(default_factory=ArchiveOptions)
    export: ExportOptions = Field(default_factory=ExportOptions)
    columns: dict[ColumnName, TypeText] = Field(default_factory=dict)
    primary_key: list[ColumnName] = Field(default_factory=list)
    quality: QualityRules = Field(default_factory=QualityRules)
    # Array columns (cleaned, flattened names such as `items` or `order_lines`) to turn into one
    # row per element, in this order, before typing; every other array stays an array.
    explode: list[ColumnName] = Field(default_factory=list)
    monitoring: DatasetMonitoring = Field(default_factory=DatasetMonitoring)
    # Glue Flex: spare capacity at a lower price, for runs that can wait (G.1X / G.2X workers only).
    execution_class: Literal["standard", "flex"] = "standard"
    # Unset: the core config.json's table_format (see `table_format_of`).
    table_format: Literal["parquet", "iceberg"] | None = None
    load_mode: Literal["full", "append", "merge"] = "full"
    partition_by: list[str] = Field(default_factory=list)
    # Iceberg only: snapshots older than this many days are expired (and files no snapshot uses deleted).
    snapshot_retention_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("partition_by")
    @classmethod
    def _partition_grammar(cls, items: list[str]) -> list[str]:
        for item in items:
            parse_partition(item)
        if len({parse_partition(i).column for i in items}) != len(items):
            raise ValueError("each column may appear once in partition_by")
        return items

    @model_validator(mode="after")
    def _load_mode(self) -> DatasetConfig:
        if self.load_mode == "merge" and not self.primary_key:
            raise ValueError(
                'load_mode "merge" replaces rows by primary_key, and primary_key is empty: add "primary_key": '
                '["column", ...] (the columns that identify a row), or use load_mode "append" or "full"'
            )
        if self.load_mode != "full" and self.table_format == "parquet":
            raise ValueError(
                f'load_mode "{self.load_mode}" needs table_format "iceberg" (a Parquet folder is replaced whole '
                'by each run): set "table_format": "iceberg" or use load_mode "full"'
            )
        if self.table_format == "parquet" and self.partition_by:
            raise ValueError(
                'partition_by is applied to Iceberg tables only: set "table_format": "iceberg", or remove '
                "partition_by (Parquet folders stay unpartitioned)"
            )
        for item in self.partition_by:
            part = parse_partition(item)
            if part.column not in self.columns:
                raise ValueError(
                    f"partition_by {item!r} names the column {part.column!r}, which columns does not declare: "
                    f'declare it in "columns" with its type (partition columns need a known type)'
                )
            base = parse_column_type(self.columns[part.column]).spark_type
            if part.transform != "identity" and base not in PARTITION_TIME_TYPES[part.transform]:
                raise ValueError(
                    f"partition_by {item!r}: {part.transform}() needs a "
                    f"{' or '.join(PARTITION_TIME_TYPES[part.transform])} column, and {part.column} is {base}; "
                    f"partition by {part.column} itself or by another column"
                )
            if part.transform == "identity" and base in ("double",):
                raise ValueError(
                    f"partition_by {item!r}: Iceberg does not partition by a floating-point column; pick another"
                )
        return self

    @model_validator(mode="after")
    def _monitoring(self) -> DatasetConfig:
        m = self.monitoring
        if m.reject_warning_fraction is not None and m.reject_warning_fraction >= self.quality.max_rejected_fraction:
            raise ValueError(
                f"monitoring.reject_warning_fraction {m.reject_warning_fraction} must be below "
                f"quality.max_rejected_fraction {self.quality.max_rejected_fraction} (the warning comes before "
                "the run fails); lower it or leave it out to warn at the core default"
            )
        if m.freshness and not self.schedule and m.expected_every_hours is None:
            raise ValueError(
                "monitoring.freshness is true but the dataset has no schedule: set monitoring.expected_every_hours "
                "(how often a successful run is expected), or add a schedule"
            )
        return self

    @field_validator("dataset")
    @classmethod
    def _name(cls, name: str) -> str:
        if not DATASET_NAME.match(name) or "--" in name:
            raise ValueError("use lowercase letters, digits and single '-', starting with a letter")
        return name

    @field_validator("columns")
    @classmethod
    def _not_the_job_s(cls, columns: dict[str, str]) -> dict[str, str]:
        own = [name for name in columns if name in JOB_COLUMNS]
        if own:
            raise ValueError(
                f"{', '.join(own)}: the job's own column; a source column of that name is "
                f"{', '.join(n + '_2' for n in own)} in bronze: declare that"
            )
        return columns

    @field_validator("description")
    @classmethod
    def _one_line(cls, text: str) -> str:
        if "\n" in text:
            raise ValueError("the description is one line")
        # Glue refuses a job description with other control characters (its pattern: tab, CR, LF, U+0020 up).
        control = sorted(
            {f"U+{ord(c):04X}" for c in text if (ord(c) < 0x20 and c not in "\t\r") or c in "\ufffe\uffff"}
        )
        if control:
            raise ValueError(
                f"the description holds control characters ({', '.join(control)}), which Glue refuses; remove them"
            )
        return text

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, expr: str | None) -> str | None:
        problem = None if expr is None else schedule_problem(expr)
        if problem:
            joint = " " if problem.startswith("is ") else ": "
            raise ValueError(f"{expr!r}{joint}{problem} (or leave schedule out to run on demand)")
        return expr

    @field_validator("source_url")
    @classmethod
    def _source(cls, url: str | None) -> str | None:
        if url is None:
            return url
        if not url.strip():
            raise ValueError("is empty; give the source's URL, or a path relative to the dataset folder")
        if "://" in url and not url.startswith(SOURCE_SCHEMES):
            raise ValueError("use an https, http or s3 URL, or a path relative to the dataset folder")
        if url.startswith("file://"):
            raise ValueError(
                "a file:// path exists on this machine only, never on Glue; copy the file into the dataset "
                "folder and give its relative path (such as data/file.csv; the stack deploys it with the job), "
                "or upload it to S3 and give its s3:// URL"
            )
        if "://" not in url:
            return _relative_source(url)
        _no_credentials(url)
        return url

    @model_validator(mode="after")
    def _source_auth_needs_http(self) -> DatasetConfig:
        if self.source_auth is not None and not (self.source_url or "").startswith(("https://", "http://")):
            raise ValueError(
                "source_auth sends a secret to an http(s) source_url; remove it, or use api_endpoints[].auth "
                "for an API (an s3:// source is read with the job's role)"
            )
        return self

    @field_validator("dynamodb_table")
    @classmethod
    def _table(cls, name: str | None) -> str | None:
        if name is not None and not re.match(r"^[A-Za-z0-9_.-]{3,255}$", name):
            raise ValueError("a DynamoDB table name has 3-255 letters, digits, '_', '-' or '.'")
        return name

    @model_validator(mode="after")
    def _one_source(self) -> DatasetConfig:
        given = [key for key in SOURCE_KEYS if getattr(self, key) not in (None, False, [])]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"exactly one source is needed, found {found}; keep one of {', '.join(SOURCE_KEYS)}")
        if self.landing and self.schedule:
            raise ValueError(
                "a landing dataset runs when its files arrive (the _SUCCESS marker), never on a schedule: a scheduled "
                "run would find no dropped files and fail; remove schedule"
            )
        return self

    @property
    def source_kind(self) -> str:
        return next(key for key in SOURCE_KEYS if getattr(self, key) not in (None, False, []))

    @property
    def secrets(self) -> list[str]:
        """Names of the secrets the source needs (API endpoints' auth, source_auth), sorted, each once."""
        names = {e.auth.secret for e in self.api_endpoints or [] if e.auth is not None}
        if self.source_auth is not None:
            names.add(self.source_auth.secret)
        return sorted(names)

    @property
    def column_types(self) -> dict[str, ColumnType]:
        return {name: parse_column_type(text) for name, text in self.columns.items()}

    def input_format(self, file_name: str | None = None) -> str:
        """The declared format, else the one the source file's name implies, else csv."""
        if self.format:
            return self.format
        if self.source_kind in ("api_endpoints",):
            return "jsonl"
        name = (file_name or self.source_url or "").lower()
        for suffix in (".gz", ".zip"):
            name = name.removesuffix(suffix)
        for fmt, suffixes in (("parquet", (".parquet",)), ("jsonl", (".jsonl", ".ndjson")), ("json", (".json",))):
            if name.endswith(suffixes):
                return fmt
        return "csv"


# The jobs' packages that Glue 5.1 does not provide (pydantic for config, sqlglot for gold models,
# urllib3 2 for fetch) and their dependencies, as wheels for CPython 3.11 on manylinux x86_64.
GLUE_WHEELS = (
    "pydantic==2.13.4",
    "pydantic-core==2.46.4",
    "typing-extensions==4.16.0",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "sqlglot==30.30.0",
    # pyiceberg commits the Iceberg tables (the Glue catalog); the rest are its dependencies.
    "pyiceberg==0.12.0",
    "cachetools==8.0.2",
    "click==8.5.1",
    "fsspec==2026.9.0",
    "mmh3==5.3.1",
    "pyparsing==3.3.3",
    "pyroaring==1.0.3",
    "requests==2.34.2",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "idna==3.20",
    "rich==15.0.0",
    "markdown-it-py==4.3.0",
    "mdurl==0.1.2",
    "pygments==2.21.0",
    "strictyaml==1.7.3",
    "python-dateutil==2.9.0.post0",
    "six==1.17.0",
    "tenacity==9.2.1",
    "zstandard==0.25.0",
    "urllib3==2.8.0",  # last: tests swap it for another version
)
PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$")


PARTITION = re.compile(
    r"^\s*(?:(?P<transform>year|month|day|hour)\(\s*(?P<inner>[a-z_][a-z0-9_]*)\s*\)|(?P<column>[a-z_][a-z0-9_]*))\s*$"
)
PARTITION_TIME_TYPES = {
    "year": ("date", "timestamp"),
    "month": ("date", "timestamp"),
    "day": ("date", "timestamp"),
    "hour": ("timestamp",),
}


@dataclass(frozen=True)
class PartitionField:
    """One `partition_by` item: a column, or an Iceberg time transform of one (`day(created_at)`)."""

    transform: str  # identity, year, month, day, hour
    column: str


def parse_partition(text: str) -> PartitionField:
    """`created_at`, `day(created_at)`, …; ValueError says what is allowed."""
    match = PARTITION.match(text)
    if not match:
        raise ValueError(
            f"partition_by item {text!r} is not a column or a transform of one; write a cleaned column name "
            "(`country`) or year(col), month(col), day(col), hour(col) (bucket and truncate are not supported)"
        )
    if match["column"]:
        return PartitionField("identity", match["column"])
    return PartitionField(match["transform"], match["inner"])


def table_format_of(core: CoreConfig, dataset: DatasetConfig) -> str:
    """The dataset's own table_format, else the lake's (core config.json)."""
    return dataset.table_format or core.table_format


def schedule_interval_hours(expr: str) -> float:
    """The longest expected gap between two scheduled runs, in hours: never shorter than the real one,
    so a dataset on time never alarms.

    rate(): exact. cron(): from the most restrictive field: a month other than `*` gives a year (366
    days: `1` runs every January only); a day-of-month other than `*`/`?` 31 days; an nth or last
    weekday of the month (`MON#1`, `6L`) 35 days; another day-of-week 7 days; an hour field of `*`
    1 hour and `*/n` or `a/n` n hours; anything else (fixed hours, lists, ranges) 1 day. The year
    field only says in which years the rest applies.
    """
    if match := RATE.match(expr):
        value, unit = int(match["value"]), match["unit"].rstrip("s")
        return value * {"minute": 1 / 60, "hour": 1, "day": 24}[unit]
    match = CRON.match(expr)
    if not match:
        raise ValueError(f"{expr!r} is neither rate() nor cron()")
    _minutes, hours, day_of_month, month, day_of_week, _year = match["fields"].split(" ")
    if month != "*":
        return 366 * 24
    if day_of_month not in ("*", "?"):
        return 31 * 24
    if "#" in day_of_week or "L" in day_of_week.upper():
        return 35 * 24  # the first Monday of one month to the first Monday of the next: up to 5 weeks
    if day_of_week not in ("*", "?"):
        return 7 * 24
    if hours == "*":
        return 1
    if step := re.fullmatch(r"(?:\*|\d+)/(\d+)", hours):
        return int(step[1])
    return 24


def freshness_window_hours(core: CoreConfig, dataset: DatasetConfig) -> float | None:
    """The window in which a success must appear (expected interval plus grace); None: no freshness alarm
    (not scheduled and not asked for, or turned off)."""
    own = dataset.monitoring
    if own.freshness is False or (own.freshness is None and not dataset.schedule):
        return None
    expected = own.expected_every_hours
    if expected is None:
        expected = schedule_interval_hours(dataset.schedule) if dataset.schedule else 0.0
    grace = own.freshness_grace_hours
    return expected + (grace if grace is not None else core.monitoring.freshness_grace_hours)


FRESHNESS_RETENTION_HOURS = 455 * 24  # CloudWatch keeps hourly data points 455 days: the furthest a check sees


def freshness_problems(core: CoreConfig, datasets: dict[str, DatasetConfig]) -> list[Problem]:
    """A freshness window (expected interval plus grace) longer than CloudWatch keeps the age figure's hours."""
    problems = []
    for name, config in sorted(datasets.items()):
        window = freshness_window_hours(core, config)
        if window is not None and window > FRESHNESS_RETENTION_HOURS:
            problems.append(
                Problem(
                    f"datasets/{name}/config.json",
                    "monitoring",
                    f"a success is expected only every {window:g} hours (the schedule or expected_every_hours, "
                    f"plus freshness_grace_hours), longer than the {FRESHNESS_RETENTION_HOURS} hours CloudWatch "
                    "keeps hourly data: lower monitoring.expected_every_hours or monitoring.freshness_grace_hours, "
                    "or set monitoring.freshness to false",
                )
            )
    return problems


def format_problems(core: CoreConfig, datasets: dict[str, DatasetConfig]) -> list[Problem]:
    """What only the core and dataset configs together decide: append and merge need Iceberg."""
    problems = []
    for name, config in sorted(datasets.items()):
        if table_format_of(core, config) == "iceberg" or config.table_format is not None:
            continue  # the dataset's own parquet is refused by the dataset model itself
        if config.load_mode != "full":
            problems.append(
                Problem(
                    f"datasets/{name}/config.json",
                    "load_mode",
                    f'"{config.load_mode}" needs table_format "iceberg", and the lake\'s table_format '
                    f'(config.json) is "{core.table_format}": set "table_format": "iceberg" in this dataset, '
                    'or use load_mode "full"',
                )
            )
        if config.partition_by:
            problems.append(
                Problem(
                    f"datasets/{name}/config.json",
                    "partition_by",
                    f"is applied to Iceberg tables only, and the lake's table_format (config.json) is "
                    f'"{core.table_format}": set "table_format": "iceberg" in this dataset, or remove partition_by',
                )
            )
    return problems


class GlueDefaults(Strict):
    glue_version: Literal["5.1"] = "5.1"
    timeout_minutes: int = Field(120, ge=1, le=2880)
    # Every package the jobs need beyond Glue 5.1's own, with all their dependencies, each pinned: synth
    # downloads these wheels for Glue's platform (CPython 3.11, manylinux x86_64) and deploys them with
    # the job files; Glue installs them from there with pip --no-index (no internet at job start).
    additional_python_modules: list[str] = Field(default_factory=lambda: list(GLUE_WHEELS))

    @field_validator("additional_python_modules")
    @classmethod
    def _pinned(cls, modules: list[str]) -> list[str]:
        loose = [m for m in modules if not PINNED.match(m)]
        if loose:
            raise ValueError(
                f"pin every module as name==version (found {', '.join(map(repr, loose))}): they are downloaded "
                "as wheels at synth, without resolving dependencies, so list the dependencies too"
            )
        names = {m.split("==")[0].lower().replace("_", "-"): m.split("==")[1] for m in modules}
        missing = [m for m in GLUE_WHEELS if m.split("==")[0] not in names]
        if missing:
            raise ValueError(f"the jobs need {', '.join(missing)} (or another pinned version of each); add them")
        if not names["urllib3"].startswith("2."):
            raise ValueError(
                "urllib3 must be 2.x: dwlib.fetch uses urllib3 2 (NameResolutionError, BaseHTTPResponse), "
                "and Glue 5.1's own urllib3 is not promised to be 2.x"
            )
        return modules


class WorkerConfig(Strict):
    worker_type: Literal["G.025X", "G.1X", "G.2X", "G.4X", "G.8X"]
    number_of_workers: int = Field(ge=2, le=299)


class LifecycleConfig(Strict):
    raw_retention_days: int = Field(90, ge=1)
    athena_results_retention_days: int = Field(30, ge=1)
    noncurrent_version_retention_days: int = Field(30, ge=1)
    access_log_retention_days: int = Field(365, ge=1)


class AthenaConfig(Strict):
    bytes_scanned_cutoff_per_query: int = Field(10 * 1024**3, ge=10 * 1024**2)


class MonitoringConfig(Strict):
    """Alarm defaults for every dataset (README, "Operating the lake"); a dataset may override them."""

    freshness_grace_hours: float = Field(6.0, ge=0)
    # The reject-rate warning fires at this share of a dataset's quality.max_rejected_fraction.
    reject_warning_ratio: float = Field(0.5, gt=0, lt=1)
    # Duration: above a fixed limit when one is set, else outside CloudWatch's anomaly band.
    max_duration_minutes: int | None = Field(None, ge=1)
    duration_band_stddevs: float = Field(3.0, gt=0)


class PriceConfig(Strict):
    """Glue prices for `dw list`'s estimates (USD; the README says for which region and date)."""

    as_of: str = Field("2026-12-01", pattern=r"^\d{4}-\d{2}-\d{2}$")
    region: str = "us-east-1"
    glue_dpu_hour: float = Field(0.44, ge=0)
    glue_flex_dpu_hour: float = Field(0.29, ge=0)


class CoreConfig(Strict):
    schema_ref: str | None = Field(None, alias="$schema")
    etl_resource_prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{1,20}[a-z0-9]$")
    database_prefix: str = Field(pattern=r"^[a-z][a-z0-9_]{1,30}$")
    glue_defaults: GlueDefaults = Field(default_factory=GlueDefaults)
    glue_worker_configs: dict[Literal["small", "medium", "large", "xlarge"], WorkerConfig]
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    athena: AthenaConfig = Field(default_factory=AthenaConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    prices: PriceConfig = Field(default_factory=PriceConfig)
    # "parquet": crawled Parquet folders; "iceberg": the jobs commit Iceberg tables. A dataset may override it.
    table_format: Literal["parquet", "iceberg"] = "parquet"
    # Iceberg tables: snapshots older than this are expired after each commit (a dataset may override it).
    snapshot_retention_days: int = Field(7, ge=1, le=MAX_RETENTION_DAYS)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("etl_resource_prefix")
    @classmethod
    def _bucket_name_start(cls, prefix: str) -> str:
        # The buckets are named `{prefix}-…-{account}`, so the prefix and its hyphen start their names.
        refused = [start for start in BUCKET_RESERVED_STARTS if f"{prefix}-".startswith(start)]
        if refused:
            raise ValueError(
                f"the lake's bucket names start with {prefix}-, and S3 refuses bucket names starting with "
                f"{refused[0]!r} (reserved by AWS); pick another prefix"
            )
        return prefix

    @field_validator("glue_worker_configs")
    @classmethod
    def _all_sizes(cls, configs: dict[str, WorkerConfig]) -> dict[str, WorkerConfig]:
        missing = [size for size in SIZE_CATEGORIES if size not in configs]
        if missing:
            raise ValueError(f"add a worker config for {', '.join(missing)}")
        return configs


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, worded as advice."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}" if self.field else f"{self.file}: {self.message}"


class ConfigError(Exception):
    """Every problem found, each naming its file and field."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_FIXES = {
    "extra_forbidden": "unknown key; remove it or fix its spelling",
    "missing": "required; add it",
}


def _problems_from(error: ValidationError, file: str, model: type[BaseModel]) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "(top level)"
        kind = item["type"]
        if kind == "extra_forbidden" and len(item["loc"]) == 1:
            allowed = sorted(f.alias or name for name, f in model.model_fields.items())
            message = f"unknown key; remove it or fix its spelling (allowed: {', '.join(allowed)})"
        elif kind in _FIXES:
            message = _FIXES[kind]
        else:
            message = item["msg"].removeprefix("Value error, ")
            if kind == "literal_error":
                message += " (pick one of those)"
        problems.append(Problem(file, loc, message))
    return problems


class _Unreadable(ValueError):
    """JSON that Python reads but a config must not be: a key twice in one object, NaN or Infinity."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:  # json.loads would keep the last silently: `"primary_key": []` after the real one
            raise _Unreadable(f"the key {key!r} appears twice in one object; keep one")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise _Unreadable(f"{name} is not a JSON number; write a number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999
        raise _Unreadable(f"{text} is too large for a number; write a smaller one")
    return value


def _read_json(path: Path, label: str) -> tuple[Any, list[Problem]]:
    """The file's JSON, or the problem that names the file and what to do: a config that cannot be read
    is one more problem in the list, never an exception that loses the file's name."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # Notepad and PowerShell save UTF-8 with a byte order mark
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite), []
    except _Unreadable as exc:
        return None, [Problem(label, "", str(exc))]
    except FileNotFoundError:
        return None, [Problem(label, "", "file not found; create it (see the README)")]
    except json.JSONDecodeError as exc:
        return None, [Problem(label, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")]
    except UnicodeDecodeError as exc:
        return None, [Problem(label, f"byte {exc.start}", "is not UTF-8 text; save the file as UTF-8")]
    except RecursionError:
        return None, [Problem(label, "", "invalid JSON: nested too deeply to be a config; check the brackets")]
    except OSError as exc:  # a folder, no permission
        return None, [Problem(label, "", f"cannot be read ({exc.strerror or exc}); make it a readable JSON file")]
    except ValueError as exc:  # an integer of more digits than Python converts
        return None, [Problem(label, "", f"invalid JSON: {exc}; write a shorter number")]


def load_core_config(path: Path) -> CoreConfig:
    """Read and validate the core config.json; ConfigError names every problem."""
    label = path.name
    data, problems = _read_json(path, label)
    if problems:
        raise ConfigError(problems)
    try:
        return CoreConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems_from(exc, label, CoreConfig)) from None


def check_dataset(folder: Path, label: str) -> tuple[DatasetConfig | None, list[Problem]]:
    """Validate one dataset folder; returns the config (or None) and its problems."""
    if not DATASET_NAME.match(folder.name) or "--" in folder.name:
        return None, [
            Problem(
                label,
                "",
                f"folder name {folder.name!r} is not a dataset name; rename the folder "
                "to lowercase letters, digits and single '-', starting with a letter",
            )
        ]
    data, problems = _read_json(folder / "config.json", label)
    if problems:
        return None, problems
    try:
        config = DatasetConfig.model_validate(data)
    except ValidationError as exc:
        return None, _problems_from(exc, label, DatasetConfig)
    if config.dataset != folder.name:
        return None, [
            Problem(label, "dataset", f"{config.dataset!r} must equal the folder name {folder.name!r}; make them match")
        ]
    source = config.source_url
    if source and "://" not in source:
        path = folder / source
        if not path.is_file():
            problems.append(
                Problem(label, "source_url", f"file {source!r} not found in {folder}; add it or fix the path")
            )
        elif not path.resolve().is_relative_to(folder.resolve()):
            problems.append(
                Problem(
                    label,
                    "source_url",
                    f"{source!r} leads out of {folder} (a link); only the folder's own files are deployed to "
                    "Glue: copy the file into the folder",
                )
            )
    return config, problems


def discover_datasets(root: Path) -> dict[str, DatasetConfig]:
    """Every `datasets/*/config.json` under root, validated; ConfigError lists every broken folder."""
    configs, problems = _discover(root)
    if problems:
        raise ConfigError(problems)
    return configs


def _discover(root: Path) -> tuple[dict[str, DatasetConfig], list[Problem]]:
    datasets_dir = root / "datasets"
    configs: dict[str, DatasetConfig] = {}
    problems: list[Problem] = []
    for folder in sorted(p for p in datasets_dir.iterdir() if p.is_dir()) if datasets_dir.is_dir() else []:
        if not (folder / "config.json").exists():
            continue  # a folder without config.json is not a dataset (yet)
        label = f"datasets/{folder.name}/config.json"
        config, found = check_dataset(folder, label)
        problems.extend(found)
        if config is not None and not found:
            configs[config.dataset] = config
    return configs, problems


def _stems(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.sql")) if folder.is_dir() else []


def cross_stage_problems(core: CoreConfig, resources: list[Resource], parts_of: dict[str, dict]) -> list[Problem]:
    """Default-stage names that a stage deployed beside it would also create.

    A stage goes right after the prefix and has no `-`, so only the default stage can share a name with
    a stage, and only through names that start with the dataset (its own role, its named queries): dataset
    `dev-glue`'s own role `pp-dw-dev-glue-job-role` is stage dev's shared job role. Stage names that are
    words of the names (`alarm`, `bronze`, ...) are refused by check_stage; this checks the stages named
    like the first word of a dataset, whether or not they are deployed yet.
    """
    mine = {(r.kind, r.scope, r.name): r for r in resources if not r.kind.endswith("_description")}
    problems: list[Problem] = []
    for stage in sorted({name.split("-", 1)[0] for name in parts_of if "-" in name}):
        try:
            other = Naming.of(core, stage)
        except ValueError:  # not a stage anyone can deploy
            continue
        theirs = list(other.core_resources())
        for name, parts in sorted(parts_of.items()):
            theirs += other.dataset_resources(name, **parts)
        for resource in theirs:
            found = mine.get((resource.kind, resource.scope, resource.name))
            if found is None:
                continue
            problems.append(
                Problem(
                    found.file,
                    found.field,
                    f"{LIMITS[found.kind].what} {found.name!r} of {found.owner} is also the name {resource.owner} "
                    f"gets in the stage {stage!r} (make deploy STAGE={stage}): the two copies side by side would "
                    f"collide; rename it so that it does not start with '{stage}-', or never deploy a stage named "
                    f"{stage}",
                )
            )
    return problems


def resource_problems(root: Path, core: CoreConfig, datasets: dict[str, DatasetConfig]) -> list[Problem]:
    """Names AWS would refuse at deploy time: over a service's length limit, or taken by another owner.

    Every physical name of the core stack and of each dataset's stack is built with the same
    Naming methods the stacks use, so a name that passes here is the name that gets deployed.
    """
    naming = Naming.of(core)
    # Every name is also measured as a stage of the longest allowed name would make it (`-c stage=…`),
    # so what passes here fits in every stage; names are shown as the default stage has them.
    staged = Naming.of(core, LONGEST_STAGE)
    problems: list[Problem] = []
    resources: list[Resource] = list(naming.core_resources())
    longest: list[Resource] = list(staged.core_resources())
    parts_of: dict[str, dict] = {}
    for name, config in sorted(datasets.items()):
        folder = root / "datasets" / name
        queries = _stems(folder / "queries")
        parts = dict(
            models=_stems(folder / "gold"),
            queries=queries,
            own_role=bool(config.secrets) or table_format_of(core, config) == "iceberg",
            iceberg=table_format_of(core, config) == "iceberg",
            schedule=bool(config.schedule),
            export=config.source_kind == "dynamodb_table",
            arrival=config.source_kind in ("dynamodb_table", "landing"),
            description=config.description,
        )
        parts_of[name] = parts
        problems += [
            Problem(
                f"datasets/{name}/gold/{model}.sql",
                "",
                f"model name {model!r} must be lowercase letters, digits and _, starting with a letter: it is the "
                "gold table's name in Athena and a folder of the lake; rename the file",
            )
            for model in parts["models"]
            if not MODEL_NAME.match(model)
        ]
        resources += naming.dataset_resources(name, **parts)
        longest += staged.dataset_resources(name, **parts)
        worker_type = core.glue_worker_configs[config.data_size_category].worker_type
        if config.execution_class == "flex" and worker_type not in FLEX_WORKER_TYPES:
            problems.append(
                Problem(
                    f"datasets/{name}/config.json",
                    "execution_class",
                    f"flex runs only on {' or '.join(FLEX_WORKER_TYPES)} workers, and the {config.data_size_category} "
                    f'size category uses {worker_type} (config.json glue_worker_configs); use "standard" or change '
                    "the worker type",
                )
            )
        column_limit = LIMITS["glue_column"].max_length
        for column in sorted({c for c in (*config.columns, *config.primary_key) if len(c) > column_limit}):
            problems.append(
                Problem(
                    f"datasets/{name}/config.json",
                    f"columns.{column[:40]}…",
                    f"is {len(column)} characters; Glue and Athena column names take at most {column_limit}: "
                    "declare a shorter name",
                )
            )
        # CDK construct ids of the named queries must differ within the stack, or synth stops.
        seen: dict[str, str] = {}
        for stem in queries:
            construct = query_construct_id(stem)
            if construct in seen:
                problems.append(
                    Problem(
                        f"datasets/{name}/queries/{stem}.sql",
                        "",
                        f"maps to the same Athena named query resource ({construct}) as "
                        f"queries/{seen[construct]}.sql, because the stack drops '_' and '-' and the case of "
                        "file names; rename one of them",
                    )
                )
            else:
                seen[construct] = stem
    problems += cross_stage_problems(core, resources, parts_of)
    owners: dict[tuple[str, str, str], Resource] = {}
    assert [(r.kind, r.file) for r in resources] == [(r.kind, r.file) for r in longest]
    for resource, in_stage in zip(resources, longest, strict=True):
        limit = LIMITS[resource.kind]
        size, staged_size = limit.size(resource.name), limit.size(in_stage.name)
        if staged_size > limit.max_length:
            room = limit.max_length - (staged_size - limit.size(resource.part))
            what = {"dataset": "the dataset name (and its folder)", "": "the file name"}.get(
                resource.field, resource.field
            )
            unit = "characters" if size == len(resource.name) else limit.unit
            in_a_stage = (
                f" ({staged_size} in a stage of {MAX_STAGE_LENGTH} characters, the longest stage name allowed)"
                if staged_size != size
                else ""
            )
            problems.append(
                Problem(
                    resource.file,
                    resource.field,
                    f"makes the {limit.what} {resource.name!r} {size} {unit}{in_a_stage}, over AWS's "
                    f"limit of {limit.max_length}; shorten {what} to at most {max(room, 0)} {unit}",
                )
            )
        if resource.kind.endswith("_description"):
            continue
        key = (resource.kind, resource.scope, resource.name)
        first = owners.setdefault(key, resource)
        if first is not resource:
            shown = f"{resource.scope}.{resource.name}" if resource.scope else resource.name
            fix = "rename the dataset (and its folder)" if resource.field == "dataset" else "rename the file"
            problems.append(
                Problem(
                    resource.file,
                    resource.field,
                    f"{limit.what} {shown!r} of {resource.owner} is already that of {first.owner}; "
                    f"AWS names must be unique: {fix}",
                )
            )
    return problems


@dataclass(frozen=True)
class Project:
    """The repository as the app sees it: core config plus every dataset."""

    root: Path
    core: CoreConfig
    datasets: dict[str, DatasetConfig]

    def dataset_dir(self, dataset: str) -> Path:
        return self.root / "datasets" / dataset


def load_project(root: Path) -> Project:
    """Load config.json and every dataset folder, collecting problems from both."""
    problems: list[Problem] = []
    core = datasets = None
    try:
        core = load_core_config(root / "config.json")
    except ConfigError as exc:
        problems.extend(exc.problems)
    datasets, found = _discover(root)
    problems.extend(found)
    if core is not None:
        problems.extend(resource_problems(root, core, datasets))
        problems.extend(format_problems(core, datasets))
        problems.extend(freshness_problems(core, datasets))
    if problems:
        raise ConfigError(problems)
    assert core is not None and datasets is not None
    return Project(root=root, core=core, datasets=datasets)
