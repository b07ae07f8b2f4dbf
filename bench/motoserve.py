"""`python -m bench.motoserve ITEMS`: moto's DynamoDB and S3 on a loopback port, in their own process.

moto (`mock_aws`) keeps tables and uploaded objects in the memory of the process it runs in, and
spends most of a Scan's time serializing the response. Run in the export handler's process, both
would be counted as the handler's memory and CPU. Here moto runs behind a small HTTP front end
(moto[server] needs Flask, which this project does not install): each request is handed to moto's
own botocore stubber, exactly as in-process `mock_aws` does, with the URL rewritten to the AWS
host named by the request's SigV4 credential scope.

At start it creates the export bucket, a table of ITEMS generated items and a 100-item warm-up
table (loaded through moto's backend, not the API, which would take minutes), then prints the port.

One shortcut, for time only: moto 5.2 encodes a Scan answer with its generic, model-driven
serializer at ~1-3 ms per item, which would make 100k items take minutes per export. Scan
answers (moto's own items, pages and LastEvaluatedKey) are therefore encoded with json.dumps;
at start the two encodings of the warm-up table's scan are compared, and the shortcut is only
used if botocore parses them to the same answer (`--moto-serializer` turns it off).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TABLE = "bench-export"
WARM_TABLE = "bench-export-warm"
BUCKET = "bench-export-bucket"
DATASET = "bench-export"
REGION = "us-east-1"
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")

CUSTOMERS = ["Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Soylent", "Tyrell", "Wayne Enterprises"]
STATUSES = ["NEW", "PAID", "SHIPPED", "DELIVERED", "RETURNED"]


def item(i: int) -> dict[str, Any]:
    """One order as DynamoDB stores it: ~400 bytes, 10-11 attributes of most types, some missing."""
    attrs: dict[str, Any] = {
        "pk": {"S": f"order-{i:09d}"},
        "customer": {"S": f"{CUSTOMERS[i % len(CUSTOMERS)]} {i * 7919 % 1000}"},
        "status": {"S": STATUSES[i * 31 % len(STATUSES)]},
        "amount": {"N": f"{i * 7919 % 10_000_000 / 100:.2f}"},
        "quantity": {"N": str(i * 13 % 500)},
        "created": {"S": f"2025{1 + i % 12:02d}{1 + i % 28:02d}"},
        "priority": {"BOOL": i % 3 == 0},
        "tags": {"SS": sorted({"web", ["gift", "bulk", "express"][i % 3]})},
        "address": {
            "M": {"city": {"S": ["Paris", "Lyon", "Berlin", "Madrid"][i % 4]}, "zip": {"S": f"{i % 99999:05d}"}}
        },
        "notes": {"S": f"order {i} " + "lorem ipsum dolor sit amet " * (1 + i % 6)},
    }
    if i % 20 == 0:
        del attrs["notes"]  # ~5 % of items lack an attribute
    if i % 7 == 0:
        attrs["coupon"] = {"S": f"SAVE{i % 50}"}
    return attrs


def _decode_chunked(rfile) -> bytes:
    body = bytearray()
    while True:
        size = int(rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline().strip():  # trailers
                pass
            return bytes(body)
        body += rfile.read(size)
        rfile.readline()


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()  # moto's backends are not meant for concurrent requests

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _dispatch(self) -> None:
        from botocore.awsrequest import AWSPreparedRequest
        from botocore.compat import HTTPHeaders
        from moto.core.models import botocore_stubber

        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _decode_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        scope = SCOPE.search(self.headers.get("Authorization", ""))
        region, service = (scope[1], scope[2]) if scope else (REGION, "s3")
        host = f"{service}.{region}.amazonaws.com"
        headers = HTTPHeaders()
        for name, value in self.headers.items():
            if name.lower() not in ("host", "transfer-encoding"):
                headers[name] = value
        headers["Host"] = host
        if "content-length" not in {n.lower() for n in headers}:
            headers["Content-Length"] = str(len(body))
        request = AWSPreparedRequest(self.command, f"https://{host}{self.path}", headers, body, False)
        with self.lock:
            answer = botocore_stubber.process_request(request)
        status, out_headers, out = answer if answer is not None else (404, {}, b"not mocked")
        data = out.encode() if isinstance(out, str) else bytes(out or b"")
        out_headers = {str(k): str(v) for k, v in (out_headers or {}).items()}
        length = str(len(data))
        if self.command == "HEAD":  # a HEAD answer announces the object's length, without the body
            length = next((v for k, v in out_headers.items() if k.lower() == "content-length"), length)
        self.send_response(int(status))
        for name, value in out_headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _dispatch  # noqa: N815


def _load(items: int) -> None:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    for name, count in ((TABLE, items), (WARM_TABLE, 100)):
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(count):
            backend.put_item(name, item(i))


def _fast_scan_encoding() -> bool:
    """Encode Scan answers with json.dumps if that gives botocore the same answer as moto's serializer."""
    import boto3
    from moto.dynamodb.responses import DynamoResult

    def blob(value: object) -> str:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode()
        raise TypeError(f"cannot encode {type(value).__name__}")

    original = DynamoResult.execute_result

    def execute_result(self, context):
        if context.operation_model.name != "Scan":
            return original(self, context)
        body = json.dumps(self.result, default=blob, separators=(",", ":"))
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    client = boto3.client("dynamodb", region_name=REGION)
    reference = client.scan(TableName=WARM_TABLE, Limit=50)
    DynamoResult.execute_result = execute_result
    fast = client.scan(TableName=WARM_TABLE, Limit=50)
    for answer in (reference, fast):
        answer.pop("ResponseMetadata", None)
    if fast != reference:
        DynamoResult.execute_result = original
        print("fast Scan encoding differs from moto's serializer; using moto's", file=sys.stderr, flush=True)
        return False
    return True


def main(argv: list[str]) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    with mock_aws():
        _load(int(argv[0]))
        fast = "--moto-serializer" not in argv and _fast_scan_encoding()
        print(f"scan encoding: {'json.dumps' if fast else 'moto serializer'}", file=sys.stderr, flush=True)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
        server.daemon_threads = True
        print(server.server_address[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
