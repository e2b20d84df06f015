"""AWS credentials: the value type.

Providers and the refreshing default chain live here too (see below); the
value type comes first because the signer needs nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .exceptions import NoCredentialsError

__all__ = [
    "CredentialSource",
    "Credentials",
    "EnvironmentSource",
    "StaticSource",
    "as_source",
]


@dataclass(frozen=True)
class Credentials:
    """An AWS access key, its secret, an optional session token and expiry.

    ``expiration`` is a Unix time in seconds, or ``None`` for credentials
    that do not expire. ``repr`` and ``str`` show the access key id only:
    the secret and the token never reach logs through this object.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: float | None = None

    def __repr__(self) -> str:
        token = ", session_token=[hidden]" if self.session_token else ""
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, "
            f"secret_access_key=[hidden]{token}, expiration={self.expiration!r})"
        )

    __str__ = __repr__

    def expires_within(self, seconds: float, now: float) -> bool:
        """Whether these credentials expire less than ``seconds`` after ``now``."""
        return self.expiration is not None and self.expiration - now < seconds


# Credential sources. This is the smallest version of the interface the
# clients are written against: static credentials, and the standard
# environment variables when nothing is given.


@runtime_checkable
class CredentialSource(Protocol):
    """Where a client gets credentials for each request it signs."""

    def get(self) -> Credentials:
        """Return credentials that are valid now; may block to fetch them."""

    async def get_async(self) -> Credentials:
        """Like :meth:`get`, without blocking the event loop."""

    def invalidate(self) -> None:
        """Forget cached credentials: AWS rejected them as expired."""


class StaticSource:
    """Always the same credentials."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def get(self) -> Credentials:
        return self._credentials

    async def get_async(self) -> Credentials:
        return self._credentials

    def invalidate(self) -> None:
        """Static credentials cannot be refreshed; nothing to forget."""


class EnvironmentSource:
    """``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``."""

    def get(self) -> Credentials:
        key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise NoCredentialsError(
                ["environment: AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY not set"]
            )
        return Credentials(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)

    async def get_async(self) -> Credentials:
        return self.get()

    def invalidate(self) -> None:
        """The environment is read on every call; nothing to forget."""


def as_source(credentials: Credentials | CredentialSource | None) -> CredentialSource:
    """Wrap ``credentials`` as a source; ``None`` means the default chain."""
    if credentials is None:
        return EnvironmentSource()
    if isinstance(credentials, Credentials):
        return StaticSource(credentials)
    return credentials
