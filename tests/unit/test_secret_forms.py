"""How the secrets' forms are cut out of a text: every place found in the text as given, overlapping places cut as
one, short forms only where they stand as tokens of the text as given."""

from __future__ import annotations

import pytest

from dwlib import secrets
from dwlib.secrets import Forms


@pytest.mark.parametrize(
    ("forms", "text"),
    [
        (["k3y9k3y9AB", "ABzz99zz99"], "k3y9k3y9ABzz99zz99"),  # two of one length, overlapping
        (["ABzz99zz99", "k3y9k3y9AB"], "k3y9k3y9ABzz99zz99"),
        (["a1b2c3d4e5f6", "e5f6g7h8i9"], "x a1b2c3d4e5f6g7h8i9 y"),  # of two lengths
    ],
)
def test_overlapping_secrets_are_cut_whole_whatever_the_order(forms, text):
    """Cut one after the other, the first cut left the end of the other secret, and which one depended on the order
    the forms were tried in (for two of one length, on the process's hash seed)."""
    cut = Forms(forms).sub("***", text)
    assert cut.replace("***", "").strip(" xy") == "", cut


def test_a_short_secret_beside_a_cut_one_stays_where_it_is_no_token():
    """A short form counts only where it stands as a token of the text as given: `202` inside `-202` after a cut is
    not one (a short key would otherwise be cut out of run ids and names next to a secret)."""
    forms = Forms(["S3cr3tT0k3n", "202"])
    assert forms.sub("***", "S3cr3tT0k3n-202 ok") == "***-202 ok"
    assert forms.sub("***", "key 202 here, run 20260101T000000Z") == "key *** here, run 20260101T000000Z"


def test_a_secret_cut_short_is_cut_from_its_head():
    assert Forms(["9f8e7d6c5b4a3f2e"]).sub("***", "Invalid key: 9f8e7d6c5b4a… (9f8e7d6c5b4a3f2e)") == (
        "Invalid key: ***… (***)"
    )


def test_what_a_fetch_learned_is_cut_as_a_registered_secret_is():
    """A learned `user:password` value: its password alone is cut too, as `register` cuts it."""
    owner = object()
    secrets.register_window(owner, ["client42:Zm9vYmFyYmF6cXV4"])
    try:
        assert secrets.scrub("password Zm9vYmFyYmF6cXV4") == "password ***"
    finally:
        secrets.register_window(owner, [])
    assert secrets.scrub("password Zm9vYmFyYmF6cXV4") == "password Zm9vYmFyYmF6cXV4", "the window moved on"


def test_a_token_first_seen_in_a_path_then_as_a_signature_is_cut_from_the_run_s_summary_too():
    """A value first learned as a token of a link's path (cut from that fetch's messages only), then met as a query
    value named as a secret (`X-Amz-Signature`): it was not registered for the process, so the run's summary kept it."""
    from dwlib import fetch

    session = fetch._Session(fetch.RetryPolicy())
    token = "a1b2c3d4e5f6a7b8c9d0e1f2"
    try:
        session.learn(f"https://cdn.example/{token}/file.csv")
        assert secrets.scrub(f"error at {token}") == f"error at {token}"
        session.learn(f"https://cdn.example/file.csv?X-Amz-Signature={token}")
        assert secrets.scrub(f"error at {token}") == "error at ***"
        assert session.scrub(f"GET /{token}/file.csv") == "GET /***/file.csv"
    finally:
        session.close()
        secrets.register_window(session._window, [])
