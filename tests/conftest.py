"""Fixtures shared by every test folder: the project as the app sees it, Spark, a local lake."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# No test may reach AWS: fake credentials, and moto where an AWS API is needed.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def project():
    from dwlib.config import load_project

    return load_project(ROOT)


@pytest.fixture(scope="session")
def spark():
    from dwlib.jobs import local_session

    session = local_session("pp-dw-tests", cores="1")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def core():
    """The repository's core config.json (tests derive changed copies with model_copy)."""
    from dwlib.config import load_core_config

    return load_core_config(ROOT / "config.json")


@pytest.fixture
def server():
    """A loopback HTTP server (tests/loopback.py) a test programs with its own routes."""
    from tests.loopback import LoopbackServer

    srv = LoopbackServer()
    yield srv
    srv.stop()


@pytest.fixture
def lake(tmp_path):
    from dwlib.lake import LocalLake

    return LocalLake(tmp_path / "lake")


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """A throwaway copy of the repository's config and datasets, to break or extend."""
    target = tmp_path / "project"
    target.mkdir()
    shutil.copyfile(ROOT / "config.json", target / "config.json")
    shutil.copytree(ROOT / "datasets", target / "datasets")
    return target
