"""The files a dataset's Glue jobs read, deployed to its own etl/{dataset}/ folder of the lake."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy

from dwlib.config import CoreConfig, DatasetConfig
from dwlib.jobs import job_config_document
from dwlib.naming import Naming
from stacks import assets, nag
from stacks.nag import acknowledge_all


@functools.cache
def _shared_source(path: Path, asset_hash: str) -> s3deploy.ISource:
    """The shared job files as a deployment source, made once for every stack: a source only says what
    to upload, and each deployment binds it into an asset of its own."""
    return s3deploy.Source.asset(str(path), asset_hash=asset_hash)


class JobFiles:
    """The job scripts, library and wheels, the dataset's folder (without sample/ and *.md) and its job
    config, as the BucketDeployment `JobFiles` in the stack's own scope.

    Its two sources are zips made in Python (stacks/assets.py), each a file asset hashed by its content:
    the shared job files, one object for every dataset, and the dataset's folder with its job config. The
    CDK then neither walks, globs, copies and hashes the folders nor writes the config to a scratch folder
    again in every stack, and the deployed objects are the same as from the folders.
    """

    def __init__(
        self,
        stack: Stack,
        *,
        naming: Naming,
        core: CoreConfig,
        dataset: DatasetConfig,
        dataset_dir: Path,
        glue_assets_dir: Path,
        bucket: s3.IBucket,
        bucket_name: str,
    ):
        name = dataset.dataset
        shared, shared_hash = assets.glue_assets_zip(glue_assets_dir)
        config = json.dumps(job_config_document(core, dataset, naming.stage), separators=(",", ":"), ensure_ascii=False)
        own, own_hash = assets.build_dataset_files(
            dataset_dir, naming.job_config_key(name).rsplit("/", 1)[-1], config, glue_assets_dir.parent / "datasets"
        )
        self.deployment = s3deploy.BucketDeployment(
            stack,
            "JobFiles",
            destination_bucket=bucket,
            destination_key_prefix=naming.etl_prefix(name),
            sources=[
                _shared_source(shared, shared_hash),
                s3deploy.Source.asset(str(own), asset_hash=own_hash),
            ],
            memory_limit=256,
        )
        # CDK grants the deployment's handler the whole bucket and takes no prefix for its grant: an
        # explicit deny keeps its writes and deletes to this dataset's own etl/{dataset}/ folder.
        partition = nag.environment(stack)[0]
        role = self.deployment.handler_role  # read once: each read is a call into the CDK's Node process
        role.add_to_policy(  # add_to_principal_policy's result struct would be two more reads
            iam.PolicyStatement(
                sid="OnlyThisDatasetsFiles",
                effect=iam.Effect.DENY,
                actions=["s3:PutObject*", "s3:DeleteObject*", "s3:Abort*"],
                # bucket.arn_for_objects, written in Python: the bucket is found by name (see DatasetStack).
                not_resources=[f"arn:{partition}:s3:::{bucket_name}/{naming.etl_prefix(name)}*"],
            )
        )
        self._acknowledge(stack, naming, role)

    def _acknowledge(self, stack: Stack, naming: Naming, role: iam.IRole) -> None:
        part = nag.partition(stack)
        _, stack_account, stack_region = nag.environment(stack)
        account = nag.pseudo(stack, stack_account, "AccountId")
        region = nag.pseudo(stack, stack_region, "Region")
        # The handler is a singleton function in the stack's scope; its role leads to it in one read.
        handler = role.node.scope
        acknowledge_all(
            handler,
            [
                (
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
                        f"Resource::arn:{part}:s3:::{naming.bucket(account)}/*",
                    ],
                ),
                (
                    "AwsSolutions-IAM4",
                    "CDK's BucketDeployment handler logs with the basic execution role",
                    ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
                ),
                ("AwsSolutions-L1", "CDK's BucketDeployment handler pins its runtime; it runs only at deploy", None),
            ],
        )
