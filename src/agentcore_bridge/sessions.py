"""Session ids and resume tokens, as pure functions (the clock is passed in).

By default a client connection maps to one AgentCore session. When the
client reconnects it gets a new connection, so the bridge hands it a
*resume token* (in a ``session`` frame) that it sends back with its next
``invoke``s to continue the same AgentCore session. The token:

- carries the session id and an expiry, and is signed with HMAC-SHA256
  under a secret only the bridge knows, so it cannot be forged or altered;
- is bound to the authenticated principal (the API Gateway authorizer's
  principal, for example) when there is one: the principal is signed but
  not carried, so a token taken by another principal fails to verify;
- is text of URL-safe base64 and dots, versioned by its first field::

      v1.<base64url(expires as 8 bytes big-endian + session id)>.<base64url(mac)>

The token is signed, not encrypted: anyone holding it can read the session
id inside (useless without AWS credentials for the runtime); the token
itself is the credential. Secrets rotate by listing the new one first:
tokens are signed with the first secret and accepted under any.

Session ids follow AgentCore's rule for ``runtimeSessionId`` as the safe
range of its API model allows: 33 to 100 characters of ``[A-Za-z0-9_-]``,
the first alphanumeric (:data:`SESSION_ID_PATTERN`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
from collections.abc import Sequence

from .exceptions import SessionTokenError, ValidationError

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "DEFAULT_TTL",
    "MAX_TOKEN_CHARS",
    "MIN_SECRET_BYTES",
    "SESSION_ID_PATTERN",
    "TOKEN_VERSION",
    "SessionTokens",
    "derive_session_id",
    "new_session_id",
    "session_fingerprint",
]

#: AgentCore's ``runtimeSessionId``: 33 to 256 characters by the request
#: rule, at most 100 of ``[a-zA-Z0-9][a-zA-Z0-9-_]*`` by the response shape.
SESSION_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{32,99}")
#: Secrets shorter than this are refused: 256 bits, the HMAC-SHA256 key size.
MIN_SECRET_BYTES: Final = 32
#: Default token lifetime, in seconds: 8 hours, the longest an AgentCore
#: session lives. The bridge issues a fresh token as the session is used.
DEFAULT_TTL: Final = 8 * 3600.0
#: The version tag every token starts with.
TOKEN_VERSION: Final = "v1"  # noqa: S105 - a version tag, not a secret
#: Longest token :meth:`SessionTokens.verify` reads (a 100-character session
#: id gives 191 characters).
MAX_TOKEN_CHARS: Final = 512

# Separate keys per purpose, derived from the configured secret, so that a
# derived session id can never be replayed as a token signature.
_TOKEN_LABEL = b"agentcore-bridge session token v1"
_SESSION_ID_LABEL = b"agentcore-bridge session id v1"
_EXPIRES_BYTES = 8
_MAC_CHARS = 43  # 32 bytes of HMAC-SHA256 in unpadded base64
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def new_session_id() -> str:
    """A new random session id: 64 hex characters (256 bits)."""
    # os.urandom rather than secrets, whose import loads random.
    return os.urandom(32).hex()


def derive_session_id(secret: bytes, key: str) -> str:
    """The session id for ``key`` (an API Gateway ``connectionId``, say).

    The same secret and key always give the same id, so a stateless handler
    finds a connection's session again without storing it; without the
    secret the id cannot be predicted from the key. 64 hex characters.

    Raises :class:`ValidationError` for a short secret or an empty key.
    """
    _check_secret(secret)
    if not isinstance(key, str) or not key:
        raise ValidationError("key", "must be a non-empty string")
    subkey = _subkey(secret, _SESSION_ID_LABEL)
    message = key.encode("utf-8", "surrogatepass")
    return hmac.digest(subkey, message, "sha256").hex()


def session_fingerprint(session_id: str) -> str:
    """A short, stable stand-in for ``session_id`` in logs: 16 hex digits.

    The first 16 hex digits of the SHA-256 of the id: enough to follow one
    session through the logs of every adapter, useless to reach it. A
    session id is a secret (whoever knows it can continue the session with
    AWS credentials for the runtime), and any part of it is part of the
    secret, so logs carry this instead of the id or a prefix of it.
    """
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class SessionTokens:
    """Issues and verifies resume tokens.

    ``secret`` is one secret, or a sequence of them for rotation (the first
    signs, every one verifies), each at least :data:`MIN_SECRET_BYTES`
    bytes. ``ttl`` is the tokens' lifetime in seconds. Neither appears in
    the repr.
    """

    __slots__ = ("_keys", "ttl")

    def __init__(
        self, secret: bytes | Sequence[bytes], ttl: float = DEFAULT_TTL
    ) -> None:
        given = [secret] if isinstance(secret, (bytes, bytearray)) else list(secret)
        if not given:
            raise ValidationError("secret", "needs at least one secret")
        for one in given:
            _check_secret(one)
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, (int, float))
            or not (math.isfinite(ttl) and ttl > 0)
        ):
            raise ValidationError("ttl", "must be a number of seconds > 0")
        self._keys = tuple(_subkey(bytes(one), _TOKEN_LABEL) for one in given)
        self.ttl = float(ttl)

    def __repr__(self) -> str:
        return f"SessionTokens(secrets={len(self._keys)}, ttl={self.ttl:g})"

    def issue(
        self, session_id: str, principal: str | None, now: float
    ) -> tuple[str, int]:
        """A token for ``session_id``, bound to ``principal``, issued at ``now``.

        ``now`` is Unix time in seconds. Returns the token and its expiry
        (whole Unix seconds), the two fields of a ``session`` frame. Raises
        :class:`ValidationError` when ``session_id`` breaks
        :data:`SESSION_ID_PATTERN`.
        """
        if not isinstance(session_id, str) or not SESSION_ID_PATTERN.fullmatch(
            session_id
        ):
            raise ValidationError(
                "session_id",
                "must be 33 to 100 characters of [A-Za-z0-9_-], the first alphanumeric",
            )
        _check_principal(principal)
        if not (isinstance(now, (int, float)) and math.isfinite(now) and now >= 0):
            raise ValidationError("now", "must be Unix time in seconds")
        expires = math.floor(now + self.ttl)
        body = expires.to_bytes(_EXPIRES_BYTES, "big") + session_id.encode("ascii")
        signed = f"{TOKEN_VERSION}.{_b64encode(body)}"
        mac = _mac(self._keys[0], signed, principal)
        return f"{signed}.{_b64encode(mac)}", expires

    def verify(self, token: str, principal: str | None, now: float) -> str:
        """The session id inside ``token``, if it holds for ``principal`` at ``now``.

        Raises :class:`SessionTokenError` (code ``unauthorized``) with
        ``reason`` ``malformed``, ``invalid`` (bad signature, unknown
        secret, another principal) or ``expired``. The signature is checked
        before the expiry, so an altered token never reports "expired".
        """
        _check_principal(principal)
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise _malformed()
        fields = token.split(".")
        if len(fields) != 3 or fields[0] != TOKEN_VERSION:
            raise _malformed()
        _, body_text, mac_text = fields
        if len(mac_text) != _MAC_CHARS or not (
            _BASE64URL.fullmatch(body_text) and _BASE64URL.fullmatch(mac_text)
        ):
            raise _malformed()

        # Compare the MAC's text, not its decoded bytes: base64 leaves spare
        # bits in the last character, and a token must have one spelling
        # only. Every key is tried, in constant time each: which key matched
        # is no secret, but the MAC is.
        signed = f"{TOKEN_VERSION}.{body_text}"
        matched = False
        for key in self._keys:
            expected = _b64encode(_mac(key, signed, principal))
            matched |= hmac.compare_digest(expected, mac_text)
        if not matched:
            raise SessionTokenError(
                "invalid", "session token is not valid for this client"
            )

        body = _b64decode(body_text)
        if body is None or len(body) <= _EXPIRES_BYTES:
            raise _malformed()
        expires = int.from_bytes(body[:_EXPIRES_BYTES], "big")
        session_id = body[_EXPIRES_BYTES:].decode("ascii", "replace")
        if not SESSION_ID_PATTERN.fullmatch(session_id):
            raise _malformed()
        if now >= expires:
            raise SessionTokenError("expired", "session token has expired")
        return session_id


def _check_secret(secret: object) -> None:
    if not isinstance(secret, (bytes, bytearray)):
        raise ValidationError("secret", "must be bytes")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValidationError(
            "secret", f"must be at least {MIN_SECRET_BYTES} bytes of random data"
        )


def _check_principal(principal: object) -> None:
    if principal is not None and not isinstance(principal, str):
        raise ValidationError("principal", "must be a string or None")


def _subkey(secret: bytes | bytearray, label: bytes) -> bytes:
    return hmac.digest(bytes(secret), label, "sha256")


def _mac(key: bytes, signed: str, principal: str | None) -> bytes:
    # ``signed`` holds only base64url characters, dots and digits, so a NUL
    # after it ends it unambiguously; the principal comes last, tagged so
    # that None and "" differ.
    if principal is None:
        tail = b"\x00-"
    else:
        tail = b"\x00+" + principal.encode("utf-8", "surrogatepass")
    return hmac.digest(key, signed.encode("ascii") + tail, "sha256")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    if len(text) % 4 == 1:
        return None
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _malformed() -> SessionTokenError:
    return SessionTokenError("malformed", "session token is malformed")
