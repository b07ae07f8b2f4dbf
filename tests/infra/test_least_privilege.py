"""Least privilege, proven: the bronze and gold jobs and the export function run against moto, every AWS
call they make is recorded, and each is judged against the SYNTHESIZED policies of the role that runs it
by @cloud-copilot/iam-simulate. A call the role does not allow fails; a granted right no call needs must
be in the allow-list below with its reason (and leaves it as soon as a call needs it).

How calls become IAM requests, and how Spark's own S3 traffic is modelled: tests/infra/least_privilege.py.
"""

from __future__ import annotations

import contextlib
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from dwlib import entry, jobs
from dwlib.lake import Lake
from dwlib.naming import Naming
from tests.infra import least_privilege as lp
from tests.loopback import LoopbackServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
RUN, NEXT = "20261121T060000Z", "20261122T060000Z"

# Granted, and needed by no call of our code: each with why it stays. The test fails on a grant missing
# from here (remove the right, or say why it stays) and on an entry a call now needs (drop the entry).
GLUE_KEY = (
    "Glue's security configuration encrypts the job's CloudWatch logs and job bookmarks with the core "
    "stack's key (the job sets no bookmarks, so no call is recorded); AWS's setup for security "
    "configurations has the job role use the key"
)
QUARANTINE_RETRY = (
    "a run id may be retried after a failure (README, Local mode); Spark's overwrite of that run's quarantine "
    "folder deletes the failed attempt's files"
)
SHARED_ROLE_UNUSED = {
    "s3:DeleteObject arn:aws:s3:::pp-dw-123456789012/quarantine/*": QUARANTINE_RETRY,
    "s3:GetBucketLocation arn:aws:s3:::pp-dw-123456789012": (
        "Glue's S3 connector (EMRFS) asks the bucket's region before its first request; our own code never does"
    ),
    "kms:Encrypt arn:aws:kms:us-east-1:123456789012:key/" + lp.KEY_ID: GLUE_KEY,
    "kms:Decrypt arn:aws:kms:us-east-1:123456789012:key/" + lp.KEY_ID: GLUE_KEY,
    "kms:ReEncrypt* arn:aws:kms:us-east-1:123456789012:key/" + lp.KEY_ID: GLUE_KEY,
    "kms:GenerateDataKey* arn:aws:kms:us-east-1:123456789012:key/" + lp.KEY_ID: GLUE_KEY,
}


@contextlib.contextmanager
def on_glue():
    """`awsglue.utils.getResolvedOptions` as Glue documents it (metrics are published on Glue only)."""

    def get_resolved_options(argv, names):
        return {name: argv[argv.index(f"--{name}") + 1] for name in names}

    module = types.ModuleType("awsglue.utils")
    module.getResolvedOptions = get_resolved_options
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "awsglue", types.ModuleType("awsglue"))
        patch.setitem(sys.modules, "awsglue.utils", module)
        for name, value in {"AWS_DEFAULT_REGION": lp.REGION, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing"}.items():  # fmt: skip
            patch.setenv(name, value)
        patch.delenv(jobs.FORCE_DRY_RUN, raising=False)
        yield patch


@pytest.fixture(scope="module")
def outdir(synthesized) -> Path:
    return synthesized[2]


@pytest.fixture(scope="module")
def naming(project) -> Naming:
    return Naming.of(project.core)


class Harness:
    """moto's AWS, a bucket as the stacks deployed it, the recorder, and the lake the jobs get."""

    def __init__(self, naming: Naming, mirror: Path, spark):
        self.bucket = naming.bucket(lp.ACCOUNT)
        self.plain = boto3.Session(region_name=lp.REGION).client("s3")  # the harness's own calls: not recorded
        self.plain.create_bucket(Bucket=self.bucket)
        boto3.setup_default_session(region_name=lp.REGION)
        self.recorder = lp.Recorder()
        self.recorder.install(boto3.DEFAULT_SESSION)
        client = boto3.client("s3")
        self.recorder.watch_transfers(client)
        mirror.mkdir(parents=True)
        self.lake = lp.SparkMirroredS3Lake(self.bucket, client, self.plain, mirror)
        self.spark, self.mirror = spark, mirror

    def __enter__(self) -> Harness:
        self._spark = lp.spark_reads_s3_from(self.spark, self.bucket, self.mirror)
        self._spark.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._spark.__exit__(*exc)
        boto3.DEFAULT_SESSION = None  # the recorder goes with it; later tests get a fresh default session

    def deploy(self, key: str, body: bytes) -> None:
        """What the dataset stack's file deployment writes (not a call of the job's role)."""
        self.plain.put_object(Bucket=self.bucket, Key=key, Body=body)

    def read_json(self, key: str):
        return json.loads(self.plain.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def run(self, job: dict, template: dict, entry_point, names, spark, **overrides) -> None:
        """The job as Glue starts it: its synthesized default arguments, then the pipeline's."""
        args = {k: lp.resolve(v, template) for k, v in job["Properties"]["DefaultArguments"].items()}
        args.update({f"--{k}": v for k, v in overrides.items()})
        argv = [Path(lp.resolve(job["Properties"]["Command"]["ScriptLocation"], template)).name]
        argv += ["--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1"]
        for key, value in args.items():
            argv += [key, value]
        self.lake.pull()
        code = entry.main(lambda _s, parsed: entry_point(spark, parsed), names, argv)
        self.lake.push()
        assert code == 0

    def requests(self, secret_arn=None) -> list[lp.Request]:
        found = []
        for service, operation, params, transfer in self.recorder.calls:
            found += lp.requests_of(
                service, operation, params, secret_arn=secret_arn, origin=f"{service}.{operation}", transfer=transfer
            )
        return found + self.lake.spark_requests + self.lake.spark_reads()


def job_named(template: dict, name: str) -> dict:
    (job,) = [j for j in lp.resources_of(template, "AWS::Glue::Job").values() if j["Properties"]["Name"] == name]
    return job


def glue_requests(job: dict, template: dict, role_name: str, security_configuration: str) -> list[lp.Request]:
    """What Glue itself does with the job's role: fetch the files the job definition names, write its logs."""
    props = {k: lp.resolve(v, template) for k, v in job["Properties"]["DefaultArguments"].items()}
    files = [lp.resolve(job["Properties"]["Command"]["ScriptLocation"], template)]
    files += props.get("--extra-py-files", "").split(",") + props.get("--additional-python-modules", "").split(",")
    found = []
    for uri in filter(None, files):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        found.append(lp.Request("s3:GetObject", lp.s3_arn(bucket, key), (), "Glue: job files"))
    # With a security configuration Glue writes to groups named after it and the role.
    logs = f"arn:{lp.PARTITION}:logs:{lp.REGION}:{lp.ACCOUNT}:log-group:"
    for group in [f"/aws-glue/jobs/{security_configuration}-role/{role_name}/{kind}" for kind in ("output", "error")]:
        found += [
            lp.Request(a, logs + group, (), "Glue: logs") for a in ("logs:CreateLogGroup", "logs:AssociateKmsKey")
        ]
        found += [lp.Request(a, f"{logs}{group}:log-stream:jr_1", (), "Glue: logs")
                  for a in ("logs:CreateLogStream", "logs:PutLogEvents")]  # fmt: skip
    return found


def assert_least_privilege(policies, requests, principal, resource_policies, allowed_unused: dict[str, str]):
    denied, used = lp.judge(policies, requests, principal, resource_policies)
    assert not denied, "calls the synthesized role does not allow:\n  " + "\n  ".join(denied)
    unused = sorted(grant for grant, calls in used.items() if not calls)
    unexplained = [g for g in unused if g not in allowed_unused]
    assert not unexplained, "granted, and needed by no call (remove, or say why it stays):\n  " + "\n  ".join(
        unexplained
    )
    stale = sorted(g for g in allowed_unused if g in used and used[g])
    assert not stale, f"allow-listed as unused, but calls need them now: {stale}"
    missing = sorted(g for g in allowed_unused if g not in used)
    assert not missing, f"allow-listed grants the role no longer has: {missing}"
    return used


@dataclass
class Exercised:
    """What one role's runs asked of AWS, and the policies and resource policies that answer."""

    requests: list
    policies: list
    principal: str
    resource_policies: dict
    calls: list
    outcome: dict


def core_resource_policies(core_template: dict, bucket: str) -> dict:
    (lake,) = [
        k for k in lp.resources_of(core_template, "AWS::S3::Bucket") if lp.physical_name(k, core_template) == bucket
    ]
    (key,) = lp.resources_of(core_template, "AWS::KMS::Key").values()
    return {
        lp.s3_arn(bucket): lp.bucket_policy(core_template, lake),  # TLS only: the deny must not apply
        f"arn:{lp.PARTITION}:kms:": lp.resolve(key["Properties"]["KeyPolicy"], core_template),  # KMS asks the key too
    }


@pytest.fixture(scope="module")
def shared_role_runs(spark, outdir, naming, project, tmp_path_factory) -> Exercised:
    """ourairports as deployed, run twice: bronze fetches its CSV over HTTP, keeps raw, publishes and reports;
    gold builds two models; the second day's file has a bad row (quarantine) and both layers replace the first."""
    core_template = lp.template_of(outdir, naming.core_stack)
    template = lp.template_of(outdir, naming.dataset_stack("ourairports"))
    csv = (ROOT / "datasets" / "ourairports" / "sample" / "airports.csv").read_bytes()
    first_row = csv.splitlines()[1]
    server = LoopbackServer()
    server.files["/airports.csv"] = csv
    deployed = project.datasets["ourairports"].model_copy(update={"source_url": server.url("/airports.csv")})
    bronze_job = job_named(template, naming.job("bronze", "ourairports"))
    gold_job = job_named(template, naming.job("gold", "ourairports"))
    try:
        with on_glue() as patch, mock_aws(), Harness(naming, tmp_path_factory.mktemp("lp") / "mirror", spark) as aws:
            patch.setattr(Lake, "from_uri", staticmethod(lambda uri: aws.lake))
            document = jobs.job_config_document(project.core, deployed)
            aws.deploy(naming.job_config_key("ourairports"), json.dumps(document).encode())
            for sql in sorted((ROOT / "datasets" / "ourairports" / "gold").glob("*.sql")):
                aws.deploy(f"{naming.etl_prefix('ourairports')}gold/{sql.name}", sql.read_bytes())
            aws.run(bronze_job, template, entry.run_bronze_job, jobs.BRONZE_ARGS, spark, run_id=RUN)
            aws.run(gold_job, template, entry.run_gold_job, jobs.GOLD_ARGS, spark, run_id=RUN)
            server.files["/airports.csv"] = csv + first_row + b"\n"  # the same id twice: one row to quarantine
            aws.run(bronze_job, template, entry.run_bronze_job, jobs.BRONZE_ARGS, spark, run_id=NEXT)
            aws.run(gold_job, template, entry.run_gold_job, jobs.GOLD_ARGS, spark, run_id=NEXT)
            outcome = aws.read_json(naming.run_summary_key("ourairports", NEXT))
            requests = aws.requests()
    finally:
        server.stop()
    for job in (bronze_job, gold_job):
        assert lp.resolve(job["Properties"]["Role"], template).endswith(f":role/{naming.job_role}")
        requests += glue_requests(job, template, naming.job_role, naming.security_configuration)
    return Exercised(
        requests=requests,
        policies=lp.policies_of(core_template, lp.role_id(core_template, naming.job_role)),
        principal=f"arn:{lp.PARTITION}:iam::{lp.ACCOUNT}:role/{naming.job_role}",
        resource_policies=core_resource_policies(core_template, naming.bucket(lp.ACCOUNT)),
        calls=aws.recorder.calls,
        outcome=outcome,
    )


@pytest.mark.spark
def test_the_shared_job_role_allows_every_call_of_bronze_and_gold_and_no_more(shared_role_runs):
    runs = shared_role_runs
    # The runs did their work, so the calls judged are the real ones.
    assert runs.outcome["status"] == "succeeded" and runs.outcome["rows_rejected"] == 1
    operations = {(s, o) for s, o, *_ in runs.calls}
    assert {("s3", "PutObject"), ("s3", "CopyObject"), ("s3", "DeleteObjects"), ("s3", "ListObjectsV2"),
            ("cloudwatch", "PutMetricData")} <= operations  # fmt: skip
    assert_least_privilege(runs.policies, runs.requests, runs.principal, runs.resource_policies, SHARED_ROLE_UNUSED)


@pytest.mark.spark
@pytest.mark.parametrize("dropped", ["cloudwatch:PutMetricData", "s3:DeleteObject", "s3:ListBucket"])
def test_a_role_short_of_one_right_its_jobs_use_fails(shared_role_runs, dropped):
    """The evaluator is not a rubber stamp: take one action out of the synthesized policy and calls are denied."""
    runs = shared_role_runs
    narrowed = json.loads(json.dumps(runs.policies))
    for policy in narrowed:
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            statement["Action"] = [a for a in actions if a != dropped] or ["s3:GetAccessPoint"]
    denied, _ = lp.judge(narrowed, runs.requests, runs.principal, runs.resource_policies)
    assert denied and all(line.startswith(f"{dropped} on ") for line in denied), denied


DATASET_ROLE_UNUSED = {f"{action} *": GLUE_KEY for action in ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*",
                                                               "kms:GenerateDataKey*")}  # fmt: skip
DATASET_ROLE_UNUSED |= {
    "s3:GetBucketLocation arn:aws:s3:::pp-dw-123456789012": SHARED_ROLE_UNUSED[
        "s3:GetBucketLocation arn:aws:s3:::pp-dw-123456789012"
    ],
    "s3:DeleteObject arn:aws:s3:::pp-dw-123456789012/quarantine/*": QUARANTINE_RETRY,
}
# A dataset's own role carries the shared role's rights plus its secrets (README): what one first bronze
# run of a dataset without gold models does not need, the shared role's runs above do.
SAME_AS_SHARED = "the shared role's right (proven needed by the shared role's runs above), kept so both roles match"
DATASET_ROLE_UNUSED |= {
    f"{action} arn:aws:s3:::pp-dw-123456789012/{prefix}/*": SAME_AS_SHARED
    for action, prefix in [("s3:AbortMultipartUpload", "gold"), ("s3:DeleteObject", "bronze"),
                           ("s3:DeleteObject", "gold"), ("s3:GetObject", "bronze"), ("s3:GetObject", "gold"),
                           ("s3:PutObject", "gold")]
}  # fmt: skip


@pytest.mark.spark
def test_a_dataset_s_own_role_allows_its_secret_and_its_runs_and_no_more(spark, outdir, naming, project, tmp_path):
    """fda-enforcement pages an API with a key from Secrets Manager: its own role, as synthesized, is enough."""
    name = "fda-enforcement"
    core_template = lp.template_of(outdir, naming.core_stack)
    template = lp.template_of(outdir, naming.dataset_stack(name))
    records = [
        json.loads(line) for line in (ROOT / "datasets" / name / "sample" / "endpoint_0.jsonl").read_text().splitlines()
    ]

    def enforcement(handler, query):
        start = int(query.get("skip", 0))
        page = records[start : start + int(query.get("limit", 100))]
        if query.get("api_key") != "key-123":
            return handler.plain(403)
        handler.json({"meta": {"results": {"total": len(records)}}, "results": page} if page else {"results": []})

    server = LoopbackServer()
    server.routes["/drug/enforcement.json"] = enforcement
    config = project.datasets[name].model_dump(mode="json", by_alias=True, exclude_none=True)
    config["api_endpoints"][0]["url"] = server.url("/drug/enforcement.json")
    deployed = type(project.datasets[name]).model_validate(config)
    job = job_named(template, naming.job("bronze", name))
    role_name = naming.dataset_job_role(name)
    try:
        with on_glue() as patch, mock_aws(), Harness(naming, tmp_path / "mirror", spark) as aws:
            secrets = boto3.Session(region_name=lp.REGION).client("secretsmanager")
            secret = secrets.create_secret(Name="pp-dw/fda-api-key", SecretString="key-123")["ARN"]
            patch.setattr(Lake, "from_uri", staticmethod(lambda uri: aws.lake))
            aws.deploy(
                naming.job_config_key(name), json.dumps(jobs.job_config_document(project.core, deployed)).encode()
            )
            aws.run(job, template, entry.run_bronze_job, jobs.BRONZE_ARGS, spark, run_id=RUN)
            outcome = aws.read_json(naming.run_summary_key(name, RUN))
            requests = aws.requests(
                secret_arn=lambda secret_id: secret if secret_id in (secret, "pp-dw/fda-api-key") else secret_id
            )
    finally:
        server.stop()
    assert outcome["status"] == "succeeded" and outcome["rows_in"] == len(records)
    assert any(s == "secretsmanager" for s, *_ in aws.recorder.calls)
    assert lp.resolve(job["Properties"]["Role"], template).endswith(f":role/{role_name}")
    requests += glue_requests(job, template, role_name, naming.security_configuration)
    assert_least_privilege(
        lp.policies_of(template, lp.role_id(template, role_name)),
        requests,
        f"arn:{lp.PARTITION}:iam::{lp.ACCOUNT}:role/{role_name}",
        core_resource_policies(core_template, naming.bucket(lp.ACCOUNT)),
        DATASET_ROLE_UNUSED,
    )


class FakeContext:
    function_name = "pp-dw-export-app-users"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{lp.REGION}:{lp.ACCOUNT}:function:pp-dw-export-app-users"
    aws_request_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def test_the_export_function_s_role_allows_its_export_and_no_more(outdir, naming, monkeypatch):
    """app-users: the scheduled export scans its table and writes the CSV and the marker, as its role allows;
    Lambda writes the function's logs and sends a failure to the encrypted topic with the same role."""
    from lambdas.dynamodb_csv_export import handler as export

    core_template = lp.template_of(outdir, naming.core_stack)
    template = lp.template_of(outdir, naming.dataset_stack("app-users"))
    function = [f for f in lp.resources_of(template, "AWS::Lambda::Function").values()
                if lp.resolve(f["Properties"].get("FunctionName"), template) == naming.export_function("app-users")]  # fmt: skip
    (function,) = function
    environment = lp.resolve(function["Properties"]["Environment"]["Variables"], template)
    for key, value in {**environment, "AWS_DEFAULT_REGION": lp.REGION, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    with mock_aws():
        setup = boto3.Session(region_name=lp.REGION)
        setup.client("s3").create_bucket(Bucket=environment["BUCKET_NAME"])
        table = setup.client("dynamodb")
        table.create_table(TableName=environment["TABLE_NAME"], BillingMode="PAY_PER_REQUEST",
                           KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}])  # fmt: skip
        for i in range(5):
            table.put_item(TableName=environment["TABLE_NAME"], Item={"user_id": {"S": f"u{i}"}, "plan": {"S": "pro"}})
        boto3.setup_default_session(region_name=lp.REGION)
        recorder = lp.Recorder()
        recorder.install(boto3.DEFAULT_SESSION)
        client = boto3.client("s3")
        recorder.watch_transfers(client)
        monkeypatch.setattr(export, "_s3_client", lambda: client)
        result = export.handler({"run_id": RUN}, FakeContext())
        # a retry of the run id of an export killed at its time limit: its claim has lapsed, and is taken over
        claim = f"raw/{environment['DATASET']}/run_id={NEXT}/_EXPORT_STARTED"
        lapsed = {"run_id": NEXT, "state": "running", "expires": "2026-01-01T00:00:00Z", "uploads": []}
        setup.client("s3").put_object(Bucket=environment["BUCKET_NAME"], Key=claim, Body=json.dumps(lapsed))
        taken = export.handler({"run_id": NEXT}, FakeContext())
        calls = list(recorder.calls)
        boto3.DEFAULT_SESSION = None  # later tests get a fresh default session, without the recorder
    assert result["rows"] == taken["rows"] == 5
    requests = [r for s, o, p, t in calls for r in lp.requests_of(s, o, p, origin=f"{s}.{o}", transfer=t)]
    role = lp.resolve(function["Properties"]["Role"], template)
    role_logical = function["Properties"]["Role"]["Fn::GetAtt"][0]
    log_group = lp.resolve(function["Properties"]["LoggingConfig"]["LogGroup"], template)
    logs = f"arn:{lp.PARTITION}:logs:{lp.REGION}:{lp.ACCOUNT}:log-group:{log_group}"
    topic = f"arn:{lp.PARTITION}:sns:{lp.REGION}:{lp.ACCOUNT}:{naming.failure_topic}"
    key = f"arn:{lp.PARTITION}:kms:{lp.REGION}:{lp.ACCOUNT}:key/{lp.KEY_ID}"
    alias = lp._ctx(kms__ResourceAliases=[naming.key_alias])
    requests += [
        lp.Request("logs:CreateLogStream", f"{logs}:log-stream:2026/11/21/[$LATEST]0f1e2d3c", (), "Lambda: logs"),
        lp.Request("logs:PutLogEvents", f"{logs}:log-stream:2026/11/21/[$LATEST]0f1e2d3c", (), "Lambda: logs"),
        lp.Request("sns:Publish", topic, (), "Lambda: on-failure destination"),
        lp.Request("kms:GenerateDataKey", key, alias, "Lambda: on-failure destination, encrypted topic"),
        lp.Request("kms:Decrypt", key, alias, "Lambda: on-failure destination, encrypted topic"),
    ]
    assert_least_privilege(lp.policies_of(template, role_logical), requests, role,
                           core_resource_policies(core_template, environment["BUCKET_NAME"]), {})  # fmt: skip


@pytest.mark.parametrize("dataset", ["ourairports", "app-users"])
def test_a_dataset_s_file_deployment_writes_only_its_own_etl_folder(outdir, naming, dataset):
    """CDK's BucketDeployment grants its handler the whole lake; the stack's deny leaves it etl/{dataset}/ only."""
    template = lp.template_of(outdir, naming.dataset_stack(dataset))
    (handler_role,) = [
        k for k in lp.resources_of(template, "AWS::IAM::Role") if k.startswith("CustomCDKBucketDeployment")
    ]
    policies = lp.policies_of(template, handler_role, managed_ok=True)  # + the basic Lambda logging policy
    bucket = naming.bucket(lp.ACCOUNT)
    own, other = naming.etl_prefix(dataset), naming.etl_prefix("fda-nsde" if dataset != "fda-nsde" else "app-users")
    asset = f"cdk-hnb659fds-assets-{lp.ACCOUNT}-{lp.REGION}"
    allowed = [
        lp.Request("s3:PutObject", lp.s3_arn(bucket, f"{own}glue/bronze_job.py")),
        lp.Request("s3:DeleteObject", lp.s3_arn(bucket, f"{own}gold/old_model.sql")),
        lp.Request("s3:ListBucket", lp.s3_arn(bucket), lp._ctx(s3__prefix=own)),
        lp.Request("s3:GetObject", lp.s3_arn(asset, "0123abcd.zip")),
    ]
    refused = [
        lp.Request(action, lp.s3_arn(bucket, key))
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
        for key in (f"{other}job_config.json", f"raw/{dataset}/run_id={RUN}/x.csv", "bronze/x/part-0.parquet", "etl")
    ]
    principal = f"arn:{lp.PARTITION}:iam::{lp.ACCOUNT}:role/{handler_role}"
    results = lp.simulate([lp.case(policies, r, principal) for r in allowed + refused])
    verdicts = {r.describe(): res["result"] for r, res in zip(allowed + refused, results, strict=True)}
    assert all(verdicts[r.describe()] == "Allowed" for r in allowed), verdicts
    assert all(verdicts[r.describe()] == "ExplicitlyDenied" for r in refused), verdicts
