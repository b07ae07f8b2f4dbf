"""A dataset's optional transform hook: `datasets/{dataset}/transform.py` defining `transform(df) -> df`.

The bronze job applies it after cleaning and typing and before the primary key and quality
checks. Locally it is read from the dataset folder; on Glue from `etl/{dataset}/transform.py`,
where the stack deploys it. The source is compiled with its file name, so tracebacks (and our
errors) name the file and the line.
"""

from __future__ import annotations

import ast
import importlib.util
import linecache
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dwlib.errors import NotUtf8, utf8_text

__all__ = ["HookError", "TransformHook", "check_hook_source", "load_hook"]

FUNCTION = "transform"
ADVICE = "fix the hook, or remove the file to publish the cleaned data unchanged"


class HookError(Exception):
    """The hook could not be loaded or failed: names the dataset, the file and, where known, the line."""

    def __init__(self, message: str, *, trace: str | None = None):
        super().__init__(message)
        self.trace = trace  # the hook's frames, for the run ledger


@dataclass(frozen=True)
class TransformHook:
    dataset: str
    file: str  # the name the source was compiled with: a path locally, an s3:// URI on Glue
    function: Callable[[Any], Any]

    def apply(self, df):
        """`transform(df)`; HookError names the file and the line of the hook that raised."""
        from pyspark.sql import DataFrame

        try:
            result = self.function(df)
        except Exception as exc:
            raise _failure(self.dataset, self.file, "failed", exc) from None
        if not isinstance(result, DataFrame):
            raise HookError(
                f"{self.dataset}: transform hook {self.file}: transform(df) returned {type(result).__name__}, "
                f"not a DataFrame; return the DataFrame (for example `return df.filter(...)`); {ADVICE}"
            )
        return result

    def running_failure(self, exc: BaseException) -> HookError | None:
        """The hook's error as Spark ran its plan (a Python UDF that raised, `raise_error`), naming the file and the
        line where Spark's text shows them; None when nothing in it points at the hook (a file Spark could not read)."""
        text = str(exc)
        python = [ln for ln in text.splitlines() if re.match(r"^\w+(Error|Exception): ", ln)]
        lines = re.findall(rf'File "{re.escape(self.file)}", line (\d+)', text)
        if not (lines or (type(exc).__name__ == "PythonException" and python)):
            return None
        where = f"{self.file} line {lines[-1]}" if lines else self.file
        cause = python[-1] if python else text.strip().splitlines()[0]
        return HookError(f"{self.dataset}: transform hook {where} failed as Spark ran it: {cause}; {ADVICE}")


def _hook_line(exc: BaseException, file: str) -> int | None:
    """The line of the deepest traceback frame inside the hook's file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == file:
            line = frame.lineno
    return line


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _failure(dataset: str, file: str, what: str, exc: BaseException) -> HookError:
    line = _hook_line(exc, file)
    where = f"{file} line {line}" if line is not None else file
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == file]
    trace = "".join(traceback.format_list(frames)) + _first_line(exc) if frames else None
    return HookError(f"{dataset}: transform hook {where} {what}: {_first_line(exc)}; {ADVICE}", trace=trace)


def _text(source: str | bytes) -> str:
    """The hook's text: its bytes as UTF-8 (NotUtf8 if they are not), without a byte order mark."""
    return utf8_text(source) if isinstance(source, bytes) else source.removeprefix("\ufeff")


def load_hook(dataset: str, source: str | bytes, file: str) -> TransformHook:
    """Compile and run the hook's module from its text or its file's bytes (as importlib would), and find `transform`."""
    try:
        source = _text(source)
    except NotUtf8 as exc:
        raise HookError(f"{dataset}: transform hook {file} {exc}") from None
    try:
        code = compile(source, file, "exec")
    except SyntaxError as exc:
        raise HookError(f"{dataset}: transform hook {file} line {exc.lineno}: {exc.msg}; {ADVICE}") from None
    # Tracebacks through the hook show its lines, wherever its text came from (S3 included).
    linecache.cache[file] = (len(source), None, source.splitlines(keepends=True), file)
    name = f"dw_transform_{dataset.replace('-', '_')}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=file)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = file
    try:
        exec(code, module.__dict__)  # noqa: S102 - the dataset's own code, shipped with its config
    except Exception as exc:
        raise _failure(dataset, file, "failed while loading", exc) from None
    function = getattr(module, FUNCTION, None)
    if not callable(function):
        raise HookError(
            f"{dataset}: transform hook {file} defines no function transform(df); add "
            f"`def transform(df: DataFrame) -> DataFrame:` or remove the file"
        )
    return TransformHook(dataset, file, function)


def check_hook_source(source: str | bytes, label: str) -> list[tuple[str, str]]:
    """`dw validate`: (where, problem) of a hook's text or bytes, found without running it; empty when fine."""
    try:
        source = _text(source)
    except NotUtf8 as exc:
        return [("", str(exc))]
    try:
        tree = ast.parse(source, filename=label)
    except SyntaxError as exc:
        return [(f"line {exc.lineno}", f"{exc.msg}; fix the syntax")]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == FUNCTION:
            if node.args.posonlyargs or node.args.args or node.args.vararg is not None:
                return []
            return [(f"line {node.lineno}", "transform() takes no argument; write def transform(df: DataFrame)")]
    return [("", "defines no top-level function transform(df); add def transform(df: DataFrame) or remove the file")]
