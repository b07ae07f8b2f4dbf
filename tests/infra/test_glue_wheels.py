"""Jobs need no internet: the wheels Glue installs are built at synth and deployed with the job files."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from dwlib.config import GLUE_WHEELS, GlueDefaults
from dwlib.naming import Naming
from stacks.assets import build_glue_assets, build_wheels

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bundle(project):
    """The bundle exactly as synth builds it (pip's download of the pinned wheels, kept in .build/wheels)."""
    return build_wheels(project.core.glue_defaults.additional_python_modules)


def test_the_bundle_is_for_glue_51(bundle):
    """CPython 3.11 on manylinux x86_64, or pure Python: nothing built for this machine instead."""
    assert len(bundle) == len(GLUE_WHEELS)
    for wheel in bundle:
        tags = wheel.name.removesuffix(".whl").split("-")[-3:]
        assert tags[-1] == "any" or ("cp311" in tags[0] and "manylinux" in tags[-1] and "x86_64" in tags[-1]), wheel


@pytest.mark.skipif(shutil.which("python3.11") is None, reason="needs python3.11 (Glue 5.1's Python)")
def test_the_bundle_installs_without_an_index_and_the_job_library_imports_from_it(bundle, tmp_path):
    assets = build_glue_assets(tmp_path / "assets", wheels=bundle) / "glue"
    wheels = sorted((assets / "wheels").glob("*.whl"))
    assert [w.name for w in wheels] == sorted(w.name for w in bundle)
    venv = tmp_path / "venv"
    subprocess.run(["python3.11", "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Glue runs `pip install --no-index <the S3 wheels>`; the same here, into the clean environment.
    install = ["pip", "--python", str(python), "install", "--quiet", "--no-index", *map(str, wheels)]
    done = subprocess.run(install, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        # Every module of the job library that does not need Spark (Glue brings pyspark and boto3).
        "import dwlib.config, dwlib.fetch, dwlib.naming, dwlib.lake, dwlib.hook, urllib3, pydantic, sqlglot;"
        "import dwlib.iceberg, pyiceberg.schema, pyiceberg.table, pyiceberg.transforms;"
        "dwlib.config.GlueDefaults(); sqlglot.parse_one('SELECT a FROM pp_dw_bronze.t', read='spark');"
        "assert dwlib.config.__file__.startswith(sys.argv[1]), dwlib.config.__file__;"
        "from urllib3.exceptions import NameResolutionError;"
        "print(urllib3.__version__, pydantic.VERSION, sqlglot.__version__)"
    )
    ran = subprocess.run([str(python), "-I", "-c", probe, str(assets / "dwlib.zip")], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split()[0].startswith("2.")
    with zipfile.ZipFile(assets / "dwlib.zip") as archive:
        assert "dwlib/config.py" in archive.namelist()


def test_jobs_install_only_the_deployed_wheels(project, stacks, bundle):
    naming = Naming.of(project.core)
    for name in project.datasets:
        template = Template.from_stack(stacks[naming.dataset_stack(name)])
        for job in template.find_resources("AWS::Glue::Job").values():
            args = job["Properties"]["DefaultArguments"]
            assert args["--python-modules-installer-option"] == "--no-index"
            modules = json.dumps(args["--additional-python-modules"])
            assert "==" not in modules
            for wheel in bundle:
                assert f"/{naming.wheels_prefix(name)}{wheel.name}" in modules, (name, wheel.name)
            assert modules.count(".whl") == len(bundle)


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        (["pydantic>=2", *GLUE_WHEELS[1:]], "pin every module as name==version"),
        ([m for m in GLUE_WHEELS if not m.startswith("sqlglot")], "the jobs need sqlglot==30.30.0"),
        ([*GLUE_WHEELS[:-1], "urllib3==1.26.20"], "urllib3 must be 2.x"),
    ],
)
def test_the_module_list_is_complete_pinned_and_has_urllib3_2(modules, message):
    with pytest.raises(ValueError, match=message):
        GlueDefaults(additional_python_modules=modules)
