"""The DynamoDB export of a dataset: a scheduled Lambda that writes the table as CSV to raw/."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from dwlib.naming import Naming, fit
from stacks import defaults, nag
from stacks.nag import acknowledge
from stacks.tokens import Aws

# Sized by the dataset's category: time to scan, memory for parallel segments, /tmp for two copies.
SIZING = {
    "small": {"timeout": Duration.minutes(5), "memory": 512, "storage": Size.gibibytes(2)},
    "medium": {"timeout": Duration.minutes(15), "memory": 1024, "storage": Size.gibibytes(4)},
    "large": {"timeout": Duration.minutes(15), "memory": 2048, "storage": Size.gibibytes(10)},
    "xlarge": {"timeout": Duration.minutes(15), "memory": 3008, "storage": Size.gibibytes(10)},
}


class DynamoDbExport(Construct):
    """Function, role and logs; the caller schedules it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        naming: Naming,
        dataset: str,
        table_name: str,
        category: str,
        bucket: s3.IBucket,
        failure_topic: sns.ITopic,
        key_alias: str,
        code_dir: Path,
        reserved_concurrency: int | None = None,
    ):
        super().__init__(scope, construct_id)
        function_name = naming.export_function(dataset)
        sizing = SIZING[category]
        log_group = defaults.log_group(self, "Logs", f"/aws/lambda/{function_name}")
        table_arn = f"arn:{Aws.PARTITION}:dynamodb:{Aws.REGION}:{Aws.ACCOUNT_ID}:table/{table_name}"
        raw_objects = bucket.arn_for_objects(f"{naming.raw_dataset_prefix(dataset)}*")
        # The run folder's claim (the handler's CLAIM): read to take over a released or lapsed one, and S3 authorizes
        # a write If-Match an ETag (release, takeover, noting an upload) only with s3:GetObject on the key.
        claims = bucket.arn_for_objects(f"{naming.raw_dataset_prefix(dataset)}run_id=*/_EXPORT_STARTED")
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Exports DynamoDB table {table_name} to {naming.raw_dataset_prefix(dataset)}",
            inline_policies={
                "export": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(actions=["dynamodb:Scan", "dynamodb:DescribeTable"], resources=[table_arn]),
                        iam.PolicyStatement(
                            actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[raw_objects]
                        ),
                        iam.PolicyStatement(actions=["s3:GetObject"], resources=[claims]),
                        # A takeover lists the run folder: a finished run (its _SUCCESS) is never taken over, and a
                        # marker put refused If-None-Match is this export's own when its ETag is its bytes' MD5.
                        iam.PolicyStatement(
                            actions=["s3:ListBucket"],
                            resources=[bucket.bucket_arn],
                            conditions={"StringLike": {"s3:prefix": f"{naming.raw_dataset_prefix(dataset)}run_id=*"}},
                        ),
                        iam.PolicyStatement(
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
                        ),
                        # The failure topic is KMS-encrypted; publishing needs its key, found by alias.
                        iam.PolicyStatement(
                            actions=["kms:GenerateDataKey", "kms:Decrypt"],
                            resources=["*"],
                            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": key_alias}},
                        ),
                    ]
                )
            },
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=fit(
                "lambda_function_description", f"Exports DynamoDB table {table_name} as CSV for the {dataset} pipeline"
            ),
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(code_dir)),
            role=role,
            timeout=sizing["timeout"],
            memory_size=sizing["memory"],
            ephemeral_storage_size=sizing["storage"],
            reserved_concurrent_executions=reserved_concurrency,  # none by default: see ExportOptions
            log_group=log_group,
            environment={
                "TABLE_NAME": table_name,
                "BUCKET_NAME": bucket.bucket_name,
                "DATASET": dataset,
                "POWERTOOLS_SERVICE_NAME": "dynamodb-csv-export",
            },
            on_failure=destinations.SnsDestination(failure_topic),
            retry_attempts=0,  # a failed export is reported, not silently repeated on a half-read table
        )
        self.role = role
        stack = Stack.of(self)
        bucket_name = naming.bucket(nag.pseudo(stack, nag.environment(stack)[1], "AccountId"))
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "The export writes one run_id=… folder per run under its own dataset's raw prefix, named at run time, and "
            "reads its claim",
            [
                f"Resource::arn:{nag.partition(stack)}:s3:::{bucket_name}/{naming.raw_dataset_prefix(dataset)}*",
                f"Resource::arn:{nag.partition(stack)}:s3:::{bucket_name}/{naming.raw_dataset_prefix(dataset)}"
                "run_id=*/_EXPORT_STARTED",
            ],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Publishing to the KMS-encrypted failure topic needs its key; the grant is limited by the key's alias",
            ["Resource::*"],
        )
