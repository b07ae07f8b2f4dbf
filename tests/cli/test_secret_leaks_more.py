"""More ways a secret could leave `dw`: a credential of a few characters, and a token in a URL's path.

As tests/cli/test_secret_leaks.py: the installed `dw` in a subprocess, in a throwaway project fetching from loopback
servers, Python's logging at DEBUG on stderr; then every form of the secret (tests/leaks.py) is looked for in what
`dw` printed, the log records, the run ledger, the `ops/runs` row and every other lake file. `--layer raw` only.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.leaks import DATASET, ENV, SECRET_NAME, api_config, assert_nowhere, dw, forms, outputs, project
from tests.loopback import LoopbackServer, redirect

RUN_ID = "20260101T000000Z"


def run_raw(root: Path, lake: Path, *options: str, **env: str) -> subprocess.CompletedProcess:
    """`dw [options] run` of the dataset's raw layer, with the run id RUN_ID."""
    return dw(root, *options, "run", DATASET, "--layer", "raw", "--lake", str(lake), "--run-id", RUN_ID, **env)


def assert_no_token(secret: str, seen: dict[str, str]) -> None:
    """A short secret in no output where it stands as a word of its own (it may be part of `leaky-api`)."""
    for form in forms(secret):
        alone = re.compile(r"(?<![\w./-])" + re.escape(form) + r"(?![\w./-])")
        for where, text in seen.items():
            found = alone.search(text)
            assert found is None, (
                f"{form!r} leaked into {where}: {text[max(found.start() - 60, 0) : found.end() + 40]!r}"
            )


def entry_of(lake: Path) -> dict:
    return json.loads((lake / "runs" / DATASET / f"run_id={RUN_ID}.raw.json").read_text())


def raw_files(lake: Path) -> list[Path]:
    return [p for p in (lake / "raw").rglob("*") if p.is_file() and p.name != "_manifest.json"]


# ------------------------------------------------------------------ a credential of a few characters


def _echoing_download(handler, query) -> None:
    """A CSV export that writes the key it was sent into a row, as a token: quoted, after key=, alone in a cell."""
    sent = handler.headers.get("X-Api-Key", "")
    how = query.get("how", "cell")
    row = {
        "cell": f"2,{sent},ok",
        "quoted": f'2,"{sent}",ok',
        "key=": f"2,key={sent},ok",
        "header": f"2,X-Api-Key: {sent},ok",
        "filename": f"2,https://api.example/keys/{sent}.json,ok",
    }
    body = f"id,requested_by,note\n1,someone,ok\n{row[how]}\n".encode()
    handler.plain(200, {"Content-Type": "text/csv"}, body)


@pytest.mark.parametrize(
    ("secret", "how"),
    [("Zq7", "cell"), ("Zq7wX", "quoted"), ("Zq7wXj", "key="), ("Zq7wXj4", "header"), ("Zq7wX", "filename")],
)
def test_a_download_that_echoes_a_short_credential_never_reaches_raw(tmp_path, secret, how):
    """A source_auth key of 3 to 7 characters, which the server writes back into the CSV it sends. The check
    for an echoed credential skipped every value shorter than 8 characters: the file was kept in raw/ with the
    key in it (and bronze would have read it into a table)."""
    server = LoopbackServer()
    try:
        server.routes["/export/data.csv"] = _echoing_download
        config = {
            "source_url": server.url(f"/export/data.csv?how={how}"),
            "format": "csv",
            "source_auth": {"secret": SECRET_NAME, "header": "X-Api-Key"},
        }
        root = project(tmp_path, config)
        lake = tmp_path / "lake"

        run = run_raw(root, lake, **{ENV: secret})
    finally:
        server.stop()

    assert server.requests[0].headers.get("X-Api-Key") == secret
    assert_nowhere(secret, outputs(lake, run))
    assert run.returncode == 1
    assert "holds the credential it was fetched with" in entry_of(lake)["error"]
    assert not raw_files(lake), "nothing reached raw/"


def test_a_short_credential_inside_longer_values_of_a_download_does_not_refuse_it(tmp_path):
    """The same key as part of words, numbers, dates and names of the data (`Zq7-2026`, `aZq7`, `Zq7.5`) is no
    echo: the download is kept as sent. A key that stands alone in a cell is one, and refused (before, neither)."""
    data = b"id,code,note\n1,Zq7-2026,aZq7\n2,Zq7.5,x_Zq7\n3,2026-01-01,Zq7wXj/x\n"
    server = LoopbackServer()
    try:
        server.routes["/export/data.csv"] = lambda handler, _: handler.plain(200, {"Content-Type": "text/csv"}, data)
        server.routes["/export/echo.csv"] = _echoing_download
        auth = {"secret": SECRET_NAME, "header": "X-Api-Key"}
        kept_root = project(
            tmp_path / "kept", {"source_url": server.url("/export/data.csv"), "format": "csv", "source_auth": auth}
        )
        echo_root = project(
            tmp_path / "echo", {"source_url": server.url("/export/echo.csv"), "format": "csv", "source_auth": auth}
        )

        kept = run_raw(kept_root, tmp_path / "kept-lake", **{ENV: "Zq7"})
        echoed = run_raw(echo_root, tmp_path / "echo-lake", **{ENV: "Zq7"})
    finally:
        server.stop()

    assert kept.returncode == 0, kept.stderr
    (stored,) = raw_files(tmp_path / "kept-lake")
    assert stored.read_bytes() == data
    assert echoed.returncode == 1 and not raw_files(tmp_path / "echo-lake")


@pytest.mark.parametrize("secret", ["api", "raw", "status"])
def test_a_short_key_that_is_also_a_word_of_the_run_leaves_the_ledger_whole(tmp_path, secret):
    """A short key (`api`, `raw`, `status`) that is also a word the run writes itself. It was cut
    wherever no letter or digit touched it: out of the dataset's name in the raw keys (`raw/leaky-***/…`), the
    source URL (`/v1/***`), the ledger's own field names (`"***": "succeeded"`, `"***_keys"`), so the entry lost
    its fields and the key was plain to anyone who knows the layout. It is cut where it stands as a token (quoted,
    after key=), and nowhere else."""
    server = LoopbackServer()
    try:

        def route(handler, query):
            key = query.get("k", "")
            handler.json({"items": [{"id": 1, "caller": key, "note": f"key={key}", "path": "raw/leaky-api/v1/items"}]})

        server.routes["/v1/items"] = route
        root = project(tmp_path, api_config(server.url("/v1/items"), {"query_param": "k"}))
        lake = tmp_path / "lake"

        run = run_raw(root, lake, **{ENV: secret})
        runs = dw(root, "runs", DATASET, "--lake", str(lake))
    finally:
        server.stop()

    assert run.returncode == 0, run.stderr
    entry = entry_of(lake)
    assert {"run_id", "status", "raw_keys", "raw_run_id", "source", "bytes_fetched"} <= set(entry)
    assert entry["status"] == "succeeded" and entry["source"] == server.url("/v1/items")
    assert entry["raw_keys"] == [f"raw/{DATASET}/run_id={RUN_ID}/endpoint_0.jsonl"]
    assert RUN_ID in runs.stdout and "unreadable" not in runs.stdout
    (page,) = raw_files(lake)
    assert json.loads(page.read_text()) == {
        "id": 1,
        "caller": "***",
        "note": "key=***",
        "path": "raw/leaky-api/v1/items",
    }
    seen = outputs(lake, run, runs)
    for where, text in seen.items():
        assert not re.search(r"[\w.-]\*\*\*|\*\*\*[\w.-]", text), f"a name cut in {where}"
        for echoed in (f"k={secret}", f"key={secret}"):  # the word alone, quoted too, is the run's own as well
            assert echoed not in text, f"{echoed!r} leaked into {where}"
    assert "k=***" in run.stderr, "urllib3's record of the request"


@pytest.mark.parametrize("secret", ["7", "k7"])
def test_a_credential_of_one_or_two_characters_is_refused_before_anything_is_sent(tmp_path, secret):
    """A key of one or two characters stands as a word of its own in ordinary text (`1 records in 1 pages`,
    `127.0.0.***`, `HTTP/***.***` were what a key `1` made of the log), so it can be cut out of nothing without
    giving it away. It was sent and the run went on; it is refused when the secret is read, naming its length."""
    server = LoopbackServer()
    try:
        server.routes["/v1/items"] = lambda handler, query: handler.json({"items": [{"id": 1, "n": 7}]})
        root = project(tmp_path, api_config(server.url("/v1/items"), {"header": "Authorization", "scheme": "Bearer"}))
        lake = tmp_path / "lake"

        run = run_raw(root, lake, **{ENV: secret})
    finally:
        server.stop()

    assert run.returncode != 0
    assert "too short to be kept out of logs safely" in run.stdout + run.stderr
    assert f"{len(secret)} character" in run.stdout + run.stderr
    assert not server.requests, "nothing was sent"
    assert_no_token(secret, outputs(lake, run))


def test_a_one_letter_credential_is_refused_before_the_scrubber_knows_it(tmp_path):
    """Registered for scrubbing before it was refused, a key `a` cut the refusal's own words ("where *** credential
    of fewer than 3 stands as *** word") and every later line of the process."""
    config = api_config("http://127.0.0.1:9/v1/items", {"header": "X-Api-Key"})
    run = run_raw(project(tmp_path, config), tmp_path / "lake", **{ENV: "a"})

    assert run.returncode == 1
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "too short to be kept out of logs safely: 1 character" in error and "***" not in error, error


def test_a_short_credential_echoed_across_two_chunks_of_a_large_download_is_found(tmp_path):
    """The download is searched 1 MiB at a time: a short key that straddles two chunks as a token is an echo, one
    that straddles them inside a word (`aZq7wXb`) is not. Before, no short key was searched for at all."""
    boundary = 1 << 20
    # The key starts 3 bytes before the boundary: alone between commas, then inside a word.
    echo = b"id,note\n" + b"x" * (boundary - 8 - 1 - 3) + b",Zq7wX,\n"
    word = b"id,note\n" + b"x" * (boundary - 8 - 2 - 3) + b",aZq7wXb\n"
    assert echo.index(b"Zq7wX") == word.index(b"Zq7wX") == boundary - 3
    server = LoopbackServer()
    try:
        server.routes["/echo.csv"] = lambda handler, _: handler.plain(200, {"Content-Type": "text/csv"}, echo)
        server.routes["/word.csv"] = lambda handler, _: handler.plain(200, {"Content-Type": "text/csv"}, word)
        auth = {"secret": SECRET_NAME, "header": "X-Api-Key"}
        roots = {
            name: project(
                tmp_path / name, {"source_url": server.url(f"/{name}.csv"), "format": "csv", "source_auth": auth}
            )
            for name in ("echo", "word")
        }
        runs = {name: run_raw(root, tmp_path / f"{name}-lake", **{ENV: "Zq7wX"}) for name, root in roots.items()}
    finally:
        server.stop()

    assert runs["echo"].returncode == 1 and not raw_files(tmp_path / "echo-lake")
    assert "holds the credential it was fetched with" in runs["echo"].stdout + runs["echo"].stderr
    assert runs["word"].returncode == 0, runs["word"].stderr
    (kept,) = raw_files(tmp_path / "word-lake")
    assert kept.read_bytes() == word


COOKIE = "sessionid=Qz7wX9c8b7a6f5e; theme=dark; seen=true; cur=USD"


def test_a_cookie_secret_s_session_is_cut_and_its_short_values_are_left_in_the_data(tmp_path):
    """A cookie secret holds the session and settings that are no secret (`theme=dark`, `cur=USD`). Taken for
    secrets too, they cut `USD`, `dark` and every JSON `true` out of the API's records, and refused a CSV holding
    `USD`; the session, quoted alone, is still cut and refused."""
    server = LoopbackServer()
    try:

        def session_of(handler) -> str:
            return dict(pair.split("=", 1) for pair in handler.headers.get("Cookie", "").split("; ")).get(
                "sessionid", ""
            )

        records = [{"id": 1, "currency": "USD", "active": True, "note": "dark"}]
        server.routes["/v1/items"] = lambda handler, _: handler.json({"items": records})
        server.routes["/v1/expired"] = lambda handler, _: handler.json(
            {"error": {"message": f"session {session_of(handler)} expired"}}
        )
        server.routes["/export.csv"] = lambda handler, _: handler.plain(
            200, {"Content-Type": "text/csv"}, b"id,currency,active\n1,USD,true\n"
        )
        cookie = {"header": "Cookie"}
        api = project(tmp_path / "api", api_config(server.url("/v1/items"), cookie))
        expired = project(tmp_path / "exp", api_config(server.url("/v1/expired"), cookie))

        kept = run_raw(api, tmp_path / "api-lake", **{ENV: COOKIE})
        refused = run_raw(expired, tmp_path / "exp-lake", **{ENV: COOKIE})
        file_config = {"source_url": server.url("/export.csv"), "format": "csv",
                       "source_auth": {"secret": SECRET_NAME, **cookie}}  # fmt: skip
        download = run_raw(project(tmp_path / "file", file_config), tmp_path / "file-lake", **{ENV: COOKIE})
    finally:
        server.stop()

    assert kept.returncode == 0, kept.stderr[-2000:]
    (page,) = raw_files(tmp_path / "api-lake")
    assert [json.loads(line) for line in page.read_text().splitlines()] == records
    assert download.returncode == 0, download.stderr[-2000:]
    (csv,) = raw_files(tmp_path / "file-lake")
    assert csv.read_bytes() == b"id,currency,active\n1,USD,true\n"
    assert refused.returncode == 1 and "session *** expired" in refused.stderr
    seen = {**outputs(tmp_path / "api-lake", kept), **outputs(tmp_path / "exp-lake", refused)}
    assert_nowhere(COOKIE, seen, "Qz7wX9c8b7a6f5e")


# ------------------------------------------------------------------ a token in the path of a URL the fetch reached


PATH_TOKEN = "cdnTok3n9f8e7d6c5b4a3f2e"
NGINX_HASH = "Xq1bW2c3Vd4e5Rf6g7Th8i9"  # nginx secure_link's `?md5=…`: no name says it is a secret
KEY = "src-Key-0a9b8c7d6e5f"


def broken_headers(handler) -> None:
    """A 403 whose header block has a line without a colon: urllib3 warns, quoting the URL it requested."""
    handler.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nBroken header line\r\nX: y\r\n\r\nnope")


@pytest.mark.parametrize(
    "case",
    [
        "redirect to a cdn",
        "redirect on the same host",
        "broken answer of the cdn",
        "query value of any name",
        "refused redirect",
    ],
)
def test_a_token_in_the_path_of_a_url_a_source_redirects_to_is_in_no_log(tmp_path, case):
    """The source hands the download off to a URL that carries a token in its path (`/<token>/file.csv`, the way
    many CDNs and download links sign a URL), on another host or its own, or in a query value whose name says
    nothing (`?md5=…`). Only secret-looking query names were learned: urllib3's records (`"GET /<token>/file.csv
    HTTP/1.1" 200`, `Failed to parse headers (url=…/<token>/file.csv)`) and our own warning (`redirects to another
    host (…/<token>/file.csv)`) printed the token."""
    source, cdn = LoopbackServer(), LoopbackServer()
    data = b"id,name\n1,one\n"
    try:
        target = {
            "redirect to a cdn": cdn.url(f"/{PATH_TOKEN}/file.csv"),
            "redirect on the same host": source.url(f"/dl/{PATH_TOKEN}/file.csv"),
            "broken answer of the cdn": cdn.url(f"/{PATH_TOKEN}/file.csv"),
            "query value of any name": cdn.url(f"/file.csv?md5={NGINX_HASH}&expires=1767225600"),
            "refused redirect": cdn.url(f"/{PATH_TOKEN} file.csv"),  # a space: refused, its URL shown escaped
        }[case]
        for server in (source, cdn):
            server.files[f"/{PATH_TOKEN}/file.csv"] = server.files["/file.csv"] = data
            server.files[f"/dl/{PATH_TOKEN}/file.csv"] = data
        if case == "broken answer of the cdn":
            cdn.scripts[f"/{PATH_TOKEN}/file.csv"] = [broken_headers] * 10
        source.scripts["/export.csv"] = [redirect(target)] * 10
        config = {
            "source_url": source.url("/export.csv"),
            "format": "csv",
            "source_auth": {"secret": SECRET_NAME, "header": "Authorization", "scheme": "Bearer"},
        }
        root = project(tmp_path, config)
        lake = tmp_path / "lake"

        run = run_raw(root, lake, "--debug", **{ENV: KEY})
    finally:
        source.stop()
        cdn.stop()

    assert "LOG urllib3.connectionpool DEBUG" in run.stderr, "urllib3's records were captured"
    if case == "refused redirect":
        assert run.returncode == 1 and "holds a backslash, a space" in entry_of(lake)["error"] and not cdn.requests
    elif case == "broken answer of the cdn":
        assert run.returncode == 1 and "Failed to parse headers" in run.stderr
    else:
        assert run.returncode == 0, run.stdout + run.stderr
        (stored,) = raw_files(lake)
        assert stored.read_bytes() == data
    assert case == "refused redirect" or len(source.requests) + len(cdn.requests) >= 2, "the hand-off was followed"
    seen = outputs(lake, run)
    for secret in (PATH_TOKEN, NGINX_HASH, KEY):
        assert_nowhere(secret, seen)
    assert f"{source.base}/export.csv" in run.stderr, "the configured URL is still shown whole"


def test_a_token_in_the_path_of_an_api_s_next_link_to_another_host_is_in_no_log(tmp_path):
    """An API links its next page to storage on another host with a token in the path: our warning that the
    link leaves the API's host (`… leads to another host (http://…/<token>/page2.json)`) and urllib3's record of
    the request printed it."""
    api, storage = LoopbackServer(), LoopbackServer()
    try:
        api.routes["/v1/items"] = lambda handler, _: handler.json(
            {"items": [{"id": 1}], "next": storage.url(f"/{PATH_TOKEN}/page2.json")}
        )
        storage.routes[f"/{PATH_TOKEN}/page2.json"] = lambda handler, _: handler.json({"items": [{"id": 2}]})
        root = project(tmp_path, api_config(api.url("/v1/items"), {"header": "X-Api-Key"}, paging="link"))
        lake = tmp_path / "lake"

        run = run_raw(root, lake, **{ENV: KEY})
    finally:
        api.stop()
        storage.stop()

    assert run.returncode == 0, run.stdout + run.stderr
    assert "leads to another host" in run.stderr and storage.requests
    assert [json.loads(line)["id"] for line in raw_files(lake)[0].read_text().splitlines()] == [1, 2]
    seen = outputs(lake, run)
    for secret in (PATH_TOKEN, KEY):
        assert_nowhere(secret, seen)


def test_the_tokens_of_an_api_s_many_next_links_to_another_host_are_in_no_log(tmp_path):
    """An API that pages through presigned links on another host: each page's link has its own token in the path and
    its own signature. Only the first 64 such values of a fetch were learned; from about the 17th page on, urllib3's
    records and our warning printed each new link's token and signature whole."""
    import hashlib

    pages = 40
    token = [hashlib.sha256(f"path {n}".encode()).hexdigest()[:24] for n in range(pages + 1)]
    signature = [hashlib.sha256(f"signature {n}".encode()).hexdigest() for n in range(pages + 1)]
    api, storage = LoopbackServer(), LoopbackServer()

    def link(n: int) -> str:
        return storage.url(f"/{token[n]}/page{n}.json?X-Amz-Expires=300&X-Amz-Signature={signature[n]}")

    def page(n: int):
        return lambda handler, _: handler.json({"items": [{"id": n}], **({"next": link(n + 1)} if n < pages else {})})

    try:
        api.routes["/v1/items"] = page(0)
        for n in range(1, pages + 1):
            storage.routes[f"/{token[n]}/page{n}.json"] = page(n)
        root = project(tmp_path, api_config(api.url("/v1/items"), {"header": "X-Api-Key"}, paging="link"))
        lake = tmp_path / "lake"

        run = run_raw(root, lake, "--debug", **{ENV: KEY})
    finally:
        api.stop()
        storage.stop()

    assert run.returncode == 0, run.stdout + run.stderr
    assert "LOG urllib3.connectionpool DEBUG" in run.stderr, "urllib3's records were captured"
    assert [json.loads(line)["id"] for line in raw_files(lake)[0].read_text().splitlines()] == list(range(pages + 1))
    seen = outputs(lake, run)
    for secret in [KEY, *token[1:], *signature[1:]]:
        assert_nowhere(secret, seen)


SERVER_COOKIE = "sid=9d8c7b6a5f4e3d2c1b0a"


def test_a_cookie_in_a_broken_header_block_is_not_quoted_by_urllib3_s_warning(tmp_path):
    """The server's answer has a header line without a colon, then sets a session cookie: urllib3 warns quoting
    every header after the broken line (`unparsed data: 'Set-Cookie: sid=…'`), a cookie nothing here knew of."""

    def answer(handler) -> None:
        handler.wfile.write(
            b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nBroken header line\r\n"
            + f"Set-Cookie: {SERVER_COOKIE}; HttpOnly\r\n\r\nbusy".encode()
        )

    server = LoopbackServer()
    try:
        server.scripts["/export.csv"] = [answer] * 10
        root = project(tmp_path, {"source_url": server.url("/export.csv"), "format": "csv"})
        lake = tmp_path / "lake"

        run = run_raw(root, lake)
    finally:
        server.stop()

    assert run.returncode == 1 and "Failed to parse headers" in run.stderr
    assert_nowhere(SERVER_COOKIE.partition("=")[2], outputs(lake, run))
