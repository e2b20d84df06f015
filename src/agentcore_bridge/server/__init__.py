"""The standalone bridge server, on aiohttp (``pip install agentcore-bridge[server]``).

:func:`create_app` returns an :class:`aiohttp.web.Application` that serves
protocol v1 on ``/ws``, a pass-through to the agent's own WebSocket on
``/agent/ws`` and a health check on ``/healthz``::

    from aiohttp import web
    from agentcore_bridge.server import create_app

    web.run_app(create_app(), port=8000)

``agentcore-bridge serve`` runs it with settings from flags and the
environment. See ``docs/server.md``.
"""

from __future__ import annotations

from .app import BridgeServer, create_app, get_server
from .auth import Authenticator, BearerTokens, bearer_token, origin_allowed

__all__ = [
    "Authenticator",
    "BearerTokens",
    "BridgeServer",
    "bearer_token",
    "create_app",
    "get_server",
    "origin_allowed",
]
