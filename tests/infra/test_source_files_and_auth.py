"""A source_url behind source_auth gets the dataset's own role with exactly its secret; a relative
source_url is deployed with the job files (sample/ and *.md are not), so Glue can read it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from aws_cdk.assertions import Template

from dwlib.config import load_project


def add_dataset(project: Path, name: str, **fields) -> Path:
    folder = project / "datasets" / name
    # With sample/ and README.md; without gold/, whose tables ourairports already owns.
    shutil.copytree(project / "datasets" / "ourairports", folder, ignore=shutil.ignore_patterns("gold"))
    config = json.loads((folder / "config.json").read_text())
    config.update(dataset=name, **fields)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_source_auth_role_and_a_deployed_relative_source(project_copy, tmp_path):
    from app import build_app, new_app

    add_dataset(
        project_copy,
        "shop-export",
        source_url="https://shop.example.com/export/orders.csv",
        source_auth={"secret": "pp-dw/shop-export", "header": "X-Export-Key"},
    )
    folder = add_dataset(project_copy, "city-file", source_url="data/cities.csv")
    (folder / "data").mkdir()
    (folder / "data" / "cities.csv").write_text("id,city\n1,Oslo\n")

    outdir = tmp_path / "cdk.out"
    app = build_app(load_project(project_copy), new_app(str(outdir)))
    app.synth()

    template = Template.from_stack(app.node.find_child("pp-dw-dataset-shop-export"))
    template.has_resource_properties("AWS::IAM::Role", {"RoleName": "pp-dw-shop-export-job-role"})
    policies = template.find_resources("AWS::IAM::Policy")
    statements = [st for pol in policies.values() for st in pol["Properties"]["PolicyDocument"]["Statement"]]
    (secret,) = [st for st in statements if st["Action"] == "secretsmanager:GetSecretValue"]
    assert ":secret:pp-dw/shop-export-??????" in json.dumps(secret["Resource"])
    # What the city-file stack's BucketDeployment extracts into etl/city-file/.
    from tests.infra.test_job_files import deployed_files

    files = deployed_files(outdir, Template.from_stack(app.node.find_child("pp-dw-dataset-city-file")))
    assert files["data/cities.csv"] == b"id,city\n1,Oslo\n"
    assert "config.json" in files and "job_config.json" in files
    assert not any(name.startswith("sample/") or name == "README.md" for name in files)
