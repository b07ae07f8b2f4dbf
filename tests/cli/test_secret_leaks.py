"""A secret's value in no output of `dw`, whatever odd way a server sends it back.

Each test runs the installed `dw` (its own `main`) in a subprocess, in a throwaway project whose dataset fetches
from loopback servers, with Python's logging at DEBUG on stderr (as a user's or Glue's logging setup may have
it), then looks for the secret in every form (raw, URL-encoded, base64, as JSON or Python write it inside a
string) in what `dw` printed, the log records, the run ledger entry, the `ops/runs` row and every other lake
file. `--layer raw` runs fetch only: no Spark.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, unquote_plus

import pytest

from tests.leaks import DATASET, ENV, SECRET_NAME, assert_nowhere, dw, outputs, project
from tests.loopback import Handler, LoopbackServer, redirect


def entry_of(lake: Path) -> dict:
    """The ledger entry of the first run."""
    first = sorted((lake / "runs" / DATASET).glob("run_id=*.raw.json"))[0]
    return json.loads(first.read_text())


BEARER = {"header": "Authorization", "scheme": "Bearer"}


@contextmanager
def serving() -> Iterator[LoopbackServer]:
    """A loopback server, stopped however the test ends."""
    server = LoopbackServer()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Fetch:
    """A throwaway project whose dataset fetches from `server`, the lake its runs write to, and the environment
    that hands the runs their secret."""

    server: LoopbackServer
    root: Path
    lake: Path
    env: dict[str, str]

    def run(self, *options: str, debug: bool = False, layer: str = "raw", **env: str) -> subprocess.CompletedProcess:
        """`dw run` of the dataset into the lake, with the secret; `options` follow the command's own."""
        flags = ("--debug",) if debug else ()
        lake = str(self.lake)
        return dw(self.root, *flags, "run", DATASET, "--layer", layer, "--lake", lake, *options, **self.env, **env)

    def command(self, *args: str) -> subprocess.CompletedProcess:
        """Another `dw` command on the lake, without the secret in its environment: one that does not need it."""
        return dw(self.root, *args, "--lake", str(self.lake))


@contextmanager
def fetching(
    tmp_path: Path,
    path: str,
    auth: dict | None,
    route: Callable[[Handler, dict[str, str]], None] | None = None,
    *,
    secret: str | None = None,
    download: bool = False,
    paging: str = "none",
) -> Iterator[Fetch]:
    """A project fetching `path` from a fresh loopback server (answering with `route` if given), as an API
    endpoint whose records are `items` or, with `download`, as a CSV file; `auth` names SECRET_NAME, whose value
    `secret` reaches the runs through the environment. The server stops when the block ends."""
    with serving() as server:
        if route is not None:
            server.routes[path] = route
        source: dict
        if download:
            source = {"source_url": server.url(path), "format": "csv"}
        else:
            source = {"url": server.url(path), "paging": {"kind": paging}, "records": "items"}
        if auth is not None:
            source["source_auth" if download else "auth"] = {"secret": SECRET_NAME, **auth}
        root = project(tmp_path, source if download else {"api_endpoints": [source]})
        yield Fetch(server, root, tmp_path / "lake", {} if secret is None else {ENV: secret})


# ------------------------------------------------------------------ an error object that quotes the key


# A token with a quote and a backslash, which JSON escapes ("\"", "\\") when the error object is quoted.
ESCAPED = 'tk"Quote\\Back-5a6b7c8d/e9'


def test_a_key_echoed_in_an_api_error_object_is_cut_even_where_json_escapes_it(tmp_path):
    """The API answers HTTP 200 with an error object that quotes the token it was sent; the run fails quoting
    that object. JSON writes the token's quote and backslash escaped, a form the scrubber did not know: the
    message kept the token (`"you_sent": "tk\\"Quote\\\\Back-…"`), in stderr, the ledger's error and the ops row."""

    def route(handler, query):
        sent = handler.headers.get("Authorization", "").partition(" ")[2]
        handler.json({"error": {"message": "key not valid", "you_sent": sent, "as_list": [sent]}})

    with fetching(tmp_path, "/v1/items", BEARER, route) as fetch:
        (fetch.root / ".secrets.json").write_text(json.dumps({SECRET_NAME: ESCAPED}))
        run = fetch.run("--run-id", "20260101T000000Z")
        debug = fetch.run("--run-id", "20260102T000000Z", debug=True)
        runs = fetch.command("runs", DATASET)
        listing = fetch.command("list")
        plan = fetch.command("run", DATASET, "--dry-run")

    assert run.returncode == 1 and debug.returncode == 1, run.stderr
    assert "answered with an error instead of records" in run.stderr
    assert "LOG urllib3" in run.stderr, "the log records were captured"
    assert any(r.headers.get("Authorization") == f"Bearer {ESCAPED}" for r in fetch.server.requests)
    assert listing.returncode == 0 and plan.returncode == 0, listing.stderr + plan.stderr
    assert_nowhere(ESCAPED, outputs(fetch.lake, run, debug, runs, listing, plan), "Back-5a6b7c8d", 'tk\\"Quote')
    assert '"you_sent": "***", "as_list": ["***"]' in entry_of(fetch.lake)["error"]


# ------------------------------------------------------------------ a presigned hand-off


SIGNATURE = "c0ffee5194a7e0d2b8f61c9d3a4e5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
TOKEN = "tok-Secret-9f8e7d6c5b"


def broken_headers(handler) -> None:
    """A 403 whose header block has a line without a colon: urllib3 warns, quoting the URL it requested."""
    handler.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nBroken header line\r\nX: y\r\n\r\nnope")


def test_a_presigned_url_a_source_redirects_to_keeps_its_signature_out_of_every_log(tmp_path):
    """The source (with source_auth) hands the download off to storage on another host through a presigned URL,
    which refuses it. The signature and the access key in that URL were known to nothing, so urllib3's log
    records of the request (DEBUG: `"GET /obj.csv?X-Amz-Credential=…&X-Amz-Signature=… HTTP/1.1" 403`; WARNING:
    `Failed to parse headers (url=…?X-Amz-Signature=…)`) kept them."""
    query = (
        f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ACCESS_KEY}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature={SIGNATURE}"
    )
    with serving() as storage, fetching(tmp_path, "/export.csv", BEARER, secret=TOKEN, download=True) as fetch:
        storage.scripts["/bucket/obj.csv"] = [broken_headers] * 10
        fetch.server.scripts["/export.csv"] = [redirect(storage.url(f"/bucket/obj.csv?{query}"))] * 10
        run = fetch.run(debug=True)

    assert run.returncode == 1
    assert "HTTP 403" in entry_of(fetch.lake)["error"]
    assert "Failed to parse headers" in run.stderr and "GET /bucket/obj.csv?" in run.stderr, "urllib3's records"
    assert storage.seen("/bucket/obj.csv"), "the hand-off was followed"
    assert "Authorization" not in storage.seen("/bucket/obj.csv")[0].headers
    seen = outputs(fetch.lake, run)
    for secret in (SIGNATURE, ACCESS_KEY, TOKEN):
        assert_nowhere(secret, seen)


# ------------------------------------------------------------------ a login redirect carrying the whole URL


PLUS_SLASH_KEY = "qk-7d1e+a/9F3c2b8e4"  # '+' and '/' change when URL-encoded, and again when encoded twice


def test_a_login_redirect_that_carries_the_request_url_encoded_takes_no_key_to_the_other_host(tmp_path):
    """A wrong key: the API redirects to its login host with `return_to=` the whole request URL, encoded once
    more, so the key in it is encoded twice (`qk-7d1e%252Ba%252F9F…`). The check that drops a parameter holding
    the key decoded it once only: the key went to the login host."""
    auth = {"query_param": "api_key"}
    with serving() as login, fetching(tmp_path, "/v1/items", auth, secret=PLUS_SLASH_KEY) as fetch:
        api = fetch.server

        def items(handler, query):
            handler.plain(302, {"Location": login.url("/login?return_to=" + quote(api.url(handler.path), safe=""))})

        api.routes["/v1/items"] = items
        login.routes["/login"] = lambda handler, query: handler.plain(401, body=b'{"error": "log in first"}')
        run = fetch.run()

    assert run.returncode == 1 and "HTTP 401" in run.stderr
    assert login.requests, "the redirect was followed"
    for request in login.requests:
        text, decoded = request.path, {request.path}
        for _ in range(4):
            text = unquote_plus(unquote(text))
            decoded.add(text)
        assert not any(PLUS_SLASH_KEY in form for form in decoded), f"the key went to another host: {request.path}"
    assert_nowhere(PLUS_SLASH_KEY, outputs(fetch.lake, run))


# ------------------------------------------------------------------ a transform hook that quotes the key


HOOK_KEY = "hook-Secret-4b3c2d1e0f"
ENRICHING_HOOK = f'''"""Enriches each row from another service with the dataset's own key, and fails saying which key."""
import os

from pyspark.sql import functions as F
from pyspark.sql.types import StringType


def _enrich(name):
    raise ValueError("the enrichment service refused key " + os.environ["{ENV}"])


def transform(df):
    return df.withColumn("extra", F.udf(_enrich, StringType())(F.col("name")))
'''


@pytest.mark.spark
def test_a_hook_whose_udf_quotes_the_key_leaves_it_in_no_log_record(tmp_path):
    """The hook's Python UDF fails on Spark's worker with the key in its message. The run's error and traceback
    were scrubbed, but py4j's DEBUG record of the Java answer (`Answer received: !ysorg.apache.spark.
    SparkException: … ValueError: the enrichment service refused key …`) quoted the worker's traceback whole:
    only the loggers of a fetch in progress were scrubbed."""

    def route(handler, query):
        if handler.headers.get("Authorization") != f"Bearer {HOOK_KEY}":
            handler.plain(401)
            return
        handler.json({"items": [{"id": n, "name": f"firm {n}"} for n in range(5)]})

    with fetching(tmp_path, "/v1/items", BEARER, route, secret=HOOK_KEY) as fetch:
        (fetch.root / "datasets" / DATASET / "transform.py").write_text(ENRICHING_HOOK)
        run = fetch.run(debug=True, layer="bronze", SPARK_LOCAL_IP="127.0.0.1")

    assert run.returncode == 1, run.stderr
    assert "failed as Spark ran it: ValueError: the enrichment service refused key ***" in run.stdout
    assert "LOG py4j" in run.stderr, "py4j's records were captured"
    assert_nowhere(HOOK_KEY, outputs(fetch.lake, run))


# ------------------------------------------------------------------ a compressed download that echoes the key


DOWNLOAD_KEY = "dl-Token-0a9b8c7d6e5f"


def _zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", b"an export\n")
        archive.writestr(name, data)
    return buffer.getvalue()


def _decompressed(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".bz2"):
        return bz2.decompress(data)
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return b"\n".join(archive.read(info) for info in archive.infolist())
    return data


@pytest.mark.parametrize(
    ("path", "how"),
    [
        ("/export/data.csv", "gzip on the way"),
        ("/export/data.csv.gz", "gzip file"),
        ("/export/data.csv.bz2", "bzip2 file"),
        ("/export/data.zip", "zip"),
    ],
)
def test_a_compressed_download_that_echoes_its_credential_never_reaches_raw(tmp_path, path, how):
    """The server writes the key it was sent into the CSV's rows, then compresses the answer: on the way
    (Content-Encoding: gzip, stored as sent under data.csv.gz) or as the file itself. The check for an echoed
    credential searched the bytes as stored, compressed: the key reached raw/ (and bronze would have read it)."""

    def route(handler, query):
        sent = handler.headers.get("Authorization", "").partition(" ")[2]
        csv = f"id,requested_by\n1,{sent}\n2,someone\n".encode()
        headers = {"Content-Type": "application/octet-stream"}
        if how == "gzip on the way":
            body, headers = gzip.compress(csv), {"Content-Type": "text/csv", "Content-Encoding": "gzip"}
        elif how == "gzip file":
            body = gzip.compress(csv)
        elif how == "bzip2 file":
            body = bz2.compress(csv)
        else:
            body = _zipped("data.csv", csv)
        handler.plain(200, headers, body)

    with fetching(tmp_path, path, BEARER, route, secret=DOWNLOAD_KEY, download=True) as fetch:
        run = fetch.run()

    lake = fetch.lake
    kept = [p for p in lake.rglob("*") if p.is_file()]
    seen = outputs(lake, run)
    seen |= {f"{p.relative_to(lake)} (decompressed)": _decompressed(p).decode("utf-8", "replace") for p in kept}
    assert_nowhere(DOWNLOAD_KEY, seen)
    assert run.returncode == 1
    assert "holds the credential it was fetched with" in entry_of(lake)["error"]
    assert not [p for p in kept if "/raw/" in p.as_posix() and p.name != "_manifest.json"], "nothing reached raw/"


def test_a_public_api_s_presigned_next_page_keeps_its_signature_out_of_every_log(tmp_path):
    """An API without auth links its next page to storage on another host through a presigned URL, which
    answers with a broken header block: urllib3's records quoted the URL whole, signature and access key."""
    query = f"X-Amz-Credential={ACCESS_KEY}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature={SIGNATURE}"
    with serving() as storage, fetching(tmp_path, "/v1/items", None, paging="link") as fetch:
        fetch.server.routes["/v1/items"] = lambda handler, _: handler.json(
            {"items": [{"id": 1}], "next": storage.url(f"/bucket/page2.json?{query}")}
        )
        storage.scripts["/bucket/page2.json"] = [broken_headers] * 10
        run = fetch.run()

    assert run.returncode == 1 and "HTTP 403" in entry_of(fetch.lake)["error"]
    assert "Failed to parse headers" in run.stderr and "GET /bucket/page2.json?" in run.stderr, "urllib3's records"
    seen = outputs(fetch.lake, run)
    for secret in (SIGNATURE, ACCESS_KEY):
        assert_nowhere(secret, seen)


AMPERSAND_KEY = "pw&Amp<Lt>Gt'Apos-31415926"


def test_a_download_that_echoes_its_credential_xml_escaped_never_reaches_raw(tmp_path):
    """The server answers HTTP 200 with an XML error quoting the key it was sent, escaped as XML escapes it
    (`&amp;`, `&lt;`, `&apos;`): a form the check for an echoed credential did not know, so the error document
    was kept in raw/ as the data."""

    def route(handler, query):
        sent = handler.headers.get("X-Api-Key", "")
        escaped = sent.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")
        body = f"<?xml version='1.0'?><Error><Code>InvalidKey</Code><Key>{escaped}</Key></Error>\n".encode()
        handler.plain(200, {"Content-Type": "application/xml"}, body)

    auth = {"header": "X-Api-Key"}
    with fetching(tmp_path, "/export/data.csv", auth, route, secret=AMPERSAND_KEY, download=True) as fetch:
        run = fetch.run()

    escaped = "pw&amp;Amp&lt;Lt&gt;Gt&apos;Apos-31415926"
    assert_nowhere(AMPERSAND_KEY, outputs(fetch.lake, run), escaped, "Apos-31415926")
    assert run.returncode == 1
    assert "holds the credential it was fetched with" in entry_of(fetch.lake)["error"]


def _encode_uri_component(text: str) -> str:
    """JavaScript's encodeURIComponent: everything but letters, digits and -_.!~*'() percent-encoded."""
    return quote(text, safe="!~*'()")


SPACED_KEY = "k3y with space!*'(x)-27182818"


def test_a_key_the_api_quotes_url_encoded_as_javascript_does_is_cut(tmp_path):
    """A Node API answers HTTP 200 with an error object quoting the request URL as it was sent back through
    encodeURIComponent: the key's space as %20 (Python's urlencode sent +) and !*'() left as they are (Python
    escapes them), a spelling the scrubber did not know. The run's error quoted it: `api_key=k3y%20with%20***`
    (only the key's longest word was cut, as a part of a value that holds a space)."""

    def route(handler, query):
        key = query.get("api_key", "")
        handler.json({"error": {"message": "invalid key", "url": "/v1/items?api_key=" + _encode_uri_component(key)}})

    with fetching(tmp_path, "/v1/items", {"query_param": "api_key"}, route, secret=SPACED_KEY) as fetch:
        run = fetch.run()

    lake = fetch.lake
    assert_nowhere(SPACED_KEY, outputs(lake, run), _encode_uri_component(SPACED_KEY), "k3y%20with", "(x)-27182818")
    assert run.returncode == 1 and '"url": "/v1/items?api_key=***"' in entry_of(lake)["error"]


@pytest.mark.parametrize(
    ("secret", "auth"),
    [
        ("ab:cd", {"scheme": "Basic"}),  # Basic auth of a 2-character user and password
        ("x9z", {"header": "Authorization", "scheme": "Bearer"}),  # a 3-character token
    ],
)
def test_a_very_short_secret_echoed_base64_encoded_is_cut(tmp_path, secret, auth):
    """The API quotes what it received base64-encoded, without padding, in its error object. A secret this
    short was cut as written (`ab:cd`) but not as base64 (`YWI6Y2Q`, `eDl6`): base64 was only matched by
    its inner 8 or more characters, which such a value does not have."""

    def route(handler, query):
        sent = handler.headers.get("Authorization", "").partition(" ")[2]
        decoded = base64.b64decode(sent).decode() if "Basic" in auth.values() else sent
        echoed = base64.b64encode(decoded.encode()).decode().rstrip("=")
        handler.json({"error": {"message": "denied", "caller": echoed}})

    with fetching(tmp_path, "/v1/items", auth, route, secret=secret) as fetch:
        run = fetch.run()

    encoded = base64.b64encode(secret.encode()).decode().rstrip("=")
    assert_nowhere(secret, outputs(fetch.lake, run), encoded)
    assert run.returncode == 1 and '"caller": "***"' in entry_of(fetch.lake)["error"]


def test_a_damaged_compressed_download_is_searched_as_far_as_it_decompresses_and_kept(tmp_path):
    """The decompressed search stops where a damaged gzip does: the file lands in raw/ as fetched, for bronze
    to name its damage, rather than the fetch failing on it."""
    body = gzip.compress(b"id,name\n" + b"1,someone\n" * 5000)[:-40]  # the end cut off
    with fetching(tmp_path, "/export/data.csv.gz", BEARER, secret=DOWNLOAD_KEY, download=True) as fetch:
        fetch.server.routes["/export/data.csv.gz"] = lambda handler, _: handler.plain(200, {}, body)
        run = fetch.run()

    assert run.returncode == 0, run.stderr
    (kept,) = (fetch.lake / "raw" / DATASET).glob("run_id=*/data.csv.gz")
    assert kept.read_bytes() == body


PRE_ENCODED_USER, PRE_ENCODED_PASSWORD = "svc-reporting", "pw-9a8b7c6d5e"


def test_a_basic_secret_stored_already_encoded_is_cut_as_the_server_reads_it(tmp_path):
    """A Basic secret stored as the header holds it, base64-encoded (copied from a working request), is sent
    as it is; the server reads user:password out of it and quotes them in its error object. Only the encoded
    text was known to the scrubber, so the password and the user name were printed and kept in the ledger."""
    stored = base64.b64encode(f"{PRE_ENCODED_USER}:{PRE_ENCODED_PASSWORD}".encode()).decode()

    def route(handler, query):
        user, _, password = base64.b64decode(handler.headers["Authorization"].partition(" ")[2]).decode().partition(":")
        handler.json({"error": {"message": f"password {password} is wrong for {user}"}})

    with fetching(tmp_path, "/v1/items", {"scheme": "Basic"}, route, secret=stored) as fetch:
        run = fetch.run()

    assert fetch.server.requests[0].headers["Authorization"] == f"Basic {stored}", "sent as stored"
    assert_nowhere(stored, outputs(fetch.lake, run), PRE_ENCODED_PASSWORD, PRE_ENCODED_USER)
    assert run.returncode == 1 and "password *** is wrong for ***" in entry_of(fetch.lake)["error"]


COOKIE = "sessionid=9c8b7a6f5e4d3c2b; csrftoken=Zx81Yw72Vu63"


def test_a_cookie_secret_is_cut_value_by_value(tmp_path):
    """A session cookie sent as the secret (`"header": "Cookie"`): the server quotes one of its values alone in
    its error object. Only the whole cookie was known to the scrubber: the session id was printed."""

    def route(handler, query):
        cookies = dict(pair.split("=", 1) for pair in handler.headers.get("Cookie", "").split("; "))
        handler.json({"error": {"message": f"session {cookies.get('sessionid')} expired"}})

    with fetching(tmp_path, "/v1/items", {"header": "Cookie"}, route, secret=COOKIE) as fetch:
        run = fetch.run()

    assert_nowhere(COOKIE, outputs(fetch.lake, run), "9c8b7a6f5e4d3c2b", "Zx81Yw72Vu63")
    assert run.returncode == 1 and "session *** expired" in entry_of(fetch.lake)["error"]


def test_a_short_numeric_key_is_cut_where_it_stands_alone_not_out_of_run_ids_and_data(tmp_path):
    """A 3-digit key (`202`) sent as a query parameter; the API echoes it alone in its records, beside dates and
    numbers that hold the same digits. Every occurrence was cut, inside words and numbers too: the run id became
    `***60101T000000Z`, which failed the run and left its ledger entry unreadable (`dw runs`), and `***` in
    place of part of a known run id or date gives the key away as surely as printing it."""

    def route(handler, query):
        key = query.get("k", "")
        handler.json(
            {"items": [{"id": 1, "reported": "2026-02-02", "zip": "20202", "caller": key, "note": f"key={key}"}]}
        )

    with fetching(tmp_path, "/v1/items", {"query_param": "k"}, route, secret="202") as fetch:
        run = fetch.run("--run-id", "20260101T000000Z")
        runs = fetch.command("runs", DATASET)

    lake = fetch.lake
    assert run.returncode == 0, run.stderr
    entry = entry_of(lake)
    assert entry["run_id"] == "20260101T000000Z" and entry["status"] == "succeeded"
    assert "unreadable" not in runs.stdout and "20260101T000000Z" in runs.stdout
    (page,) = (lake / "raw" / DATASET).glob("run_id=*/endpoint_0.jsonl")
    record = json.loads(page.read_text())
    assert record == {"id": 1, "reported": "2026-02-02", "zip": "20202", "caller": "***", "note": "key=***"}
    for where, text in outputs(lake, run, runs).items():
        assert "***6" not in text and "***0" not in text, f"a run id or a date cut in {where}"


TRUNCATED_KEY = "sk-live-51HqLyjWDarjtT1zdp7dcXYZ"


def test_a_key_the_api_quotes_cut_short_is_cut_too(tmp_path):
    """The API quotes the start of the key it was sent, cut short (`Invalid API key: sk-live-51HqLyjWDa…`), in
    its error object and its reason phrase. Only whole forms were cut: the first 18 characters were printed
    and kept in the ledger."""

    def route(handler, query):
        head = handler.headers.get("Authorization", "").partition(" ")[2][:18]
        body = json.dumps({"error": {"message": f"Invalid API key: {head}…"}}).encode()
        handler.send_response(200, f"OK for {head}...")
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with fetching(tmp_path, "/v1/items", BEARER, route, secret=TRUNCATED_KEY) as fetch:
        run = fetch.run(debug=True)

    assert_nowhere(TRUNCATED_KEY, outputs(fetch.lake, run), TRUNCATED_KEY[:12], TRUNCATED_KEY[8:18])
    assert run.returncode == 1 and "Invalid API key: ***…" in entry_of(fetch.lake)["error"]
