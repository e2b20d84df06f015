"""The synchronous client of the API Gateway ``@connections`` API.

:class:`ConnectionsClient` sends to, inspects and closes the client
connections of one WebSocket API stage::

    client = ConnectionsClient(endpoint, region="eu-west-1")
    client.post(connection_id, '{"type":"pong","id":null}')

Requests are signed with SigV4 for ``execute-api`` and go over the pooled
keep-alive transport of :mod:`agentcore_bridge.sync.http`. Errors come back
typed (:mod:`agentcore_bridge.connections`): a client that has gone away is
:class:`~agentcore_bridge.exceptions.GoneError`, which is never retried.
Throttling (429, also sent when the client reads too slowly) is retried
with exponential backoff and full jitter.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping

from .. import sigv4
from ..agentcore import USER_AGENT, Retries, Timeouts
from ..connections import SERVICE, connection_url, error_from_response
from ..credentials import Credentials, as_source
from ..exceptions import ConnectionsError, TransportError, ValidationError
from .http import HTTPTransport, Response

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..credentials import CredentialSource

__all__ = ["DEFAULT_RETRIES", "DEFAULT_TIMEOUTS", "ConnectionsClient"]

logger = logging.getLogger("agentcore_bridge.connections")

#: Bounded waits for one call: API Gateway answers a post in milliseconds,
#: so a call that takes seconds is better reported than waited for.
DEFAULT_TIMEOUTS = Timeouts(connect=3.0, first_byte=10.0, idle=10.0, total=30.0)
#: Throttling comes in bursts: a few tries spread over a second or two
#: (waits of up to 0.05, 0.1 ... 0.8, 1, 1 s; 3.55 s at most, half that on
#: average with full jitter). Fewer tries would give up within 0.75 s, and
#: a slow reader's full buffer, answered 429 too, would stop the stream.
DEFAULT_RETRIES = Retries(max_attempts=8, base_delay=0.05, max_delay=1.0)

# Answers are empty or a small JSON document.
_MAX_BODY = 64 * 1024


class ConnectionsClient:
    """Posts to, reads and deletes the connections of one API stage.

    ``endpoint`` is the URL up to and including the stage, as
    :func:`~agentcore_bridge.connections.endpoint_from_event` builds it (or
    ``BRIDGE_CONNECTIONS_ENDPOINT_URL``). ``region`` is the signing region.
    ``credentials`` are static credentials, a credential source or ``None``
    for the default chain; ``transport`` shares a connection pool with
    other clients. One client may be shared by threads.

    Raises :class:`~agentcore_bridge.exceptions.ValidationError` for an
    endpoint that is not an http(s) URL or an empty region.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        region: str,
        credentials: Credentials | CredentialSource | None = None,
        transport: HTTPTransport | None = None,
        timeouts: Timeouts | None = None,
        retries: Retries | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValidationError("endpoint", "must be an http:// or https:// URL")
        if not region:
            raise ValidationError("region", "must not be empty")
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.timeouts = timeouts or DEFAULT_TIMEOUTS
        self.retries = retries or DEFAULT_RETRIES
        self._credentials = as_source(credentials)
        self._owns_transport = transport is None
        self._transport = transport or HTTPTransport(timeouts=self.timeouts)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"ConnectionsClient({self.endpoint!r}, region={self.region!r})"

    def close(self) -> None:
        """Close the pooled connections (unless the transport was shared)."""
        if self._owns_transport:
            self._transport.close()

    def post(
        self, connection_id: str, data: str | bytes, *, deadline: float | None = None
    ) -> None:
        """Send ``data`` to the client as one message (text for ``str``).

        ``deadline`` is a :func:`time.monotonic` time by which the post must
        be over, retries included; the call raises its last error rather
        than retry past it.

        Raises :class:`~agentcore_bridge.exceptions.GoneError` when the
        client is gone (stop sending to it),
        :class:`~agentcore_bridge.exceptions.PayloadTooLargeError` above
        128 KB, :class:`~agentcore_bridge.exceptions.ThrottledError` when
        throttling outlasts the retries,
        :class:`~agentcore_bridge.exceptions.ForbiddenError`, another
        :class:`~agentcore_bridge.exceptions.ConnectionsError`, or
        :class:`~agentcore_bridge.exceptions.TransportError`.
        """
        body = data.encode("utf-8") if isinstance(data, str) else data
        with self._call("POST", connection_id, body, deadline) as response:
            response.read(limit=_MAX_BODY)

    def get(self, connection_id: str) -> dict[str, Any]:
        """The connection's ``connectedAt``, ``lastActiveAt`` and ``identity``.

        Raises as :meth:`post` does (:class:`GoneError` when it is gone).
        """
        with self._call("GET", connection_id, b"") as response:
            body = response.read(limit=_MAX_BODY)
        try:
            document = json.loads(body) if body else {}
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ConnectionsError(
                200,
                "InvalidResponse",
                "GetConnection answered something not JSON",
                retryable=False,
            )
        return document

    def delete(self, connection_id: str) -> None:
        """Close the client's connection. Raises as :meth:`post` does."""
        with self._call("DELETE", connection_id, b"") as response:
            response.read(limit=_MAX_BODY)

    def _call(
        self,
        method: str,
        connection_id: str,
        body: bytes,
        deadline: float | None = None,
    ) -> Response:
        url = connection_url(self.endpoint, connection_id)
        headers = {"Content-Type": "application/json"} if body else {}
        total = time.monotonic() + (self.timeouts.total or 30.0)
        deadline = total if deadline is None else min(total, deadline)
        attempt = 1
        while True:
            try:
                return self._attempt(method, url, headers, body, deadline)
            except (ConnectionsError, TransportError) as exc:
                if not _should_retry(exc) or attempt >= self.retries.max_attempts:
                    raise
                import random  # noqa: PLC0415 - off the cold start

                delay = self.retries.delay(attempt, random.uniform)
                if time.monotonic() + delay >= deadline:
                    raise
                logger.debug(
                    "%s @connections retry %d in %.3f s after %s",
                    method,
                    attempt,
                    delay,
                    type(exc).__name__,
                )
                self._sleep(delay)
                attempt += 1

    def _attempt(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        deadline: float,
    ) -> Response:
        # Signed again for every try: the signature carries the time.
        signed = sigv4.sign_headers(
            method,
            url,
            headers,
            body,
            credentials=self._credentials.get(),
            region=self.region,
            service=SERVICE,
        )
        response = self._transport.request(
            method,
            url,
            {**headers, **signed, "User-Agent": USER_AGENT},
            body,
            timeouts=self.timeouts,
            deadline=deadline,
        )
        if 200 <= response.status < 300:
            return response
        with response:
            try:
                answer = response.read(limit=_MAX_BODY)
            except TransportError:
                answer = b""
        raise error_from_response(response.status, response.headers, answer)


def _should_retry(error: BaseException) -> bool:
    # 429 and 5xx: API Gateway did not deliver, or says to try again; a
    # repeated chunk carries the same seq, so clients can drop a duplicate.
    # Network failures only before any answer byte arrived.
    if isinstance(error, ConnectionsError):
        return error.retryable
    if isinstance(error, TransportError):
        return error.retryable
    return False
