"""The DynamoDB flow end to end: the export Lambda's CSV, read by the bronze job, typed exactly."""

from __future__ import annotations

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

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
RUN = "20261121T023000Z"


class Context:
    function_name = "pp-dw-export-users"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pp-dw-export-users"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


ITEMS = [
    {"user_id": {"S": "u1"}, "credits": {"N": "12345678901234567890"}, "bio": {"S": 'Zoë, "quoted"\nline 2'},
     "verified": {"BOOL": True}, "tags": {"SS": ["web", "beta"]}},
    {"user_id": {"S": "u2"}, "credits": {"N": "12.30"}, "address": {"M": {"city": {"S": "Kraków"}, "n": {"N": "7"}}},
     "verified": {"BOOL": False}},
    {"user_id": {"S": "u3"}, "credits": {"N": "-0.5"}, "bio": {"NULL": True}},
]  # fmt: skip


def test_exported_table_becomes_bronze(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "users")
    monkeypatch.setenv("BUCKET_NAME", "pp-dw-123456789012")
    monkeypatch.setenv("DATASET", "users")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="users",
            KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for item in ITEMS:
            dynamodb.put_item(TableName="users", Item=item)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="pp-dw-123456789012")
        result = export.handler({"run_id": RUN}, Context())
        body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=result["bucket"], Key=result["key"])
        csv_bytes = body["Body"].read()
        marker_key = result["key"].rsplit("/", 1)[0] + "/_SUCCESS"
        marker = boto3.client("s3", region_name="us-east-1").get_object(Bucket=result["bucket"], Key=marker_key)
        marker_bytes = marker["Body"].read()

    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes(result["key"], csv_bytes)  # as S3 would hold it
    lake.write_bytes(marker_key, marker_bytes)  # written last by the export: its arrival starts the pipeline
    config = DatasetConfig.model_validate(
        {
            "dataset": "users",
            "description": "users",
            "data_size_category": "small",
            "dynamodb_table": "users",
            "format": "csv",
            "csv": {"multiline": True},
            "columns": {"credits": "decimal(38,2)", "verified": "boolean"},
            "primary_key": ["user_id"],
        }
    )
    core = load_core_config(ROOT / "config.json")
    summary = bronze.run_bronze(spark, bronze.JobContext(core=core, dataset=config, lake=lake, run_id=RUN))
    assert summary.status == "succeeded", summary.error
    assert summary.rows_in == result["rows"] == 3

    rows = {r["user_id"]: r for r in pq.read_table(lake.path("bronze/users/")).to_pylist()}
    assert rows["u1"]["credits"] == Decimal("12345678901234567890.00")
    assert rows["u2"]["credits"] == Decimal("12.30")
    assert rows["u1"]["bio"] == 'Zoë, "quoted"\nline 2'
    assert rows["u3"]["bio"] is None
    assert rows["u1"]["verified"] is True and rows["u2"]["verified"] is False and rows["u3"]["verified"] is None
    assert rows["u1"]["tags"] == '["beta","web"]'
    assert rows["u2"]["address"] == '{"city":"Kraków","n":7}'
