"""The Glue job files a dataset stack deploys: entry points plus the shared library as a zip.

Built once per synth into .build/glue/ with fixed timestamps, so the asset hash (and so
the deployment) only changes when the code does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from dwlib.naming import LIBRARY_ZIP, WHEELS_DIR

ROOT = Path(__file__).resolve().parent.parent
JOBS_DIR = ROOT / "glue_jobs"
ENTRY_POINTS = ("bronze_job.py", "gold_job.py")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def library_files() -> list[Path]:
    lib = JOBS_DIR / "dwlib"
    return sorted(p for p in lib.rglob("*.py") if "__pycache__" not in p.parts)


# Glue 5.1: CPython 3.11 on x86_64 Linux (manylinux2014 wheels install there).
GLUE_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp")
WHEEL_CACHE = ROOT / ".build" / "wheels"


def wheel_for(requirement: str, folder: Path) -> Path | None:
    """The wheel of `name==version` in folder, if it is there (wheel file names normalize `-` to `_`)."""
    name, version = requirement.split("==")
    stem = f"{name.lower().replace('-', '_').replace('.', '_')}-{version}-"
    return next((p for p in sorted(folder.glob("*.whl")) if p.name.lower().startswith(stem)), None)


def build_wheels(requirements: Sequence[str], cache: Path = WHEEL_CACHE) -> list[Path]:
    """The pinned wheels for Glue's platform, downloaded once into cache (later synths are offline).

    Binary wheels only (`--only-binary=:all:`): nothing is compiled on this machine for another one,
    and `--no-deps`: the list is complete and pinned (config.json, glue_defaults.additional_python_modules).
    """
    cache.mkdir(parents=True, exist_ok=True)
    missing = [r for r in requirements if wheel_for(r, cache) is None]
    if missing:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        command += ["--only-binary=:all:", *GLUE_PLATFORM, "--no-deps", "--dest", str(cache), *missing]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"could not download the Glue job wheels {', '.join(missing)} for CPython 3.11 manylinux x86_64 "
                f"into {cache} (pip needs the package index once; later synths use this folder):\n{done.stderr}"
            )
    found = [wheel_for(r, cache) for r in requirements]
    absent = [r for r, w in zip(requirements, found, strict=True) if w is None]
    if absent:
        raise RuntimeError(f"pip downloaded no wheel for {', '.join(absent)} into {cache}")
    return [w for w in found if w is not None]


def build_glue_assets(build_dir: Path = ROOT / ".build" / "glue", wheels: Sequence[Path] = ()) -> Path:
    """Write glue/{bronze_job.py, gold_job.py, dwlib.zip, wheels/*.whl} under build_dir; returns build_dir."""
    target = build_dir / "glue"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if wheels:
        (target / WHEELS_DIR).mkdir()
        for wheel in wheels:
            shutil.copyfile(wheel, target / WHEELS_DIR / wheel.name)
    for name in ENTRY_POINTS:
        if (JOBS_DIR / name).exists():
            shutil.copyfile(JOBS_DIR / name, target / name)
    with zipfile.ZipFile(target / LIBRARY_ZIP, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in library_files():
            info = zipfile.ZipInfo(path.relative_to(JOBS_DIR).as_posix(), date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return build_dir


LAMBDAS_DIR = ROOT / "lambdas"
# Pure-Python packages the export handler imports beyond the Lambda runtime (which has boto3).
HANDLER_PACKAGES = ("aws_lambda_powertools", "typing_extensions")


def build_lambda_asset(name: str, build_dir: Path = ROOT / ".build" / "lambdas") -> Path:
    """A Lambda code folder: the handler, naming from the job library, and Powertools, copied from
    the project's own pinned install (no Docker, no download)."""
    import importlib.util

    target = build_dir / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(LAMBDAS_DIR / name, target, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    (target / "dwlib").mkdir()
    for module in ("__init__.py", "naming.py"):
        shutil.copyfile(JOBS_DIR / "dwlib" / module, target / "dwlib" / module)
    for package in HANDLER_PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None, f"{package} is not installed; run make install"
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, target / package, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(origin, target / origin.name)
    return target
