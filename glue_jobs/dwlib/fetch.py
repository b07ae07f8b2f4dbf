"""Bring a dataset's source into the lake's raw area, byte for byte.

Sources are an http(s) URL, an `s3://bucket/key`, a `file:///abs/path` or a path relative to the
dataset folder (`fetch_source`), or a list of JSON API endpoints whose pages become JSON lines
(`fetch_api`). Every network request is retried on transient failures (connection errors,
timeouts, 408, 429 and 5xx) with exponential backoff and full jitter; a broken download resumes
with an HTTP Range request where the server allows it. Bodies stream through a temporary file in
1 MiB chunks, so memory stays flat whatever the size. Error messages name the URL without its
query string or credentials, and never carry request headers. An endpoint's `auth` secret (sent
as a header or a query parameter) is cut out of every message, log line and written record.

Runs inside a Glue 5.1 job and on a laptop: stdlib, urllib3 and boto3 only.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urljoin, urlsplit, urlunsplit

import urllib3
from urllib3 import exceptions as u3

from .lake import Lake, S3Lake

if TYPE_CHECKING:  # config needs pydantic; this module does not
    from collections.abc import Mapping

    from .config import ApiEndpoint

__all__ = [
    "FetchError",
    "FetchResult",
    "Probe",
    "RetryPolicy",
    "fetch_api",
    "fetch_source",
    "probe_source",
    "unpack_for_reading",
]

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # bytes per read and write
USER_AGENT = "dwlib-fetch/1.0 (+urllib3)"
# urllib3 only follows redirects; every other retry is ours, so it is counted, logged and bounded.
_FOLLOW_REDIRECTS = urllib3.Retry(
    total=None,
    connect=0,
    read=0,
    status=0,
    other=0,
    redirect=10,
    raise_on_redirect=True,
    raise_on_status=False,
)
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
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


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


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header; None where unknown."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    first = int(match[1]) if match[1] is not None else None
    total = int(match[3]) if match[3] != "*" else None
    return first, total


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- one call's retries


# urllib3 logs full request URLs (query included) at DEBUG, and redirects at INFO.
_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")


class _ScrubLogs(logging.Filter):
    """Cuts a session's secrets out of urllib3's log records while the session is open."""

    def __init__(self, session: _Session):
        super().__init__()
        self.session = session

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.session.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


class _Session:
    """Retries, the time budget, connection pools and secrets of one public call.

    `secrets` are values that look secret (query values, passwords), scrubbed when 4+ characters
    long; `known` are credentials resolved from a secret store, scrubbed whatever their length,
    also in their URL-encoded forms.
    """

    def __init__(
        self, policy: RetryPolicy, secrets: list[str] | tuple[str, ...] = (), known: list[str] | tuple[str, ...] = ()
    ):
        self.policy = policy
        self.started = time.monotonic()
        self.attempts = 0
        forms = {form for value in known if value for form in (value, quote(value, safe=""), quote_plus(value))}
        self.known = sorted(forms, key=len, reverse=True)
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4} | forms, key=len, reverse=True)
        self._log_filter = _ScrubLogs(self) if self.secrets else None
        for name in _URLLIB3_LOGGERS if self._log_filter else ():
            logging.getLogger(name).addFilter(self._log_filter)
        self.timeout = urllib3.Timeout(connect=policy.timeout, read=policy.timeout)
        self._pools: dict[str, urllib3.PoolManager] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def error(self, message: str, *, url: str | None = None, status: int | None = None, attempts: int = 0):
        return FetchError(self.scrub(message), url=url, status=status, attempts=attempts)

    def pool(self, url: str) -> urllib3.PoolManager:
        """A pool manager, through the environment's proxy (HTTPS_PROXY, NO_PROXY) when one applies."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        proxy = urllib.request.getproxies().get(parts.scheme)
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
        for name in _URLLIB3_LOGGERS if self._log_filter else ():
            logging.getLogger(name).removeFilter(self._log_filter)

    def check_deadline(self, shown: str, what: str, last: _Failure | None = None, tries: int = 0) -> None:
        budget = self.policy.max_total_seconds
        if self.elapsed() > budget:
            raise self._out_of_time(shown, what, last, tries)

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


# --------------------------------------------------------------------------- http(s) downloads


class _HttpDownload:
    """One URL into one open file, resuming with Range requests across attempts."""

    def __init__(self, session: _Session, url: str, out, progress: Callable[[int, int | None], None] | None):
        self.session = session
        self.url = url
        self.shown = _redact(url)
        self.out = out
        self.progress = progress
        self.have = 0
        self.total: int | None = None
        self.ranges_ok = True  # optimistic: a server that ignores Range answers 200 and we start over
        self.validator: str | None = None  # If-Range: resume only if the file did not change
        self.resumed = False

    def _restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.have = 0
        self.resumed = False

    def attempt(self) -> bool | _Failure:
        headers = {"Accept-Encoding": "identity"}
        ranged = self.have > 0 and self.ranges_ok
        if ranged:
            headers["Range"] = f"bytes={self.have}-"
            if self.validator:
                headers["If-Range"] = self.validator
        try:
            resp = self.session.pool(self.url).request(
                "GET",
                self.url,
                headers=headers,
                preload_content=False,
                decode_content=False,
                retries=_FOLLOW_REDIRECTS,
                timeout=self.session.timeout,
            )
        except (u3.HTTPError, OSError) as exc:
            transient, detail = _describe(exc)
            return _Failure(transient, detail)
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
            _, total = _content_range(resp.headers.get("Content-Range"))
            if total is not None and total == self.have:
                self.total = total
                return True  # we already had every byte
            self._restart()
            self.ranges_ok = False
            return _Failure(True, "the server refused to resume (HTTP 416); starting over", 416)
        if not 200 <= status < 300:
            return _status_failure(resp)
        if status == 206:
            first, total = _content_range(resp.headers.get("Content-Range"))
            if not ranged or first != self.have:
                self._restart()
                self.ranges_ok = False
                return _Failure(True, "the server sent a different part than asked for; starting over", 206)
            self.total = total
            self.resumed = True
            log.info("%s: resuming at byte %d", self.shown, self.have)
        else:
            if self.have:
                log.info("%s: the server sent the whole file again; starting over", self.shown)
                self._restart()
            self.total = _int_header(resp.headers.get("Content-Length"))
            self.ranges_ok = resp.headers.get("Accept-Ranges", "").strip().lower() != "none"
            etag = resp.headers.get("ETag")
            self.validator = etag if etag and not etag.startswith("W/") else resp.headers.get("Last-Modified")
        try:
            for chunk in resp.stream(CHUNK, decode_content=False):
                self.out.write(chunk)
                self.have += len(chunk)
                if self.progress is not None:
                    self.progress(self.have, self.total)
                self.session.check_deadline(self.shown, "download")
        except (u3.HTTPError, OSError) as exc:
            self.out.flush()
            _, detail = _describe(exc)
            return _Failure(True, f"the download broke after {self.have} bytes: {detail}")
        self.out.flush()
        if self.total is not None and self.have != self.total:
            if self.have > self.total:
                self._restart()
                return _Failure(True, f"received more bytes than the {self.total} announced; starting over")
            return _Failure(True, f"the body ended after {self.have} of {self.total} bytes")
        return True


def _fetch_http(session: _Session, url: str, target: Path, progress) -> tuple[int, bool]:
    with open(target, "wb") as out:
        download = _HttpDownload(session, url, out, progress)
        session.retrying(download.shown, "download", download.attempt)
    return target.stat().st_size, download.resumed


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
            "pass dataset_dir, or give an absolute file:/// URL."
        )
    return Path(dataset_dir) / source


def _kind(source: str) -> str:
    lowered = source.lower()
    if lowered.startswith(("https://", "http://")):
        return "http"
    if lowered.startswith("s3://"):
        return "s3"
    if lowered.startswith("file://") or "://" not in source:
        return "file"
    return "unknown"


def fetch_source(
    source_url: str,
    lake: Lake,
    raw_prefix: str,
    *,
    dataset_dir: Path | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
    progress: Callable[[int, int | None], None] | None = None,
) -> FetchResult:
    """Copy one source, unchanged, to `raw_prefix + <its file name>` in the lake."""
    session = _Session(policy, _url_secrets(source_url))
    kind = _kind(source_url)
    shown = _redact(source_url)
    resumed = False
    try:
        if kind == "unknown":
            raise session.error(
                f"Source {shown} has a scheme this platform cannot fetch; use https://, http://, s3://, "
                "file:// or a path relative to the dataset folder."
            )
        if kind == "file":
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
                    size, resumed = _fetch_http(session, source_url, local, progress)
                    lake.put_file(local, key)
    finally:
        session.close()
    seconds = session.elapsed()
    log.info("fetched %s to %s: %d bytes, %d attempts, %.1f s", shown, key, size, session.attempts, seconds)
    return FetchResult(source_url, [key], size, session.attempts, resumed, seconds)


def probe_source(
    source_url: str,
    *,
    dataset_dir: Path | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008
) -> Probe:
    """Can the source be read, and how large is it? Writes nothing; never raises for an unreachable source."""
    session = _Session(policy, _url_secrets(source_url))
    kind = _kind(source_url)
    shown = _redact(source_url)
    try:
        if kind == "http":
            return _probe_http(session, source_url)
        if kind == "s3":
            return _probe_s3(session, source_url)
        if kind == "file":
            path = _local_path(source_url, dataset_dir, session)
            if path.is_file():
                size = path.stat().st_size
                return Probe(True, size, f"file {path}, {size} bytes")
            return Probe(False, None, f"file {path} not found")
        return Probe(False, None, f"{shown}: unsupported scheme; use https://, http://, s3:// or file://")
    except FetchError as exc:
        return Probe(False, None, str(exc))
    finally:
        session.close()


def _probe_http(session: _Session, url: str) -> Probe:
    pool = session.pool(url)

    def request(method: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        return pool.request(
            method,
            url,
            headers={"Accept-Encoding": "identity", **headers},
            preload_content=False,
            decode_content=False,
            retries=_FOLLOW_REDIRECTS,
            timeout=session.timeout,
        )

    def attempt() -> Probe | _Failure:
        try:
            resp = request("HEAD", {})
            if resp.status in (400, 403, 405, 501):  # HEAD not allowed (or not signed for): ask for one byte
                resp.close()
                resp = request("GET", {"Range": "bytes=0-0"})
        except (u3.HTTPError, OSError) as exc:
            transient, detail = _describe(exc)
            return _Failure(transient, detail)
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


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _next_link(header: str | None, base: str) -> str | None:
    for match in _LINK.finditer(header or ""):
        for rel in _REL.finditer(match[2]):
            if "next" in (rel[1] or rel[2] or "").lower().split():
                return urljoin(base, match[1].strip())
    return None


def _next_field(body: Any, base: str) -> str | None:
    value = body.get("next") if isinstance(body, dict) else None
    if isinstance(value, str) and value.strip():
        value = value.strip()
        if value.lower().startswith(("https://", "http://")) or value.startswith("/"):
            return urljoin(base, value)
    return None


def _json_line(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


def _without(value: Any, secrets: list[str]) -> Any:
    """A JSON value with every known secret cut out of its strings (APIs may echo a key in a next link)."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, list):
        return [_without(item, secrets) for item in value]
    if isinstance(value, dict):
        return {_without(k, secrets): _without(v, secrets) for k, v in value.items()}
    return value


class _ApiPager:
    """Pages of one endpoint, appended as JSON lines to an open file.

    `auth_params` (a secret sent as a query parameter) go on every request, including those that
    follow a next link, and never into a message: messages show the URL without its query.
    """

    def __init__(
        self,
        session: _Session,
        endpoint: ApiEndpoint,
        headers: dict[str, str],
        auth_params: dict[str, str] | None = None,
    ):
        self.session = session
        self.endpoint = endpoint
        self.headers = {"Accept": "application/json", **headers}
        self.auth_params = dict(auth_params or {})
        self.shown = _redact(endpoint.url)

    def _get(self, url: str) -> tuple[Any, Any] | _Failure:
        try:
            resp = self.session.pool(url).request(
                "GET", url, headers=self.headers, retries=_FOLLOW_REDIRECTS, timeout=self.session.timeout
            )
        except (u3.HTTPError, OSError) as exc:
            transient, detail = _describe(exc)
            return _Failure(transient, detail)
        if not 200 <= resp.status < 300:
            return _status_failure(resp)
        try:
            return json.loads(resp.data), resp.headers
        except ValueError:
            kind = resp.headers.get("Content-Type", "no Content-Type")
            return _Failure(
                False,
                f"the answer is not JSON ({kind}, {len(resp.data)} bytes); check the URL and its parameters",
                resp.status,
            )

    def _records(self, body: Any, first: bool) -> list[Any]:
        path = self.endpoint.records
        if path is None:
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
        if value is _MISSING:
            if not first:
                return []  # some APIs drop the list on their last page
            keys = ", ".join(list(body)[:12]) if isinstance(body, dict) else type(body).__name__
            raise self.session.error(
                f"The API at {self.shown} has nothing at records path {path!r}; its answer holds: {keys}. "
                "Fix 'records' in the endpoint's config.",
                url=self.shown,
            )
        if value is None:
            return []
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            return [value]
        raise self.session.error(
            f"Records path {path!r} of the API at {self.shown} holds a {type(value).__name__}, not a list of "
            "records; point 'records' at the list of rows.",
            url=self.shown,
        )

    def _runaway(self, limit: int) -> FetchError:
        return self.session.error(
            f"runaway API: {self.shown} still had a next page after {limit} pages (paging.max_pages = "
            f"{limit}). If the data really is that large, raise paging.max_pages for this endpoint; "
            "otherwise check its paging settings (kind, param, cursor_field), since the API never "
            "signalled a last page.",
            url=self.shown,
        )

    def run(self, out) -> tuple[int, int]:
        """(pages, records) written."""
        endpoint, paging = self.endpoint, self.endpoint.paging
        url = endpoint.url
        params = {name: _param(value) for name, value in endpoint.params.items()}
        number, offset = 1, 0
        if paging.kind in ("page", "offset"):
            params[paging.param] = str(number if paging.kind == "page" else offset)
            if paging.size_param:
                params[paging.size_param] = str(paging.size)
        seen: set[str] = set()
        pages = records = 0
        while True:
            if pages >= paging.max_pages:
                raise self._runaway(paging.max_pages)
            full = _with_params(url, params)
            request = _with_params(full, self.auth_params)
            body, headers = self.session.retrying(self.shown, "read the API", lambda u=request: self._get(u))
            pages += 1
            rows = self._records(body, first=pages == 1)
            if self.session.known:
                rows = _without(rows, self.session.known)
            out.write("".join(_json_line(row) for row in rows).encode())
            records += len(rows)
            if paging.kind in ("page", "offset"):
                # Without size_param the server picks the page size, so only an empty page ends the data.
                short = paging.size_param is not None and len(rows) < paging.size
                if not rows or short:
                    break
                number += 1
                offset += len(rows)
                params[paging.param] = str(number if paging.kind == "page" else offset)
            elif paging.kind == "cursor":
                cursor = _dig(body, paging.cursor_field)
                if cursor is _MISSING or cursor is None or cursor in ("", [], {}):
                    break
                cursor = _param(cursor)
                if cursor in seen:
                    raise self._loop("cursor")
                seen.add(cursor)
                params[paging.param] = cursor
            elif paging.kind == "link":
                following = _next_link(headers.get("Link"), request) or _next_field(body, request)
                if not following:
                    break
                following = _with_params(following, {}, drop=self.auth_params)  # an echoed key is set again
                if following in seen or following == full:
                    raise self._loop("next link")
                seen.add(following)
                url, params = following, {}
            else:
                break
        return pages, records

    def _loop(self, what: str) -> FetchError:
        return self.session.error(
            f"runaway API: {self.shown} returned the same {what} twice, so paging would never end. Check the "
            "endpoint's paging settings (kind, param, cursor_field).",
            url=self.shown,
        )


def _auth(endpoint: ApiEndpoint, index: int, secrets: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query parameters) that carry the endpoint's secret; both empty without auth."""
    auth = endpoint.auth
    if auth is None:
        return {}, {}
    value = secrets.get(auth.secret)
    if not value:
        raise FetchError(
            f"api_endpoints[{index}] ({_redact(endpoint.url)}) needs secret {auth.secret!r}, which was not "
            "resolved for this run; resolve the dataset's secrets (DatasetConfig.secrets) and pass them to fetch_api."
        )
    if auth.query_param:
        return {}, {auth.query_param: value}
    header = auth.header_name or "Authorization"
    return {header: f"{auth.scheme} {value}" if auth.scheme else value}, {}


def fetch_api(
    endpoints: list[ApiEndpoint],
    lake: Lake,
    raw_prefix: str,
    *,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008
    headers: dict[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> FetchResult:
    """Every page of every endpoint as JSON lines, to `raw_prefix + endpoint_<i>.jsonl`.

    `secrets` maps the secret names of the endpoints' `auth` to their values (resolved by the caller).
    No value reaches a log line, an error message or the written records: each is replaced by `***`.
    """
    headers = dict(headers or {})
    secrets = dict(secrets or {})
    suspects = list(headers.values())
    for endpoint in endpoints:
        suspects += _url_secrets(endpoint.url)
        suspects += [_param(v) for k, v in endpoint.params.items() if _SECRET_NAME.search(k)]
    needed = {e.auth.secret for e in endpoints if e.auth is not None}
    session = _Session(policy, suspects, [value for name, value in secrets.items() if name in needed])
    keys: list[str] = []
    written = 0
    try:
        with tempfile.TemporaryDirectory(prefix="dwfetch-") as tmp:
            for index, endpoint in enumerate(endpoints):
                auth_headers, auth_params = _auth(endpoint, index, secrets)
                name = f"endpoint_{index}.jsonl"
                local = Path(tmp) / name
                with open(local, "wb") as out:
                    pages, records = _ApiPager(session, endpoint, {**headers, **auth_headers}, auth_params).run(out)
                key = raw_prefix + name
                lake.put_file(local, key)
                keys.append(key)
                written += local.stat().st_size
                local.unlink()
                log.info("%s: %d records in %d pages to %s", _redact(endpoint.url), records, pages, key)
    finally:
        session.close()
    source = ", ".join(_redact(endpoint.url) for endpoint in endpoints)
    return FetchResult(source, keys, written, session.attempts, False, session.elapsed())


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


def _unique(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    stem, dot, ext = base.partition(".")
    number = 1
    while f"{stem}_{number}{dot}{ext}" in taken:
        number += 1
    return f"{stem}_{number}{dot}{ext}"


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError)


def unpack_for_reading(lake: Lake, keys: list[str], staging_prefix: str) -> list[str]:
    """The lake keys Spark should read for these raw keys: zip members unpacked to staging, the rest as is."""
    result: list[str] = []
    taken: set[str] = set()
    for key in keys:
        if not key.lower().endswith(".zip"):
            result.append(key)  # .gz and plain files: Spark reads them directly
            continue
        with tempfile.TemporaryDirectory(prefix="dwunzip-") as tmp:
            archive = Path(tmp) / "archive.zip"
            lake.get_file(key, archive)
            member_file = Path(tmp) / "member"
            found = 0
            try:
                with zipfile.ZipFile(archive) as zf:
                    for info in zf.infolist():
                        if not _wanted_member(info):
                            continue
                        name = _unique(info.filename.replace("\\", "/").rsplit("/", 1)[-1], taken)
                        taken.add(name)
                        with zf.open(info) as src, open(member_file, "wb") as dst:
                            shutil.copyfileobj(src, dst, CHUNK)
                        target = staging_prefix + name
                        lake.put_file(member_file, target)
                        member_file.unlink()
                        result.append(target)
                        found += 1
            except _ZIP_ERRORS as exc:
                raise FetchError(
                    f"Could not unpack {key}: {exc}. The file is not a readable zip archive (damaged, "
                    "encrypted or an unsupported compression); check the source, or fetch it again.",
                    url=key,
                ) from None
            if not found:
                raise FetchError(
                    f"Zip archive {key} holds no data files (only folders, __MACOSX/ or hidden files); "
                    "check the source.",
                    url=key,
                )
        log.info("unpacked %s: %d files to %s", key, found, staging_prefix)
    return result
