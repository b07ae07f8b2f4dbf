"""cdk-nag and cfn-lint run in the suite: zero unacknowledged findings, zero lint errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_cdk_nag_reports_nothing_unacknowledged(synthesized):
    _, _, outdir = synthesized
    report = json.loads((outdir / "validation-report.json").read_text())
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert violations == []


def test_an_unacknowledged_finding_fails_synth(project):
    """The check can fail: a bucket without access logs and acknowledgment stops synth."""
    from aws_cdk import aws_s3 as s3

    from app import build_app, new_app

    app = build_app(project, new_app())
    s3.Bucket(app.node.find_child("pp-dw-core"), "Unlogged", enforce_ssl=True)
    with pytest.raises(Exception, match="AwsSolutions-S1"):
        app.synth()


def test_cfn_lint_finds_no_errors(synthesized, root):
    _, _, outdir = synthesized
    templates = sorted(str(p) for p in outdir.glob("*.template.json"))
    assert len(templates) >= 3
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--non-zero-exit-code", "error", *templates],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("environment", "context"),
    [
        ({"CDK_DEFAULT_ACCOUNT": "111122223333", "CDK_DEFAULT_REGION": "eu-west-1"}, {}),
        ({"CDK_DEFAULT_ACCOUNT": "111122223333"}, {"stage": "dev", "destroy-data": "true"}),
    ],
    ids=["account-and-region", "account-only-dev"],
)
def test_synth_passes_cdk_nag_when_the_cli_knows_the_account(project, tmp_path, monkeypatch, environment, context):
    """`cdk synth`/`cdk deploy` with credentials set CDK_DEFAULT_ACCOUNT: the stacks get a concrete account,
    and the acknowledgments must still match cdk-nag's findings (they once named the literal account while
    the policies named `<AWS::AccountId>`, and every deploy stopped at synth). The buckets' names are then
    static, as `--import-existing-resources` needs them to adopt a retained bucket."""
    from app import build_app, new_app

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if "CDK_DEFAULT_REGION" not in environment:
        monkeypatch.delenv("CDK_DEFAULT_REGION", raising=False)
    build_app(project, new_app(str(tmp_path), **context)).synth()  # raises on an unacknowledged finding

    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])] == []
    core = next(tmp_path.glob("pp-dw-*core.template.json"))
    names = sorted(
        r["Properties"]["BucketName"]
        for r in json.loads(core.read_text())["Resources"].values()
        if r["Type"] == "AWS::S3::Bucket"
    )
    stage = f"{context['stage']}-" if "stage" in context else ""
    assert names == sorted([f"pp-dw-{stage}111122223333", f"pp-dw-{stage}access-logs-111122223333"])
