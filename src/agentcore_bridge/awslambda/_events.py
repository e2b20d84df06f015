"""What a Lambda event is, and the fields the adapter reads from it (pure).

The adapter's function receives, besides API Gateway's WebSocket events
(``requestContext.eventType`` ``CONNECT``, ``MESSAGE``, ``DISCONNECT``),
the events it sends itself or that are set up around it:

- a REQUEST authorizer call for ``$connect`` (``type: REQUEST`` with a
  ``methodArn``), when the same function is the API's authorizer;
- a warmer ping: an event holding the warmer key (the input of an
  EventBridge Scheduler schedule or rule, for example
  ``{"agentcore_bridge_warmer": {"concurrency": 3}}``), or any scheduled
  event (``detail-type: Scheduled Event``), whose ``detail`` may hold the
  key;
- a session warm-up the adapter sent itself on ``$connect``
  (:data:`WARMUP_KEY`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AUTHORIZER",
    "CONNECT",
    "DISCONNECT",
    "MESSAGE",
    "UNKNOWN",
    "WARMER",
    "WARMUP",
    "WARMUP_KEY",
    "authorizer_context",
    "classify",
    "header",
    "query_parameter",
    "request_context",
    "warmer_spec",
]

CONNECT = "connect"
DISCONNECT = "disconnect"
MESSAGE = "message"
AUTHORIZER = "authorizer"
WARMER = "warmer"
WARMUP = "warmup"
UNKNOWN = "unknown"

#: Marks the event the adapter sends itself to warm a new connection's
#: agent session: ``{"agentcore_bridge_warmup": {"connectionId": ...,
#: "sessionId": ...}}``.
WARMUP_KEY = "agentcore_bridge_warmup"

_EVENT_TYPES = {"CONNECT": CONNECT, "DISCONNECT": DISCONNECT, "MESSAGE": MESSAGE}
_ROUTE_KEYS = {"$connect": CONNECT, "$disconnect": DISCONNECT}
_SCHEDULE_SOURCES = frozenset({"aws.events", "aws.scheduler"})


def classify(event: object, warmer_key: str) -> str:
    """The kind of ``event``: one of the constants of this module."""
    if not isinstance(event, Mapping):
        return UNKNOWN
    if event.get("type") == "REQUEST" and "methodArn" in event:
        return AUTHORIZER
    context = event.get("requestContext")
    if isinstance(context, Mapping) and context.get("connectionId"):
        kind = _EVENT_TYPES.get(str(context.get("eventType", "")))
        if kind is None:
            kind = _ROUTE_KEYS.get(str(context.get("routeKey", "")), MESSAGE)
        return kind
    if isinstance(event.get(WARMUP_KEY), Mapping):
        return WARMUP
    if warmer_spec(event, warmer_key) is not None:
        return WARMER
    return UNKNOWN


def warmer_spec(event: Mapping[str, Any], warmer_key: str) -> dict[str, Any] | None:
    """The warmer settings an event carries, or ``None`` if it is no warmer ping.

    The settings are the value under ``warmer_key``, at the top of the event
    or inside the ``detail`` of a scheduled event (an object, or JSON text
    as EventBridge Scheduler sends it). A scheduled event without the key
    is a ping with the default settings (``{}``).
    """
    value = event.get(warmer_key)
    if isinstance(value, Mapping):
        return dict(value)
    if not _is_scheduled(event):
        return None
    detail = event.get("detail")
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            detail = None
    if isinstance(detail, Mapping) and isinstance(detail.get(warmer_key), Mapping):
        return dict(detail[warmer_key])
    return {}


def _is_scheduled(event: Mapping[str, Any]) -> bool:
    return (
        event.get("detail-type") == "Scheduled Event"
        or event.get("source") in _SCHEDULE_SOURCES
    )


def request_context(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """``requestContext``, or an empty mapping."""
    context = event.get("requestContext")
    return context if isinstance(context, Mapping) else {}


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header of a ``$connect`` or authorizer event, by any case."""
    headers = event.get("headers")
    if not isinstance(headers, Mapping):
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == lowered:
            return str(value)
    return None


def query_parameter(event: Mapping[str, Any], name: str) -> str | None:
    """A query string parameter of a ``$connect`` or authorizer event."""
    query = event.get("queryStringParameters")
    if not isinstance(query, Mapping):
        return None
    value = query.get(name)
    return value if isinstance(value, str) and value else None


def authorizer_context(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """``requestContext.authorizer``: what an API Gateway authorizer returned.

    API Gateway adds it to every event of the connection, so it is the one
    place where something decided at ``$connect`` is seen again later.
    """
    value = request_context(event).get("authorizer")
    return value if isinstance(value, Mapping) else {}
