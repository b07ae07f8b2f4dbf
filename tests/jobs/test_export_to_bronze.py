"""The DynamoDB flow end to end: the export Lambda's CSV read by the bronze job, typed exactly; and what a table's
attributes may do to names, types and rows."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from dwlib import bronze
from dwlib.config import DatasetConfig, load_core_config
from dwlib.lake import LocalLake
from lambdas.dynamodb_csv_export import handler as export
from tests.lambdas.test_dynamodb_csv_export import BUCKET, FakeContext, export_environment

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
RUN = "20261121T023000Z"
RUN_2 = "20261122T023000Z"


ITEMS = [
    {"user_id": {"S": "u1"}, "credits": {"N": "12345678901234567890"}, "bio": {"S": 'Zoë, "quoted"\nline 2'},
     "verified": {"BOOL": True}, "tags": {"SS": ["web", "beta"]}},
    {"user_id": {"S": "u2"}, "credits": {"N": "12.30"}, "address": {"M": {"city": {"S": "Kraków"}, "n": {"N": "7"}}},
     "verified": {"BOOL": False}},
    {"user_id": {"S": "u3"}, "credits": {"N": "-0.5"}, "bio": {"NULL": True}},
]  # fmt: skip


@pytest.fixture
def env(monkeypatch):
    export_environment(monkeypatch, "users", "users")


def exported(items: list[dict], run_id: str = RUN) -> dict[str, bytes]:
    """Every object the export writes for `items`: {key: bytes}."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="users",
            KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for item in items:
            dynamodb.put_item(TableName="users", Item=item)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        export.handler({"run_id": run_id}, FakeContext())
        listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def bronze_run(spark, lake: LocalLake, objects: dict[str, bytes], extra: dict, run_id: str = RUN):
    for key, body in sorted(objects.items(), key=lambda kv: kv[0].endswith("_SUCCESS")):  # the marker last
        lake.write_bytes(key, body)
    config = DatasetConfig.model_validate(
        {
            "dataset": "users",
            "description": "users",
            "data_size_category": "small",
            "dynamodb_table": "users",
            "format": "csv",
            **extra,
        }
    )
    core = load_core_config(ROOT / "config.json")
    return bronze.run_bronze(spark, bronze.JobContext(core=core, dataset=config, lake=lake, run_id=run_id))


def bronze_rows(lake: LocalLake) -> dict[str, dict]:
    return {r["user_id"]: r for r in pq.read_table(lake.path("bronze/users/")).to_pylist()}


def test_exported_table_becomes_bronze(spark, env, tmp_path):
    objects = exported(ITEMS)
    [marker] = [json.loads(body) for key, body in objects.items() if key.endswith("/_SUCCESS")]
    lake = LocalLake(tmp_path / "lake")  # the CSV as S3 holds it, then the marker: its arrival starts the pipeline
    extra = {
        "csv": {"multiline": True},
        "columns": {"credits": "decimal(38,2)", "verified": "boolean"},
        "primary_key": ["user_id"],
    }
    summary = bronze_run(spark, lake, objects, extra)
    assert summary.status == "succeeded", summary.error
    assert summary.rows_in == marker["rows"] == 3

    rows = {r["user_id"]: r for r in pq.read_table(lake.path("bronze/users/")).to_pylist()}
    assert rows["u1"]["credits"] == Decimal("12345678901234567890.00")
    assert rows["u2"]["credits"] == Decimal("12.30")
    assert rows["u1"]["bio"] == 'Zoë, "quoted"\nline 2'
    assert rows["u3"]["bio"] is None
    assert rows["u1"]["verified"] is True and rows["u2"]["verified"] is False and rows["u3"]["verified"] is None
    assert rows["u1"]["tags"] == '["beta","web"]'
    assert rows["u2"]["address"] == '{"city":"Kraków","n":7}'


# ------------------------------------------------------------------ names that clean to a declared column's


def test_an_attribute_cleaning_to_a_declared_name_does_not_take_its_data(spark, env, tmp_path):
    # Night 2, one item also carries `first name`: sorted first, it took `first_name` and the real values went
    # to `first_name_2`; the attribute spelled `first_name` keeps its name.
    items = [{"user_id": {"S": f"u{i}"}, "first_name": {"S": f"Name{i}"}} for i in range(1, 6)]
    items[0] = {**items[0], "first name": {"S": "legacy"}}
    lake = LocalLake(tmp_path / "lake")
    config = {"primary_key": ["user_id"], "columns": {"user_id": "string", "first_name": "string"}}

    summary = bronze_run(spark, lake, exported(items), config)

    assert summary.status == "succeeded", summary.error
    rows = bronze_rows(lake)
    assert [rows[f"u{i}"]["first_name"] for i in range(1, 6)] == [f"Name{i}" for i in range(1, 6)]
    assert rows["u1"]["first_name_2"] == "legacy" and rows["u2"]["first_name_2"] is None
    assert summary.renamed_columns == {"first name": "first_name_2"}


def test_a_declared_column_two_attributes_contest_fails_naming_both(spark, env, tmp_path):
    # Neither `first name` nor `First-Name` is spelled `first_name`: which one is the declared column cannot be told.
    items = [
        {"user_id": {"S": "u1"}, "first name": {"S": "a"}},
        {"user_id": {"S": "u2"}, "First-Name": {"S": "b"}},
    ]
    lake = LocalLake(tmp_path / "lake")

    summary = bronze_run(spark, lake, exported(items), {"columns": {"first_name": "string"}})

    assert summary.status == "failed"
    assert "'first_name'" in summary.error and "'First-Name'" in summary.error and "'first name'" in summary.error
    assert "users.csv" in summary.error and "rename" in summary.error
    assert not list(lake.list("bronze/users/"))


# ------------------------------------------------------------------ types: a DynamoDB string stays a string

TEXTS = ["1.10", "12E4", "NaN", "Infinity", "TRUE"]


def test_a_string_attribute_stays_as_written_and_numbers_are_still_inferred(spark, env, tmp_path):
    # The CSV drops the DynamoDB type; inferred from its text, S "1.10" became 1.1, "NaN" nan, "TRUE" True.
    items = [
        {"user_id": {"S": f"u{i}"}, "version": {"S": text}, "flag": {"S": "TRUE"}, "n": {"N": str(i)},
         "ok": {"BOOL": i % 2 == 0}}
        for i, text in enumerate(TEXTS)
    ]  # fmt: skip
    objects = exported(items)

    summary = bronze_run(spark, LocalLake(tmp_path / "lake"), objects, {"primary_key": ["user_id"]})

    assert summary.status == "succeeded", summary.error
    rows = bronze_rows(LocalLake(tmp_path / "lake"))
    assert [rows[f"u{i}"]["version"] for i in range(len(TEXTS))] == TEXTS
    assert rows["u0"]["flag"] == "TRUE"
    assert rows["u3"]["n"] == 3 and rows["u2"]["ok"] is True and rows["u1"]["ok"] is False  # N and BOOL: inferred
    types = {c["name"]: c["type"] for c in summary.schema}
    assert (types["version"], types["flag"], types["ok"]) == ("string", "string", "boolean")

    # An older export's marker has no `types`: inferred from the text, as before.
    marker = f"raw/users/run_id={RUN}/_SUCCESS"
    older = {**objects, marker: json.dumps({k: v for k, v in json.loads(objects[marker]).items() if k != "types"})}
    summary = bronze_run(
        spark, LocalLake(tmp_path / "older"), {k: v.encode() if isinstance(v, str) else v for k, v in older.items()}, {}
    )
    assert summary.status == "succeeded", summary.error
    assert {c["name"]: c["type"] for c in summary.schema}["flag"] == "boolean"


# ------------------------------------------------------------------ rows: the marker's count is checked


def test_a_run_reading_other_rows_than_the_marker_says_fails_naming_both(spark, env, tmp_path):
    # A row split in two by an unquoted CR was one row quarantined and a value cut short, and the run succeeded.
    objects = exported([{"user_id": {"S": f"u{i}"}} for i in range(3)])
    marker = f"raw/users/run_id={RUN}/_SUCCESS"
    said = json.loads(objects[marker])
    assert said["rows"] == 3
    objects[marker] = json.dumps({**said, "rows": 4}).encode()
    lake = LocalLake(tmp_path / "lake")

    summary = bronze_run(spark, lake, objects, {"primary_key": ["user_id"]})

    assert summary.status == "failed"
    assert "read 3 rows" in summary.error and "wrote 4" in summary.error and "users.csv" in summary.error
    assert not list(lake.list("bronze/users/"))


def test_a_carriage_return_in_a_string_comes_through_whole(spark, env, tmp_path):
    items = [{"user_id": {"S": f"u{i}"}, "note": {"S": "plain"}} for i in range(20)]
    items[7]["note"] = {"S": "line one\rline two"}
    lake = LocalLake(tmp_path / "lake")

    summary = bronze_run(spark, lake, exported(items), {"primary_key": ["user_id"]})

    assert summary.status == "succeeded", summary.error
    assert summary.rows_in == summary.rows_kept == 20
    assert bronze_rows(lake)["u7"]["note"] == "line one\rline two"


# ------------------------------------------------------------------ width: more attributes than Spark reads


def test_more_attributes_than_the_reader_takes_fail_naming_the_width_and_the_limit(spark, tmp_path):
    # Past 20,480 columns Spark's reader failed with "ArrayIndexOutOfBoundsException: Index 20480" (or its plan
    # with a StackOverflowError): no word of the width, the limit or the fix.
    width = 20_482
    header = ["user_id", *(f"k{i:05d}" for i in range(width - 1))]
    body = (",".join(header) + "\n" + ",".join(["u1", *["v"] * (width - 1)]) + "\n").encode()
    prefix = f"raw/users/run_id={RUN}/"
    marker = json.dumps({"run_id": RUN, "files": ["users.csv"], "rows": 1, "bytes": len(body)}).encode()
    lake = LocalLake(tmp_path / "lake")

    summary = bronze_run(spark, lake, {prefix + "users.csv": body, prefix + "_SUCCESS": marker}, {})

    assert summary.status == "failed"
    assert "users.csv (20482 columns)" in summary.error and "20480" in summary.error
    assert "map attribute" in summary.error


def test_an_attribute_name_longer_than_glue_allows_becomes_a_column_it_takes(spark, env, tmp_path):
    long = "note_" + "x" * 295
    lake = LocalLake(tmp_path / "lake")

    summary = bronze_run(spark, lake, exported([{"user_id": {"S": "u1"}, long: {"S": "kept"}}]), {})

    assert summary.status == "succeeded", summary.error
    (row,) = bronze_rows(lake).values()
    (column,) = [name for name in row if name.startswith("note_")]
    assert len(column) == 255 and row[column] == "kept"
    assert summary.renamed_columns == {long: column}


# ------------------------------------------------------------------ a declared attribute no item carries


def test_a_declared_attribute_no_item_carries_reads_as_null(spark, env, tmp_path):
    # DynamoDB is schemaless: `plan` on no item yet failed the run with "config names columns the source does not
    # have", advice for a CSV header, not for a table.
    items = [{"user_id": {"S": f"u{i}"}, "credits": {"N": "1.5"}} for i in range(3)]
    config = {
        "primary_key": ["user_id"],
        "columns": {"user_id": "string", "plan": "string", "credits": "decimal(20,2)"},
    }
    lake = LocalLake(tmp_path / "lake")

    summary = bronze_run(spark, lake, exported(items), config)

    assert summary.status == "succeeded", summary.error
    assert [r["plan"] for r in bronze_rows(lake).values()] == [None] * 3
    assert {c["name"]: c["type"] for c in summary.schema}["plan"] == "string"
    assert summary.missing_columns == {"users.csv": ["plan"]}
    assert any("read as NULL" in note and "plan" in note for note in summary.notes)

    # An emptied table: nothing to publish, said as such (not as a config naming absent columns).
    emptied = bronze_run(spark, LocalLake(tmp_path / "empty"), exported([], run_id=RUN_2), config, run_id=RUN_2)
    assert emptied.status == "failed" and "no rows" in emptied.error
