"""The lake: an S3 bucket on AWS, a directory that mirrors it on a laptop.

Jobs address everything by key (`bronze/fda_nsde/...`), and ask the lake for the URI
Spark should read or write (`s3://bucket/key` or `/abs/dir/key`). Only this module
knows the difference between the two.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    def replace_prefix(self, staged: str, final: str) -> None:
        """Make `final` hold exactly what `staged` holds; `final` stays whole if this fails midway."""

    def exists(self, key: str) -> bool:
        return any(obj.key == key for obj in self.list(key))

    def has_prefix(self, prefix: str) -> bool:
        return next(iter(self.list(prefix)), None) is not None

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, json.dumps(value, indent=2, sort_keys=False, default=str).encode())

    def data_files(self, prefix: str) -> list[LakeObject]:
        """Data files under a prefix, without Spark's and Hadoop's markers (`_SUCCESS`, `.crc`)."""
        return [
            obj
            for obj in self.list(prefix)
            if not obj.key.rsplit("/", 1)[-1].startswith(("_", ".")) and "/_temporary/" not in obj.key
        ]


class LocalLake(Lake):
    def __init__(self, root: Path):
        self.root = root.resolve()

    @property
    def root_uri(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def list(self, prefix: str) -> Iterator[LakeObject]:
        base = self.path(prefix)
        if base.is_file():
            yield LakeObject(prefix, base.stat().st_size)
            return
        if not base.is_dir():
            return
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            yield LakeObject(path.relative_to(self.root).as_posix(), path.stat().st_size)

    def put_file(self, local: Path, key: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)

    def get_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path(key), local)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def delete_prefix(self, prefix: str) -> int:
        base = self.path(prefix)
        if base.is_file():
            base.unlink()
            return 1
        if not base.is_dir():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base)
        return count

    def replace_prefix(self, staged: str, final: str) -> None:
        # Two renames on one file system: readers see the old folder or the new one, never a mix.
        new, target = self.path(staged), self.path(final)
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex}")
        if target.exists():
            os.replace(target, old)
        try:
            os.replace(new, target)
        except BaseException:
            if old.exists():
                os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)


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
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def delete_prefix(self, prefix: str) -> int:
        keys = [obj.key for obj in self.list(prefix)]
        self._delete(keys)
        return len(keys)

    def replace_prefix(self, staged: str, final: str) -> None:
        # S3 has no rename. Copy the new files in beside the old ones first (rolling the copies
        # back if any copy fails, so the old table stays whole), then delete the old files.
        old = [obj.key for obj in self.list(final)]
        copied: list[str] = []
        try:
            for obj in self.list(staged):
                target = final + obj.key[len(staged) :]
                if target in old:
                    raise RuntimeError(f"staged file {obj.key} would overwrite {target}; staged names must be new")
                self.client.copy({"Bucket": self.bucket, "Key": self._key(obj.key)}, self.bucket, self._key(target))
                copied.append(target)
        except BaseException:
            self._delete(copied)
            raise
        self._delete(old)
        self.delete_prefix(staged)
