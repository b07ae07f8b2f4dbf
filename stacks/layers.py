"""A Glue layer of a dataset: its job, and its crawler unless the job commits its own catalog table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from dwlib.config import CoreConfig, DatasetConfig
from dwlib.jobs import BRONZE_ARGS, GOLD_ARGS, default_arguments
from dwlib.naming import Naming, fit
from stacks import defaults
from stacks.nag import acknowledge, acknowledge_all
from stacks.tokens import s3_url

ARGUMENTS = {"bronze": BRONZE_ARGS, "gold": GOLD_ARGS}
# What the L2 Glue job (aws-glue's PySparkEtlJob) added to every job's arguments after the language and
# the library: continuous logs to CloudWatch, job metrics and observability metrics.
L2_JOB_ARGUMENTS = {
    "--enable-continuous-cloudwatch-log": "true",
    "--enable-metrics": "",
    "--enable-observability-metrics": "true",
}


@dataclass(frozen=True)
class LayerPlan:
    """What a dataset's layer is made of: the folders its crawler catalogs (none: no crawler)."""

    layer: str
    crawled: tuple[str, ...]


def plan_layers(naming: Naming, dataset: str, models: Sequence[str], iceberg: bool) -> list[LayerPlan]:
    """Bronze always; gold when the dataset has models. An Iceberg dataset's jobs commit their own tables
    (bronze and every gold model): no crawler. A Parquet gold layer gets one crawler target per model
    folder, so models with similar schemas never merge into one table."""
    plans = [LayerPlan("bronze", () if iceberg else (naming.bronze_prefix(dataset),))]
    if models:
        plans.append(LayerPlan("gold", () if iceberg else tuple(naming.gold_prefix(dataset, m) for m in models)))
    return plans


@dataclass(frozen=True)
class JobContext:
    """What every layer's job of one dataset stack shares."""

    core: CoreConfig
    dataset: DatasetConfig
    naming: Naming
    bucket: s3.IBucket
    bucket_name: str
    role_arn: str
    security_configuration: str
    crawler_role_arn: str
    job_files: IConstruct
    modules: dict[str, str]
    force_dry_run: bool


class GlueLayer:
    """The job `{Layer}Job` and crawler `{Layer}Crawler`, created in the stack's own scope, so their
    logical IDs are the ones the stack always had."""

    def __init__(self, stack: Stack, plan: LayerPlan, context: JobContext):
        self.layer = plan.layer
        self.job = self._job(stack, plan.layer, context)
        self.crawler = self._crawler(stack, plan, context) if plan.crawled else None
        shared = (
            f"uses the core stack's security configuration {context.naming.security_configuration} "
            "(KMS-encrypted CloudWatch logs and job bookmarks), referenced by name, which cdk-nag cannot follow"
        )
        acknowledge_all(self.job, [("AwsSolutions-GL1", shared, None), ("AwsSolutions-GL3", shared, None)])
        if self.crawler is not None:
            acknowledge(self.crawler, "AwsSolutions-GL1", shared)

    @staticmethod
    def _job(stack: Stack, layer: str, c: JobContext) -> Construct:
        """The job as the L2 PySparkEtlJob rendered it, as an L1 from plain data in `{Layer}Job/Resource`
        (the L2's path, so the same logical ID): the L2, its two Code objects and the imported role and
        security configuration it takes are each a call into the CDK's Node process (make bench, synth)."""
        naming, dataset, name = c.naming, c.dataset, c.dataset.dataset
        workers = c.core.glue_worker_configs[dataset.data_size_category]
        job = Construct(stack, f"{layer.title()}Job")
        glue.CfnJob(
            job,
            "Resource",
            name=naming.job(layer, name),
            description=f"{layer}: {dataset.description}"[:2048],
            role=c.role_arn,
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl",
                python_version="3",
                script_location=s3_url(c.bucket_name, naming.script_key(name, layer)),
            ),
            default_arguments={
                **default_arguments(name, s3_url(c.bucket_name), ARGUMENTS[layer], force_dry_run=c.force_dry_run),
                **c.modules,
                "--job-language": "python",
                "--extra-py-files": s3_url(c.bucket_name, naming.library_key(name)),
                **L2_JOB_ARGUMENTS,  # in the L2's order, so the template is the same byte for byte
            },
            worker_type=workers.worker_type,
            number_of_workers=workers.number_of_workers,
            timeout=c.core.glue_defaults.timeout_minutes,
            security_configuration=c.security_configuration,
            execution_class="FLEX" if dataset.execution_class == "flex" else None,
            **defaults.GLUE_JOB,
        )
        job.node.add_dependency(c.job_files)
        return job

    @staticmethod
    def _crawler(stack: Stack, plan: LayerPlan, c: JobContext) -> glue.CfnCrawler:
        naming, layer = c.naming, plan.layer
        return glue.CfnCrawler(
            stack,
            f"{layer.title()}Crawler",
            name=naming.crawler(layer, c.dataset.dataset),
            description=fit(
                "glue_crawler_description",
                f"Catalogs {naming.database(layer)} from {', '.join(plan.crawled)}; run by hand",
            ),
            role=c.crawler_role_arn,
            database_name=naming.database(layer),
            targets=glue.CfnCrawler.TargetsProperty(
                s3_targets=[
                    glue.CfnCrawler.S3TargetProperty(
                        path=s3_url(c.bucket_name, prefix), exclusions=defaults.CRAWLER_EXCLUSIONS
                    )
                    for prefix in plan.crawled
                ]
            ),
            **defaults.crawler_props(naming.security_configuration),
        )
