"""dwlib.fetch against a loopback HTTP server that injects faults, and moto's in-memory S3.

Everything is offline: the server listens on 127.0.0.1 on a free port, S3 is moto.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import socket
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from dwlib.config import ApiEndpoint, Paging
from dwlib.fetch import (
    FetchError,
    FetchResult,
    RetryPolicy,
    fetch_api,
    fetch_source,
    probe_source,
    unpack_for_reading,
)
from dwlib.lake import S3Lake
from tests.loopback import MIB, Generated, LoopbackServer, half_then_close, status

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=5.0, max_total_seconds=30.0)
RAW = "raw/demo/run_id=20260101T000000Z/"
STAGING = "staging/bronze/demo/run_id=20260101T000000Z/unpacked/"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections for the whole test.

    The socket stays bound but never listens: a connection gets ECONNREFUSED, and no other process
    (another xdist worker, say) can take the port meanwhile, as it could once a probed port is closed.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


# --------------------------------------------------------------------------- http downloads


def test_500_then_ok_is_retried_and_bytes_are_identical(server, lake):
    data = payload(300_000)
    server.files["/data/file.csv"] = data
    server.scripts["/data/file.csv"] = [status(500)]

    result = fetch_source(server.url("/data/file.csv?sig=abc"), lake, RAW, policy=FAST)

    assert isinstance(result, FetchResult)
    assert result.keys == [RAW + "file.csv"]
    assert lake.read_bytes(RAW + "file.csv") == data
    assert result.bytes == len(data)
    assert result.attempts == 2
    assert result.resumed is False
    assert len(server.seen("/data/file.csv")) == 2


def test_503_forever_fails_after_all_attempts(server, lake):
    server.routes["/busy.csv"] = lambda handler, query: handler.plain(503)

    with pytest.raises(FetchError) as caught:
        fetch_source(server.url("/busy.csv?token=TOPSECRETVALUE"), lake, RAW, policy=FAST)

    message = str(caught.value)
    assert server.url("/busy.csv") in message
    assert "503" in message
    assert "4 attempts" in message
    assert "TOPSECRETVALUE" not in message and "token=" not in message
    assert caught.value.attempts == 4
    assert len(server.seen("/busy.csv")) == FAST.attempts
    assert not lake.has_prefix(RAW)


def test_broken_body_resumes_with_a_range_request(server, lake):
    data = payload(3 * MIB + 12345)
    server.files["/big.bin"] = data
    server.scripts["/big.bin"] = [half_then_close(data)]
    seen_progress: list[tuple[int, int | None]] = []

    result = fetch_source(
        server.url("/big.bin"), lake, RAW, policy=FAST, progress=lambda n, t: seen_progress.append((n, t))
    )

    assert lake.read_bytes(RAW + "big.bin") == data
    assert result.resumed is True
    assert result.attempts == 2
    requests = server.seen("/big.bin")
    assert "Range" not in requests[0].headers
    assert requests[1].headers["Range"] == f"bytes={len(data) // 2}-"
    assert seen_progress[-1] == (len(data), len(data))


def test_a_full_disk_mid_download_fails_at_once_naming_the_disk_and_lands_nothing(server, lake):
    """A write the disk refuses (here the file-size limit, as a full TMPDIR would) is not a network failure: a
    retry resumed after the bytes counted, over a file holding more, and landed a corrupted copy as succeeded."""
    import resource
    import signal

    data = payload(3 * MIB)
    server.files["/big.bin"] = data
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) instead of killing us
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MIB, hard))
    try:
        with pytest.raises(FetchError) as caught:
            fetch_source(server.url("/big.bin"), lake, RAW, policy=FAST)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    message = str(caught.value)
    assert "this machine's disk, not the network" in message and server.url("/big.bin") in message
    assert len(server.seen("/big.bin")) == 1  # not retried as if the network had broken
    assert not lake.has_prefix(RAW)


def test_a_full_disk_while_api_pages_are_written_names_the_disk_not_the_source(server, lake):
    """The same refusal while an API's records are written: the run said to check the source's settings."""
    import resource
    import signal

    rows = [{"id": i, "text": "x" * 200} for i in range(8000)]  # about 1.8 MB of JSON lines
    server.routes["/api/all"] = lambda handler, query: handler.json({"items": rows})
    endpoint = ApiEndpoint(url=server.url("/api/all"), paging=Paging(kind="none"), records="items")
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MIB, hard))
    try:
        with pytest.raises(FetchError) as caught:
            fetch_api([endpoint], lake, RAW, policy=FAST)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    message = str(caught.value)
    assert "this machine's disk, not the network nor the source" in message, message
    assert "check the source's settings" not in message
    assert not lake.has_prefix(RAW)


def test_server_that_ignores_range_restarts_from_zero(server, lake):
    data = payload(2 * MIB + 1)
    server.files["/norange.bin"] = data
    server.scripts["/norange.bin"] = [half_then_close(data), lambda h: h.serve(data, ignore_range=True)]

    result = fetch_source(server.url("/norange.bin"), lake, RAW, policy=FAST)

    assert lake.read_bytes(RAW + "norange.bin") == data
    assert result.resumed is False
    assert "Range" in server.seen("/norange.bin")[1].headers


def test_404_fails_at_once(server, lake):
    url = server.url("/missing/file.csv")

    with pytest.raises(FetchError) as caught:
        fetch_source(url + "?api_key=XYZSECRET", lake, RAW, policy=FAST)

    message = str(caught.value)
    assert url in message and "404" in message
    assert "XYZSECRET" not in message
    assert "1 attempt" in message
    assert caught.value.status == 404
    assert len(server.seen("/missing/file.csv")) == 1


def test_429_retry_after_is_honoured(server, lake):
    data = b"a,b\n1,2\n"
    server.files["/limited.csv"] = data
    server.scripts["/limited.csv"] = [status(429, {"Retry-After": "1"})]
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=5.0, timeout=5.0)

    started = time.monotonic()
    result = fetch_source(server.url("/limited.csv"), lake, RAW, policy=policy)
    waited = time.monotonic() - started

    assert lake.read_bytes(RAW + "limited.csv") == data
    assert result.attempts == 2
    assert 0.9 <= waited < 4.0


def test_retry_after_is_capped_at_max_delay(server, lake):
    server.files["/slowdown.csv"] = b"x\n"
    server.scripts["/slowdown.csv"] = [status(503, {"Retry-After": "120"})]

    started = time.monotonic()
    result = fetch_source(server.url("/slowdown.csv"), lake, RAW, policy=FAST)

    assert time.monotonic() - started < 3.0
    assert result.attempts == 2


def test_read_timeout_is_retried(server, lake):
    server.files["/sleepy.csv"] = b"id\n1\n"
    # The first request never answers while fetch runs (no race against a sleep), so its read
    # times out for sure; the timeout leaves a loaded machine room to answer the retries.
    release = threading.Event()
    server.scripts["/sleepy.csv"] = [lambda handler: release.wait(60)]
    policy = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, timeout=1.0)

    try:
        result = fetch_source(server.url("/sleepy.csv"), lake, RAW, policy=policy)
    finally:
        release.set()

    assert lake.read_bytes(RAW + "sleepy.csv") == b"id\n1\n"
    assert result.attempts >= 2  # the stalled first request timed out, and was retried
    assert len(server.seen("/sleepy.csv")) == result.attempts


def test_connection_refused_fails_after_attempts(lake, refused_port):
    port = refused_port
    with pytest.raises(FetchError) as caught:
        fetch_source(f"http://127.0.0.1:{port}/x.csv", lake, RAW, policy=FAST)
    message = str(caught.value)
    assert f"http://127.0.0.1:{port}/x.csv" in message
    assert "could not connect" in message and "4 attempts" in message


def test_time_budget_stops_retries(server, lake):
    server.routes["/flaky.csv"] = lambda handler, query: handler.plain(502)
    policy = RetryPolicy(attempts=100, base_delay=0.05, max_delay=0.05, timeout=5.0, max_total_seconds=0.3)

    started = time.monotonic()
    with pytest.raises(FetchError, match="max_total_seconds") as caught:
        fetch_source(server.url("/flaky.csv"), lake, RAW, policy=policy)

    assert time.monotonic() - started < 2.0
    assert "502" in str(caught.value)
    assert len(server.seen("/flaky.csv")) < 100


def test_64_mb_download_keeps_memory_bounded(server, lake):
    big = Generated(64 * MIB)
    server.files["/huge.bin"] = big
    calls: list[tuple[int, int | None]] = []

    tracemalloc.start()
    try:
        result = fetch_source(
            server.url("/huge.bin"), lake, RAW, policy=FAST, progress=lambda n, t: calls.append((n, t))
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB"
    assert result.bytes == big.size
    assert _sha256(lake.path(RAW + "huge.bin")) == big.sha256()
    assert calls[-1] == (big.size, big.size)
    assert [n for n, _ in calls] == sorted(n for n, _ in calls)


def test_gzip_body_is_kept_compressed_and_passed_through(server, lake):
    data = gzip.compress(b"id,name\n" + b"".join(b"%d,row%d\n" % (i, i) for i in range(1000)))
    server.routes["/export.csv.gz"] = lambda h, q: h.serve(data, headers={"Content-Encoding": "gzip"})

    result = fetch_source(server.url("/export.csv.gz"), lake, RAW, policy=FAST)

    assert lake.read_bytes(RAW + "export.csv.gz") == data
    assert result.attempts == 1
    assert unpack_for_reading(lake, result.keys, STAGING) == [RAW + "export.csv.gz"]
    assert not lake.has_prefix(STAGING)


def test_zip_members_are_unpacked_to_staging(server, lake):
    first, second = b"id,name\n1,a\n2,b\n", payload(200_000, seed=5)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.csv", first)
        zf.writestr("sub/", b"")
        zf.writestr("sub/data.csv", second)
        zf.writestr("__MACOSX/._data.csv", b"resource fork")
        zf.writestr(".DS_Store", b"finder")
        zf.writestr("sub/.hidden", b"hidden")
    server.files["/archive.zip"] = buffer.getvalue()

    result = fetch_source(server.url("/archive.zip"), lake, RAW, policy=FAST)
    keys = unpack_for_reading(lake, result.keys, STAGING)

    assert result.keys == [RAW + "archive.zip"]
    assert lake.read_bytes(RAW + "archive.zip") == buffer.getvalue()
    assert keys == [STAGING + "data.csv", STAGING + "data_1.csv"]
    assert lake.read_bytes(keys[0]) == first
    assert lake.read_bytes(keys[1]) == second
    assert [obj.key for obj in lake.list(STAGING)] == sorted(keys)


def test_damaged_zip_is_a_fetch_error(lake):
    lake.write_bytes(RAW + "broken.zip", b"not a zip at all")
    with pytest.raises(FetchError, match="broken.zip"):
        unpack_for_reading(lake, [RAW + "broken.zip"], STAGING)


def test_key_name_drops_the_query_and_defaults_to_download(server, lake):
    server.routes["/files/"] = lambda handler, query: handler.plain(200, body=b"listing")
    server.files["/dl/report%20final.csv"] = b"r\n"

    assert fetch_source(server.url("/files/?x=1"), lake, RAW, policy=FAST).keys == [RAW + "download"]
    assert fetch_source(server.url("/dl/report%20final.csv?a=b"), lake, RAW, policy=FAST).keys == [
        RAW + "report final.csv"
    ]


# --------------------------------------------------------------------------- files and s3


def test_relative_path_and_file_url_sources(tmp_path, lake):
    dataset_dir = tmp_path / "datasets" / "demo"
    (dataset_dir / "data").mkdir(parents=True)
    data = payload(5000)
    (dataset_dir / "data" / "sample.csv").write_bytes(data)

    relative = fetch_source("data/sample.csv", lake, RAW, dataset_dir=dataset_dir, policy=FAST)
    absolute = fetch_source((dataset_dir / "data" / "sample.csv").as_uri(), lake, "raw/other/", policy=FAST)

    assert relative.keys == [RAW + "sample.csv"] and relative.bytes == len(data)
    assert absolute.keys == ["raw/other/sample.csv"]
    assert lake.read_bytes(RAW + "sample.csv") == data
    assert lake.read_bytes("raw/other/sample.csv") == data


def test_missing_local_file_names_the_path(tmp_path, lake):
    with pytest.raises(FetchError, match="nope.csv"):
        fetch_source("nope.csv", lake, RAW, dataset_dir=tmp_path, policy=FAST)
    with pytest.raises(FetchError, match="dataset folder"):
        fetch_source("nope.csv", lake, RAW, policy=FAST)


def test_unsupported_scheme(lake):
    with pytest.raises(FetchError, match="scheme"):
        fetch_source("ftp://example.com/file.csv", lake, RAW, policy=FAST)


def test_s3_source_to_local_lake(aws, lake):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="source-bucket")
    data = payload(100_000, seed=3)
    client.put_object(Bucket="source-bucket", Key="exports/2026/data.csv", Body=data)
    calls: list[tuple[int, int | None]] = []

    result = fetch_source(
        "s3://source-bucket/exports/2026/data.csv",
        lake,
        RAW,
        policy=FAST,
        progress=lambda n, t: calls.append((n, t)),
    )

    assert result.keys == [RAW + "data.csv"]
    assert result.bytes == len(data)
    assert lake.read_bytes(RAW + "data.csv") == data
    assert calls[-1] == (len(data), len(data))


def test_s3_source_to_s3_lake_is_a_server_side_copy(aws):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="source-bucket")
    client.create_bucket(Bucket="lake-bucket")
    data = payload(250_000, seed=4)
    client.put_object(Bucket="source-bucket", Key="in/data.csv", Body=data)
    s3_lake = S3Lake("lake-bucket", "lake", client=client)

    result = fetch_source("s3://source-bucket/in/data.csv", s3_lake, RAW, policy=FAST)

    assert result.keys == [RAW + "data.csv"]
    assert result.bytes == len(data)
    assert s3_lake.read_bytes(RAW + "data.csv") == data
    stored = client.get_object(Bucket="lake-bucket", Key=f"lake/{RAW}data.csv")["Body"].read()
    assert stored == data


def test_s3_missing_object_fails_at_once(aws, lake):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="source-bucket")

    with pytest.raises(FetchError) as caught:
        fetch_source("s3://source-bucket/none.csv", lake, RAW, policy=FAST)

    assert "s3://source-bucket/none.csv" in str(caught.value)
    assert caught.value.attempts == 1


def test_s3_zip_unpacked_in_an_s3_lake(aws):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="lake-bucket")
    s3_lake = S3Lake("lake-bucket", client=client)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("folder/rows.csv", b"a\n1\n")
    s3_lake.write_bytes(RAW + "in.zip", buffer.getvalue())

    keys = unpack_for_reading(s3_lake, [RAW + "in.zip", RAW + "plain.csv"], STAGING)

    assert keys == [STAGING + "rows.csv", RAW + "plain.csv"]
    assert s3_lake.read_bytes(STAGING + "rows.csv") == b"a\n1\n"


# --------------------------------------------------------------------------- probe


def test_probe_reachable_with_size(server, lake):
    server.files["/p.csv"] = payload(4321)

    probe = probe_source(server.url("/p.csv?k=v"), policy=FAST)

    assert probe.reachable is True and probe.size == 4321
    assert server.seen("/p.csv")[0].method == "HEAD"
    assert not lake.has_prefix("")


def test_probe_falls_back_to_a_ranged_get_when_head_is_refused(server):
    data = payload(777)
    server.files["/nohead.csv"] = data
    server.scripts["/nohead.csv"] = [status(405)]

    probe = probe_source(server.url("/nohead.csv"), policy=FAST)

    assert probe.reachable is True and probe.size == 777
    assert [r.method for r in server.seen("/nohead.csv")] == ["HEAD", "GET"]


def test_probe_unreachable_never_raises(server, refused_port):
    port = refused_port
    down = probe_source(f"http://127.0.0.1:{port}/x.csv", policy=RetryPolicy(attempts=2, base_delay=0.01))
    missing = probe_source(server.url("/gone.csv"), policy=FAST)

    assert down.reachable is False and down.size is None and f"127.0.0.1:{port}" in down.detail
    assert missing.reachable is False and "404" in missing.detail


def test_probe_local_and_s3(tmp_path, aws):
    (tmp_path / "a.csv").write_bytes(b"12345")
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="probe-bucket")
    client.put_object(Bucket="probe-bucket", Key="k/a.csv", Body=b"123")

    assert probe_source("a.csv", dataset_dir=tmp_path, policy=FAST).size == 5
    assert probe_source((tmp_path / "a.csv").as_uri(), policy=FAST).reachable is True
    assert probe_source("b.csv", dataset_dir=tmp_path, policy=FAST).reachable is False
    assert probe_source("s3://probe-bucket/k/a.csv", policy=FAST).size == 3
    assert probe_source("s3://probe-bucket/k/none.csv", policy=FAST).reachable is False


# --------------------------------------------------------------------------- APIs

ROWS = [{"id": i, "name": f"row{i}"} for i in range(25)]


def _add_api_routes(server: LoopbackServer) -> None:
    def page(handler, query):
        number, size = int(query["page"]), int(query["per_page"])
        handler.json({"data": {"items": ROWS[(number - 1) * size : number * size]}, "meta": {"total": len(ROWS)}})

    def offset(handler, query):
        start, limit = int(query["offset"]), int(query.get("limit", 10))
        handler.json({"data": {"items": ROWS[start : start + limit]}})

    def cursor(handler, query):
        start = int(query.get("after", "0"))
        more = start + 10 < len(ROWS)
        handler.json({"data": {"items": ROWS[start : start + 10]}, "meta": {"next": str(start + 10) if more else None}})

    def link(handler, query):
        start = int(query.get("from", "0"))
        headers = {}
        if start + 10 < len(ROWS):
            headers["Link"] = f'<{server.url("/api/link")}?from={start + 10}>; rel="next", <http://x/>; rel="last"'
        handler.json({"data": {"items": ROWS[start : start + 10]}}, headers)

    def next_field(handler, query):
        start = int(query.get("from", "0"))
        following = f"{server.url('/api/next')}?from={start + 10}" if start + 10 < len(ROWS) else None
        handler.json({"data": {"items": ROWS[start : start + 10]}, "next": following})

    server.routes.update(
        {
            "/api/page": page,
            "/api/offset": offset,
            "/api/cursor": cursor,
            "/api/link": link,
            "/api/next": next_field,
        }
    )


@pytest.mark.parametrize(
    ("path", "paging", "requests"),
    [
        # A short page is not the end: the empty page after it is (issue 16); a declared total saves that request.
        ("/api/page", Paging(kind="page", param="page", size_param="per_page", size=10), 4),
        ("/api/offset", Paging(kind="offset", param="offset", size_param="limit", size=10), 4),
        ("/api/page", Paging(kind="page", param="page", size_param="per_page", size=10, total_field="meta.total"), 3),
        ("/api/offset", Paging(kind="offset", param="offset"), 4),  # no size_param: stops on the empty page
        ("/api/cursor", Paging(kind="cursor", param="after", cursor_field="meta.next"), 3),
        ("/api/link", Paging(kind="link"), 3),
        ("/api/next", Paging(kind="link"), 3),
    ],
)
def test_api_paging_styles(server, lake, path, paging, requests):
    _add_api_routes(server)
    endpoint = ApiEndpoint(url=server.url(path), params={"format": "json"}, paging=paging, records="data.items")

    result = fetch_api([endpoint], lake, RAW, policy=FAST, headers={"X-Api-Key": "k-123456"})

    assert result.keys == [RAW + "endpoint_0.jsonl"]
    lines = lake.read_bytes(RAW + "endpoint_0.jsonl").decode().splitlines()
    assert [json.loads(line) for line in lines] == ROWS
    assert result.bytes == len(lake.read_bytes(RAW + "endpoint_0.jsonl"))
    seen = server.seen(path)
    assert len(seen) == requests == result.attempts
    assert all(r.headers.get("X-Api-Key") == "k-123456" for r in seen)
    assert "format=json" in seen[0].path


def test_api_without_paging_and_several_endpoints(server, lake):
    server.routes["/api/list"] = lambda handler, query: handler.json([{"a": 1}, {"a": 2}])
    server.routes["/api/one"] = lambda handler, query: handler.json({"status": "ok", "n": 3})
    endpoints = [ApiEndpoint(url=server.url("/api/list")), ApiEndpoint(url=server.url("/api/one"))]

    result = fetch_api(endpoints, lake, RAW, policy=FAST)

    assert result.keys == [RAW + "endpoint_0.jsonl", RAW + "endpoint_1.jsonl"]
    assert lake.read_bytes(RAW + "endpoint_0.jsonl") == b'{"a":1}\n{"a":2}\n'
    assert json.loads(lake.read_bytes(RAW + "endpoint_1.jsonl")) == {"status": "ok", "n": 3}
    assert result.attempts == 2


def test_api_page_request_is_retried(server, lake):
    _add_api_routes(server)
    server.scripts["/api/cursor"] = [None, status(500)]  # the second page fails once
    endpoint = ApiEndpoint(
        url=server.url("/api/cursor"),
        paging=Paging(kind="cursor", param="after", cursor_field="meta.next"),
        records="data.items",
    )

    result = fetch_api([endpoint], lake, RAW, policy=FAST)

    lines = lake.read_bytes(RAW + "endpoint_0.jsonl").decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(range(25))
    assert result.attempts == 4


def test_runaway_api_hits_max_pages(server, lake):
    def forever(handler, query):
        n = int(query.get("c", "0"))
        handler.json({"data": {"items": [{"id": n}]}, "meta": {"next": str(n + 1)}})

    server.routes["/api/forever"] = forever
    endpoint = ApiEndpoint(
        url=server.url("/api/forever"),
        paging=Paging(kind="cursor", param="c", cursor_field="meta.next", max_pages=4),
        records="data.items",
    )

    with pytest.raises(FetchError) as caught:
        fetch_api([endpoint], lake, RAW, policy=FAST)

    message = str(caught.value)
    assert "runaway API" in message and server.url("/api/forever") in message and "4" in message
    assert len(server.seen("/api/forever")) == 4


def test_api_secrets_never_appear_in_errors(server, lake):
    secret = "Bearer sk-live-0123456789abcdef"
    server.routes["/api/private"] = lambda handler, query: handler.plain(401)
    server.routes["/api/down"] = lambda handler, query: handler.plain(503)

    for path, code, tries in (("/api/private", "401", 1), ("/api/down", "503", FAST.attempts)):
        # Validation refuses a key in params (use auth); fetch still hides one that got past it.
        endpoint = ApiEndpoint.model_construct(url=server.url(path), params={"api_key": "PARAMSECRET99"})
        with pytest.raises(FetchError) as caught:
            fetch_api([endpoint], lake, RAW, policy=FAST, headers={"Authorization": secret})
        message = str(caught.value)
        assert code in message and server.url(path) in message
        assert secret not in message and "sk-live" not in message and "PARAMSECRET99" not in message
        assert all(r.headers.get("Authorization") == secret for r in server.seen(path))
        assert len(server.seen(path)) == tries


def test_api_records_path_missing_or_not_json(server, lake):
    server.routes["/api/wrong"] = lambda handler, query: handler.json({"rows": []})
    server.routes["/api/html"] = lambda handler, query: handler.plain(200, {"Content-Type": "text/html"}, b"<html>")

    with pytest.raises(FetchError, match=r"data\.items.*rows"):
        fetch_api([ApiEndpoint(url=server.url("/api/wrong"), records="data.items")], lake, RAW, policy=FAST)
    with pytest.raises(FetchError, match="not JSON"):
        fetch_api([ApiEndpoint(url=server.url("/api/html"))], lake, RAW, policy=FAST)


def test_api_time_budget(server, lake):
    server.routes["/api/slow"] = lambda handler, query: handler.plain(500)
    policy = RetryPolicy(attempts=100, base_delay=0.05, max_delay=0.05, max_total_seconds=0.3)

    with pytest.raises(FetchError, match="max_total_seconds"):
        fetch_api([ApiEndpoint(url=server.url("/api/slow"))], lake, RAW, policy=policy)


# --------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()
