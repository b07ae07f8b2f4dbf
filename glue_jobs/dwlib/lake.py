"""The lake: an S3 bucket on AWS, a directory that mirrors it on a laptop.

Jobs address everything by key (`bronze/fda_nsde/...`), and ask the lake for the URI
Spark should read or write (`s3://bucket/key` or `/abs/dir/key`). Only this module
knows the difference between the two.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dwlib.secrets import scrub


class LakeError(RuntimeError):
    """A storage operation that did not do everything it was asked to; names the keys left behind."""


# Journal states of an S3 publish (replace_prefix): before the commit point the publish is rolled
# back, after it rolled forward, by whoever finds the journal (the next run of the dataset). A local
# publish is decided by where its staged folder is (LocalLake._settle).
BEFORE_COMMIT, AFTER_COMMIT = "copying", "deleting"
# Waits before a whole S3 request (a delete, a journal write) is tried again after a 5xx, a throttle or a dropped
# connection: the publish's own retries, on top of the SDK's.
RETRY_DELAYS = (0.5, 2.0)
# Waits before a conditional write is sent again after 409 ConditionalRequestConflict (each up to twice as long).
CONFLICT_DELAYS = (0.1, 0.2, 0.4, 0.8)
TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling",
                   "ThrottlingException", "RequestTimeTooSkewed"}  # fmt: skip


def _transient(exc: Exception) -> bool:
    """An S3 request that may succeed if sent again: a 5xx or throttle answer, or no answer at all."""
    response = getattr(exc, "response", None)
    if response is None:
        return type(exc).__module__.startswith(("botocore", "urllib3", "socket")) or isinstance(exc, OSError)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return status >= 500 or status == 429 or response.get("Error", {}).get("Code") in TRANSIENT_CODES


def _reason(exc: BaseException) -> str:
    """The error in one line, secrets scrubbed from the whole text before it is cut."""
    return " ".join((scrub(f"{type(exc).__name__}: {exc}") or "").split())[:300]


def _identity(path: Path) -> list[int] | None:
    """The folder's device and inode: the same after a rename on one file system; None if there is none."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return [found.st_dev, found.st_ino]


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=False, default=str).encode()


def _listing(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


@dataclass(frozen=True)
class LakeObject:
    key: str
    size: int


class Lake(ABC):
    """Storage operations the jobs need, by key."""

    @staticmethod
    def from_uri(uri: str) -> Lake:
        """`s3://bucket` (or `s3://bucket/prefix`) or a local directory."""
        if uri.startswith("s3://"):
            bucket, _, prefix = uri.removeprefix("s3://").partition("/")
            return S3Lake(bucket, prefix.strip("/"))
        return LocalLake(Path(uri.removeprefix("file://")))

    @property
    @abstractmethod
    def root_uri(self) -> str: ...

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where Spark reads or writes the key."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[LakeObject]:
        """Objects under the prefix, recursively, in key order."""

    @abstractmethod
    def put_file(self, local: Path, key: str) -> None: ...

    @abstractmethod
    def get_file(self, key: str, local: Path) -> None: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int: ...

    @abstractmethod
    def replace_prefix(self, staged: str, final: str, journal: str | None = None, about: dict | None = None) -> None:
        """Make `final` hold exactly what `staged` holds; `final` stays whole if this fails midway.

        With `journal` (a key outside `final`), the publish is written down before it starts, so
        that `finish_publish(journal)` can complete or undo it if this process dies midway; `about`
        (run id, layer) is kept in the journal for whoever finishes it. The journal stays after a publish
        that finished: the caller removes it once its ledger entry says so (a run killed in between is
        then completed, not left `publishing`).

        Raises LakeError when `final` may hold the files of both generations (the journal then lets the
        next run finish or undo it); any other exception leaves `final` as it was.
        """

    @abstractmethod
    def finish_publish(self, journal: str) -> dict | None:
        """Complete or roll back the publish a journal describes, then remove the journal.

        Returns the journal with `outcome` ("completed" or "rolled back") and `detail`, or None
        when there is no journal. Raises LakeError, naming the keys, when it cannot.
        """

    # Conditional writes: what a lock needs (S3: If-None-Match / If-Match; a directory: link and flock).
    @abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write the object only if no object has the key; False if one has."""

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object and a token that changes with every write, or None if absent."""

    @abstractmethod
    def replace_if_unchanged(self, key: str, token: str, data: bytes) -> bool:
        """Overwrite the object only if it is still the version `token` names."""

    @abstractmethod
    def delete_if_unchanged(self, key: str, token: str) -> bool:
        """Delete the object only if it is still the version `token` names."""

    def exists(self, key: str) -> bool:
        return any(obj.key == key for obj in self.list(key))

    def has_prefix(self, prefix: str) -> bool:
        return next(iter(self.list(prefix)), None) is not None

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, _json(value))

    def data_files(self, prefix: str) -> list[LakeObject]:
        """Data files under a prefix, without Spark's and Hadoop's markers (`_SUCCESS`, `.crc`)."""
        return [
            obj
            for obj in self.list(prefix)
            if not obj.key.rsplit("/", 1)[-1].startswith(("_", ".")) and "/_temporary/" not in obj.key
        ]


# What to do about a local disk that refuses a write (`{root}`: the lake folder); other OSErrors pass unchanged.
_REFUSALS = {
    errno.EACCES: "this user may not write there: make {root} writable (chmod -R u+w {root}) or give --lake a "
                  "folder you can write",
    errno.EROFS: "{root} is on a read-only file system: give --lake a folder on a writable disk",
    errno.ENOSPC: "the disk holding {root} is full: free space on it, then run again",
    errno.EDQUOT: "the disk quota of {root} is used up: free space within it (or have it raised), then run again",
}  # fmt: skip
_REFUSALS[errno.EPERM] = _REFUSALS[errno.EACCES]


# The hidden copy a local write renames into place (`.{name}.{uuid hex}.tmp`): one a killed writer left is no
# object, as a put that never finished is none on S3.
_PARTIAL_WRITE = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")


class LocalLake(Lake):
    def __init__(self, root: Path):
        self.root = root.resolve()

    @property
    def root_uri(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        return self.root / key

    @contextlib.contextmanager
    def _refused(self, key: str, doing: str = "write") -> Iterator[None]:
        """A disk that refuses the work on `key` (no permission, read-only, full) is a LakeError naming the key's path,
        not the hidden file or folder a write goes through, and the fix."""
        try:
            yield
        except OSError as exc:
            fix = _REFUSALS.get(exc.errno or 0)
            if fix is None:
                raise
            raise LakeError(
                f"could not {doing} {self.path(key)} in the lake ({exc.strerror}); {fix.format(root=self.root)}"
            ) from exc

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def list(self, prefix: str) -> Iterator[LakeObject]:
        base = self.path(prefix)
        if base.is_file():
            yield LakeObject(prefix, base.stat().st_size)
            return
        if not base.is_dir():
            return
        for path in sorted(p for p in base.rglob("*") if p.is_file() and not _PARTIAL_WRITE.fullmatch(p.name)):
            yield LakeObject(path.relative_to(self.root).as_posix(), path.stat().st_size)

    def put_file(self, local: Path, key: str) -> None:
        # Copied under a hidden name, then renamed: a kill midway leaves no truncated file under the key.
        target = self.path(key)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        with self._refused(key):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(OSError):  # a folder that refused the copy may refuse its removal too
                    tmp.unlink(missing_ok=True)

    def get_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path(key), local)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._refused(key):
            self._write(key, data)

    def _write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError:
            with contextlib.suppress(OSError):  # a full disk: the partial copy goes; it is no object either way
                tmp.unlink(missing_ok=True)
            raise

    def delete_prefix(self, prefix: str) -> int:
        with self._refused(prefix, "delete"):
            return self._remove(prefix)

    def _remove(self, prefix: str) -> int:
        base = self.path(prefix)
        if base.is_file():
            base.unlink()
            return 1
        if not base.is_dir():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base)
        return count

    def replace_prefix(self, staged: str, final: str, journal: str | None = None, about: dict | None = None) -> None:
        # Two renames on one file system: readers see the old folder or the new one, never a mix.
        # A process killed between them leaves the old folder parked under a hidden name; the
        # journal says where, and names the new folder by its inode (a rename keeps it), so that
        # whoever finishes the publish sees whether the new folder reached the table's place.
        # A disk that refuses (no permission, read-only, full) is an OSError naming `final`, not the hidden parked
        # name: it leaves `final` as it was, which a LakeError would deny.
        new, target = self.path(staged), self.path(final)
        old = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex}")
        record = {**(about or {}), "staged": staged, "final": final, "parked": self._key_of(old)}
        record["staged_folder"] = _identity(new)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if journal:
                self._write(journal, _json({**record, "state": BEFORE_COMMIT}))
            try:
                if target.exists():
                    os.replace(target, old)
                os.replace(new, target)
            except BaseException:
                # Whichever rename failed: put the old folder back, unless the new one got in after all.
                # If that fails too, or the new folder is in, the journal stays for the next run.
                if not self._settle(record) and journal:
                    self.delete_prefix(journal)  # refused: a LakeError, and the journal stays for the next run
                raise
        except OSError as exc:
            if exc.errno not in _REFUSALS:
                raise
            raise type(exc)(exc.errno, exc.strerror, str(target)) from exc
        shutil.rmtree(old, ignore_errors=True)
        # The journal stays until the run's ledger entry says succeeded (run.guarded_run removes it): a run killed
        # before that is completed by the next run, which finds the new folder in place.

    def _key_of(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _settle(self, record: dict) -> bool:
        """Finish the publish a journal record describes from what the folders are; True if the new one is in.

        The table's folder is the staged one (same inode): drop the parked old folder. Otherwise put the
        parked folder back, if the old one got parked. A journal written before the staged folder's
        inode was kept counts as completed only once the old folder was parked and staging moved away.
        """
        target, parked = self.path(record["final"]), self.path(record["parked"])
        if "staged_folder" in record:
            in_place = record["staged_folder"] is not None and _identity(target) == record["staged_folder"]
        else:
            in_place = record.get("state") == AFTER_COMMIT or (
                parked.exists() and target.exists() and not self.path(record["staged"]).exists()
            )
        if in_place:
            shutil.rmtree(parked, ignore_errors=True)
        elif parked.exists():
            if target.exists():
                shutil.rmtree(target)
            os.replace(parked, target)
        return in_place

    def finish_publish(self, journal: str) -> dict | None:
        if not self.path(journal).is_file():
            return None
        record = self.read_json(journal)
        with self._refused(record.get("final", journal), "finish the publish of"):
            if self._settle(record):
                record.update(outcome="completed", detail=f"{record['final']} holds the new files")
            else:
                record.update(outcome="rolled back", detail=f"{record['final']} holds the previous files again")
            self._remove(journal)
        return record

    @contextlib.contextmanager
    def _pinned(self, key: str, token: str) -> Iterator[bool]:
        """Hold an flock on the object's file; yields whether it is still the version `token` names.

        Writers replace or unlink the file while holding the flock, so a writer that waited for it
        checks that the path still names the file it locked; no extra lock file is left behind.
        """
        target = self.path(key)
        try:
            fd = os.open(target, os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same_file = os.stat(target).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
            current = self.read_versioned(key) if same_file else None
            yield current is not None and current[1] == token
        finally:
            os.close(fd)  # closing releases the flock

    def create_exclusive(self, key: str, data: bytes) -> bool:
        # Write the whole content under a private name, then link it to the key: link(2) fails if
        # the key exists, so exactly one writer wins and no reader ever sees a half-written object.
        target = self.path(key)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        with self._refused(key):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                tmp.write_bytes(data)
                os.link(tmp, target)
                return True
            except FileExistsError:
                return False
            finally:
                with contextlib.suppress(FileNotFoundError):  # the write itself may have failed
                    tmp.unlink()

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def replace_if_unchanged(self, key: str, token: str, data: bytes) -> bool:
        with self._pinned(key, token) as unchanged:
            if unchanged:
                self.write_bytes(key, data)
            return unchanged

    def delete_if_unchanged(self, key: str, token: str) -> bool:
        with self._pinned(key, token) as unchanged:
            if unchanged:
                with self._refused(key, "delete"):
                    self.path(key).unlink()
            return unchanged


class S3Lake(Lake):
    def __init__(self, bucket: str, prefix: str = "", client=None):
        import boto3

        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.client = client or boto3.client("s3")

    @property
    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def list(self, prefix: str) -> Iterator[LakeObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                yield LakeObject(item["Key"][len(self.prefix) :], item["Size"])

    def put_file(self, local: Path, key: str) -> None:
        self.client.upload_file(str(local), self.bucket, self._key(key))  # transfer manager: multipart

    def get_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._key(key), str(local))

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def _delete(self, keys: list[str]) -> None:
        """Delete the keys; raise LakeError naming every key S3 did not delete.

        DeleteObjects answers 200 even when some keys fail (access denied, a legal hold): the
        per-key `Errors` of every batch are what says whether the objects are gone.
        """
        failed: list[str] = []
        reasons: set[str] = set()
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            answer = self._again(self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            for error in answer.get("Errors", []):
                failed.append(error.get("Key", "?")[len(self.prefix) :])
                reasons.add(f"{error.get('Code', '?')}: {error.get('Message', '')}".strip(": "))
        if failed:
            raise LakeError(
                f"S3 did not delete {len(failed)} of {len(keys)} object(s) in s3://{self.bucket}/{self.prefix} "
                f"({'; '.join(sorted(reasons))}): {_listing(failed)}"
            )

    def delete_prefix(self, prefix: str) -> int:
        keys = [obj.key for obj in self.list(prefix)]
        self._delete(keys)
        return len(keys)

    def _again(self, call, *args, **kwargs):
        """`call`, sent again after RETRY_DELAYS while S3 answers with a transient failure."""
        for delay in (*RETRY_DELAYS, None):
            try:
                return call(*args, **kwargs)
            except Exception as exc:
                if delay is None or not _transient(exc):
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")

    def replace_prefix(self, staged: str, final: str, journal: str | None = None, about: dict | None = None) -> None:
        # S3 has no rename. Copy the new files in beside the old ones (rolling the copies back if
        # any copy fails, so the old table stays whole), then delete the old files. The journal,
        # written before the first copy, lets the next run finish what a killed run started:
        # before the commit point (all copies made) it removes the copies, after it the old files.
        # In between, for as long as the copies and deletes take, a reader can see both; whatever fails
        # from the first copy on either leaves the old table whole (the copies removed again) or raises
        # LakeError saying that the table holds both generations until the next run.
        old = [obj.key for obj in self.list(final)]
        pairs = [(obj.key, final + obj.key[len(staged) :]) for obj in self.list(staged)]
        clash = [target for _, target in pairs if target in set(old)]
        if clash:
            raise LakeError(f"staged files would overwrite {_listing(clash)}; staged names must be new")
        record = {**(about or {}), "staged": staged, "final": final, "old": old, "new": [t for _, t in pairs]}
        if journal:
            self._again(self.write_json, journal, {**record, "state": BEFORE_COMMIT})
        copied: list[str] = []
        try:
            for source, target in pairs:
                self.client.copy({"Bucket": self.bucket, "Key": self._key(source)}, self.bucket, self._key(target))
                copied.append(target)
            if journal:
                self._again(self.write_json, journal, {**record, "state": AFTER_COMMIT})
        except BaseException as exc:
            self._roll_back(copied, journal, final, exc)
            raise
        try:
            self._delete(old)  # raises, naming the keys, if S3 keeps any: the journal stays for the next run
        except LakeError:
            raise
        except Exception as exc:
            raise LakeError(
                f"the new files are in {final}, but deleting its {len(old)} previous file(s) failed ({_reason(exc)}); "
                f"the journal {journal} has the next run delete them"
            ) from exc
        with contextlib.suppress(Exception):
            self.delete_prefix(staged)  # a leftover in staging/ is never read, and the lifecycle rule expires it

    def _roll_back(self, copied: list[str], journal: str | None, final: str, exc: BaseException) -> None:
        """Remove the copies a failed publish made; LakeError if that fails too (the table holds both generations).

        Returns when the copies are gone: the caller re-raises `exc`, and the table is as it was.
        """
        try:
            self._delete(copied)
        except Exception as undo:
            if not isinstance(exc, Exception):
                return  # the process is going away (a kill, Ctrl-C): its journal has the next run undo it
            raise LakeError(
                f"the publish stopped ({_reason(exc)}) after copying {len(copied)} new file(s) into {final}, and "
                f"removing them again failed ({_reason(undo)}); the journal {journal} has the next run remove them"
            ) from exc
        if journal:
            # Nothing to finish any more. A journal left here still names only copies that are gone.
            with contextlib.suppress(Exception):
                self._again(self.delete_prefix, journal)

    def finish_publish(self, journal: str) -> dict | None:
        found = self.read_versioned(journal)
        if found is None:
            return None
        record = json.loads(found[0])
        present = {obj.key for obj in self.list(record["final"])}
        # The commit point holds only if every copy is there (a journal write that timed out after the copies
        # were rolled back may still have landed): otherwise the old files are the table, and must stay.
        if record.get("state") == AFTER_COMMIT and all(k in present for k in record["new"]):
            self._delete([k for k in record["old"] if k in present])
            record.update(outcome="completed", detail=f"removed the previous files of {record['final']}")
        else:
            self._delete([k for k in record["new"] if k in present])
            record.update(outcome="rolled back", detail=f"removed the copies the run had made in {record['final']}")
        with contextlib.suppress(Exception):
            self.delete_prefix(record["staged"])
        self._again(self.delete_prefix, journal)
        return record

    @staticmethod
    def _refused(exc: Exception) -> bool:
        """A precondition that did not hold (412), a concurrent conditional write (409), or no object (404)."""
        response = getattr(exc, "response", None) or {}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = response.get("Error", {}).get("Code")
        return status in (404, 409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey")

    def _if(self, call, key: str, **request) -> bool:
        """A conditional write: True if done, False if its condition did not hold (412, or no object). Sent again
        while S3 answers 409 ConditionalRequestConflict (another conditional write to the key under way, which may
        yet fail: S3's documentation asks for a retry); one that outlasts the retries is a LakeError, never taken
        for the condition failing."""
        for delay in (*CONFLICT_DELAYS, None):
            try:
                call(Bucket=self.bucket, Key=self._key(key), **request)
                return True
            except self.client.exceptions.ClientError as exc:
                if not self._refused(exc):
                    raise
                response = exc.response
                busy = response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 409
                if not (busy or response.get("Error", {}).get("Code") == "ConditionalRequestConflict"):
                    # Refused, maybe for this very write: stored, its reply lost, and the SDK's resend refused
                    # (the key is there now, or has a new ETag). The bytes say whether the key holds this write.
                    found = self.read_versioned(key) if "Body" in request else None
                    return found is not None and found[0] == request["Body"]
                if delay is None:
                    raise LakeError(
                        f"{self.uri(key)}: S3 answered 409 ConditionalRequestConflict to each of "
                        f"{len(CONFLICT_DELAYS) + 1} tries of a conditional write (another request on the key kept "
                        "going), so it was neither done nor refused"
                    ) from None
                time.sleep(delay * (1 + random.random()))
        raise AssertionError("unreachable")

    def create_exclusive(self, key: str, data: bytes) -> bool:
        return self._if(self.client.put_object, key, Body=data, IfNoneMatch="*")

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if self._refused(exc):
                return None
            raise
        return answer["Body"].read(), answer["ETag"]

    def replace_if_unchanged(self, key: str, token: str, data: bytes) -> bool:
        return self._if(self.client.put_object, key, Body=data, IfMatch=token)

    def delete_if_unchanged(self, key: str, token: str) -> bool:
        return self._if(self.client.delete_object, key, IfMatch=token)
