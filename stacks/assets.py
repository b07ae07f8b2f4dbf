"""The Glue job files a dataset stack deploys: entry points plus the shared library as a zip.

Built once per synth into .build/glue/ with fixed timestamps, so the asset hash (and so
the deployment) only changes when the code does.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from dwlib.naming import LIBRARY_ZIP

ROOT = Path(__file__).resolve().parent.parent
JOBS_DIR = ROOT / "glue_jobs"
ENTRY_POINTS = ("bronze_job.py", "gold_job.py")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def library_files() -> list[Path]:
    lib = JOBS_DIR / "dwlib"
    return sorted(p for p in lib.rglob("*.py") if "__pycache__" not in p.parts)


def build_glue_assets(build_dir: Path = ROOT / ".build" / "glue") -> Path:
    """Write glue/{bronze_job.py, gold_job.py, dwlib.zip} under build_dir; returns build_dir."""
    target = build_dir / "glue"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
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
