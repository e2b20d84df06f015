"""Session ids and HMAC-signed resume tokens."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcore_bridge.exceptions import (
    ConfigurationError,
    FrameError,
    SessionTokenError,
    ValidationError,
)
from agentcore_bridge.protocol import MAX_SESSION_CHARS
from agentcore_bridge.sessions import (
    MAX_TOKEN_CHARS,
    SESSION_ID_PATTERN,
    SessionTokens,
    derive_session_id,
    new_session_id,
    session_fingerprint,
)

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
NOW = 1_700_000_000.0

secrets_ = st.binary(min_size=32, max_size=64)
session_ids = st.from_regex(SESSION_ID_PATTERN, fullmatch=True)
principals = st.none() | st.text(max_size=50)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)


def refused(tokens: SessionTokens, token: str, principal: str | None = None) -> str:
    with pytest.raises(SessionTokenError) as info:
        tokens.verify(token, principal, NOW)
    assert info.value.code == "unauthorized"
    return info.value.reason


# Session ids.


def test_new_session_ids_follow_agentcores_rule_and_differ() -> None:
    made = {new_session_id() for _ in range(100)}
    assert len(made) == 100
    assert all(SESSION_ID_PATTERN.fullmatch(one) for one in made)


@given(secret=secrets_, key=st.text(min_size=1))
def test_derived_session_ids_follow_agentcores_rule(secret: bytes, key: str) -> None:
    derived = derive_session_id(secret, key)
    assert SESSION_ID_PATTERN.fullmatch(derived)
    assert derived == derive_session_id(secret, key)


@given(
    secret=secrets_, other=secrets_, key=st.text(min_size=1), key2=st.text(min_size=1)
)
def test_derived_ids_depend_on_secret_and_key(
    secret: bytes, other: bytes, key: str, key2: str
) -> None:
    """Another secret or another key gives another id."""
    if other != secret:
        assert derive_session_id(secret, key) != derive_session_id(other, key)
    if key2 != key:
        assert derive_session_id(secret, key) != derive_session_id(secret, key2)


def test_derived_id_is_not_a_plain_hash_of_the_key() -> None:
    import hashlib

    key = "L0SM9cOFvHcCIhw="
    assert derive_session_id(SECRET, key) != hashlib.sha256(key.encode()).hexdigest()


def test_derive_refuses_short_secret_and_empty_key() -> None:
    with pytest.raises(ConfigurationError):
        derive_session_id(b"short", "conn")
    with pytest.raises(ValidationError):
        derive_session_id(SECRET, "")


def test_derive_accepts_keys_with_lone_surrogates() -> None:
    assert SESSION_ID_PATTERN.fullmatch(derive_session_id(SECRET, "a\udc80"))


@given(session_id=session_ids)
def test_fingerprints_are_16_hex_digits_stable_and_hold_no_part_of_the_id(
    session_id: str,
) -> None:
    fingerprint = session_fingerprint(session_id)
    assert re.fullmatch("[0-9a-f]{16}", fingerprint)
    assert fingerprint == session_fingerprint(session_id)
    assert fingerprint == hashlib.sha256(session_id.encode()).hexdigest()[:16]
    assert session_id[:8] not in fingerprint


def test_different_sessions_have_different_fingerprints() -> None:
    made = {session_fingerprint(new_session_id()) for _ in range(1000)}
    assert len(made) == 1000


# Tokens.


@given(secret=secrets_, session_id=session_ids, principal=principals, now=times)
def test_issued_token_verifies_to_its_session(
    secret: bytes, session_id: str, principal: str | None, now: float
) -> None:
    tokens = SessionTokens(secret, ttl=60)
    token, expires = tokens.issue(session_id, principal, now)
    assert tokens.verify(token, principal, now) == session_id
    assert tokens.verify(token, principal, expires - 0.001) == session_id
    assert expires == int(now + 60)


@given(session_id=session_ids, now=times)
def test_tokens_are_url_safe_and_fit_an_invoke_frame(
    session_id: str, now: float
) -> None:
    token, _ = SessionTokens(SECRET).issue(session_id, "alice", now)
    assert len(token) <= MAX_TOKEN_CHARS <= MAX_SESSION_CHARS
    assert set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    )
    assert token.startswith("v1.")


@given(session_id=session_ids, now=times)
def test_token_expires_at_its_expiry(session_id: str, now: float) -> None:
    tokens = SessionTokens(SECRET, ttl=30)
    token, expires = tokens.issue(session_id, None, now)
    with pytest.raises(SessionTokenError) as info:
        tokens.verify(token, None, expires)
    assert info.value.reason == "expired"


@given(
    session_id=session_ids,
    principal=principals,
    other=principals,
)
def test_token_cannot_move_to_another_principal(
    session_id: str, principal: str | None, other: str | None
) -> None:
    tokens = SessionTokens(SECRET)
    token, _ = tokens.issue(session_id, principal, NOW)
    if other != principal:
        assert refused(tokens, token, other) == "invalid"


def test_anonymous_token_is_refused_for_a_named_principal() -> None:
    """None and "" are different principals."""
    tokens = SessionTokens(SECRET)
    token, _ = tokens.issue(new_session_id(), None, NOW)
    assert refused(tokens, token, "") == "invalid"
    token, _ = tokens.issue(new_session_id(), "", NOW)
    assert refused(tokens, token, None) == "invalid"


@given(session_id=session_ids, data=st.data())
def test_any_change_to_a_token_is_refused(session_id: str, data: st.DataObject) -> None:
    """Flipping any character of a token makes it fail: it cannot be forged."""
    tokens = SessionTokens(SECRET)
    token, _ = tokens.issue(session_id, "alice", NOW)
    index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(
        st.sampled_from(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        )
    )
    forged = token[:index] + replacement + token[index + 1 :]
    if forged != token:
        assert refused(tokens, forged, "alice") in {"malformed", "invalid"}


def test_token_with_a_later_expiry_is_refused() -> None:
    """Rewriting the expiry inside the body breaks the signature."""
    tokens = SessionTokens(SECRET, ttl=60)
    session_id = new_session_id()
    token, expires = tokens.issue(session_id, None, NOW)
    _, body, mac = token.split(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    later = (expires + 10**6).to_bytes(8, "big") + raw[8:]
    rewritten = base64.urlsafe_b64encode(later).rstrip(b"=").decode()
    assert refused(tokens, f"v1.{rewritten}.{mac}") == "invalid"


def test_expired_but_forged_token_reports_invalid_not_expired() -> None:
    tokens = SessionTokens(SECRET, ttl=1)
    token, _ = tokens.issue(new_session_id(), None, 0.0)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert refused(tokens, forged) in {"invalid", "malformed"}


def test_spare_base64_bits_in_the_signature_are_refused() -> None:
    """A token has one spelling: the last base64 character's unused bits count."""
    tokens = SessionTokens(SECRET)
    token, _ = tokens.issue(new_session_id(), None, NOW)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    # 32 bytes take 43 characters: the last carries 4 bits and 2 spare ones.
    for spare in (1, 2, 3):
        twin = token[:-1] + alphabet[last ^ spare]
        assert refused(tokens, twin) == "invalid"


def test_token_signed_with_another_secret_is_refused() -> None:
    token, _ = SessionTokens(OTHER_SECRET).issue(new_session_id(), None, NOW)
    assert refused(SessionTokens(SECRET), token) == "invalid"


def test_rotation_signs_with_the_first_secret_and_accepts_any() -> None:
    session_id = new_session_id()
    old_token, _ = SessionTokens(OTHER_SECRET).issue(session_id, None, NOW)
    rotated = SessionTokens([SECRET, OTHER_SECRET])
    assert rotated.verify(old_token, None, NOW) == session_id
    new_token, _ = rotated.issue(session_id, None, NOW)
    assert SessionTokens(SECRET).verify(new_token, None, NOW) == session_id
    assert refused(SessionTokens(OTHER_SECRET), new_token) == "invalid"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v1..",
        "v2.AAAA.AAAA",
        "v1.AAAA.AAAA.AAAA",
        "v1.A=A.AAAA",
        "v1.AAAA.A",
        "v1.AAAA.AA+A",
        "x" * (MAX_TOKEN_CHARS + 1),
        "v1.é.AAAA",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert refused(SessionTokens(SECRET), token) == "malformed"


def test_non_string_token_is_refused_as_malformed() -> None:
    assert refused(SessionTokens(SECRET), None) == "malformed"  # type: ignore[arg-type]


def test_token_errors_are_frame_errors_without_the_token() -> None:
    tokens = SessionTokens(SECRET)
    token, _ = tokens.issue(new_session_id(), "alice", NOW)
    with pytest.raises(FrameError) as info:
        tokens.verify(token, "mallory", NOW)
    assert token not in str(info.value)
    assert "alice" not in str(info.value)


@pytest.mark.parametrize("secret", [b"", b"x" * 31, "x" * 40, [], [SECRET, b"short"]])
def test_weak_or_missing_secrets_are_refused(secret: object) -> None:
    with pytest.raises(ConfigurationError):
        SessionTokens(secret)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan"), True])
def test_bad_ttl_is_refused(ttl: float) -> None:
    with pytest.raises(ValidationError):
        SessionTokens(SECRET, ttl=ttl)


@pytest.mark.parametrize("session_id", ["short", "-" + "a" * 40, "a" * 101, "a b" * 20])
def test_issue_refuses_ids_outside_agentcores_rule(session_id: str) -> None:
    with pytest.raises(ValidationError):
        SessionTokens(SECRET).issue(session_id, None, NOW)


def test_repr_shows_no_secret() -> None:
    text = repr(SessionTokens([SECRET, OTHER_SECRET], ttl=60))
    assert text == "SessionTokens(secrets=2, ttl=60)"
