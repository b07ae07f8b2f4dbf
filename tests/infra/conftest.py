"""One synthesized app per test session; templates come from it, never from logical IDs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthesized(project, tmp_path_factory):
    from app import build_app, new_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(project, new_app(str(outdir)))
    assembly = app.synth()
    return app, assembly, outdir


@pytest.fixture(scope="session")
def stacks(synthesized, project):
    from dwlib.naming import Naming

    app, _, _ = synthesized
    naming = Naming.of(project.core)
    return {child.node.id: child for child in app.node.children if child.node.id.startswith(naming.etl_resource_prefix)}


@pytest.fixture(scope="session")
def synthesized_dev(project, tmp_path_factory):
    """The same project as a second copy: `-c stage=dev -c destroy-data=true`."""
    from app import build_app, new_app

    outdir = tmp_path_factory.mktemp("cdk.out.dev")
    app = build_app(project, new_app(str(outdir), stage="dev", **{"destroy-data": "true"}))
    return app, app.synth(), outdir
