"""The Glue bronze job with a secret from Secrets Manager: the value in no log record, no exception the job run
fails with (what Glue, Step Functions and EventBridge report), no ledger entry and no `ops/runs` row.

Secrets Manager is moto; the API is a loopback server that quotes the token it was sent in its error object.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from dwlib import entry, jobs
from dwlib.config import DatasetConfig
from dwlib.lake import LocalLake
from tests.leaks import forms
from tests.loopback import LoopbackServer

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
DATASET = "leaky-glue"
RUN = "20260101T000000Z"
SECRET_NAME = "pp-dw/leaky-glue"
# A quote and a backslash: JSON escapes both where the job quotes the API's error object.
SM_TOKEN = 'sm-Tok"en\\Value-77aa88bb99'


@mock_aws
def test_a_secrets_manager_value_reaches_no_log_record_nor_the_job_s_exception(
    spark, core, server: LoopbackServer, tmp_path: Path, caplog, capsys, on_glue, monkeypatch
):
    """botocore logs every answer's body at DEBUG, Secrets Manager's `SecretString` too, before the job knows the
    value to scrub it; and the API's error object, quoted with the token JSON-escaped, kept it in the exception
    Glue reports (and Step Functions and EventBridge pass on), the ledger and the `ops/runs` row."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv(jobs.FORCE_DRY_RUN, raising=False)
    boto3.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=SM_TOKEN)

    def route(handler, query):
        sent = handler.headers.get("Authorization", "").partition(" ")[2]
        handler.json({"error": {"message": "key not valid", "you_sent": sent}})

    server.routes["/v1/items"] = route
    config = DatasetConfig.model_validate(
        {
            "dataset": DATASET,
            "description": "an API behind a key from Secrets Manager",
            "data_size_category": "small",
            "api_endpoints": [
                {
                    "url": server.url("/v1/items"),
                    "paging": {"kind": "none"},
                    "records": "items",
                    "auth": {"secret": SECRET_NAME, "header": "Authorization", "scheme": "Bearer"},
                }
            ],
        }
    )
    lake = LocalLake(tmp_path / "lake")
    lake.write_json(f"etl/{DATASET}/job_config.json", jobs.job_config_document(core, config))
    argv = ["bronze_job.py", "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1"]
    for key, value in jobs.default_arguments(DATASET, str(lake.root), jobs.BRONZE_ARGS).items():
        argv += [key, value]
    argv[argv.index("--run_id") + 1] = RUN

    with caplog.at_level(logging.DEBUG), pytest.raises(entry.JobRunFailed) as failed:
        entry.main(entry.run_bronze_job, jobs.BRONZE_ARGS, argv)

    assert any(r.headers.get("Authorization") == f"Bearer {SM_TOKEN}" for r in server.seen("/v1/items"))
    assert any(r.name.startswith("botocore") for r in caplog.records), "botocore's records were captured"
    printed = capsys.readouterr()
    seen = {
        "log records": "\n".join(r.getMessage() for r in caplog.records),
        "the job run's exception": str(failed.value),
        "stdout": printed.out,
        "stderr": printed.err,
    }
    for obj in lake.list(""):
        seen[obj.key] = lake.read_bytes(obj.key).decode("utf-8", "replace")
        if obj.key.endswith(".json"):
            seen[f"{obj.key} (decoded)"] = json.dumps(lake.read_json(obj.key), ensure_ascii=False)
    assert any(key.startswith("ops/runs/") for key in seen), "the ops row was written"
    for form in sorted(forms(SM_TOKEN) | {"Value-77aa88bb99"}):
        for where, text in seen.items():
            assert form not in text, f"{form!r} leaked into {where}"
    assert '"you_sent": "***"' in str(failed.value)
