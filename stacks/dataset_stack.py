"""DatasetStack: one per folder under datasets/, every name derived by convention."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Annotations, Aws, Duration, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from dwlib.config import CoreConfig, DatasetConfig
from dwlib.jobs import BRONZE_ARGS, GOLD_ARGS, NONE, default_arguments, job_config_document
from dwlib.naming import Naming, fit, query_construct_id
from stacks import defaults, job_rights, nag
from stacks.export import DynamoDbExport
from stacks.nag import acknowledge

# JSONata: run ids are UTC YYYYMMDDTHHMMSSZ unless the caller gives one (DESIGN section 5).
# A file's arrival (S3 "Object Created" under raw/{dataset}/run_id=…/) carries the run id in its key.
RUN_ID_EXPR = (
    "{% $exists($states.input.run_id) ? $states.input.run_id : "
    "$exists($states.input.key) ? $substringBefore($substringAfter($states.input.key, 'run_id='), '/') : "
    "$now('[Y0001][M01][D01]T[H01][m01][s01]Z') %}"
)
RAW_RUN_ID_EXPR = "{% $exists($states.input.raw_run_id) ? $states.input.raw_run_id : '" + NONE + "' %}"


class DatasetStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        core: CoreConfig,
        dataset: DatasetConfig,
        dataset_dir: Path,
        glue_assets_dir: Path,
        export_code_dir: Path | None = None,
        **kwargs,
    ):
        description = Naming.dataset_stack_description(dataset.dataset, dataset.description)
        super().__init__(scope, construct_id, description=description, **kwargs)
        naming = self.naming = Naming.of(core)
        name = dataset.dataset
        # Shared resources are found by their conventional names, not by CloudFormation exports,
        # so a dataset stack never pins the core stack (see README, "Why no exports").
        bucket = s3.Bucket.from_bucket_name(self, "Lake", naming.bucket(Aws.ACCOUNT_ID))
        job_role = self._job_role(dataset, bucket)
        crawler_role_arn = f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{naming.crawler_role}"
        security = glue.SecurityConfiguration.from_security_configuration_name(
            self, "Security", naming.security_configuration
        )
        topic = sns.Topic.from_topic_arn(
            self, "Failures", f"arn:{Aws.PARTITION}:sns:{Aws.REGION}:{Aws.ACCOUNT_ID}:{naming.failure_topic}"
        )

        self.job_files = s3deploy.BucketDeployment(
            self,
            "JobFiles",
            destination_bucket=bucket,
            destination_key_prefix=naming.etl_prefix(name),
            sources=[
                s3deploy.Source.asset(str(glue_assets_dir)),
                s3deploy.Source.asset(str(dataset_dir), exclude=["sample", "sample/**", "*.md"]),
                s3deploy.Source.json_data(
                    naming.job_config_key(name).rsplit("/", 1)[-1], job_config_document(core, dataset)
                ),
            ],
            memory_limit=256,
        )

        self.models = sorted(p.stem for p in (dataset_dir / "gold").glob("*.sql"))
        self.bronze_job = self._job(core, dataset, "bronze", BRONZE_ARGS, bucket, job_role, security)
        self.bronze_crawler = self._crawler("bronze", name, [naming.bronze_prefix(name)], bucket, crawler_role_arn)
        self.gold_job = self.gold_crawler = None
        if self.models:
            self.gold_job = self._job(core, dataset, "gold", GOLD_ARGS, bucket, job_role, security)
            # One target per model folder, so models with similar schemas never merge into one table.
            self.gold_crawler = self._crawler(
                "gold", name, [naming.gold_prefix(name, m) for m in self.models], bucket, crawler_role_arn
            )

        glue_defaults = core.glue_defaults
        self.state_machine = self._pipeline(
            naming, name, glue_defaults.timeout_minutes, glue_defaults.max_retries, gold=bool(self.models)
        )
        self.export = None
        if dataset.source_kind == "dynamodb_table":
            assert export_code_dir is not None, "build_lambda_asset('dynamodb_csv_export') first"
            self.export = DynamoDbExport(
                self,
                "Export",
                naming=naming,
                dataset=name,
                table_name=dataset.dynamodb_table,
                category=dataset.data_size_category,
                bucket=bucket,
                failure_topic=topic,
                key_alias=naming.key_alias,
                code_dir=export_code_dir,
            )
            # The schedule runs the export; the file's arrival runs the pipeline.
            target = scheduler_targets.LambdaInvoke(
                self.export.function, input=scheduler.ScheduleTargetInput.from_object({})
            )
        else:
            target = scheduler_targets.StepFunctionsStartExecution(
                self.state_machine, input=scheduler.ScheduleTargetInput.from_object({})
            )
        if dataset.schedule:
            scheduler.Schedule(
                self,
                "Schedule",
                schedule_name=naming.schedule(name),
                description=f"Runs the {name} pipeline: {dataset.schedule}",
                schedule=scheduler.ScheduleExpression.expression(dataset.schedule),
                target=target,
            )
        if self.export is not None and dataset.schedule:
            function_arn = f"<{self.get_logical_id(self.export.function.node.default_child)}.Arn>"
            for role in [c for c in self.node.children if c.node.id.startswith("SchedulerRoleForTarget")]:
                acknowledge(
                    role,
                    "AwsSolutions-IAM5",
                    "The Scheduler's role may invoke any version of the export function (CDK's LambdaInvoke target)",
                    [f"Resource::{function_arn}:*"],
                )
        self.arrival_rule = None
        if dataset.source_kind in ("dynamodb_table", "landing"):
            self.arrival_rule = events.Rule(
                self,
                "ArrivalRule",
                rule_name=naming.arrival_rule(name),
                description=f"A file under {naming.raw_dataset_prefix(name)}run_id=…/ starts the {name} pipeline",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=["Object Created"],
                    detail={
                        "bucket": {"name": [bucket.bucket_name]},
                        "object": {"key": [{"prefix": f"{naming.raw_dataset_prefix(name)}run_id="}]},
                    },
                ),
                targets=[
                    events_targets.SfnStateMachine(
                        self.state_machine,
                        input=events.RuleTargetInput.from_object(
                            {"key": events.EventField.from_path("$.detail.object.key")}
                        ),
                    )
                ],
            )
        self.failure_rule = events.Rule(
            self,
            "FailureRule",
            rule_name=naming.failure_rule(name),
            description=f"Failed, timed out or aborted {name} pipeline runs go to the failure topic",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                },
            ),
            targets=[events_targets.SnsTopic(topic)],
        )
        for query in sorted((dataset_dir / "queries").glob("*.sql")):
            athena.CfnNamedQuery(
                self,
                query_construct_id(query.stem),
                name=naming.named_query(name, query.stem),
                database=naming.database("bronze"),
                work_group=naming.workgroup,
                query_string=query.read_text(encoding="utf-8"),
                description=f"{name}: datasets/{name}/queries/{query.name}",
            )
        self._acknowledge()

    def _job_role(self, dataset: DatasetConfig, bucket: s3.IBucket) -> iam.IRole:
        """The shared job role by name; a source with secrets gets its own: the same rights plus its secrets."""
        naming = self.naming
        self.dataset_role: iam.Role | None = None
        if not dataset.secrets:
            return iam.Role.from_role_name(self, "JobRole", naming.job_role, mutable=False)
        role = iam.Role(
            self,
            "JobRole",
            role_name=naming.dataset_job_role(dataset.dataset),
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"{dataset.dataset} Glue jobs: the shared job role's rights plus reading "
            f"{', '.join(dataset.secrets)}"[:1000],
        )
        for statement in job_rights.job_statements(bucket, key_alias=naming.key_alias):
            role.add_to_policy(statement)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[job_rights.secret_arn(name) for name in dataset.secrets],
            )
        )
        stack = Stack.of(self)
        lake_arn = f"arn:{nag.partition(stack)}:s3:::{naming.bucket(nag.pseudo(stack, stack.account, 'AccountId'))}"
        job_rights.acknowledge_job_statements(role, lake_arn, kms_by_alias=True)
        self.dataset_role = role
        # The jobs get the role as it is: grants the Glue constructs would add stay out of its policy.
        return role.without_policy_updates()

    def _job(self, core, dataset, layer, args, bucket, role, security) -> glue.PySparkEtlJob:
        naming, name = self.naming, dataset.dataset
        workers = core.glue_worker_configs[dataset.data_size_category]
        job = glue.PySparkEtlJob(
            self,
            f"{layer.title()}Job",
            job_name=naming.job(layer, name),
            description=f"{layer}: {dataset.description}"[:2048],
            role=role,
            script=glue.Code.from_bucket(bucket, naming.script_key(name, layer)),
            extra_python_files=[glue.Code.from_bucket(bucket, naming.library_key(name))],
            glue_version=glue.GlueVersion.V5_1,
            worker_configuration=glue.WorkerConfiguration(
                worker_type=defaults.WORKER_TYPES[workers.worker_type], number_of_workers=workers.number_of_workers
            ),
            max_concurrent_runs=1,
            timeout=Duration.minutes(core.glue_defaults.timeout_minutes),
            max_retries=core.glue_defaults.max_retries,
            security_configuration=security,
            default_arguments={
                **default_arguments(name, bucket.s3_url_for_object().rstrip("/"), args),
                "--additional-python-modules": ",".join(core.glue_defaults.additional_python_modules),
            },
        )
        job.node.add_dependency(self.job_files)
        return job

    def _crawler(self, layer, name, prefixes, bucket, role_arn) -> glue.CfnCrawler:
        naming = self.naming
        return glue.CfnCrawler(
            self,
            f"{layer.title()}Crawler",
            name=naming.crawler(layer, name),
            description=fit(
                "glue_crawler_description", f"Catalogs {naming.database(layer)} from {', '.join(prefixes)}; run by hand"
            ),
            role=role_arn,
            database_name=naming.database(layer),
            crawler_security_configuration=naming.security_configuration,
            targets=glue.CfnCrawler.TargetsProperty(
                s3_targets=[
                    glue.CfnCrawler.S3TargetProperty(
                        path=bucket.s3_url_for_object(prefix),
                        exclusions=["_SUCCESS", "**/_SUCCESS", "**.crc", "_temporary/**", "**/_temporary/**"],
                    )
                    for prefix in prefixes
                ]
            ),
            schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                update_behavior="UPDATE_IN_DATABASE", delete_behavior="LOG"
            ),
            recrawl_policy=glue.CfnCrawler.RecrawlPolicyProperty(recrawl_behavior="CRAWL_EVERYTHING"),
            configuration=json.dumps(
                {
                    "Version": 1.0,
                    "CrawlerOutput": {"Tables": {"AddOrUpdateBehavior": "MergeNewColumns"}},
                    "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},
                }
            ),
        )

    def _glue_step(self, layer: str, name: str, outputs: dict) -> tasks.GlueStartJobRun:
        arguments = {"--run_id": "{% $run_id %}"}
        if layer == "bronze":
            arguments["--raw_run_id"] = "{% $raw_run_id %}"
        step = tasks.GlueStartJobRun.jsonata(
            self,
            f"{layer.title()}JobRun",
            glue_job_name=self.naming.job(layer, name),
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            arguments=sfn.TaskInput.from_object(arguments),
            outputs=outputs,
        )
        step.add_retry(
            errors=[
                "Glue.ConcurrentRunsExceededException",
                "Glue.InternalServiceException",
                "Glue.ThrottlingException",
            ],
            interval=Duration.minutes(1),
            max_attempts=3,
            backoff_rate=2,
        )
        return step

    def _pipeline(self, naming: Naming, name: str, timeout_minutes: int, retries: int, gold: bool) -> sfn.StateMachine:
        resolve = sfn.Pass.jsonata(self, "ResolveRunId", assign={"run_id": RUN_ID_EXPR, "raw_run_id": RAW_RUN_ID_EXPR})
        chain = resolve.next(
            self._glue_step("bronze", name, {"run_id": "{% $run_id %}", "bronze": "{% $states.result.JobRunState %}"})
        )
        if gold:
            chain = chain.next(
                self._glue_step("gold", name, {"run_id": "{% $run_id %}", "gold": "{% $states.result.JobRunState %}"})
            )
        log_group = logs.LogGroup(
            self,
            "PipelineLogs",
            log_group_name=f"/aws/vendedlogs/states/{naming.state_machine(name)}",
            retention=defaults.LOG_RETENTION,
        )
        return sfn.StateMachine(
            self,
            "Pipeline",
            state_machine_name=naming.state_machine(name),
            definition_body=sfn.DefinitionBody.from_chainable(chain),
            query_language=sfn.QueryLanguage.JSONATA,
            timeout=Duration.minutes((2 if gold else 1) * timeout_minutes * (retries + 1) + 30),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )

    def _acknowledge(self) -> None:
        stack = Stack.of(self)
        shared = (
            f"uses the core stack's security configuration {self.naming.security_configuration} "
            "(KMS-encrypted CloudWatch logs and job bookmarks), referenced by name, which cdk-nag cannot follow"
        )
        for job in (self.bronze_job, self.gold_job):
            if job is not None:
                acknowledge(job, "AwsSolutions-GL1", shared)
                acknowledge(job, "AwsSolutions-GL3", shared)
        for crawler in (self.bronze_crawler, self.gold_crawler):
            if crawler is not None:
                acknowledge(crawler, "AwsSolutions-GL1", shared)
        acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5",
            "Step Functions' own policy for X-Ray and log delivery has no resource-level scoping",
            ["Resource::*"],
        )
        Annotations.of(self.failure_rule).acknowledge_warning(
            "@aws-cdk/aws-events:ruleUnresolvedEnvironment",
            "the failure topic is in the same account and region, found by its conventional ARN",
        )
        part = nag.partition(stack)
        account = nag.pseudo(stack, stack.account, "AccountId")
        region = nag.pseudo(stack, stack.region, "Region")
        for handler in [c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")]:
            acknowledge(
                handler,
                "AwsSolutions-IAM5",
                "CDK's BucketDeployment handler copies the job files from the asset bucket to etl/; "
                "it learns object keys at deploy time",
                [
                    "Action::s3:GetObject*",
                    "Action::s3:GetBucket*",
                    "Action::s3:List*",
                    "Action::s3:DeleteObject*",
                    "Action::s3:Abort*",
                    f"Resource::arn:{part}:s3:::cdk-hnb659fds-assets-{account}-{region}/*",
                    f"Resource::arn:{part}:s3:::{self.naming.bucket(account)}/*",
                ],
            )
            acknowledge(
                handler,
                "AwsSolutions-IAM4",
                "CDK's BucketDeployment handler logs with the basic execution role",
                ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
            )
            acknowledge(
                handler, "AwsSolutions-L1", "CDK's BucketDeployment handler pins its runtime; it runs only at deploy"
            )
