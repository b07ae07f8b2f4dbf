"""Config errors a user can meet: each names the file, the field, and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dwlib.config import (
    ConfigError,
    DatasetConfig,
    discover_datasets,
    load_core_config,
    load_project,
    parse_column_type,
)

VALID = {
    "dataset": "shop-orders",
    "description": "Orders",
    "data_size_category": "small",
    "source_url": "https://example.com/orders.csv",
}


def write_dataset(root: Path, folder: str, config: dict | str) -> Path:
    path = root / "datasets" / folder
    path.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config)
    (path / "config.json").write_text(text)
    return path


def problems_for(project_copy: Path, folder: str, config: dict | str) -> list[str]:
    write_dataset(project_copy, folder, config)
    with pytest.raises(ConfigError) as caught:
        discover_datasets(project_copy)
    return [str(p) for p in caught.value.problems]


def test_shipped_project_is_valid(project):
    assert {"fda-nsde", "ourairports"} <= set(project.datasets)
    assert project.core.etl_resource_prefix == "pp-dw"


def test_valid_dataset_is_accepted(project_copy):
    write_dataset(project_copy, "shop-orders", VALID)
    config = discover_datasets(project_copy)["shop-orders"]
    assert config.source_kind == "source_url"
    assert config.quality.max_rejected_fraction == 0.05
    assert config.input_format() == "csv"


@pytest.mark.parametrize(
    ("folder", "config", "expected"),
    [
        (
            "shop-orders",
            {**VALID, "source_url": " "},
            "datasets/shop-orders/config.json: source_url: is empty; give the source's URL",
        ),
        (
            "shop-orders",
            {**VALID, "columns": {"d": "date:YYYY-MM-dd"}},
            "datasets/shop-orders/config.json: columns.d: format 'YYYY-MM-dd': 'Y' is a week-based field",
        ),
        (
            "shop-orders",
            {**VALID, "columns": {"d": "timestamp:yyyy-MM-ddTHH:mm"}},
            "datasets/shop-orders/config.json: columns.d: format 'yyyy-MM-ddTHH:mm': 'T' is not a field Spark parses",
        ),
        (
            "shop-orders",
            {**VALID, "csv": {"encoding": "rot13"}},
            "datasets/shop-orders/config.json: csv.encoding: 'rot13' is not an encoding Spark reads",
        ),
        (
            "shop-orders",
            {**VALID, "csv": {"encoding": "utf-8-sig"}},
            "datasets/shop-orders/config.json: csv.encoding: 'utf-8-sig' is not an encoding Spark reads",
        ),
        (
            "shop-orders",
            {**VALID, "csv": {"delimiter": "\n"}},
            "datasets/shop-orders/config.json: csv.delimiter: a line break ends a row",
        ),
        (
            "shop-orders",
            {**VALID, "columns": {"meta_run_id": "int"}},
            "datasets/shop-orders/config.json: columns: meta_run_id: the job's own column; a source column of that "
            "name is meta_run_id_2 in bronze",
        ),
        (
            "shop-orders",
            {**VALID, "table_format": "iceberg", "snapshot_retention_days": 10**12},
            "datasets/shop-orders/config.json: snapshot_retention_days: Input should be less than or equal to 36500",
        ),
        ("shop-orders", "{ not json", "datasets/shop-orders/config.json: line 1 column 3: invalid JSON"),
        # json.loads keeps the last of a key given twice: the primary key below was dropped without a word
        (
            "shop-orders",
            json.dumps(VALID)[:-1] + ', "primary_key": ["id"], "columns": {"id": "int"}, "primary_key": []}',
            "datasets/shop-orders/config.json: the key 'primary_key' appears twice in one object; keep one",
        ),
        (
            "shop-orders",
            json.dumps(VALID)[:-1] + ', "quality": {"max_rejected_fraction": NaN}}',
            "datasets/shop-orders/config.json: NaN is not a JSON number",
        ),
        (
            "shop-orders",
            json.dumps(VALID)[:-1] + ', "monitoring": {"duration_band_stddevs": Infinity}}',
            "datasets/shop-orders/config.json: Infinity is not a JSON number",
        ),
        (
            "shop-orders",
            json.dumps(VALID)[:-1] + ', "monitoring": {"duration_band_stddevs": 1e999}}',
            "datasets/shop-orders/config.json: 1e999 is too large for a number",
        ),
        (
            "shop-orders",
            json.dumps(VALID)[:-1] + ', "timeout_minutes": ' + "9" * 5000 + "}",
            "datasets/shop-orders/config.json: invalid JSON: Exceeds the limit",
        ),
        (
            "shop-orders",
            {**{k: v for k, v in VALID.items() if k != "source_url"}, "landing": True, "schedule": "rate(1 day)"},
            "datasets/shop-orders/config.json: (top level): a landing dataset runs when its files arrive",
        ),
        (
            "shop-orders",
            {**VALID, "description": "bell\u0007 and tab\u000b"},
            "datasets/shop-orders/config.json: description: the description holds control characters (U+0007, U+000B)",
        ),
        (
            "shop-orders",
            {**VALID, "sorce_url": "x"},
            "datasets/shop-orders/config.json: sorce_url: unknown key; remove it",
        ),
        (
            "shop-orders",
            {**VALID, "data_size_category": "huge"},
            "datasets/shop-orders/config.json: data_size_category: Input should be 'small', 'medium', 'large' or 'xlarge'",
        ),
        (
            "shop-orders",
            {**VALID, "landing": True},
            "datasets/shop-orders/config.json: (top level): exactly one source is needed, found source_url, landing",
        ),
        (
            "shop-orders",
            {k: v for k, v in VALID.items() if k != "source_url"},
            "datasets/shop-orders/config.json: (top level): exactly one source is needed, found none",
        ),
        (
            "shop-orders",
            {**VALID, "dataset": "other-name"},
            "datasets/shop-orders/config.json: dataset: 'other-name' must equal the folder name 'shop-orders'",
        ),
        (
            "shop-orders",
            {**VALID, "schedule": "every day"},
            "datasets/shop-orders/config.json: schedule: 'every day' is not an EventBridge Scheduler expression",
        ),
        (
            "shop-orders",
            {**VALID, "columns": {"price": "money"}},
            "datasets/shop-orders/config.json: columns.price: unknown type 'money'",
        ),
        (
            "Shop_Orders",
            {**VALID, "dataset": "Shop_Orders"},
            "datasets/Shop_Orders/config.json: folder name 'Shop_Orders'",
        ),
        ("shop-orders", {**VALID, "description": ""}, "datasets/shop-orders/config.json: description:"),
        (
            "shop-orders",
            {**VALID, "source_url": "ftp://x/y.csv"},
            "datasets/shop-orders/config.json: source_url: use an https, http or s3 URL",
        ),
        (
            "shop-orders",
            {**VALID, "source_url": "data/missing.csv"},
            "datasets/shop-orders/config.json: source_url: file 'data/missing.csv' not found",
        ),
    ],
    ids=[
        "empty-source-url",
        "week-based-year",
        "a-letter-spark-does-not-parse",
        "not-a-text-encoding",
        "python-only-encoding",
        "line-break-delimiter",
        "the-job-s-own-column",
        "retention-past-python-s-dates",
        "invalid-json",
        "key-twice",
        "nan",
        "infinity",
        "number-too-large",
        "digits-beyond-python",
        "landing-on-a-schedule",
        "control-character-in-description",
        "unknown-key",
        "wrong-category",
        "two-sources",
        "no-source",
        "name-not-folder",
        "bad-schedule",
        "bad-column-type",
        "bad-folder-name",
        "empty-description",
        "bad-scheme",
        "missing-file",
    ],
)
def test_config_errors_name_file_field_and_fix(project_copy, folder, config, expected):
    problems = problems_for(project_copy, folder, config)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_broken_folder_is_reported_at_once(project_copy):
    write_dataset(project_copy, "first-bad", {**VALID, "dataset": "first-bad", "extra": 1})
    write_dataset(project_copy, "second-bad", {**VALID, "dataset": "second-bad", "schedule": "x"})
    with pytest.raises(ConfigError) as caught:
        discover_datasets(project_copy)
    files = {p.file for p in caught.value.problems}
    assert files == {"datasets/first-bad/config.json", "datasets/second-bad/config.json"}


def test_core_config_errors(project_copy):
    core = json.loads((project_copy / "config.json").read_text())
    del core["glue_worker_configs"]["xlarge"]
    core["etl_resource_prefix"] = "PP_DW"
    (project_copy / "config.json").write_text(json.dumps(core))
    with pytest.raises(ConfigError) as caught:
        load_core_config(project_copy / "config.json")
    text = str(caught.value)
    assert "config.json: etl_resource_prefix: String should match pattern" in text
    assert "config.json: glue_worker_configs: add a worker config for xlarge" in text


def test_load_project_collects_core_and_dataset_problems(project_copy):
    (project_copy / "config.json").write_text("{}")
    write_dataset(project_copy, "shop-orders", {**VALID, "oops": True})
    with pytest.raises(ConfigError) as caught:
        load_project(project_copy)
    files = {p.file for p in caught.value.problems}
    assert files == {"config.json", "datasets/shop-orders/config.json"}


@pytest.mark.parametrize(
    ("text", "spark_type", "fmt"),
    [
        ("int", "int", None),
        ("decimal(10, 2)", "decimal(10,2)", None),
        ("date:yyyyMMdd", "date", "yyyyMMdd"),
        ("timestamp:yyyy-MM-dd HH:mm", "timestamp", "yyyy-MM-dd HH:mm"),
        ("BOOLEAN", "boolean", None),
    ],
)
def test_column_types(text, spark_type, fmt):
    parsed = parse_column_type(text)
    assert (parsed.spark_type, parsed.fmt) == (spark_type, fmt)


@pytest.mark.parametrize("text", ["int:yyyy", "decimal(40,2)", "decimal(5,6)", "varchar"])
def test_bad_column_types(text):
    with pytest.raises(ValueError):
        parse_column_type(text)


def test_input_format_follows_file_name():
    config = DatasetConfig.model_validate({**VALID, "source_url": "https://x/y/data.jsonl.gz"})
    assert config.input_format() == "jsonl"
    assert config.input_format("part.parquet") == "parquet"


@pytest.mark.parametrize(
    ("write", "field", "message"),
    [
        (lambda p: p.write_bytes(b'{"dataset": "caf\xe9"}'), "byte 16", "is not UTF-8 text; save the file as UTF-8"),
        (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "", "nested too deeply to be a config"),
        (lambda p: p.mkdir(), "", "cannot be read (Is a directory); make it a readable JSON file"),
    ],
    ids=["latin-1", "deep", "folder"],
)
def test_a_config_that_cannot_be_read_is_a_problem_naming_the_file(project_copy, write, field, message):
    """Not an exception without the file's name (a UnicodeDecodeError, a RecursionError, an IsADirectoryError)."""
    path = project_copy / "datasets" / "fda-nsde" / "config.json"
    path.unlink()
    write(path)
    with pytest.raises(ConfigError) as caught:
        load_project(project_copy)
    (problem,) = caught.value.problems
    assert (problem.file, problem.field) == ("datasets/fda-nsde/config.json", field)
    assert message in problem.message


def test_config_files_saved_with_a_byte_order_mark_are_read(project_copy):
    """Windows editors save UTF-8 with a BOM; json.loads refused it ("Unexpected UTF-8 BOM") at line 1 column 1."""
    for path in (project_copy / "config.json", project_copy / "datasets" / "fda-nsde" / "config.json"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    project = load_project(project_copy)
    assert project.core.etl_resource_prefix == "pp-dw" and "fda-nsde" in project.datasets


def test_a_one_letter_dataset_name_is_a_name(project_copy):
    """`x` is lowercase letters, digits and single '-', starting with a letter: what the refusal asked for."""
    write_dataset(project_copy, "x", {**VALID, "dataset": "x"})
    assert discover_datasets(project_copy)["x"].dataset == "x"


@pytest.mark.parametrize(
    "fmt", ["yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "dd/MM/yyyy", "yyyyMMdd", "MMM d, yyyy h:mm a", "yyyy-DDD"]
)
def test_date_formats_spark_parses_are_accepted(fmt):
    assert parse_column_type(f"timestamp:{fmt}").fmt == fmt


def test_a_freshness_window_past_cloudwatch_s_memory_is_a_problem_of_the_dataset_s_file(project_copy):
    """dw validate said ok and synth failed, blaming cdk.json: the window is the dataset's own setting."""
    write_dataset(
        project_copy,
        "shop-orders",
        {**VALID, "schedule": "rate(1 day)", "monitoring": {"freshness_grace_hours": 20000}},
    )
    with pytest.raises(ConfigError) as caught:
        load_project(project_copy)
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith(
        "datasets/shop-orders/config.json: monitoring: a success is expected only every 20024 hours"
    )
    assert "lower monitoring.expected_every_hours or monitoring.freshness_grace_hours" in problem
