"""The credential interfaces, as ``typing.Protocol`` classes.

Their public names are :class:`agentcore_bridge.credentials.CredentialProvider`
and :class:`agentcore_bridge.credentials.CredentialSource`. They live here
because a ``Protocol`` needs ``typing`` at run time, and the Lambda
adapter's import path does without it (about 2 ms of every cold start):
``agentcore_bridge.credentials`` imports this module the first time one of
the two names is read from it, and never itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .credentials import Credentials

__all__ = ["CredentialProvider", "CredentialSource"]


class CredentialProvider(Protocol):
    """One place AWS credentials can come from.

    ``name`` identifies the provider in errors and logs (``environment``,
    ``container``, ``static``, ``botocore``).

    A provider may also have a ``missing_reason`` string attribute saying
    what it looked for; :class:`~agentcore_bridge.credentials.ChainProvider`
    quotes it when no provider had credentials.
    """

    name: str

    def load(self) -> Credentials | None:
        """Return credentials, or ``None`` when this provider is not configured.

        Raises :class:`~agentcore_bridge.exceptions.CredentialsFetchError`
        when the provider applies but fails to produce credentials, and
        :class:`~agentcore_bridge.exceptions.ConfigurationError` when its
        configuration is invalid.
        """
        ...


@runtime_checkable
class CredentialSource(Protocol):
    """Credentials on demand, for the HTTP clients.

    Implementations cache and refresh; callers ask again for every request
    they sign instead of keeping what they got.
    """

    def get(self) -> Credentials:
        """Return usable credentials; safe to call from any thread."""
        ...

    async def get_async(self) -> Credentials:
        """Return usable credentials without blocking the event loop."""
        ...

    def invalidate(self) -> None:
        """Forget cached credentials so that the next call fetches new ones."""
        ...
