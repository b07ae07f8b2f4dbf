"""Secrets by name, resolved at run time: Secrets Manager on Glue, the environment or a file locally.

A dataset's config names a secret (`api_endpoints[].auth.secret`, `source_auth.secret`), never
its value. The Glue entry point resolves names with `SecretsManagerSecrets`; `dw run` with `LocalSecrets`, which
reads `DW_SECRET_<NAME>` from the environment, then `.secrets.json` at the project root
(git-ignored): `{"pp-dw/fda-api-key": "value"}`.

Values are trimmed of surrounding whitespace (a secret created from a file usually ends in a
newline, which no server accepts in a header). Every value read is registered for this process:
`scrub(text)` cuts each registered value out of a text in its raw, URL-encoded and base64 forms,
so whatever error, log line or traceback leaves the job carries `***` instead. Errors name the
secret and how to provide it, never its value. Stdlib and boto3 only.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, quote_plus

__all__ = [
    "SECRETS_FILE",
    "all_forms",
    "LocalSecrets",
    "SecretError",
    "SecretResolver",
    "SecretsManagerSecrets",
    "env_name",
    "register",
    "register_window",
    "resolve_all",
    "scrub",
    "scrub_value",
    "Forms",
    "forms_pattern",
    "parts",
    "text_forms",
    "too_short",
]

SECRETS_FILE = ".secrets.json"
ENV_PREFIX = "DW_SECRET_"


# --------------------------------------------------------------------------- scrubbing

MIN_BASE64_CORE = 8  # shorter base64 fragments would match ordinary text
_lock = threading.Lock()
_values: set[str] = set()
_pattern: Forms | None = None


def _quote_forms(value: str) -> set[str]:
    forms = {value, quote(value), quote(value, safe=""), quote_plus(value), quote_plus(value, safe="/")}
    # As other languages URL-encode it (a server quoting the request URL it got): JavaScript's
    # encodeURIComponent and encodeURI leave !~*'() (and encodeURI ;,/?:@&=+$#) as they are, Java's URLEncoder *.
    forms |= {quote(value, safe="!~*'()"), quote(value, safe=";,/?:@&=+$#!~*'()"), quote_plus(value, safe="*")}
    # As Python quotes it in a message (http.client: "Invalid header value b'...\\n'").
    forms |= {repr(value)[1:-1], repr(value.encode("utf-8"))[2:-1]}
    # As JSON writes it inside a string (an API's error object quoted in a message): " as \", \ as \\, other
    # scripts as \uXXXX; also with / as \/ (PHP's json_encode).
    written = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= written | {form.replace("/", "\\/") for form in written}
    # As HTML or XML escape it (an error page or an XML error quoting a key that holds & < > " ').
    marked = {html.escape(value), html.escape(value, quote=False)}
    forms |= marked | {form.replace("&#x27;", alias) for form in marked for alias in ("&#39;", "&apos;")}
    # Percent-encoding is case-insensitive: %2f is %2F.
    return forms | {re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), f) for f in forms if "%" in f}


def text_forms(value: str) -> set[str]:
    """Every way `value` may be written as text: raw, URL-encoded (either hex case) and as Python quotes it."""
    return _quote_forms(value) if value else set()


def _base64_forms(value: str) -> set[str]:
    """Base64 text that appears wherever `value` is encoded, whatever bytes come before it.

    Base64 maps 3 bytes to 4 characters, so the value's characters depend on its offset modulo 3
    within the encoded text (e.g. `user:` + secret in HTTP Basic auth): encode it behind 0, 1 and 2
    filler bytes and keep the characters that no neighbouring byte touches.
    """
    raw = value.encode("utf-8")
    forms: set[str] = set()
    for shift in range(3):
        text = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        first, end = -(-8 * shift // 6), 8 * (shift + len(raw)) // 6
        core = text[first:end]
        if len(core) >= MIN_BASE64_CORE:
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    # The value encoded alone, whole (as Basic auth sends `user:pw`), however short: padded or not. A short
    # secret's core above is too short to be told from text, but so are its raw characters, cut out anyway.
    whole = base64.b64encode(raw).decode("ascii")
    for text in (whole, whole.rstrip("=")):
        if len(text) >= 4:
            forms |= {text, text.replace("+", "-").replace("/", "_")}
    return forms


def all_forms(value: str) -> set[str]:
    """Every form `scrub` hides for `value`: raw, URL-encoded, as Python quotes it, and base64-encoded at any
    offset (standard and URL-safe alphabets). For cutting a known secret out of data (an API's records)."""
    return _quote_forms(value) | _base64_forms(value) if value else set()


# A form shorter than this is cut only where it stands as a token of its own: not touching a letter or digit, nor
# joined to one by `_`, `-`, `.` or `/` (a name, a date, an address, a path: `run_id`, `leaky-api`, `2026-02-02`,
# `127.0.0.1`, `HTTP/1.1`, `raw/...`). Cut inside them, a 3-digit key `202` cut out of every run id
# (`***60101T000000Z`) made the run fail and its ledger entry unreadable; a key `run` renamed the ledger's own
# `run_id` field; and `***` in place of part of a known name gives the key away as surely as printing it. Where a
# server echoes a key it stands as a token: quoted, after `key=` or `X-Api-Key: `, after `Bearer `, as a JSON
# value, between commas, between slashes of a path.
SHORT_FORM = 8
# A secret value shorter than this is refused when it is read: one or two characters stand as a token in
# ordinary text (counts, page numbers, single letters), so they could be cut out of nothing without cutting the
# run's own words and so giving the value away; no real credential is that short.
MIN_SECRET_CHARS = 3
_TOKEN_START = r"(?<![^\W_])(?<![^\W_][-_./])"
_TOKEN_END = r"(?![^\W_])(?![-_./][^\W_])"
# The same rule for bytes (a download searched for an echoed key): any byte of a multi-byte UTF-8 character counts
# as a letter.
_BYTES_ALNUM = rb"[A-Za-z0-9\x80-\xff]"
_BYTES_TOKEN_START = rb"(?<!" + _BYTES_ALNUM + rb")(?<!" + _BYTES_ALNUM + rb"[-_./])"
_BYTES_TOKEN_END = rb"(?!" + _BYTES_ALNUM + rb")(?![-_./]" + _BYTES_ALNUM + rb")"


# A whole segment of a path but for its file extension (`/keys/x9z.json`): the key is the file's name.
_FILE_END = r"|(?=\.[A-Za-z0-9]{1,5}(?![^\W_]))"


def as_token(form: str) -> str:
    """A regular expression for `form` where it stands as a token (see SHORT_FORM), a whole segment of a path
    (`/x9z/`, `/x9z?`) too, but not the first word of a relative one (`raw/...`)."""
    escaped = re.escape(form)
    return f"(?:{_TOKEN_START}{escaped}{_TOKEN_END}|(?<=/){escaped}(?:{_TOKEN_END}|(?=[/?#]){_FILE_END}))"


def _bytes_token(form: bytes) -> bytes:
    escaped = re.escape(form)
    return (
        b"(?:" + _BYTES_TOKEN_START + escaped + _BYTES_TOKEN_END
        + b"|(?<=/)" + escaped + b"(?:" + _BYTES_TOKEN_END + b"|(?=[/?#])" + _FILE_END.encode() + b"))"
    )  # fmt: skip


def bytes_pattern(forms: Iterable[str]) -> re.Pattern[bytes] | None:
    """The forms as one regular expression over bytes (UTF-8), a short form only where it stands as a token;
    None without any. Its longest match is at most `max(len(f)) + 2` bytes of context each side."""
    ordered = sorted({form.encode("utf-8") for form in forms if form}, key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(
        b"|".join(_bytes_token(f) if len(f.decode("utf-8")) < SHORT_FORM else re.escape(f) for f in ordered)
    )


# A form at least this long is also cut where only its start is written (a server quoting a key cut short,
# `Invalid key: 9f8e7d6c5b4a…`): from its first TRUNCATED_HEAD characters on, as far as the text follows it.
TRUNCATED_FORM = 12
TRUNCATED_HEAD = 10


class Forms:
    """Every form of the secrets, ready to cut out of a text (`sub`, as `re.Pattern.sub` with a string).

    Every place a form stands in the text is found in the text as given, and places that overlap are cut as one: no
    part of either secret is left, and the outcome does not depend on the order the forms are tried in. A form of
    SHORT_FORM characters or more counts wherever it stands, found as plain text; a shorter one where it stands as a
    token, through one regular expression. Making one costs next to nothing for the long forms: the forms of what a
    fetch learns (presigned links, tokens) change at every page of a long paging, and a regular expression of a few
    hundred of them took 0.1 s to compile."""

    def __init__(self, forms: Iterable[str]):
        ordered = sorted({form for form in forms if form}, key=len, reverse=True)
        self.long = [form for form in ordered if len(form) >= SHORT_FORM]
        short = [form for form in ordered if len(form) < SHORT_FORM]
        self.short = re.compile("|".join(as_token(form) for form in short)) if short else None
        self.starts: dict[str, list[str]] = {}
        for form in self.long:
            if len(form) >= TRUNCATED_FORM and not re.search(r"\s", form):
                self.starts.setdefault(form[:TRUNCATED_HEAD], []).append(form)

    def sub(self, replacement: str, text: str) -> str:
        spans = [(at, at + len(form)) for form in self.long if form in text for at in _places(text, form)]
        if self.short is not None:
            spans += [match.span() for match in self.short.finditer(text)]
        for head, forms in self.starts.items():  # a form cut short: from its head as far as the text follows it
            for at in _places(text, head) if head in text else ():
                spans.append((at, max(at + _followed(text, at, form) for form in forms)))
        if not spans:
            return text
        pieces, done = [], 0
        for start, end in sorted(spans):
            if start < done:  # overlaps the cut before: cut together
                if end > done:
                    done = end
                continue
            pieces += [text[done:start], replacement]
            done = end
        return "".join(pieces) + text[done:]


def _followed(text: str, at: int, form: str) -> int:
    """How many characters of `form` the text spells from `at` on."""
    k = 0
    while at + k < len(text) and k < len(form) and text[at + k] == form[k]:
        k += 1
    return k


def _places(text: str, part: str) -> Iterator[int]:
    """Where `part` starts in `text`, each time."""
    at = text.find(part)
    while at >= 0:
        yield at
        at = text.find(part, at + 1)


def forms_pattern(forms: Iterable[str]) -> Forms | None:
    """The forms as one `Forms`, or None without any."""
    found = {form for form in forms if form}
    return Forms(found) if found else None


def parts(value: str) -> set[str]:
    """The parts of a secret value that may be quoted alone, of PART_MIN_CHARS or more. A value with a line break
    inside may be shown one line at a time; one made of name=value pairs (a Cookie header's `session=…; csrf=…`) a
    value at a time. The names are words, not secrets, and so are a cookie's short values (`theme=dark`, `cur=USD`):
    taken for secrets, they cut `USD` and every `true` out of the records and refused a CSV that holds them."""
    found = set()
    for piece in re.split(r"[\x00-\x20\x7f;,&]+", value):
        name, equals, rest = piece.partition("=")
        found.add(rest if equals else name)
    return {part for part in found if len(part) >= PART_MIN_CHARS} - {value}


# The shortest part of a compound secret (a cookie's value, a Basic password or user name) taken for a secret of its
# own: shorter parts are more often words than credentials, and the secret is known whole anyway.
PART_MIN_CHARS = 8


def register(values: Iterable[str | None]) -> None:
    """Remember secret values (and their colon-separated password part) so `scrub` hides them."""
    with _lock:
        before = len(_values)
        for value in values:
            _values.update(_expanded(value))
        if len(_values) != before:
            _rebuild()
        if _pattern is not None:
            _scrub_every_log_record()


def _expanded(value: str | None) -> set[str]:
    """A secret value with the parts that may be shown alone: see `parts`, and the password of `user:password`."""
    if not value:
        return set()
    _, colon, password = value.partition(":")
    return {value, *parts(value), *([password] if colon and len(password) >= 4 else [])}  # Basic auth's password


# Values a process learned on its way (a fetch's redirects and links to other hosts), by who learned them: each
# learner's latest only, so that its newest are cut however long it goes on while the pattern keeps its size.
_windows: dict[object, frozenset[str]] = {}


def register_window(owner: object, values: Iterable[str]) -> None:
    """`values` in place of those `owner` registered before: a window over what it learned that moves with it."""
    window = frozenset(part for value in values for part in _expanded(value))
    with _lock:
        if _windows.get(owner, frozenset()) != window:
            _windows[owner] = window
            _rebuild()
            if _pattern is not None:
                _scrub_every_log_record()


def _rebuild() -> None:
    global _pattern
    values = _values.union(*_windows.values())
    _pattern = forms_pattern({form for value in values for form in _value_forms(value)})


@functools.lru_cache(maxsize=4096)  # a window that moves keeps most of its values from one page to the next
def _value_forms(value: str) -> frozenset[str]:
    return frozenset(_quote_forms(value) | _base64_forms(value))


def _scrub_record(record: logging.LogRecord) -> None:
    """The record's message (with its arguments), traceback and stack, scrubbed; left as made when clean."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: shown unformatted, never with its arguments
        message, record.args = str(record.msg), None
    scrubbed = scrub(message)
    if scrubbed != message:
        record.msg, record.args = scrubbed, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        trace = logging.Formatter().formatException(record.exc_info)
        if scrub(trace) != trace:  # the exception object itself may quote the secret: only its scrubbed text goes on
            record.exc_text, record.exc_info = scrub(trace), None
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


def _scrub_every_log_record() -> None:
    """From the first secret on, every log record of the process is scrubbed as it is made, whichever logger
    makes it (py4j's DEBUG record of a Java answer quotes a failed task's Python traceback, a hook's message
    with it; a library may log a URL or an exception): one place, rather than a filter per logger."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "scrubs_secrets", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _pattern is not None:
            _scrub_record(record)
        return record

    factory.scrubs_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def scrub(text: str | None) -> str | None:
    """`text` with every registered secret value, in any of its forms, replaced by `***`."""
    pattern = _pattern
    if text is None or pattern is None:
        return text
    return pattern.sub("***", text)


def scrub_value(value, keep: Iterable[str] = ()):
    """A JSON-like value with every string scrubbed (a run summary before it is written or shown); at the top
    level of a dict given `keep`, the keys themselves (the summary's own field names: a key `status` had the
    ledger entry's `"***": "succeeded"`) and the values of the keys in `keep` as they are (the job's own run id
    and times, which no source writes, and which a short secret that is part of them would make unreadable)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [scrub_value(item) for item in value]
    if isinstance(value, dict):
        kept = frozenset(keep)
        own = bool(kept)
        return {(k if own else scrub_value(k)): v if k in kept else scrub_value(v) for k, v in value.items()}
    return value


def _clean(name: str, value: str, where: str) -> str:
    """The value without surrounding whitespace, registered for scrubbing; SecretError if nothing is left."""
    trimmed = value.strip()
    if not trimmed:
        raise SecretError(f"secret {name!r} from {where} is empty or only whitespace; store the credential itself")
    too_short(name, trimmed, where)  # before it is registered: a 1-character secret would cut its own message
    register([trimmed])
    return trimmed


def too_short(name: str, value: str, where: str = "") -> None:
    """SecretError for a value shorter than MIN_SECRET_CHARS (see there); its length only, never the value."""
    if len(value) < MIN_SECRET_CHARS:
        raise SecretError(
            f"secret {name!r}{f' from {where}' if where else ''} is too short to be kept out of logs safely: "
            f"{len(value)} character{'s' if len(value) != 1 else ''}, where a credential of fewer than "
            f"{MIN_SECRET_CHARS} stands as a word of its own in ordinary text (counts, page numbers, single "
            "letters) and could not be cut out of logs without giving it away; store the real credential"
        )


# --------------------------------------------------------------------------- resolvers


class SecretError(Exception):
    """A secret that could not be read, worded as advice; never carries the value."""


class SecretResolver(Protocol):
    def resolve(self, name: str) -> str:
        """The secret's value; SecretError if it cannot be read."""
        ...


def env_name(name: str) -> str:
    """`pp-dw/fda-api-key` -> `DW_SECRET_PP_DW_FDA_API_KEY`: upper case, anything but letters and digits as `_`."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def local_advice(name: str, file: Path | str = SECRETS_FILE) -> str:
    return f'locally, export {env_name(name)}=... or add it to {file} (git-ignored) as {{"{name}": "..."}}'


class LocalSecrets:
    """`dw run`: the environment first, then `.secrets.json` in the project root."""

    def __init__(self, root: Path, environ: Mapping[str, str] | None = None):
        self.file = Path(root) / SECRETS_FILE
        self.environ = os.environ if environ is None else environ
        self._file_values: dict[str, object] | None = None

    def _from_file(self) -> dict[str, object]:
        if self._file_values is None:
            if not self.file.is_file():
                self._file_values = {}
            else:
                from dwlib.errors import NotUtf8, utf8_text  # here: errors imports this module

                try:
                    data = json.loads(utf8_text(self.file.read_bytes(), quote_byte=False))
                except NotUtf8 as exc:  # where, never the byte: it may be part of a secret
                    raise SecretError(f"{self.file} {exc}") from None
                except json.JSONDecodeError as exc:  # exc.msg and the position only: no file content
                    raise SecretError(
                        f"{self.file} is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); "
                        'write it as {"secret-name": "value", ...}'
                    ) from None
                if not isinstance(data, dict):
                    raise SecretError(f'{self.file} must hold one JSON object: {{"secret-name": "value", ...}}')
                self._file_values = data
        return self._file_values

    def resolve(self, name: str) -> str:
        value = self.environ.get(env_name(name))
        if value:
            return _clean(name, value, env_name(name))
        found = self._from_file().get(name)
        if isinstance(found, str) and found:
            return _clean(name, found, str(self.file))
        if found is not None:
            raise SecretError(f"secret {name!r} in {self.file} must be a non-empty string; fix its entry")
        raise SecretError(f"secret {name!r} is not set: {local_advice(name, self.file)}")


class _WithholdSecretAnswers(logging.Filter):
    """botocore logs every answer's body at DEBUG (`botocore.parsers`: "Response body: b'{... "SecretString":
    "..."}'"), before the value is known here and could be scrubbed: such a record keeps only what it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: its arguments are not shown either
            message = str(record.msg)
        if "SecretString" in message or "SecretBinary" in message:
            record.msg, record.args = "Response body: withheld (a Secrets Manager answer holds a secret value)", None
        return True


_WITHHOLD = _WithholdSecretAnswers()
# The loggers of botocore that write an answer's body.
_BODY_LOGGERS = ("botocore.parsers",)


class SecretsManagerSecrets:
    """Glue: AWS Secrets Manager's `GetSecretValue`, with the job role's credentials."""

    def __init__(self, client=None):
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def resolve(self, name: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        for logger in _BODY_LOGGERS:
            if _WITHHOLD not in logging.getLogger(logger).filters:
                logging.getLogger(logger).addFilter(_WITHHOLD)
        try:
            answer = self.client.get_secret_value(SecretId=name)
        except ClientError as exc:  # the code only: AWS messages may quote the request
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                advice = (
                    f"create it: aws secretsmanager create-secret --name {name} --secret-string ...; "
                    f"{local_advice(name)}"
                )
            elif code in ("AccessDeniedException", "AccessDenied"):
                advice = (
                    "the job's role may not read it: datasets that name it in auth.secret or source_auth.secret get "
                    "a role that may; deploy that dataset's stack again"
                )
            else:
                advice = "check that Secrets Manager is reachable from the job and the secret is enabled"
            raise SecretError(f"could not read secret {name!r} from Secrets Manager ({code}): {advice}") from None
        except BotoCoreError as exc:
            raise SecretError(
                f"could not read secret {name!r} from Secrets Manager ({type(exc).__name__}): check the job's "
                "network access to Secrets Manager"
            ) from None
        value = answer.get("SecretString")
        if not value:
            raise SecretError(f"secret {name!r} has no text value (SecretString); store the credential as plain text")
        return _clean(name, value, "Secrets Manager")


def resolve_all(resolver: SecretResolver | None, names: list[str]) -> dict[str, str]:
    """Every named secret's value, read once; SecretError on the first that cannot be read."""
    if names and resolver is None:
        raise SecretError(
            f"the source needs secret(s) {', '.join(names)} but the run has no secret resolver; "
            "pass JobContext(secrets=LocalSecrets(root)) locally or SecretsManagerSecrets() on Glue"
        )
    return {name: resolver.resolve(name) for name in names} if names else {}
