"""DatasetStack: one per folder under datasets/, every name derived by convention.

The stack only composes its parts, each in its own module and each creating its resources in the
stack's own scope (so the logical IDs never depend on how the code is split): the job files
(stacks/job_files.py), a Glue layer per layer (stacks/layers.py), the pipeline and its failure rules
(stacks/pipeline.py), the triggers of its source kind (stacks/triggers.py, with the DynamoDB export),
monitoring and named queries. The secure defaults they share are in stacks/defaults.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from dwlib.config import CoreConfig, DatasetConfig, table_format_of
from dwlib.naming import LAYERS, WHEELS_DIR, Naming, query_construct_id, table_name
from stacks import defaults, job_rights, nag
from stacks.defaults import CRAWLER_EXCLUSIONS, FORCE_DRY_RUN_CONTEXT  # noqa: F401 (their old home)
from stacks.job_files import JobFiles
from stacks.layers import GlueLayer, JobContext, plan_layers
from stacks.monitoring import DatasetMonitoring
from stacks.pipeline import (  # noqa: F401 (their old home)
    GLUE_CAPACITY_WAIT_S,
    JOB_FAILURE_STATES,
    RETRY,
    TRANSIENT_GLUE_ERRORS,
    Pipeline,
    pipeline_timeout_seconds,
    request_expression,
    retry_wait_seconds,
)
from stacks.tokens import Aws, s3_url
from stacks.triggers import SOURCE_KINDS, arrival_detail_pattern  # noqa: F401 (its old home)


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
        # The stage and `cdk deploy -c force_dry_run=true` (a "smoke" deployment whose every job run is a
        # dry run), and the stack's partition, account and region: the same for every dataset stack of
        # the app, read once for all of them.
        stage, self.force_dry_run = defaults.settings_of(scope)
        self.environment_strings = nag.read_environment(self, scope, kwargs.get("env"))
        naming = self.naming = Naming.of(core, stage)
        name = dataset.dataset
        # Shared resources are found by their conventional names, not by CloudFormation exports,
        # so a dataset stack never pins the core stack (see README, "Why no exports").
        # By the account as the stack knows it, as the core stack names the bucket.
        bucket_name = naming.bucket(self.environment_strings[1])
        bucket = s3.Bucket.from_bucket_name(self, "Lake", bucket_name)
        # Iceberg: the job commits the table in the catalog itself; no crawler, and a role with that table's rights.
        self.iceberg = table_format_of(core, dataset) == "iceberg"
        self.models = sorted(p.stem for p in (dataset_dir / "gold").glob("*.sql"))
        job_role_arn = self._job_role_arn(dataset, bucket)
        # The failure topic by its ARN; an ITopic only where a construct needs one (the export's destination).
        topic_arn = f"arn:{Aws.PARTITION}:sns:{Aws.REGION}:{Aws.ACCOUNT_ID}:{naming.failure_topic}"

        self.job_files = JobFiles(
            self, naming=naming, core=core, dataset=dataset, dataset_dir=dataset_dir,
            glue_assets_dir=glue_assets_dir, bucket=bucket, bucket_name=bucket_name,
        ).deployment  # fmt: skip
        self.wheels = sorted(p.name for p in (glue_assets_dir / "glue" / WHEELS_DIR).glob("*.whl"))
        context = JobContext(
            core=core,
            dataset=dataset,
            naming=naming,
            bucket=bucket,
            bucket_name=bucket_name,
            role_arn=job_role_arn,
            security_configuration=naming.security_configuration,  # the core stack's, by name
            crawler_role_arn=f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{naming.crawler_role}",
            job_files=self.job_files,
            modules=self._modules(bucket_name, name),
            force_dry_run=self.force_dry_run,
        )
        self.layers = {
            p.layer: GlueLayer(self, p, context) for p in plan_layers(naming, name, self.models, self.iceberg)
        }
        self.bronze_job, self.bronze_crawler = self.layers["bronze"].job, self.layers["bronze"].crawler
        gold = self.layers.get("gold")
        self.gold_job, self.gold_crawler = (gold.job, gold.crawler) if gold else (None, None)

        self.pipeline = Pipeline(
            self, naming=naming, dataset=name, layers=list(self.layers),
            timeout_minutes=core.glue_defaults.timeout_minutes, topic_arn=topic_arn,
        )  # fmt: skip
        self.state_machine = self.pipeline.state_machine
        self.triggers = SOURCE_KINDS[dataset.source_kind](
            self, naming=naming, dataset=dataset, bucket=bucket, topic_arn=topic_arn,
            state_machine=self.state_machine, export_code_dir=export_code_dir,
        )  # fmt: skip
        self.export = getattr(self.triggers, "export", None)
        self.arrival_rule = self.triggers.arrival_rule
        self.pipeline.failure_rules()
        self.failure_rule, self.job_failure_rule = self.pipeline.failure_rule, self.pipeline.job_failure_rule
        self.monitoring = DatasetMonitoring(
            self, "Monitoring", naming=naming, core=core, dataset=dataset, topic_arn=topic_arn, layers=list(self.layers),
            export_function=self.triggers.export_function,
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
        defaults.tag(self, core.etl_resource_prefix, naming.stage, name, providers=False)  # it makes no bucket

    def _job_role_arn(self, dataset: DatasetConfig, bucket: s3.IBucket) -> str:
        """The shared job role by name; a source with secrets, or an Iceberg table, gets its own: the same
        rights plus its secrets, or plus its own table in the catalog."""
        naming = self.naming
        self.dataset_role: iam.Role | None = None
        if not dataset.secrets and not self.iceberg:
            partition, account, _ = self.environment_strings
            return f"arn:{partition}:iam::{account}:role/{naming.job_role}"  # as Role.from_role_name's ARN
        role = iam.Role(
            self,
            "JobRole",
            role_name=naming.dataset_job_role(dataset.dataset),
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"{dataset.dataset} Glue jobs: the shared job role's rights plus "
            + ", ".join(
                [f"reading {', '.join(dataset.secrets)}"] * bool(dataset.secrets)
                + ["committing its Iceberg table" + "s" * bool(self.models)] * self.iceberg
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
                job_rights.iceberg_catalog_statement(
                    naming.database("bronze"), table_name(dataset.dataset), naming.database("gold"), self.models
                )
            )
        lake_arn = (
            f"arn:{nag.partition(self)}:s3:::{naming.bucket(nag.pseudo(self, nag.environment(self)[1], 'AccountId'))}"
        )
        job_rights.acknowledge_job_statements(role, lake_arn, kms_by_alias=True)
        self.dataset_role = role
        return role.role_arn  # the jobs get the role as it is: nothing adds grants to its policy

    def _modules(self, bucket_name: str, name: str) -> dict[str, str]:
        """The pinned wheels deployed with the job files, installed without a package index at job start."""
        if not self.wheels:
            return {}
        prefix = self.naming.wheels_prefix(name)
        return {
            "--additional-python-modules": ",".join(s3_url(bucket_name, f"{prefix}{w}") for w in self.wheels),
            "--python-modules-installer-option": "--no-index",
        }
