"""The repository as `dw` sees it: where it is, and every check `dw validate` makes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dwlib.config import ConfigError, CoreConfig, DatasetConfig, Problem, Project, load_core_config, load_project
from dwlib.errors import NotUtf8, utf8_text
from dwlib.hook import check_hook_source
from dwlib.naming import TRANSFORM_HOOK

SCHEMA_DIR = "schemas"
SCHEMAS = {"dataset-config.schema.json": DatasetConfig, "core-config.schema.json": CoreConfig}


class DwError(Exception):
    """An error worded as advice; `dw` prints it without a traceback and exits 1."""


def find_root(start: Path | None = None) -> Path:
    """The project root: $DW_PROJECT, else the nearest folder upwards with config.json and datasets/."""
    if os.environ.get("DW_PROJECT"):
        return Path(os.environ["DW_PROJECT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "config.json").is_file() and (folder / "datasets").is_dir():
            return folder
    raise DwError(
        f"no project here: {here} has no config.json and datasets/ above it; cd into the project or set DW_PROJECT"
    )


def _sql_problems(path: Path, label: str, dialect: str) -> list[Problem]:
    import sqlglot  # here, not above: `dw run` imports this module and never parses SQL (a quarter second)
    from sqlglot.errors import ParseError

    try:
        text = utf8_text(path.read_bytes())
    except NotUtf8 as exc:
        return [Problem(label, "", str(exc))]
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f"line {first.get('line', '?')} column {first.get('col', '?')}"
        return [Problem(label, where, f"does not parse as {dialect} SQL: {first.get('description', exc)}")]
    if len(statements) != 1:
        return [Problem(label, "", f"holds {len(statements)} statements; keep exactly one query per file")]
    return []


def validate(root: Path) -> tuple[Project | None, list[Problem]]:
    """Every problem of the project at once: configs, SQL files, AWS names (limits, collisions).

    Names and their collisions (two datasets' tables, two gold models of one name, a dataset whose
    role would take the shared role's name) are checked by load_project, as app.py does.
    """
    problems: list[Problem] = []
    project = None
    try:
        project = load_project(root)
    except ConfigError as exc:
        problems += exc.problems
    try:  # models name tables by the core config's database prefix, even when a dataset is broken
        database_prefix = load_core_config(root / "config.json").database_prefix
    except ConfigError:
        database_prefix = None  # config.json's own problems are listed; models are checked once it loads
    folders = sorted(p.parent for p in (root / "datasets").glob("*/config.json"))
    sources_by_dataset = {}
    for folder in folders:
        name = folder.name
        hook = folder / TRANSFORM_HOOK
        if hook.is_file():
            label = f"datasets/{name}/{TRANSFORM_HOOK}"
            problems += [
                Problem(label, where, message) for where, message in check_hook_source(hook.read_bytes(), label)
            ]
        for query in sorted((folder / "queries").glob("*.sql")):
            problems += _sql_problems(query, f"datasets/{name}/queries/{query.name}", "athena")
        if database_prefix is None:
            continue
        from dwlib.gold import GoldError, check_models, model_sources  # here: it imports Spark, `dw query` needs not

        named = {p.file for p in problems}  # a model's name is already checked with the project (load_project)
        try:
            sources_by_dataset[name] = model_sources(folder)
        except GoldError as exc:  # a model file that is not UTF-8: "{file}: is not UTF-8 text (...); save ..."
            file, _, message = str(exc).partition(": ")
            problems.append(Problem(file, "", message))
            continue
        for text in check_models(sources_by_dataset[name], f"datasets/{name}/gold", database_prefix):
            file, _, message = text.partition(": ")
            if file not in named:
                problems.append(Problem(file, "", message))
    if database_prefix is not None:
        from dwlib.gold import cycles_across_datasets

        for text in cycles_across_datasets(sources_by_dataset, database_prefix):
            file, _, message = text.partition(": ")
            problems.append(Problem(file, "", message))
    return project, problems


def json_schema(model) -> dict:
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def write_schemas(root: Path) -> list[Path]:
    """Regenerate schemas/*.json from the config models (editor completion for config files)."""
    folder = root / SCHEMA_DIR
    folder.mkdir(exist_ok=True)
    written = []
    for file_name, model in SCHEMAS.items():
        path = folder / file_name
        path.write_text(json.dumps(json_schema(model), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
