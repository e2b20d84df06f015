"""AWS Lambda adapter for API Gateway WebSocket APIs.

Point the function at :func:`handler` (``agentcore_bridge.awslambda.handler``)
and configure it with environment variables (``AGENTCORE_RUNTIME_ARN`` and
the ``BRIDGE_*`` settings, docs/configuration.md); or build a
:class:`LambdaBridge` in code and export it as the handler::

    from agentcore_bridge.awslambda import LambdaBridge
    from agentcore_bridge.config import Settings

    handler = LambdaBridge(Settings.from_env(), authorize=check_api_key)

Importing this package loads neither aiohttp nor botocore, only the
standard library and the bridge's own modules: the cold start stays small.

With Lambda SnapStart, the runtime module ``snapshot_restore_py`` is
present and hooks are registered when this package is imported: before the
snapshot the ready-made handler is built and TLS is set up; after each
restore pooled connections are dropped, credentials reloaded and
``random`` reseeded (see :meth:`LambdaBridge.after_restore`). A bridge
built in code registers its own hooks when it is made, so build it at
import time, as above. Without the module nothing is registered and
everything works the same.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from .._lazy import lazy_attributes
from ._snapstart import register
from .bridge import LambdaBridge

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # Read from this module at run time through __getattr__ (at the end).
    from ._interfaces import Authorize, LambdaContext

__all__ = ["Authorize", "LambdaBridge", "LambdaContext", "handler"]

_default: LambdaBridge | None = None
_default_lock = threading.Lock()


def _default_bridge() -> LambdaBridge:
    """The bridge behind :func:`handler`, built from the environment on first use.

    Raises :class:`~agentcore_bridge.exceptions.ValidationError` naming the
    variable when the configuration is wrong.
    """
    global _default  # noqa: PLW0603 - one bridge per execution environment
    with _default_lock:
        if _default is None:
            # Its hooks are this module's, registered at import.
            _default = LambdaBridge.from_env(snapstart=False)
        return _default


def handler(event: Mapping[str, Any], context: LambdaContext) -> Any:
    """The ready-made Lambda handler, configured by environment variables."""
    return _default_bridge()(event, context)


def _before_snapshot() -> None:
    _default_bridge().before_snapshot()


def _after_restore() -> None:
    _default_bridge().after_restore()


#: Whether SnapStart hooks were registered at import (for :func:`handler`).
SNAPSTART_HOOKS = register(_before_snapshot, _after_restore)


# The types live in ._interfaces, imported on first use: typing is not on
# the handler's import path. Only at run time: a type checker takes the two
# names from the imports above, and still reports any name this module
# lacks.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_attributes(
        __name__, f"{__name__}._interfaces", frozenset({"Authorize", "LambdaContext"})
    )
