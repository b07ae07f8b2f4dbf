"""One paragraph from an error a person has to read, however long the Java stack behind it.

Spark reports a bad input file as a Py4JJavaError (or a pyspark.errors exception) whose text is
the whole JVM stack: thousands of `at org.apache...` lines, the task that failed, then a chain
of `Caused by:` lines. The user needs two facts from it, which file and what is wrong with it;
the full text goes to the run ledger's `traceback` and to `--debug`, never to `error`.
"""

from __future__ import annotations

import errno
import re
import traceback
from pathlib import PurePosixPath

from dwlib.lake import LakeError
from dwlib.secrets import scrub

MAX_CAUSE = 240
# Where Spark names the file a task was reading.
READ_FILE = (
    re.compile(r"Encountered error while reading file (?P<path>\S+?)\.? Details"),
    re.compile(r"\[PATH_NOT_FOUND\] Path does not exist: (?P<path>\S+?)\.?(?:\s|$)"),
    re.compile(r"(?:reading|read|open) (?:file|path) (?P<path>(?:file:|s3a?://|s3n://|/)\S+?)[.,;:]?(?:\s|$)"),
    re.compile(r"(?P<path>(?:file:|s3a?://|s3n://)\S+?) is not a Parquet file"),
)
# Where Spark names the file or folder it was writing when the disk refused.
WRITE_FILE = (
    re.compile(r"Task failed while writing rows to (?P<path>\S+?)\.?(?:\s|$)"),
    re.compile(r"Mkdirs failed to create (?P<path>\S+?)\.?(?:\s|$)"),
    re.compile(
        r"(?:FileNotFoundException|FileSystemException|AccessDeniedException): (?P<path>(?:file:)?/\S+?)(?::|\s\()"
    ),
)
CAUSED_BY = re.compile(r"^(?:Caused by: )?(?P<cls>[a-zA-Z_$][\w$]*(?:\.[\w$]+)+(?:Exception|Error)): ?(?P<msg>.*)$")
LOST_TASK = re.compile(r"most recent failure: Lost task [^:]*\): (?P<cls>[\w.$]+(?:Exception|Error)): ?(?P<msg>.*)$")
ERROR_CLASS = re.compile(r"^\[(?P<cls>[A-Z_.]+)\] ")
OBJECT_ID = re.compile(r"@[0-9a-f]{6,}\b")

# What a bronze run can do about a timestamp before 1900 (a gold run says its model instead: gold.py).
ANCIENT_FIX = "replace such placeholders in the source or in a transform hook"

# Local storage refusing a write, in the lake folder or in Spark's scratch folder (shuffle and spill files): the
# disk is what to fix, never the inputs. `{disk}` becomes the folders to look at (describe() knows the lake).
STORAGE = (
    (re.compile(r"No space left on device|\bENOSPC\b", re.I),
     "the disk is full; free space on {disk}, then run again"),
    (re.compile(r"Disk quota exceeded|\bEDQUOT\b", re.I),
     "the disk quota is used up; free space within the quota (or have it raised) on {disk}, then run again"),
    (re.compile(r"Read-only file system|\bEROFS\b", re.I),
     "the file system is read-only; make {disk} writable (or give --lake a writable folder), then run again"),
    (re.compile(r"Mkdirs failed to create|Permission denied", re.I),
     "a folder could not be made (no permission, or a read-only or full disk); make {disk} writable, with free "
     "space, then run again"),
)  # fmt: skip
# On Glue the lake is S3, which never fills: a full disk is a worker's, holding Spark's shuffle and spill files.
GLUE_DISK = ("a Glue worker's local disk (Spark's shuffle and spill files) is full or not writable; raise the "
             "dataset's data_size_category (more workers share the data), or split the input")  # fmt: skip

# What a root cause means for the file, in words; matched against "class: message".
MEANINGS = (
    *STORAGE,
    (re.compile(r"Unexpected end of input stream|EOFException|unexpected end of (?:file|stream)", re.I),
     "the file ends early: it is truncated (an interrupted download or upload); fetch it again"),
    (re.compile(r"Not in GZIP format|incorrect header check|invalid (?:block type|distance)|ZipException", re.I),
     "the file is not valid gzip data though its name ends in .gz; check what the source serves"),
    (re.compile(r"is not a Parquet file|parquet\.format|thrift|ParquetDecodingException|can not read class .*parquet",
                re.I),
     "the file is not readable Parquet (damaged, truncated, or not Parquet at all); fetch it again or check the source"),
    (re.compile(r"MalformedInputException|Malformed records|MALFORMED_RECORD", re.I),
     "the file has malformed records (check `format` and the `csv` options)"),
    (re.compile(r"OutOfMemoryError|Java heap space|GC overhead", re.I),
     "Spark ran out of memory: raise the dataset's data_size_category, or split the input"),
    (re.compile(r"FileNotFoundException|PATH_NOT_FOUND|NoSuchKey", re.I),
     "the file disappeared while the run read it; run again"),
    (re.compile(r"WRITE_ANCIENT_DATETIME", re.I),
     "a timestamp before 1900-01-01 cannot be written to a Parquet table (its INT96 timestamps); "
     f"{ANCIENT_FIX}, or use \"table_format\": \"iceberg\""),
)  # fmt: skip


class NotUtf8(ValueError):
    """A text file (a hook, a model, .secrets.json) saved in another encoding: where, and the fix; the caller adds
    the file's name."""


def utf8_text(data: bytes, *, quote_byte: bool = True) -> str:
    """The file's text: UTF-8, a leading byte order mark dropped; else NotUtf8 saying where its first byte that is
    not UTF-8 is (`quote_byte=False` for a file of secrets: its position only, never its value)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line, column = before.count(b"\n") + 1, exc.start - (before.rfind(b"\n") + 1) + 1
        byte = f"byte 0x{data[exc.start]:02x} at " if quote_byte else ""
        raise NotUtf8(
            f"is not UTF-8 text ({byte}line {line}, column {column}, likely Latin-1 or Windows-1252); "
            "save the file as UTF-8"
        ) from None


def is_spark_error(exc: BaseException) -> bool:
    name = type(exc).__module__ + "." + type(exc).__name__
    return name.startswith(("py4j.", "pyspark.")) or "\tat org.apache." in str(exc)


def malformed_record(exc: BaseException) -> bool:
    """Whether a Spark job failed because a reader in FAILFAST mode met a record it could not parse (a
    BadRecordException in the Java cause chain), as opposed to any other failure."""
    throwable = getattr(exc, "java_exception", None)
    while throwable is not None:
        if throwable.getClass().getName() == "org.apache.spark.sql.catalyst.util.BadRecordException":
            return True
        throwable = throwable.getCause()
    return False


def full_trace(exc: BaseException) -> str:
    """Everything, for the ledger's `traceback` and --debug: the Python frames and the Java text, scrubbed."""
    return scrub("".join(traceback.format_exception(exc))) or ""


def _text(exc: BaseException) -> str:
    """The whole text of the error, every secret value already scrubbed: whatever is cut from it later cannot
    leave part of a secret behind."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            return scrub(str(java.toString()) + "\n" + str(exc)) or ""
        except Exception:  # the JVM may be gone
            pass
    return scrub(str(exc)) or ""


def _relative(path: str, lake_root: str | None) -> str:
    path = path.rstrip(".,;:")
    bare = re.sub(r"^file:/*", "/", path)
    if lake_root:
        root = re.sub(r"^file:/*", "/", lake_root.rstrip("/"))
        for candidate in (path, bare):
            if candidate.startswith(root + "/"):
                return candidate[len(root) + 1 :]
    return bare if path.startswith("file:") else path


def _absolute(key: str, lake_root: str | None) -> str:
    """The local path of a lake key `_relative` made (unchanged if it is one already)."""
    if key.startswith(("/", "s3")) or not lake_root:
        return key
    return re.sub(r"^file:/*", "/", lake_root.rstrip("/")) + "/" + key


def _root_cause(text: str) -> tuple[str, str]:
    """(exception class, message) of the deepest cause Spark reported."""
    best: tuple[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("at ") or not line:
            continue
        if m := LOST_TASK.search(line):
            best = best or (m["cls"], m["msg"])
        if line.startswith("Caused by: ") and (m := CAUSED_BY.match(line)):
            best = (m["cls"], m["msg"])  # later lines are deeper causes
    if best is None:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("at ")), "")
        m = CAUSED_BY.match(first)
        best = (m["cls"], m["msg"]) if m else ("", first)
    cls, msg = best
    msg = OBJECT_ID.sub("", msg).replace("Struct: org.apache.parquet.format.PageHeader$PageHeaderStandardScheme", "")
    msg = msg.strip(" .:") or "(no message)"
    return cls.rsplit(".", 1)[-1], msg[:MAX_CAUSE] + ("…" if len(msg) > MAX_CAUSE else "")


def _file(text: str, lake_root: str | None, patterns: tuple[re.Pattern, ...] = READ_FILE) -> str | None:
    for pattern in patterns:
        if m := pattern.search(text):
            return _relative(m["path"].split("/_temporary/")[0], lake_root)  # the folder asked for, not Spark's own
    return None


def _refusal(exc: OSError, file: str | None, lake_root: str | None) -> str | None:
    """The STORAGE words for a Python write the disk refused, by errno; a PermissionError only on a path in the lake
    (elsewhere it may be a read: a secrets file, a sample)."""
    words = {errno.ENOSPC: STORAGE[0][1], errno.EDQUOT: STORAGE[1][1], errno.EROFS: STORAGE[2][1]}.get(exc.errno or 0)
    root = re.sub(r"^file:/*", "/", lake_root.rstrip("/")) if lake_root else None
    if exc.errno in (errno.EACCES, errno.EPERM) and file and root and file.startswith(root + "/"):
        words = f"this user may not write there; make the lake folder {root} writable (or give --lake a folder you can write)"
    return words


def _disk(words: str, lake_root: str | None, *, spark: bool, file: str | None = None) -> str:
    """`words` with `{disk}` naming the folders to free or make writable: the file's, else the lake's and (for Spark
    with no file named: shuffle and spill files) Spark's scratch folder."""
    if lake_root and lake_root.startswith("s3://"):
        return GLUE_DISK if spark else words.replace("{disk}", "this machine's temporary folder (TMPDIR)")
    root = re.sub(r"^file:/*", "/", lake_root.rstrip("/")) if lake_root else None
    if file and not (root and file.startswith(root + "/")):
        disk = f"the disk holding {PurePosixPath(file).parent}"
    elif root:
        disk = f"the disk holding the lake folder {root}"
    else:
        disk = "the disk holding the lake folder"
    if spark and not file:
        disk += " and Spark's scratch folder (spark.local.dir, /tmp by default)"
    elif not file:
        disk += " and the temporary folder (TMPDIR)"
    return words.replace("{disk}", disk)


def describe(
    exc: BaseException, *, lake_root: str | None = None, inputs: list[str] | None = None, ledger_key: str | None = None
) -> str:
    """One paragraph for `error`: the file, the cause in words, the root exception, where the trace is.

    `inputs`: the files the failing step read, named when Spark's text does not say which one.
    """
    if not is_spark_error(exc):
        message = " ".join(_text(exc).split())
        if isinstance(exc, LakeError):  # worded as advice already, naming the lake's path
            return message
        file = scrub(str(exc.filename)) if isinstance(exc, OSError) and exc.filename else None
        if isinstance(exc, OSError) and (words := _refusal(exc, file, lake_root)):
            # A full or read-only disk under a plain Python write: the folder to fix, not a bare errno.
            advice = _disk(words, lake_root, spark=False, file=file)
            what = f"{type(exc).__name__}: {exc.strerror or message}"
            return (
                f"Could not write {file}: {advice} ({what})" if file else f"Could not write to disk: {advice} ({what})"
            )
        if len(message) > 400:
            message = message[:400] + "…"
        return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    text = _text(exc)
    cls, msg = _root_cause(text)
    error_class = ERROR_CLASS.match(msg)
    cause = f"{cls}: {msg}" if cls else msg
    chain = " ".join(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("at ", "...")))
    meaning = next((words for pattern, words in MEANINGS if pattern.search(f"{cls}: {msg} {chain}")), None)
    if meaning is not None and "{disk}" in meaning:  # the disk refused a write: the inputs are not to blame
        written = _file(text, lake_root, WRITE_FILE)
        subject = f"Spark could not write {written}" if written else "Spark could not write to disk"
        cause = re.sub(r"/_temporary/\S+", "/_temporary/…", cause)  # Spark's attempt folder: a long, useless name
        advice = _disk(meaning, lake_root, spark=True, file=written and _absolute(written, lake_root))
        return _paragraph([f"{subject}: {advice}", f"({cause})"], ledger_key)
    where = _file(text, lake_root)
    if where is None and meaning is None and type(exc).__module__.startswith("pyspark."):
        # A query error (an unknown column, a type mismatch): Spark's own first lines say it well.
        lines = [ln for ln in (scrub(str(exc)) or "").strip().splitlines() if ln.strip()][:1]
        first = " ".join(lines)[:500]
        return f"{type(exc).__name__}: {first}"
    if where:
        subject = f"Spark could not read {where}"
    elif inputs:
        shown = ", ".join(inputs[:3]) + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "")
        subject = f"Spark failed reading {'one of ' if len(inputs) > 1 else ''}{shown}"
    else:
        subject = "Spark failed"
    parts = [f"{subject}: {meaning}" if meaning else subject, f"({cause})"]
    if error_class and not meaning:
        parts[-1] = f"({msg})"
    return _paragraph(parts, ledger_key)


def _paragraph(parts: list[str], ledger_key: str | None) -> str:
    where_trace = f"the `traceback` field of {ledger_key} and " if ledger_key else ""
    return scrub(f"{' '.join(parts)}. The full Java trace is in {where_trace}`dw --debug` output.") or ""
