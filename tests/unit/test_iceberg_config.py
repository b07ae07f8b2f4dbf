"""The Iceberg keys: table_format (core, overridable per dataset), load_mode, partition_by.

Each error names the file, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dwlib.config import ConfigError, load_project, parse_partition, table_format_of
from tests.unit.test_config import VALID, problems_for, write_dataset

ICEBERG = {**VALID, "table_format": "iceberg", "columns": {"id": "bigint", "created_at": "timestamp", "day": "date"}}


@pytest.mark.parametrize(
    "config, expected",
    [
        (
            {**VALID, "table_format": "parquet", "load_mode": "append"},
            'load_mode "append" needs table_format "iceberg"',
        ),
        ({**ICEBERG, "load_mode": "merge"}, 'load_mode "merge" replaces rows by primary_key, and primary_key is empty'),
        ({**ICEBERG, "load_mode": "upsert"}, "load_mode: Input should be 'full', 'append' or 'merge'"),
        ({**ICEBERG, "table_format": "delta"}, "table_format: Input should be 'parquet' or 'iceberg'"),
        ({**ICEBERG, "partition_by": ["bucket(16, id)"]}, "partition_by item 'bucket(16, id)' is not a column"),
        ({**ICEBERG, "partition_by": ["day(created_at"]}, "partition_by item 'day(created_at' is not a column"),
        ({**ICEBERG, "partition_by": ["month(country)"]}, "names the column 'country', which columns does not declare"),
        ({**ICEBERG, "partition_by": ["hour(day)"]}, "hour() needs a timestamp column, and day is date"),
        ({**ICEBERG, "partition_by": ["day(created_at)", "created_at"]}, "each column may appear once"),
        ({**VALID, "table_format": "parquet", "partition_by": ["x"]}, "partition_by is applied to Iceberg tables only"),
    ],
)
def test_iceberg_keys_are_checked_with_file_field_and_fix(project_copy, config, expected):
    problems = problems_for(project_copy, "shop-orders", config)
    assert any(p.startswith("datasets/shop-orders/config.json") and expected in p for p in problems), problems


def test_append_and_merge_need_iceberg_in_the_lake_or_the_dataset(project_copy: Path):
    write_dataset(project_copy, "shop-orders", {**VALID, "load_mode": "append", "primary_key": ["id"]})
    with pytest.raises(ConfigError) as caught:
        load_project(project_copy)
    assert [str(p) for p in caught.value.problems] == [
        'datasets/shop-orders/config.json: load_mode: "append" needs table_format "iceberg", and the lake\'s '
        'table_format (config.json) is "parquet": set "table_format": "iceberg" in this dataset, or use load_mode "full"'
    ]
    # the lake's table_format in config.json makes it valid, and a dataset may still opt out
    core = json.loads((project_copy / "config.json").read_text())
    (project_copy / "config.json").write_text(json.dumps({**core, "table_format": "iceberg"}))
    project = load_project(project_copy)
    assert table_format_of(project.core, project.datasets["shop-orders"]) == "iceberg"
    assert table_format_of(project.core, project.datasets["fda-nsde"]) == "iceberg"


def test_partition_grammar():
    assert parse_partition("created_at") == parse_partition(" created_at ")
    assert (parse_partition("day(created_at)").transform, parse_partition("day( created_at )").column) == (
        "day",
        "created_at",
    )


def test_an_expiry_error_quoting_a_secret_past_its_cut_keeps_no_part_of_it():
    """The message is cut at 300 characters: scrubbed whole first, so a key straddling the cut leaves no prefix."""
    from dwlib import secrets
    from dwlib.iceberg import expiry_message

    key = "sk_live_" + "7f3a9c2e" * 6
    secrets.register([key])
    text = expiry_message(OSError("x" * 270 + f" refused with api key {key} (expired)"))
    assert text.startswith("OSError: ") and "sk_live" not in text and "7f3a9c2e" not in text
