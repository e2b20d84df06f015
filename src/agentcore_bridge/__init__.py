"""agentcore-bridge: client WebSockets to agents on Amazon Bedrock AgentCore Runtime."""

from __future__ import annotations

__version__ = "0.1.0"

# Submodules read __version__, so it is set before they load.
from .credentials import Credentials

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .aio.agentcore import AsyncAgentCoreClient
    from .sync.agentcore import AgentCoreClient

__all__ = ["AgentCoreClient", "AsyncAgentCoreClient", "Credentials", "__version__"]

# The clients load on first use: the asyncio one pulls in aiohttp, and the
# synchronous one socket and ssl, none of which a caller that only
# signs requests should pay for.
_LAZY = {
    "AgentCoreClient": "agentcore_bridge.sync.agentcore",
    "AsyncAgentCoreClient": "agentcore_bridge.aio.agentcore",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
