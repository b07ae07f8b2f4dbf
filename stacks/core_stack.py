"""EtlCoreStack: what every dataset shares: the bucket, catalog databases, roles, Athena, alerts."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from dwlib.config import CoreConfig
from dwlib.naming import LAYERS, Naming
from stacks import defaults, nag
from stacks.job_rights import acknowledge_job_statements, job_statements, logs_statement, object_arns
from stacks.monitoring import RunHistoryTable, allow_alarms
from stacks.nag import acknowledge
from stacks.tokens import Aws

CRAWLED_PREFIXES = LAYERS  # the crawler role reads every layer (an Iceberg bronze table has no crawler)


class EtlCoreStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, core: CoreConfig, destroy_data: bool = False, **kwargs):
        naming = Naming.of(core, defaults.stage_of(scope))
        super().__init__(scope, construct_id, description=f"{naming.etl_resource_prefix}: data lake core", **kwargs)
        self.naming = naming
        self._logs_key(naming, destroy_data)
        self._buckets(naming, core, destroy_data)
        self._catalog(naming)
        self.job_role = self._job_role(naming)
        self.crawler_role = self._crawler_role(naming)
        self._failure_topic(naming)
        allow_alarms(self.topic, self.key, naming)
        self.run_history = RunHistoryTable(self, "RunHistory", naming=naming, bucket=self.bucket)
        self._workgroup(naming, core)

        CfnOutput(self, "BucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "WorkgroupName", value=naming.workgroup)
        CfnOutput(self, "FailureTopicArn", value=self.topic.topic_arn)
        self._acknowledge()
        defaults.tag(self, core.etl_resource_prefix, naming.stage)

    def _logs_key(self, naming: Naming, destroy_data: bool) -> None:
        """The stage's KMS key: Glue's logs and bookmarks, the failure topic."""
        self.key = kms.Key(
            self,
            "LogsKey",
            alias=naming.key_alias,
            description="Encrypts Glue logs and job bookmarks and the failure topic",
            enable_key_rotation=True,
            removal_policy=defaults.removal_policy(destroy_data),
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="GlueLogsEncryption",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws-glue/*"
                    }
                },
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeToEncryptedTopic",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )

    def _buckets(self, naming: Naming, core: CoreConfig, destroy_data: bool) -> None:
        """The lake and its server access log bucket, with the secure bucket defaults."""
        life = core.lifecycle
        # The account as the stack knows it: the literal one when `cdk` runs with credentials, so the
        # names are static in the template (what `--import-existing-resources` needs to adopt a retained
        # bucket) and match the findings cdk-nag prints for the policies that name them.
        account = nag.environment(self)[1]
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=naming.access_log_bucket(account),
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(life.access_log_retention_days)),
                s3.LifecycleRule(
                    id="expire-noncurrent",
                    noncurrent_version_expiration=Duration.days(life.noncurrent_version_retention_days),
                ),
            ],
            **defaults.bucket_props(destroy_data),
        )
        self.bucket = s3.Bucket(
            self,
            "Lake",
            bucket_name=naming.bucket(account),
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="lake/",
            event_bridge_enabled=True,  # "Object Created" under raw/ starts pipelines
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-raw-runs", prefix="raw/", expiration=Duration.days(life.raw_retention_days)
                ),
                s3.LifecycleRule(
                    id="expire-athena-results",
                    prefix=naming.athena_results_prefix(),
                    expiration=Duration.days(life.athena_results_retention_days),
                ),
                s3.LifecycleRule(id="expire-staging-leftovers", prefix="staging/", expiration=Duration.days(7)),
                s3.LifecycleRule(
                    id="expire-noncurrent",
                    noncurrent_version_expiration=Duration.days(life.noncurrent_version_retention_days),
                ),
                defaults.abort_uploads_rule(),
            ],
            **defaults.bucket_props(destroy_data),
        )

    def _catalog(self, naming: Naming) -> None:
        """A catalog database per layer and the security configuration of every job and crawler."""
        for layer in LAYERS:
            glue.CfnDatabase(
                self,
                f"{layer.title()}Database",
                catalog_id=Aws.ACCOUNT_ID,
                database_input=glue.CfnDatabase.DatabaseInputProperty(
                    name=naming.database(layer),
                    description=f"{layer} tables of {naming.etl_resource_prefix}",
                    location_uri=self.bucket.s3_url_for_object(f"{layer}/"),
                ),
            )

        self.security_configuration = glue.SecurityConfiguration(
            self,
            "GlueSecurity",
            security_configuration_name=naming.security_configuration,
            s3_encryption=glue.S3Encryption.s3_managed(),
            cloud_watch_encryption=glue.CloudWatchEncryption.kms(self.key),
            job_bookmarks_encryption=glue.JobBookmarksEncryption.client_side_kms(self.key),
        )
        self.security_configuration.apply_removal_policy(defaults.OWNED)

    def _failure_topic(self, naming: Naming) -> None:
        """The topic every failure rule and alarm of this stage publishes to (and only those)."""
        self.topic = sns.Topic(
            self,
            "Failures",
            topic_name=naming.failure_topic,
            display_name=f"{naming.etl_resource_prefix} pipeline failures",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DatasetFailureRules",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                # Only this stage's failure rules: `pp-dw-*` would also let every other stage's rules publish.
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": [
                            f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/{rule}"
                            for rule in (naming.failure_rule("*"), naming.job_failure_rule("*"))
                        ]
                    }
                },
            )
        )

    def _workgroup(self, naming: Naming, core: CoreConfig) -> None:
        """Athena's workgroup: results in the lake, a scan cutoff per query."""
        athena.CfnWorkGroup(
            self,
            "Workgroup",
            name=naming.workgroup,
            description=f"Queries over the {naming.etl_resource_prefix} lake",
            state="ENABLED",
            # Its contents are query history (the results are in the lake): without this, CloudFormation
            # cannot delete a workgroup anyone has queried in ("WorkGroup is not empty"), and `cdk destroy`
            # of the core stack fails.
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=core.athena.bytes_scanned_cutoff_per_query,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(selected_engine_version="AUTO"),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.bucket.s3_url_for_object(naming.athena_results_prefix()),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )

    def _job_role(self, naming: Naming) -> iam.Role:
        role = iam.Role(
            self,
            "GlueJobRole",
            role_name=naming.job_role,
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="Shared role of the bronze and gold Glue jobs: the lake's prefixes, nothing else",
        )
        # the same rights a dataset's own role gets
        for statement in job_statements(self.bucket, key=self.key, metrics_namespace=naming.metrics_namespace):
            role.add_to_policy(statement)
        return role

    def _crawler_role(self, naming: Naming) -> iam.Role:
        role = iam.Role(
            self,
            "GlueCrawlerRole",
            role_name=naming.crawler_role,
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="Role of the crawlers: read bronze/ and gold/, write their catalog databases",
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=object_arns(self.bucket, CRAWLED_PREFIXES))
        )
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]))
        catalog = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        databases = [naming.database(layer) for layer in CRAWLED_PREFIXES]
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                    "glue:CreatePartition",
                    "glue:BatchCreatePartition",
                    "glue:UpdatePartition",
                    "glue:BatchUpdatePartition",
                ],
                resources=[f"{catalog}:catalog"]
                + [f"{catalog}:database/{db}" for db in databases]
                + [f"{catalog}:table/{db}/*" for db in databases],
            )
        )
        role.add_to_policy(logs_statement("/aws-glue/crawlers"))
        self.key.grant_encrypt_decrypt(role)
        return role

    def _acknowledge(self) -> None:
        acknowledge(self.access_logs, "AwsSolutions-S1", "This is the server access log bucket itself")
        lake_arn = f"<{self.get_logical_id(self.bucket.node.default_child)}.Arn>"
        kms_groups = ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"]
        kms_reason = "grant_encrypt_decrypt on the one logs key uses the GenerateDataKey*/ReEncrypt* action groups"
        acknowledge_job_statements(self.job_role, lake_arn, kms_by_alias=False)
        acknowledge(
            self.crawler_role,
            "AwsSolutions-IAM5",
            "Crawlers read every object of the crawled prefixes and create the tables they find",
            [f"Resource::{lake_arn}/{p}/*" for p in CRAWLED_PREFIXES]
            + [
                f"Resource::arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:table/{self.naming.database(p)}/*"
                for p in CRAWLED_PREFIXES
            ],
        )
        acknowledge(
            self.crawler_role,
            "AwsSolutions-IAM5",
            "Crawlers write their own log streams under /aws-glue/crawlers, named at run time",
            ["Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws-glue/crawlers*"],
        )
        acknowledge(self.crawler_role, "AwsSolutions-IAM5", kms_reason, kms_groups)
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4",
                    "CDK's handler that turns on EventBridge notifications for the bucket logs with the basic role",
                    ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
                )
