"""The Lambda adapter's types: the context object and the authorization hook.

Their public names are ``agentcore_bridge.awslambda.LambdaContext`` and
``agentcore_bridge.awslambda.Authorize``. They live here because both need
``typing`` at run time, and the adapter's import path does without it
(about 2 ms of every cold start): ``agentcore_bridge.awslambda`` imports
this module the first time one of the two names is read from it, and the
bridge only for type checking.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["Authorize", "LambdaContext"]

#: Checks a client at ``$connect``: returns the authenticated principal
#: (``None`` for an anonymous client it lets in) or raises
#: :class:`~agentcore_bridge.exceptions.AuthenticationError`.
Authorize = Callable[[Mapping[str, Any]], "str | None"]


class LambdaContext(Protocol):
    """The parts of Lambda's context object the bridge reads."""

    aws_request_id: str
    invoked_function_arn: str

    def get_remaining_time_in_millis(self) -> int: ...
