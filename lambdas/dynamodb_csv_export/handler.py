"""Export a whole DynamoDB table to one CSV in the raw zone of the lake.

`handler(event, context)` scans the table named by `TABLE_NAME` and writes
`s3://{BUCKET_NAME}/raw/{DATASET}/run_id={run_id}/{DATASET}.csv` (see `Naming.export_key`).

Before scanning, it claims the run folder with a conditional put of `_EXPORT_STARTED` (If-None-Match: *):
raw/ is never rewritten, so a run id made from the clock that another export took moves on by a second,
and a run id given in the event that another export finished (its `_SUCCESS` is there) or may still be
running is refused. The claim records its invocation's deadline (now + `get_remaining_time_in_millis()`)
and when it lapses: `CLAIM_MARGIN_S` later, for a request sent just before a kill and for clocks. An export
that fails before its marker releases its claim (a conditional overwrite of its own claim with the run id's
fixed "failed" claim); one stopped without running its own code (killed at the time limit, out of memory)
cannot, and its claim lapses. The same run id may then be exported again, by a retry of the event or a new
invocation: it reads the claim and takes it over (If-Match the ETag it read, so of two takers one wins)
only if released or lapsed, and refuses one still standing, saying after when to retry. The taker aborts
the multipart uploads the stopped export noted in its claim, and its upload replaces any CSV that export
completed. Nothing of a failed or stopped export is read: bronze reads a run folder only once its `_SUCCESS`
marker is there. The marker is put If-None-Match: *, so a run's marker is published once.

Memory stays bounded whatever the size of the table: the table is read once, page by
page, and every row is streamed as a JSON line to a temporary file in /tmp while the
union of attribute names is collected; the CSV (header, then rows) is then written from
that file to a second temporary file, and uploaded with the S3 transfer manager, whose
multipart upload only makes the key appear once it is complete. /tmp must hold the CSV
and the JSON-lines copy, roughly 2 to 3 times the CSV.

Cells: strings as they are; numbers exactly as DynamoDB returns them (the low-level
client keeps them as strings); booleans `true`/`false`; maps and lists as compact JSON
whose numbers keep their exact digits; sets as sorted JSON arrays; binary as base64;
NULL and missing attributes empty. A row holding a carriage return is quoted as CPython 3.11.9+
quotes it (earlier versions leave a bare `\r` unquoted), so the bytes do not depend on the runtime.

Last, it writes the run folder's marker `_SUCCESS` (`Naming.drop_marker_key`), a small JSON
document naming the CSV (`files`, `bytes`, `rows`) and the DynamoDB types each attribute was seen
with (`types`: {"app_version": ["S"]}), which bronze uses to keep a string attribute a string: the
marker's arrival, not the CSV's, starts the pipeline, once per export.

A run that cannot finish before the Lambda's time limit raises `TimeoutError` and writes
nothing to the final key, nor a marker (and releases its claim, as any failure before the marker does).
An export stopped without running its own code keeps its claim until it lapses; its /tmp folder (the
JSON-lines copy and the CSV), which Lambda keeps for the next invocation in the same execution environment,
is deleted by the next export there (the folder's lock, `flock`, dies with the process that held it).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import errno
import fcntl
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from dwlib.naming import DROP_MARKER, Naming, check_run_id, new_run_id, next_run_id

logger = Logger(service="dynamodb-csv-export")

# Parallel scan: one segment per started GB or million items, at most MAX_SEGMENTS.
MAX_SEGMENTS = 16
SEGMENT_BYTES = 1 << 30
SEGMENT_ITEMS = 1_000_000

# Throttling left over after botocore's own (adaptive) retries: exponential backoff with jitter.
THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
THROTTLE_RETRIES = 8
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 20.0

# Time kept back from the Lambda's limit: max(30 s, 10 % of the limit), at most half of it.
SAFETY_MARGIN_MS = 30_000
SAFETY_FRACTION = 0.10
TIME_CHECK_ROWS = 10_000  # while writing the CSV, look at the clock every so many rows

# Upload memory is bounded by chunk size x concurrency, not by the size of the file.
TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024 * 1024,
    multipart_chunksize=16 * 1024 * 1024,
    max_concurrency=4,
)

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_sleep = time.sleep  # tests replace it


class _Stopped(Exception):
    """A parallel segment stopped because another one failed."""


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    table, bucket, dataset = (_env(name) for name in ("TABLE_NAME", "BUCKET_NAME", "DATASET"))
    given = (event or {}).get("run_id")
    run_id, claim = _claim(bucket, dataset, _run_id(given), given is None, context)
    key = Naming.export_key(dataset, run_id)
    marker = Naming.drop_marker_key(dataset, run_id)
    logger.append_keys(run_id=run_id, table=table, dataset=dataset)

    started = time.monotonic()
    try:
        run, manifest, details = _export(table, bucket, dataset, key, run_id, context, claim)
    except Exception as error:  # before the marker: nothing of this export is read, and the run id may be retried
        _release(bucket, dataset, run_id, claim, error)
        raise
    # Never empty: the arrival rule ignores 0-byte objects (console folders, placeholders). A failure from here on
    # keeps the claim: the marker may be stored (a reply lost), and a retry would rewrite a run bronze may be reading
    # (one after the claim lapsed finds the marker and stops).
    _publish(_s3_client(), bucket, marker, json.dumps(manifest).encode())

    logger.info(
        "export finished",
        extra={
            **details,
            "rows": run.rows,
            "bytes": manifest["bytes"],
            "marker": marker,
            "pages": run.pages,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return {"bucket": bucket, "key": key, "rows": run.rows, "run_id": run_id}


def _export(
    table: str, bucket: str, dataset: str, key: str, run_id: str, context: Any, claim: _Claim
) -> tuple[_Run, dict[str, Any], dict[str, Any]]:
    """Scan the table and upload its CSV to `key`; the run, the marker's manifest and what to log of it."""
    dynamodb = _dynamodb_client()
    description = dynamodb.describe_table(TableName=table)["Table"]
    key_names = _key_names(description)
    segments = _segments(description)
    run = _Run(table, bucket, key, context)
    logger.info(
        "export started",
        extra={
            "bucket": bucket,
            "key": key,
            "segments": segments,
            "item_count_estimate": description.get("ItemCount"),
            "table_size_bytes_estimate": description.get("TableSizeBytes"),
        },
    )

    with _work_dir() as work:
        try:
            parts = [os.path.join(work, f"segment-{i:02d}.jsonl") for i in range(segments)]
            types = _scan(dynamodb, run, parts)
            names = set(types)
            run.check_time("before writing the CSV")
            header = key_names + sorted(names.difference(key_names))
            csv_path = os.path.join(work, f"{dataset}.csv")
            written = _write_csv(run, parts, header, csv_path)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise OSError(
                    error.errno,
                    f"/tmp is full while exporting table {table!r} after {run.rows} rows: "
                    "raise the export function's ephemeral storage (it needs room for the CSV and a "
                    "JSON-lines copy of the table, roughly 2 to 3 times the CSV)",
                ) from error
            raise
        if written != run.rows:  # cannot happen unless a temporary file was lost
            raise RuntimeError(f"scanned {run.rows} rows of table {table!r} but wrote {written}")
        size = os.path.getsize(csv_path)
        run.check_time("before uploading")
        s3 = _s3_client()
        # Each multipart upload is noted in the claim before its parts go up: an export that takes the run over
        # after this one was stopped aborts it. The object only appears once complete; a single put is atomic.
        s3.meta.events.register("after-call.s3.CreateMultipartUpload", _noting_uploads(s3, claim, bucket, key))
        s3.upload_file(
            csv_path,
            bucket,
            key,
            ExtraArgs={"ContentType": "text/csv; charset=utf-8"},
            Config=TRANSFER,
        )
    # `types`: the DynamoDB types each attribute was seen with, so bronze types an attribute only ever a string (S)
    # as a string, not as the number or boolean its text may look like ("1.10", "NaN", "TRUE").
    manifest = {
        "run_id": run_id,
        "files": [key.rsplit("/", 1)[-1]],
        "rows": run.rows,
        "bytes": size,
        "types": {name: sorted(kinds) for name, kinds in sorted(types.items())},
    }
    return run, manifest, {"columns": len(header), "segments": segments}


def _noting_uploads(s3, claim: _Claim, bucket: str, key: str):
    """An after-call handler of CreateMultipartUpload that notes the upload in the claim (or aborts it and fails)."""

    def note(parsed: dict[str, Any], **_: Any) -> None:
        upload_id = parsed.get("UploadId")
        if not upload_id:
            return
        try:
            claim.note_upload(s3, upload_id)
        except BaseException:
            with contextlib.suppress(Exception):
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    return note


# ---------------------------------------------------------------- set-up


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(f"environment variable {name} is not set; the export stack sets it")
    return value


def _run_id(value: Any) -> str:
    if value is None:
        return new_run_id()
    if not isinstance(value, str):
        raise ValueError(f"run id {value!r} is not a string of the form YYYYMMDDTHHMMSSZ")
    return check_run_id(value)


# Written first, with If-None-Match: *, into the run folder: the export that puts it owns the folder. raw/ is never
# rewritten, so a second export with the same run id (one given again; two clock-made ids in one second, as an
# at-least-once async invocation may run twice) must not replace an earlier run's CSV. `_`: never read as data,
# and only `_SUCCESS` starts the pipeline.
CLAIM = "_EXPORT_STARTED"
CLAIM_TRIES = 60  # clock-made ids moved on by a second at most this often
# A condition that does not hold: the key exists (If-None-Match), has another ETag or is gone (If-Match), or another
# conditional write to it is under way.
CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey")
# A claim stands until its holder's deadline (the invocation's time limit, when Lambda stops it) and this margin
# more: a request the holder sent just before it was stopped may still be processed (S3 may take minutes over a
# CompleteMultipartUpload), and the clocks of two hosts differ a little.
CLAIM_MARGIN_S = 300
LAMBDA_MAX_S = 900  # no invocation runs longer: the bound of a claim written before claims held a deadline
WORK_PREFIX = "dynamodb-csv-export-"  # the export's folder in /tmp
WORK_LOCK = ".lock"  # locked (flock) by the export using the folder: the lock dies with its process

_now = time.time  # tests replace it


def _released(run_id: str) -> bytes:
    """The claim a failed export leaves: the same bytes for every failure of `run_id`."""
    return json.dumps({"run_id": run_id, "state": "failed"}).encode()


def _md5_etag(body: bytes) -> str:
    """The ETag S3 gives `body` put in one request: its MD5 (the lake bucket's SSE-S3 keeps it so)."""
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _put_claim(s3, bucket: str, key: str, body: bytes, **condition: str) -> str | None:
    """Put the claim `key` if `condition` holds (IfNoneMatch or IfMatch); its ETag, None when it does not hold."""
    try:
        return _put_if(s3, Bucket=bucket, Key=key, Body=body, ContentType="application/json", **condition)["ETag"]
    except ClientError as error:
        if _conflict(error):
            return None
        raise


# How often a conditional put is sent again when S3 answers 409 ConditionalRequestConflict, and the first wait.
CONFLICT_RETRIES = 4
CONFLICT_WAIT_S = 0.1


class ConditionalConflict(RuntimeError):
    """S3 answered 409 ConditionalRequestConflict to every try of a conditional write: neither done nor refused."""


def _put_if(s3, **request: Any) -> dict[str, Any]:
    """A conditional put_object, sent again while S3 answers 409 ConditionalRequestConflict: another conditional
    write to the key was under way, which may yet fail, and S3's documentation asks for a retry. Only 412 (the key
    is there, or has another ETag) says the condition does not hold; a 409 that outlasts the retries is a
    ConditionalConflict, never taken for a 412."""
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            return s3.put_object(**request)
        except ClientError as error:
            busy = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 409
            if not (busy or error.response.get("Error", {}).get("Code") == "ConditionalRequestConflict"):
                raise
            if attempt == CONFLICT_RETRIES:
                raise ConditionalConflict(
                    f"s3://{request['Bucket']}/{request['Key']}: S3 answered 409 ConditionalRequestConflict to each "
                    f"of {CONFLICT_RETRIES + 1} tries of a conditional write (another request on the key kept "
                    "going); invoke the export again"
                ) from None
            time.sleep(CONFLICT_WAIT_S * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")


def _conflict(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status in (409, 412) or error.response.get("Error", {}).get("Code") in CONFLICT_CODES


class _Claim:
    """This export's hold on its run folder: the claim object, its current ETag and what it says. The multipart
    uploads the export opens are noted in it, so that an export taking the run over after this one was stopped
    aborts them."""

    def __init__(self, bucket: str, key: str, record: dict[str, Any], etag: str) -> None:
        self.bucket, self.key, self.record, self.etag = bucket, key, record, etag
        self.lock = threading.Lock()

    def note_upload(self, s3, upload_id: str) -> None:
        with self.lock:
            record = {**self.record, "uploads": [*self.record.get("uploads", []), upload_id]}
            body = json.dumps(record).encode()
            etag = _put_claim(s3, self.bucket, self.key, body, IfMatch=self.etag) or _own_write(s3, self, body)
            if etag is None:
                raise RuntimeError(f"the claim s3://{self.bucket}/{self.key} changed under this export")
            self.record, self.etag = record, etag


def _own_write(s3, claim: _Claim, body: bytes) -> str | None:
    """The claim's ETag if it holds `body`: this export's write, refused only as the SDK's resend of it after its
    reply was lost (the ETag had changed: by that very write)."""
    try:
        got = s3.get_object(Bucket=claim.bucket, Key=claim.key)
    except ClientError as error:
        if _conflict(error):
            return None
        raise
    return got["ETag"] if got["Body"].read() == body else None


def _running(run_id: str, context: Any, uploads: list[str]) -> dict[str, Any]:
    """The claim of an export under way: until when it may run (its invocation's deadline), and until when the
    claim stands (`expires`); `attempt` tells this invocation's claim from any other's."""
    now = _now()
    deadline = now + context.get_remaining_time_in_millis() / 1000
    return {
        "run_id": run_id,
        "state": "running",
        "request_id": getattr(context, "aws_request_id", None),
        "attempt": uuid.uuid4().hex,
        "claimed": _utc(now),
        "deadline": _utc(math.ceil(deadline)),
        "expires": _utc(math.ceil(deadline) + CLAIM_MARGIN_S),
        "uploads": uploads,
    }


def _claim(bucket: str, dataset: str, run_id: str, from_clock: bool, context: Any) -> tuple[str, _Claim]:
    """Claim the run folder of `run_id` (its id and the claim); a clock-made id taken moves on by a second, a given
    one is taken over if a failed export released it or its holder's deadline has passed, else refused."""
    s3 = _s3_client()
    if not from_clock:
        # A finished run is refused before anything is written: its claim may stand, have lapsed (a retry would take
        # it over), or be gone (the raw/ lifecycle rule expires a folder's objects by the day each was written, so a
        # claim can go a day before its marker, and a new claim would overwrite the run's CSV).
        _refuse_finished(s3, bucket, dataset, run_id)
    for _ in range(CLAIM_TRIES):
        folder = Naming.raw_prefix(dataset, run_id)
        key = f"{folder}{CLAIM}"
        record = _running(run_id, context, [])
        etag = _put_claim(s3, bucket, key, json.dumps(record).encode(), IfNoneMatch="*")
        if etag is not None:
            return run_id, _Claim(bucket, key, record, etag)
        if not from_clock:
            return run_id, _take_over(s3, bucket, dataset, run_id, context, record)
        logger.info("run id taken, moving on by a second", extra={"taken": run_id})
        run_id = next_run_id(run_id)
    raise RuntimeError(f"no free run id in the {CLAIM_TRIES} seconds up to {run_id} in s3://{bucket}/raw/{dataset}/")


def _take_over(s3, bucket: str, dataset: str, run_id: str, context: Any, tried: dict[str, Any]) -> _Claim:
    """Take the run folder of a given run id over from an export that failed (it released its claim) or was stopped
    without running its own code (killed at the time limit, out of memory: its claim outlived its deadline), with a
    write conditional on the ETag of the claim as read, so that of two exports taking over, one wins; refuse one
    whose export may still be running (`_claim` refused a finished export's folder before its claim: an export that
    finishes after that held a claim that still stands). `tried`: the claim this export put
    If-None-Match, which may be the one there (stored, its reply lost, and the SDK's retry of the put refused)."""
    folder = Naming.raw_prefix(dataset, run_id)
    key, where = f"{folder}{CLAIM}", f"s3://{bucket}/{folder}"
    refused = f"run id {run_id} was already exported, or is being exported, to {where}"
    try:
        got = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        raise ValueError(f"{refused}: its claim {CLAIM} changed while this export read it; invoke it again") from None
    body, etag = got["Body"].read(), got["ETag"]
    if body == json.dumps(tried).encode():
        return _Claim(bucket, key, tried, etag)
    try:
        held = json.loads(body)
    except ValueError:
        held = {}
    held = held if isinstance(held, dict) else {}
    state = held.get("state")
    if state == "running":
        expires = _expiry(held, got["LastModified"].timestamp())
        if _now() < expires:
            who = f"request {held['request_id']}" if held.get("request_id") else "another invocation"
            raise ValueError(
                f"{refused}: {who} claimed it at {held.get('claimed') or _utc(got['LastModified'].timestamp())} and "
                f"may be running until {held.get('deadline') or 'its time limit'}, so this export stops before "
                f"scanning: two exports never write one run. If that export was stopped (time limit, out of memory), "
                f"invoke it again with the same run_id after {_utc(expires)}, when its claim lapses; {REPLAY}"
            )
        why = f"its holder's deadline passed (the claim lapsed at {_utc(expires)})"
    elif state == "failed":
        why = "a failed export released it"
    else:
        raise ValueError(
            f"{refused}: its claim {CLAIM} says {state!r}, which only a failed or stopped export gives up, so this "
            f"export stops before scanning. Invoke the export without a run_id or with a new one; {REPLAY}"
        )
    uploads = [u for u in held.get("uploads", []) if isinstance(u, str)]
    record = _running(run_id, context, uploads)
    taken = _put_claim(s3, bucket, key, json.dumps(record).encode(), IfMatch=etag)
    if taken is None:
        raise ValueError(
            f"{refused}: another invocation took the run folder over first (its claim {CLAIM} changed), so this "
            "export stops before scanning: two exports never write one run"
        )
    for upload_id in uploads:  # the stopped export's multipart uploads: never completed now, and their parts freed
        with contextlib.suppress(ClientError):
            s3.abort_multipart_upload(Bucket=bucket, Key=Naming.export_key(dataset, run_id), UploadId=upload_id)
    logger.info(
        "took the run folder over",
        extra={"why": why, "previous_request_id": held.get("request_id"), "aborted_uploads": len(uploads)},
    )
    return _Claim(bucket, key, record, taken)


REPLAY = "to load that run again, replay it with `dw run --raw-run-id`"


def _refuse_finished(s3, bucket: str, dataset: str, run_id: str) -> None:
    """A ValueError if the run folder of `run_id` holds its marker: raw/ is never rewritten."""
    folder = Naming.raw_prefix(dataset, run_id)
    if _listed(s3, bucket, folder).get(DROP_MARKER):
        raise ValueError(
            f"run id {run_id} was already exported, or is being exported, to s3://{bucket}/{folder}: it was exported "
            f"(its {DROP_MARKER} is there) and raw/ is never rewritten, so this export stops before scanning. Invoke "
            f"the export without a run_id (one is made from the clock) or with a new one; {REPLAY}"
        )


def _expiry(held: dict[str, Any], modified: float) -> float:
    """When a running claim lapses: its `expires`, at the latest the longest invocation and the margin after the
    claim was written (S3's clock, whole seconds), which also bounds a claim written before claims held a deadline."""
    latest = modified + 1 + LAMBDA_MAX_S + CLAIM_MARGIN_S
    try:
        said = datetime.strptime(held["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except (KeyError, TypeError, ValueError):
        return latest
    return min(said, latest)


def _listed(s3, bucket: str, folder: str) -> dict[str, dict[str, Any]]:
    """The objects of a run folder, by name."""
    found: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        for item in page.get("Contents", []):
            found[item["Key"][len(folder) :]] = item
    return found


def _release(bucket: str, dataset: str, run_id: str, claim: _Claim, error: BaseException) -> None:
    """After a failure before the marker: give the run folder up for a retry with the same run id, by overwriting
    this export's own claim (If-Match its ETag) with the released one. Never raises: the export's error is the news."""
    try:
        with claim.lock:
            s3, body = _s3_client(), _released(run_id)
            released = _put_claim(s3, bucket, claim.key, body, IfMatch=claim.etag) or _own_write(s3, claim, body)
    except Exception:
        released = None
    if released is None:
        logger.warning(
            "export failed and its run folder stays claimed until its claim lapses: invoke it again with the same "
            "run_id after then",
            extra={"error": f"{type(error).__name__}: {error}", "claim": claim.key, "lapses": claim.record["expires"]},
        )
    else:
        logger.warning(
            "export failed; its run folder is released for a retry with the same run id",
            extra={"error": f"{type(error).__name__}: {error}", "claim": claim.key},
        )


def _publish(s3, bucket: str, marker: str, body: bytes) -> None:
    """Put the run's marker, whose arrival starts the pipeline, once: If-None-Match, so that no second export of
    the run (one stopped whose last request is processed late) replaces it and starts the pipeline again."""
    busy = False
    try:
        _put_if(s3, Bucket=bucket, Key=marker, Body=body, ContentType="application/json", IfNoneMatch="*")
        return
    except ConditionalConflict:
        busy = True  # the tries may have stored it all the same: what the folder holds says
    except ClientError as error:
        if not _conflict(error):
            raise
    # There: this export's own put, stored before its reply was lost and the SDK sent it again, or another's.
    folder, name = marker.rsplit("/", 1)
    there = _listed(s3, bucket, folder + "/").get(name)
    if there is not None and there.get("ETag") == _md5_etag(body):
        return
    if there is None and busy:  # S3 answered 409 to every try, and the writes it waited on stored no marker
        raise RuntimeError(
            f"s3://{bucket}/{marker} could not be written: S3 answered 409 ConditionalRequestConflict "
            f"{CONFLICT_RETRIES + 1} times, and no marker is there: invoke the export again with the same run_id "
            "once this export's claim (the folder's _EXPORT_STARTED, its `expires`) lapses"
        )
    raise RuntimeError(
        f"s3://{bucket}/{marker} was written by another export of this run while this one ran, and is kept (the "
        "pipeline started on it): this export's CSV replaced that export's, so check that run before loading it"
    )


@contextlib.contextmanager
def _work_dir():
    """A folder in /tmp for this export, locked while it runs: an export stopped without running its own code (time
    limit, out of memory) leaves its folder, up to 3 times the CSV, and Lambda keeps /tmp for the next invocation
    in the same execution environment, which would run out of room. Each export deletes such folders first."""
    root = tempfile.gettempdir()
    for entry in os.scandir(root):
        if entry.name.startswith(WORK_PREFIX) and entry.is_dir(follow_symlinks=False) and _abandoned(entry.path):
            shutil.rmtree(entry.path, ignore_errors=True)
            logger.info("deleted the /tmp folder of a stopped export", extra={"folder": entry.path})
    work = tempfile.mkdtemp(prefix=WORK_PREFIX)
    lock = os.open(os.path.join(work, WORK_LOCK), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield work
    finally:
        os.close(lock)
        shutil.rmtree(work, ignore_errors=True)


def _abandoned(folder: str) -> bool:
    """No running export holds `folder`'s lock. A folder without one was made this instant, or by an export from before
    the lock: abandoned once older than the longest invocation."""
    try:
        lock = os.open(os.path.join(folder, WORK_LOCK), os.O_RDWR)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            return time.time() - os.stat(folder).st_mtime > LAMBDA_MAX_S
        return False
    except OSError:
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(lock)
    return True


def _client_config() -> Config:
    return Config(retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=MAX_SEGMENTS + 4)


def _dynamodb_client():
    return boto3.client("dynamodb", config=_client_config())


def _s3_client():
    return boto3.client("s3", config=_client_config())


def _key_names(description: dict[str, Any]) -> list[str]:
    """Partition key, then sort key."""
    order = {"HASH": 0, "RANGE": 1}
    schema = sorted(description["KeySchema"], key=lambda k: order[k["KeyType"]])
    return [k["AttributeName"] for k in schema]


def _segments(description: dict[str, Any]) -> int:
    """1 for a small table; else one per started GB or million items, at most MAX_SEGMENTS."""
    size = description.get("TableSizeBytes") or 0
    count = description.get("ItemCount") or 0
    return min(MAX_SEGMENTS, max(1, math.ceil(size / SEGMENT_BYTES), math.ceil(count / SEGMENT_ITEMS)))


class _Run:
    """Progress of one export, shared by the scan threads, and the clock."""

    def __init__(self, table: str, bucket: str, key: str, context: Any) -> None:
        self.table, self.bucket, self.key, self.context = table, bucket, key, context
        limit = context.get_remaining_time_in_millis()
        self.margin_ms = min(max(SAFETY_MARGIN_MS, SAFETY_FRACTION * limit), limit / 2)
        self.rows = 0
        self.pages = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def add_page(self, rows: int) -> None:
        with self.lock:
            self.rows += rows
            self.pages += 1

    def check_time(self, when: str) -> None:
        remaining = self.context.get_remaining_time_in_millis()
        if remaining < self.margin_ms:
            raise TimeoutError(
                f"export of DynamoDB table {self.table!r} stopped {when} after {self.rows} rows scanned: "
                f"{remaining / 1000:.1f} s of the Lambda's time limit remain, less than the "
                f"{self.margin_ms / 1000:.1f} s safety margin, so nothing was written to "
                f"s3://{self.bucket}/{self.key}. Raise the export function's timeout (at most 15 minutes) "
                "and memory (more memory also means more CPU and network), or give the dataset a bigger "
                "data_size_category."
            )


# ---------------------------------------------------------------- pass 1: DynamoDB -> JSON lines


def _scan(client, run: _Run, parts: list[str]) -> dict[str, set[str]]:
    """Scan the table once into one JSON-lines file per segment; every attribute name, with the DynamoDB types
    (`S`, `N`, `BOOL`, `M`...) it was seen with."""
    if len(parts) == 1:
        return _scan_segment(client, run, parts[0], 0, 1)
    names: dict[str, set[str]] = {}
    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="scan") as pool:
        futures = [
            pool.submit(_scan_segment, client, run, path, segment, len(parts)) for segment, path in enumerate(parts)
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() for f in done):
            run.stop.set()
        wait(futures)
    errors = [f.exception() for f in futures if f.exception() is not None]
    real = [e for e in errors if not isinstance(e, _Stopped)]
    if real:
        raise real[0]
    for future in futures:
        for name, kinds in future.result().items():
            names.setdefault(name, set()).update(kinds)
    return names


def _scan_segment(client, run: _Run, path: str, segment: int, total: int) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    request: dict[str, Any] = {"TableName": run.table}
    if total > 1:
        request.update(Segment=segment, TotalSegments=total)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        while True:
            if run.stop.is_set():
                raise _Stopped
            run.check_time("between scan pages")
            page = _scan_page(client, request, run)
            items = page.get("Items", [])
            for item in items:
                row = {}
                for name, value in item.items():
                    row[name] = _cell(value)
                    names.setdefault(name, set()).update(value)  # the value's one key is its type
                out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
                out.write("\n")
            run.add_page(len(items))
            last = page.get("LastEvaluatedKey")
            del page, items  # only one page in memory, also while the next one is read
            if not last:
                return names
            request["ExclusiveStartKey"] = last


def _scan_page(client, request: dict[str, Any], run: _Run) -> dict[str, Any]:
    for attempt in range(THROTTLE_RETRIES + 1):
        try:
            return client.scan(**request)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code not in THROTTLE_CODES or attempt == THROTTLE_RETRIES:
                raise
        delay = _backoff(attempt)
        logger.warning("scan throttled, backing off", extra={"attempt": attempt + 1, "delay_s": delay})
        run.check_time("while backing off from throttling")
        _sleep(delay)
    raise AssertionError("unreachable")


def _backoff(attempt: int) -> float:
    """Exponential backoff with equal jitter: in [cap/2, cap], cap = base * 2**attempt (bounded)."""
    cap = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)
    return cap / 2 + random.uniform(0, cap / 2)


# ---------------------------------------------------------------- DynamoDB values -> cells


def _cell(value: dict[str, Any]) -> str:
    """The CSV cell of one low-level AttributeValue."""
    ((kind, data),) = value.items()
    if kind in ("S", "N"):
        return data
    if kind == "BOOL":
        return "true" if data else "false"
    if kind == "NULL":
        return ""
    if kind == "B":
        return _b64(data)
    return _json(kind, data)


def _json(kind: str, data: Any) -> str:
    """Compact JSON of one AttributeValue; numbers keep DynamoDB's exact digits."""
    if kind == "S":
        return _json_string(data)
    if kind == "N":
        return _json_number(data)
    if kind == "BOOL":
        return "true" if data else "false"
    if kind == "NULL":
        return "null"
    if kind == "B":
        return _json_string(_b64(data))
    if kind == "M":
        return "{" + ",".join(f"{_json_string(k)}:{_json_value(v)}" for k, v in sorted(data.items())) + "}"
    if kind == "L":
        return "[" + ",".join(_json_value(v) for v in data) + "]"
    if kind == "SS":
        return "[" + ",".join(_json_string(s) for s in sorted(data)) + "]"
    if kind == "NS":
        return "[" + ",".join(_json_number(n) for n in sorted(data, key=lambda n: (Decimal(n), n))) + "]"
    if kind == "BS":
        return "[" + ",".join(_json_string(b) for b in sorted(_b64(b) for b in data)) + "]"
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def _json_value(value: dict[str, Any]) -> str:
    ((kind, data),) = value.items()
    return _json(kind, data)


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _json_number(text: str) -> str:
    """DynamoDB's number string as a JSON number, digits unchanged when already valid JSON."""
    if _JSON_NUMBER.fullmatch(text):
        return text
    normal = str(Decimal(text))  # `+5`, `.5`, `5.`, `007`: same value, JSON spelling
    if not _JSON_NUMBER.fullmatch(normal):
        raise ValueError(f"DynamoDB number {text!r} has no JSON spelling")
    return normal


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------- pass 2: JSON lines -> CSV


def _quoted_line(cells: list[str]) -> str:
    """A row holding a carriage return, as csv.writer quotes on CPython 3.11.9 and later: a cell with a comma,
    quote, `\n` or `\r` in quotes (quotes doubled). Earlier versions leave a bare `\r` unquoted, which a reader
    takes for the end of a row: the bytes must not depend on the Lambda's Python patch version."""
    special = (",", '"', "\n", "\r")
    return (
        ",".join('"' + cell.replace('"', '""') + '"' if any(c in cell for c in special) else cell for cell in cells)
        + "\n"
    )


def _write_csv(run: _Run, parts: list[str], header: list[str], path: str) -> int:
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for part in parts:
            with open(part, encoding="utf-8", newline="\n") as lines:  # rows end at \n only
                for line in lines:
                    row = json.loads(line)
                    cells = [row.get(name, "") for name in header]
                    if any("\r" in cell for cell in cells):
                        out.write(_quoted_line(cells))
                    else:
                        writer.writerow(cells)
                    rows += 1
                    if rows % TIME_CHECK_ROWS == 0:
                        run.check_time("while writing the CSV")
            with contextlib.suppress(OSError):
                os.remove(part)  # frees /tmp as the CSV grows
    return rows
