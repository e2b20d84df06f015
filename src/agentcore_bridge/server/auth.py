"""Who may open a WebSocket on the bridge server.

An *authenticator* sees the HTTP upgrade request and either returns the
client's **principal** (a non-empty string naming who connects: a user id, a
tenant, a token's label) or refuses by raising
:class:`~agentcore_bridge.exceptions.AuthenticationError`. The principal is
what session resume tokens are bound to: a token issued to one principal does
not verify for another, so no principal can resume another's agent session.

Two checks are built in:

- :class:`BearerTokens`: a fixed set of tokens (``BRIDGE_AUTH_TOKENS``).
  Browsers cannot set headers on a WebSocket, so besides
  ``Authorization: Bearer <token>`` the token is read from the
  ``Sec-WebSocket-Protocol`` offer ``bearer.<token>`` and, when allowed, from
  the ``access_token`` query parameter (RFC 6750 section 2.3). The
  trade-offs are in ``docs/server.md``.
- :func:`origin_allowed`: the ``Origin`` allowlist
  (``BRIDGE_ALLOWED_ORIGINS``), which stops other web sites from opening
  connections with a visitor's browser (cross-site WebSocket hijacking).

A custom authenticator is any callable taking the :class:`aiohttp.web.Request`
and returning the principal (or an awaitable of it)::

    async def authenticate(request: web.Request) -> str:
        claims = await verify_jwt(request.query.get("access_token"))
        if claims is None:
            raise AuthenticationError("invalid token", challenge="Bearer")
        return claims["sub"]

Returning ``None`` refuses the connection with 401, like raising.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final, TypeAlias

from aiohttp import hdrs, web

from ..config import origin_allowed as _origin_allowed
from ..exceptions import AuthenticationError, ConfigurationError

__all__ = [
    "BEARER_PROTOCOL_PREFIX",
    "QUERY_PARAMETER",
    "SUBPROTOCOL",
    "Authenticator",
    "BearerTokens",
    "authenticate",
    "bearer_token",
    "offered_protocols",
    "origin_allowed",
]

#: The subprotocol the bridge selects when a client offers it. A browser
#: that carries its token as a ``bearer.<token>`` subprotocol must offer this
#: one too: the server has to select one of the offers (browsers fail the
#: handshake otherwise) and it must never echo the token.
SUBPROTOCOL: Final = "agentcore-bridge"
#: Prefix of the subprotocol offer that carries a bearer token.
BEARER_PROTOCOL_PREFIX: Final = "bearer."
#: The query parameter that may carry a bearer token (RFC 6750 section 2.3).
QUERY_PARAMETER: Final = "access_token"

#: Takes the upgrade request; returns the principal, ``None`` to refuse, or
#: an awaitable of either. May raise :class:`AuthenticationError`.
Authenticator: TypeAlias = Callable[[web.Request], "Awaitable[str | None] | str | None"]

_CHALLENGE = 'Bearer realm="agentcore-bridge"'


def offered_protocols(request: web.Request) -> list[str]:
    """Every subprotocol the client offered, in its order (tokens included)."""
    offered: list[str] = []
    for value in request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ()):
        offered.extend(item.strip() for item in value.split(",") if item.strip())
    return offered


def bearer_token(request: web.Request, *, query_parameter: bool = True) -> str | None:
    """The bearer token the request carries, or ``None``.

    Looked for in the ``Authorization`` header, then in a ``bearer.<token>``
    subprotocol offer, then (when ``query_parameter``) in ``access_token``.
    """
    authorization = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    for offer in offered_protocols(request):
        if offer.startswith(BEARER_PROTOCOL_PREFIX) and len(offer) > len(
            BEARER_PROTOCOL_PREFIX
        ):
            return offer[len(BEARER_PROTOCOL_PREFIX) :]
    if query_parameter:
        value = request.query.get(QUERY_PARAMETER)
        if value:
            return value
    return None


class BearerTokens:
    """An authenticator that accepts a fixed set of bearer tokens.

    Each token is its own principal, named ``token-`` and the first 12 hex
    digits of the token's SHA-256 (safe to log, stable across restarts, so
    session tokens stay bound to it). Tokens are compared as SHA-256 digests
    in constant time. The repr shows how many tokens there are, never them.
    """

    def __init__(self, tokens: Iterable[str], *, query_parameter: bool = True) -> None:
        digests = [hashlib.sha256(token.encode()).digest() for token in tokens]
        if not digests:
            raise ConfigurationError("BearerTokens needs at least one token")
        self._digests = tuple(digests)
        self.query_parameter = query_parameter

    def __repr__(self) -> str:
        return (
            f"BearerTokens(tokens={len(self._digests)}, "
            f"query_parameter={self.query_parameter})"
        )

    def __call__(self, request: web.Request) -> str:
        """The principal for the request's token; raises AuthenticationError."""
        token = bearer_token(request, query_parameter=self.query_parameter)
        if token is None:
            raise AuthenticationError(
                "a bearer token is required", status=401, challenge=_CHALLENGE
            )
        presented = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        matched = None
        for digest in self._digests:
            if hmac.compare_digest(digest, presented):
                matched = digest
        if matched is None:
            raise AuthenticationError(
                "the bearer token is not valid",
                status=401,
                challenge=_CHALLENGE + ', error="invalid_token"',
            )
        return "token-" + matched.hex()[:12]


async def authenticate(
    request: web.Request, authenticator: Authenticator | None
) -> str | None:
    """Run ``authenticator`` on ``request``; return the principal.

    ``None`` as the authenticator means no authentication: the principal is
    ``None`` (anonymous). Raises :class:`AuthenticationError` when the
    authenticator refuses, including when it returns ``None`` or an empty
    string. Other exceptions from the authenticator propagate: they are
    bugs in it, for the caller to log.
    """
    if authenticator is None:
        return None
    result = authenticator(request)
    if inspect.isawaitable(result):
        result = await result
    if result is None or result == "":
        raise AuthenticationError("authentication required", challenge=_CHALLENGE)
    if not isinstance(result, str):
        raise TypeError(
            f"the authenticator returned {type(result).__name__}, not a principal "
            "string"
        )
    return result


def origin_allowed(request: web.Request, allowed: Sequence[str]) -> bool:
    """Whether the request's ``Origin`` is in ``allowed``.

    The rule is :func:`agentcore_bridge.config.origin_allowed`: an empty
    list or ``*`` allows every origin, a request without ``Origin`` (not a
    browser) is allowed, and comparison ignores case.
    """
    return _origin_allowed(request.headers.get(hdrs.ORIGIN), list(allowed))
