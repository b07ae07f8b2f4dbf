"""EtlCoreStack: the shared bucket, catalog, roles, Athena and alerts, as deployed."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template


@pytest.fixture(scope="module")
def core(stacks, project):
    from dwlib.naming import Naming

    return Template.from_stack(stacks[Naming.of(project.core).core_stack])


def test_lake_bucket_is_private_encrypted_versioned_and_logged(core):
    core.has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": Match.object_like(
                {
                    "BucketName": {"Fn::Join": ["", ["pp-dw-", {"Ref": "AWS::AccountId"}]]},
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "LoggingConfiguration": Match.object_like({"LogFilePrefix": "lake/"}),
                }
            ),
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_bucket_sends_object_events_to_eventbridge(core):
    core.has_resource_properties(
        "Custom::S3BucketNotifications", {"NotificationConfiguration": {"EventBridgeConfiguration": {}}}
    )


def test_lifecycle_ages_out_raw_runs_athena_results_and_old_versions(core, project):
    life = project.core.lifecycle
    core.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": {"Fn::Join": ["", ["pp-dw-", {"Ref": "AWS::AccountId"}]]},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like({"Prefix": "raw/", "ExpirationInDays": life.raw_retention_days}),
                        Match.object_like(
                            {"Prefix": "athena-results/", "ExpirationInDays": life.athena_results_retention_days}
                        ),
                        Match.object_like(
                            {"NoncurrentVersionExpiration": {"NoncurrentDays": life.noncurrent_version_retention_days}}
                        ),
                    ]
                )
            },
        },
    )


def test_bucket_policy_refuses_plain_http(core):
    core.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_destroy_is_an_explicit_opt_in(project):
    from app import build_app, new_app

    app = build_app(project, new_app(**{"destroy-data": "true"}))
    template = Template.from_stack(app.node.find_child("pp-dw-core"))
    template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Delete"})


@pytest.mark.parametrize("layer", ["bronze", "gold"])
def test_glue_databases(core, layer):
    core.has_resource_properties(
        "AWS::Glue::Database", {"DatabaseInput": Match.object_like({"Name": f"pp_dw_{layer}"})}
    )


def _policy_text(core, role_name: str) -> str:
    roles = core.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": role_name}})
    assert len(roles) == 1
    (role_id,) = roles
    policies = core.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
    assert policies, f"{role_name} has no inline policy"
    return json.dumps(policies)


@pytest.mark.parametrize("role_name", ["pp-dw-glue-job-role", "pp-dw-glue-crawler-role"])
def test_roles_are_scoped_no_full_access_no_s3_star(core, role_name):
    text = _policy_text(core, role_name)
    assert '"s3:*"' not in text
    assert "FullAccess" not in json.dumps(core.find_resources("AWS::IAM::Role"))
    assert '/*"' in text  # prefixes, not the whole bucket


def test_job_role_writes_only_the_lake_prefixes(core):
    text = _policy_text(core, "pp-dw-glue-job-role")
    for prefix in ("raw", "staging", "bronze", "gold", "quarantine", "runs"):
        assert f"/{prefix}/*" in text
    statements = [
        s
        for policy in json.loads(text).values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "s3:PutObject" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    written = json.dumps(statements)
    assert "/etl/*" not in written  # scripts and config are read-only to the jobs


def test_security_configuration_encrypts_logs_and_bookmarks(core):
    core.has_resource_properties(
        "AWS::Glue::SecurityConfiguration",
        {
            "Name": "pp-dw-glue-security",
            "EncryptionConfiguration": Match.object_like(
                {
                    "CloudWatchEncryption": Match.object_like({"CloudWatchEncryptionMode": "SSE-KMS"}),
                    "JobBookmarksEncryption": Match.object_like({"JobBookmarksEncryptionMode": "CSE-KMS"}),
                    "S3Encryptions": [Match.object_like({"S3EncryptionMode": "SSE-S3"})],
                }
            ),
        },
    )


def test_athena_workgroup_enforces_location_encryption_and_scan_limit(core, project):
    core.has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "Name": "pp-dw-workgroup",
            "WorkGroupConfiguration": Match.object_like(
                {
                    "EnforceWorkGroupConfiguration": True,
                    "BytesScannedCutoffPerQuery": project.core.athena.bytes_scanned_cutoff_per_query,
                    "ResultConfiguration": {
                        "OutputLocation": Match.any_value(),
                        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
                    },
                }
            ),
        },
    )


def test_failure_topic_is_encrypted(core):
    core.has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": "pp-dw-failures", "KmsMasterKeyId": Match.any_value()}
    )
