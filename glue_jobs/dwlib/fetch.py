"""Bring a dataset's source into the lake's raw area, byte for byte.

Sources are an http(s) URL, an `s3://bucket/key`, a `file:///abs/path` or a path relative to the
dataset folder (`fetch_source`; on Glue, where there is no dataset folder, the copy the stack
deployed under `etl/{dataset}/`), or a list of JSON API endpoints whose pages become JSON lines
(`fetch_api`). Every network request is retried on transient failures (connection errors,
timeouts, 408, 429 and 5xx) with exponential backoff and full jitter; a broken download resumes
with an HTTP Range request where the server allows it and a strong validator shows the file did
not change. Bodies stream through a temporary file as they arrive (reads of at most 64 KiB, the time
budget checked after each), so memory stays flat whatever the size. Error messages name the URL without its
query string or credentials, and never carry request headers. An endpoint's `auth` secret (sent
as a header or a query parameter) is cut out of every message, log line and written record, and
is sent only to the configured endpoint's scheme, host and port: redirects and next links to
another host are followed without it (nor any query parameter that carries it, whatever its
name), and a step from https down to http is refused. An API page is parsed in memory, so it is
decoded chunk by chunk within `max_page_bytes`, however well it compresses; downloads are stored
as sent (never decoded here), so their size is bounded by the disk only.
Archives (`unpack_for_reading`) expand within a byte and ratio budget counted while decompressing;
of a zip only the data files of the dataset's format are read.

Runs inside a Glue 5.1 job and on a laptop: stdlib, urllib3 and boto3 only.
"""

from __future__ import annotations

import base64
import bz2
import contextlib
import errno
import gzip
import hashlib
import json
import logging
import random
import re
import tempfile
import threading
import time
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qsl, unquote, unquote_plus, urlencode, urljoin, urlsplit, urlunsplit

import urllib3
from urllib3 import exceptions as u3
from urllib3.util import parse_url

from .lake import Lake, LocalLake, S3Lake
from .secrets import (
    MIN_SECRET_CHARS,
    PART_MIN_CHARS,
    SHORT_FORM,
    Forms,
    SecretError,
    all_forms,
    bytes_pattern,
    forms_pattern,
    register_window,
    text_forms,
    too_short,
)
from .secrets import parts as secret_parts
from .secrets import register as register_secrets
from .secrets import scrub as scrub_registered

if TYPE_CHECKING:  # config needs pydantic; this module does not
    from collections.abc import Mapping

    from .config import ApiAuth, ApiEndpoint

__all__ = [
    "FetchError",
    "FetchResult",
    "Probe",
    "UnpackLimits",
    "RetryPolicy",
    "fetch_api",
    "fetch_source",
    "probe_source",
    "reporting",
    "unpack_for_reading",
]

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # bytes per read and write
USER_AGENT = "dwlib-fetch/1.0 (+urllib3)"
# Every retry is ours, so it is counted, logged and bounded; redirects too (`_Session.send`), so
# credentials go to the configured host only.
_NO_RETRIES = urllib3.Retry(
    total=None,
    connect=0,
    read=0,
    status=0,
    other=0,
    redirect=0,
    raise_on_redirect=False,
    raise_on_status=False,
)
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
_SECRET_NAME = re.compile(r"key|token|secret|sig|pass|auth|cred|session", re.IGNORECASE)
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


class FetchError(Exception):
    """One paragraph a user can act on: URL (never with credentials/query secrets), HTTP status or error,
    attempts made, what to do."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # total tries per request
    base_delay: float = 0.5  # seconds; exponential backoff base_delay * 2**n with full jitter, capped
    max_delay: float = 30.0
    timeout: float = 60.0  # connect/read timeout per request
    max_total_seconds: float = 3600.0  # budget of one fetch_source/fetch_api/probe_source call

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.timeout <= 0 or self.max_total_seconds <= 0:
            raise ValueError("RetryPolicy delays must be >= 0 and timeout/max_total_seconds > 0")


@dataclass(frozen=True)
class FetchResult:
    source: str  # the source as configured
    keys: list[str]  # lake keys written (under raw_prefix), original bytes
    bytes: int  # total bytes written
    attempts: int  # total HTTP/S3 attempts
    resumed: bool  # True if any download resumed with an HTTP Range request
    seconds: float


@dataclass(frozen=True)
class Probe:
    reachable: bool
    size: int | None
    detail: str


# --------------------------------------------------------------------------- URLs and messages


def _redact(url: str) -> str:
    """The URL without user info, query string or fragment: safe to log and to show."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _url_secrets(url: str) -> list[str]:
    """Values of a URL that must never be shown: its password and secret-looking query values."""
    if "://" not in url:
        return []
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [value for name, value in parse_qsl(parts.query) if _SECRET_NAME.search(name)]
    return found


def _file_name(path: str) -> str:
    path = unquote(path)
    name = "" if path.endswith("/") else PurePosixPath(path).name
    return "download" if name in ("", ".", "..") else name


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _with_params(url: str, params: dict[str, str], drop: dict[str, str] | None = None) -> str:
    """The URL with `params` set (replacing same-named ones) and the names in `drop` removed."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    gone = {*params, *(drop or {})}
    if not params and not any(k in gone for k, _ in pairs):
        return url
    query = [(k, v) for k, v in pairs if k not in gone]
    query += list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _tail(text: str, marker: str) -> str:
    return text.split(marker, 1)[1].strip() if marker in text else text


def _describe(exc: BaseException) -> tuple[bool, str]:
    """(transient, plain words) for an exception raised by urllib3 or the socket layer."""
    reason: BaseException = exc
    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    text = str(reason.args[0]) if isinstance(reason, u3.ProtocolError) and reason.args else str(reason)
    if isinstance(reason, u3.ResponseError):
        return False, "too many redirects"
    if isinstance(reason, (u3.LocationValueError, u3.ProxySchemeUnknown)):
        return False, f"invalid URL ({type(reason).__name__})"
    if isinstance(reason, u3.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return False, "the server's TLS certificate could not be verified"
        return True, f"TLS error ({text})"
    if isinstance(reason, u3.NameResolutionError):
        return True, "the host name could not be resolved"
    if isinstance(reason, u3.NewConnectionError):
        return True, f"could not connect ({_tail(text, 'Failed to establish a new connection:')})"
    if isinstance(reason, u3.ConnectTimeoutError):
        return True, "timed out connecting"
    if isinstance(reason, u3.ReadTimeoutError):
        return True, "timed out waiting for data"
    if isinstance(reason, u3.ProtocolError):
        return True, f"the connection broke ({text})"
    if isinstance(reason, u3.ProxyError):
        return True, f"proxy error ({text})"
    return True, f"{type(reason).__name__}: {text}"


@dataclass(frozen=True)
class _Failure:
    """Why one attempt failed; `transient` failures are retried."""

    transient: bool
    detail: str
    status: int | None = None
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After asks to wait (RFC 9110 §10.2.3: digits, or an HTTP date); None for anything
    else (`-3`, `nan`, `1.5`, `soon`), so the usual backoff applies rather than an immediate retry."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit() and value.isascii():
        return float(value)
    at = _http_date(value)
    return max(0.0, at - time.time()) if at is not None else None


def _status_failure(resp: urllib3.BaseHTTPResponse) -> _Failure:
    status = resp.status
    try:
        reason = resp.reason or HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    detail = f"HTTP {status} {reason}".strip()
    if status in (408, 429) or status >= 500:
        wait = _retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None
        return _Failure(True, detail, status, wait)
    return _Failure(False, detail, status)


def _advice(failure: _Failure | None) -> str:
    status = failure.status if failure else None
    if status in (404, 410):
        return "Check the URL: nothing is published at that address (any more)."
    if status in (401, 403):
        return "The server refused access: check the URL and the credentials or headers it needs."
    if status == 429:
        return "The server kept rate-limiting the requests: run again later or ask for a higher quota."
    if status is not None and 400 <= status < 500:
        return "The server rejected the request: check the URL and its parameters."
    if status is not None and status >= 500:
        return (
            "The server kept failing: try again later, or raise the retry policy's attempts or max_delay "
            "if it is often unavailable."
        )
    if failure and not failure.transient:
        return "Check the URL and that this machine can reach it."
    return (
        "Check that the host is up and reachable from here (network, VPC endpoint or NAT, proxy), then run "
        "again; raise the retry policy's attempts or timeout if the link is slow."
    )


def _content_span(value: str | None) -> tuple[int | None, int | None, int | None]:
    """(first byte, last byte, total size) of a Content-Range header; None where unknown."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None, None
    first = int(match[1]) if match[1] is not None else None
    last = int(match[2]) if match[2] is not None else None
    total = int(match[3]) if match[3] != "*" else None
    return first, last, total


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header; None where unknown."""
    first, _, total = _content_span(value)
    return first, total


def _http_date(value: str | None) -> float | None:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _strong_validator(headers: Any) -> tuple[str, str] | None:
    """(header, value) of an answer's strong validator (RFC 9110 §8.8), the only kind that may join two
    parts of a download (§13.1.5): a strong ETag; else, without any ETag, a Last-Modified at least 60
    seconds before the answer's Date (§8.8.2.2: a file may change twice within a second, not unseen for a
    minute). None without one: a weak ETag (W/) promises nothing about the bytes."""
    etag = (headers.get("ETag") or "").strip()
    if etag:
        return None if etag.startswith("W/") else ("ETag", etag)
    modified = (headers.get("Last-Modified") or "").strip()
    at, now = _http_date(modified), _http_date(headers.get("Date"))
    if at is not None and now is not None and now - at >= 60:
        return "Last-Modified", modified
    return None


def _length(resp: urllib3.BaseHTTPResponse) -> int | None:
    """The body's length as announced: none with a Transfer-Encoding, which overrides any Content-Length
    (RFC 9112 §6.3), as http.client reads the body too."""
    if resp.headers.get("Transfer-Encoding"):
        return None
    return _int_header(resp.headers.get("Content-Length"))


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- one call's retries


# urllib3 logs full request URLs (query included): at DEBUG, redirects at INFO, and a response whose
# headers it cannot parse at WARNING (urllib3.connection). A logger's filter sees only the records
# made by that very logger, not those its children pass up, so each of urllib3's loggers gets one:
# those of its modules, and any other this process has made.
_URLLIB3_MODULES = (
    "urllib3",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.http2.connection",
    "urllib3.contrib.pyopenssl",
    "urllib3.contrib.emscripten.response",
)


def _urllib3_loggers() -> list[logging.Logger]:
    made = [name for name in list(logging.root.manager.loggerDict) if name.startswith("urllib3.")]
    return [logging.getLogger(name) for name in sorted({*_URLLIB3_MODULES, *made})]


class _ScrubLogs(logging.Filter):
    """Cuts a session's secrets out of log records while the session is open: the message with its
    arguments, the traceback of `exc_info` (formatted here, then scrubbed) and the stack."""

    def __init__(self, session: _Session):
        super().__init__()
        self.session = session

    def filter(self, record: logging.LogRecord) -> bool:
        scrub = self.session.scrub
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: show it unformatted, never its arguments
            message, record.args = str(record.msg), None
        scrubbed = _without_unparsed(scrub(message))
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _without_unparsed(scrub(record.exc_text))
            record.exc_info = None  # the exception object itself may quote the URL: only its scrubbed text goes on
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


# urllib3's warning about an answer whose header block it cannot parse quotes the headers after the break
# (`unparsed data: 'Set-Cookie: session=…'`): a server's cookie or token, which nothing here knows to cut.
_UNPARSED = re.compile(r"(unparsed data: ).*")


def _without_unparsed(text: str) -> str:
    return _UNPARSED.sub(r"\1withheld (the headers after the broken line may hold a cookie or a token)", text)


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit: what a credential is bound to.

    Read with urllib3's own parser, the one that decides where the request goes; `_unsafe` refuses
    a URL that another parser would read as another host.
    """
    try:
        parts = parse_url(url)
    except u3.LocationParseError:
        return "", "", None
    scheme = (parts.scheme or "").lower()
    return scheme, (parts.host or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


# A backslash ends the host for urllib3 (and browsers) but not for urllib.parse; whitespace and
# control characters are dropped or kept differently by each parser.
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")


def _split_origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) as urllib.parse reads them, the host in its IDNA form as urllib3 sends it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
        host = f"[{host}]" if ":" in host else host  # IPv6, as urllib3 writes it
        port = parts.port
    except (UnicodeError, ValueError):
        return scheme, "", None
    return scheme, host, port or {"http": 80, "https": 443}.get(scheme)


def _unsafe(url: str) -> str | None:
    """Why an http(s) URL must not be requested, or None.

    A credential is bound to a host, so the host must be beyond doubt: a URL with a backslash,
    whitespace or a control character, with a user name or password before '@', or that urllib3
    (which connects) and urllib.parse read as different hosts is refused, never requested.
    """
    if _AMBIGUOUS.search(url):
        return "holds a backslash, a space or a control character (URL parsers disagree on where its host ends)"
    try:
        told = parse_url(url)
    except u3.LocationParseError:
        return "cannot be parsed as a URL"
    if told.auth is not None or "@" in urlsplit(url).netloc:
        return "holds a user name or password before '@'"
    if _origin(url) != _split_origin(url):
        return "is read as different hosts by different URL parsers"
    return None


def _shown_unsafe(url: str) -> str:
    """An unsafe URL as a message may show it: without query, and with anything before '@' as ***."""
    parts = urlsplit(_AMBIGUOUS.sub(lambda m: f"%{ord(m[0]):02X}", url))
    userinfo, at, host = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme, f"***@{host}" if at else host, parts.path, "", ""))


class _CarriedCredential(Exception):
    """A URL of another host whose path holds a credential: it cannot be stripped, so it is not requested."""


# Secret-looking query values of URLs a fetch reached by itself (redirects, next links to another host): as
# long as this to be scrubbed (`X-Amz-SignedHeaders=host` is no secret); the newest this many of a call are cut
# (a presigned link brings 3-5; the oldest go once there are more, long after their request was logged).
LEARNED_MIN_CHARS = 8
LEARNED_MAX = 256
# A part of such a URL's path or query this long is a token, unless it is a date, a number or words (`a-b_c`).
TOKEN_ALONE_CHARS = 20
_NOT_TOKEN = re.compile(r"[\dTZ\W_]+|[A-Za-z]+(?:[-_.~][A-Za-z]+)*")
_LETTER_DIGIT = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _token_like(text: str) -> bool:
    """Whether a path segment or query value of a URL may be a token: TOKEN_ALONE_CHARS long, or at least
    LEARNED_MIN_CHARS with letters and digits mixed as random text mixes them (3 changes from one to the other:
    `cdnTok3n9f…`, not `page2.json`, `us-east-1` or `aws4_request`); never a date or a number (`20260101T000000Z`,
    which would cut run ids) nor words."""
    if len(text) < LEARNED_MIN_CHARS or _NOT_TOKEN.fullmatch(text):
        return False
    return len(text) >= TOKEN_ALONE_CHARS or len(_LETTER_DIGIT.findall(text)) >= 3


ECHO_CHUNK = 1 << 20


def _refuse_echoed_credential(session: _Session, local: Path, creds: _Creds, shown: str, name: str = "") -> None:
    """Fail, before the download reaches raw/, when it holds the credential it was fetched with, in any form
    the scrubber knows (a server echoing the key into a page or a header row: raw/ is kept for good, and the
    job may not delete there). A short credential (secrets.SHORT_FORM) counts where it stands as a token, as the
    scrubber cuts it (`"x9z"`, `key=x9z`, `,x9z,`), not inside a longer word, number, date or name. Read once in
    1 MiB chunks, each searched with the tail of the one before; a compressed download (`name`: its raw key,
    `.gz` also when the server gzipped it on the way, `.bz2`, `.zip`) is searched decompressed too, as bronze
    will read it, up to ECHO_DECODED_LIMIT bytes of it."""
    found = {form for value in creds.values() if value for form in all_forms(value)}
    if not found:
        return
    longs = sorted({form.encode() for form in found if len(form) >= SHORT_FORM}, key=len, reverse=True)
    shorts = bytes_pattern(form for form in found if len(form) < SHORT_FORM)
    streams = [(_file_chunks(local), False)]
    lowered = name.lower()
    if lowered.endswith((".gz", ".bz2")):
        opener = gzip.open if lowered.endswith(".gz") else bz2.open
        streams.append((_limited(_opened_chunks(lambda: opener(local, "rb")), ECHO_DECODED_LIMIT), True))
    elif lowered.endswith(".zip"):
        streams.append((_zip_chunks(local), True))
    longest = max(len(form.encode()) for form in found)
    for stream, decoded in streams:
        if _holds(stream, longs, shorts, longest, decoded):
            raise session.error(
                f"the download from {shown} holds the credential it was fetched with (the server wrote the "
                "key into its answer, as an error page or a header row often does); it was not kept in raw/. "
                "Check the key and the URL (a wrong or expired key is often echoed), then run again",
                url=shown,
            )


# Of a compressed download, this many bytes decompressed are searched for an echoed credential (an error page
# or a header row comes first); a damaged archive stops the search, and is named when bronze unpacks it.
ECHO_DECODED_LIMIT = 64 * CHUNK
_UNDECODABLE = (OSError, EOFError, zlib.error, zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError)


def _holds(
    stream: Iterator[bytes | None],
    forms: list[bytes],
    shorts: re.Pattern[bytes] | None,
    longest: int,
    decoded: bool = False,
) -> bool:
    """Whether a stream of chunks holds one of `forms` anywhere, or a match of `shorts` (short forms where they
    stand as tokens); a None chunk starts a new stream (a zip's next member). A `decoded` stream that cannot be
    decompressed further holds nothing more (bronze names the damage).

    A token is told by the two bytes on each side of it: a match of `shorts` that ends within two bytes of the
    window's end waits for the next chunk, and the tail carried over keeps two bytes before any match it may
    still hold (a match starting in those two was judged in the window before)."""
    keep = longest + 4
    window, carried = b"", False

    def held(final: bool) -> bool:
        if any(form in window for form in forms):
            return True
        if shorts is None:
            return False
        skip = 2 if carried else 0
        return any(m.start() >= skip and (final or m.end() + 2 <= len(window)) for m in shorts.finditer(window))

    try:
        for chunk in stream:
            if chunk is None:
                if window and held(True):
                    return True
                window, carried = b"", False
                continue
            window += chunk
            if held(False):
                return True
            if len(window) > keep:
                window, carried = window[-keep:], True
    except _UNDECODABLE:
        if not decoded:
            raise
    return bool(window) and held(True)


def _file_chunks(path: Path) -> Iterator[bytes]:
    return _opened_chunks(lambda: path.open("rb"))


def _opened_chunks(opener: Callable[[], BinaryIO]) -> Iterator[bytes]:
    with opener() as stream:
        while chunk := stream.read(ECHO_CHUNK):
            yield chunk


def _limited(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    seen = 0
    for chunk in chunks:
        yield chunk[: limit - seen]
        seen += len(chunk)
        if seen >= limit:
            return


def _zip_chunks(path: Path) -> Iterator[bytes | None]:
    """The members of a zip decompressed, one after the other (None between two), ECHO_DECODED_LIMIT in all."""
    left = ECHO_DECODED_LIMIT
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir() or left <= 0:
                continue
            yield None
            for chunk in _limited(_opened_chunks(lambda info=info: archive.open(info)), left):
                left -= len(chunk)
                yield chunk


class _Creds:
    """Credentials of one configured URL (headers and query parameters), sent to its origin only."""

    def __init__(self, url: str, headers: dict[str, str], params: dict[str, str], texts: tuple[str, ...] = ()):
        self.origin = _origin(url)
        self.headers = headers
        self.params = params
        self.texts = texts  # the secret as stored (a Basic user:password and its parts): never sent, maybe echoed

    def values(self) -> list[str]:
        """Every value sent or stored, for scrubbing: the header values whole and after their scheme."""
        found = [*self.headers.values(), *self.params.values(), *self.texts]
        return found + [value.partition(" ")[2] for value in self.headers.values() if " " in value]

    def owns(self, url: str) -> bool:
        return _origin(url) == self.origin

    def apply(self, url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        """(URL, headers) for one request: with the credentials on their origin, stripped of them elsewhere."""
        if self.owns(url):
            return _with_params(url, self.params), {**headers, **self.headers}
        return self.strip(url), headers

    def strip(self, url: str) -> str:
        """The URL without any query parameter or user info that carries a credential.

        A server may echo the key into a redirect or next link under another name or case
        (`API_KEY=`, `Api_Key=`, `token=`): a parameter goes when its name is a credential's name
        in any case, or when its name or value holds a credential's value.
        """
        values = [value for value in self.values() if value]
        names = {name.lower() for name in self.params}

        def carries(text: str) -> bool:
            """As written, or decoded either way ('+' as itself or as a space), again and again: a login
            redirect's `return_to=` holds the whole request URL encoded once more, the key in it twice."""
            forms, todo = {text}, [text]
            while todo and len(forms) < 16:
                form = todo.pop()
                for decoded in (unquote(form), unquote_plus(form)):
                    if decoded not in forms:
                        forms.add(decoded)
                        todo.append(decoded)
            return any(value in form for form in forms for value in values)

        parts = urlsplit(url)
        if carries(parts.path):  # `https://cdn.example/KEY/file`: no part of a path can be left out
            raise _CarriedCredential(url)
        pairs = parts.query.split("&") if parts.query else []
        kept = [p for p in pairs if unquote_plus(p.partition("=")[0]).lower() not in names and not carries(p)]
        userinfo, at, host = parts.netloc.rpartition("@")
        netloc = host if at and carries(userinfo) else parts.netloc
        if len(kept) == len(pairs) and netloc == parts.netloc:
            return url
        return urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), parts.fragment))


_DRAIN_LIMIT = 64 * 1024  # a redirect's body up to this size is read, to reuse the connection
SLICE = 64 * 1024  # the most one read of a body waits for: the time budget is checked at least this often


def _body(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """A body as it arrives, undecoded: what one socket read gives, at most SLICE bytes.

    `stream(CHUNK)` waits until CHUNK bytes arrived, so a server that drips a byte now and then (each
    within the read timeout) would hold a read, and the time budget unchecked, for hours.
    """
    read1 = getattr(resp, "read1", None)
    if read1 is None:  # urllib3 before 2.1
        yield from resp.stream(SLICE, decode_content=False)
        return
    while piece := read1(SLICE, decode_content=False):
        yield piece


def _discard(resp: urllib3.BaseHTTPResponse) -> None:
    """Done with a redirect: its body is not wanted, and may be of any size, even endless."""
    size = _int_header(resp.headers.get("Content-Length"))
    if size is not None and size <= _DRAIN_LIMIT:
        resp.drain_conn()
        resp.release_conn()
    else:
        resp.close()


class _Session:
    """Retries, the time budget, connection pools and secrets of one public call.

    `secrets` are values that look secret (query values, passwords), scrubbed when 4+ characters
    long; `known` are credentials resolved from a secret store, scrubbed whatever their length,
    also in their URL-encoded and base64 forms (from messages, and from an API's records).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        secrets: list[str] | tuple[str, ...] = (),
        known: list[str] | tuple[str, ...] = (),
        urls: list[str] | tuple[str, ...] = (),
    ):
        self.policy = policy
        self._own_urls = tuple(urls)  # as configured: what `learn` never cuts (they are shown anyway)
        self.started = time.monotonic()
        self.attempts = 0
        self.tries = 0  # the attempt under way at the current request (1 for its first)
        # Every form the secrets module knows, base64 too: an API may echo the key encoded into its records.
        forms = {form for value in known if value for form in all_forms(value)}
        self.known = sorted(forms, key=len, reverse=True)
        self.known_pattern = forms_pattern(forms)  # a short form only where it stands alone, as scrub() cuts it
        # A JSON number or boolean whose text is a credential (a numeric key echoed back) goes too.
        self.known_texts = frozenset(value for value in known if value)
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4} | forms, key=len, reverse=True)
        self._secrets_pattern = forms_pattern(self.secrets)
        # Registered for the process too, so errors that leave this module (the run summary's error and
        # traceback) can be scrubbed with dwlib.secrets.scrub, in base64 forms as well.
        register_secrets([*self.secrets, *known])
        # This module's own lines too: a URL it logs (a redirect's target) may hold a key in its path.
        self._log_filter = _ScrubLogs(self)
        self._filtered = [log, *_urllib3_loggers()]
        for logger in self._filtered:
            logger.addFilter(self._log_filter)
        self._pools: dict[str, urllib3.PoolManager] = {}
        # What `learn` found, oldest first (True: a query value named as a secret, also cut from the run's summary).
        self._learned: dict[str, bool] = {}
        self._configured = self.secrets  # the secrets the session started with, which the window never drops
        self._window = object()  # this session's key to what it registered of what it learned

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def request_timeout(self) -> urllib3.Timeout:
        """The policy's timeouts, cut to what is left of the time budget: no wait outlasts it by much."""
        left = max(self.policy.max_total_seconds - self.elapsed(), 0.5)
        return urllib3.Timeout(connect=min(self.policy.timeout, left), read=min(self.policy.timeout, left))

    def learn(self, url: str) -> None:
        """Scrub, from now on, the secret-looking query values and password of a URL the fetch reached but was
        not configured with: a redirect's or another host's next link (a presigned URL's X-Amz-Signature and
        X-Amz-Credential, a CDN's token). urllib3 logs the URL it requests whole (at DEBUG, and in its warning
        about a broken header), and nothing else knows these values. The newest LEARNED_MAX of a call are cut.

        Such a URL may also carry a token where no name says so: in its path (`https://cdn.example/<token>/
        file.csv`, `/hdnts=exp=…~hmac=…/`) or in a query value of any name (`?md5=…`). Every segment of its path
        and every name and value of its query that looks like a token (LEARNED_MIN_CHARS or more characters with
        letters and digits, or TOKEN_ALONE_CHARS of any kind) and that no configured URL holds is cut from this
        call's messages and log records too (`/***/file.csv`): the path's other words stay, to say where it led."""
        try:
            parts = urlsplit(url)
            found = {value for value in _url_secrets(url) if len(value) >= LEARNED_MIN_CHARS}
            paths = {parts.path, parse_url(url).path or ""}  # as written, and as urllib3 requests (and logs) it
        except (ValueError, u3.LocationParseError):  # a URL urllib cannot split (`http://[::1/x`): refused unsent
            return
        own = self._own_urls
        pieces = [piece for path in paths for piece in re.split(r"[/\s\\]+", path)]
        pieces += [piece for pair in re.split(r"[&;\s]+", parts.query) for piece in pair.partition("=")[::2]]
        local = {text for piece in pieces for text in (piece, unquote_plus(piece)) if _token_like(text)}
        local = {text for text in local if not any(text in configured for configured in own)} - found
        # New, or named a secret where it was only a token before (then cut from the run's summary too).
        news = [t for t in found | local if t not in self._learned or (t in found and not self._learned[t])]
        for text in sorted(found | local):  # seen again (a CDN token in every link): the newest, kept longest
            self._learned[text] = self._learned.pop(text, False) or text in found
        if not news:
            return
        for oldest in list(self._learned)[: max(len(self._learned) - LEARNED_MAX, 0)]:
            del self._learned[oldest]  # long since requested: urllib3 and the warnings quote the URL under way
        forms = {form for text in self._learned for form in text_forms(text)}  # as a message may write it (%2F, \/)
        self.secrets = sorted({*self._configured, *forms}, key=len, reverse=True)  # local: as messages write it
        self._secrets_pattern = forms_pattern(self.secrets)
        register_window(self._window, [text for text, named in self._learned.items() if named])

    def scrub(self, text: str) -> str:
        if self._secrets_pattern is not None:
            text = self._secrets_pattern.sub("***", text)
        return scrub_registered(text) or ""

    def excerpt(self, text: str, limit: int) -> str:
        """At most `limit` characters of a text a server sent, scrubbed whole before it is cut: cut first,
        a secret's prefix would survive, no longer matching the secret."""
        text = self.scrub(text)
        return text if len(text) <= limit else text[:limit] + "…"

    def send(
        self, method: str, url: str, headers: dict[str, str], creds: _Creds | None = None, **options: Any
    ) -> urllib3.BaseHTTPResponse | _Failure:
        """One request, following redirects here rather than in urllib3, so that the credentials in
        `creds` reach their own origin only and an https request never continues over http.

        Raises what urllib3 raises; a refused redirect is a permanent `_Failure`.
        """
        secure = url.lower().startswith("https://")
        via: int | None = None  # the status of the redirect that led to `url`
        if creds is not None and not creds.owns(url):  # a next link to another host: its own tokens, maybe
            self.learn(url)
        for _ in range(MAX_REDIRECTS + 1):
            unsafe = _unsafe(url)
            if unsafe is not None:
                how = f"redirected (HTTP {via}) to" if via else "the URL"
                return _Failure(
                    False,
                    f"{how} {_shown_unsafe(url)}, which {unsafe}; refused, as its host is in doubt and a credential "
                    "could reach another server. "
                    + ("Ask the source's owner to fix the redirect" if via else "Write the URL plainly"),
                )
            target, sent = url, dict(headers)
            if creds is not None:
                try:
                    target, sent = creds.apply(url, sent)
                except _CarriedCredential:
                    return _Failure(
                        False,
                        f"led to another host with the credential in the URL's path ({_redact(url)}); refused, as "
                        "that host would receive it. Ask the API's owner to fix the redirect or link",
                    )
            resp = self.pool(target).request(
                method,
                target,
                headers=sent,
                retries=_NO_RETRIES,
                redirect=False,
                timeout=self.request_timeout(),
                **options,
            )
            location = resp.headers.get("Location") if resp.status in _REDIRECTS else None
            if location is None:
                resp.url = url  # without the credentials: what a relative next link is resolved against
                return resp
            _discard(resp)
            following = urljoin(url, location.strip())
            self.learn(following)  # a presigned hand-off: its signature goes no further than the request
            if _unsafe(following) is not None:
                url, via = following, resp.status
                continue  # refused above, before anything is logged or sent
            scheme = urlsplit(following).scheme.lower()
            if scheme not in ("http", "https"):
                return _Failure(False, f"redirected (HTTP {resp.status}) to an unsupported scheme {scheme!r}")
            if secure and scheme != "https":
                return _Failure(
                    False,
                    f"redirected (HTTP {resp.status}) from https to plain http at {_redact(following)}; refused, "
                    "as the request and the answer would travel unencrypted. Point the source at the final "
                    "https address, or ask its owner to fix the redirect",
                )
            if creds is not None and not creds.owns(following) and creds.owns(url):
                log.warning(
                    "%s redirects to another host (%s): following it without the credentials",
                    _redact(url),
                    self.scrub(_redact(following)),
                )
            if resp.status == 303 and method != "HEAD":
                method = "GET"
            url, via = following, resp.status
        return _Failure(False, f"too many redirects (more than {MAX_REDIRECTS})")

    def error(self, message: str, *, url: str | None = None, status: int | None = None, attempts: int = 0):
        return FetchError(self.scrub(message), url=url, status=status, attempts=attempts)

    def pool(self, url: str) -> urllib3.PoolManager:
        """A pool manager, through the environment's proxy (HTTPS_PROXY, NO_PROXY) when one applies."""
        scheme, host, _ = _origin(url)  # as urllib3 reads it, which connects
        host = host.strip("[]")
        proxy = urllib.request.getproxies().get(scheme)
        if proxy and (host in ("localhost", "127.0.0.1", "::1") or urllib.request.proxy_bypass(host)):
            proxy = None
        name = proxy or ""
        if name not in self._pools:
            common = {"num_pools": 8, "maxsize": 2, "headers": {"User-Agent": USER_AGENT}}
            manager = urllib3.ProxyManager(proxy, **common) if proxy else urllib3.PoolManager(**common)
            self._pools[name] = manager
        return self._pools[name]

    def close(self) -> None:
        for manager in self._pools.values():
            manager.clear()
        for logger in self._filtered:
            logger.removeFilter(self._log_filter)

    def check_deadline(self, shown: str, what: str, last: _Failure | None = None, tries: int | None = None) -> None:
        """Raise once the fetch is over its time budget; `tries` defaults to the attempt under way (mid-body)."""
        if self.elapsed() > self.policy.max_total_seconds:
            raise self._out_of_time(shown, what, last, self.tries if tries is None else tries)

    def _out_of_time(self, shown: str, what: str, last: _Failure | None, tries: int) -> FetchError:
        budget = self.policy.max_total_seconds
        problem = f" The last problem was: {last.detail}." if last else ""
        return self.error(
            f"Could not {what} {shown}: gave up after {self.elapsed():.1f} s, over the time budget of this "
            f"fetch (max_total_seconds = {budget:g}), with {_plural(tries, 'attempt')} at this request."
            f"{problem} Raise max_total_seconds if the source is just large or slow; otherwise try "
            "again later.",
            url=shown,
            status=last.status if last else None,
            attempts=tries,
        )

    def _delay(self, retry: int, last: _Failure) -> float:
        policy = self.policy
        if last.retry_after is not None:
            return min(last.retry_after, policy.max_delay)
        cap = min(policy.max_delay, policy.base_delay * 2.0 ** min(retry + 1, 40))
        return random.uniform(min(policy.base_delay, cap), cap)

    def retrying(self, shown: str, what: str, attempt: Callable[[], Any]) -> Any:
        """Run `attempt` until it returns something other than a transient `_Failure`."""
        last: _Failure | None = None
        tries = 0
        for tries in range(1, self.policy.attempts + 1):
            if last is not None:
                delay = self._delay(tries - 2, last)
                if self.elapsed() + delay > self.policy.max_total_seconds:
                    raise self._out_of_time(shown, what, last, tries - 1)
                log.warning(
                    "%s: %s; retrying in %.2f s (attempt %d of %d)",
                    shown,
                    self.scrub(last.detail),
                    delay,
                    tries,
                    self.policy.attempts,
                )
                time.sleep(delay)
            self.check_deadline(shown, what, last, tries - 1)
            self.attempts += 1
            self.tries = tries
            outcome = attempt()
            if not isinstance(outcome, _Failure):
                return outcome
            last = outcome
            if not outcome.transient:
                raise self.error(
                    f"Could not {what} {shown}: {outcome.detail}. Not retried, as the answer will not change "
                    f"by asking again ({_plural(tries, 'attempt')}). {_advice(outcome)}",
                    url=shown,
                    status=outcome.status,
                    attempts=tries,
                )
        assert last is not None
        raise self.error(
            f"Could not {what} {shown}: {last.detail}, still after {_plural(tries, 'attempt')} over "
            f"{self.elapsed():.1f} s. {_advice(last)}",
            url=shown,
            status=last.status,
            attempts=tries,
        )


# --------------------------------------------------------------------------- progress
# Who watches downloads besides a caller's own `progress`: `dw run` on a terminal installs one with
# `reporting`; nothing does on Glue, so job logs get no progress lines. Called (what, bytes so far,
# total or None) from the thread that downloads.
ProgressListener = Callable[[str, int, "int | None"], None]
_listener: ProgressListener | None = None


@contextmanager
def reporting(listener: ProgressListener) -> Iterator[None]:
    """Report every download and API page of the block to `listener` (one at a time, process-wide)."""
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = previous


def _reported(shown: str, progress: Callable[[int, int | None], None] | None):
    listener = _listener
    if listener is None:
        return progress
    if progress is None:
        return lambda have, total: listener(shown, have, total)

    def both(have: int, total: int | None) -> None:
        progress(have, total)
        listener(shown, have, total)

    return both


class _CountingFile:
    """An API's JSON lines file that reports its size as pages arrive (the total is unknown)."""

    def __init__(self, out, shown: str, listener: ProgressListener):
        self.out, self.shown, self.listener, self.written = out, shown, listener, 0

    def write(self, data: bytes) -> int:
        count = self.out.write(data)
        self.written += len(data)
        self.listener(self.shown, self.written, None)
        return count


# --------------------------------------------------------------------------- http(s) downloads


# Content types of a web page: a file source is csv, json, jsonl, parquet or an archive, never one of these.
_HTML = ("text/html", "application/xhtml+xml")


class _HttpDownload:
    """One URL into one open file, resuming with Range requests across attempts."""

    def __init__(
        self,
        session: _Session,
        url: str,
        out,
        progress: Callable[[int, int | None], None] | None,
        creds: _Creds | None = None,
    ):
        self.session = session
        self.url = url
        self.creds = creds
        self.shown = _redact(url)
        self.out = out
        self.progress = progress
        self.have = 0
        self.total: int | None = None
        self.ranges_ok = True  # optimistic: a server that ignores Range answers 200 and we start over
        # The first answer's strong validator: sent as If-Range, and a 206 must carry the same one, else the
        # parts could come from two versions of the file. Without one a broken download starts over.
        self.validator: tuple[str, str] | None = None
        self.resumed = False
        self.encoding: str | None = None  # "gzip": the server gzipped the file although asked for identity

    def _settle_file(self) -> None:
        """Cut the file back to the `have` bytes counted as written; a local failure is not the network's."""
        with contextlib.suppress(OSError):  # a failed flush raises again from the seek, as a local failure
            self.out.flush()
        try:
            self.out.seek(self.have)
            self.out.truncate()
        except OSError as exc:
            raise self._local_failure(exc) from None

    def _local_failure(self, exc: OSError) -> FetchError:
        name = getattr(self.out, "name", "")
        folder = str(Path(name).parent) if isinstance(name, str) and name else "the temporary folder"
        return self.session.error(
            f"Could not download {self.shown}: writing it to {folder} failed ({exc.strerror or exc}). This is "
            "this machine's disk, not the network: free space there (TMPDIR, or the job's temporary folder) "
            "and run again",
            url=self.shown,
        )

    def _restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.have = 0
        self.resumed = False

    def attempt(self) -> bool | _Failure:
        headers = {"Accept-Encoding": "identity"}
        if self.have > 0 and (not self.ranges_ok or self.validator is None):
            log.info(
                "%s: starting over, as %s",
                self.shown,
                "the server cannot resume"
                if not self.ranges_ok
                else "the server gave no strong validator (ETag, or an old enough Last-Modified) that would "
                "show the file did not change in between (RFC 9110 §13.1.5)",
            )
            self._restart()
        ranged = self.have > 0
        if ranged:
            assert self.validator is not None
            # The file holds exactly the bytes counted: a write cut short (a full disk) may have left more.
            self._settle_file()
            headers["Range"] = f"bytes={self.have}-"
            headers["If-Range"] = self.validator[1]
        try:
            resp = self.session.send("GET", self.url, headers, self.creds, preload_content=False, decode_content=False)
        except (u3.HTTPError, OSError) as exc:
            transient, detail = _describe(exc)
            return _Failure(transient, detail)
        if isinstance(resp, _Failure):
            return resp
        done = False
        try:
            outcome = self._consume(resp, ranged)
            done = outcome is True
            return outcome
        finally:
            if done:
                resp.release_conn()
            else:
                resp.close()

    def _consume(self, resp: urllib3.BaseHTTPResponse, ranged: bool) -> bool | _Failure:
        status = resp.status
        if status == 416 and ranged:
            # Even "bytes */<what we have>" is no proof that we have it all: the file may have shrunk, or the
            # server lies. The size and validator of the first answer decide, so start over.
            self._restart()
            self.ranges_ok = False
            return _Failure(True, "the server refused to resume (HTTP 416); starting over", 416)
        if not 200 <= status < 300:
            return _status_failure(resp)
        encoding = (resp.headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip"):
            self._restart()
            return _Failure(
                False,
                f"the server sent the file encoded as {encoding!r} (Content-Encoding) although asked for none; "
                "downloads are stored as sent, and that encoding cannot be read. Ask the source's owner to serve "
                "it unencoded or with gzip",
            )
        if status == 200 or not self.encoding:
            self.encoding = "gzip" if encoding in ("gzip", "x-gzip") else None
        kind = (resp.headers.get("Content-Type") or "").strip()
        if kind.split(";", 1)[0].strip().lower() in _HTML:
            self._restart()
            return _Failure(
                False,
                f"the server answered a web page ({kind}) instead of the file: a login, error or maintenance page, "
                "never csv, json, parquet or an archive. Open the URL in a browser to see what it says, and point "
                "source_url at the file itself (or fix source_auth)",
            )
        if status == 206:
            first, last, total = _content_span(resp.headers.get("Content-Range"))
            length = _length(resp)
            if (
                not ranged
                or first != self.have
                or (last is not None and length is not None and length != last - first + 1)
            ):
                self._restart()
                self.ranges_ok = False
                return _Failure(True, "the server sent a different part than asked for; starting over", 206)
            if _strong_validator(resp.headers) != self.validator or (
                total is not None and self.total is not None and total != self.total
            ):
                self._restart()
                return _Failure(
                    True,
                    "the file changed on the server during the download (the rest it sent has another ETag, "
                    "Last-Modified or size than the first part), so the parts cannot be joined; starting over",
                    206,
                )
            # The first answer's size stands: a 206 that says "bytes 700-799/*" does not make 800 bytes the whole.
            self.total = self.total if self.total is not None else total
            self.resumed = True
            log.info("%s: resuming at byte %d", self.shown, self.have)
        else:
            if self.have:
                log.info("%s: the server sent the whole file again; starting over", self.shown)
                self._restart()
            self.total = _length(resp)
            self.ranges_ok = resp.headers.get("Accept-Ranges", "").strip().lower() != "none"
            self.validator = _strong_validator(resp.headers)
        try:
            for chunk in _body(resp):
                try:
                    self.out.write(chunk)
                except OSError as exc:  # the disk, not the network: retrying would not help
                    raise self._local_failure(exc) from None
                self.have += len(chunk)
                if self.progress is not None:
                    self.progress(self.have, self.total)
                self.session.check_deadline(self.shown, "download")
        except (u3.HTTPError, OSError) as exc:
            self._settle_file()
            _, detail = _describe(exc)
            return _Failure(True, f"the download broke after {self.have} bytes: {detail}")
        try:
            self.out.flush()
        except OSError as exc:
            raise self._local_failure(exc) from None
        if self.total is not None and self.have != self.total:
            if self.have > self.total:
                self._restart()
                return _Failure(True, f"received more bytes than the {self.total} announced; starting over")
            return _Failure(True, f"the body ended after {self.have} of {self.total} bytes")
        return True


def _fetch_http(
    session: _Session, url: str, target: Path, progress, creds: _Creds | None
) -> tuple[int, bool, str | None]:
    """(size, resumed, "gzip" when the server gzipped the file as it sent it)."""
    out = open(target, "wb")  # noqa: SIM115 - closed below, where a failure of its own is the disk's
    download = _HttpDownload(session, url, out, progress, creds)
    try:
        session.retrying(download.shown, "download", download.attempt)
    except BaseException:
        # Closing writes what the buffer holds, which fails again on a full disk: the error already raised (the
        # disk, named) is the one to report, not the bare OSError of the close.
        with contextlib.suppress(OSError):
            out.close()
        raise
    try:
        out.close()
    except OSError as exc:
        raise download._local_failure(exc) from None
    size = target.stat().st_size
    if size != download.have:  # never land a file whose bytes are not the ones received
        raise session.error(
            f"Could not download {download.shown}: the file written holds {size} bytes where {download.have} "
            "were received; nothing was landed, run again",
            url=download.shown,
        )
    return size, download.resumed, download.encoding


# --------------------------------------------------------------------------- s3


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


_S3_TRANSIENT = ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError")


def _s3_failure(exc: Exception) -> _Failure:
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        ParamValidationError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"S3 error {code}" + (f" (HTTP {status})" if status else "")
        throttled = code in _S3_TRANSIENT
        if throttled or (status is not None and (status >= 500 or status in (408, 429))):
            return _Failure(True, detail, status)
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            return _Failure(False, f"{detail}: no such bucket or key", 404)
        if code in ("403", "AccessDenied", "Forbidden"):
            advice = "access denied; give the job's role s3:GetObject on it (and kms:Decrypt if encrypted)"
            return _Failure(False, f"{detail}: {advice}", 403)
        return _Failure(False, detail, status)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return _Failure(False, "no AWS credentials found; configure them (AWS_PROFILE or the job's role)")
    if isinstance(exc, ParamValidationError):
        return _Failure(False, f"invalid S3 request ({exc})")
    return _Failure(True, f"{type(exc).__name__}: {exc}")


def _new_s3_client(policy: RetryPolicy):
    """An S3 client whose timeouts follow the policy; few botocore retries, since ours wrap it."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=policy.timeout,
        read_timeout=policy.timeout,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    return boto3.client("s3", config=config)


def _s3_client(lake: Lake, policy: RetryPolicy):
    return lake.client if isinstance(lake, S3Lake) else _new_s3_client(policy)


def _fetch_s3(session: _Session, source: str, lake: Lake, key: str, tmp_dir: Path, progress) -> int:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, src_key = _split_s3(source)
    shown = f"s3://{bucket}/{src_key}"
    if not bucket or not src_key or src_key.endswith("/"):
        raise session.error(f"Source {shown} is not an S3 object; write it as s3://bucket/path/to/file.", url=shown)
    client = _s3_client(lake, session.policy)

    def attempt() -> int | _Failure:
        done = [0]
        lock = threading.Lock()
        size: int | None = None

        def callback(count: int) -> None:
            with lock:
                done[0] += count
                if progress is not None:
                    progress(done[0], size)

        try:
            size = int(client.head_object(Bucket=bucket, Key=src_key)["ContentLength"])
            if isinstance(lake, S3Lake):  # server-side managed copy: the bytes never leave S3
                dest_bucket, dest_key = _split_s3(lake.uri(key))
                client.copy({"Bucket": bucket, "Key": src_key}, dest_bucket, dest_key, Callback=callback)
                return size
            local = tmp_dir / _file_name(src_key)
            client.download_file(bucket, src_key, str(local), Callback=callback)
            got = local.stat().st_size
            if got != size:
                return _Failure(True, f"downloaded {got} of {size} bytes")
            lake.put_file(local, key)
            return size
        except (ClientError, BotoCoreError, Boto3Error) as exc:
            return _s3_failure(exc)

    return session.retrying(shown, "copy" if isinstance(lake, S3Lake) else "download", attempt)


# --------------------------------------------------------------------------- public: files


def _local_path(source: str, dataset_dir: Path | None, session: _Session) -> Path:
    if source.startswith("file://"):
        parts = urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise session.error(f"Source {source} names a remote host; write it as file:///absolute/path.")
        return Path(unquote(parts.path))
    if dataset_dir is None:
        raise session.error(
            f"Source {source!r} is a path relative to the dataset folder, but no dataset folder was given; "
            "pass dataset_dir (or, on Glue, deployed_prefix), or give an absolute file:/// URL."
        )
    return Path(dataset_dir) / source


def _deployed_key(source: str, deployed_prefix: str) -> str:
    """The lake key of a relative source as the stack deploys the dataset folder (`etl/{dataset}/...`)."""
    return deployed_prefix + PurePosixPath(source.replace("\\", "/")).as_posix()


def _kind(source: str) -> str:
    lowered = source.lower()
    if lowered.startswith(("https://", "http://")):
        return "http"
    if lowered.startswith("s3://"):
        return "s3"
    if lowered.startswith("file://") or "://" not in source:
        return "file"
    return "unknown"


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def _unexpected(session: _Session, shown: str, exc: Exception) -> FetchError:
    """Any other exception, as a FetchError without secrets (an invalid header value, for one, is
    quoted by http.client in its message). A write the local disk refused says so: the source is not at fault."""
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        where = f" writing {exc.filename}" if isinstance(exc.filename, str) else ""
        return session.error(
            f"Could not fetch {shown}: the local disk refused a write{where} ({exc.strerror or exc}). This is this "
            "machine's disk, not the network nor the source: free space there (TMPDIR, or the job's temporary "
            "folder) and run again",
            url=shown,
        )
    return session.error(
        f"Could not fetch {shown}: {type(exc).__name__}: {exc}. This is not a network failure the retries "
        "cover; check the source's settings (URL, auth) and run again with --debug if it persists.",
        url=shown,
    )


_MIN_USER = 4  # a Basic auth user name this short is ordinary text, not worth cutting out of records


def _decoded_basic(value: str) -> str | None:
    """The `user:password` a Basic secret stored base64-encoded (`dXNlcjpwYXNz`) stands for, else None."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if ":" in decoded and decoded.isprintable() else None


def _credentials(
    auth: ApiAuth | None, label: str, url: str, secrets: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str], tuple[str, ...]]:
    """(headers, query parameters, the secret's own texts) that carry a secret; all empty without auth.

    The texts are the value as stored and, for Basic auth, its password and user name apart: an
    API may echo any of them, although only the encoded header travels.
    """
    if auth is None:
        return {}, {}, ()
    value = (secrets.get(auth.secret) or "").strip()
    if not value:
        raise FetchError(
            f"{label} ({_redact(url)}) needs secret {auth.secret!r}, which was not resolved for this run; "
            "resolve the dataset's secrets (DatasetConfig.secrets) and pass them to the fetch."
        )
    try:
        too_short(auth.secret, value)  # before it is registered: a 1-character secret would cut its own message
    except SecretError as exc:
        raise FetchError(f"{label} ({_redact(url)}): {exc}") from None
    register_secrets([value])
    # Its parts that may be quoted alone (a cookie's values): cut out of records, refused in a download.
    texts: tuple[str, ...] = (value, *sorted(secret_parts(value)))
    if auth.query_param:
        return {}, {auth.query_param: value}, texts
    basic = bool(auth.scheme and auth.scheme.lower() == "basic")
    stored = _decoded_basic(value) if basic and ":" not in value else None
    if stored is not None:  # stored already encoded, as a copied header holds it: the server reads user:password
        texts += (stored,)
    if basic and ":" in (stored or value):
        user, _, password = (stored or value).partition(":")
        # The password, and a user name that may be a key (`KEY:X`), alone: logs cut them where they stand as a
        # token; a download or a record only loses what is long enough not to be a word (`admin`, `X`).
        alone = tuple(part for part in (password, user if len(user) >= _MIN_USER else "") if part)
        register_secrets([*texts, *(part for part in alone if len(part) >= MIN_SECRET_CHARS)])
        texts += tuple(part for part in alone if len(part) >= PART_MIN_CHARS)
    if basic and stored is None and ":" in value:
        value = base64.b64encode(value.encode("utf-8")).decode("ascii")  # user:password, as RFC 7617 sends it
        register_secrets([value])
    if any(ord(ch) < 32 or ord(ch) == 127 or ord(ch) > 255 for ch in value):
        raise FetchError(
            f"{label} ({_redact(url)}): secret {auth.secret!r} holds a line break, a control character or a "
            "character outside Latin-1, so it cannot travel in an HTTP header; store the credential alone, "
            "on one line (or send it with query_param)."
        )
    header = auth.header_name or "Authorization"
    return {header: f"{auth.scheme} {value}" if auth.scheme else value}, {}, texts


def fetch_source(
    source_url: str,
    lake: Lake,
    raw_prefix: str,
    *,
    dataset_dir: Path | None = None,
    deployed_prefix: str | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
    progress: Callable[[int, int | None], None] | None = None,
    auth: ApiAuth | None = None,
    secrets: Mapping[str, str] | None = None,
) -> FetchResult:
    """Copy one source, unchanged, to `raw_prefix + <its file name>` in the lake.

    A relative path is read from `dataset_dir`, or, without one (on Glue), from the lake key
    `deployed_prefix + path`, where the stack deploys the dataset folder. `auth` (an http(s)
    source's secret, resolved in `secrets`) is sent to the source's own host only.
    """
    kind = _kind(source_url)
    shown = _redact(source_url)
    progress = _reported(shown, progress)
    creds = None
    if auth is not None:
        if kind != "http":
            raise FetchError(f"Source {shown}: source_auth applies to http(s) sources only; remove it.", url=shown)
        creds = _Creds(source_url, *_credentials(auth, "source_url", source_url, secrets or {}))
    session = _Session(policy, _url_secrets(source_url), creds.values() if creds else (), (source_url,))
    resumed = False
    try:
        if kind == "unknown":
            raise session.error(
                f"Source {shown} has a scheme this platform cannot fetch; use https://, http://, s3://, "
                "file:// or a path relative to the dataset folder."
            )
        if kind == "file" and dataset_dir is None and deployed_prefix is not None and "://" not in source_url:
            key, size = _fetch_deployed(session, source_url, lake, deployed_prefix, raw_prefix)
            if progress is not None:
                progress(size, size)
        elif kind == "file":
            path = _local_path(source_url, dataset_dir, session)
            key = raw_prefix + _file_name(path.as_posix())
            session.attempts += 1
            if not path.is_file():
                raise session.error(
                    f"Could not read {path}: no such file (1 attempt). Check source_url and that the file is "
                    "in the dataset folder.",
                    url=str(path),
                    attempts=1,
                )
            lake.put_file(path, key)
            size = path.stat().st_size
            if progress is not None:
                progress(size, size)
        else:
            key = raw_prefix + _file_name(urlsplit(source_url).path)
            with tempfile.TemporaryDirectory(prefix="dwfetch-") as tmp:
                if kind == "s3":
                    size = _fetch_s3(session, source_url, lake, key, Path(tmp), progress)
                else:
                    local = Path(tmp) / key.rsplit("/", 1)[-1]
                    size, resumed, encoding = _fetch_http(session, source_url, local, progress, creds)
                    key = _encoded_key(session, key, encoding, shown)
                    if creds is not None:
                        _refuse_echoed_credential(session, local, creds, shown, key)
                    lake.put_file(local, key)
    except FetchError as exc:
        raise session.error(str(exc), url=exc.url, status=exc.status, attempts=exc.attempts) from None
    except Exception as exc:
        raise _unexpected(session, shown, exc) from None
    finally:
        session.close()
    seconds = session.elapsed()
    log.info("fetched %s to %s: %d bytes, %d attempts, %.1f s", shown, key, size, session.attempts, seconds)
    return FetchResult(source_url, [key], size, session.attempts, resumed, seconds)


def _encoded_key(session: _Session, key: str, encoding: str | None, shown: str) -> str:
    """The raw key of a download the server gzipped on the way (Content-Encoding: gzip, although asked for
    none): stored as sent under `name.gz`, which the unpacking checks and Spark decompresses; a `.gz` file
    sent so is that file itself. An archive or Parquet file cannot be read through gzip, so it fails."""
    if encoding is None or key.lower().endswith(".gz"):
        return key
    if key.lower().endswith((".zip", ".parquet", ".bz2")):
        raise session.error(
            f"Could not download {shown}: the server sent it gzip-encoded (Content-Encoding: gzip) although "
            f"asked for none, and {key.rsplit('/', 1)[-1]} cannot be read through gzip. Ask the source's owner "
            "to serve it unencoded.",
            url=shown,
        )
    log.info("%s: the server sent it gzip-encoded; stored as sent, as %s", shown, key.rsplit("/", 1)[-1] + ".gz")
    return key + ".gz"


def _fetch_deployed(
    session: _Session, source: str, lake: Lake, deployed_prefix: str, raw_prefix: str
) -> tuple[str, int]:
    """A file of the dataset folder, as deployed to the lake: (raw key, size)."""
    src_key = _deployed_key(source, deployed_prefix)
    key = raw_prefix + _file_name(src_key)
    session.attempts += 1
    if not lake.exists(src_key):
        raise session.error(
            f"Could not read {source!r}: it is a path inside the dataset folder, which the dataset's stack "
            f"deploys to {lake.uri(deployed_prefix)}, but {lake.uri(src_key)} does not exist. Deploy the "
            "dataset's stack again (make deploy); files under sample/ and *.md files are not deployed.",
            url=lake.uri(src_key),
            attempts=1,
        )
    with tempfile.TemporaryDirectory(prefix="dwfetch-") as tmp:
        local = Path(tmp) / _file_name(src_key)
        lake.get_file(src_key, local)
        lake.put_file(local, key)
        return key, local.stat().st_size


def probe_source(
    source_url: str,
    *,
    dataset_dir: Path | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008
    lake: Lake | None = None,
    deployed_prefix: str | None = None,
) -> Probe:
    """Can the source be read, and how large is it? Writes nothing; never raises for an unreachable source."""
    session = _Session(policy, _url_secrets(source_url), urls=(source_url,))
    kind = _kind(source_url)
    shown = _redact(source_url)
    try:
        if kind == "http":
            return _probe_http(session, source_url)
        if kind == "s3":
            return _probe_s3(session, source_url)
        if kind == "file" and dataset_dir is None and lake is not None and deployed_prefix and "://" not in source_url:
            key = _deployed_key(source_url, deployed_prefix)
            found = [o for o in lake.list(key) if o.key == key]
            if found:
                return Probe(True, found[0].size, f"deployed file {lake.uri(key)}, {found[0].size} bytes")
            return Probe(False, None, f"deployed file {lake.uri(key)} not found; deploy the dataset's stack again")
        if kind == "file":
            path = _local_path(source_url, dataset_dir, session)
            if path.is_file():
                size = path.stat().st_size
                return Probe(True, size, f"file {path}, {size} bytes")
            return Probe(False, None, f"file {path} not found")
        return Probe(False, None, f"{shown}: unsupported scheme; use https://, http://, s3:// or file://")
    except FetchError as exc:
        return Probe(False, None, session.scrub(str(exc)))
    except Exception as exc:
        return Probe(False, None, str(_unexpected(session, shown, exc)))
    finally:
        session.close()


def _probe_http(session: _Session, url: str) -> Probe:
    def request(method: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse | _Failure:
        headers = {"Accept-Encoding": "identity", **headers}
        return session.send(method, url, headers, preload_content=False, decode_content=False)

    def attempt() -> Probe | _Failure:
        try:
            resp = request("HEAD", {})
            if not isinstance(resp, _Failure) and resp.status in (400, 403, 405, 501):
                resp.close()  # HEAD not allowed (or not signed for): ask for one byte
                resp = request("GET", {"Range": "bytes=0-0"})
        except (u3.HTTPError, OSError) as exc:
            transient, detail = _describe(exc)
            return _Failure(transient, detail)
        if isinstance(resp, _Failure):
            return resp
        try:
            if not 200 <= resp.status < 300:
                return _status_failure(resp)
            if resp.status == 206:
                size = _content_range(resp.headers.get("Content-Range"))[1]
            else:
                size = _int_header(resp.headers.get("Content-Length"))
            told = f"{size} bytes" if size is not None else "size unknown"
            return Probe(True, size, f"{_redact(url)}: HTTP {resp.status}, {told}")
        finally:
            resp.close()

    return session.retrying(_redact(url), "reach", attempt)


def _probe_s3(session: _Session, source: str) -> Probe:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _split_s3(source)
    shown = f"s3://{bucket}/{key}"
    if not bucket or not key:
        return Probe(False, None, f"{shown} is not an S3 object; write s3://bucket/path/to/file")
    client = _new_s3_client(session.policy)

    def attempt() -> Probe | _Failure:
        try:
            size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except (ClientError, BotoCoreError) as exc:
            return _s3_failure(exc)
        return Probe(True, size, f"{shown}: {size} bytes")

    return session.retrying(shown, "reach", attempt)


# --------------------------------------------------------------------------- public: APIs


_MISSING = object()
# Answers some APIs give to a page past their last one, instead of an empty page.
_PAST_THE_END = (400, 404, 416)
# Top-level keys by which an answer says it is an error, whatever its HTTP status.
_ERROR_KEYS = ("error", "errors", "fault")
_ERROR_FIELDS = frozenset({"message", "detail", "code", "status", "status_code", "statusCode", "title", "type"})
MAX_API_PAGE_BYTES = 256 * 1024**2  # one page is parsed in memory: generous for real APIs, bounded for bombs
# zlib window bits by Content-Encoding: gzip, or deflate (zlib-wrapped, or raw as some servers send it).
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _blank(value: Any) -> bool:
    """A next cursor or link that says "no more pages"."""
    return value is _MISSING or value is None or (isinstance(value, str) and not value.strip()) or value in ([], {})


def _error_in(body: Any, records: str | None = None) -> Any:
    """What an answer holds under an error key (`{"error": {...}}`), the whole answer when it holds
    nothing but a message and a code (`{"message": "Internal server error"}`), else None.

    `records`: the records path, when the answer has records there. Then only a non-empty error key
    counts (`{"items": [...], "errors": [...]}`: part of the data, with an error), not one the records
    live under, nor a `message` beside them (`{"status": "ok", "message": "success", "data": [...]}`)."""
    if not isinstance(body, dict):
        return None
    skip = records.split(".", 1)[0] if records else None
    found = next(
        (body[key] for key in _ERROR_KEYS if key != skip and body.get(key) not in (None, "", [], {}, False)), None
    )
    if found is None and records is None and body.keys() <= _ERROR_FIELDS and ("message" in body or "detail" in body):
        return body
    return found


def _next_link(header: str | None, base: str) -> str | None:
    for match in _LINK.finditer(header or ""):
        for rel in _REL.finditer(match[2]):
            if "next" in (rel[1] or rel[2] or "").lower().split():
                return urljoin(base, match[1].strip())
    return None


class _BadNext(ValueError):
    """A page's `next` that is not a URL reference; the message says what it is instead, and `quoted` is
    the value as sent (uncut: whoever shows it scrubs it first)."""

    def __init__(self, message: str, quoted: str | None = None):
        super().__init__(message)
        self.quoted = quoted


def _next_field(body: Any, base: str) -> str | None:
    """The page's top-level `next` resolved against the page's own URL (RFC 3986), None when blank.

    APIs write it absolute (`https://…`), host-relative (`/v1/items?page=2`) or relative to the page
    (`?page=2`, `items?page=2`); each means the next page, never "no more pages".
    """
    value = body.get("next", _MISSING) if isinstance(body, dict) else _MISSING
    if _blank(value):
        return None
    if not isinstance(value, str):
        raise _BadNext(f"a JSON {type(value).__name__}", json.dumps(value, ensure_ascii=False))
    value = value.strip()
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise _BadNext("text with spaces or control characters")
    return urljoin(base, value)


def _json_line(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


def _without(value: Any, forms: Forms | None, texts: frozenset[str] = frozenset()) -> Any:
    """A JSON value with every known secret (`forms`: secrets.forms_pattern) cut out of its strings (APIs may
    echo a key in a next link), and every number or boolean that spells one (`texts`: an echoed numeric key)
    replaced whole."""
    if isinstance(value, str):
        return forms.sub("***", value) if forms is not None else value
    if isinstance(value, list):
        return [_without(item, forms, texts) for item in value]
    if isinstance(value, dict):
        return {_without(k, forms, texts): _without(v, forms, texts) for k, v in value.items()}
    if isinstance(value, (bool, int, float)) and texts and _spellings(value) & texts:
        return "***"
    return value


def _spellings(value: bool | int | float) -> set[str]:
    """How a JSON number or boolean may have been written where it came from: 42, 42.0, true, True."""
    found = {json.dumps(value), str(value)}
    if isinstance(value, float) and value.is_integer():
        found.add(str(int(value)))
    return found


class _Inflater:
    """Decodes a page's Content-Encoding in pieces of at most CHUNK bytes, however well it compresses."""

    def __init__(self, encoding: str):
        self.wbits = _ENCODINGS.get(encoding)
        self.decoder = zlib.decompressobj(self.wbits) if self.wbits else None
        self.started = False
        self.trailing = False  # past the last gzip member: the rest is ignored

    def feed(self, data: bytes) -> Iterator[bytes]:
        """What `data` decodes to, piece by piece: the caller may stop before the rest is decoded."""
        if self.decoder is None:
            yield data
            return
        if self.trailing:
            return
        try:
            piece = self.decoder.decompress(data, CHUNK)
        except zlib.error:
            if self.started or self.wbits != zlib.MAX_WBITS:
                raise
            self.decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate sent raw, without its zlib wrapper
            piece = self.decoder.decompress(data, CHUNK)
        self.started = True
        while True:  # a member at a time: a page may hold any number of them, so no call per member
            yield piece
            while self.decoder.unconsumed_tail:
                yield self.decoder.decompress(self.decoder.unconsumed_tail, CHUNK)
            rest = self.decoder.unused_data if self.decoder.eof and self.wbits != zlib.MAX_WBITS else b""
            if not rest:
                return
            # A gzip body may hold several members, one after the other; bytes after them that are not
            # gzip are ignored, as urllib3 does.
            decoder = zlib.decompressobj(self.wbits)
            try:
                piece = decoder.decompress(rest, CHUNK)
            except zlib.error:
                self.trailing = True
                return
            self.decoder = decoder

    def complete(self) -> bool:
        return self.decoder is None or self.decoder.eof


class _ApiPager:
    """Pages of one endpoint, appended as JSON lines to an open file.

    The credentials (`creds`: a secret header or query parameter) go on every request to the
    endpoint's own scheme, host and port, including those that follow a next link there, and never
    into a message: messages show the URL without its query.

    For `page` and `offset` paging a page shorter than asked for is not the end (APIs cap page
    sizes): the end is an empty page, or the total the API declares at `paging.total_field`
    reached with a page shorter than the ones before. `offset` advances by the records received.

    A page that answers an error (`{"error": …}`, at HTTP 200) or lacks the records path fails the
    run, as ending there would keep part of the data; the one exception is a `cursor` or `link`
    page that also names no next page, which some APIs send as their last.
    """

    def __init__(
        self,
        session: _Session,
        endpoint: ApiEndpoint,
        index: int,
        headers: dict[str, str],
        creds: _Creds,
        max_page_bytes: int = MAX_API_PAGE_BYTES,
    ):
        self.session = session
        self.endpoint = endpoint
        self.headers = {"Accept": "application/json", **headers}
        self.creds = creds
        self.max_page_bytes = max_page_bytes
        self.shown = _redact(endpoint.url)
        self.label = f"api_endpoints[{index}] ({self.shown})"

    def _get(self, url: str) -> tuple[Any, Any, str] | _Failure:
        """(JSON body, headers, the page's own URL after redirects and without credentials)."""
        try:
            resp = self.session.send("GET", url, self.headers, self.creds, preload_content=False, decode_content=False)
        except (u3.HTTPError, OSError) as exc:
            transient, detail = _describe(exc)
            return _Failure(transient, detail)
        if isinstance(resp, _Failure):
            return resp
        data: bytearray | _Failure | None = None
        try:
            if not 200 <= resp.status < 300:
                return _status_failure(resp)
            data = self._read(resp)
        finally:
            if isinstance(data, bytearray):
                resp.release_conn()
            else:
                resp.close()
        if isinstance(data, _Failure):
            return data
        try:
            return json.loads(data), resp.headers, resp.url or url
        except ValueError:
            kind = resp.headers.get("Content-Type", "no Content-Type")
            return _Failure(
                False,
                f"the answer is not JSON ({kind}, {len(data)} bytes); check the URL and its parameters",
                resp.status,
            )

    def _read(self, resp: urllib3.BaseHTTPResponse) -> bytearray | _Failure:
        """The page's body, decoded, never more than max_page_bytes in memory however well it compresses."""
        limit = self.max_page_bytes
        encoding = (resp.headers.get("Content-Encoding") or "").strip().lower() or "identity"
        if encoding != "identity" and encoding not in _ENCODINGS:
            return _Failure(
                False,
                f"the answer is encoded as {encoding!r}, which this fetch does not decode; ask the API for gzip, "
                "deflate or no Content-Encoding",
                resp.status,
            )
        inflater = _Inflater(encoding)
        body = bytearray()
        try:
            for chunk in _body(resp):
                self.session.check_deadline(self.shown, "read the API")
                for piece in inflater.feed(chunk):
                    body += piece
                    if len(body) <= limit:
                        continue
                    return _Failure(
                        False,
                        f"one page of the API holds more than max_page_bytes = {limit} bytes"
                        f"{' once decoded from ' + encoding if inflater.decoder else ''}, and a page is parsed "
                        "in memory, so reading stopped there. Ask for smaller pages (paging.size); an answer "
                        "that only grows when decoded is a compression bomb",
                        resp.status,
                    )
        except zlib.error as exc:
            return _Failure(False, f"the answer's {encoding} encoding is damaged ({exc})", resp.status)
        except (u3.HTTPError, OSError) as exc:
            _, detail = _describe(exc)
            return _Failure(True, f"the answer broke after {len(body)} bytes: {detail}")
        if not inflater.complete():
            return _Failure(True, f"the answer ended inside its {encoding} encoding, after {len(body)} bytes")
        return body

    def _records(self, body: Any, page: int, headers: Any, here: str, done: bool = False) -> list[Any]:
        """The page's records. `done`: the total the API declared has arrived, so a page without its
        list is the end even for `page` and `offset` paging."""
        path, paged = self.endpoint.records, self.endpoint.paging.kind != "none"
        if path is None:
            if paged and isinstance(body, dict) and _error_in(body) is not None:
                raise self._error_page(page, _error_in(body))
            if isinstance(body, list):
                return body
            if isinstance(body, dict):
                return [body]
            raise self.session.error(
                f"The API at {self.shown} answered a JSON {type(body).__name__}, not a list of records or an "
                "object; set 'records' to the dotted path of the rows.",
                url=self.shown,
            )
        value = _dig(body, path)
        # An error fails the run on every page, also beside records: keeping them would keep part of the data.
        error = _error_in(body) if value in (_MISSING, None, []) else _error_in(body, path)
        if error is not None:
            raise self._error_page(page, error)
        # `null` is no list; `page` and `offset` paging end at an empty list only, so there it is no end
        # either, unless the declared total has arrived. A cursor or link page says its end by itself.
        if value is None and self.endpoint.paging.kind not in ("page", "offset"):
            return []
        if value is _MISSING or value is None:
            if page > 1 and (done or self._last(body, headers, here)):
                return []  # some cursor and link APIs drop the list on their last page
            raise self._no_records(body, page, null=value is None)
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            return [value]
        raise self.session.error(
            f"Records path {path!r} of the API at {self.shown} holds a {type(value).__name__}, not a list of "
            "records; point 'records' at the list of rows.",
            url=self.shown,
        )

    def _last(self, body: Any, headers: Any, here: str) -> bool:
        """Whether a page shows that no page follows it: without a next cursor or link.

        `page` and `offset` APIs show their end only by an empty list, so a page without one is never
        provably their last.
        """
        paging = self.endpoint.paging
        if paging.kind == "cursor":
            return _blank(_dig(body, paging.cursor_field))
        if paging.kind == "link":
            following = body.get("next", _MISSING) if isinstance(body, dict) else _MISSING
            return _next_link(headers.get("Link"), here) is None and _blank(following)
        return False

    def _error_page(self, page: int, error: Any) -> FetchError:
        shown = json.dumps(error, ensure_ascii=False)
        return self.session.error(
            f"{self.label}: page {page} answered with an error instead of records ({self.session.excerpt(shown, 300)}); "
            "the run stops "
            "rather than keep part of the data. Run again later; if the error persists, check the endpoint's "
            "parameters, credentials and paging settings.",
            url=self.shown,
        )

    def _no_records(self, body: Any, page: int, null: bool = False) -> FetchError:
        path, kind = self.endpoint.records, self.endpoint.paging.kind
        keys = ", ".join(list(body)[:12]) if isinstance(body, dict) else type(body).__name__
        if page == 1:
            advice = "Fix 'records' in the endpoint's config."
        elif kind in ("page", "offset"):
            advice = (
                f"With {kind} paging a page without its list cannot be told from an error, so the run stops "
                "rather than keep part of the data. Run again; if the API really ends this way, set "
                "paging.total_field to where it declares its record count, so paging stops before that page."
            )
        else:
            advice = (
                f"The page still has a next {'cursor' if kind == 'cursor' else 'link'}, so it is not the last; "
                "the run stops rather than keep part of the data. Run again later."
            )
        return self.session.error(
            f"The API at {self.shown} has {'null' if null else 'nothing'} at records path {path!r} on page {page} "
            f"({self.label}); its answer holds: {keys}. {advice}",
            url=self.shown,
        )

    def _following(self, body: Any, headers: Any, here: str) -> str | None:
        """The next page's URL from the Link header or the top-level `next`, resolved against `here`."""
        try:
            following = _next_link(headers.get("Link"), here) or _next_field(body, here)
            scheme = urlsplit(following or "").scheme.lower()
            if following and scheme not in ("http", "https"):
                raise _BadNext(f"a URL of scheme {scheme!r}")
            unsafe = _unsafe(following) if following else None
            if unsafe is not None:
                raise self.session.error(
                    f"{self.label}: the API's next link {_shown_unsafe(following)} {unsafe}; refused, as its host "
                    "is in doubt and the credentials could reach another server. Ask the API's owner to fix the "
                    "link, or use another paging kind.",
                    url=self.shown,
                )
        except _BadNext as exc:
            what = f"{exc} ({self.session.excerpt(exc.quoted, 40)})" if exc.quoted is not None else str(exc)
            raise self.session.error(
                f"{self.label}: the next page the API names is {what}, not a URL link paging can follow (http or "
                "https, absolute or relative to the page). If its 'next' is a cursor, use paging kind 'cursor' "
                "with cursor_field 'next' and the query parameter the API reads it from.",
                url=self.shown,
            ) from None
        return following

    def _runaway(self, limit: int) -> FetchError:
        return self.session.error(
            f"runaway API: {self.label} still had a next page after {limit} pages (paging.max_pages = "
            f"{limit}); the run stops rather than keep part of the data. If the data really is that large, "
            "raise paging.max_pages for this endpoint; otherwise check its paging settings (kind, param, "
            "cursor_field), since the API never signalled a last page.",
            url=self.shown,
        )

    def _total(self, body: Any, first: bool) -> int | None:
        """The record count the API declares at paging.total_field (None where a page leaves it out)."""
        path = self.endpoint.paging.total_field
        if path is None:
            return None
        value = _dig(body, path)
        if value is _MISSING or value is None:
            if first:
                keys = ", ".join(list(body)[:12]) if isinstance(body, dict) else type(body).__name__
                raise self.session.error(
                    f"{self.label} has nothing at paging.total_field {path!r}; its answer holds: {keys}. "
                    "Fix total_field, or remove it to page until an empty page.",
                    url=self.shown,
                )
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.session.error(
                f"{self.label}: paging.total_field {path!r} holds {self.session.excerpt(repr(value), 40)}, not a "
                "count of records; "
                "point it at the total number of records, or remove it.",
                url=self.shown,
            )
        return value

    def _short_of_total(self, total: int, records: int) -> FetchError:
        return self.session.error(
            f"{self.label} declared {total} records at paging.total_field "
            f"{self.endpoint.paging.total_field!r}, but its pages ended after {records}: records would be "
            "missing, so the run stops. Run again (the data may have changed while paging); if the field "
            "does not count the records, remove paging.total_field.",
            url=self.shown,
        )

    def run(self, out) -> tuple[int, int]:
        """(pages, records) written."""
        endpoint, paging = self.endpoint, self.endpoint.paging
        numbered = paging.kind in ("page", "offset")
        url = endpoint.url
        params = {name: _param(value) for name, value in endpoint.params.items()}
        number, offset = 1, 0
        if numbered:
            params[paging.param] = str(number if paging.kind == "page" else offset)
            if paging.size_param:
                params[paging.size_param] = str(paging.size)
        seen: set[str] = set()
        pages = records = largest = 0
        total: int | None = None
        previous_page = b""
        while True:
            # A numbered API shows its end only by an empty page: one page past the limit may be asked for.
            probing = pages >= paging.max_pages
            if probing and not numbered:
                raise self._runaway(paging.max_pages)
            full = _with_params(url, params)
            try:
                body, headers, here = self.session.retrying(self.shown, "read the API", lambda u=full: self._get(u))
            except FetchError as exc:
                if numbered and pages and exc.status in _PAST_THE_END:
                    if total is not None and records >= total:
                        break  # the declared total arrived, and the API refuses to go past it (openFDA: 404)
                    if paging.total_field is None:
                        raise self.session.error(
                            f"{exc} If the API answers an error past its last page, set paging.total_field to "
                            "where it declares its record count, so paging stops there.",
                            url=exc.url,
                            status=exc.status,
                            attempts=exc.attempts,
                        ) from None
                raise
            pages += 1
            rows = self._records(body, pages, headers, here, done=total is not None and records >= total)
            declared = self._total(body, first=pages == 1)
            total = declared if declared is not None else total  # some APIs send it on the first page only
            if probing and rows:
                raise self._runaway(paging.max_pages)
            if self.session.known:
                rows = _without(rows, self.session.known_pattern, self.session.known_texts)
            text = "".join(_json_line(row) for row in rows).encode()
            if numbered and rows and hashlib.sha256(text).digest() == previous_page:
                raise self._loop("page of records")  # the API ignores paging.param
            previous_page = hashlib.sha256(text).digest()
            out.write(text)
            records += len(rows)
            if numbered:
                asked = paging.size if paging.size_param else None
                short = (asked is not None and len(rows) < asked) or len(rows) < largest
                largest = max(largest, len(rows))
                if not rows or (total is not None and records >= total and short):
                    break
                number += 1
                offset += len(rows)
                params[paging.param] = str(number if paging.kind == "page" else offset)
            elif paging.kind == "cursor":
                cursor = _dig(body, paging.cursor_field)
                if _blank(cursor):
                    break
                cursor = _param(cursor)
                if cursor in seen:
                    raise self._loop("cursor")
                seen.add(cursor)
                params[paging.param] = cursor
            elif paging.kind == "link":
                following = self._following(body, headers, here)
                if not following:
                    break
                following = _with_params(following, {}, drop=self.creds.params)  # an echoed key is set again
                if endpoint.url.lower().startswith("https://") and not following.lower().startswith("https://"):
                    raise self.session.error(
                        f"{self.label}: the API's next link leads from https to plain http "
                        f"({_redact(following)}); refused, as the request and the answer would travel "
                        "unencrypted. Ask the API's owner to fix the link, or use another paging kind.",
                        url=self.shown,
                    )
                if not self.creds.owns(following):
                    self.session.learn(following)  # its tokens, before this message or urllib3 shows it
                    if self.creds.owns(full):
                        log.warning(
                            "%s: the next link leads to another host (%s): following it without the credentials",
                            self.label,
                            self.session.scrub(_redact(following)),
                        )
                if following in seen or following == full:
                    raise self._loop("next link")
                seen.add(following)
                url, params = following, {}
            else:
                break
        if total is not None and records < total:
            raise self._short_of_total(total, records)
        if total is not None and records > total:
            log.warning("%s: declared %d records at paging.total_field but sent %d", self.label, total, records)
        return pages, records

    def _loop(self, what: str) -> FetchError:
        return self.session.error(
            f"runaway API: {self.label} returned the same {what} twice, so paging would never end. Check the "
            "endpoint's paging settings (kind, param, cursor_field).",
            url=self.shown,
        )


def fetch_api(
    endpoints: list[ApiEndpoint],
    lake: Lake,
    raw_prefix: str,
    *,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008
    headers: dict[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    max_page_bytes: int = MAX_API_PAGE_BYTES,
) -> FetchResult:
    """Every page of every endpoint as JSON lines, to `raw_prefix + endpoint_<i>.jsonl`.

    `secrets` maps the secret names of the endpoints' `auth` to their values (resolved by the caller).
    No value reaches a log line, an error message or the written records: each is replaced by `***`.
    `headers` (like the auth) go to each endpoint's own scheme, host and port only. A page is parsed
    in memory, so one that decodes to more than `max_page_bytes` fails the run.
    """
    headers = dict(headers or {})
    secrets = dict(secrets or {})
    creds = []
    for index, endpoint in enumerate(endpoints):
        auth_headers, auth_params, texts = _credentials(endpoint.auth, f"api_endpoints[{index}]", endpoint.url, secrets)
        creds.append(_Creds(endpoint.url, {**headers, **auth_headers}, auth_params, texts))
    suspects = list(headers.values())
    for endpoint in endpoints:
        suspects += _url_secrets(endpoint.url)
        suspects += [_param(v) for k, v in endpoint.params.items() if _SECRET_NAME.search(k)]
    known = [value for c in creds for value in c.values() if value not in headers.values()]
    session = _Session(policy, suspects, known, tuple(endpoint.url for endpoint in endpoints))
    keys: list[str] = []
    written = 0
    shown = ", ".join(_redact(endpoint.url) for endpoint in endpoints)
    try:
        with tempfile.TemporaryDirectory(prefix="dwfetch-") as tmp:
            for index, endpoint in enumerate(endpoints):
                name = f"endpoint_{index}.jsonl"
                local = Path(tmp) / name
                with open(local, "wb") as out:
                    listener = _listener
                    sink = out if listener is None else _CountingFile(out, _redact(endpoint.url), listener)
                    pages, records = _ApiPager(session, endpoint, index, {}, creds[index], max_page_bytes).run(sink)
                key = raw_prefix + name
                lake.put_file(local, key)
                keys.append(key)
                written += local.stat().st_size
                local.unlink()
                log.info("%s: %d records in %d pages to %s", _redact(endpoint.url), records, pages, key)
    except FetchError as exc:
        raise session.error(str(exc), url=exc.url, status=exc.status, attempts=exc.attempts) from None
    except Exception as exc:
        raise _unexpected(session, shown, exc) from None
    finally:
        session.close()
    return FetchResult(shown, keys, written, session.attempts, False, session.elapsed())


# --------------------------------------------------------------------------- public: unpacking


def _wanted_member(info: zipfile.ZipInfo) -> bool:
    name = info.filename.replace("\\", "/")
    base = name.rsplit("/", 1)[-1]
    if info.is_dir() or not base or base.startswith("."):
        return False
    if name.startswith("__MACOSX/") or "/__MACOSX/" in name:
        return False
    mode = info.external_attr >> 16
    return not (mode and (mode & 0o170000) not in (0, 0o100000))  # regular files only, no symlinks


# What a zip member is, by its name. Archives inside the archive are not unpacked (they would be read as
# text); data in a format other than the dataset's cannot be read with it; documentation is left out.
_ARCHIVES = (
    ".zip", ".tar", ".tgz", ".tbz", ".tbz2", ".txz", ".tar.gz", ".tar.bz2", ".tar.xz", ".7z", ".rar", ".xz",
    ".zst", ".lz", ".lzma", ".lz4", ".z", ".cab", ".jar", ".war", ".arj",
)  # fmt: skip
_DATA = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_UNREADABLE = (
    ".xls", ".xlsx", ".xlsm", ".xlsb", ".ods", ".xml", ".avro", ".orc", ".feather", ".arrow", ".dbf", ".shp",
    ".sav", ".dta", ".sas7bdat", ".sqlite", ".db", ".mdb", ".accdb",
)  # fmt: skip
_DOCS = (
    ".md", ".pdf", ".html", ".htm", ".rtf", ".doc", ".docx", ".odt", ".png", ".jpg", ".jpeg", ".gif", ".svg",
)  # fmt: skip
_DOC_NAMES = frozenset({"readme", "license", "licence", "copying", "notice", "changelog", "authors", "contributing"})


def _member_kind(name: str) -> str:
    """`archive`, `data:<format>`, `unreadable`, `text` (.txt: data or documentation), `doc` or `unknown`."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    inner = base.removesuffix(".gz").removesuffix(".bz2") if base.endswith((".gz", ".bz2")) else base
    if base.endswith(_ARCHIVES) or inner.endswith(_ARCHIVES):
        return "archive"
    suffix = PurePosixPath(inner).suffix
    if suffix in _DATA:
        return "data:" + _DATA[suffix]
    if suffix in _UNREADABLE:
        return "unreadable"
    if suffix == ".txt":
        return "text"
    if suffix in _DOCS or PurePosixPath(inner).stem in _DOC_NAMES:
        return "doc"
    return "unknown"


def _names(infos: list[zipfile.ZipInfo], limit: int = 5) -> str:
    shown = ", ".join(repr(info.filename) for info in infos[:limit])
    return shown + (f" and {len(infos) - limit} more" if len(infos) > limit else "")


def _select_members(key: str, infos: list[zipfile.ZipInfo], fmt: str | None) -> list[zipfile.ZipInfo]:
    """The members to read as the dataset's format `fmt` (None: the one data format the members have).

    Fails, naming them, on members that are archives or data of another format; leaves documentation
    out (.md, .pdf, .html, README…, and .txt beside data files of the format), with a log line."""
    kinds: dict[str, list[zipfile.ZipInfo]] = {}
    for info in infos:
        kinds.setdefault(_member_kind(info.filename), []).append(info)
    advice = (
        "A dataset reads one format and this platform cannot pick members of a zip: ask the source's owner for "
        "an archive of the data files alone, or make a dataset per file"
    )
    if "archive" in kinds:
        raise FetchError(
            f"Zip archive {key} holds another archive ({_names(kinds['archive'])}); an archive inside an archive is "
            "not unpacked, and reading it as data would give junk rows and miss its own. "
            f"{advice}, with the inner files at the top level.",
            url=key,
        )
    formats = sorted(kind.removeprefix("data:") for kind in kinds if kind.startswith("data:"))
    wanted = fmt or (formats[0] if len(formats) == 1 else None)
    if wanted is None and len(formats) > 1:
        held = "; ".join(f"{f}: {_names(kinds['data:' + f])}" for f in formats)
        raise FetchError(f"Zip archive {key} holds data files of more than one format ({held}). {advice}.", url=key)
    others = [info for kind, found in kinds.items() if kind.startswith("data:") and kind != f"data:{wanted}"
              for info in found] + kinds.get("unreadable", [])  # fmt: skip
    if others:
        raise FetchError(
            f"Zip archive {key} holds {_names(others)}, which this dataset cannot read as {wanted or 'its format'} "
            f"beside its data files. {advice}.",
            url=key,
        )
    data = kinds.get(f"data:{wanted}", [])
    skipped = kinds.get("doc", [])
    if data or wanted not in (None, "csv"):
        skipped = skipped + kinds.get("text", [])
    else:
        data = kinds.get("text", [])  # .txt files and nothing else of the format: they are the data
    if data and kinds.get("unknown"):
        raise FetchError(
            f"Zip archive {key} holds {_names(kinds['unknown'])} beside its {wanted} files, and cannot tell "
            f"whether they are data or documentation. {advice}.",
            url=key,
        )
    data = data or kinds.get("unknown", [])
    if skipped:
        log.info("%s: left out %s, which are not %s data", key, _names(skipped), wanted or "the dataset's")
    return [info for info in infos if info in data]


def _unique(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    stem, dot, ext = base.partition(".")
    number = 1
    while f"{stem}_{number}{dot}{ext}" in taken:
        number += 1
    return f"{stem}_{number}{dot}{ext}"


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError)
# Compressions Spark would decompress by itself, by file name; checked within the budget first.
_STREAMS: dict[str, Callable[[BinaryIO], Any]] = {".gz": gzip.open, ".bz2": bz2.open}
_STREAM_ERRORS = (OSError, EOFError, ValueError, zlib.error)


@dataclass(frozen=True)
class UnpackLimits:
    """How far archives may expand in one run (a dataset's `archive` options).

    `max_unpacked_bytes` bounds the bytes that come out of every archive and compressed file of a
    run together; `max_ratio` bounds what one archive yields per byte it holds, once it has yielded
    more than `ratio_floor` (small files may compress as well as they like). Both are counted while
    decompressing: sizes declared in a zip's headers are only used to refuse early.
    """

    max_unpacked_bytes: int = 20 * 1024**3
    max_ratio: float = 200.0
    ratio_floor: int = 16 * 1024**2


class _Budget:
    def __init__(self, limits: UnpackLimits):
        self.limits = limits
        self.total = 0

    def fail(self, archive: str, member: str, reason: str, advice: str) -> FetchError:
        return FetchError(
            f"Archive {archive}: {member} {reason}; unpacking stopped and what was unpacked was removed. {advice}",
            url=archive,
        )

    def check(self, archive: str, archive_bytes: int, member: str, unpacked: int, added: int = 0) -> None:
        """`unpacked`: bytes out of this archive so far; `added`: the part of them not yet in `self.total`."""
        limits, total = self.limits, self.total + added
        if total > limits.max_unpacked_bytes:
            raise self.fail(
                archive,
                member,
                f"exceeds archive.max_unpacked_bytes = {limits.max_unpacked_bytes} bytes ({total} bytes out of "
                "this run's archives so far)",
                "If the data really is that large, raise archive.max_unpacked_bytes in the dataset's config.json; "
                "otherwise the archive is damaged or hostile (a zip bomb).",
            )
        if unpacked > limits.ratio_floor and unpacked > limits.max_ratio * max(archive_bytes, 1):
            raise self.fail(
                archive,
                member,
                f"exceeds archive.max_ratio = {limits.max_ratio:g} times the archive's {archive_bytes} bytes "
                f"({unpacked} bytes so far)",
                "Real data rarely compresses that well; if this source does, raise archive.max_ratio in the "
                "dataset's config.json, otherwise the archive is damaged or hostile (a zip bomb).",
            )

    def stream(self, src, dst, archive: str, archive_bytes: int, member: str, done: int) -> int:
        """Copy a decompressing stream chunk by chunk (or count it, without `dst`); bytes copied."""
        copied = 0
        while chunk := src.read(CHUNK):
            copied += len(chunk)
            self.check(archive, archive_bytes, member, done + copied, copied)
            if dst is not None:
                dst.write(chunk)
        self.total += copied
        return copied


@contextmanager
def _raw_stream(lake: Lake, key: str) -> Iterator[tuple[BinaryIO, int]]:
    """(readable stream, size) of a lake object, without a local copy where the lake allows."""
    if isinstance(lake, LocalLake):
        path = lake.path(key)
        with open(path, "rb") as stream:
            yield stream, path.stat().st_size
    elif isinstance(lake, S3Lake):
        bucket, s3_key = _split_s3(lake.uri(key))
        answer = lake.client.get_object(Bucket=bucket, Key=s3_key)
        try:
            yield answer["Body"], int(answer["ContentLength"])
        finally:
            answer["Body"].close()
    else:
        with tempfile.TemporaryDirectory(prefix="dwunzip-") as tmp:
            local = Path(tmp) / "compressed"
            lake.get_file(key, local)
            with open(local, "rb") as stream:
                yield stream, local.stat().st_size


def _check_stream(budget: _Budget, stream: BinaryIO, size: int, name: str, shown: str) -> None:
    """A .gz or .bz2 file that Spark will decompress (by its `name`): within the budget, and complete."""
    opener = _STREAMS.get(PurePosixPath(name).suffix.lower())
    if opener is None:
        return
    try:
        with opener(stream) as src:
            budget.stream(src, None, shown, size, "its content", 0)
    except _STREAM_ERRORS as exc:
        raise FetchError(
            f"Could not decompress {shown}: {exc}. The file is truncated or damaged; check the source, or fetch "
            "it again.",
            url=shown,
        ) from None


def unpack_for_reading(
    lake: Lake,
    keys: list[str],
    staging_prefix: str,
    limits: UnpackLimits = UnpackLimits(),  # noqa: B008 - frozen dataclass, safe as a default
    fmt: str | None = None,
) -> list[str]:
    """The lake keys Spark should read for these raw keys: zip members unpacked to staging, the rest as is.

    Zip members and `.gz`/`.bz2` files are decompressed within `limits`, counted as the bytes come out;
    on any failure `staging_prefix` is removed and FetchError names the archive, the member and the limit.
    Of a zip, only the members of the dataset's format `fmt` (None: the one data format its members
    have) are unpacked: documentation is left out, and a member that is an archive or data of another
    format fails the run, named (see `_select_members`). So does a zip with bytes before its first
    member (two archives concatenated, or a self-extracting one), of which only the last would be read.
    """
    result: list[str] = []
    # A member is named apart from every other file of the run, the raw files too: each file's name (its rows'
    # `meta_source_file`) is unique, and so is their order (the first row in source order wins a repeated key).
    taken = {key.rsplit("/", 1)[-1] for key in keys if not key.lower().endswith(".zip")}
    budget = _Budget(limits)
    try:
        for key in keys:
            lowered = key.lower()
            if lowered.endswith(".zip"):
                result += _unpack_zip(lake, key, staging_prefix, taken, budget, fmt)
                continue
            if lowered.endswith(tuple(_STREAMS)):
                with _raw_stream(lake, key) as (stream, size):
                    _check_stream(budget, stream, size, key, key)
            result.append(key)  # plain files, and .gz/.bz2 checked above: Spark reads them directly
    except BaseException:
        lake.delete_prefix(staging_prefix)
        raise
    return result


def _unpack_zip(
    lake: Lake, key: str, staging_prefix: str, taken: set[str], budget: _Budget, fmt: str | None = None
) -> list[str]:
    result: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dwunzip-") as tmp:
        archive = Path(tmp) / "archive.zip"
        lake.get_file(key, archive)
        size = archive.stat().st_size
        member_file = Path(tmp) / "member"
        member = "a member"
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                if members and min(info.header_offset for info in members) > 0:
                    raise FetchError(
                        f"Zip archive {key} has {min(info.header_offset for info in members)} bytes before its "
                        "first member: two archives joined one after the other (of which only the last would be "
                        "read) or a self-extracting archive. Check the source; publish one plain zip.",
                        url=key,
                    )
                wanted = _select_members(key, [info for info in members if _wanted_member(info)], fmt)
                # A bomb that declares its size stops here, before a byte is written. One whose headers
                # understate it is stopped by the count below, or by zipfile, which never yields more than
                # the header declares and then fails the member's CRC.
                declared = sum(info.file_size for info in wanted)
                budget.check(key, size, "the size its headers declare", declared, declared)
                unpacked = 0
                for info in wanted:
                    member = f"member {info.filename!r}"
                    name = _unique(info.filename.replace("\\", "/").rsplit("/", 1)[-1], taken)
                    taken.add(name)
                    with zf.open(info) as src, open(member_file, "wb") as dst:
                        unpacked += budget.stream(src, dst, key, size, member, unpacked)
                    with open(member_file, "rb") as stream:
                        _check_stream(budget, stream, member_file.stat().st_size, name, f"{key} ({member})")
                    target = staging_prefix + name
                    lake.put_file(member_file, target)
                    member_file.unlink()
                    result.append(target)
        except _ZIP_ERRORS as exc:
            forged = "CRC" in str(exc) or "size" in str(exc).lower()
            why = (
                "Its content does not match its header (CRC or size), so the archive is damaged or forged"
                if forged
                else "The file is not a readable zip archive (damaged, encrypted or an unsupported compression)"
            )
            raise FetchError(
                f"Could not unpack {key} ({member}): {exc}. {why}; check the source, or fetch it again.",
                url=key,
            ) from None
        if not result:
            raise FetchError(
                f"Zip archive {key} holds no data files (only folders, __MACOSX/, hidden files or documentation); "
                "check the source.",
                url=key,
            )
    log.info("unpacked %s: %d files to %s", key, len(result), staging_prefix)
    return result
