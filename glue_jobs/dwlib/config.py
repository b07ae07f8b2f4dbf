"""Core and dataset configuration: loaded and validated once, at the edge.

The CDK app, the Glue jobs and the `dw` command all read configuration through this
module, so a folder that synthesizes is a folder the job can run. Unknown keys are an
error, never ignored. Problems are collected, not raised one at a time, so a user sees
every broken field of every folder in one go.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

SIZE_CATEGORIES = ("small", "medium", "large", "xlarge")
FORMATS = ("csv", "json", "jsonl", "parquet")
SOURCE_KEYS = ("source_url", "api_endpoints", "dynamodb_table", "landing")

DATASET_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
SIMPLE_TYPES = ("string", "int", "bigint", "double", "boolean", "date", "timestamp")
DECIMAL_TYPE = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$")
# EventBridge Scheduler: cron() has six fields, rate() a positive value and unit.
CRON = re.compile(r"^cron\((\S+\s+){5}\S+\)$")
RATE = re.compile(r"^rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)$")
SOURCE_SCHEMES = ("https://", "http://", "s3://", "file://")
# Secrets Manager names: letters, digits and /_+=.@- ; header names are HTTP tokens.
SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ColumnType:
    """A declared column type: a Spark SQL type, and for dates/timestamps an optional parse format."""

    spark_type: str
    fmt: str | None = None


def parse_column_type(text: str) -> ColumnType:
    """Parse `int`, `decimal(10,2)`, `date:yyyyMMdd` and the like; ValueError says what is allowed."""
    base, _, fmt = text.strip().partition(":")
    base = base.strip().lower()
    if base in ("date", "timestamp"):
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
    format: Literal["csv", "json", "jsonl", "parquet"] | None = None
    csv: CsvOptions = Field(default_factory=CsvOptions)
    columns: dict[ColumnName, TypeText] = Field(default_factory=dict)
    primary_key: list[ColumnName] = Field(default_factory=list)
    quality: QualityRules = Field(default_factory=QualityRules)
    # Array columns (cleaned, flattened names such as `items` or `order_lines`) to turn into one
    # row per element, in this order, before typing; every other array stays an array.
    explode: list[ColumnName] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("dataset")
    @classmethod
    def _name(cls, name: str) -> str:
        if not DATASET_NAME.match(name) or "--" in name:
            raise ValueError("use lowercase letters, digits and single '-', starting with a letter")
        return name

    @field_validator("description")
    @classmethod
    def _one_line(cls, text: str) -> str:
        if "\n" in text:
            raise ValueError("the description is one line")
        return text

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, expr: str | None) -> str | None:
        if expr is not None and not (CRON.match(expr) or RATE.match(expr)):
            raise ValueError(
                f"{expr!r} is not an EventBridge Scheduler expression; "
                "write cron(0 6 * * ? *) or rate(1 day), or leave it out to run on demand"
            )
        return expr

    @field_validator("source_url")
    @classmethod
    def _source(cls, url: str | None) -> str | None:
        if url is None:
            return url
        if "://" in url and not url.startswith(SOURCE_SCHEMES):
            raise ValueError("use an https, http, s3 or file URL, or a path relative to the dataset folder")
        if url.startswith("/") or ".." in Path(url).parts:
            raise ValueError("a file source is a path inside the dataset folder, such as data/file.csv")
        return url

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
        return self

    @property
    def source_kind(self) -> str:
        return next(key for key in SOURCE_KEYS if getattr(self, key) not in (None, False, []))

    @property
    def secrets(self) -> list[str]:
        """Names of the secrets the source needs (API endpoints' auth), sorted, each once."""
        return sorted({e.auth.secret for e in self.api_endpoints or [] if e.auth is not None})

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


class GlueDefaults(Strict):
    glue_version: Literal["5.1"] = "5.1"
    timeout_minutes: int = Field(120, ge=1, le=2880)
    max_retries: int = Field(1, ge=0, le=10)
    # Installed by Glue with pip at job start: pydantic for config, sqlglot for gold models.
    additional_python_modules: list[str] = Field(default_factory=lambda: ["pydantic==2.13.4", "sqlglot==30.30.0"])


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


class CoreConfig(Strict):
    schema_ref: str | None = Field(None, alias="$schema")
    etl_resource_prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{1,20}[a-z0-9]$")
    database_prefix: str = Field(pattern=r"^[a-z][a-z0-9_]{1,30}$")
    glue_defaults: GlueDefaults = Field(default_factory=GlueDefaults)
    glue_worker_configs: dict[Literal["small", "medium", "large", "xlarge"], WorkerConfig]
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    athena: AthenaConfig = Field(default_factory=AthenaConfig)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

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


def _read_json(path: Path, label: str) -> tuple[Any, list[Problem]]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), []
    except FileNotFoundError:
        return None, [Problem(label, "", "file not found; create it (see the README)")]
    except json.JSONDecodeError as exc:
        return None, [Problem(label, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")]


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
    if source and "://" not in source and not (folder / source).is_file():
        problems.append(Problem(label, "source_url", f"file {source!r} not found in {folder}; add it or fix the path"))
    return config, problems


def discover_datasets(root: Path) -> dict[str, DatasetConfig]:
    """Every `datasets/*/config.json` under root, validated; ConfigError lists every broken folder."""
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
    if problems:
        raise ConfigError(problems)
    return configs


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
    try:
        datasets = discover_datasets(root)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    assert core is not None and datasets is not None
    return Project(root=root, core=core, datasets=datasets)
