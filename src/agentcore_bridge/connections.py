"""The API Gateway ``@connections`` management API, without I/O.

A WebSocket API's backend sends to a client by POSTing to
``https://{apiId}.execute-api.{region}.amazonaws.com/{stage}/@connections/{connectionId}``
signed with SigV4 for the ``execute-api`` service. This module builds those
URLs and maps the API's error answers to typed errors; the transports in
:mod:`agentcore_bridge.sync` send them.

The endpoint is built from ``apiId``, region and stage, never from the
event's ``domainName``: behind a custom domain ``domainName`` is the custom
name, which does not serve ``@connections``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import quote

from .agentcore import _DNS_SUFFIX
from .exceptions import (
    ConnectionsError,
    ForbiddenError,
    GoneError,
    PayloadTooLargeError,
    ThrottledError,
    ValidationError,
)

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_POST_BYTES",
    "SERVICE",
    "connection_url",
    "connections_endpoint",
    "endpoint_from_event",
    "error_from_response",
]

SERVICE = "execute-api"
#: The most data one POST may carry (and one client message may hold).
MAX_POST_BYTES = 131072

_ERRORS: dict[int, tuple[type[ConnectionsError], str, bool]] = {
    410: (GoneError, "GoneException", False),
    403: (ForbiddenError, "ForbiddenException", False),
    413: (PayloadTooLargeError, "PayloadTooLargeException", False),
    429: (ThrottledError, "LimitExceededException", True),
}


def connections_endpoint(
    api_id: str, region: str, stage: str, partition: str = "aws"
) -> str:
    """``https://{api_id}.execute-api.{region}.{suffix}/{stage}``."""
    if not api_id or not api_id.isalnum():
        raise ValidationError("apiId", "must be the API's alphanumeric id")
    if not stage:
        raise ValidationError("stage", "must not be empty")
    suffix = _DNS_SUFFIX.get(partition, _DNS_SUFFIX["aws"])
    return f"https://{api_id}.{SERVICE}.{region}.{suffix}/{quote(stage, safe='')}"


def endpoint_from_event(
    event: Mapping[str, Any], region: str, override: str | None = None
) -> str:
    """The ``@connections`` endpoint for the API that sent ``event``.

    ``override`` (``BRIDGE_CONNECTIONS_ENDPOINT_URL``) wins when set; it is
    the URL up to and including the stage.
    """
    if override:
        return override.rstrip("/")
    context = event.get("requestContext") or {}
    return connections_endpoint(
        str(context.get("apiId", "")), region, str(context.get("stage", ""))
    )


def connection_url(endpoint: str, connection_id: str) -> str:
    """The URL of one connection: the id is percent-encoded as one segment."""
    if not connection_id:
        raise ValidationError("connectionId", "must not be empty")
    return f"{endpoint}/@connections/{quote(connection_id, safe='')}"


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes
) -> ConnectionsError:
    """The typed error for a non-2xx answer of the ``@connections`` API.

    410 is :class:`GoneError`, 403 :class:`ForbiddenError`, 413
    :class:`PayloadTooLargeError`, 429 :class:`ThrottledError` (retryable);
    anything else a plain :class:`ConnectionsError`, retryable for 5xx.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message = ""
    body_type = ""
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("Message") or "")
        body_type = str(parsed.get("__type") or parsed.get("code") or "")
    header_type = lowered.get("x-amzn-errortype", "").split(":", 1)[0]
    request_id = lowered.get("x-amzn-requestid") or lowered.get("x-amz-apigw-id")

    cls, default_type, retryable = _ERRORS.get(
        status, (ConnectionsError, "", status >= 500)
    )
    error_type = header_type or body_type.rsplit("#", 1)[-1] or default_type
    return cls(
        status,
        error_type or f"HTTP{status}",
        message or f"@connections answered {status}",
        retryable=retryable,
        request_id=request_id,
    )
