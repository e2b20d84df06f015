"""A minimal synchronous client of the AWS Lambda Invoke API.

The Lambda adapter invokes its own function: a warmer ping fans out into
overlapping invocations, and a new connection starts an agent warm-up in
another environment. That takes one call,
``POST /2015-03-31/functions/{FunctionName}/invocations``, signed with
SigV4 for ``lambda``; this module makes it over the pooled transport of
:mod:`agentcore_bridge.sync.http`, without botocore.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from .. import sigv4
from .._value import Value
from ..agentcore import USER_AGENT, Timeouts, validate_region
from ..credentials import Credentials, as_source
from ..exceptions import ServiceError, TransportError, ValidationError
from .http import HTTPTransport

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..credentials import CredentialSource

__all__ = ["INVOCATION_TYPES", "InvokeResult", "LambdaClient", "lambda_endpoint"]

SERVICE = "lambda"
#: ``Event`` queues the invocation and answers 202 at once;
#: ``RequestResponse`` answers when the function has returned.
INVOCATION_TYPES = frozenset({"Event", "RequestResponse"})

# A synchronous answer may hold up to 6 MB; warmers return a few bytes.
_MAX_RESPONSE = 6 * 1024 * 1024
_MAX_ERROR_BODY = 64 * 1024


def lambda_endpoint(region: str) -> str:
    """``https://lambda.{region}.amazonaws.com``."""
    return f"https://lambda.{validate_region(region)}.amazonaws.com"


# A plain class rather than a NamedTuple, for import time (see _value).
class InvokeResult(Value):
    """The answer to one invocation.

    ``status`` is 202 for ``Event``, 200 for ``RequestResponse``;
    ``payload`` is the function's JSON result (``None`` for ``Event``), and
    ``function_error`` Lambda's ``X-Amz-Function-Error`` (``Unhandled``
    when the function raised), else ``None``.
    """

    __slots__ = ("function_error", "payload", "status")
    _fields = ("status", "payload", "function_error")

    def __init__(self, status: int, payload: Any, function_error: str | None) -> None:
        self.status = status
        self.payload = payload
        self.function_error = function_error


class LambdaClient:
    """Invokes Lambda functions of one region.

    ``endpoint_url`` defaults to :func:`lambda_endpoint` for ``region``
    (``BRIDGE_LAMBDA_ENDPOINT_URL`` points it at a local emulator).
    ``credentials`` and ``transport`` are as for the other clients.
    """

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        credentials: Credentials | CredentialSource | None = None,
        transport: HTTPTransport | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.region = validate_region(region)
        self.endpoint = (endpoint_url or lambda_endpoint(region)).rstrip("/")
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValidationError("endpoint_url", "must be an http:// or https:// URL")
        self.timeouts = timeouts or Timeouts(
            connect=3.0, first_byte=30.0, idle=30.0, total=60.0
        )
        self._credentials = as_source(credentials)
        self._owns_transport = transport is None
        self._transport = transport or HTTPTransport(timeouts=self.timeouts)

    def __repr__(self) -> str:
        return f"LambdaClient({self.endpoint!r}, region={self.region!r})"

    def close(self) -> None:
        """Close the pooled connections (unless the transport was shared)."""
        if self._owns_transport:
            self._transport.close()

    def invoke(
        self,
        function: str,
        payload: object,
        *,
        invocation_type: str = "RequestResponse",
        on_sent: Callable[[], None] | None = None,
    ) -> InvokeResult:
        """Invoke ``function`` (a name or an ARN, qualified or not) with ``payload``.

        ``payload`` is any JSON value. Not retried: an ``Event`` invocation
        Lambda has accepted is retried by Lambda itself, and repeating a
        ``RequestResponse`` one would run the function twice. ``on_sent``
        is called once the request is written, before Lambda's answer is
        awaited.

        Raises :class:`~agentcore_bridge.exceptions.ServiceError` for an
        error answer (its ``error_type`` is Lambda's, for example
        ``TooManyRequestsException``),
        :class:`~agentcore_bridge.exceptions.TransportError` for a network
        failure, and :class:`~agentcore_bridge.exceptions.ValidationError`
        for an unknown invocation type.
        """
        if invocation_type not in INVOCATION_TYPES:
            raise ValidationError("invocation_type", "must be Event or RequestResponse")
        if not function:
            raise ValidationError("function", "must name a function")
        url = (
            f"{self.endpoint}/2015-03-31/functions/"
            f"{quote(function, safe='')}/invocations"
        )
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Amz-Invocation-Type": invocation_type,
        }
        signed = sigv4.sign_headers(
            "POST",
            url,
            headers,
            body,
            credentials=self._credentials.get(),
            region=self.region,
            service=SERVICE,
        )
        with self._transport.request(
            "POST",
            url,
            {**headers, **signed, "User-Agent": USER_AGENT},
            body,
            timeouts=self.timeouts,
            on_sent=on_sent,
        ) as response:
            limit = _MAX_RESPONSE if response.status < 300 else _MAX_ERROR_BODY
            answer = response.read(limit=limit)
        if not 200 <= response.status < 300:
            raise _error(response.status, response.headers, answer)

        result: Any = None
        if answer:
            try:
                result = json.loads(answer)
            except ValueError as exc:
                raise TransportError(
                    "the Lambda answer is not JSON",
                    url=url,
                    response_started=True,
                ) from exc
        return InvokeResult(
            response.status, result, response.headers.get("x-amz-function-error")
        )


def _error(status: int, headers: dict[str, str], body: bytes) -> ServiceError:
    error_type = headers.get("x-amzn-errortype", "").split(":", 1)[0]
    message = ""
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {}
    if isinstance(document, dict):
        error_type = error_type or str(document.get("Type") or "")
        message = str(document.get("message") or document.get("Message") or "")
    return ServiceError(
        status,
        error_type or f"HTTP{status}",
        message or f"Lambda answered {status}",
        # Lambda's throttling and service errors; the caller decides.
        retryable=status == 429 or status >= 500,
        request_id=headers.get("x-amzn-requestid"),
    )
