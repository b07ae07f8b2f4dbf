"""What a Glue job may do, in one place: the shared job role (core stack) and a dataset's own role
(dataset stack, when its source needs secrets) get their lake, logs, metrics and KMS rights here.

The KMS key lives in the core stack. The core stack grants it by ARN; a dataset stack, which finds
core resources by name rather than through exports, grants it by the key's alias
(`kms:ResourceAliases`), as the DynamoDB export does: the same key, without pinning the core stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from stacks.nag import acknowledge
from stacks.tokens import Aws

# Prefixes the jobs write; `etl/` (scripts, config, transform hooks) is read-only to them.
JOB_WRITE_PREFIXES = ("raw", "staging", "bronze", "gold", "quarantine", "runs", "ops")
# Each right only where a call needs it (tests/infra/test_least_privilege.py runs the jobs and checks):
# raw/ is kept, never deleted; ops/ (run history for Athena) is only written; a multipart upload, and so
# its abort, only happens where files can be large (Spark's output, fetched files, copies of tables).
JOB_READ_PREFIXES = ("etl", "raw", "staging", "bronze", "gold", "quarantine", "runs")
JOB_DELETE_PREFIXES = ("staging", "bronze", "gold", "quarantine", "runs")
JOB_MULTIPART_PREFIXES = ("raw", "staging", "bronze", "gold", "quarantine")
KMS_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]


def object_arns(bucket: s3.IBucket, prefixes: tuple[str, ...]) -> list[str]:
    return [bucket.arn_for_objects(f"{prefix}/*") for prefix in prefixes]


def logs_statement(group: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"],
        resources=[f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:{group}*"],
    )


def job_statements(
    bucket: s3.IBucket, *, key: kms.IKey | None = None, key_alias: str | None = None, metrics_namespace: str = ""
) -> list[iam.PolicyStatement]:
    """The lake's prefixes, Glue's logs and metrics, and the logs key: by `key` if given, else by `key_alias`."""
    if (key is None) == (key_alias is None):
        raise ValueError("give the logs key or its alias, not both")
    if key is not None:
        kms_statement = iam.PolicyStatement(actions=KMS_ACTIONS, resources=[key.key_arn])
    else:
        kms_statement = iam.PolicyStatement(
            actions=KMS_ACTIONS,
            resources=["*"],
            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": key_alias}},
        )
    return [
        iam.PolicyStatement(actions=["s3:GetObject"], resources=object_arns(bucket, JOB_READ_PREFIXES)),
        iam.PolicyStatement(actions=["s3:PutObject"], resources=object_arns(bucket, JOB_WRITE_PREFIXES)),
        iam.PolicyStatement(actions=["s3:DeleteObject"], resources=object_arns(bucket, JOB_DELETE_PREFIXES)),
        iam.PolicyStatement(actions=["s3:AbortMultipartUpload"], resources=object_arns(bucket, JOB_MULTIPART_PREFIXES)),
        iam.PolicyStatement(actions=["s3:ListBucket", "s3:GetBucketLocation"], resources=[bucket.bucket_arn]),
        logs_statement("/aws-glue/"),
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            # Glue's own job metrics, and the run metrics of dwlib.metrics (Naming.metrics_namespace).
            conditions={
                "StringEquals": {"cloudwatch:namespace": ["Glue", metrics_namespace] if metrics_namespace else "Glue"}
            },
        ),
        kms_statement,
    ]


def iceberg_catalog_statement(
    database: str, table: str, gold_database: str = "", models: Sequence[str] = ()
) -> iam.PolicyStatement:
    """An Iceberg dataset's jobs commit their own tables in the Glue Data Catalog: they may read, create
    and update exactly the bronze table and each gold model's table (their files are under the lake
    prefixes above), nothing else in the catalog."""
    glue = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
    resources = [f"{glue}:catalog", f"{glue}:database/{database}", f"{glue}:table/{database}/{table}"]
    if models:
        resources.append(f"{glue}:database/{gold_database}")
        resources += [f"{glue}:table/{gold_database}/{model}" for model in models]
    return iam.PolicyStatement(
        actions=["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"], resources=resources
    )


def secret_arn(name: str) -> str:
    """A secret's ARN by name: Secrets Manager appends `-` and six random characters, which `??????`
    matches exactly (so `pp-dw/key` never matches `pp-dw/key-2`'s ARN, whose suffix is longer)."""
    return f"arn:{Aws.PARTITION}:secretsmanager:{Aws.REGION}:{Aws.ACCOUNT_ID}:secret:{name}-??????"


def acknowledge_job_statements(role: iam.IRole, lake_arn: str, *, kms_by_alias: bool) -> None:
    """cdk-nag findings of `job_statements`, one by one; `lake_arn` as cdk-nag prints the bucket's ARN."""
    acknowledge(
        role,
        "AwsSolutions-IAM5",
        "Jobs read and write any object under the lake prefixes they own; object keys are "
        "run-specific, so a prefix wildcard is the narrowest grant",
        [f"Resource::{lake_arn}/{p}/*" for p in ("etl", *JOB_WRITE_PREFIXES)],
    )
    acknowledge(
        role,
        "AwsSolutions-IAM5",
        "Glue writes its own log streams under /aws-glue/, named at run time",
        ["Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws-glue/*"],
    )
    star = "PutMetricData has no resource type; a condition limits it to Glue's and the project's run-metric namespaces"
    if kms_by_alias:
        star += (
            ". The logs key lives in the core stack and is found without an export: kms:ResourceAliases "
            "limits the KMS statement to that one key"
        )
    acknowledge(role, "AwsSolutions-IAM5", star, ["Resource::*"])
    acknowledge(
        role,
        "AwsSolutions-IAM5",
        "Encrypt and decrypt with the one logs key use the GenerateDataKey*/ReEncrypt* action groups",
        ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"],
    )
