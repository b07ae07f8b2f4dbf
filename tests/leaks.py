"""The texts that give a secret away, and `dw` run as a user runs it, for tests that look for a secret in everything a
run leaves behind: what it printed, its log records at DEBUG, and every lake file."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

ROOT = Path(__file__).resolve().parents[1]
DATASET = "leaky-api"
SECRET_NAME = "pp-dw/leaky"
ENV = "DW_SECRET_PP_DW_LEAKY"
# `dw` as its console script runs it, with the root logger at DEBUG writing every record to stderr.
LOGGED_DW = (
    "import logging, sys; "
    "logging.basicConfig(level=logging.DEBUG, format='LOG %(name)s %(levelname)s %(message)s'); "
    "sys.argv = ['dw', *sys.argv[1:]]; "
    "from dw.cli import main; main()"
)


def forms(secret: str) -> set[str]:
    """Every text that gives the secret away: as written, URL-encoded, base64-encoded (alone and as Basic
    auth's user:password), and escaped as JSON or Python write it inside a string."""
    found = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    found |= {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1]}
    for prefix in ("", "u:", "user:"):
        found.add(base64.b64encode((prefix + secret).encode()).decode().rstrip("="))
    return found


def project(tmp_path: Path, config: dict) -> Path:
    """A throwaway project holding one dataset, DATASET, configured as `config` says."""
    root = tmp_path / "project"
    (root / "datasets" / DATASET).mkdir(parents=True)
    shutil.copyfile(ROOT / "config.json", root / "config.json")
    base = {"dataset": DATASET, "description": "a source whose server echoes things", "data_size_category": "small"}
    (root / "datasets" / DATASET / "config.json").write_text(json.dumps({**base, **config}))
    return root


def api_config(url: str, auth: dict[str, str], paging: str = "none") -> dict:
    """A dataset config of one API endpoint at `url` whose records are under `items`, authenticated with the secret
    SECRET_NAME as `auth` says (`{"header": "X-Api-Key"}`, `{"query_param": "k"}`)."""
    endpoint = {"url": url, "paging": {"kind": paging}, "records": "items", "auth": {"secret": SECRET_NAME, **auth}}
    return {"api_endpoints": [endpoint]}


def dw(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DW_")}
    environ.update(TERM="dumb", COLUMNS="240", PYTHONDONTWRITEBYTECODE="1", **env)
    return subprocess.run(
        [sys.executable, "-c", LOGGED_DW, *args], cwd=root, env=environ, capture_output=True, text=True, timeout=120
    )


def outputs(lake: Path, *runs: subprocess.CompletedProcess) -> dict[str, str]:
    """What a user or an operator can read: stdout, stderr (log records included), every lake file as stored
    and, for JSON files (the ledger entry, the ops row, the manifest), every string in it as decoded."""
    seen = {}
    for index, run in enumerate(runs):
        seen[f"stdout of run {index}"], seen[f"stderr and logs of run {index}"] = run.stdout, run.stderr
    for path in sorted(p for p in lake.rglob("*") if p.is_file()) if lake.exists() else []:
        text = path.read_bytes().decode("utf-8", "replace")
        seen[str(path.relative_to(lake))] = text
        if path.suffix == ".json":
            seen[f"{path.relative_to(lake)} (decoded)"] = json.dumps(json.loads(text), ensure_ascii=False)
    return seen


def assert_nowhere(secret: str, seen: dict[str, str], *parts: str) -> None:
    for form in sorted(forms(secret) | set(parts)):
        for where, text in seen.items():
            assert form not in text, f"{form!r} leaked into {where}"
