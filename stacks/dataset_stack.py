"""DatasetStack: one per folder under datasets/, every name derived by convention."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import Annotations, Aws, Duration, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dwlib.config import CoreConfig, DatasetConfig, table_format_of
from dwlib.jobs import BRONZE_ARGS, GOLD_ARGS, default_arguments, job_config_document
from dwlib.naming import DROP_MARKER, LAYERS, WHEELS_DIR, Naming, fit, query_construct_id, table_name
from stacks import defaults, job_rights, nag
from stacks.export import DynamoDbExport
from stacks.monitoring import DatasetMonitoring
from stacks.nag import acknowledge

# The pipeline's input, from a schedule ({}), by hand ({"layers": [...], "dry_run": true, "run_id": ...,
# "raw_run_id": ...}, all optional) or an S3 "Object Created" event of a drop's marker, read once by
# one JSONata block into $request. Whatever is wrong with it lands in $request.problem, and the run
# fails with that message before any job starts. Run ids are UTC YYYYMMDDTHHMMSSZ.
FORCE_DRY_RUN_CONTEXT = "force_dry_run"
RUN_ID_PATTERN = "/^[0-9]{8}T[0-9]{6}Z$/"
NOW_RUN_ID = "$now('[Y0001][M01][D01]T[H01][m01][s01]Z')"
MANUAL_KEYS = ("layers", "dry_run", "raw_run_id", "run_id")


def request_expression(raw_dataset_prefix: str, layers: tuple[str, ...]) -> str:
    """The JSONata block that turns any start of the pipeline into $request (see README, "Starting a run")."""
    all_layers = "[" + ", ".join(f"'{layer}'" for layer in layers) + "]"
    allowed = "[" + ", ".join(f"'{k}'" for k in MANUAL_KEYS) + "]"
    expression = (
        "{% (\n"
        "  $in := $states.input;\n"
        "  $arrival := $in.source = 'aws.s3' and $in.`detail-type` = 'Object Created';\n"
        # S3 may URL-encode keys in events (a space as +, = as %3D); decode unless that would fail.
        "  $raw := $arrival ? $string($in.detail.object.key) : '';\n"
        "  $key := $contains($raw, /%(?![0-9A-Fa-f]{2})/) ? $raw : $decodeUrlComponent($replace($raw, '+', ' '));\n"
        "  $found := $match($key, /(^|[/])run_id=([^/]*)[/]/);\n"
        # What the arrival rule lets through only; anything else that reaches here starts nothing either.
        f"  $ignore := $arrival and ($in.detail.object.size = 0 or $not($contains($key, /[/]{DROP_MARKER}$/)));\n"
        f"  $unknown := $arrival ? [] : $filter($keys($in), function($k) {{ $not($k in {allowed}) }});\n"
        "  $run_id := $arrival ? ($exists($found) ? $found[0].groups[1] : '')"
        f" : ($exists($in.run_id) ? $in.run_id : {NOW_RUN_ID});\n"
        f"  $layers := $arrival or $not($exists($in.layers)) ? {all_layers} : $in.layers;\n"
        "  $dry_run := $arrival ? false : ($exists($in.dry_run) ? $in.dry_run : false);\n"
        "  $raw_run_id := $arrival ? 'none' : ($exists($in.raw_run_id) ? $in.raw_run_id : 'none');\n"
        "  $problem := $arrival and $substring($key, 0, "
        f"{len(raw_dataset_prefix)}) != '{raw_dataset_prefix}' ?\n"
        f"      'the object ' & $key & ' is not under {raw_dataset_prefix}: this pipeline only takes drops there'\n"
        "    : $arrival and $not($exists($found)) ?\n"
        "      'the object ' & $key & ' has no run_id=YYYYMMDDTHHMMSSZ/ folder in its key: put a drop under "
        f"{raw_dataset_prefix}run_id=YYYYMMDDTHHMMSSZ/ and write its marker last'\n"
        "    : $count($unknown) > 0 ?\n"
        f"      'unknown input field(s) ' & $join($unknown, ', ') & ': the pipeline takes {', '.join(MANUAL_KEYS)}'\n"
        "    : $type($run_id) != 'string' or $not($contains($run_id, " + RUN_ID_PATTERN + ")) ?\n"
        "      'run id ' & $string($run_id) & ($arrival ? ' (from the object ' & $key & ')' : '')"
        " & ' is not of the form YYYYMMDDTHHMMSSZ, such as 20261121T060000Z'\n"
        "    : $raw_run_id != 'none' and ($type($raw_run_id) != 'string' or $not($contains($raw_run_id, "
        + RUN_ID_PATTERN
        + "))) ?\n"
        "      'raw_run_id ' & $string($raw_run_id) & ' is not of the form YYYYMMDDTHHMMSSZ, such as 20261121T060000Z'\n"
        "    : $type($layers) != 'array' or $count($layers) = 0"
        f" or $count($filter($layers, function($l) {{ $not($l in {all_layers}) }})) > 0 ?\n"
        f"      'layers ' & $string($layers) & ' must be a non-empty list of {', '.join(layers)}'"
        + (
            " & ($count($filter($layers, function($l) { $l = 'gold' })) > 0 ? ' (this dataset has no gold models)' : '')"
            if "gold" not in layers
            else ""
        )
        + "\n"
        "    : $type($dry_run) != 'boolean' ? 'dry_run ' & $string($dry_run) & ' must be true or false'\n"
        "    : null;\n"
        "  {'arrival': $arrival, 'ignore': $ignore, 'key': $key, 'run_id': $run_id, 'raw_run_id': $raw_run_id,\n"
        "   'layers': $layers, 'dry_run': $dry_run, 'problem': $problem}\n"
        ") %}"
    )
    # One line: asl-validator (and the ASL schema it follows) takes "{% expr %}" without line breaks.
    return " ".join(line.strip() for line in expression.splitlines())


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

JOB_FAILURE_STATES = ("FAILED", "TIMEOUT", "STOPPED", "ERROR")


def arrival_detail_pattern(bucket_name: str, raw_dataset_prefix: str) -> dict:
    """Only a drop's marker, and only when it has bytes: console folders and empty objects start nothing.

    The key is matched in plain and URL-encoded form (`=` as %3D), whichever S3 puts in the event.
    """
    return {
        "bucket": {"name": [bucket_name]},
        "object": {
            "key": [
                {"wildcard": f"{raw_dataset_prefix}run_id=*/{DROP_MARKER}"},
                {"wildcard": f"{raw_dataset_prefix}run_id%3D*/{DROP_MARKER}"},
            ],
            "size": [{"numeric": [">", 0]}],
        },
    }


# Transient Glue API errors only: throttling, the one-run concurrency slot still taken, internal errors.
# A job run that FAILED (bad data, a failed quality budget) surfaces as States.TaskFailed: never retried.
TRANSIENT_GLUE_ERRORS = (
    "Glue.ConcurrentRunsExceededException",
    "Glue.InternalServiceException",
    "Glue.OperationTimeoutException",
    "Glue.ThrottlingException",
)
RETRY = {"IntervalSeconds": 60, "MaxAttempts": 3, "BackoffRate": 2.0, "MaxDelaySeconds": 300, "JitterStrategy": "FULL"}
# With MaxRetries 0, Glue itself may hold a new run WAITING for capacity up to 15 minutes before it starts.
GLUE_CAPACITY_WAIT_S = 15 * 60
PIPELINE_MARGIN_S = 5 * 60


def retry_wait_seconds(retry: dict = RETRY) -> int:
    """The longest the retries of one task can wait in all (full jitter only shortens each wait)."""
    return int(
        sum(
            min(retry["IntervalSeconds"] * retry["BackoffRate"] ** i, retry["MaxDelaySeconds"])
            for i in range(retry["MaxAttempts"])
        )
    )


def pipeline_timeout_seconds(job_timeout_minutes: int, jobs: int) -> int:
    """Each job in turn: its own timeout, Glue's capacity wait and our retries' waits; then a margin."""
    return jobs * (job_timeout_minutes * 60 + GLUE_CAPACITY_WAIT_S + retry_wait_seconds()) + PIPELINE_MARGIN_S


def staged_sql(sql: str, database_prefix: str, naming: Naming) -> str:
    """A query written against the default databases (pp_dw_gold.x) reads the stage's own (pp_dw_dev_gold.x)."""
    if not naming.stage:
        return sql
    return re.sub(rf"\b{re.escape(database_prefix)}_({'|'.join(LAYERS)})\b", lambda m: naming.database(m.group(1)), sql)


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
        naming = self.naming = Naming.of(core, defaults.stage_of(self))
        name = dataset.dataset
        # `cdk deploy -c force_dry_run=true`: a "smoke" deployment whose every job run is a dry run.
        self.force_dry_run = str(self.node.try_get_context(FORCE_DRY_RUN_CONTEXT)).lower() == "true"
        # Shared resources are found by their conventional names, not by CloudFormation exports,
        # so a dataset stack never pins the core stack (see README, "Why no exports").
        bucket = s3.Bucket.from_bucket_name(self, "Lake", naming.bucket(Aws.ACCOUNT_ID))
        # Iceberg: the job commits the table in the catalog itself; no crawler, and a role with that table's rights.
        self.iceberg = table_format_of(core, dataset) == "iceberg"
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
                    naming.job_config_key(name).rsplit("/", 1)[-1], job_config_document(core, dataset, naming.stage)
                ),
            ],
            memory_limit=256,
        )
        # CDK grants the deployment's handler the whole bucket and takes no prefix for its grant: an
        # explicit deny keeps its writes and deletes to this dataset's own etl/{dataset}/ folder.
        self.job_files.handler_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="OnlyThisDatasetsFiles",
                effect=iam.Effect.DENY,
                actions=["s3:PutObject*", "s3:DeleteObject*", "s3:Abort*"],
                not_resources=[bucket.arn_for_objects(f"{naming.etl_prefix(name)}*")],
            )
        )

        self.wheels = sorted(p.name for p in (glue_assets_dir / "glue" / WHEELS_DIR).glob("*.whl"))
        self.models = sorted(p.stem for p in (dataset_dir / "gold").glob("*.sql"))
        self.bronze_job = self._job(core, dataset, "bronze", BRONZE_ARGS, bucket, job_role, security)
        self.bronze_crawler = (
            None
            if self.iceberg
            else self._crawler("bronze", name, [naming.bronze_prefix(name)], bucket, crawler_role_arn)
        )
        self.gold_job = self.gold_crawler = None
        if self.models:
            self.gold_job = self._job(core, dataset, "gold", GOLD_ARGS, bucket, job_role, security)
            # One target per model folder, so models with similar schemas never merge into one table.
            self.gold_crawler = self._crawler(
                "gold", name, [naming.gold_prefix(name, m) for m in self.models], bucket, crawler_role_arn
            )

        self.state_machine = self._pipeline(naming, name, core.glue_defaults.timeout_minutes, gold=bool(self.models))
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
                reserved_concurrency=dataset.export.reserved_concurrency,
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
            raw = naming.raw_dataset_prefix(name)
            self.arrival_rule = events.Rule(
                self,
                "ArrivalRule",
                rule_name=naming.arrival_rule(name),
                description=f"A non-empty {DROP_MARKER} under {raw}run_id=…/ closes a drop and starts one {name} run",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=["Object Created"],
                    detail=arrival_detail_pattern(bucket.bucket_name, raw),
                ),
                # The whole event: the pipeline reads (and URL-decodes) the key itself.
                targets=[events_targets.SfnStateMachine(self.state_machine)],
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
        jobs = [naming.job(layer, name) for layer, job in (("bronze", self.bronze_job), ("gold", self.gold_job)) if job]
        self.job_failure_rule = events.Rule(
            self,
            "JobFailureRule",
            rule_name=naming.job_failure_rule(name),
            description=f"Failed, timed out, stopped or errored {name} Glue job runs (also those started by hand)",
            event_pattern=events.EventPattern(
                source=["aws.glue"],
                detail_type=["Glue Job State Change"],
                detail={"jobName": jobs, "state": list(JOB_FAILURE_STATES)},
            ),
            targets=[
                events_targets.SnsTopic(
                    topic,
                    message=events.RuleTargetInput.from_text(
                        f"Glue job {events.EventField.from_path('$.detail.jobName')} run "
                        f"{events.EventField.from_path('$.detail.jobRunId')} ended "
                        f"{events.EventField.from_path('$.detail.state')}: "
                        f"{events.EventField.from_path('$.detail.message')}"
                    ),
                )
            ],
        )
        layers = ["bronze", "gold"] if self.gold_job else ["bronze"]
        self.monitoring = DatasetMonitoring(
            self, "Monitoring", naming=naming, core=core, dataset=dataset, topic=topic, layers=layers,
            export_function=self.export.function if self.export else None,
        )  # fmt: skip
        for query in sorted((dataset_dir / "queries").glob("*.sql")):
            athena.CfnNamedQuery(
                self,
                query_construct_id(query.stem),
                name=naming.named_query(name, query.stem),
                database=naming.database("bronze"),
                work_group=naming.workgroup,
                query_string=staged_sql(query.read_text(encoding="utf-8"), core.database_prefix, naming),
                description=f"{name}: datasets/{name}/queries/{query.name}",
            )
        self._acknowledge()
        defaults.tag(self, core.etl_resource_prefix, naming.stage, name)

    def _job_role(self, dataset: DatasetConfig, bucket: s3.IBucket) -> iam.IRole:
        """The shared job role by name; a source with secrets, or an Iceberg table, gets its own: the same
        rights plus its secrets, or plus its own table in the catalog."""
        naming = self.naming
        self.dataset_role: iam.Role | None = None
        if not dataset.secrets and not self.iceberg:
            return iam.Role.from_role_name(self, "JobRole", naming.job_role, mutable=False)
        role = iam.Role(
            self,
            "JobRole",
            role_name=naming.dataset_job_role(dataset.dataset),
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"{dataset.dataset} Glue jobs: the shared job role's rights plus "
            + ", ".join(
                [f"reading {', '.join(dataset.secrets)}"] * bool(dataset.secrets)
                + ["committing its Iceberg table"] * self.iceberg
            )[:900],
        )
        namespace = naming.metrics_namespace
        for statement in job_rights.job_statements(bucket, key_alias=naming.key_alias, metrics_namespace=namespace):
            role.add_to_policy(statement)
        if dataset.secrets:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[job_rights.secret_arn(name) for name in dataset.secrets],
                )
            )
        if self.iceberg:
            role.add_to_policy(
                job_rights.iceberg_catalog_statement(naming.database("bronze"), table_name(dataset.dataset))
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
            # A Glue retry is a new job run that the pipeline's .sync task never sees: the pipeline
            # retries transient errors itself, and a failed run (bad data) is not paid for twice.
            max_retries=0,
            security_configuration=security,
            default_arguments={
                **default_arguments(
                    name, bucket.s3_url_for_object().rstrip("/"), args, force_dry_run=self.force_dry_run
                ),
                **self._modules(bucket, name),
            },
        )
        if dataset.execution_class == "flex":  # the L2 job has no prop for it
            job.node.default_child.add_property_override("ExecutionClass", "FLEX")
        job.node.add_dependency(self.job_files)
        return job

    def _modules(self, bucket: s3.IBucket, name: str) -> dict[str, str]:
        """The pinned wheels deployed with the job files, installed without a package index at job start."""
        if not self.wheels:
            return {}
        prefix = self.naming.wheels_prefix(name)
        return {
            "--additional-python-modules": ",".join(bucket.s3_url_for_object(f"{prefix}{w}") for w in self.wheels),
            "--python-modules-installer-option": "--no-index",
        }

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
                        exclusions=CRAWLER_EXCLUSIONS,
                    )
                    for prefix in prefixes
                ]
            ),
            schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                update_behavior="UPDATE_IN_DATABASE", delete_behavior="LOG"
            ),
            recrawl_policy=glue.CfnCrawler.RecrawlPolicyProperty(recrawl_behavior="CRAWL_EVERYTHING"),
            # No "AddOrUpdateBehavior": "MergeNewColumns": with it a retyped column never reaches the
            # catalog. By default the crawler makes the table match the files: new, retyped and removed
            # columns alike (README, "Schema changes and the crawler").
            configuration=json.dumps({"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"}}),
        )

    def _glue_step(self, layer: str, name: str) -> sfn.CustomState:
        """glue:startJobRun.sync written out, so its arguments are exactly ours (no NotificationProperty)."""
        arguments = {"--run_id": "{% $request.run_id %}", "--dry_run": "{% $request.dry_run ? 'true' : 'false' %}"}
        if layer == "bronze":
            arguments["--raw_run_id"] = "{% $request.raw_run_id %}"
        return sfn.CustomState(
            self,
            f"{layer.title()}JobRun",
            state_json={
                "Type": "Task",
                "Comment": f"Runs the Glue job {self.naming.job(layer, name)} and waits for it",
                "Resource": f"arn:{Aws.PARTITION}:states:::glue:startJobRun.sync",
                "Arguments": {"JobName": self.naming.job(layer, name), "Arguments": arguments},
                "Output": {
                    "run_id": "{% $request.run_id %}",
                    "layer": layer,
                    "job_run_id": "{% $states.result.Id %}",
                    "state": "{% $states.result.JobRunState %}",
                },
                "Retry": [{"ErrorEquals": list(TRANSIENT_GLUE_ERRORS), **RETRY}],
            },
        )

    def _pipeline(self, naming: Naming, name: str, timeout_minutes: int, gold: bool) -> sfn.StateMachine:
        layers = ("bronze", "gold") if gold else ("bronze",)
        machine_name = naming.state_machine(name)
        own_arn = f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:{machine_name}"
        read = sfn.Pass.jsonata(
            self,
            "ReadInput",
            comment="A schedule, a start by hand or a drop's marker: one $request, or the problem with it",
            assign={"request": request_expression(naming.raw_dataset_prefix(name), layers)},
        )
        bad = sfn.Fail.jsonata(self, "BadInput", error="pp-dw.BadInput", cause="{% $request.problem %}")
        done = sfn.Succeed.jsonata(self, "Done", outputs="{% $states.input %}")
        ignored = sfn.Succeed.jsonata(
            self, "NotAMarker", comment="An empty object or a file that is not a drop's marker starts nothing"
        )
        already = sfn.Succeed.jsonata(
            self, "AlreadyStarted", comment="This run id already ran or runs: a repeated marker event starts nothing"
        )
        # A drop starts its run as a child execution named by its run id: the name makes a repeated
        # event (S3 delivers at least once; a marker written twice) idempotent instead of a second run.
        start_run = sfn.CustomState(
            self,
            "StartRunOfDrop",
            state_json={
                "Type": "Task",
                "Comment": "Starts this pipeline once per run id, with the drop's run id",
                "Resource": f"arn:{Aws.PARTITION}:states:::states:startExecution",
                "Arguments": {
                    "StateMachineArn": own_arn,
                    "Name": "{% $request.run_id %}",
                    "Input": {"run_id": "{% $request.run_id %}"},
                },
                "Output": {"run_id": "{% $request.run_id %}", "started": "{% $states.result.ExecutionArn %}"},
            },
        )
        start_run.add_catch(already, errors=["StepFunctions.ExecutionAlreadyExistsException"])
        bronze = self._glue_step("bronze", name)
        ask_gold = None
        after_bronze: sfn.IChainable = done
        if gold:
            gold_step = self._glue_step("gold", name)
            gold_step.next(done)
            ask_gold = (
                sfn.Choice.jsonata(self, "RunGold", comment="Only the layers asked for")
                .when(sfn.Condition.jsonata("{% 'gold' in $request.layers %}"), gold_step)
                .otherwise(done)
            )
            after_bronze = ask_gold
        bronze.next(after_bronze)
        ask_bronze = (
            sfn.Choice.jsonata(self, "RunBronze", comment="Only the layers asked for")
            .when(sfn.Condition.jsonata("{% 'bronze' in $request.layers %}"), bronze)
            .otherwise(after_bronze)
        )
        route = (
            sfn.Choice.jsonata(self, "CheckInput")
            .when(sfn.Condition.jsonata("{% $request.ignore %}"), ignored)
            .when(sfn.Condition.jsonata("{% $type($request.problem) = 'string' %}"), bad)
            .when(sfn.Condition.jsonata("{% $request.arrival %}"), start_run)
            .otherwise(ask_bronze)
        )
        log_group = defaults.log_group(self, "PipelineLogs", f"/aws/vendedlogs/states/{machine_name}")
        machine = sfn.StateMachine(
            self,
            "Pipeline",
            state_machine_name=machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(read.next(route)),
            query_language=sfn.QueryLanguage.JSONATA,
            timeout=Duration.seconds(pipeline_timeout_seconds(timeout_minutes, len(layers))),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        job_arns = [
            f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}:job/{naming.job(layer, name)}" for layer in layers
        ]
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
                resources=job_arns,
            )
        )
        machine.add_to_role_policy(iam.PolicyStatement(actions=["states:StartExecution"], resources=[own_arn]))
        return machine

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
        for rule in (self.failure_rule, self.job_failure_rule):
            Annotations.of(rule).acknowledge_warning(
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
