#!/usr/bin/env python3
"""The CDK app: EtlCoreStack plus one DatasetStack per datasets/*/config.json. No edit to add a dataset."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from dwlib.config import ConfigError, Project, load_project
from dwlib.naming import Naming
from stacks.assets import build_glue_assets, build_lambda_asset, build_wheels
from stacks.core_stack import EtlCoreStack
from stacks.dataset_stack import DatasetStack
from stacks.defaults import destroy_data_of, stage_of
from stacks.monitoring import FreshnessCheck, LakeDashboard

ROOT = Path(__file__).resolve().parent


def new_app(outdir: str | None = None, **context: str) -> cdk.App:
    """An App with cdk.json's context (feature flags), as the CDK CLI would give it; for tests and tools."""
    settings = json.loads((ROOT / "cdk.json").read_text())["context"]
    return cdk.App(outdir=outdir, context={**settings, **context})


def build_app(project: Project, app: cdk.App | None = None) -> cdk.App:
    """Every stack of the project, with cdk-nag's AWS Solutions checks over all of them."""
    app = app or cdk.App()
    naming = Naming.of(project.core, stage_of(app))  # ValueError for a stage name that is not one
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    destroy = destroy_data_of(app)
    core = EtlCoreStack(app, naming.core_stack, core=project.core, destroy_data=destroy, env=env)
    LakeDashboard(core, "Operations", project=project)  # in the core stack: one dashboard per stage
    FreshnessCheck(core, "Freshness", project=project, code_dir=ROOT / "lambdas" / "freshness")  # boto3 only
    glue_assets = build_glue_assets(wheels=build_wheels(project.core.glue_defaults.additional_python_modules))
    exports = any(d.source_kind == "dynamodb_table" for d in project.datasets.values())
    export_code = build_lambda_asset("dynamodb_csv_export") if exports else None
    for name, dataset in project.datasets.items():
        stack = DatasetStack(
            app,
            naming.dataset_stack(name),
            core=project.core,
            dataset=dataset,
            dataset_dir=project.dataset_dir(name),
            glue_assets_dir=glue_assets,
            export_code_dir=export_code,
            env=env,
        )
        stack.add_stack_dependency(core)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    try:
        project = load_project(ROOT)
    except ConfigError as exc:
        print("The project configuration has problems; nothing was synthesized:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(1)
    try:
        app = build_app(project)
    except ValueError as exc:  # a -c stage=… that is not a stage name
        print(f"cdk.json / -c context: {exc}; nothing was synthesized", file=sys.stderr)
        sys.exit(1)
    app.synth()


if __name__ == "__main__":
    main()
