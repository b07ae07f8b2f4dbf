"""Files a user edits by hand, saved in another encoding or with a byte order mark: an error names the file and the fix.

A transform hook, `.secrets.json` and a saved query are text the project reads as UTF-8. One saved as Latin-1 or
Windows-1252 (an editor's default on some systems) is named, with where its first foreign byte is and "save the file
as UTF-8", never met as a bare UnicodeDecodeError; one with a UTF-8 byte order mark (Notepad's) is read.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dw.project import validate
from dwlib import bronze, errors
from dwlib.hook import HookError
from dwlib.lake import LakeError, LocalLake
from dwlib.naming import Naming
from dwlib.secrets import LocalSecrets, SecretError

HOOK = "# Café names: keep them\ndef transform(df):\n    return df\n"
LATIN1_HOOK = HOOK.encode("latin-1")  # é is byte 0xe9 at line 1, column 6
BOM = b"\xef\xbb\xbf"
NAMING = Naming("pp-dw", "pp_dw")

_script = Path(sys.executable).with_name("dw")
DW = [str(_script)] if _script.is_file() else [sys.executable, "-m", "dw.cli"]


def local_context(folder: Path) -> SimpleNamespace:
    """What transform_hook reads of a run's context, for a run from the checkout."""
    return SimpleNamespace(name="shop-orders", dataset_dir=folder, naming=NAMING, lake=None)


def glue_context(lake: LocalLake) -> SimpleNamespace:
    """The same on Glue: the hook is read from the lake, where the stack deployed it."""
    return SimpleNamespace(name="shop-orders", dataset_dir=None, naming=NAMING, lake=lake)


# ------------------------------------------------------------------ the transform hook


def test_a_hook_that_is_not_utf8_names_the_file_and_the_fix_locally_and_on_glue(tmp_path):
    (tmp_path / "transform.py").write_bytes(LATIN1_HOOK)
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes(NAMING.transform_hook_key("shop-orders"), LATIN1_HOOK)

    for ctx, file in ((local_context(tmp_path), tmp_path / "transform.py"),
                      (glue_context(lake), lake.uri(NAMING.transform_hook_key("shop-orders")))):  # fmt: skip
        with pytest.raises(HookError) as caught:
            bronze.transform_hook(ctx)
        assert str(caught.value) == (
            f"shop-orders: transform hook {file} is not UTF-8 text (byte 0xe9 at line 1, column 6, likely Latin-1 "
            "or Windows-1252); save the file as UTF-8"
        )


def test_a_hook_with_a_byte_order_mark_loads_locally_and_on_glue(tmp_path):
    (tmp_path / "transform.py").write_bytes(BOM + HOOK.encode())
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes(NAMING.transform_hook_key("shop-orders"), BOM + HOOK.encode())
    for ctx in (local_context(tmp_path), glue_context(lake)):
        hook = bronze.transform_hook(ctx)
        assert hook is not None and hook.function("df") == "df"


def test_validate_lists_a_hook_or_a_query_that_is_not_utf8_as_a_problem_naming_it(project_copy):
    folder = project_copy / "datasets" / "epa-daily-aqi"
    (folder / "transform.py").write_bytes(LATIN1_HOOK)
    (project_copy / "datasets" / "fda-nsde" / "queries" / "demo.sql").write_bytes(b"-- Caf\xe9\nSELECT 1\n")
    _, problems = validate(project_copy)
    shown = [str(p) for p in problems]
    assert (
        "datasets/epa-daily-aqi/transform.py: is not UTF-8 text (byte 0xe9 at line 1, column 6, likely Latin-1 or "
        "Windows-1252); save the file as UTF-8"
    ) in shown
    assert (
        "datasets/fda-nsde/queries/demo.sql: is not UTF-8 text (byte 0xe9 at line 1, column 7, likely Latin-1 or "
        "Windows-1252); save the file as UTF-8"
    ) in shown


def test_validate_accepts_a_hook_with_a_byte_order_mark(project_copy):
    hook = project_copy / "datasets" / "epa-daily-aqi" / "transform.py"
    hook.write_bytes(BOM + hook.read_bytes())
    _, problems = validate(project_copy)
    assert not problems, problems


@pytest.mark.slow
def test_dw_validate_reports_a_hook_that_is_not_utf8_in_one_line_and_exits_1(project_copy):
    (project_copy / "datasets" / "epa-daily-aqi" / "transform.py").write_bytes(LATIN1_HOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DW_")}
    env.update(TERM="dumb", COLUMNS="240", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([*DW, "validate"], cwd=project_copy, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "UnicodeDecodeError" not in done.stderr
    assert "datasets/epa-daily-aqi/transform.py: is not UTF-8 text" in done.stderr
    assert "1 problem(s) found" in done.stderr


# ------------------------------------------------------------------ .secrets.json


def test_a_secrets_file_that_is_not_utf8_is_named_without_any_of_its_bytes(tmp_path):
    (tmp_path / ".secrets.json").write_bytes('{"pp-dw/key": "pässwörd"}'.encode("latin-1"))
    with pytest.raises(SecretError) as caught:
        LocalSecrets(tmp_path, environ={}).resolve("pp-dw/key")
    message = str(caught.value)
    assert message == (
        f"{tmp_path / '.secrets.json'} is not UTF-8 text (line 1, column 17, likely Latin-1 or Windows-1252); "
        "save the file as UTF-8"
    )
    assert "0xe4" not in message and "p\\xe4" not in message


def test_a_secrets_file_with_a_byte_order_mark_is_read(tmp_path):
    (tmp_path / ".secrets.json").write_bytes(BOM + '{"pp-dw/key": "pässwörd"}'.encode())
    assert LocalSecrets(tmp_path, environ={}).resolve("pp-dw/key") == "pässwörd"


# ------------------------------------------------------------------ a lake folder that refuses writes


def refusing(monkeypatch, root: Path, code: int, *, folders: bool = True) -> None:
    """The disk under `root` refuses writes as a read-only, full or forbidden one does: opening a file to write,
    making a folder, renaming or linking into it raise OSError(code) naming the path, as the kernel reports it.
    (Tests may run as root, whom chmod does not bind, so the refusal is made here rather than by permissions.)"""
    real_open, real_mkdir, real_replace, real_link = builtins.open, os.mkdir, os.replace, os.link

    def inside(path) -> bool:
        return str(os.fspath(path)).startswith(str(root))

    def refuse(path, other=None):
        raise OSError(code, os.strerror(code), str(os.fspath(path)), None, other and str(os.fspath(other)))

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, str | Path) and inside(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if folders and inside(path) and not os.path.isdir(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_move(real):
        def move(src, dst, *args, **kwargs):
            if inside(dst):
                refuse(src, dst)
            return real(src, dst, *args, **kwargs)

        return move

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_move(real_replace))
    monkeypatch.setattr(os, "link", fake_move(real_link))


WRITES = {
    "ledger entry": lambda lake: lake.write_json("runs/shop-orders/run_id=20261121T060000Z.json", {"status": "x"}),
    "raw file": lambda lake: lake.put_file(Path(__file__), "runs/shop-orders/run_id=20261121T060000Z.json"),
    "run lock": lambda lake: lake.create_exclusive("runs/shop-orders/run_id=20261121T060000Z.json", b"{}"),
}
REFUSALS = {
    "read-only": (errno.EROFS, "is on a read-only file system: give --lake a folder on a writable disk"),
    "full": (errno.ENOSPC, "is full: free space on it, then run again"),
    "quota": (errno.EDQUOT, "is used up: free space within it (or have it raised), then run again"),
    "forbidden": (errno.EACCES, "this user may not write there: make {root} writable (chmod -R u+w {root})"),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_lake_that_refuses_a_write_is_a_lake_error_naming_the_key_s_path_and_the_fix(
    tmp_path, monkeypatch, write, refusal
):
    code, fix = REFUSALS[refusal]
    lake = LocalLake(tmp_path / "lake")
    (lake.root / "runs" / "shop-orders").mkdir(parents=True)  # the folders exist; the files cannot be written
    refusing(monkeypatch, lake.root, code)
    with pytest.raises(LakeError) as caught:
        WRITES[write](lake)
    message = str(caught.value)
    path = lake.root / "runs/shop-orders/run_id=20261121T060000Z.json"
    assert message.startswith(f"could not write {path} in the lake ({os.strerror(code)}); "), message
    assert fix.format(root=lake.root) in message and ".tmp" not in message
    assert errors.describe(caught.value) == message  # as `dw` prints it: no class name, no traceback
    monkeypatch.undo()
    assert [p.name for p in (lake.root / "runs" / "shop-orders").iterdir()] == []  # no hidden partial file left


def test_a_lake_folder_that_cannot_be_made_names_the_key_not_a_parent(tmp_path, monkeypatch):
    lake = LocalLake(tmp_path / "lake")
    refusing(monkeypatch, lake.root, errno.EROFS)
    with pytest.raises(LakeError, match=r"could not write \S+/lake/runs/shop-orders/_lock\.json in the lake"):
        lake.create_exclusive("runs/shop-orders/_lock.json", b"{}")


def test_a_publish_the_disk_refuses_leaves_the_table_and_names_it_not_the_parked_folder(tmp_path, monkeypatch):
    """Not a LakeError, which would say the table may hold two runs' files: it holds the previous ones, whole."""
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes("bronze/t/part-0.parquet", b"old")
    lake.write_bytes("staging/t/part-1.parquet", b"new")
    refusing(monkeypatch, lake.root, errno.EROFS, folders=False)
    with pytest.raises(OSError) as caught:
        lake.replace_prefix("staging/t", "bronze/t")
    assert not isinstance(caught.value, LakeError)
    assert caught.value.filename == str(lake.path("bronze/t"))
    text = errors.describe(caught.value, lake_root=lake.root_uri)
    assert (
        text.startswith(f"Could not write {lake.path('bronze/t')}: the file system is read-only; ")
        and "replaced" not in text
    )
    monkeypatch.undo()
    assert lake.read_bytes("bronze/t/part-0.parquet") == b"old"


@pytest.mark.skipif(os.geteuid() == 0, reason="chmod does not stop root from writing")
def test_a_lake_folder_without_write_permission_is_named_with_the_fix(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    lake.root.mkdir()
    lake.root.chmod(0o555)
    try:
        with pytest.raises(LakeError) as caught:
            lake.write_json("runs/shop-orders/run_id=20261121T060000Z.json", {})
    finally:
        lake.root.chmod(0o755)
    assert f"could not write {lake.root}/runs/shop-orders/run_id=20261121T060000Z.json in the lake" in str(caught.value)
    assert "make" in str(caught.value) and "writable" in str(caught.value)


# ------------------------------------------------------------------ a ledger entry edited by hand, for `dw list`'s cost


def test_the_cost_estimate_skips_an_unreadable_ledger_entry_with_a_note_and_keeps_the_others(core, tmp_path):
    """As `dw runs` does: the entry is named there; the estimate uses the runs it can read."""
    from dw import cost
    from dwlib.config import DatasetConfig

    lake = LocalLake(tmp_path)
    for day, seconds in ((10, 600), (11, 900), (12, 1200)):
        lake.write_json(NAMING.run_summary_key("dd", f"202611{day}T060000Z", "bronze"), {
            "dataset": "dd", "layer": "bronze", "run_id": f"202611{day}T060000Z", "status": "succeeded",
            "started_at": "2026-11-21T06:00:00+00:00", "finished_at": f"2026-11-21T06:{seconds // 60:02d}:00+00:00",
        })  # fmt: skip
    broken = {
        20: b"[1, 2]",  # JSON, but not an object
        21: b'{"run_id": "20261121T060000Z", "layer": "bronze", "status": "succeeded", "started_at": 5}',
        22: b'{"run_id": "20261122T060000Z", "layer": "bro',  # truncated
        23: b'{"status": "succeeded", "note": "caf\xe9"}',  # not UTF-8
    }
    for day, data in broken.items():
        lake.write_bytes(NAMING.run_summary_key("dd", f"202611{day}T060000Z", "bronze"), data)
    config = DatasetConfig(dataset="dd", description="x", data_size_category="small", source_url="https://x.org/d.csv")

    estimate = cost.estimate(core, config, ["bronze"], tmp_path)

    assert estimate.per_run == pytest.approx(2 * (900 / 3600) * 0.44)  # the median of the three readable runs
    assert "(median of 3 local run(s); 4 unreadable ledger entries skipped: dw runs dd)" in estimate.text()
