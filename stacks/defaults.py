"""Secure defaults, in one place: stacks use them and may override a field, never weaken one silently."""

from __future__ import annotations

import json
import weakref

from aws_cdk import CfnResource, Duration, RemovalPolicy, Tags
from aws_cdk import aws_glue as glue
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn

from dwlib.naming import DEFAULT_STAGE_TAG

# `cdk deploy -c destroy-data=true` opts into deleting buckets and their data with the stack.
DESTROY_DATA_CONTEXT = "destroy-data"
# `cdk deploy --all -c stage=dev`: a second, fully separate copy (every physical name differs).
STAGE_CONTEXT = "stage"
# `cdk deploy -c force_dry_run=true`: a "smoke" deployment whose every job run is a dry run.
FORCE_DRY_RUN_CONTEXT = "force_dry_run"


def stage_of(scope) -> str:
    """The stage the app was synthesized for ('' by default); ValueError for a name that is not one."""
    from dwlib.naming import check_stage

    return check_stage(scope.node.try_get_context(STAGE_CONTEXT))


def destroy_data_of(scope) -> bool:
    return str(scope.node.try_get_context(DESTROY_DATA_CONTEXT)).lower() == "true"


def force_dry_run_of(scope) -> bool:
    return str(scope.node.try_get_context(FORCE_DRY_RUN_CONTEXT)).lower() == "true"


_SETTLED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def settings_of(parent) -> tuple[str, bool]:
    """(stage, force dry run) of the stacks under `parent`, read once per parent. Only once `parent` has a
    child: constructs refuses new context on a node with children, so from then on the answer is fixed,
    and a new stack (which has no context of its own) reads its parent's. Each read is two calls into the
    CDK's Node process (make bench, synth)."""
    if parent not in _SETTLED:
        _SETTLED[parent] = (stage_of(parent), force_dry_run_of(parent))
    return _SETTLED[parent]


LOG_RETENTION = logs.RetentionDays.ONE_YEAR

# Every Glue job: Glue 5.1, one run at a time, and no Glue retry: a Glue retry is a new job run that
# the pipeline's .sync task never sees, so the pipeline retries transient errors itself and a failed
# run (bad data) is not paid for twice. The security configuration (encrypted logs, bookmarks, S3) is
# the core stack's, passed by the caller.
GLUE_JOB = dict(
    glue_version="5.1",
    execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=1),
    max_retries=0,
    job_run_queuing_enabled=False,
)

# Not data: Hadoop's markers and checksums, Spark's work folders, Parquet summary files if a cluster
# default ever wrote them (the jobs pin them off).
CRAWLER_EXCLUSIONS = [
    "_SUCCESS",
    "**/_SUCCESS",
    "**.crc",
    "_temporary/**",
    "**/_temporary/**",
    "_metadata",
    "**/_metadata",
    "_common_metadata",
    "**/_common_metadata",
]


def crawler_props(security_configuration: str) -> dict:
    """A crawler that makes its tables match the files, under the stage's security configuration."""
    return dict(
        crawler_security_configuration=security_configuration,
        schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
            update_behavior="UPDATE_IN_DATABASE", delete_behavior="LOG"
        ),
        recrawl_policy=glue.CfnCrawler.RecrawlPolicyProperty(recrawl_behavior="CRAWL_EVERYTHING"),
        # No "AddOrUpdateBehavior": "MergeNewColumns": with it a retyped column never reaches the
        # catalog. By default the crawler makes the table match the files: new, retyped and removed
        # columns alike (README, "Schema changes and the crawler").
        configuration=json.dumps({"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"}}),
    )


# Every state machine: JSONata, traced, and every execution's data in its log group.
STATE_MACHINE = dict(query_language=sfn.QueryLanguage.JSONATA, tracing_enabled=True)
STATE_MACHINE_LOGS = dict(level=sfn.LogLevel.ALL, include_execution_data=True)


# Named resources that are not data go with their stack in every mode: a retained log group or
# security configuration with a fixed name makes the next deploy of the same stage fail "already exists".
OWNED = RemovalPolicy.DESTROY


def log_group(scope, construct_id: str, name: str) -> logs.LogGroup:
    """A named log group kept a year and removed with its stack (see OWNED)."""
    return logs.LogGroup(scope, construct_id, log_group_name=name, retention=LOG_RETENTION, removal_policy=OWNED)


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


def tag(stack, project: str, stage: str, dataset: str | None = None, providers: bool = True) -> None:
    """Cost allocation: every taggable resource of the stack says its project, stage and dataset.

    Call it last: CDK's custom resource providers (the bucket's auto-delete handler) are plain
    CfnResources that Tags.of does not reach, so their role and function get the tags as a property;
    `providers=False`: the stack makes none (no bucket), so none is looked up.
    """
    tags = {"project": project, "stage": stage or DEFAULT_STAGE_TAG, **({"dataset": dataset} if dataset else {})}
    tagger = Tags.of(stack)
    for key, value in tags.items():
        # The CDK would tag a dashboard, but CloudFormation's schema for it has no Tags (cfn-lint E3002).
        tagger.add(key, value, exclude_resource_types=UNTAGGABLE)
    as_property = [{"Key": k, "Value": v} for k, v in tags.items()]
    # Looked up by their known IDs, not by walking every child: each read is a call into the CDK's
    # Node process (make bench, synth). A new provider type shows up untagged in the tags test.
    for provider_id in PROVIDERS if providers else ():
        provider = stack.node.try_find_child(provider_id)
        for resource in provider.node.children if provider is not None else ():
            if isinstance(resource, CfnResource) and resource.cfn_resource_type in PROVIDER_TYPES:
                resource.add_property_override("Tags", as_property)


# CDK's custom resource providers this app gets: the auto-delete handler of a bucket (destroy-data).
PROVIDERS = ("Custom::S3AutoDeleteObjectsCustomResourceProvider",)
PROVIDER_TYPES = ("AWS::IAM::Role", "AWS::Lambda::Function")
UNTAGGABLE = ["AWS::CloudWatch::Dashboard"]
