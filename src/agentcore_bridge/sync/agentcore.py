"""The synchronous AgentCore Runtime client, on the standard library.

:class:`AgentCoreClient` streams an agent's answer as it is produced::

    client = AgentCoreClient.from_env()
    with client.invoke({"prompt": "hello"}, session_id=session) as stream:
        for event in stream:
            print(event.data)

It imports neither aiohttp nor botocore, so it suits AWS Lambda, where it
keeps its connections alive between invocations of a warm environment.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Mapping
from types import TracebackType

from ..agentcore import (
    SESSION_ID_HEADER,
    USER_AGENT,
    PreparedRequest,
    Retries,
    TargetResolver,
    Timeouts,
    error_from_response,
    failure_summary,
    invoke_request,
    is_expired_token,
    new_session_id,
    operation_name,
    presign_websocket_url,
    settings_from_env,
    should_retry,
    sign_request,
    stop_session_request,
    websocket_request,
)
from ..credentials import Credentials, as_source
from ..exceptions import AgentCoreError, TransportError
from ..sse import AgentEvent, AgentStreamDecoder
from .http import HTTPTransport, Response

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..credentials import CredentialSource

__all__ = ["AgentCoreClient", "InvocationStream"]

logger = logging.getLogger("agentcore_bridge.agentcore")

#: Error answers are short JSON documents; a longer one is cut off.
MAX_ERROR_BODY = 64 * 1024


class AgentCoreClient:
    """Calls one AgentCore runtime (or several) over pooled HTTP/1.1.

    ``runtime_arn`` is the default runtime; every call may name another.
    ``region`` defaults to the ARN's, ``qualifier`` to the runtime's
    DEFAULT endpoint, ``endpoint_url`` to the public data plane (set it for
    a local emulator, a proxy or VPC endpoint). ``credentials`` are static
    :class:`~agentcore_bridge.Credentials`, a credential source, or ``None``
    for the default chain. ``timeouts`` and ``retries`` tune the bounded
    waits and the retry policy; ``transport`` shares a connection pool.

    Raises :class:`~agentcore_bridge.exceptions.ValidationError` at once
    for any bad setting. One client may be shared by threads.
    """

    def __init__(
        self,
        runtime_arn: str | None = None,
        *,
        region: str | None = None,
        qualifier: str | None = None,
        endpoint_url: str | None = None,
        credentials: Credentials | CredentialSource | None = None,
        timeouts: Timeouts | None = None,
        retries: Retries | None = None,
        transport: HTTPTransport | None = None,
        fips: bool = False,
    ) -> None:
        self._targets = TargetResolver(
            runtime_arn,
            region=region,
            qualifier=qualifier,
            endpoint=endpoint_url,
            fips=fips,
        )
        self._credentials = as_source(credentials)
        self.timeouts = timeouts or Timeouts()
        self.retries = retries or Retries()
        self._owns_transport = transport is None
        self._transport = transport or HTTPTransport(timeouts=self.timeouts)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> AgentCoreClient:
        """A client configured by ``AGENTCORE_*`` and ``AWS_*`` variables.

        Reads ``AGENTCORE_RUNTIME_ARN`` (required), ``AGENTCORE_QUALIFIER``,
        ``AGENTCORE_ENDPOINT_URL`` and checks ``AWS_REGION`` /
        ``AWS_DEFAULT_REGION``; ``options`` are passed on to the constructor.
        Raises :class:`~agentcore_bridge.exceptions.ValidationError` whose
        ``field`` names the variable at fault.
        """
        settings = settings_from_env(os.environ if environ is None else environ)
        options.setdefault("qualifier", settings.qualifier)
        options.setdefault("endpoint_url", settings.endpoint_url)
        return cls(settings.runtime_arn, **options)

    def __enter__(self) -> AgentCoreClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections (unless the transport was shared)."""
        if self._owns_transport:
            self._transport.close()

    def reset(self) -> None:
        """Drop pooled connections and cached credentials.

        Call it after a Lambda SnapStart restore: connections and temporary
        credentials made before the snapshot must not be reused by every
        environment restored from it.
        """
        self._transport.reset()
        self._credentials.invalidate()

    # Calls.

    def invoke(
        self,
        payload: object,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        content_type: str = "application/json",
        trace_id: str | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
        baggage: str | None = None,
        runtime_arn: str | None = None,
        qualifier: str | None = None,
    ) -> InvocationStream:
        """Invoke the agent; return its answer as a stream of events.

        ``payload`` is bytes (sent as is) or any JSON value. ``session_id``
        picks the agent session (a new random one when left out: read it
        back from :attr:`InvocationStream.session_id` to continue the
        conversation). The call returns once the agent's answer has started;
        iterate the stream for :class:`~agentcore_bridge.sse.AgentEvent`
        objects as they arrive, and close it (``with`` does) when done.

        Failures before the answer starts (connection errors, 409, 429 and
        5xx answers) are retried with backoff; nothing is retried after.
        Raises :class:`~agentcore_bridge.exceptions.AgentCoreError`,
        :class:`~agentcore_bridge.exceptions.TransportError` (or its
        :class:`~agentcore_bridge.exceptions.TimeoutError`),
        :class:`~agentcore_bridge.exceptions.CredentialsError` or
        :class:`~agentcore_bridge.exceptions.ValidationError`.
        """
        target = self._targets.target(runtime_arn, qualifier)
        session_id = _session_or_new(session_id)
        request = invoke_request(
            target,
            payload,
            session_id=session_id,
            user_id=user_id,
            content_type=content_type,
            trace_id=trace_id,
            traceparent=traceparent,
            tracestate=tracestate,
            baggage=baggage,
        )
        deadline = self._deadline()
        response = self._send(request, target.region, deadline)
        return InvocationStream(response, session_id)

    def stop_session(
        self,
        session_id: str,
        *,
        runtime_arn: str | None = None,
        qualifier: str | None = None,
        client_token: str | None = None,
    ) -> None:
        """Stop an agent session now, freeing its microVM.

        Retried like :meth:`invoke`; the same client token is sent on every
        try, so AWS applies the stop once. Raises as :meth:`invoke` does.
        """
        target = self._targets.target(runtime_arn, qualifier)
        request = stop_session_request(target, session_id, client_token=client_token)
        with self._send(request, target.region, self._deadline()) as response:
            response.read(limit=MAX_ERROR_BODY)

    def websocket_request(
        self,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        runtime_arn: str | None = None,
        qualifier: str | None = None,
    ) -> PreparedRequest:
        """The URL and SigV4 headers for a WebSocket upgrade to the agent's ``/ws``.

        Give both to a WebSocket library (for example
        ``websockets.connect(request.url, additional_headers=request.headers)``)
        within five minutes: the signature carries a timestamp. The session
        id is in the headers (``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id``).
        """
        target = self._targets.target(runtime_arn, qualifier)
        request = websocket_request(
            target, _session_or_new(session_id), user_id=user_id
        )
        return sign_request(request, self._credentials.get(), target.region)

    def presign_websocket(
        self,
        *,
        session_id: str | None = None,
        expires: int = 300,
        runtime_arn: str | None = None,
        qualifier: str | None = None,
    ) -> str:
        """A presigned ``wss://`` URL for the agent's ``/ws``, valid ``expires`` s.

        Needs no headers, so a browser can use it; whoever holds it can
        connect to that session until it expires.
        """
        target = self._targets.target(runtime_arn, qualifier)
        return presign_websocket_url(
            target,
            _session_or_new(session_id),
            self._credentials.get(),
            expires=expires,
        )

    # The retry loop.

    def _deadline(self) -> float | None:
        total = self.timeouts.total
        return None if total is None else time.monotonic() + total

    def _send(
        self, request: PreparedRequest, region: str, deadline: float | None
    ) -> Response:
        attempt = 1
        refreshed = False
        while True:
            signed = sign_request(request, self._credentials.get(), region)
            try:
                response = self._attempt(signed, deadline)
            except (AgentCoreError, TransportError) as exc:
                if (
                    isinstance(exc, AgentCoreError)
                    and is_expired_token(exc)
                    and not refreshed
                ):
                    # The cached credentials expired early (revoked, or the
                    # clock is off): fetch new ones and try once more.
                    refreshed = True
                    self._credentials.invalidate()
                    continue
                if not should_retry(exc) or attempt >= self.retries.max_attempts:
                    raise
                import random  # noqa: PLC0415 - off the cold start

                delay = self.retries.delay(attempt, random.uniform)
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise
                logger.info(
                    "retrying %s in %.2f s after %s (attempt %d of %d)",
                    operation_name(request),
                    delay,
                    failure_summary(exc),
                    attempt + 1,
                    self.retries.max_attempts,
                )
                time.sleep(delay)
                attempt += 1
            else:
                logger.debug(
                    "%s answered %d after %d attempt(s)",
                    operation_name(request),
                    response.status,
                    attempt,
                )
                return response

    def _attempt(self, request: PreparedRequest, deadline: float | None) -> Response:
        response = self._transport.request(
            request.method,
            request.url,
            {**request.headers, "User-Agent": USER_AGENT},
            request.body,
            timeouts=self.timeouts,
            deadline=deadline,
        )
        if 200 <= response.status < 300:
            return response
        with response:
            body = _read_error_body(response)
        raise error_from_response(response.status, response.headers, body)


class InvocationStream:
    """The answer of one invocation: agent events, in order, as they arrive.

    Iterate it for :class:`~agentcore_bridge.sse.AgentEvent` objects. When
    the agent reports a failure inside its stream, the events before it are
    delivered and then :class:`~agentcore_bridge.exceptions.AgentError` is
    raised. A connection lost mid-stream raises
    :class:`~agentcore_bridge.exceptions.TransportError` with
    ``response_started`` set: the agent ran, so the call is not repeated.

    Close the stream (or use ``with``) to stop early: the connection is
    closed rather than reused, since unread bytes would corrupt the next
    call. A stream read to its end returns the connection to the pool.
    """

    def __init__(self, response: Response, session_id: str) -> None:
        self.status = response.status
        self.headers = response.headers
        #: The session the agent ran in (echoed by AgentCore).
        self.session_id = response.headers.get(SESSION_ID_HEADER.lower(), session_id)
        #: The agent's ``Content-Type``: ``text/event-stream`` when streaming.
        self.content_type = response.headers.get("content-type", "")
        self._response = response
        self._decoder = AgentStreamDecoder(self.content_type)
        self._pending: deque[AgentEvent] = deque()
        self._ended = False
        self._error: BaseException | None = None

    def __enter__(self) -> InvocationStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[AgentEvent]:
        return self

    def __next__(self) -> AgentEvent:
        while not self._pending:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._ended:
                raise StopIteration
            self._pull()
        return self._pending.popleft()

    def close(self) -> None:
        """Stop reading; release the connection."""
        self._ended = True
        self._pending.clear()
        self._response.close()

    def _pull(self) -> None:
        try:
            chunk = self._response.read1()
            events = self._decoder.feed(chunk) if chunk else self._decoder.close()
        except BaseException:
            self.close()
            raise
        self._pending.extend(events)
        if self._decoder.finished or not chunk:
            self._end()

    def _end(self) -> None:
        # The events before an end marker or a failure are delivered first;
        # the failure is raised after them.
        self._ended = True
        self._error = self._decoder.error
        self._response.close()


def _read_error_body(response: Response) -> bytes:
    # The status alone decides what happens next; a body that cannot be
    # read in full only costs the message.
    body = b""
    try:
        for chunk in response:
            body += chunk
            if len(body) >= MAX_ERROR_BODY:
                break
    except TransportError:
        logger.debug("could not read the error body from %s", response.url)
    return body[:MAX_ERROR_BODY]


def _session_or_new(session_id: str | None) -> str:
    # Only a missing id starts a new session. An empty one is refused by
    # the request builder like any malformed id: a caller that meant to
    # continue a session must not silently get a fresh one.
    return new_session_id() if session_id is None else session_id
