"""The export function's packages are wheels for its runtime (CPython 3.14, x86_64), not this machine's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from dwlib.naming import Naming
from stacks.assets import HANDLER_WHEELS, LAMBDA_PYTHON, WHEEL_CACHE, build_lambda_asset, wheel_for

TAG = "cp" + LAMBDA_PYTHON.replace(".", "")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_lambda_asset("dynamodb_csv_export", tmp_path_factory.mktemp("lambdas"))


def test_the_function_runs_the_python_the_bundle_is_built_for(project, stacks):
    name = next(n for n, d in project.datasets.items() if d.source_kind == "dynamodb_table")
    template = Template.from_stack(stacks[Naming.of(project.core).dataset_stack(name)])
    template.has_resource_properties(
        "AWS::Lambda::Function", {"FunctionName": f"pp-dw-export-{name}", "Runtime": f"python{LAMBDA_PYTHON}"}
    )


def test_every_wheel_installs_on_the_functions_runtime(bundle):
    """Pure Python, the stable ABI or built for CPython 3.14 on manylinux x86_64: nothing else."""
    for requirement in HANDLER_WHEELS:
        wheel = wheel_for(requirement, WHEEL_CACHE / f"lambda-py{LAMBDA_PYTHON}")
        assert wheel is not None, requirement
        python, abi, platform = wheel.name.removesuffix(".whl").split("-")[-3:]
        pure = abi == "none" and platform == "any" and python.startswith("py3")
        native = (TAG in python or abi == "abi3") and "manylinux" in platform and "x86_64" in platform
        assert pure or native, wheel.name
    assert not list(bundle.rglob("*.so")) or all(TAG in p.name or "abi3" in p.name for p in bundle.rglob("*.so"))


def runnable(version: str) -> str | None:
    """An interpreter of that version that runs (a pyenv shim of a version not selected does not)."""
    candidates = [shutil.which(f"python{version}")]
    candidates += [str(p) for p in sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def _pythons() -> list[str]:
    found = runnable(LAMBDA_PYTHON)
    return [found] if found else []


@pytest.mark.parametrize("python", _pythons() or [pytest.param("", marks=pytest.mark.skip(reason="no python3.14"))])
def test_the_handler_imports_from_the_bundle_alone_under_the_runtimes_python(bundle, python):
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import handler, aws_lambda_powertools, jmespath"
    ran = subprocess.run([python, "-I", "-c", probe, str(bundle)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr


@pytest.mark.parametrize("python", [p for p in map(runnable, ("3.13", "3.12")) if p][:1])
def test_the_bundle_is_complete_in_a_clean_interpreter(bundle, python, tmp_path):
    """Without python3.14 here, the newest Python shows the bundle lacks nothing (boto3 is the runtime's)."""
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from aws_lambda_powertools import Logger; Logger(service='x'); import jmespath, typing_extensions"
    )
    ran = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", probe, str(bundle)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
