"""The Glue job files a dataset stack deploys: entry points plus the shared library as a zip.

Built once per synth into .build/ with fixed timestamps, so the asset hash (and so the
deployment) only changes when the code does. Each build lands in a folder named by its content,
made whole elsewhere and renamed into place: two synths at once (test workers, a synth beside
`make demo`) never read a folder the other is rewriting.

What each dataset stack's deployment uploads is two zips made here, each a single file asset whose
hash is its content's: the shared job files (the same object for every dataset) and the dataset's own
files with its job config; not folders the CDK walks, globs, copies and hashes again in every stack
(make bench, synth).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from dwlib.naming import LIBRARY_ZIP, WHEELS_DIR

ROOT = Path(__file__).resolve().parent.parent
JOBS_DIR = ROOT / "glue_jobs"
ENTRY_POINTS = ("bronze_job.py", "gold_job.py")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process at a time in folder (a pip download into a shared cache is not atomic)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _content_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _scratch(build_dir: Path) -> Path:
    build_dir.mkdir(parents=True, exist_ok=True)
    return build_dir / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"


def _settle(scratch: Path, final: Path) -> Path:
    """Rename a finished build into its content-named place, unless an identical one is there already."""
    try:
        os.rename(scratch, final)
    except OSError:  # the same content, built by another process: keep theirs
        shutil.rmtree(scratch, ignore_errors=True)
        if not final.is_dir():
            raise
    return final


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


def build_wheels(
    requirements: Sequence[str], cache: Path = WHEEL_CACHE, platform: Sequence[str] = GLUE_PLATFORM
) -> list[Path]:
    """The pinned wheels for Glue's platform, downloaded once into cache (later synths are offline).

    Binary wheels only (`--only-binary=:all:`): nothing is compiled on this machine for another one,
    and `--no-deps`: the list is complete and pinned (config.json, glue_defaults.additional_python_modules).
    """
    with _locked(cache):
        return _download_wheels(requirements, cache, platform)


def _download_wheels(requirements: Sequence[str], cache: Path, platform: Sequence[str]) -> list[Path]:
    missing = [r for r in requirements if wheel_for(r, cache) is None]
    if missing:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        command += ["--only-binary=:all:", *platform, "--no-deps", "--dest", str(cache), *missing]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"could not download the wheels {', '.join(missing)} for {' '.join(platform)} "
                f"into {cache} (pip needs the package index once; later synths use this folder):\n{done.stderr}"
            )
    found = [wheel_for(r, cache) for r in requirements]
    absent = [r for r, w in zip(requirements, found, strict=True) if w is None]
    if absent:
        raise RuntimeError(f"pip downloaded no wheel for {', '.join(absent)} into {cache}")
    return [w for w in found if w is not None]


def build_glue_assets(build_dir: Path = ROOT / ".build" / "glue", wheels: Sequence[Path] = ()) -> Path:
    """Write glue/{bronze_job.py, gold_job.py, dwlib.zip, wheels/*.whl} in a content-named folder of
    build_dir; returns that folder (the one holding glue/)."""
    scratch = _scratch(build_dir)
    target = scratch / "glue"
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
    return _settle(scratch, build_dir / f"glue-{_content_hash(scratch)}")


STORED = (".whl", ".zip")  # compressed already: deflating them again costs time and saves nothing


def _zip_bytes(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """A reproducible zip (sorted names, fixed times and modes), made in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED if name.endswith(STORED) else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _place(data: bytes, final: Path) -> None:
    """data at final, written elsewhere and renamed into place, so a reader never sees half a zip."""
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex}.zip"
    scratch.write_bytes(data)
    os.replace(scratch, final)  # the same name is the same content: replacing it changes nothing


def _zip_to(entries: Sequence[tuple[str, bytes]], final: Path) -> str:
    """A reproducible zip at final; returns its sha256."""
    data = _zip_bytes(entries)
    _place(data, final)
    return hashlib.sha256(data).hexdigest()


def _write_zip(entries: Sequence[tuple[str, bytes]], folder: Path, stem: str) -> tuple[Path, str]:
    """A reproducible zip named by its content's sha256 in folder, and that hash. Named by its content,
    it is only written when that content is not there yet: a synth without changes writes nothing, and
    the rename that placing a file costs (make bench, synth) is paid once per change of a dataset."""
    data = _zip_bytes(entries)
    digest = hashlib.sha256(data).hexdigest()
    final = folder / f"{stem}-{digest[:16]}.zip"
    if not final.is_file() or final.read_bytes() != data:  # reading a few kilobytes costs less than a rename
        _place(data, final)
    return final, digest


def _tree(folder: Path, excluded=lambda parts: False) -> list[tuple[str, bytes]]:
    """(relative name, bytes) of every file under folder, links followed, as a zip of it holds them."""
    entries: list[tuple[str, bytes]] = []
    pending = [(folder, frozenset({folder.resolve()}))]  # a folder and the real folders it was reached through
    while pending:
        current, above = pending.pop()
        for path in sorted(current.iterdir()):
            parts = path.relative_to(folder).parts
            if excluded(parts):
                continue
            if path.is_dir():
                real = path.resolve()
                if real in above:
                    raise RuntimeError(
                        f"{path} is a link back to a folder it is in, so its files would never end: replace the "
                        "link with the files the job should get"
                    )
                pending.append((path, above | {real}))
            else:
                entries.append(("/".join(parts), path.read_bytes()))
    return entries


_ZIPPED: dict[Path, tuple[Path, str]] = {}


def glue_assets_zip(glue_assets_dir: Path) -> tuple[Path, str]:
    """build_glue_assets' folder as one zip beside it (glue/...), and its sha256. The folder is named by
    its content, so its zip is made once and only hashed again by later synths."""
    if glue_assets_dir not in _ZIPPED:
        final = glue_assets_dir.with_name(f"{glue_assets_dir.name}.zip")
        if final.is_file():
            digest = hashlib.sha256(final.read_bytes()).hexdigest()
        else:
            digest = _zip_to(_tree(glue_assets_dir), final)
        _ZIPPED[glue_assets_dir] = final, digest
    return _ZIPPED[glue_assets_dir]


def excluded_dataset_file(parts: Sequence[str]) -> bool:
    """What a dataset's deployment leaves out of its folder: the CDK glob exclusion ["sample", "sample/**",
    "*.md"] as minimatch with matchBase reads it (the stack gave it to the CDK before): anything named
    `sample` at any depth, and every name ending `.md` that does not start with a dot."""
    name = parts[-1]
    return name == "sample" or (name.endswith(".md") and not name.startswith("."))


def build_dataset_files(dataset_dir: Path, config_name: str, config_text: str, build_dir: Path) -> tuple[Path, str]:
    """The dataset's folder (without its samples and notes) plus its job config, as one content-named zip
    in build_dir; and its sha256."""
    entries = [e for e in _tree(dataset_dir, excluded_dataset_file) if e[0] != config_name]
    entries.append((config_name, config_text.encode("utf-8")))
    return _write_zip(entries, build_dir, dataset_dir.name)


LAMBDAS_DIR = ROOT / "lambdas"
# What the export handler imports beyond the Lambda runtime (which has boto3), pinned with its
# dependencies, as wheels for the function's runtime: CPython 3.14 on x86_64 Linux (stacks/export.py).
HANDLER_WHEELS = ("aws-lambda-powertools==3.37.0", "jmespath==1.1.0", "typing-extensions==4.16.0")
LAMBDA_PYTHON = "3.14"
LAMBDA_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", LAMBDA_PYTHON, "--implementation", "cp")


def build_lambda_asset(name: str, build_dir: Path = ROOT / ".build" / "lambdas") -> Path:
    """A Lambda code folder: the handler, naming from the job library, and the handler's packages
    installed from wheels for the function's Python and architecture (never copied from this machine's)."""
    target = _scratch(build_dir)
    shutil.copytree(LAMBDAS_DIR / name, target, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    (target / "dwlib").mkdir()
    for module in ("__init__.py", "naming.py"):
        shutil.copyfile(JOBS_DIR / "dwlib" / module, target / "dwlib" / module)
    wheels = build_wheels(HANDLER_WHEELS, WHEEL_CACHE / f"lambda-py{LAMBDA_PYTHON}", LAMBDA_PLATFORM)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index"]
    command += ["--only-binary=:all:", *LAMBDA_PLATFORM, "--no-deps", "--no-compile", "--target", str(target)]
    done = subprocess.run([*command, *map(str, wheels)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not unpack the export function's wheels into {target}:\n{done.stderr}")
    # Scripts and install records name this machine's paths: the asset hash would vary between machines.
    shutil.rmtree(target / "bin", ignore_errors=True)
    for info in target.glob("*.dist-info"):
        for record in ("RECORD", "direct_url.json", "INSTALLER", "REQUESTED"):
            (info / record).unlink(missing_ok=True)
    return _settle(target, build_dir / f"{name}-{_content_hash(target)}")


def fetch_all_wheels(root: Path = ROOT) -> list[Path]:
    """Every wheel a synth of the project at root packs: the Glue jobs' (its config.json's pinned list, for
    Glue's platform) and the export function's (for the Lambda's). `make install` calls this, so that the
    package index is needed once, at install, and synths and tests after it run offline."""
    from dwlib.config import load_project

    glue = load_project(root).core.glue_defaults.additional_python_modules
    lambda_wheels = build_wheels(HANDLER_WHEELS, WHEEL_CACHE / f"lambda-py{LAMBDA_PYTHON}", LAMBDA_PLATFORM)
    return [*build_wheels(glue), *lambda_wheels]


if __name__ == "__main__":
    from dwlib.config import ConfigError

    try:
        fetched = fetch_all_wheels()
    except ConfigError as exc:
        print("error: the project configuration has problems; no wheels were fetched:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(1)
    except RuntimeError as exc:  # pip's own answer, naming the wheels
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"{len(fetched)} pinned wheels in {WHEEL_CACHE} (Glue 5.1 and the export function's Python)")
