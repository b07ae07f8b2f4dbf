"""Authenticated, paged JSON APIs end to end: secrets resolved by name, sent by header or query,
nested records flattened in bronze, and a secret's value in no output, even of a failing run.

The API is a loopback server; Secrets Manager is moto. Nothing leaves the machine.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from dwlib import bronze, entry
from dwlib.config import DatasetConfig
from dwlib.fetch import RetryPolicy
from dwlib.jobs import job_config_document
from dwlib.lake import LocalLake
from dwlib.secrets import LocalSecrets, SecretError, SecretsManagerSecrets, env_name
from tests.loopback import LoopbackServer

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, timeout=5.0)
RUN, LATER = "20260101T000000Z", "20260102T000000Z"
QUERY_KEY = "qk-7d1e+a/9F3c2b8e4"  # '+' and '/' change when URL-encoded: both forms must vanish
HEADER_KEY = "hk-live-5b0c6a93d2e14f77"
FIRMS = [
    {"name": "Northwind Pharma", "address": {"city": "Cranbury", "geo": {"lat": 40.31, "lon": -74.51}}},
    {"name": "Bluegate Labs", "address": {"city": "Raleigh", "geo": {"lat": 35.78, "lon": -78.64}}},
]


def recall(i: int) -> dict:
    return {
        "recallNumber": f"D-{i:04d}-2026",
        "firm": FIRMS[i % 2],
        "items": [{"sku": f"S{i}-{n}", "qty": n + 1} for n in range(i % 3)],  # 0, 1 or 2 elements
        "tags": ["rx", f"lot-{i}"],
        "reportDate": f"202601{1 + i % 28:02d}",
        # Some APIs echo the caller's key in links; raw/ must not keep it.
        "self": f"https://api.example.org/v1/recalls/{i}?api_key={QUERY_KEY}",
    }


RECALLS = [recall(i) for i in range(23)]


@pytest.fixture
def server():
    srv = LoopbackServer()

    def recalls(handler, query):  # offset paging, key as a query parameter
        if query.get("api_key") != QUERY_KEY:
            handler.plain(401, body=b'{"error": "invalid api_key"}')
            return
        skip, limit = int(query["skip"]), int(query["limit"])
        handler.json({"meta": {"skip": skip}, "results": RECALLS[skip : skip + limit]})

    def events(handler, query):  # cursor paging, key in the Authorization header
        if handler.headers.get("Authorization") != f"Bearer {HEADER_KEY}":
            handler.plain(401, body=b'{"error": "bad token"}')
            return
        start = int(query.get("after", "0"))
        rows = [{"event": n, "who": {"user": {"id": n % 4}}} for n in range(start, min(start + 5, 12))]
        handler.json({"data": rows, "next": str(start + 5) if start + 5 < 12 else None})

    srv.routes.update({"/v1/recalls": recalls, "/v2/events": events})
    yield srv
    srv.stop()


def recalls_endpoint(server, **auth) -> dict:
    return {
        "url": server.url("/v1/recalls"),
        "paging": {"kind": "offset", "param": "skip", "size_param": "limit", "size": 10},
        "records": "results",
        "auth": auth or {"secret": "pp-dw/recalls-key", "query_param": "api_key"},
    }


def events_endpoint(server) -> dict:
    return {
        "url": server.url("/v2/events"),
        "paging": {"kind": "cursor", "param": "after", "cursor_field": "next"},
        "records": "data",
        "auth": {"secret": "pp-dw/events-token", "header": "Authorization", "scheme": "Bearer"},
    }


def api_dataset(name: str, endpoints: list[dict], **extra) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"dataset": name, "description": "an API", "data_size_category": "small", "api_endpoints": endpoints, **extra}
    )


def local_secrets(tmp_path: Path, **values: str) -> LocalSecrets:
    """The secrets as `dw run` finds them: the environment of the run (here a dict)."""
    return LocalSecrets(tmp_path / "project", environ={env_name(name): value for name, value in values.items()})


def context(core, config, lake, run_id=RUN, **extra) -> bronze.JobContext:
    return bronze.JobContext(core=core, dataset=config, lake=lake, run_id=run_id, policy=FAST, **extra)


def all_text(lake: LocalLake) -> str:
    return "\n".join(lake.read_bytes(o.key).decode("utf-8", "replace") for o in lake.list(""))


# ------------------------------------------------------------------ end to end


def test_query_param_auth_offset_paging_flattened_and_exploded(spark, core, server, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    config = api_dataset(
        "recalls",
        [recalls_endpoint(server)],
        explode=["items"],
        columns={"report_date": "date:yyyyMMdd"},
        primary_key=[],
    )
    secrets = local_secrets(tmp_path, **{"pp-dw/recalls-key": QUERY_KEY})

    summary = bronze.run_bronze(spark, context(core, config, lake, secrets=secrets))

    assert summary.status == "succeeded", summary.error
    seen = server.seen("/v1/recalls")
    # sent on every page; 10 + 10 + 3 records, and the empty page that ends them
    assert len(seen) == 4 and all("api_key=" in r.path for r in seen)
    # raw/: the records as JSON lines, page after page, with the echoed key cut out
    lines = lake.read_bytes(f"raw/recalls/run_id={RUN}/endpoint_0.jsonl").decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["recallNumber"] for r in rows] == [r["recallNumber"] for r in RECALLS]
    assert rows[0]["firm"] == RECALLS[0]["firm"]
    assert rows[0]["self"] == "https://api.example.org/v1/recalls/0?api_key=***"
    # bronze: structs flattened (struct in struct too), arrays kept, `items` exploded
    table = pq.read_table(lake.path("bronze/recalls/"))
    names = table.column_names
    for column in ("recall_number", "firm_name", "firm_address_city", "firm_address_geo_lat", "items_sku", "tags"):
        assert column in names, names
    assert str(table.schema.field("tags").type) == "list<element: string>"
    assert str(table.schema.field("report_date").type) == "date32[day]"
    expected_rows = sum(max(1, i % 3) for i in range(23))  # an empty array keeps its record once
    assert summary.rows_in == summary.rows_kept == table.num_rows == expected_rows
    frame = table.to_pandas()
    first = frame[frame["recall_number"] == "D-0002-2026"].sort_values("items_qty")
    assert list(first["items_sku"]) == ["S2-0", "S2-1"] and set(first["firm_address_city"]) == {"Cranbury"}
    assert frame[frame["recall_number"] == "D-0000-2026"]["items_sku"].isna().all()
    assert QUERY_KEY not in all_text(lake)


def test_header_auth_with_scheme_cursor_paging(spark, core, server, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    config = api_dataset("events", [events_endpoint(server)])
    secrets = local_secrets(tmp_path, **{"pp-dw/events-token": HEADER_KEY})

    summary = bronze.run_bronze(spark, context(core, config, lake, secrets=secrets))

    assert summary.status == "succeeded", summary.error
    seen = server.seen("/v2/events")
    assert len(seen) == 3 and all(r.headers["Authorization"] == f"Bearer {HEADER_KEY}" for r in seen)
    assert lake.read_bytes(f"raw/events/run_id={RUN}/endpoint_0.jsonl").count(b"\n") == 12
    table = pq.read_table(lake.path("bronze/events/"))
    assert {"event", "who_user_id", "meta_run_id"} <= set(table.column_names)
    assert sorted(table.column("event").to_pylist()) == list(range(12))
    assert HEADER_KEY not in all_text(lake)


def test_a_secret_appears_in_no_output_of_a_run_that_fails_with_401(spark, core, server, tmp_path, caplog, capsys):
    """The query key works (and is echoed by the API), the header token is refused: the run fails."""
    lake = LocalLake(tmp_path / "lake")
    config = api_dataset("leaky", [recalls_endpoint(server), events_endpoint(server)])
    wrong_token = "hk-wrong-0a1b2c3d4e5f6a7b"
    secrets = local_secrets(tmp_path, **{"pp-dw/recalls-key": QUERY_KEY, "pp-dw/events-token": wrong_token})

    with caplog.at_level(logging.DEBUG):  # urllib3 logs full request URLs at DEBUG
        summary = bronze.run_bronze(spark, context(core, config, lake, secrets=secrets))
        print(bronze.describe_outcome(summary))

    assert summary.status == "failed"
    assert "401" in summary.error and server.url("/v2/events") in summary.error
    assert any(r.headers.get("Authorization") == f"Bearer {wrong_token}" for r in server.seen("/v2/events"))
    assert any("api_key=" in r.path for r in server.seen("/v1/recalls"))
    captured = capsys.readouterr()
    outputs = {
        "raw/ and every other lake file": all_text(lake),
        "run summary": json.dumps(lake.read_json(f"runs/leaky/run_id={RUN}.json")),
        "error": summary.error,
        "logs": "\n".join(r.getMessage() for r in caplog.records),
        "stdout": captured.out,
        "stderr": captured.err,
    }
    assert lake.data_files("raw/leaky/"), "the first endpoint's pages are kept under raw/"
    assert any("urllib3" in r.name for r in caplog.records), "the request log was captured"
    for secret in (QUERY_KEY, wrong_token):
        for form in (secret, secret.replace("+", "%2B").replace("/", "%2F"), secret.replace("+", "%2B")):
            for where, text in outputs.items():
                assert form not in text, f"{form!r} leaked into {where}"
    assert not lake.has_prefix("bronze/leaky/")


def test_a_missing_secret_fails_before_any_request_and_says_how_to_set_it(spark, core, server, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    config = api_dataset("recalls", [recalls_endpoint(server)])

    summary = bronze.run_bronze(spark, context(core, config, lake, secrets=local_secrets(tmp_path)))

    assert summary.status == "failed"
    for fragment in ("'pp-dw/recalls-key'", "DW_SECRET_PP_DW_RECALLS_KEY", ".secrets.json"):
        assert fragment in summary.error
    assert server.seen("/v1/recalls") == []


BASIC = "svc-reader:pw-3e9a7c1b5d"  # a Basic auth user:password, which this API echoes back


def people(server, fail_on_page_2: bool = False) -> dict:
    """A cursor-paged API behind Basic auth that echoes who called it in every record."""

    def route(handler, query):
        sent = handler.headers.get("Authorization", "")
        who = base64.b64decode(sent.partition(" ")[2]).decode()
        start = int(query.get("after", "0"))
        if start and fail_on_page_2:
            handler.json({"error": {"code": "UNAVAILABLE", "message": "try again later"}})
            return
        rows = [{"id": n, "caller": who, "password": who.partition(":")[2]} for n in range(start, start + 3)]
        handler.json({"data": rows, "next": str(start + 3) if start < 3 else None})

    server.routes["/v3/people"] = route
    return {
        "url": server.url("/v3/people"),
        "paging": {"kind": "cursor", "param": "after", "cursor_field": "next"},
        "records": "data",
        "auth": {"secret": "pp-dw/people", "scheme": "Basic"},
    }


def test_a_basic_secret_echoed_by_the_api_reaches_no_lake_file(spark, core, server, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    config = api_dataset("people", [people(server)])
    secrets = local_secrets(tmp_path, **{"pp-dw/people": BASIC})

    summary = bronze.run_bronze(spark, context(core, config, lake, secrets=secrets))

    assert summary.status == "succeeded", summary.error
    assert summary.rows_in == 6 and summary.rows_kept == 6
    raw = [json.loads(line) for line in lake.read_bytes(f"raw/people/run_id={RUN}/endpoint_0.jsonl").splitlines()]
    assert {(row["caller"], row["password"]) for row in raw} == {("***", "***")}
    everything = all_text(lake)  # raw/, bronze/, the run summary and the ledger
    for form in (BASIC, "pw-3e9a7c1b5d", "svc-reader", base64.b64encode(BASIC.encode()).decode()):
        assert form not in everything, form


def test_an_error_page_in_the_middle_of_paging_fails_the_run_and_keeps_bronze(spark, core, server, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    config = api_dataset("people", [people(server, fail_on_page_2=True)])
    secrets = local_secrets(tmp_path, **{"pp-dw/people": BASIC})

    summary = bronze.run_bronze(spark, context(core, config, lake, secrets=secrets))

    assert summary.status == "failed"
    assert "page 2 answered with an error" in summary.error and "try again later" in summary.error
    assert server.url("/v3/people") in summary.error
    assert summary.rows_kept == 0 and not lake.has_prefix("bronze/people/")
    assert not lake.data_files("raw/people/")


# ------------------------------------------------------------------ resolvers


def test_local_secrets_environment_first_then_the_file(tmp_path):
    (tmp_path / ".secrets.json").write_text(json.dumps({"pp-dw/fda-api-key": "from-file", "other": "x-file"}))
    secrets = LocalSecrets(tmp_path, environ={"DW_SECRET_PP_DW_FDA_API_KEY": "from-env"})
    assert env_name("pp-dw/fda-api-key") == "DW_SECRET_PP_DW_FDA_API_KEY"
    assert secrets.resolve("pp-dw/fda-api-key") == "from-env"
    assert secrets.resolve("other") == "x-file"
    with pytest.raises(SecretError) as caught:
        secrets.resolve("nope/key")
    assert "DW_SECRET_NOPE_KEY" in str(caught.value) and str(tmp_path / ".secrets.json") in str(caught.value)


def test_a_broken_secrets_file_is_named_without_its_content(tmp_path):
    (tmp_path / ".secrets.json").write_text('{"pp-dw/fda-api-key": "s3cr3t-value",}')
    with pytest.raises(SecretError) as caught:
        LocalSecrets(tmp_path, environ={}).resolve("pp-dw/fda-api-key")
    assert ".secrets.json is not valid JSON" in str(caught.value) and "s3cr3t" not in str(caught.value)


@mock_aws
def test_secrets_manager_resolver(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    boto3.client("secretsmanager").create_secret(Name="pp-dw/fda-api-key", SecretString="sm-value-123")
    secrets = SecretsManagerSecrets()
    assert secrets.resolve("pp-dw/fda-api-key") == "sm-value-123"
    with pytest.raises(SecretError) as caught:
        secrets.resolve("pp-dw/missing")
    message = str(caught.value)
    assert "'pp-dw/missing'" in message and "ResourceNotFoundException" in message
    assert "create-secret" in message and "DW_SECRET_PP_DW_MISSING" in message


def test_the_glue_entry_point_reads_secrets_from_secrets_manager(core, server, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    config = api_dataset("recalls", [recalls_endpoint(server)])
    lake.write_json("etl/recalls/job_config.json", job_config_document(core, config))
    ctx = entry.job_context({"dataset": "recalls", "lake_uri": str(lake.root), "run_id": RUN})
    assert isinstance(ctx.secrets, SecretsManagerSecrets)
