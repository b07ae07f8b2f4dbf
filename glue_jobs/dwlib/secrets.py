"""Secrets by name, resolved at run time: Secrets Manager on Glue, the environment or a file locally.

A dataset's config names a secret (`api_endpoints[].auth.secret`), never its value. The Glue
entry point resolves names with `SecretsManagerSecrets`; `dw run` with `LocalSecrets`, which
reads `DW_SECRET_<NAME>` from the environment, then `.secrets.json` at the project root
(git-ignored): `{"pp-dw/fda-api-key": "value"}`.

Errors name the secret and how to provide it, never its value. Stdlib and boto3 only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

__all__ = [
    "SECRETS_FILE",
    "LocalSecrets",
    "SecretError",
    "SecretResolver",
    "SecretsManagerSecrets",
    "env_name",
    "resolve_all",
]

SECRETS_FILE = ".secrets.json"
ENV_PREFIX = "DW_SECRET_"


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
                try:
                    data = json.loads(self.file.read_text(encoding="utf-8"))
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
            return value
        found = self._from_file().get(name)
        if isinstance(found, str) and found:
            return found
        if found is not None:
            raise SecretError(f"secret {name!r} in {self.file} must be a non-empty string; fix its entry")
        raise SecretError(f"secret {name!r} is not set: {local_advice(name, self.file)}")


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
                    "the job's role may not read it: datasets whose endpoints name it in auth.secret get a role "
                    "that may; deploy that dataset's stack again"
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
        return value


def resolve_all(resolver: SecretResolver | None, names: list[str]) -> dict[str, str]:
    """Every named secret's value, read once; SecretError on the first that cannot be read."""
    if names and resolver is None:
        raise SecretError(
            f"the source needs secret(s) {', '.join(names)} but the run has no secret resolver; "
            "pass JobContext(secrets=LocalSecrets(root)) locally or SecretsManagerSecrets() on Glue"
        )
    return {name: resolver.resolve(name) for name in names} if names else {}
