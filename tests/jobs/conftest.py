"""Fixtures shared by the job tests."""

from __future__ import annotations

import sys
import types

import pytest

from dwlib import jobs


@pytest.fixture
def on_glue(monkeypatch):
    """The job as Glue runs it: `awsglue.utils.getResolvedOptions` as Glue documents it (`--name value` pairs, every
    name required), a region and (moto's) credentials, and no forced dry run."""

    def get_resolved_options(argv, names):
        values = {}
        for name in names:
            flag = f"--{name}"
            if flag not in argv:
                raise SystemExit(f"argument {flag} is required")
            values[name] = argv[argv.index(flag) + 1]
        return values

    module = types.ModuleType("awsglue.utils")
    module.getResolvedOptions = get_resolved_options
    monkeypatch.setitem(sys.modules, "awsglue", types.ModuleType("awsglue"))
    monkeypatch.setitem(sys.modules, "awsglue.utils", module)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv(jobs.FORCE_DRY_RUN, raising=False)
