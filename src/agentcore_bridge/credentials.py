"""AWS credentials: the value type.

Providers and the refreshing default chain live here too (see below); the
value type comes first because the signer needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Credentials"]


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
