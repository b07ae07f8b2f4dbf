"""The texts that give a secret away, for tests that look for one in everything a run leaves behind."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus


def forms(secret: str) -> set[str]:
    """Every text that gives the secret away: as written, URL-encoded, base64-encoded (alone and as Basic
    auth's user:password), and escaped as JSON or Python write it inside a string."""
    found = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    found |= {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1]}
    for prefix in ("", "u:", "user:"):
        found.add(base64.b64encode((prefix + secret).encode()).decode().rstrip("="))
    return found
