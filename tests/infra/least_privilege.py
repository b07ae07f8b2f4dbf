"""Least privilege, exercised: the AWS calls a job or function makes, as IAM requests, judged against
the synthesized policies of the role that runs it by @cloud-copilot/iam-simulate (iam_harness.mjs).

- `Recorder` sees every call boto3's default session makes (botocore's `provide-client-params` event),
  the parameters as the code passed them.
- `requests_of` turns one call into the IAM requests AWS authorizes for it (the Service Authorization
  Reference: ListObjectsV2 is s3:ListBucket on the bucket, DeleteObjects one s3:DeleteObject per key,
  CopyObject s3:GetObject on the source and s3:PutObject on the target, ...). A call it does not know
  fails the test, so a new kind of call cannot slip past unjudged.
- `SparkMirroredS3Lake` lets Spark read and write `s3://` paths on a laptop: Hadoop's
  ViewFileSystemOverloadScheme serves the bucket from a local folder, kept in step with moto's bucket
  around every lake operation. Spark's side is modelled as Glue's S3 connector does it: each file it
  leaves is an s3:PutObject, each it removes an s3:DeleteObject, and each path handed to Spark may be
  listed and read in full.
- `policies_of` reads a role's policies out of a synthesized template, intrinsics resolved for one
  made-up account and region.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import shutil
import subprocess
import types
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from dwlib.lake import S3Lake

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("iam_harness.mjs")
ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


# --------------------------------------------------------------------------- templates


def resolve(node, template: dict):
    """A template value with Ref, Fn::Join, Fn::GetAtt .Arn and Fn::Sub of pseudo parameters resolved."""
    pseudo = {
        "AWS::Partition": PARTITION,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
    }
    if isinstance(node, list):
        return [resolve(item, template) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        name = node["Ref"]
        if name in pseudo:
            return pseudo[name]
        return physical_name(name, template)
    if set(node) == {"Fn::Join"}:
        sep, parts = node["Fn::Join"]
        return sep.join(str(resolve(p, template)) for p in parts)
    if set(node) == {"Fn::GetAtt"}:
        logical, attribute = node["Fn::GetAtt"]
        if attribute != "Arn":
            raise ValueError(f"cannot resolve Fn::GetAtt {logical}.{attribute}")
        return arn_of(logical, template)
    if set(node) == {"Fn::Sub"}:
        text = node["Fn::Sub"]
        for key, value in pseudo.items():
            text = text.replace("${" + key + "}", value)
        return text
    return {key: resolve(value, template) for key, value in node.items()}


def physical_name(logical: str, template: dict) -> str:
    resource = template["Resources"][logical]
    props, kind = resource.get("Properties", {}), resource["Type"]
    names = {"AWS::S3::Bucket": "BucketName", "AWS::IAM::Role": "RoleName", "AWS::Lambda::Function": "FunctionName",
             "AWS::Logs::LogGroup": "LogGroupName", "AWS::SNS::Topic": "TopicName"}  # fmt: skip
    if kind == "AWS::KMS::Key":
        return KEY_ID
    if kind in names and names[kind] in props:
        return resolve(props[names[kind]], template)
    return logical


def arn_of(logical: str, template: dict) -> str:
    kind = template["Resources"][logical]["Type"]
    name = physical_name(logical, template)
    return {
        "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
        "AWS::KMS::Key": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{name}",
        "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
        "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
        "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{name}",
    }[kind]


def template_of(outdir: Path, stack: str) -> dict:
    return json.loads((outdir / f"{stack}.template.json").read_text())


def resources_of(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def role_id(template: dict, role_name: str) -> str:
    (found,) = [k for k, v in resources_of(template, "AWS::IAM::Role").items()
                if resolve(v["Properties"].get("RoleName"), template) == role_name]  # fmt: skip
    return found


def policies_of(template: dict, role_logical: str, managed_ok: bool = False) -> list[dict]:
    """Every policy document the role carries in this template: inline ones and AWS::IAM::Policy
    (managed policies cannot be read offline: refused unless `managed_ok`)."""
    role = template["Resources"][role_logical]["Properties"]
    assert managed_ok or not role.get("ManagedPolicyArns"), f"{role_logical} has managed policies, which are not read"
    documents = [resolve(p["PolicyDocument"], template) for p in role.get("Policies", [])]
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical} in policy["Properties"].get("Roles", []):
            documents.append(resolve(policy["Properties"]["PolicyDocument"], template))
    return documents


def bucket_policy(template: dict, bucket_logical: str) -> dict:
    (policy,) = [p for p in resources_of(template, "AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": bucket_logical}]  # fmt: skip
    return resolve(policy["Properties"]["PolicyDocument"], template)


# --------------------------------------------------------------------------- calls -> IAM requests


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: tuple = ()  # sorted (key, value) pairs; values are str or tuple
    origin: str = ""

    def describe(self) -> str:
        extra = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{extra} ({self.origin})"


class Unmapped(AssertionError):
    pass


def _ctx(**values) -> tuple:
    return tuple(sorted((k.replace("__", ":"), tuple(v) if isinstance(v, list) else v) for k, v in values.items()))


def s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def _copy_source(value) -> tuple[str, str]:
    if isinstance(value, dict):
        return value["Bucket"], value["Key"]
    bucket, _, key = unquote(value.split("?", 1)[0]).lstrip("/").partition("/")
    return bucket, key


def requests_of(
    service: str, operation: str, params: dict, *, secret_arn=None, origin: str = "", transfer: bool = False
) -> list[Request]:
    """The IAM requests AWS authorizes for one API call (Service Authorization Reference); `transfer`:
    the call came from boto3's transfer manager (upload_file, copy), which may also abort a multipart upload."""
    s3_object = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
    if service == "s3":
        bucket = params.get("Bucket")
        if operation in ("ListObjectsV2", "ListObjects", "HeadBucket"):
            return [Request("s3:ListBucket", s3_arn(bucket), _ctx(s3__prefix=params.get("Prefix", "")), origin)]
        if operation in ("GetObject", "HeadObject"):
            action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
            return [Request(action, s3_arn(bucket, params["Key"]), (), origin)]
        if operation in s3_object:
            found = [Request("s3:PutObject", s3_arn(bucket, params["Key"]), (), origin)]
            if params.get("IfMatch"):  # a conditional write on an ETag: S3 also asks s3:GetObject (its User Guide)
                found.append(Request("s3:GetObject", s3_arn(bucket, params["Key"]), (), origin))
            if transfer:  # boto3's transfer manager goes multipart above 8 MB and aborts an upload that fails
                found.append(Request("s3:AbortMultipartUpload", s3_arn(bucket, params["Key"]), (), origin))
            return found
        if operation == "AbortMultipartUpload":
            return [Request("s3:AbortMultipartUpload", s3_arn(bucket, params["Key"]), (), origin)]
        if operation == "DeleteObject":
            action = "s3:DeleteObjectVersion" if params.get("VersionId") else "s3:DeleteObject"
            return [Request(action, s3_arn(bucket, params["Key"]), (), origin)]
        if operation == "DeleteObjects":
            return [
                Request("s3:DeleteObject", s3_arn(bucket, o["Key"]), (), origin) for o in params["Delete"]["Objects"]
            ]
        if operation in ("CopyObject", "UploadPartCopy"):
            source = _copy_source(params["CopySource"])
            found = [
                Request("s3:GetObject", s3_arn(*source), (), origin),
                Request("s3:PutObject", s3_arn(bucket, params["Key"]), (), origin),
            ]
            if transfer:
                found.append(Request("s3:AbortMultipartUpload", s3_arn(bucket, params["Key"]), (), origin))
            return found
        if operation == "GetBucketLocation":
            return [Request("s3:GetBucketLocation", s3_arn(bucket), (), origin)]
    if service == "cloudwatch" and operation == "PutMetricData":
        return [Request("cloudwatch:PutMetricData", "*", _ctx(cloudwatch__namespace=params["Namespace"]), origin)]
    if service == "secretsmanager" and operation == "GetSecretValue":
        return [Request("secretsmanager:GetSecretValue", secret_arn(params["SecretId"]), (), origin)]
    if service == "dynamodb" and operation in ("Scan", "DescribeTable", "Query", "GetItem"):
        table = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}"
        return [Request(f"dynamodb:{operation}", table, (), origin)]
    if service == "sns" and operation == "Publish":
        return [Request("sns:Publish", params["TopicArn"], (), origin)]
    raise Unmapped(
        f"{service} {operation}: no IAM mapping in tests/infra/least_privilege.py; add the action and resource "
        "AWS's Service Authorization Reference gives for it"
    )


@dataclass
class Recorder:
    """Every call made through boto3's default session: (service, operation, params, transfer), where
    `transfer` says a lake method that uses boto3's transfer manager was running."""

    calls: list = field(default_factory=list)
    transfer: int = 0

    def __call__(self, params, model, **_):
        self.calls.append((model.service_model.service_name, model.name, dict(params), self.transfer > 0))

    def install(self, session) -> None:
        session.events.register("provide-client-params", self)

    def watch_transfers(self, client) -> None:
        """Mark the calls boto3's transfer manager makes for this client's upload_file, upload_fileobj and copy."""
        for name in ("upload_file", "upload_fileobj", "copy"):
            method = getattr(client, name)

            def marked(*args, _method=method, **kwargs):
                self.transfer += 1
                try:
                    return _method(*args, **kwargs)
                finally:
                    self.transfer -= 1

            setattr(client, name, marked)


# --------------------------------------------------------------------------- Spark on a mirrored bucket


@contextlib.contextmanager
def spark_reads_s3_from(spark, bucket: str, mirror: Path):
    """s3://{bucket}/... in this Spark session means files under mirror (Hadoop 3.3's overload scheme),
    until the block ends: the session is shared with other tests."""
    conf = spark._jsc.hadoopConfiguration()
    settings = {
        "fs.s3.impl": "org.apache.hadoop.fs.viewfs.ViewFileSystemOverloadScheme",
        "fs.s3.impl.disable.cache": "true",
        "fs.viewfs.overload.scheme.target.s3.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
        f"fs.viewfs.mounttable.{bucket}.linkFallback": mirror.as_uri(),
    }
    before = {key: conf.get(key) for key in settings}
    for key, value in settings.items():
        conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            conf.unset(key) if value is None else conf.set(key, value)


SYNCED = ("list", "put_file", "get_file", "read_bytes", "write_bytes", "delete_prefix", "replace_prefix",
          "finish_publish", "create_exclusive", "read_versioned", "replace_if_unchanged", "delete_if_unchanged",
          "exists", "has_prefix", "data_files")  # fmt: skip


class SparkMirroredS3Lake(S3Lake):
    """An S3Lake (recorded client) whose bucket Spark sees as a local folder; see the module docstring."""

    def __init__(self, bucket: str, client, plain, mirror: Path):
        super().__init__(bucket, client=client)
        self.plain, self.mirror = plain, mirror
        self.spark_paths: set[str] = set()
        self.spark_requests: list[Request] = []
        self.ever: set[str] = set()
        self._local: dict[str, tuple[int, int]] = {}
        self._remote: dict[str, str] = {}
        self._depth = 0

    def uri(self, key: str) -> str:
        self.spark_paths.add(key)
        return super().uri(key)

    def _files(self) -> dict[str, tuple[int, int]]:
        found = {}
        for path in self.mirror.rglob("*"):
            if path.is_file():
                stat = path.stat()
                found[path.relative_to(self.mirror).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return found

    def push(self) -> None:
        """What Spark left in the folder since the last sync, written to the bucket as its connector would."""
        now = self._files()
        for key, state in now.items():
            if self._local.get(key) != state:
                self.plain.put_object(Bucket=self.bucket, Key=key, Body=(self.mirror / key).read_bytes())
                # Glue's S3-optimized committer uploads every output file in parts, aborted if the task fails.
                self.spark_requests += [Request(a, s3_arn(self.bucket, key), (), "Spark")
                                        for a in ("s3:PutObject", "s3:AbortMultipartUpload")]  # fmt: skip
        for key in set(self._local) - set(now):
            self.plain.delete_object(Bucket=self.bucket, Key=key)
            self.spark_requests.append(Request("s3:DeleteObject", s3_arn(self.bucket, key), (), "Spark"))
        self._local = now
        self._pull_state()

    def _pull_state(self) -> None:
        remote = {}
        for page in self.plain.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            remote.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        self._remote = remote
        self.ever |= set(remote)

    def pull(self) -> None:
        """What the job's own calls changed in the bucket, into the folder Spark reads."""
        before = self._remote
        self._pull_state()
        for key, etag in self._remote.items():
            if before.get(key) != etag or not (self.mirror / key).is_file():
                target = self.mirror / key
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.plain.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        for key in set(before) - set(self._remote):
            (self.mirror / key).unlink(missing_ok=True)
            parent = (self.mirror / key).parent
            while parent != self.mirror and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        self._local = self._files()

    def spark_reads(self) -> list[Request]:
        """Each path handed to Spark may be listed, and every object ever under it read."""
        found = []
        for prefix in sorted(self.spark_paths):
            found.append(Request("s3:ListBucket", s3_arn(self.bucket), _ctx(s3__prefix=prefix), "Spark"))
            found += [Request("s3:GetObject", s3_arn(self.bucket, k), (), "Spark") for k in sorted(self.ever)
                      if k.startswith(prefix)]  # fmt: skip
        return found


def _synced(method):
    def wrapper(self, *args, **kwargs):
        self._depth += 1
        try:
            if self._depth == 1:
                self.push()
            result = method(self, *args, **kwargs)
            if isinstance(result, types.GeneratorType):
                result = iter(list(result))
            return result
        finally:
            if self._depth == 1:
                self.pull()
            self._depth -= 1

    wrapper.__name__ = method.__name__
    return wrapper


for _name in SYNCED:
    setattr(SparkMirroredS3Lake, _name, _synced(getattr(S3Lake, _name)))


# --------------------------------------------------------------------------- evaluation


def simulate(cases: list[dict]) -> list[dict]:
    node = shutil.which("node")
    assert node, "node is needed for these tests: `make install` brings Node 22 into node_modules/"
    done = subprocess.run(
        [node, str(HARNESS)], input=json.dumps({"cases": cases}), capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def case(policies: list[dict], request: Request, principal: str, resource_policy: dict | None = None) -> dict:
    return {
        "identityPolicies": policies,
        "resourcePolicy": resource_policy,
        "request": {
            "action": request.action,
            "principal": principal,
            "resource": {"resource": request.resource, "accountId": ACCOUNT},
            "contextVariables": {
                # Every call is made over TLS (the lake's bucket policy denies any other).
                **({"aws:SecureTransport": "true"} if request.action.startswith("s3:") else {}),
                **{k: list(v) if isinstance(v, tuple) else v for k, v in request.context},
            },
        },
    }


def grants(policies: list[dict]) -> list[dict]:
    """Each Allow statement split into one single-action, single-resource statement per pair."""
    found = []
    for policy in policies:
        statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
        for statement in statements:
            if statement["Effect"] != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                for resource in resources:
                    grant = {"Effect": "Allow", "Action": action, "Resource": resource}
                    if "Condition" in statement:
                        grant["Condition"] = statement["Condition"]
                    found.append(grant)
    return found


def grant_name(grant: dict) -> str:
    return f"{grant['Action']} {grant['Resource']}"


def could_match(grant: dict, request: Request) -> bool:
    """A cheap prefilter before asking the simulator: the action pattern covers the request's action."""
    return fnmatch.fnmatchcase(request.action.lower(), grant["Action"].lower())


def judge(policies, requests, principal, resource_policies=None) -> tuple[list[str], dict[str, list[str]]]:
    """(requests the policies do not allow, {grant: requests it allows}) for one role."""
    resource_policies = resource_policies or {}
    unique = sorted(set(requests), key=lambda r: (r.action, r.resource, r.context))
    pieces = grants(policies)

    def resource_policy(request):
        return next((p for prefix, p in resource_policies.items() if request.resource.startswith(prefix)), None)

    cases = [case(policies, r, principal, resource_policy(r)) for r in unique]
    pairs = [(g, r) for g in pieces for r in unique if could_match(g, r)]
    cases += [case([{"Version": "2012-10-17", "Statement": [g]}], r, principal, resource_policy(r)) for g, r in pairs]
    results = simulate(cases)
    denied = [f"{r.describe()}: {res['result']} {res.get('errors', '')}".strip()
              for r, res in zip(unique, results[: len(unique)], strict=True) if res["result"] != "Allowed"]  # fmt: skip
    used: dict[str, list[str]] = {grant_name(g): [] for g in pieces}
    for (g, r), res in zip(pairs, results[len(unique) :], strict=True):
        if res["result"] == "Allowed":
            used[grant_name(g)].append(r.describe())
    return denied, used
