"""dwlib.fetch against servers and archives that lie, cap, redirect or explode (issue 16).

APIs that cap their page size or misstate their totals, redirects and next links to other hosts
and from https down to http, secrets with stray whitespace or in error paths, zip and gzip bombs
and zips whose headers lie. Everything is offline: loopback servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from dwlib import secrets as dwsecrets
from dwlib.config import ApiAuth, ApiEndpoint, Paging
from dwlib.fetch import FetchError, RetryPolicy, UnpackLimits, fetch_api, fetch_source, unpack_for_reading
from dwlib.lake import LocalLake
from dwlib.secrets import LocalSecrets, scrub
from tests.loopback import MIB, LoopbackServer, redirect, status

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, timeout=5.0, max_total_seconds=30.0)
RAW = "raw/demo/run_id=20260101T000000Z/"
STAGING = "staging/bronze/demo/run_id=20260101T000000Z/input/"
ROWS = [{"id": i, "name": f"row{i}"} for i in range(25)]
TOKEN = "tk-9Zq+/x7Lw3mN5pR2"  # '+' and '/' change in every encoding


@pytest.fixture
def other() -> Iterator[LoopbackServer]:
    """Another host (another port is another origin): must never see a credential."""
    srv = LoopbackServer()
    yield srv
    srv.stop()


def lines(lake: LocalLake, key: str = RAW + "endpoint_0.jsonl") -> list[dict]:
    return [json.loads(line) for line in lake.read_bytes(key).decode().splitlines()]


# --------------------------------------------------------------------------- 2. short pages


def capped(server: LoopbackServer, cap: int, total: int | None = None, rows=ROWS) -> None:
    """Offset and page APIs that send at most `cap` records whatever the caller asks, and may declare `total`."""

    def answer(handler, start: int, limit: int) -> None:
        page = rows[start : start + min(limit, cap)]
        handler.json({"items": page, "meta": {"total": len(rows) if total is None else total}})

    server.routes["/offset"] = lambda h, q: answer(h, int(q["offset"]), int(q.get("limit", 100)))
    server.routes["/page"] = lambda h, q: answer(h, (int(q["page"]) - 1) * cap, int(q.get("per_page", 100)))


def offset_endpoint(server: LoopbackServer, **paging) -> ApiEndpoint:
    settings = {"kind": "offset", "param": "offset", "size_param": "limit", "size": 10, **paging}
    return ApiEndpoint(url=server.url("/offset"), paging=Paging(**settings), records="items")


@pytest.mark.parametrize("kind", ["offset", "page"])
def test_an_api_that_caps_its_page_size_below_ours_yields_every_record(server, lake, kind):
    capped(server, cap=7)  # we ask for 10, it sends 7: the first short page is not the end
    if kind == "offset":
        endpoint = offset_endpoint(server)
    else:
        paging = Paging(kind="page", param="page", size_param="per_page", size=10)
        endpoint = ApiEndpoint(url=server.url("/page"), paging=paging, records="items")

    result = fetch_api([endpoint], lake, RAW, policy=FAST)

    assert lines(lake) == ROWS
    assert result.attempts == len(server.seen(f"/{kind}")) == 5  # 7 + 7 + 7 + 4, then the empty page
    if kind == "offset":  # offset advances by the records received, not by the size asked for
        offsets = [int(r.path.split("offset=")[1].split("&")[0]) for r in server.seen("/offset")]
        assert offsets == [0, 7, 14, 21, 25]


def test_a_declared_total_ends_paging_without_an_extra_request(server, lake):
    capped(server, cap=7)
    fetch_api([offset_endpoint(server, total_field="meta.total")], lake, RAW, policy=FAST)
    assert lines(lake) == ROWS
    assert len(server.seen("/offset")) == 4  # 7 + 7 + 7 + 4 = 25 = meta.total


def test_a_total_that_claims_more_than_the_pages_hold_fails_the_run(server, lake):
    capped(server, cap=10, total=40)
    with pytest.raises(FetchError) as caught:
        fetch_api([offset_endpoint(server, total_field="meta.total")], lake, RAW, policy=FAST)
    message = str(caught.value)
    assert "api_endpoints[0]" in message and server.url("/offset") in message
    assert "declared 40 records at paging.total_field 'meta.total'" in message and "after 25" in message


def test_a_total_that_claims_less_than_the_pages_hold_does_not_truncate(server, lake, caplog):
    capped(server, cap=10, total=10)  # says 10, has 25 in full pages of 10
    with caplog.at_level(logging.WARNING):
        fetch_api([offset_endpoint(server, total_field="meta.total")], lake, RAW, policy=FAST)
    assert lines(lake) == ROWS
    assert "declared 10 records at paging.total_field but sent 25" in caplog.text


def test_a_total_field_that_is_not_there_is_named(server, lake):
    capped(server, cap=10)
    with pytest.raises(FetchError, match=r"nothing at paging.total_field 'meta.count'.*items, meta"):
        fetch_api([offset_endpoint(server, total_field="meta.count")], lake, RAW, policy=FAST)


def test_an_empty_last_page_after_full_pages_ends_cleanly(server, lake):
    capped(server, cap=10, rows=ROWS[:20])  # 10 + 10 + an empty page
    result = fetch_api([offset_endpoint(server)], lake, RAW, policy=FAST)
    assert lines(lake) == ROWS[:20] and result.attempts == 3


def test_reaching_max_pages_with_records_left_fails_and_names_the_setting(server, lake):
    capped(server, cap=10)
    with pytest.raises(FetchError) as caught:
        fetch_api([offset_endpoint(server, max_pages=2)], lake, RAW, policy=FAST)
    message = str(caught.value)
    assert "api_endpoints[0]" in message and server.url("/offset") in message
    assert "paging.max_pages = 2" in message and "raise paging.max_pages" in message


def test_exactly_max_pages_of_records_is_not_a_runaway(server, lake):
    capped(server, cap=10, rows=ROWS[:20])
    fetch_api([offset_endpoint(server, max_pages=2)], lake, RAW, policy=FAST)  # the empty third page ends it
    assert lines(lake) == ROWS[:20]


def test_an_api_that_ignores_the_page_parameter_is_a_loop(server, lake):
    server.routes["/same"] = lambda h, q: h.json({"items": ROWS[:3]})
    endpoint = ApiEndpoint(url=server.url("/same"), paging=Paging(kind="page", param="p"), records="items")
    with pytest.raises(FetchError, match="returned the same page of records twice"):
        fetch_api([endpoint], lake, RAW, policy=FAST)
    assert len(server.seen("/same")) == 2


# --------------------------------------------------------------------------- 6. secrets


def forms(secret: str) -> list[str]:
    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), quote(secret, safe=""))  # %2f is %2F
    return [secret, quote(secret, safe=""), quote_plus(secret), lower_hex]


def test_secret_values_are_trimmed_wherever_they_come_from(tmp_path):
    (tmp_path / ".secrets.json").write_text(json.dumps({"from-file": f"  {TOKEN}\r\n", "blank": " \n"}))
    secrets = LocalSecrets(tmp_path, environ={"DW_SECRET_FROM_ENV": f"{TOKEN}\n"})
    assert secrets.resolve("from-env") == TOKEN
    assert secrets.resolve("from-file") == TOKEN
    with pytest.raises(dwsecrets.SecretError, match="'blank' .* empty or only whitespace") as caught:
        secrets.resolve("blank")
    assert TOKEN not in str(caught.value)


def test_secrets_manager_values_are_trimmed(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        import boto3

        boto3.client("secretsmanager").create_secret(Name="pp-dw/nl", SecretString=f"{TOKEN}\n")
        assert dwsecrets.SecretsManagerSecrets().resolve("pp-dw/nl") == TOKEN


def test_a_trailing_newline_no_longer_breaks_the_request(server, lake, tmp_path):
    server.routes["/api"] = lambda h, q: (
        h.json([{"ok": 1}]) if h.headers.get("Authorization") == f"Bearer {TOKEN}" else h.plain(401)
    )
    value = LocalSecrets(tmp_path, environ={"DW_SECRET_PP_DW_T": f"{TOKEN}\n"}).resolve("pp-dw/t")
    endpoint = ApiEndpoint(url=server.url("/api"), auth=ApiAuth(secret="pp-dw/t", scheme="Bearer"))
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/t": value})
    assert lines(lake) == [{"ok": 1}]


def test_a_secret_that_cannot_travel_in_a_header_is_refused_without_showing_it(server, lake):
    server.routes["/api"] = lambda h, q: h.json([])
    broken = "line-one-9f8e7d\nline-two-6c5b4a"
    endpoint = ApiEndpoint(url=server.url("/api"), auth=ApiAuth(secret="pp-dw/t", header="X-Api-Key"))
    with pytest.raises(FetchError) as caught:
        fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/t": broken})
    message = str(caught.value)
    assert "'pp-dw/t'" in message and "line break" in message and "api_endpoints[0]" in message
    assert "9f8e7d" not in message and "6c5b4a" not in message
    assert server.seen("/api") == []


def test_scrub_hides_raw_url_encoded_and_base64_forms():
    dwsecrets.register([f"alice:{TOKEN}"])
    basic = base64.b64encode(f"alice:{TOKEN}".encode()).decode()
    shifted = base64.b64encode(f"user=x&pw={TOKEN}".encode()).decode()  # the secret at another offset
    text = " | ".join([*forms(TOKEN), f"Basic {basic}", shifted, base64.urlsafe_b64encode(TOKEN.encode()).decode()])
    scrubbed = scrub(text)
    for leaked in [*forms(TOKEN), basic, base64.b64encode(TOKEN.encode()).decode()[:-4]]:
        assert leaked not in scrubbed, leaked
    assert scrub(None) is None and scrub("nothing here") == "nothing here"


class ExplodingLake(LocalLake):
    """A lake whose writes fail with a message that quotes whatever it was given (as some SDKs do)."""

    def put_file(self, local: Path, key: str) -> None:
        raise ValueError(f"cannot store {key}: {local.read_text(errors='replace')[:200]}")


def test_an_unexpected_exception_leaves_fetch_without_the_secret(server, tmp_path):
    # The API echoes the key in its records, and the lake quotes the records in its error.
    server.routes["/api"] = lambda h, q: h.json([{"echo": q.get("key", "")}])
    endpoint = ApiEndpoint(url=server.url("/api"), auth=ApiAuth(secret="pp-dw/q", query_param="key"))
    lake = ExplodingLake(tmp_path / "lake")
    secret = "qs-" + TOKEN
    with pytest.raises(FetchError) as caught:
        fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/q": secret})
    assert "ValueError" in str(caught.value) and server.url("/api") in str(caught.value)
    assert caught.value.__suppress_context__
    for form in forms(secret):
        assert form not in str(caught.value)


# --------------------------------------------------------------------------- 7. credentials stay home


def test_a_redirect_to_another_host_drops_header_and_query_credentials(server, other, lake):
    other.routes["/cdn/data"] = lambda h, q: h.json([{"from": "cdn", "query": sorted(q)}])
    server.scripts["/api"] = [redirect(other.url("/cdn/data") + f"?sig=abc&key={quote(TOKEN, safe='')}")]
    endpoint = ApiEndpoint(url=server.url("/api"), auth=ApiAuth(secret="pp-dw/q", query_param="key"))
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/q": TOKEN}, headers={"X-Team-Key": "team-77a9"})

    assert lines(lake) == [{"from": "cdn", "query": ["sig"]}]  # an echoed key is dropped, other parameters kept
    home, away = server.seen("/api"), other.seen("/cdn/data")
    assert "key=" in home[0].path and home[0].headers.get("X-Team-Key") == "team-77a9"
    assert "key=" not in away[0].path and "X-Team-Key" not in away[0].headers


def test_a_header_secret_does_not_follow_a_redirect_to_another_host(server, other, lake):
    other.routes["/elsewhere"] = lambda h, q: h.json([{"ok": True}])
    server.scripts["/api"] = [redirect(other.url("/elsewhere"), 307)]
    endpoint = ApiEndpoint(url=server.url("/api"), auth=ApiAuth(secret="pp-dw/h", header="X-Api-Key"))
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/h": TOKEN})
    assert server.seen("/api")[0].headers["X-Api-Key"] == TOKEN
    assert "X-Api-Key" not in other.seen("/elsewhere")[0].headers and lines(lake) == [{"ok": True}]


def test_a_redirect_on_the_same_host_keeps_the_credentials(server, lake):
    server.scripts["/api"] = [redirect("/v2/api", 301)]
    server.routes["/v2/api"] = lambda h, q: h.json([{"key_ok": h.headers.get("Authorization") == f"Token {TOKEN}"}])
    endpoint = ApiEndpoint(url=server.url("/api"), auth=ApiAuth(secret="pp-dw/h", scheme="Token"))
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/h": TOKEN})
    assert lines(lake) == [{"key_ok": True}]


def test_a_next_link_to_another_host_gets_no_credentials(server, other, lake, caplog):
    other.routes["/page2"] = lambda h, q: h.json({"items": [{"id": 2}], "next": None})
    server.routes["/page1"] = lambda h, q: h.json({"items": [{"id": 1}], "next": other.url("/page2")})
    endpoint = ApiEndpoint(
        url=server.url("/page1"),
        paging=Paging(kind="link"),
        records="items",
        auth=ApiAuth(secret="pp-dw/q", query_param="api_key"),
    )
    with caplog.at_level(logging.WARNING):
        fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/q": TOKEN})
    assert lines(lake) == [{"id": 1}, {"id": 2}]
    assert "api_key=" in server.seen("/page1")[0].path and "api_key" not in other.seen("/page2")[0].path
    assert "without the credentials" in caplog.text and TOKEN not in caplog.text


def test_too_many_redirects_fail_clearly(server, lake):
    server.routes["/loop"] = lambda h, q: h.plain(302, {"Location": "/loop"}, b"")
    with pytest.raises(FetchError, match="too many redirects"):
        fetch_source(server.url("/loop"), lake, RAW, policy=FAST)


@pytest.fixture
def tls(monkeypatch) -> Iterator[LoopbackServer]:
    srv = LoopbackServer(tls=True)
    monkeypatch.setenv("SSL_CERT_FILE", srv.ca_file)  # the client trusts the test's own certificate
    yield srv
    srv.stop()


def test_https_to_http_redirect_is_refused(tls, server, lake):
    server.files["/plain.csv"] = b"a\n1\n"
    tls.files["/ok.csv"] = b"a\n2\n"
    tls.scripts["/data.csv"] = [redirect(server.url("/plain.csv"))]

    assert fetch_source(tls.url("/ok.csv"), lake, RAW, policy=FAST).bytes == 4  # https itself works
    with pytest.raises(FetchError) as caught:
        fetch_source(tls.url("/data.csv"), lake, RAW, policy=FAST)
    message = str(caught.value)
    assert "from https to plain http" in message and tls.url("/data.csv") in message
    assert server.seen("/plain.csv") == [] and len(tls.seen("/data.csv")) == 1  # refused, not retried


def test_an_https_api_whose_next_link_is_plain_http_is_refused(tls, server, lake):
    server.routes["/p2"] = lambda h, q: h.json({"items": [{"id": 2}]})
    tls.routes["/p1"] = lambda h, q: h.json({"items": [{"id": 1}], "next": server.url("/p2")})
    endpoint = ApiEndpoint(url=tls.url("/p1"), paging=Paging(kind="link"), records="items")
    with pytest.raises(FetchError, match="next link leads from https to plain http"):
        fetch_api([endpoint], lake, RAW, policy=FAST)
    assert server.seen("/p2") == []


def test_source_auth_goes_to_the_source_host_only(server, other, lake):
    other.files["/signed/export.csv"] = b"id\n1\n"
    server.scripts["/export.csv"] = [redirect(other.url("/signed/export.csv"))]
    auth = ApiAuth(secret="pp-dw/dl", scheme="Basic")
    result = fetch_source(
        server.url("/export.csv"), lake, RAW, policy=FAST, auth=auth, secrets={"pp-dw/dl": f"alice:{TOKEN}"}
    )
    assert lake.read_bytes(result.keys[0]) == b"id\n1\n"
    sent = server.seen("/export.csv")[0].headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(f"alice:{TOKEN}".encode()).decode()  # RFC 7617
    assert "Authorization" not in other.seen("/signed/export.csv")[0].headers


def test_source_auth_as_a_query_parameter_and_a_failure_without_the_secret(server, lake):
    server.routes["/d.csv"] = lambda h, q: h.plain(200, body=b"x\n1\n") if q.get("t") == TOKEN else h.plain(403)
    auth = ApiAuth(secret="pp-dw/dl", query_param="t")
    fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST, auth=auth, secrets={"pp-dw/dl": TOKEN})
    assert lake.read_bytes(RAW + "d.csv") == b"x\n1\n"
    with pytest.raises(FetchError, match="403"):
        fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST, auth=auth, secrets={"pp-dw/dl": "wrong-0000"})


@pytest.mark.parametrize(
    ("auth", "body"),
    [
        (ApiAuth(secret="pp-dw/dl", header="X-Api-Key"), b"<p>invalid key " + TOKEN.encode() + b"</p>\n"),
        (ApiAuth(secret="pp-dw/dl", query_param="t"), b"id,note\n1,your key is " + TOKEN.encode() + b"\n"),
        # base64, as a Basic header or a JWT would carry it, at the end of a 3 MiB file (past the first chunks)
        (
            ApiAuth(secret="pp-dw/dl", scheme="Bearer"),
            b"id\n" + b"1\n" * (3 << 19) + base64.b64encode(TOKEN.encode()) + b"\n",
        ),
    ],
    ids=["header-row", "a-value", "base64-deep-in"],
)
def test_a_download_that_echoes_its_credential_never_reaches_raw(server, lake, auth, body):
    """A server that writes the key into its answer (an error page, a header row): the run fails and raw/,
    which the job keeps for good and may not delete, never holds it."""
    server.files["/d.csv"] = body
    with pytest.raises(FetchError) as caught:
        fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST, auth=auth, secrets={"pp-dw/dl": TOKEN})
    assert "holds the credential it was fetched with" in str(caught.value) and TOKEN not in str(caught.value)
    assert list(lake.list(RAW)) == []


# --------------------------------------------------------------------------- 12. archives


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_bomb_stops_at_the_default_ratio_before_anything_is_unpacked(lake):
    bomb = zip_of({"first.csv": b"a,b\n1,2\n", "bomb.csv": b"0" * (40 * MIB)})  # ~40 KB expanding 1000 times
    assert len(bomb) < 100_000
    lake.write_bytes(RAW + "data.zip", bomb)
    with pytest.raises(FetchError) as caught:
        unpack_for_reading(lake, [RAW + "data.zip"], STAGING)
    message = str(caught.value)
    assert RAW + "data.zip" in message and "the size its headers declare" in message
    assert "exceeds archive.max_ratio = 200 times" in message and "raise archive.max_ratio" in message
    assert not lake.has_prefix(STAGING)


def test_the_unpacked_size_limit_counts_every_archive_of_the_run(lake):
    lake.write_bytes(RAW + "a.zip", zip_of({"a.csv": bytes(range(256)) * 2000}))  # 512,000 bytes each
    lake.write_bytes(RAW + "b.zip", zip_of({"b.csv": bytes(range(256)) * 2000}))
    limits = UnpackLimits(max_unpacked_bytes=800_000)

    assert unpack_for_reading(lake, [RAW + "a.zip"], STAGING, limits) == [STAGING + "a.csv"]
    with pytest.raises(FetchError) as caught:
        unpack_for_reading(lake, [RAW + "a.zip", RAW + "b.zip"], STAGING, limits)
    assert "b.zip" in str(caught.value) and "archive.max_unpacked_bytes = 800000" in str(caught.value)
    assert not lake.has_prefix(STAGING)


def lying_zip(data: bytes, claimed: int) -> bytes:
    """A zip whose local and central headers claim `claimed` bytes for a member that holds `data`."""
    raw = bytearray(zip_of({"data.csv": data}))
    local = raw.find(b"PK\x03\x04")
    struct.pack_into("<I", raw, local + 22, claimed)  # uncompressed size in the local header
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, claimed)  # ... and in the central directory
    return bytes(raw)


def test_a_zip_whose_header_understates_its_size_does_not_get_through(lake):
    lake.write_bytes(RAW + "liar.zip", lying_zip(b"9" * (4 * MIB), claimed=100))
    with zipfile.ZipFile(io.BytesIO(lake.read_bytes(RAW + "liar.zip"))) as zf:
        assert zf.infolist()[0].file_size == 100  # the header says 100 bytes
    with pytest.raises(FetchError) as caught:
        unpack_for_reading(lake, [RAW + "liar.zip"], STAGING, UnpackLimits(max_unpacked_bytes=1000))
    message = str(caught.value)
    assert "liar.zip" in message and "'data.csv'" in message
    assert "does not match its header" in message or "max_unpacked_bytes" in message
    assert not lake.has_prefix(STAGING)


def test_a_zip_whose_header_declares_too_much_is_refused_before_unpacking(lake):
    lake.write_bytes(RAW + "big.zip", zip_of({"x.csv": b"1" * 5000}))
    with pytest.raises(FetchError, match=r"the size its headers declare exceeds archive.max_unpacked_bytes = 1000 "):
        unpack_for_reading(lake, [RAW + "big.zip"], STAGING, UnpackLimits(max_unpacked_bytes=1000))


def test_a_gzip_bomb_is_refused_and_a_truncated_gzip_is_named(lake):
    lake.write_bytes(RAW + "bomb.csv.gz", gzip.compress(b"\n" * (40 * MIB)))
    with pytest.raises(FetchError, match=r"bomb.csv.gz: its content exceeds archive.max_ratio"):
        unpack_for_reading(lake, [RAW + "bomb.csv.gz"], STAGING)
    whole = gzip.compress(b"id,v\n" + b"1,2\n" * 50_000)
    lake.write_bytes(RAW + "cut.csv.gz", whole[: len(whole) // 2])
    with pytest.raises(FetchError, match=r"Could not decompress .*cut.csv.gz.*truncated or damaged"):
        unpack_for_reading(lake, [RAW + "cut.csv.gz"], STAGING)
    lake.write_bytes(RAW + "fine.csv.gz", whole)
    assert unpack_for_reading(lake, [RAW + "fine.csv.gz"], STAGING) == [RAW + "fine.csv.gz"]


def test_a_gzip_inside_a_zip_counts_too_and_staging_is_cleaned(lake):
    inner = gzip.compress(b"x" * (2 * MIB))  # its zip header declares the 2 KB of gzip, not what it expands to
    lake.write_bytes(RAW + "nested.zip", zip_of({"first.csv": b"a\n1\n", "inner.csv.gz": inner}))
    with pytest.raises(FetchError) as caught:
        unpack_for_reading(lake, [RAW + "nested.zip"], STAGING, UnpackLimits(max_unpacked_bytes=1_000_000))
    message = str(caught.value)
    assert "nested.zip (member 'inner.csv.gz')" in message and "max_unpacked_bytes = 1000000" in message
    assert not lake.has_prefix(STAGING)  # first.csv, unpacked before, is gone too


def test_gzip_in_an_s3_lake_is_checked_as_a_stream(monkeypatch, tmp_path):
    from moto import mock_aws

    from dwlib.lake import S3Lake

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="lake")
        lake = S3Lake("lake")
        lake.write_bytes(RAW + "ok.csv.gz", gzip.compress(b"a\n1\n"))
        lake.write_bytes(RAW + "bomb.csv.gz", gzip.compress(b"\n" * (3 * MIB)))
        assert unpack_for_reading(lake, [RAW + "ok.csv.gz"], STAGING) == [RAW + "ok.csv.gz"]
        with pytest.raises(FetchError, match=r"bomb.csv.gz: its content exceeds archive.max_unpacked_bytes = 1000000"):
            unpack_for_reading(lake, [RAW + "bomb.csv.gz"], STAGING, UnpackLimits(max_unpacked_bytes=1_000_000))


def test_an_api_that_answers_404_past_its_declared_total_is_done(server, lake):
    def fda_like(handler, query):  # openFDA: 404 "No matches found!" for a skip past the total
        start, limit = int(query["offset"]), int(query["limit"])
        if start >= 20:
            handler.plain(404, {"Content-Type": "application/json"}, b'{"error": {"code": "NOT_FOUND"}}')
            return
        handler.json({"meta": {"results": {"total": 20}}, "items": ROWS[start : min(20, start + limit)]})

    server.routes["/offset"] = fda_like
    fetch_api([offset_endpoint(server, total_field="meta.results.total")], lake, RAW, policy=FAST)
    assert lines(lake) == ROWS[:20]  # full pages up to the total; the 404 that confirms the end is no failure
    with pytest.raises(FetchError, match=r"HTTP 404.*set paging.total_field"):
        fetch_api([offset_endpoint(server)], lake, RAW, policy=FAST)  # without a total the 404 is an error


def test_an_invalid_header_value_quoted_by_http_client_is_scrubbed(server, lake):
    server.routes["/api"] = lambda h, q: h.json([])
    value = "hdr-secret-4f3e2d1c\r\nX-Injected: yes"  # http.client refuses it and quotes it in its error
    with pytest.raises(FetchError) as caught:
        fetch_api([ApiEndpoint(url=server.url("/api"))], lake, RAW, policy=FAST, headers={"X-Key": value})
    message = str(caught.value)
    assert "ValueError" in message and "Invalid header value" in message
    assert "4f3e2d1c" not in message and "X-Injected" not in message
    assert server.seen("/api") == []


# --------------------------------------------------------------------------- pages that end, echo and grow


def cursor_endpoint(server: LoopbackServer, **extra) -> ApiEndpoint:
    paging = Paging(kind="cursor", param="after", cursor_field="meta.next")
    return ApiEndpoint(url=server.url("/cursor"), paging=paging, records="items", **extra)


def test_an_error_answer_in_the_middle_of_paging_fails_the_run(server, lake):
    def cursor(h, q):
        start = int(q.get("after", "0"))
        if start == 10:
            h.json({"error": {"code": "SERVER_ERROR", "message": "temporarily unavailable"}})
            return
        h.json({"items": ROWS[start : start + 10], "meta": {"next": str(start + 10)}})

    def offset(h, q):
        if q["offset"] == "10":
            h.json({"message": "rate limit exceeded", "code": 429})  # nothing but an error, at HTTP 200
            return
        h.json({"items": ROWS[int(q["offset"]) : int(q["offset"]) + 10]})

    server.routes.update({"/cursor": cursor, "/offset": offset})
    for endpoint, shown in (
        (cursor_endpoint(server), "temporarily unavailable"),
        (offset_endpoint(server), "rate limit"),
    ):
        with pytest.raises(FetchError) as caught:
            fetch_api([endpoint], lake, RAW, policy=FAST)
        message = str(caught.value)
        assert f"api_endpoints[0] ({endpoint.url})" in message and "page 2 answered with an error" in message
        assert shown in message and "rather than keep part of the data" in message
        assert not lake.exists(RAW + "endpoint_0.jsonl")  # nothing under raw/: the run has no partial data


def test_a_page_without_its_records_list_ends_paging_only_when_it_is_provably_the_last(server, lake):
    def cursor(h, q):  # the last page drops the list and names no next cursor: a real end
        start = int(q.get("after", "0"))
        if start >= len(ROWS):
            h.json({"meta": {"next": None}})
            return
        h.json({"items": ROWS[start : start + 10], "meta": {"next": str(start + 10)}})

    server.routes["/cursor"] = cursor
    fetch_api([cursor_endpoint(server)], lake, RAW, policy=FAST)
    assert lines(lake) == ROWS

    # A page that drops the list but still names a next cursor is not the last.
    server.routes["/cursor"] = lambda h, q: h.json(
        {"items": ROWS[:10], "meta": {"next": "10"}} if "after" not in q else {"meta": {"next": "20"}}
    )
    with pytest.raises(FetchError, match=r"nothing at records path 'items' on page 2 .*still has a next cursor"):
        fetch_api([cursor_endpoint(server)], lake, RAW, policy=FAST)

    # Offset paging ends only at an empty list: a page without one cannot be told from an error.
    server.routes["/offset"] = lambda h, q: h.json({"items": ROWS[:10]} if q["offset"] == "0" else {"meta": {}})
    with pytest.raises(FetchError) as caught:
        fetch_api([offset_endpoint(server)], lake, RAW, policy=FAST)
    message = str(caught.value)
    assert "nothing at records path 'items' on page 2" in message and "api_endpoints[0]" in message
    assert "its answer holds: meta" in message and "paging.total_field" in message


def test_every_form_of_a_basic_secret_echoed_by_the_api_is_cut_from_raw(server, lake):
    password = "S3cr3t-" + TOKEN
    stored = f"alice.api:{password}"

    def me(h, q):
        sent = h.headers["Authorization"]
        who = base64.b64decode(sent.split(" ", 1)[1]).decode()
        h.json([{"id": 1, "who": who, "pw": who.partition(":")[2], "header": sent, "link": f"/x?p={quote(password)}"}])

    server.routes["/me"] = me
    endpoint = ApiEndpoint(url=server.url("/me"), auth=ApiAuth(secret="pp-dw/b", scheme="Basic"))
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/b": stored})

    assert lines(lake) == [{"id": 1, "who": "***", "pw": "***", "header": "***", "link": "/x?p=***"}]
    raw = lake.read_bytes(RAW + "endpoint_0.jsonl").decode()
    for form in [stored, "alice.api", *forms(password)]:
        assert form not in raw, form


def test_a_numeric_key_echoed_as_a_json_number_is_cut_from_raw(server, lake):
    key = "8675309123456"
    server.routes["/n"] = lambda h, q: h.json(
        [{"id": 8675309, "account": int(q["api_key"]), "as_float": float(q["api_key"]), "as_text": q["api_key"]}]
    )
    endpoint = ApiEndpoint(url=server.url("/n"), auth=ApiAuth(secret="pp-dw/k", query_param="api_key"))
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/k": key})

    assert lines(lake) == [{"id": 8675309, "account": "***", "as_float": "***", "as_text": "***"}]
    assert key not in lake.read_bytes(RAW + "endpoint_0.jsonl").decode()


def test_a_key_echoed_under_any_name_or_case_does_not_follow_a_redirect_to_another_host(server, other, lake):
    other.routes["/cdn"] = lambda h, q: h.json([{"query": sorted(q)}])
    echoed = f"API_KEY={TOKEN}&Api_Key={quote(TOKEN, safe='')}&t={quote_plus(TOKEN)}&sig=abc&nested=k%3D{quote(TOKEN)}"
    server.scripts["/api"] = [redirect(other.url("/cdn") + "?" + echoed, 307)]
    endpoint = ApiEndpoint(url=server.url("/api"), auth=ApiAuth(secret="pp-dw/q", query_param="api_key"))
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/q": TOKEN})

    assert lines(lake) == [{"query": ["sig"]}]  # every parameter that names or holds the key is gone
    assert quote(TOKEN, safe="") in server.seen("/api")[0].path
    away = other.seen("/cdn")[0]
    assert TOKEN not in away.path and quote(TOKEN, safe="") not in away.path and "api_key" not in away.path.lower()


def test_a_header_token_echoed_into_a_next_link_to_another_host_is_dropped(server, other, lake):
    other.routes["/p2"] = lambda h, q: h.json({"items": [{"id": 2, "query": sorted(q)}], "next": None})
    following = other.url("/p2") + f"?access_token={TOKEN}&page=2"
    server.routes["/p1"] = lambda h, q: h.json({"items": [{"id": 1}], "next": following})
    endpoint = ApiEndpoint(
        url=server.url("/p1"),
        paging=Paging(kind="link"),
        records="items",
        auth=ApiAuth(secret="pp-dw/h", scheme="Bearer"),
    )
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/h": TOKEN})

    assert lines(lake) == [{"id": 1}, {"id": 2, "query": ["page"]}]
    away = other.seen("/p2")[0]
    assert TOKEN not in away.path and "Authorization" not in away.headers


@pytest.mark.parametrize("written", ["?page={n}", "items?page={n}", "/v1/items?page={n}", "{base}/v1/items?page={n}"])
def test_a_relative_next_link_is_resolved_against_the_page_that_gave_it(server, lake, written):
    def items(h, q):
        n = int(q.get("page", "1"))
        following = written.format(n=n + 1, base=server.base) if n < 3 else None
        h.json({"items": ROWS[(n - 1) * 10 : n * 10], "next": following})

    server.routes["/v1/items"] = items
    endpoint = ApiEndpoint(url=server.url("/v1/items"), paging=Paging(kind="link"), records="items")
    fetch_api([endpoint], lake, RAW, policy=FAST)

    assert lines(lake) == ROWS
    assert [r.path for r in server.seen("/v1/items")] == ["/v1/items", "/v1/items?page=2", "/v1/items?page=3"]


def test_a_relative_next_link_after_a_redirect_to_another_host_stays_there_without_credentials(server, other, lake):
    def cdn(h, q):
        n = int(q.get("page", "1"))
        h.json({"items": [{"id": n}], "next": f"?page={n + 1}" if n < 2 else None})

    other.routes["/cdn/items"] = cdn
    server.scripts["/items"] = [redirect(other.url("/cdn/items"))]
    endpoint = ApiEndpoint(
        url=server.url("/items"), paging=Paging(kind="link"), records="items", auth=ApiAuth(secret="pp-dw/h")
    )
    fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/h": TOKEN})

    assert lines(lake) == [{"id": 1}, {"id": 2}]
    assert [r.path for r in other.seen("/cdn/items")] == ["/cdn/items", "/cdn/items?page=2"]
    assert all("Authorization" not in r.headers for r in other.seen("/cdn/items"))


@pytest.mark.parametrize(
    ("value", "shown"), [(2, "a JSON int (2)"), ({"href": "/p/2"}, "a JSON dict"), ("mailto:x@y", "scheme 'mailto'")]
)
def test_a_next_that_is_not_a_url_fails_the_run(server, lake, value, shown):
    server.routes["/p"] = lambda h, q: h.json({"items": [{"id": 1}], "next": value})
    endpoint = ApiEndpoint(url=server.url("/p"), paging=Paging(kind="link"), records="items")
    with pytest.raises(FetchError) as caught:
        fetch_api([endpoint], lake, RAW, policy=FAST)
    message = str(caught.value)
    assert "api_endpoints[0]" in message and shown in message and "not a URL" in message and "kind 'cursor'" in message
    assert not lake.exists(RAW + "endpoint_0.jsonl")


def gzip_bomb(decoded: int) -> bytes:
    """A JSON list that is almost all whitespace: it compresses about a thousand times."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        out.write(b"[")
        for _ in range(decoded // MIB):
            out.write(b" " * MIB)
        out.write(b'{"id": 1}]')
    return buffer.getvalue()


def test_a_gzip_bomb_in_an_api_answer_stops_at_the_page_limit_with_memory_bounded(server, lake):
    import tracemalloc

    body = gzip_bomb(64 * MIB)
    server.routes["/bomb"] = lambda h, q: h.plain(
        200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, body
    )
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as caught:
            fetch_api([ApiEndpoint(url=server.url("/bomb"))], lake, RAW, policy=FAST, max_page_bytes=8 * MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert server.url("/bomb") in message and f"max_page_bytes = {8 * MIB} bytes once decoded from gzip" in message
    assert peak < 16 * MIB + 2 * len(body), f"peak {peak / MIB:.1f} MiB"
    assert len(server.seen("/bomb")) == 1 and not lake.exists(RAW + "endpoint_0.jsonl")


@pytest.mark.parametrize("encoding", ["gzip", "two gzip", "many gzip", "deflate", "raw deflate"])
def test_a_compressed_api_answer_within_the_limit_is_decoded(server, lake, encoding):
    data = json.dumps({"items": ROWS}).encode()
    packed = {
        "gzip": gzip.compress(data),
        "two gzip": gzip.compress(data[:100]) + gzip.compress(data[100:]),  # members, one after the other
        # A member per byte: as many members as a page likes, never one nested call per member.
        "many gzip": b"".join(gzip.compress(byte) for byte in [data, *[b" "] * 3000]),
        "deflate": zlib.compress(data),
        "raw deflate": zlib.compress(data)[2:-4],  # as some servers send deflate, without the zlib wrapper
    }[encoding]
    header = encoding.split()[-1]
    server.routes["/z"] = lambda h, q: h.plain(
        200, {"Content-Type": "application/json", "Content-Encoding": header}, packed
    )
    fetch_api([ApiEndpoint(url=server.url("/z"), records="items")], lake, RAW, policy=FAST)
    assert lines(lake) == ROWS


@pytest.mark.parametrize("how", ["redirect", "next link"])
def test_a_key_echoed_into_another_host_s_path_is_never_requested(server, other, lake, how):
    """A query parameter can be left out; a path cannot: `https://cdn/KEY/data` is refused, not sent to that host."""
    away = other.url("/" + quote(TOKEN, safe="")) + "/data"
    if how == "redirect":
        server.scripts["/api"] = [redirect(away, 307)]
        endpoint = ApiEndpoint(url=server.url("/api"), auth=ApiAuth(secret="pp-dw/q", query_param="api_key"))
    else:
        server.routes["/api"] = lambda h, q: h.json({"items": [{"id": 1}], "next": away})
        endpoint = ApiEndpoint(
            url=server.url("/api"),
            paging=Paging(kind="link"),
            records="items",
            auth=ApiAuth(secret="pp-dw/q", query_param="api_key"),
        )
    with pytest.raises(FetchError) as caught:
        fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/q": TOKEN})

    assert "another host with the credential in the URL's path" in str(caught.value)
    assert TOKEN not in str(caught.value) and quote(TOKEN, safe="") not in str(caught.value)
    assert not other.requests  # the other host saw nothing, with or without the key


# --------------------------------------------------------------------------- one parser decides the host


def two_faced(home: LoopbackServer, away: LoopbackServer, path: str) -> str:
    """A URL that urllib.parse reads as `home`'s but urllib3, which connects, as `away`'s (a backslash ends its host)."""
    return f"http://127.0.0.1:{away.httpd.server_address[1]}\\@127.0.0.1:{home.httpd.server_address[1]}{path}"


CREDENTIALS = {
    "header": ApiAuth(secret="pp-dw/s", header="X-Api-Key"),
    "query": ApiAuth(secret="pp-dw/s", query_param="api_key"),
}


@pytest.mark.parametrize("credential", sorted(CREDENTIALS))
@pytest.mark.parametrize("how", ["source_url", "redirect", "api redirect", "next link", "Link header", "userinfo"])
def test_a_url_two_parsers_read_as_different_hosts_is_never_requested(server, other, lake, how, credential):
    auth, secrets = CREDENTIALS[credential], {"pp-dw/s": TOKEN}
    other.routes["/data.csv"] = lambda h, q: h.plain(200, body=b"a\n1\n")
    server.files["/data.csv"] = b"a\n1\n"
    sneaky = two_faced(server, other, "/data.csv")
    if how == "userinfo":  # a user name before '@' is refused too, whatever host it is
        sneaky = f"http://user:pw@127.0.0.1:{other.httpd.server_address[1]}/data.csv"
    with pytest.raises(FetchError) as caught:
        if how == "source_url":
            fetch_source(sneaky, lake, RAW, policy=FAST, auth=auth, secrets=secrets)
        elif how in ("redirect", "userinfo"):
            server.scripts["/export.csv"] = [redirect(sneaky, 307)]
            fetch_source(server.url("/export.csv"), lake, RAW, policy=FAST, auth=auth, secrets=secrets)
        elif how == "api redirect":
            server.scripts["/api"] = [redirect(sneaky, 302)]
            fetch_api([ApiEndpoint(url=server.url("/api"), auth=auth)], lake, RAW, policy=FAST, secrets=secrets)
        else:
            link = {"Link": f"<{sneaky}>; rel=next"} if how == "Link header" else {}
            body = {"items": [{"id": 1}]} | ({} if link else {"next": sneaky})
            server.routes["/api"] = lambda h, q: h.json(body, link)
            endpoint = ApiEndpoint(url=server.url("/api"), paging=Paging(kind="link"), records="items", auth=auth)
            fetch_api([endpoint], lake, RAW, policy=FAST, secrets=secrets)

    message = str(caught.value)
    assert not other.requests  # the other server saw nothing, with or without the key
    assert "refused" in message and ("backslash" in message or "user name or password" in message)
    assert TOKEN not in message and "Traceback" not in message
    assert not lake.exists(RAW + "data.csv") and not lake.exists(RAW + "endpoint_0.jsonl")


@pytest.mark.parametrize("credential", sorted(CREDENTIALS))
@pytest.mark.parametrize("how", ["redirect", "next link"])
def test_a_key_in_another_host_s_path_never_reaches_a_log_line(server, other, lake, caplog, how, credential):
    auth, away = CREDENTIALS[credential], other.url(f"/u/{quote(TOKEN, safe='')}/data")
    if how == "redirect":
        server.scripts["/api"] = [redirect(away, 307)]
        endpoint = ApiEndpoint(url=server.url("/api"), auth=auth)
    else:
        server.routes["/api"] = lambda h, q: h.json({"items": [{"id": 1}], "next": away})
        endpoint = ApiEndpoint(url=server.url("/api"), paging=Paging(kind="link"), records="items", auth=auth)
    with caplog.at_level(logging.DEBUG), pytest.raises(FetchError):
        fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/s": TOKEN})

    assert "another host" in caplog.text and "/u/***/data" in caplog.text  # the warning is there, the key is not
    for form in forms(TOKEN):
        assert form not in caplog.text
    assert not other.requests


def broken_header(handler, body: bytes) -> None:
    """A 200 with a header line that has no colon: urllib3.connection logs the request's URL, query included."""
    handler.wfile.write(
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        + b"this line has no colon\r\nConnection: close\r\n\r\n"
        + body
    )
    handler.close_connection = True


@pytest.mark.parametrize("kind", ["api", "download"])
def test_urllib3_s_warning_about_a_broken_header_does_not_carry_the_key(server, lake, caplog, kind):
    body = json.dumps([{"id": 1}]).encode() if kind == "api" else b"a\n1\n"
    server.routes["/x"] = lambda h, q: broken_header(h, body)
    auth = ApiAuth(secret="pp-dw/s", query_param="api_key")
    with caplog.at_level(logging.WARNING):
        if kind == "api":
            fetch_api(
                [ApiEndpoint(url=server.url("/x"), auth=auth)], lake, RAW, policy=FAST, secrets={"pp-dw/s": TOKEN}
            )
        else:
            fetch_source(server.url("/x"), lake, RAW, policy=FAST, auth=auth, secrets={"pp-dw/s": TOKEN})

    assert "Failed to parse headers" in caplog.text and "api_key=***" in caplog.text
    for form in forms(TOKEN):
        assert form not in caplog.text


@pytest.mark.parametrize("logger", ["urllib3.response", "urllib3.connection", "urllib3", "dwlib.fetch"])
def test_a_traceback_logged_during_a_fetch_is_scrubbed_too(server, lake, caplog, logger):
    server.files["/d.csv"] = b"a\n1\n"

    def progress(have: int, total: int | None) -> None:  # anything logged while the fetch runs
        try:
            raise ValueError(f"could not read {server.url('/d.csv')}?api_key={quote(TOKEN, safe='')}")
        except ValueError:
            logging.getLogger(logger).warning("broke at %s (%s)", have, TOKEN, exc_info=True)

    auth = ApiAuth(secret="pp-dw/s", header="X-Api-Key")
    with caplog.at_level(logging.WARNING):
        fetch_source(
            server.url("/d.csv"), lake, RAW, policy=FAST, progress=progress, auth=auth, secrets={"pp-dw/s": TOKEN}
        )

    assert "broke at 4 (***)" in caplog.text and "ValueError: could not read" in caplog.text
    for form in forms(TOKEN):
        assert form not in caplog.text


LONG_KEY = "sk_live_4f9c2a7e1b3d8c6f0a5e9b2d7c4f1a8e6b3d0c9f"


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ({"error": {"message": "x" * 255 + f" invalid api key {LONG_KEY} for this"}}, "answered with an error"),
        ({"items": [{"id": 1}], "meta": {"total": LONG_KEY}}, "paging.total_field 'meta.total' holds '***'"),
        ({"items": [{"id": 1}], "next": [LONG_KEY, "page 2"]}, 'a JSON list (["***", "page 2"])'),
    ],
    ids=["error page", "total_field", "next list"],
)
def test_a_key_echoed_into_a_quoted_value_is_cut_whole_never_leaving_a_prefix(server, lake, answer, shown):
    server.routes["/api"] = lambda h, q: h.json(answer)
    paging = Paging(kind="link", total_field="meta.total" if "meta" in answer else None)
    endpoint = ApiEndpoint(url=server.url("/api"), paging=paging, records="items", auth=CREDENTIALS["query"])
    with pytest.raises(FetchError) as caught:
        fetch_api([endpoint], lake, RAW, policy=FAST, secrets={"pp-dw/s": LONG_KEY})

    message = str(caught.value)
    assert shown in message and "api_endpoints[0]" in message
    assert LONG_KEY[:10] not in message and not lake.exists(RAW + "endpoint_0.jsonl")


# --------------------------------------------------------------------------- resumed downloads join one version only

V1 = b"id,name\n" + b"".join(f"{i},old{i}\n".encode() for i in range(1, 200))
V2 = b"id,name\n" + b"".join(f"{i},NEW{i}\n".encode() for i in range(1, 300))
LONG_AGO = "Wed, 21 Oct 2015 07:28:00 GMT"


def version(
    content: bytes,
    headers: dict[str, str],
    cut: int | None = None,
    total: str | None = None,
    span: int | None = None,
    skip: int = 0,
):
    """A file server that honours `Range` (ignoring If-Range, as some CDNs do) and may hang up after `cut` bytes;
    its 206 may declare `total` ("*"), send only `span` bytes, or start `skip` bytes later than it says."""

    def act(handler) -> None:
        match = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range", ""))
        start = int(match[1]) if match else 0
        end = len(content) if span is None or not match else min(len(content), start + span)
        body = content[start + skip : end] if match else content[:cut]
        handler.send_response(206 if match else 200)
        for name, value in headers.items():
            handler.send_header(name, value)
        if match:
            handler.send_header("Content-Range", f"bytes {start}-{end - 1}/{total or len(content)}")
        handler.send_header("Content-Length", str(len(body) if match else len(content)))
        handler.end_headers()
        handler.wfile.write(body)
        if cut is not None:
            handler.close_connection = True

    return act


@pytest.mark.parametrize(
    ("first", "then", "resumes"),
    [
        ({"ETag": '"v1"'}, {"ETag": '"v2"'}, True),  # the rest of another version: refused, started over
        ({}, {}, False),  # no validator: nothing shows the file did not change
        ({"ETag": 'W/"v1"'}, {"ETag": 'W/"v1"'}, False),  # a weak ETag promises nothing about the bytes
        ({"Last-Modified": "now"}, {"Last-Modified": "now"}, False),  # modified within the minute: not strong
        ({"Last-Modified": LONG_AGO}, {"Last-Modified": "Thu, 22 Oct 2015 07:28:00 GMT"}, True),
    ],
    ids=["another ETag", "no validator", "weak ETag", "recent Last-Modified", "another Last-Modified"],
)
def test_a_download_that_broke_never_joins_two_versions_of_the_file(server, lake, first, then, resumes):
    from email.utils import formatdate

    now = formatdate(usegmt=True)
    first = {k: now if v == "now" else v for k, v in first.items()}
    then = {k: now if v == "now" else v for k, v in then.items()}
    server.scripts["/d.csv"] = [version(V1, first, cut=700), version(V2, then), version(V2, then)]

    result = fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST)

    assert lake.read_bytes(RAW + "d.csv") == V2  # the new version whole, never old rows then new ones
    ranges = [r.headers.get("Range") for r in server.seen("/d.csv")]
    assert ranges == ([None, "bytes=700-", None] if resumes else [None, None]) and result.resumed is False


@pytest.mark.parametrize("validator", [{"ETag": '"v1"'}, {"Last-Modified": LONG_AGO}])
def test_a_download_resumes_when_the_rest_has_the_same_strong_validator(server, lake, validator):
    server.scripts["/d.csv"] = [version(V1, validator, cut=700), version(V1, validator)]

    result = fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST)

    assert lake.read_bytes(RAW + "d.csv") == V1 and result.resumed is True
    second = server.seen("/d.csv")[1].headers
    assert second["Range"] == "bytes=700-" and second["If-Range"] == next(iter(validator.values()))


def test_a_resume_that_says_it_does_not_know_the_size_keeps_the_first_answer_s(server, lake):
    etag = {"ETag": '"a"'}
    server.scripts["/whole.csv"] = [version(V1, etag, cut=700), version(V1, etag, total="*")]
    server.scripts["/short.csv"] = [version(V1, etag, cut=700), *[version(V1, etag, total="*", span=100)] * 2]

    fetch_source(server.url("/whole.csv"), lake, RAW, policy=FAST)
    assert lake.read_bytes(RAW + "whole.csv") == V1  # "bytes 700-1980/*" with the same ETag: joined
    with pytest.raises(FetchError) as caught:  # "bytes 700-799/*" is not the end of a file of len(V1) bytes
        fetch_source(server.url("/short.csv"), lake, RAW, policy=FAST)
    assert f"the body ended after 900 of {len(V1)} bytes" in str(caught.value)
    assert not lake.exists(RAW + "short.csv")


def test_a_416_saying_we_have_everything_is_not_believed_over_the_first_answer(server, lake):
    shrunk = lambda h: h.plain(416, {"Content-Range": "bytes */700", "ETag": '"v3"'}, b"")  # noqa: E731
    server.scripts["/d.csv"] = [version(V1, {"ETag": '"v1"'}, cut=700), shrunk, shrunk]
    with pytest.raises(FetchError) as caught:
        fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST)
    assert "416" in str(caught.value) and not lake.exists(RAW + "d.csv")  # never 700 bytes landed as the file
    assert [r.headers.get("Range") for r in server.seen("/d.csv")] == [None, "bytes=700-", None]


def test_a_206_whose_length_disagrees_with_its_range_is_not_joined(server, lake):
    etag = {"ETag": '"a"'}
    skipping = version(V1, etag, skip=50)  # says "bytes 700-1980/1981" but starts at byte 750
    server.scripts["/d.csv"] = [version(V1, etag, cut=700), skipping, version(V1, etag)]
    fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST)
    assert lake.read_bytes(RAW + "d.csv") == V1


# --------------------------------------------------------------------------- an error beside records


@pytest.mark.parametrize(
    "beside",
    [
        {"errors": [{"code": "PARTIAL", "message": "shard 3 unavailable"}]},
        {"error": {"message": "shard 3 unavailable"}},
    ],
    ids=["errors", "error"],
)
@pytest.mark.parametrize("page", [1, 2])
def test_a_page_with_records_and_an_error_fails_the_run(server, lake, beside, page):
    def offset(h, q):
        start = int(q["offset"])
        body = {"items": ROWS[start : start + 10]}
        h.json(body | beside if start // 10 + 1 == page else body)

    server.routes["/offset"] = offset
    with pytest.raises(FetchError) as caught:
        fetch_api([offset_endpoint(server)], lake, RAW, policy=FAST)
    message = str(caught.value)
    assert f"page {page} answered with an error" in message and "shard 3 unavailable" in message
    assert "api_endpoints[0]" in message and not lake.exists(RAW + "endpoint_0.jsonl")


def test_records_beside_an_empty_error_or_a_success_message_are_kept(server, lake):
    answers = iter([{"status": "ok", "message": "success", "errors": [], "error": None, "items": ROWS[:3]}])
    server.routes["/offset"] = lambda h, q: h.json(next(answers, {"items": []}))
    fetch_api([offset_endpoint(server)], lake, RAW, policy=FAST)
    assert lines(lake) == ROWS[:3]
    # An API whose records are its list of errors is read as such.
    server.routes["/e"] = lambda h, q: h.json({"errors": [{"id": 1}]})
    fetch_api([ApiEndpoint(url=server.url("/e"), records="errors")], lake, RAW, policy=FAST)
    assert lines(lake) == [{"id": 1}]


@pytest.mark.parametrize("kind", ["offset", "page"])
def test_a_null_list_in_the_middle_of_page_or_offset_paging_is_not_the_end(server, lake, kind):
    def answer(h, start: int) -> None:  # the second page answers null where its records belong
        h.json({"items": None if start == 10 else ROWS[start : start + 10], "meta": {"total": len(ROWS)}})

    server.routes["/offset"] = lambda h, q: answer(h, int(q["offset"]))
    server.routes["/page"] = lambda h, q: answer(h, (int(q["page"]) - 1) * 10)
    paging = Paging(kind=kind, param=kind, size_param="limit", size=10)
    with pytest.raises(FetchError) as caught:
        fetch_api([ApiEndpoint(url=server.url(f"/{kind}"), paging=paging, records="items")], lake, RAW, policy=FAST)
    message = str(caught.value)
    assert "null at records path 'items' on page 2" in message and "paging.total_field" in message
    assert not lake.exists(RAW + "endpoint_0.jsonl")


def test_a_null_list_after_the_declared_total_is_the_end(server, lake):
    def offset(h, q):  # full pages up to the total, then null instead of an empty list
        start = int(q["offset"])
        h.json({"items": ROWS[start : start + 5] if start < 25 else None, "meta": {"total": 25}})

    server.routes["/offset"] = offset
    fetch_api([offset_endpoint(server, size=5, total_field="meta.total")], lake, RAW, policy=FAST)
    assert lines(lake) == ROWS


# --------------------------------------------------------------------------- what a zip holds besides its data

CSV_ROWS = b"id,name\n1,a\n2,b\n"


def staged(lake: LocalLake) -> list[str]:
    return sorted(o.key.rsplit("/", 1)[-1] for o in lake.list(STAGING))


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ({"data.csv": CSV_ROWS, "more.zip": zip_of({"data2.csv": CSV_ROWS})}, "another archive ('more.zip')"),
        ({"data.csv": CSV_ROWS, "old/rows.tar.gz": b"\x1f\x8b..."}, "another archive ('old/rows.tar.gz')"),
        ({"data.csv": CSV_ROWS, "extra.json": b'[{"id": 99}]'}, "csv: 'data.csv'; json: 'extra.json'"),
        ({"data.csv": CSV_ROWS, "layout.xlsx": b"PK..."}, "holds 'layout.xlsx', which this dataset cannot read as csv"),
        ({"data.csv": CSV_ROWS, "data.dat": CSV_ROWS}, "holds 'data.dat' beside its csv files"),
    ],
    ids=["zip in zip", "tar.gz in zip", "json beside csv", "xlsx beside csv", "unknown beside csv"],
)
def test_a_zip_member_that_cannot_be_read_as_the_data_fails_the_run_naming_it(lake, members, named):
    lake.write_bytes(RAW + "export.zip", zip_of(members))
    with pytest.raises(FetchError) as caught:
        unpack_for_reading(lake, [RAW + "export.zip"], STAGING)
    message = str(caught.value)
    assert "export.zip" in message and named in message and "a dataset per file" in message
    assert staged(lake) == []


def test_documentation_in_a_zip_is_left_out_and_only_the_data_is_read(lake):
    docs = {"README.txt": b"see layout", "layout.pdf": b"%PDF-1.4", "notes.md": b"# notes", "LICENSE": b"CC-BY"}
    lake.write_bytes(RAW + "export.zip", zip_of({"data.csv": CSV_ROWS, "more.csv.gz": gzip.compress(CSV_ROWS), **docs}))
    assert unpack_for_reading(lake, [RAW + "export.zip"], STAGING) == [STAGING + "data.csv", STAGING + "more.csv.gz"]
    # The dataset's own format decides: its json files are read, a .txt beside them is documentation.
    lake.write_bytes(RAW + "j.zip", zip_of({"rows.json": b'[{"id": 1}]', "README.txt": b"about"}))
    assert unpack_for_reading(lake, [RAW + "j.zip"], STAGING, fmt="json") == [STAGING + "rows.json"]
    # .txt files and nothing else: they are the data.
    lake.write_bytes(RAW + "t.zip", zip_of({"rows.txt": CSV_ROWS}))
    assert unpack_for_reading(lake, [RAW + "t.zip"], STAGING) == [STAGING + "rows.txt"]


def test_two_zips_joined_into_one_file_are_refused(lake):
    lake.write_bytes(RAW + "two.zip", zip_of({"first.csv": CSV_ROWS}) + zip_of({"second.csv": CSV_ROWS}))
    with pytest.raises(FetchError) as caught:
        unpack_for_reading(lake, [RAW + "two.zip"], STAGING)
    assert "two.zip" in str(caught.value) and "bytes before its first member" in str(caught.value)
    assert staged(lake) == []


@pytest.mark.parametrize("kind", ["text/html; charset=utf-8", "application/xhtml+xml", "TEXT/HTML"])
def test_a_web_page_answered_instead_of_the_file_fails_the_run(server, lake, kind):
    page = b"<!DOCTYPE html><html><body><h1>We'll be back soon</h1><p>id,name</p></body></html>\n"
    server.routes["/data.csv"] = lambda h, q: h.plain(200, {"Content-Type": kind}, page)
    with pytest.raises(FetchError) as caught:
        fetch_source(server.url("/data.csv"), lake, RAW, policy=FAST)
    message = str(caught.value)
    assert server.url("/data.csv") in message and f"web page ({kind})" in message and "source_url" in message
    assert not lake.exists(RAW + "data.csv") and len(server.seen("/data.csv")) == 1


@pytest.mark.parametrize("credential", sorted(CREDENTIALS))
def test_a_key_echoed_base64_encoded_in_records_is_cut_from_raw(server, lake, credential):
    b64 = base64.b64encode(LONG_KEY.encode()).decode()
    record = {
        "id": 1,
        "token_echo": b64,
        "header": f"Bearer {b64}",
        "urlsafe": base64.urlsafe_b64encode(LONG_KEY.encode()).decode(),
        "shifted": base64.b64encode(f"user=x&key={LONG_KEY}".encode()).decode(),  # the key at another offset
        base64.b64encode(LONG_KEY.encode()).decode(): "as a key",
    }
    server.routes["/me"] = lambda h, q: h.json([record])
    fetch_api(
        [ApiEndpoint(url=server.url("/me"), auth=CREDENTIALS[credential])],
        lake,
        RAW,
        policy=FAST,
        secrets={"pp-dw/s": LONG_KEY},
    )
    written = lake.read_bytes(RAW + "endpoint_0.jsonl").decode()
    assert lines(lake)[0]["id"] == 1 and "***" in lines(lake)[0]["token_echo"]
    for leaked in (LONG_KEY, b64[4:20], base64.urlsafe_b64encode(LONG_KEY.encode()).decode()[4:20]):
        assert leaked not in written
    assert base64.b64encode(f"user=x&key={LONG_KEY}".encode()).decode()[16:32] not in written


def drip(handler, size: int, every: float) -> None:
    """Headers at once, then the body a byte at a time: each byte well within any read timeout."""
    import time

    handler.send_response(200)
    handler.send_header("Content-Length", str(size))
    handler.end_headers()
    try:
        for _ in range(size):
            handler.wfile.write(b"1")
            handler.wfile.flush()
            time.sleep(every)
    except OSError:  # the client hung up: what it should do
        pass
    handler.close_connection = True


@pytest.mark.parametrize("kind", ["download", "api"])
def test_the_time_budget_holds_while_a_body_drips_in(server, lake, kind):
    import time

    server.routes["/slow"] = lambda h, q: drip(h, size=400, every=0.02)  # 8 s in all, a byte every 20 ms
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, timeout=5.0, max_total_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        if kind == "download":
            fetch_source(server.url("/slow"), lake, RAW, policy=policy)
        else:
            fetch_api([ApiEndpoint(url=server.url("/slow"))], lake, RAW, policy=policy)
    took = time.monotonic() - started
    assert "max_total_seconds = 1" in str(caught.value) and server.url("/slow") in str(caught.value)
    assert "with 1 attempt at this request" in str(caught.value)  # the one under way, not "0 attempts"
    assert took < 3.0, f"{took:.1f} s"


# --------------------------------------------------------------------------- odd framing and headers


@pytest.mark.parametrize("value", ["-3", "nan", "1.5", "soon"])
def test_a_retry_after_that_is_not_a_number_of_seconds_falls_back_to_backoff(server, lake, value):
    import time

    server.files["/d.csv"] = V1
    server.scripts["/d.csv"] = [status(429, {"Retry-After": value})]
    policy = RetryPolicy(attempts=3, base_delay=0.3, max_delay=0.6, timeout=5.0, max_total_seconds=30.0)
    started = time.monotonic()
    fetch_source(server.url("/d.csv"), lake, RAW, policy=policy)
    assert time.monotonic() - started >= 0.3  # the backoff's least wait, not an immediate retry
    assert lake.read_bytes(RAW + "d.csv") == V1 and len(server.seen("/d.csv")) == 2


def test_a_chunked_body_that_also_announces_a_content_length_is_read_by_its_chunks(server, lake):
    def both(h) -> None:  # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length
        h.wfile.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
        )
        h.wfile.write(f"{len(V1):x}\r\n".encode() + V1 + b"\r\n0\r\n\r\n")
        h.close_connection = True

    server.scripts["/d.csv"] = [both]
    fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST)
    assert lake.read_bytes(RAW + "d.csv") == V1 and len(server.seen("/d.csv")) == 1


def test_a_download_gzipped_on_the_way_is_stored_as_sent_and_read_through_gzip(server, lake):
    packed = gzip.compress(V1)
    server.routes["/d.csv"] = lambda h, q: h.plain(
        200, {"Content-Encoding": "gzip", "Content-Type": "text/csv"}, packed
    )
    result = fetch_source(server.url("/d.csv"), lake, RAW, policy=FAST)
    assert result.keys == [RAW + "d.csv.gz"] and lake.read_bytes(RAW + "d.csv.gz") == packed
    assert not lake.exists(RAW + "d.csv")
    assert unpack_for_reading(lake, result.keys, STAGING) == [RAW + "d.csv.gz"]  # checked, Spark decompresses it

    server.routes["/e.csv"] = lambda h, q: h.plain(200, {"Content-Encoding": "br"}, b"\x8b\x02\x80junk")
    with pytest.raises(FetchError) as caught:
        fetch_source(server.url("/e.csv"), lake, RAW, policy=FAST)
    assert "encoded as 'br'" in str(caught.value) and server.url("/e.csv") in str(caught.value)
    assert not lake.exists(RAW + "e.csv")
