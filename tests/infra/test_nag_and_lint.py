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
