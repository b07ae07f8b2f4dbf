"""Files a user edits by hand, saved in another encoding or with a byte order mark: an error names the file and the fix.

A transform hook, `.secrets.json` and a saved query are text the project reads as UTF-8. One saved as Latin-1 or
Windows-1252 (an editor's default on some systems) is named, with where its first foreign byte is and "save the file
as UTF-8", never met as a bare UnicodeDecodeError; one with a UTF-8 byte order mark (Notepad's) is read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dw.project import validate
from dwlib import bronze
from dwlib.hook import HookError
from dwlib.lake import LocalLake
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
