"""Secure defaults, in one place: stacks use them and may override a field, never weaken one silently."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_glue as glue
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3

# `cdk deploy -c destroy-data=true` opts into deleting buckets and their data with the stack.
DESTROY_DATA_CONTEXT = "destroy-data"

WORKER_TYPES = {
    "G.025X": glue.WorkerType.G_025X,
    "G.1X": glue.WorkerType.G_1X,
    "G.2X": glue.WorkerType.G_2X,
    "G.4X": glue.WorkerType.G_4X,
    "G.8X": glue.WorkerType.G_8X,
}

LOG_RETENTION = logs.RetentionDays.ONE_YEAR


def removal_policy(destroy: bool) -> RemovalPolicy:
    return RemovalPolicy.DESTROY if destroy else RemovalPolicy.RETAIN


def bucket_props(destroy: bool) -> dict:
    """Encrypted, private, TLS-only, owner-enforced; RETAIN unless the destroy flag is set."""
    return dict(
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal_policy(destroy),
        auto_delete_objects=destroy,
    )


def abort_uploads_rule() -> s3.LifecycleRule:
    return s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7))
