"""What a dataset stack's file deployment writes to etl/{dataset}/: the job files, the dataset's folder
without sample/ and *.md, and its job config. They reach the BucketDeployment as two zips made at synth
(stacks/assets.py), each a file asset hashed by its content, instead of two folders and a JSON document
the CDK staged again in every stack; these tests pin that the deployed objects did not change with it."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from dwlib.jobs import job_config_document
from dwlib.naming import Naming
from stacks import assets

ROOT = Path(__file__).resolve().parents[2]
# What the stack gave the CDK to leave out of a dataset's folder before the zips were made in Python.
CDK_EXCLUDE = ["sample", "sample/**", "*.md"]


def deployed_files(outdir: Path, template: Template) -> dict[str, bytes]:
    """Every object the stack's deployment extracts into its prefix, read from the staged assets."""
    (deployment,) = template.find_resources("Custom::CDKBucketDeployment").values()
    files: dict[str, bytes] = {}
    for key in deployment["Properties"]["SourceObjectKeys"]:
        with zipfile.ZipFile(outdir / f"asset.{key}") as archive:
            files.update({name: archive.read(name) for name in archive.namelist() if not name.endswith("/")})
    return files


def hostile_dataset(folder: Path) -> Path:
    """Names the exclusion must get right: samples and notes at every depth, dotfiles, non-ASCII names,
    a file named `sample`, and a stale job_config.json the deployment must replace."""
    for name, text in {
        "config.json": '{"dataset": "x"}',
        "README.md": "notes",
        "transform.py": "def transform(df):\n    return df\n",
        "job_config.json": '{"stale": true}',
        ".hidden.md": "a dotfile the glob's * does not match",
        ".env": "X=1",
        "sample/rows.csv": "a\n1\n",
        "sample/deeper/more.csv": "a\n2\n",
        "data/cities.csv": "id,city\n1,Oslo\n",
        "data/sample": "a file named sample",
        "data/sample.csv": "kept: only the name `sample` is excluded",
        "data/nested/sample/x.csv": "a folder named sample, deeper",
        "data/notes.md": "notes",
        "data/notes.md.txt": "kept",
        "gold/t.sql": "SELECT 1",
        "queries/q.sql": "SELECT 2",
        "ünïcode/ß.txt": "kept",
    }.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def cdk_copy(source: Path, target: Path) -> set[str]:
    """The files the CDK's own copy (the staging of a folder asset) keeps with the old exclusion."""
    from aws_cdk import CopyOptions, FileSystem

    FileSystem.copy_directory(str(source), str(target), CopyOptions(exclude=CDK_EXCLUDE))
    return {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}


def test_a_datasets_zip_keeps_exactly_the_files_the_cdk_kept(tmp_path):
    folder = hostile_dataset(tmp_path / "datasets" / "x")
    path, digest = assets.build_dataset_files(folder, "job_config.json", '{"fresh":true}', tmp_path / "build")
    with zipfile.ZipFile(path) as archive:
        zipped = {name: archive.read(name) for name in archive.namelist()}
    assert set(zipped) == cdk_copy(folder, tmp_path / "cdk-copy")
    assert "data/cities.csv" in zipped and "ünïcode/ß.txt" in zipped and "sample/rows.csv" not in zipped
    # The config written last wins, as the JSON source did when the handler extracted the sources in order.
    assert json.loads(zipped["job_config.json"]) == {"fresh": True}
    assert zipped["data/cities.csv"] == (folder / "data" / "cities.csv").read_bytes()


def test_a_datasets_zip_is_named_and_hashed_by_its_content(tmp_path):
    folder = hostile_dataset(tmp_path / "x")
    build = tmp_path / "build"
    first = assets.build_dataset_files(folder, "job_config.json", "{}", build)
    again = assets.build_dataset_files(folder, "job_config.json", "{}", build)
    assert first == again  # same content, same asset: a synth without changes deploys nothing new
    assert first[1] == hashlib.sha256(first[0].read_bytes()).hexdigest()
    (folder / "gold" / "t.sql").write_text("SELECT 3")
    changed = assets.build_dataset_files(folder, "job_config.json", "{}", build)
    other_config = assets.build_dataset_files(folder, "job_config.json", '{"a":1}', build)
    assert len({first[1], changed[1], other_config[1]}) == 3  # an edit or a config change redeploys


def test_the_shared_zip_holds_the_job_files_folder(tmp_path):
    built = assets.build_glue_assets(tmp_path / "glue")
    path, digest = assets.glue_assets_zip(built)
    with zipfile.ZipFile(path) as archive:
        zipped = {name: archive.read(name) for name in archive.namelist()}
    on_disk = {p.relative_to(built).as_posix(): p.read_bytes() for p in built.rglob("*") if p.is_file()}
    assert zipped == on_disk
    assert {"glue/bronze_job.py", "glue/gold_job.py", "glue/dwlib.zip"} <= set(zipped)


@pytest.mark.parametrize("name", ["ourairports", "fda-nsde", "epa-daily-aqi"])
def test_the_stack_deploys_the_job_files_its_folder_and_its_job_config(synthesized, project, name):
    app, _, outdir = synthesized
    naming = Naming.of(project.core)
    template = Template.from_stack(app.node.find_child(naming.dataset_stack(name)))
    files = deployed_files(outdir, template)
    dataset_dir = project.dataset_dir(name)
    expected = {
        p.relative_to(dataset_dir).as_posix()
        for p in dataset_dir.rglob("*")
        if p.is_file() and "sample" not in p.relative_to(dataset_dir).parts and p.suffix != ".md"
    }
    job_files = {k for k in files if k.startswith("glue/")}
    assert {"glue/bronze_job.py", "glue/gold_job.py", "glue/dwlib.zip"} <= job_files
    assert any(k.startswith("glue/wheels/") and k.endswith(".whl") for k in job_files)
    assert set(files) - job_files == expected | {"job_config.json"}
    assert not any(k.startswith("sample/") or k.endswith(".md") for k in files)
    assert files["glue/bronze_job.py"] == (ROOT / "glue_jobs" / "bronze_job.py").read_bytes()
    assert files["config.json"] == (dataset_dir / "config.json").read_bytes()
    assert json.loads(files["job_config.json"]) == job_config_document(project.core, project.datasets[name])


def test_a_link_back_into_the_folder_fails_clearly_instead_of_looping(tmp_path):
    folder = hostile_dataset(tmp_path / "x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "kept.csv").write_text("a\n1\n")
    (folder / "data" / "linked").symlink_to(outside)  # a link out of the folder is followed, as the CDK did
    path, _ = assets.build_dataset_files(folder, "job_config.json", "{}", tmp_path / "build")
    with zipfile.ZipFile(path) as archive:
        assert archive.read("data/linked/kept.csv") == b"a\n1\n"
    (outside / "back").symlink_to(folder)  # ... and one that leads back into it would never end
    with pytest.raises(RuntimeError, match=r"link back to a folder it is in"):
        assets.build_dataset_files(folder, "job_config.json", "{}", tmp_path / "build")
