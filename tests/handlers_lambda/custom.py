"""The Lambda adapter configured in code: an authorization hook on an API key.

``?key=open-sesame`` lets a client in as ``user-1``; another key is
refused with 403 and no key with 401. Everything else comes from the
environment, as for the ready-made handler.
"""

from __future__ import annotations

from agentcore_bridge.awslambda import LambdaBridge
from agentcore_bridge.config import Settings
from agentcore_bridge.exceptions import AuthorizationError


def authorize(event):
    key = (event.get("queryStringParameters") or {}).get("key")
    if key is None:
        raise AuthorizationError(401, "no API key")
    if key != "open-sesame":
        raise AuthorizationError(403, "unknown API key")
    return "user-1"


handler = LambdaBridge(Settings.from_env(), authorize=authorize)
