"""The DynamoDB -> CSV export Lambda, against moto's DynamoDB and S3.

moto cannot invoke a Lambda without Docker, so the tests call `handler(event, context)`
directly with a fake context. The memory test serves DynamoDB and S3 from a streaming
fake endpoint instead of moto: moto keeps the table and every request body in the same
process, which tracemalloc would count as the handler's.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import tracemalloc
from types import SimpleNamespace
from urllib.parse import urlsplit

import boto3
import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from lambdas.dynamodb_csv_export import handler as export
from tests.s3_answers import answer_409, lose_first_reply

RUN_ID = "20261121T060000Z"
TABLE = "shop-orders-table"
BUCKET = "pp-dw-123456789012"
DATASET = "shop-orders"
KEY = f"raw/{DATASET}/run_id={RUN_ID}/{DATASET}.csv"
MARKER = f"raw/{DATASET}/run_id={RUN_ID}/_SUCCESS"
MB = 1024 * 1024


class FakeContext:
    """What the handler reads of a Lambda context; remaining times are served in turn, the last repeats."""

    function_name = "pp-dw-export-shop-orders"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pp-dw-export-shop-orders"
    aws_request_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

    def __init__(self, *remaining_ms: int) -> None:
        self.remaining = list(remaining_ms) or [900_000]

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining.pop(0) if len(self.remaining) > 1 else self.remaining[0]


def export_environment(monkeypatch: pytest.MonkeyPatch, table: str, dataset: str) -> None:
    """The function's environment as its stack sets it, with moto's credentials."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_NAME": table,
        "BUCKET_NAME": BUCKET,
        "DATASET": dataset,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def env(monkeypatch):
    export_environment(monkeypatch, TABLE, DATASET)


@pytest.fixture
def aws(env):
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield SimpleNamespace(s3=s3, dynamodb=boto3.client("dynamodb"))


def create_table(dynamodb, sort_key: str | None = None) -> None:
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
        attributes.append({"AttributeName": sort_key, "AttributeType": "N"})
    dynamodb.create_table(
        TableName=TABLE, KeySchema=schema, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
    )


def read_csv(s3, key: str = KEY) -> list[list[str]]:
    text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def published_run(s3) -> dict[str, bytes]:
    """The run's CSV and marker, byte for byte: what a refused export must leave as it found it."""
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in (KEY, MARKER)}


def bucket_keys(s3) -> list[str]:
    """The bucket's keys but the export's claim of its run folder (`export.CLAIM`, written before the scan)."""
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return [o["Key"] for o in listed if not o["Key"].endswith(f"/{export.CLAIM}")]


def count_scans(monkeypatch) -> list[dict]:
    """Make the handler's DynamoDB client record the parameters of every Scan call."""
    calls: list[dict] = []
    make = export._dynamodb_client

    def client():
        made = make()
        made.meta.events.register(
            "before-parameter-build.dynamodb.Scan", lambda params, **_: calls.append(dict(params))
        )
        return made

    monkeypatch.setattr(export, "_dynamodb_client", client)
    return calls


# ---------------------------------------------------------------- whole tables


@pytest.mark.slow
def test_exports_every_item_of_a_table_read_over_many_pages(aws, monkeypatch):
    count, payload = 30_000, "x" * 200
    create_table(aws.dynamodb)
    with boto3.resource("dynamodb").Table(TABLE).batch_writer() as batch:
        for i in range(count):
            batch.put_item(Item={"pk": f"order-{i:06d}", "payload": f"{i:06d}-{payload}"})
    scans = count_scans(monkeypatch)
    # 5 MiB parts (S3's minimum) so that this ~6.5 MB CSV goes up as a multipart upload
    monkeypatch.setattr(export, "TRANSFER", TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB))

    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert result == {"bucket": BUCKET, "key": KEY, "rows": count, "run_id": RUN_ID}
    # DynamoDB pages at 1 MB: ~6.9 MB of items need at least 7 pages
    assert len(scans) >= 7
    assert [s.get("ExclusiveStartKey") is None for s in scans].count(True) == 1
    rows = read_csv(aws.s3)
    assert rows[0] == ["pk", "payload"]
    assert len(rows) == count + 1
    assert sorted(row[0] for row in rows[1:]) == [f"order-{i:06d}" for i in range(count)]
    assert all(row[1] == f"{row[0][6:]}-{payload}" for row in rows[1:])
    head = aws.s3.head_object(Bucket=BUCKET, Key=KEY)
    assert head["ContentType"] == "text/csv; charset=utf-8"
    assert head["ETag"].strip('"').endswith("-2")  # two parts: it went up as a multipart upload
    assert sorted(bucket_keys(aws.s3)) == sorted([KEY, MARKER])


def test_every_dynamodb_type_becomes_an_exact_cell(aws):
    create_table(aws.dynamodb, sort_key="sk")
    aws.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "a"},
            "sk": {"N": "1"},
            "text": {"S": 'Zoë, "quoted"\nline2'},
            "breaks": {"S": "a\r\nb\rc\u2028d\x85e"},
            "big": {"N": "12345678901234567890"},
            "price": {"N": "12.30"},
            "neg": {"N": "-42.5"},
            "exp": {"N": "1.5E+3"},
            "flag": {"BOOL": True},
            "nothing": {"NULL": True},
            "map": {
                "M": {
                    "b": {"N": "12.30"},
                    "a": {"S": 'x, "y"\nz'},
                    "nested": {"M": {"list": {"L": [{"N": "12345678901234567890"}, {"BOOL": False}, {"NULL": True}]}}},
                }
            },
            "list": {
                "L": [
                    {"S": "Zoë"},
                    {"N": "-1E-3"},
                    {"SS": ["b", "a"]},
                    {"NS": ["2", "10"]},
                    {"B": b"\x00\x01"},
                    {"M": {}},
                    {"L": []},
                ]
            },
            "strings": {"SS": ["pear", "apple, red", "Äpfel"]},
            "numbers": {"NS": ["10", "9.50", "-1", "12345678901234567890", "2E+2"]},
            "blobs": {"BS": [b"\x01", b"\x00"]},
            "blob": {"B": b"\xff\x00hello"},
        },
    )
    aws.dynamodb.put_item(
        TableName=TABLE,
        Item={"pk": {"S": "b"}, "sk": {"N": "-2"}, "flag": {"BOOL": False}, "only_here": {"S": ""}},
    )

    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert result == {"bucket": BUCKET, "key": KEY, "rows": 2, "run_id": RUN_ID}
    rows = read_csv(aws.s3)
    header = rows[0]
    cells = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert cells["a"] == {
        "pk": "a",
        "sk": "1",
        "text": 'Zoë, "quoted"\nline2',
        "breaks": "a\r\nb\rc\u2028d\x85e",
        "big": "12345678901234567890",
        "price": "12.30",
        "neg": "-42.5",
        "exp": "1.5E+3",
        "flag": "true",
        "nothing": "",
        "map": '{"a":"x, \\"y\\"\\nz","b":12.30,"nested":{"list":[12345678901234567890,false,null]}}',
        "list": '["Zoë",-1E-3,["a","b"],[2,10],"AAE=",{},[]]',
        "strings": '["apple, red","pear","Äpfel"]',  # sorted by code point
        "numbers": "[-1,9.50,10,2E+2,12345678901234567890]",
        "blobs": '["AA==","AQ=="]',
        "blob": base64.b64encode(b"\xff\x00hello").decode(),
        "only_here": "",
    }
    assert cells["b"] == dict.fromkeys(header, "") | {"pk": "b", "sk": "-2", "flag": "false"}
    # maps and lists parse back as JSON with their numbers exact
    parsed = json.loads(cells["a"]["map"], parse_float=str, parse_int=str)
    assert parsed == {"a": 'x, "y"\nz', "b": "12.30", "nested": {"list": ["12345678901234567890", False, None]}}
    # the file is UTF-8 text, quoted where needed
    raw = aws.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    assert '"Zoë, ""quoted""\nline2"'.encode() in raw


def test_header_is_the_key_then_every_other_attribute_sorted(aws):
    create_table(aws.dynamodb, sort_key="sk")
    items = [
        {"pk": {"S": "1"}, "sk": {"N": "1"}, "zeta": {"S": "z"}, "Alpha": {"S": "A"}},
        {"pk": {"S": "2"}, "sk": {"N": "1"}, "a": {"S": "a"}, "q": {"N": "7"}},
        {"pk": {"S": "3"}, "sk": {"N": "1"}, "_x": {"BOOL": True}},
    ]
    for item in items:
        aws.dynamodb.put_item(TableName=TABLE, Item=item)

    export.handler({"run_id": RUN_ID}, FakeContext())

    rows = read_csv(aws.s3)
    assert rows[0] == ["pk", "sk", "Alpha", "_x", "a", "q", "zeta"]
    assert sorted(rows[1:]) == [
        ["1", "1", "A", "", "", "", "z"],
        ["2", "1", "", "", "a", "7", ""],
        ["3", "1", "", "true", "", "", ""],
    ]


def test_an_empty_table_gives_a_header_of_its_key(aws):
    create_table(aws.dynamodb, sort_key="sk")
    assert export.handler({"run_id": RUN_ID}, FakeContext())["rows"] == 0
    assert read_csv(aws.s3) == [["pk", "sk"]]


def test_without_a_run_id_one_is_made_from_the_clock(aws):
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "1"}})

    result = export.handler({}, FakeContext())

    assert re.fullmatch(r"\d{8}T\d{6}Z", result["run_id"])
    assert result["key"] == f"raw/{DATASET}/run_id={result['run_id']}/{DATASET}.csv"
    assert sorted(bucket_keys(aws.s3)) == sorted([result["key"], result["key"].rsplit("/", 1)[0] + "/_SUCCESS"])


@pytest.mark.parametrize("run_id", ["2026-11-21", "20261121T060000", "", 20261121])
def test_a_bad_run_id_is_refused_by_name(aws, run_id):
    create_table(aws.dynamodb)
    with pytest.raises(ValueError, match=re.escape(repr(run_id))):
        export.handler({"run_id": run_id}, FakeContext())
    assert bucket_keys(aws.s3) == []


def test_a_missing_setting_is_named(aws, monkeypatch):
    monkeypatch.delenv("BUCKET_NAME")
    with pytest.raises(RuntimeError, match="BUCKET_NAME"):
        export.handler({"run_id": RUN_ID}, FakeContext())


# ---------------------------------------------------------------- parallel scan, throttling


def test_a_big_table_is_scanned_in_parallel_segments(aws, monkeypatch):
    create_table(aws.dynamodb)
    with boto3.resource("dynamodb").Table(TABLE).batch_writer() as batch:
        for i in range(1_000):
            batch.put_item(Item={"pk": f"{i:04d}", "n": i})
    monkeypatch.setattr(export, "SEGMENT_ITEMS", 300)  # 1,000 items -> 4 segments
    scans = count_scans(monkeypatch)

    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert result["rows"] == 1_000
    assert {(s["Segment"], s["TotalSegments"]) for s in scans} == {(i, 4) for i in range(4)}
    rows = read_csv(aws.s3)
    assert rows[0] == ["pk", "n"]
    assert sorted(rows[1:]) == [[f"{i:04d}", str(i)] for i in range(1_000)]


def test_a_failing_segment_stops_the_export(aws, monkeypatch):
    create_table(aws.dynamodb)
    with boto3.resource("dynamodb").Table(TABLE).batch_writer() as batch:
        for i in range(200):
            batch.put_item(Item={"pk": f"{i:04d}"})
    monkeypatch.setattr(export, "SEGMENT_ITEMS", 50)
    make = export._dynamodb_client

    def client():
        made = make()

        def deny(params, **_):
            if params.get("Segment") == 2:
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Scan")

        made.meta.events.register("before-parameter-build.dynamodb.Scan", deny)
        return made

    monkeypatch.setattr(export, "_dynamodb_client", client)
    with pytest.raises(ClientError, match="AccessDeniedException"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert bucket_keys(aws.s3) == []


class Throttled:
    """The handler's DynamoDB client, with the first `failures` Scan calls throttled."""

    def __init__(self, client, failures: int, code: str) -> None:
        self.client, self.failures, self.code = client, failures, code

    def describe_table(self, **kwargs):
        return self.client.describe_table(**kwargs)

    def scan(self, **kwargs):
        if self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": self.code, "Message": "slow down"}}, "Scan")
        return self.client.scan(**kwargs)


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"]
)
def test_throttling_is_retried_with_growing_backoff(aws, monkeypatch, code):
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "1"}})
    make = export._dynamodb_client
    monkeypatch.setattr(export, "_dynamodb_client", lambda: Throttled(make(), 4, code))
    sleeps: list[float] = []
    monkeypatch.setattr(export, "_sleep", sleeps.append)

    assert export.handler({"run_id": RUN_ID}, FakeContext())["rows"] == 1

    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps):
        cap = export.BACKOFF_BASE_S * 2**attempt
        assert cap / 2 <= delay <= cap


def test_throttling_that_does_not_stop_fails_the_export(aws, monkeypatch):
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "1"}})
    make = export._dynamodb_client
    monkeypatch.setattr(export, "_dynamodb_client", lambda: Throttled(make(), 100, "ThrottlingException"))
    sleeps: list[float] = []
    monkeypatch.setattr(export, "_sleep", sleeps.append)

    with pytest.raises(ClientError, match="ThrottlingException"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert len(sleeps) == export.THROTTLE_RETRIES
    assert max(sleeps) <= export.BACKOFF_MAX_S
    assert bucket_keys(aws.s3) == []


def test_the_client_retries_throttling_adaptively():
    config = export._client_config()
    assert config.retries["mode"] == "adaptive"


# ---------------------------------------------------------------- the time limit


def fill_pages(dynamodb, items: int = 600) -> None:
    """~2.5 MB of items: at least three 1 MB scan pages."""
    with boto3.resource("dynamodb").Table(TABLE).batch_writer() as batch:
        for i in range(items):
            batch.put_item(Item={"pk": f"{i:04d}", "blob": "y" * 4_000})


def test_a_run_out_of_time_while_scanning_fails_and_writes_nothing(aws):
    create_table(aws.dynamodb)
    fill_pages(aws.dynamodb)
    # 100 s limit (30 s margin): the claim (its deadline), the set-up and the first two pages see 100 s, the third 20 s
    context = FakeContext(100_000, 100_000, 100_000, 100_000, 20_000)

    with pytest.raises(TimeoutError) as failure:
        export.handler({"run_id": RUN_ID}, context)

    message = str(failure.value)
    assert TABLE in message
    scanned = int(re.search(r"after (\d+) rows scanned", message)[1])
    assert 0 < scanned < 600
    assert "timeout" in message and "memory" in message and "data_size_category" in message
    assert bucket_keys(aws.s3) == []


def test_a_run_out_of_time_before_the_upload_fails_and_writes_nothing(aws, monkeypatch):
    create_table(aws.dynamodb)
    fill_pages(aws.dynamodb, 100)
    context = FakeContext(600_000)
    write_csv = export._write_csv

    def slow_write_csv(*args):
        written = write_csv(*args)
        context.remaining = [5_000]  # the CSV took all but 5 s
        return written

    monkeypatch.setattr(export, "_write_csv", slow_write_csv)

    with pytest.raises(TimeoutError, match=r"before uploading after 100 rows scanned"):
        export.handler({"run_id": RUN_ID}, context)
    assert bucket_keys(aws.s3) == []


# ---------------------------------------------------------------- the drop's marker


def test_the_marker_is_written_last_and_names_the_csv(aws, monkeypatch):
    """The marker's arrival starts the pipeline: it must come after the CSV, never be empty, and
    never be read as data (its name starts with `_`, which Lake.data_files skips)."""
    from dwlib.lake import S3Lake

    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    order: list[str] = []
    make = export._s3_client

    def client():
        made = make()
        for operation in ("PutObject", "CreateMultipartUpload"):
            made.meta.events.register(
                f"before-parameter-build.s3.{operation}", lambda params, **_: order.append(params["Key"])
            )
        return made

    monkeypatch.setattr(export, "_s3_client", client)
    export.handler({"run_id": RUN_ID}, FakeContext())

    assert order == [f"raw/{DATASET}/run_id={RUN_ID}/{export.CLAIM}", KEY, MARKER]
    head = aws.s3.head_object(Bucket=BUCKET, Key=MARKER)
    assert head["ContentLength"] > 0  # the arrival rule matches only objects with bytes
    manifest = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=MARKER)["Body"].read())
    assert manifest == {
        "run_id": RUN_ID,
        "files": [f"{DATASET}.csv"],
        "rows": 1,
        "bytes": manifest["bytes"],
        "types": {"n": ["N"], "pk": ["S"]},
    }
    assert manifest["bytes"] == aws.s3.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"]
    lake = S3Lake(BUCKET, "")
    assert [o.key for o in lake.data_files(f"raw/{DATASET}/run_id={RUN_ID}/")] == [KEY]


def test_the_marker_the_export_writes_starts_the_pipeline_and_the_csv_does_not(aws):
    """The export's real keys and sizes against the deployed arrival rule's pattern."""
    from moto.events.models import EventPattern

    from stacks.dataset_stack import arrival_detail_pattern

    create_table(aws.dynamodb)
    export.handler({"run_id": RUN_ID}, FakeContext())
    pattern = EventPattern.load(
        json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": arrival_detail_pattern(BUCKET, f"raw/{DATASET}/"),
            }
        )
    )
    started = []
    for key in bucket_keys(aws.s3):
        size = aws.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
        event = {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": size}},
        }
        if pattern.matches_event(event):
            started.append(key)
    assert started == [MARKER]


def test_a_failed_upload_writes_no_marker(aws, monkeypatch):
    """No CSV, no marker: a half-written export never starts the pipeline."""
    create_table(aws.dynamodb)
    make = export._s3_client

    def client():
        made = make()

        def refuse(params, **_):
            if params["Key"].endswith(f"/{export.CLAIM}"):
                return  # the run folder's claim, before the scan
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "PutObject"
            )

        made.meta.events.register("before-parameter-build.s3.PutObject", refuse)
        return made

    monkeypatch.setattr(export, "_s3_client", client)
    with pytest.raises(S3UploadFailedError):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert bucket_keys(aws.s3) == []


# ---------------------------------------------------------------- memory


class RawBody(io.BytesIO):
    def stream(self, **_):
        while chunk := self.read(64 * 1024):
            yield chunk


class StreamingAws:
    """DynamoDB and S3 as the Lambda sees them over the network, without keeping anything in this process.

    DescribeTable and Scan serve a generated table in ~1 MB pages, as DynamoDB does;
    PutObject reads the body in 64 KB chunks and keeps only its length and line count.
    """

    def __init__(self, items: int, per_page: int = 2_500) -> None:
        self.items, self.per_page = items, per_page
        self.uploaded_bytes = self.uploaded_lines = 0
        self.marker = b""

    def item(self, i: int) -> dict:
        return {
            "pk": {"S": f"item-{i:08d}"},
            "n": {"N": str(i * 7)},
            "payload": {"S": f"{i:08d}, {'z' * 300}"},
            "tags": {"SS": ["a", "b"]},
        }

    def __call__(self, request, **_):
        if "dynamodb" in urlsplit(request.url).netloc:
            target = request.headers["X-Amz-Target"]
            target = target.decode() if isinstance(target, bytes) else target
            body = json.loads(request.body)
            if target.endswith(".DescribeTable"):
                table = {
                    "TableName": body["TableName"],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "ItemCount": self.items,
                    "TableSizeBytes": self.items * 350,
                }
                return self.response(json.dumps({"Table": table}).encode())
            start = body.get("ExclusiveStartKey")
            first = int(start["pk"]["S"][5:]) + 1 if start else 0
            last = min(self.items, first + self.per_page)
            page: dict = {"Items": [self.item(i) for i in range(first, last)], "Count": last - first}
            if last < self.items:
                page["LastEvaluatedKey"] = {"pk": page["Items"][-1]["pk"]}
            return self.response(json.dumps(page).encode())
        if request.method == "GET" and "list-type=2" in request.url:  # is the given run id's folder finished? no
            empty = b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>'
            return self.response(empty)
        assert request.method == "PUT", request.url  # a single PutObject below the multipart threshold
        if urlsplit(request.url).path.endswith("/_SUCCESS"):
            body = request.body
            self.marker = body.read() if hasattr(body, "read") else bytes(body)
            return self.response(b"", {"ETag": '"1"'})
        body = request.body
        while chunk := body.read(64 * 1024):
            self.uploaded_bytes += len(chunk)
            self.uploaded_lines += chunk.count(b"\n")
        return self.response(b"", {"ETag": '"0"'})

    @staticmethod
    def response(body: bytes, headers: dict | None = None) -> AWSResponse:
        return AWSResponse("https://fake", 200, headers or {}, RawBody(body))


def export_peak(monkeypatch, items: int) -> tuple[int, StreamingAws]:
    fake = StreamingAws(items)

    def client(service):
        def make():
            # no trailing checksum: the body reaches the fake endpoint as the plain file
            config = export._client_config().merge(Config(request_checksum_calculation="when_required"))
            made = boto3.client(service, config=config)
            made.meta.events.register(f"before-send.{service}", fake)
            return made

        return make

    monkeypatch.setattr(export, "_dynamodb_client", client("dynamodb"))
    monkeypatch.setattr(export, "_s3_client", client("s3"))
    tracemalloc.start()
    try:
        result = export.handler({"run_id": RUN_ID}, FakeContext())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["rows"] == items
    return peak, fake


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_table(env, monkeypatch):
    export_peak(monkeypatch, 100)  # warm up: service models, imports
    small, _ = export_peak(monkeypatch, 5_000)
    large, fake = export_peak(monkeypatch, 40_000)

    print(f"tracemalloc peak: 5,000 items {small / MB:.1f} MiB, 40,000 items {large / MB:.1f} MiB")
    assert fake.uploaded_lines == 40_001  # header + rows, read back as a stream
    assert json.loads(fake.marker)["rows"] == 40_000
    assert fake.uploaded_bytes > 12 * MB
    assert large <= 1.5 * small + 2 * MB
    assert large < 32 * MB


def test_the_marker_lists_the_dynamodb_types_of_each_attribute(aws):
    # Without them bronze inferred a string attribute from its text: S "1.10" became 1.1, "NaN" nan, "TRUE" True.
    create_table(aws.dynamodb)
    for item in (
        {"pk": {"S": "a"}, "version": {"S": "1.10"}, "score": {"N": "1"}, "mixed": {"N": "2"}, "flag": {"BOOL": True}},
        {"pk": {"S": "b"}, "mixed": {"S": "x"}, "tags": {"SS": ["t"]}, "gone": {"NULL": True}, "doc": {"M": {}}},
    ):
        aws.dynamodb.put_item(TableName=TABLE, Item=item)

    export.handler({"run_id": RUN_ID}, FakeContext())

    manifest = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=MARKER)["Body"].read())
    assert manifest["types"] == {
        "doc": ["M"],
        "flag": ["BOOL"],
        "gone": ["NULL"],
        "mixed": ["N", "S"],
        "pk": ["S"],
        "score": ["N"],
        "tags": ["SS"],
        "version": ["S"],
    }


def test_a_carriage_return_is_quoted_whatever_the_python_patch_version(aws):
    # csv.writer before CPython 3.11.9 left a bare CR unquoted: a reader split the row there, and the value was cut.
    create_table(aws.dynamodb)
    items = [("a", "one\rtwo", "x"), ("b", "plain", 'x, "y"\r'), ("c", "plain", "z")]
    for pk, note, other in items:
        aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": pk}, "note": {"S": note}, "other": {"S": other}})

    export.handler({"run_id": RUN_ID}, FakeContext())

    body = aws.s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    assert sorted(body.split(b"\n")) == sorted(
        [b"pk,note,other", b'a,"one\rtwo",x', b'b,plain,"x, ""y""\r"', b"c,plain,z", b""]
    )
    assert sorted(read_csv(aws.s3)) == sorted([["pk", "note", "other"], *map(list, items)])


def test_a_run_id_given_again_is_refused_and_the_first_export_kept(aws):
    # The second export with one run id rewrote the first one's CSV and marker: raw/ lost the earlier run.
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "v": {"S": "first"}})
    export.handler({"run_id": RUN_ID}, FakeContext())
    first = published_run(aws.s3)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "b"}, "v": {"S": "second"}})

    with pytest.raises(ValueError, match=f"run id {RUN_ID} was already exported.*without a run_id"):
        export.handler({"run_id": RUN_ID}, FakeContext())

    assert published_run(aws.s3) == first


def test_two_clock_made_run_ids_of_one_second_get_two_folders(aws, monkeypatch):
    # Lambda's async invocation is at-least-once: two exports in one second made one run id and one folder.
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    monkeypatch.setattr(export, "new_run_id", lambda: RUN_ID)

    first = export.handler({}, FakeContext())
    second = export.handler({}, FakeContext())

    assert (first["run_id"], second["run_id"]) == (RUN_ID, "20261121T060001Z")
    assert {first["key"], second["key"]} <= set(bucket_keys(aws.s3))
    later = f"raw/{DATASET}/run_id=20261121T060001Z/_SUCCESS"
    assert json.loads(aws.s3.get_object(Bucket=BUCKET, Key=later)["Body"].read())["run_id"] == "20261121T060001Z"


def fail_scans_after(monkeypatch, pages: int) -> list[bool]:
    """The handler's Scan calls fail (AccessDenied) after `pages` pages while the returned flag is set."""
    failing, calls = [True], []
    make = export._dynamodb_client

    def client():
        made = make()

        def deny(params, **_):
            calls.append(params)
            if failing[0] and len(calls) > pages:
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Scan")

        made.meta.events.register("before-parameter-build.dynamodb.Scan", deny)
        return made

    monkeypatch.setattr(export, "_dynamodb_client", client)
    return failing


def test_an_export_that_failed_midway_runs_again_with_its_run_id(aws, monkeypatch):
    # A failed export kept its claim, so its run id was refused for good: a retry of the event could never succeed.
    create_table(aws.dynamodb)
    fill_pages(aws.dynamodb)
    failing = fail_scans_after(monkeypatch, 1)
    with pytest.raises(ClientError, match="AccessDeniedException"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert bucket_keys(aws.s3) == []

    failing[0] = False
    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert (result["run_id"], result["rows"]) == (RUN_ID, 600)
    assert sorted(r[0] for r in read_csv(aws.s3)[1:]) == [f"{i:04d}" for i in range(600)]
    assert json.loads(aws.s3.get_object(Bucket=BUCKET, Key=MARKER)["Body"].read())["rows"] == 600
    with pytest.raises(ValueError, match=f"run id {RUN_ID} was already exported"):  # and a finished one is kept
        export.handler({"run_id": RUN_ID}, FakeContext())


def test_an_export_running_with_a_run_id_refuses_a_second_one(aws, monkeypatch):
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    scan, second = export._scan, []

    def scan_while_another_starts(*args):
        with pytest.raises(ValueError, match=f"run id {RUN_ID} was already exported, or is being exported"):
            export.handler({"run_id": RUN_ID}, FakeContext())
        second.append("refused")
        return scan(*args)

    monkeypatch.setattr(export, "_scan", scan_while_another_starts)
    assert export.handler({"run_id": RUN_ID}, FakeContext())["rows"] == 1
    assert second == ["refused"]
    assert read_csv(aws.s3) == [["pk"], ["a"]]


def test_an_export_whose_marker_may_be_stored_keeps_its_claim_and_is_never_read(aws, monkeypatch):
    """A failed marker put may have stored the marker (a lost reply): a retry must not rewrite that run, and a run
    folder without its marker is not read by bronze."""
    from dwlib.lake import S3Lake
    from dwlib.ledger import IncompleteRawRun, drop_files
    from dwlib.naming import Naming

    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    make = export._s3_client

    def client():
        made = make()

        def refuse(params, **_):
            if params["Key"] == MARKER:
                raise ClientError({"Error": {"Code": "InternalError", "Message": "try again"}}, "PutObject")

        made.meta.events.register("before-parameter-build.s3.PutObject", refuse)
        return made

    monkeypatch.setattr(export, "_s3_client", client)
    with pytest.raises(ClientError, match="InternalError"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    monkeypatch.setattr(export, "_s3_client", make)

    with pytest.raises(ValueError, match=f"run id {RUN_ID} was already exported"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert bucket_keys(aws.s3) == [KEY]
    with pytest.raises(IncompleteRawRun, match="not closed"):
        drop_files(S3Lake(BUCKET, ""), Naming("pp-dw", "pp_dw"), DATASET, RUN_ID)


# ---------------------------------------------------------------- an export stopped without running its own code


class Killed(BaseException):
    """What a kill looks like to the handler's code: nothing after the point it hits runs, no except or finally
    that catches Exception (Lambda's time limit, out of memory, a crashed sandbox)."""


CLAIM_KEY = f"raw/{DATASET}/run_id={RUN_ID}/{export.CLAIM}"


def lapse(monkeypatch, seconds: float = 0) -> None:
    """The clock of later invocations: past the lapse of a claim made now with FakeContext's 900 s, plus `seconds`."""
    import time

    later = time.time() + 900 + export.CLAIM_MARGIN_S + 2 + seconds
    monkeypatch.setattr(export, "_now", lambda: later, raising=False)


def utc(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stopped_claim(s3, expires: float, **fields) -> None:
    """The claim an export stopped while running leaves: state running, its deadline and when the claim lapses."""
    import time

    record = {
        "run_id": RUN_ID,
        "state": "running",
        "request_id": "dead-beef",
        "claimed": utc(time.time() - 1_000),
        "deadline": utc(expires - export.CLAIM_MARGIN_S),
        "expires": utc(expires),
        "uploads": [],
        **fields,
    }
    s3.put_object(Bucket=BUCKET, Key=CLAIM_KEY, Body=json.dumps(record).encode())


def test_an_export_killed_midway_is_refused_while_it_may_run_then_its_run_id_runs_again(aws, monkeypatch):
    # A killed export kept its claim for good: every retry of its run id was refused, and the README said to
    # invoke the export without a run id, which a Step Functions or EventBridge retry of the same run cannot.
    create_table(aws.dynamodb)
    fill_pages(aws.dynamodb, 50)
    write_csv = export._write_csv

    def killed(*args):
        write_csv(*args)
        raise Killed

    monkeypatch.setattr(export, "_write_csv", killed)
    with pytest.raises(Killed):
        export.handler({"run_id": RUN_ID}, FakeContext(900_000))
    monkeypatch.setattr(export, "_write_csv", write_csv)
    assert bucket_keys(aws.s3) == []

    # at once: the killed export's invocation may still be running, for all another one can tell
    with pytest.raises(ValueError) as refused:
        export.handler({"run_id": RUN_ID}, FakeContext())
    message = str(refused.value)
    assert f"run id {RUN_ID}" in message and "request 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" in message
    after = re.search(r"with the same run_id after (\S+), when its claim lapses", message)[1]
    assert after == json.loads(aws.s3.get_object(Bucket=BUCKET, Key=CLAIM_KEY)["Body"].read())["expires"]
    assert bucket_keys(aws.s3) == []

    # once its deadline and the margin have passed, the same run id exports the table
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "late"}, "blob": {"S": "z"}})
    lapse(monkeypatch)
    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert (result["run_id"], result["rows"]) == (RUN_ID, 51)
    assert sorted(r[0] for r in read_csv(aws.s3)[1:]) == sorted([f"{i:04d}" for i in range(50)] + ["late"])
    assert json.loads(aws.s3.get_object(Bucket=BUCKET, Key=MARKER)["Body"].read())["rows"] == 51
    assert sorted(bucket_keys(aws.s3)) == sorted([KEY, MARKER])


def test_a_run_stopped_after_its_csv_is_exported_again_by_the_taker_and_a_finished_one_never(aws, monkeypatch):
    # Killed between the CSV and the marker: the CSV is complete but not the run's (no marker); the taker's export
    # replaces it. Killed after the marker: the run is finished, and a taker must not rewrite what bronze may read.
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "v": {"S": "first"}})
    monkeypatch.setattr(export, "TRANSFER", TransferConfig(multipart_threshold=1, multipart_chunksize=5 * MB))
    make, kill = export._s3_client, {}

    def client():  # the process dies as the marker's put is sent ("before") or once it is stored ("after")
        made = make()

        sent = {}

        def before(params, **_):
            sent["key"] = params["Key"]
            if params["Key"] == MARKER and kill.get("at") == "before":
                raise Killed

        def after(http_response, **_):
            if sent["key"] == MARKER and kill.get("at") == "after" and http_response.status_code == 200:
                raise Killed

        made.meta.events.register("before-parameter-build.s3.PutObject", before)
        made.meta.events.register("after-call.s3.PutObject", after)
        return made

    monkeypatch.setattr(export, "_s3_client", client)
    kill["at"] = "before"
    with pytest.raises(Killed):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert bucket_keys(aws.s3) == [KEY]  # the stopped export's CSV, without its marker: never read

    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "v": {"S": "second"}})
    lapse(monkeypatch)
    kill["at"] = "after"
    with pytest.raises(Killed):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert read_csv(aws.s3) == [["pk", "v"], ["a", "second"]]
    manifest = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=MARKER)["Body"].read())
    assert manifest["bytes"] == aws.s3.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"]
    assert aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    published = published_run(aws.s3)

    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "v": {"S": "third"}})
    lapse(monkeypatch, 2_000)
    kill.clear()
    with pytest.raises(ValueError, match=rf"run id {RUN_ID} was already exported.*its _SUCCESS is there"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert published_run(aws.s3) == published


def test_the_taker_aborts_the_stopped_export_s_open_upload(aws, monkeypatch):
    # A multipart upload killed before its completion stayed open (its parts billed) until the bucket's lifecycle
    # rule, and could still be completed over the taker's CSV by a late request.
    import time

    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    upload = aws.s3.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    aws.s3.upload_part(Bucket=BUCKET, Key=KEY, UploadId=upload, PartNumber=1, Body=b"pk\nhalf-")
    stopped_claim(aws.s3, time.time() - 60, uploads=[upload])

    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert result["rows"] == 1
    assert read_csv(aws.s3) == [["pk"], ["a"]]
    # aborted: no late CompleteMultipartUpload can put its part over the CSV (AWS answers NoSuchUpload; moto 5.2.1
    # fails with a KeyError, so the test asks the listing)
    assert aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_claim_still_standing_is_refused_with_when_to_retry_and_one_without_a_deadline_lapses(aws, monkeypatch):
    import time

    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    expires = time.time() + 200
    stopped_claim(aws.s3, expires)

    with pytest.raises(ValueError, match=rf"may be running until {utc(expires - export.CLAIM_MARGIN_S)}.*after {utc(expires)}"):  # fmt: skip
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert bucket_keys(aws.s3) == []

    # a claim written before claims held a deadline: it stands for the longest invocation and the margin
    aws.s3.put_object(
        Bucket=BUCKET, Key=CLAIM_KEY, Body=json.dumps({"run_id": RUN_ID, "state": "running", "request_id": "x"})
    )
    written = aws.s3.head_object(Bucket=BUCKET, Key=CLAIM_KEY)["LastModified"].timestamp()
    lapses = written + 1 + export.LAMBDA_MAX_S + export.CLAIM_MARGIN_S  # LastModified: whole seconds
    with pytest.raises(ValueError, match=rf"after {utc(lapses)}"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    monkeypatch.setattr(export, "_now", lambda: lapses + 1, raising=False)
    assert export.handler({"run_id": RUN_ID}, FakeContext())["rows"] == 1
    assert read_csv(aws.s3) == [["pk"], ["a"]]


def test_of_two_exports_taking_over_a_lapsed_claim_one_runs(aws, monkeypatch):
    import time

    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    stopped_claim(aws.s3, time.time() - 60)
    put_claim, started, results = export._put_claim, [], []

    def second_takes_over_meanwhile(s3, bucket, key, body, **condition):
        if "IfMatch" in condition and not started:  # the first taker read the lapsed claim; the second runs now
            started.append(True)
            results.append(export.handler({"run_id": RUN_ID}, FakeContext()))
        return put_claim(s3, bucket, key, body, **condition)

    monkeypatch.setattr(export, "_put_claim", second_takes_over_meanwhile)
    with pytest.raises(ValueError, match="another invocation took the run folder over first"):
        export.handler({"run_id": RUN_ID}, FakeContext())

    assert [r["rows"] for r in results] == [1]
    assert sorted(bucket_keys(aws.s3)) == sorted([KEY, MARKER])
    assert read_csv(aws.s3) == [["pk"], ["a"]]


def test_a_run_s_marker_is_published_once(aws, monkeypatch):
    """The marker's arrival starts the pipeline: a late marker of the stopped export is kept, not replaced by the
    taker's (a second start); the taker's own put sent again after a lost reply is no conflict."""
    import time

    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    stopped_claim(aws.s3, time.time() - 60)
    late = json.dumps({"run_id": RUN_ID, "files": [f"{DATASET}.csv"], "rows": 7, "bytes": 70}).encode()
    write_csv = export._write_csv

    def late_marker_meanwhile(*args):
        aws.s3.put_object(Bucket=BUCKET, Key=MARKER, Body=late)
        return write_csv(*args)

    monkeypatch.setattr(export, "_write_csv", late_marker_meanwhile)
    with pytest.raises(RuntimeError, match=f"s3://{BUCKET}/{MARKER} was written by another export"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert aws.s3.get_object(Bucket=BUCKET, Key=MARKER)["Body"].read() == late
    monkeypatch.setattr(export, "_write_csv", write_csv)

    # a reply lost after S3 stored the marker: the SDK sends the put again, and S3 refuses it (the key is there)
    other = "20261121T070000Z"
    make, resent = export._s3_client, []

    def client():
        made = make()
        lose_first_reply(made, "PutObject", "/_SUCCESS", resent)
        return made

    monkeypatch.setattr(export, "_s3_client", client)
    result = export.handler({"run_id": other}, FakeContext())
    assert resent == [200] and result["rows"] == 1
    manifest = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=f"raw/{DATASET}/run_id={other}/_SUCCESS")["Body"].read())
    assert manifest["rows"] == 1


def test_the_tmp_folder_of_a_killed_export_is_deleted_by_the_next_one(aws, monkeypatch, tmp_path):
    # Lambda keeps /tmp for the next invocation in the same execution environment: a killed export's JSON-lines copy
    # and CSV (up to 3 times the CSV) stayed, and the next exports ran out of ephemeral storage.
    import fcntl
    import os
    import shutil
    import tempfile
    import time

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    write_csv = export._write_csv

    def killed(*args):
        write_csv(*args)
        raise Killed

    # killed with its files in /tmp: what a kill leaves (here the folder's clean-up is skipped, as a kill skips it)
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)
    monkeypatch.setattr(export, "_write_csv", killed)
    with pytest.raises(Killed):
        export.handler({"run_id": RUN_ID}, FakeContext())
    (left,) = tmp_path.iterdir()
    assert (left / f"{DATASET}.csv").exists()
    monkeypatch.undo()
    export_environment(monkeypatch, TABLE, DATASET)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # one an export from before the folder's lock left, older than the longest invocation; one made this instant
    older = tmp_path / "dynamodb-csv-export-older"
    (older / "segment-00.jsonl").parent.mkdir()
    (older / "segment-00.jsonl").write_text("{}\n")
    os.utime(older, (0, time.time() - export.LAMBDA_MAX_S - 10))
    fresh = tmp_path / "dynamodb-csv-export-fresh"
    fresh.mkdir()
    # and a folder an export running in this process holds
    running = tmp_path / "dynamodb-csv-export-running"
    running.mkdir()
    lock = os.open(running / ".lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        export.handler({"run_id": "20261121T070000Z"}, FakeContext())
    finally:
        os.close(lock)

    assert sorted(tmp_path.iterdir()) == [fresh, running]


def test_an_export_whose_claim_put_was_sent_again_after_a_lost_reply_runs(aws, monkeypatch):
    # S3 stored the claim, its reply was lost and the SDK sent the put again, which S3 refused (the key is there):
    # the export took its own claim for another export's and refused its run id.
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    make, resent = export._s3_client, []

    def client():
        made = make()
        lose_first_reply(made, "PutObject", f"/{export.CLAIM}", resent)
        return made

    monkeypatch.setattr(export, "_s3_client", client)
    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert resent == [200] and result["rows"] == 1
    assert read_csv(aws.s3) == [["pk"], ["a"]]
    assert json.loads(aws.s3.get_object(Bucket=BUCKET, Key=MARKER)["Body"].read())["rows"] == 1


@pytest.mark.parametrize(
    ("target", "conflicts"),
    [("_SUCCESS", 1), (export.CLAIM, 1), ("_SUCCESS", 99), (export.CLAIM, 99)],
    ids=["marker once", "claim once", "marker always", "claim always"],
)
def test_a_409_conditional_request_conflict_is_sent_again_not_taken_for_another_export(aws, monkeypatch, target, conflicts):
    """S3 answers 409 ConditionalRequestConflict (not 412) to a conditional put while another conditional write to
    the key is under way, and asks for a retry. The export took it for the condition failing: a 409 on the marker
    (none stored) said another export had written it and the pipeline never started; one on the claim refused the
    run id. Now the put is sent again; a 409 that never ends is an error that says so."""
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    monkeypatch.setattr(export, "CONFLICT_WAIT_S", 0.0, raising=False)
    make, answered = export._s3_client, []

    def client():
        made = make()
        answer_409(made, "PutObject", f"/{target}", conflicts, answered)
        return made

    monkeypatch.setattr(export, "_s3_client", client)
    if conflicts > 10 and target == export.CLAIM:  # neither claimed nor refused: said so, and nothing written
        with pytest.raises(RuntimeError, match="answered 409 ConditionalRequestConflict to each of 5 tries"):
            export.handler({"run_id": RUN_ID}, FakeContext())
        assert bucket_keys(aws.s3) == []
        return
    if conflicts > 10:  # more than the export sends again
        with pytest.raises(RuntimeError, match="409 ConditionalRequestConflict 5 times, and no marker is there") as err:
            export.handler({"run_id": RUN_ID}, FakeContext())
        assert "was written by another export" not in str(err.value)
        assert MARKER not in bucket_keys(aws.s3)
        return
    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert answered == [409] and result["rows"] == 1
    assert read_csv(aws.s3) == [["pk"], ["a"]]
    assert json.loads(aws.s3.get_object(Bucket=BUCKET, Key=MARKER)["Body"].read())["rows"] == 1


def test_an_upload_noted_in_the_claim_after_a_lost_reply_goes_on(aws, monkeypatch):
    """The claim notes each multipart upload (a put If-Match its ETag). S3 stored the note, its reply was lost, and
    the SDK's resend was refused (the ETag had changed, by that very put): the export failed saying its claim
    "changed under this export"."""
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}})
    monkeypatch.setattr(export, "TRANSFER", TransferConfig(multipart_threshold=1, multipart_chunksize=5 * MB))
    make, resent = export._s3_client, []

    def client():
        made = make()
        # The first put of the claim If-Match its ETag is the note (a release would come only after a failure).
        lose_first_reply(made, "PutObject", f"/{export.CLAIM}", resent, also=lambda r: "If-Match" in r["headers"])
        return made

    monkeypatch.setattr(export, "_s3_client", client)
    result = export.handler({"run_id": RUN_ID}, FakeContext())

    assert resent == [200] and result["rows"] == 1
    assert read_csv(aws.s3) == [["pk"], ["a"]]


def test_a_finished_run_whose_claim_expired_first_is_refused_and_kept(aws):
    # raw/'s lifecycle rule expires each object by the day it was written: a claim written before midnight goes a
    # day before the marker written after it. The claim put If-None-Match then succeeded and the export rewrote the
    # finished run's CSV under its marker.
    create_table(aws.dynamodb)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "v": {"S": "first"}})
    export.handler({"run_id": RUN_ID}, FakeContext())
    aws.s3.delete_object(Bucket=BUCKET, Key=KEY.rsplit("/", 1)[0] + "/_EXPORT_STARTED")
    published = published_run(aws.s3)
    aws.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "b"}, "v": {"S": "second"}})

    with pytest.raises(ValueError, match=f"run id {RUN_ID} was already exported.*its _SUCCESS is there"):
        export.handler({"run_id": RUN_ID}, FakeContext())
    assert published_run(aws.s3) == published
