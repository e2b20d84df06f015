"""The asyncio AgentCore Runtime client, on aiohttp.

:class:`AsyncAgentCoreClient` behaves like the synchronous
:class:`~agentcore_bridge.sync.agentcore.AgentCoreClient` (same arguments,
same retries, same errors) for asyncio programs such as the bridge server::

    async with AsyncAgentCoreClient.from_env() as client:
        async with client.invoke({"prompt": "hello"}) as stream:
            async for event in stream:
                print(event.data)

One client belongs to one event loop: its connection pool is made on the
first call, inside the running loop.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
import random
import sys
from collections import deque
from collections.abc import Generator, Mapping
from types import SimpleNamespace, TracebackType
from typing import Any

import aiohttp
from aiohttp.http_exceptions import (
    ContentLengthError,
    HttpProcessingError,
    TransferEncodingError,
)
from yarl import URL

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
from ..credentials import Credentials, CredentialSource, as_source
from ..exceptions import AgentCoreError, TimeoutError, TransportError
from ..sse import AgentEvent, AgentStreamDecoder

__all__ = ["AsyncAgentCoreClient", "AsyncInvocationStream"]

logger = logging.getLogger("agentcore_bridge.agentcore")

#: Error answers are short JSON documents; a longer one is cut off.
MAX_ERROR_BODY = 64 * 1024
#: Bytes asked for per read of a streamed body.
READ_SIZE = 64 * 1024

# aiohttp names its connect timeout ConnectionTimeoutError since 3.10.
_ConnectTimeout: type[Exception] = getattr(
    aiohttp, "ConnectionTimeoutError", aiohttp.ServerTimeoutError
)


class AsyncAgentCoreClient:
    """Calls AgentCore runtimes from asyncio, over a pooled aiohttp session.

    The arguments are those of
    :class:`~agentcore_bridge.sync.agentcore.AgentCoreClient`, plus
    ``session`` to share an existing :class:`aiohttp.ClientSession` (its
    owner then closes it) and ``limit`` for the connections kept per client.
    Close the client with ``await client.close()`` or ``async with``.
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
        session: aiohttp.ClientSession | None = None,
        limit: int = 100,
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
        self._session = session
        self._owns_session = session is None
        self._limit = limit

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> AsyncAgentCoreClient:
        """A client configured by ``AGENTCORE_*`` and ``AWS_*`` variables.

        See :meth:`AgentCoreClient.from_env
        <agentcore_bridge.sync.agentcore.AgentCoreClient.from_env>`.
        """
        settings = settings_from_env(os.environ if environ is None else environ)
        options.setdefault("qualifier", settings.qualifier)
        options.setdefault("endpoint_url", settings.endpoint_url)
        return cls(settings.runtime_arn, **options)

    async def __aenter__(self) -> AsyncAgentCoreClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (unless the session was shared)."""
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def reset(self) -> None:
        """Drop pooled connections and cached credentials.

        The next call opens new connections. Streams still open on the old
        connections fail; call it between calls.
        """
        if self._owns_session:
            await self.close()
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
    ) -> AsyncInvocationStream:
        """Invoke the agent; return its answer as an async stream of events.

        Arguments, retries and errors are those of the synchronous
        :meth:`~agentcore_bridge.sync.agentcore.AgentCoreClient.invoke`.
        The request is validated at once and sent when the stream is
        entered (``async with``), awaited, or iterated (``async for``)::

            async with client.invoke(payload) as stream:
                async for event in stream:
                    ...

        Prefer ``async with``: it releases the connection even when the
        loop stops early.
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
        return AsyncInvocationStream(self, request, target.region, session_id)

    async def stop_session(
        self,
        session_id: str,
        *,
        runtime_arn: str | None = None,
        qualifier: str | None = None,
        client_token: str | None = None,
    ) -> None:
        """Stop an agent session now; see the synchronous ``stop_session``."""
        target = self._targets.target(runtime_arn, qualifier)
        request = stop_session_request(target, session_id, client_token=client_token)
        response = await self._send(request, target.region, self._deadline())
        loop = asyncio.get_running_loop()
        try:
            await _read_small_body(response, loop, self._deadline(), self.timeouts)
        finally:
            _let_go(response)

    async def websocket_request(
        self,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        runtime_arn: str | None = None,
        qualifier: str | None = None,
    ) -> PreparedRequest:
        """The URL and SigV4 headers for a WebSocket upgrade to the agent's ``/ws``.

        Use them within five minutes, for example with
        ``session.ws_connect(URL(request.url, encoded=True), headers=request.headers)``.
        """
        target = self._targets.target(runtime_arn, qualifier)
        request = websocket_request(
            target, _session_or_new(session_id), user_id=user_id
        )
        credentials = await self._credentials.get_async()
        return sign_request(request, credentials, target.region)

    async def presign_websocket(
        self,
        *,
        session_id: str | None = None,
        expires: int = 300,
        runtime_arn: str | None = None,
        qualifier: str | None = None,
    ) -> str:
        """A presigned ``wss://`` URL for the agent's ``/ws``, valid ``expires`` s."""
        target = self._targets.target(runtime_arn, qualifier)
        credentials = await self._credentials.get_async()
        return presign_websocket_url(
            target, _session_or_new(session_id), credentials, expires=expires
        )

    # The retry loop.

    def _deadline(self) -> float | None:
        total = self.timeouts.total
        if total is None:
            return None
        return asyncio.get_running_loop().time() + total

    def _session_for_call(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            trace = aiohttp.TraceConfig()
            trace.on_connection_create_end.append(_connection_ready)
            trace.on_connection_reuseconn.append(_connection_ready)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                trace_configs=[trace],
                skip_auto_headers=("Accept-Encoding",),
                auto_decompress=False,
            )
            self._owns_session = True
        return self._session

    async def _send(
        self, request: PreparedRequest, region: str, deadline: float | None
    ) -> aiohttp.ClientResponse:
        attempt = 1
        refreshed = False
        while True:
            credentials = await self._credentials.get_async()
            signed = sign_request(request, credentials, region)
            try:
                response = await self._attempt(signed, deadline)
            except (AgentCoreError, TransportError) as exc:
                if (
                    isinstance(exc, AgentCoreError)
                    and is_expired_token(exc)
                    and not refreshed
                ):
                    refreshed = True
                    self._credentials.invalidate()
                    continue
                if not should_retry(exc) or attempt >= self.retries.max_attempts:
                    raise
                delay = self.retries.delay(attempt, random.uniform)
                loop = asyncio.get_running_loop()
                if deadline is not None and loop.time() + delay >= deadline:
                    raise
                logger.info(
                    "retrying %s in %.2f s after %s (attempt %d of %d)",
                    operation_name(request),
                    delay,
                    failure_summary(exc),
                    attempt + 1,
                    self.retries.max_attempts,
                )
                await asyncio.sleep(delay)
                attempt += 1
            else:
                logger.debug(
                    "%s answered %d after %d attempt(s)",
                    operation_name(request),
                    response.status,
                    attempt,
                )
                return response

    async def _attempt(
        self, request: PreparedRequest, deadline: float | None
    ) -> aiohttp.ClientResponse:
        session = self._session_for_call()
        url = request.url.split("?", 1)[0]
        loop = asyncio.get_running_loop()
        timeouts = self.timeouts
        # Until the connection is ready the wait covers connecting too; the
        # trace hook then restarts it as first_byte from that moment.
        wait = _Wait.start(
            loop,
            timeouts.connect + timeouts.first_byte,
            "first_byte",
            deadline,
            timeouts,
        )
        state = SimpleNamespace(on_ready=None)
        try:
            async with _timeout_at(wait.when) as timer:
                state.on_ready = lambda: timer.reschedule(
                    _Wait.start(
                        loop, timeouts.first_byte, "first_byte", deadline, timeouts
                    ).when
                )
                response = await session.request(
                    request.method,
                    URL(request.url, encoded=True),
                    headers={**request.headers, "User-Agent": USER_AGENT},
                    data=request.body or None,
                    timeout=aiohttp.ClientTimeout(
                        total=None, connect=timeouts.connect, sock_read=None
                    ),
                    allow_redirects=False,
                    trace_request_ctx=state,
                )
        except _ConnectTimeout as exc:
            raise TimeoutError("connect", timeouts.connect, url=url) from exc
        except builtins.TimeoutError as exc:
            raise wait.error(loop, url, deadline) from exc
        except aiohttp.ClientResponseError as exc:
            raise TransportError(
                f"malformed answer: {_parse_failure(exc.message)}",
                url=url,
                response_started=True,
            ) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise TransportError(
                "the server closed the connection without answering", url=url
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(
                f"could not connect to {exc.host}:{exc.port}: "
                + _describe(exc.os_error),
                url=url,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"connection failed: {_describe(exc)}", url=url
            ) from exc

        if 200 <= response.status < 300:
            return response
        try:
            body = await _read_small_body(response, loop, deadline, timeouts)
        finally:
            # A short error answer read to its end leaves the connection
            # reusable, for the retry that often follows.
            _let_go(response)
        raise error_from_response(response.status, _headers(response), body)


class AsyncInvocationStream:
    """The answer of one invocation: agent events, in order, as they arrive.

    Behaves like the synchronous
    :class:`~agentcore_bridge.sync.agentcore.InvocationStream`, as an async
    iterator. ``status``, ``headers``, ``session_id`` and ``content_type``
    are set once the stream is open.
    """

    def __init__(
        self,
        client: AsyncAgentCoreClient,
        request: PreparedRequest,
        region: str,
        session_id: str,
    ) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.session_id = session_id
        self.content_type = ""
        self._client = client
        self._request = request
        self._region = region
        self._response: aiohttp.ClientResponse | None = None
        self._deadline: float | None = None
        self._decoder: AgentStreamDecoder | None = None
        self._pending: deque[AgentEvent] = deque()
        self._ended = False
        self._error: BaseException | None = None

    def __await__(self) -> Generator[Any, None, AsyncInvocationStream]:
        return self.open().__await__()

    async def __aenter__(self) -> AsyncInvocationStream:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncInvocationStream:
        return self

    async def __anext__(self) -> AgentEvent:
        if self._response is None and not self._ended:
            await self.open()
        while not self._pending:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._ended:
                raise StopAsyncIteration
            await self._pull()
        return self._pending.popleft()

    async def open(self) -> AsyncInvocationStream:
        """Send the request (with retries) unless already sent; return self."""
        if self._response is not None or self._ended:
            return self
        self._deadline = self._client._deadline()
        response = await self._client._send(self._request, self._region, self._deadline)
        self._response = response
        self.status = response.status
        self.headers = _headers(response)
        self.session_id = self.headers.get(SESSION_ID_HEADER.lower(), self.session_id)
        self.content_type = self.headers.get("content-type", "")
        self._decoder = AgentStreamDecoder(self.content_type)
        return self

    async def aclose(self) -> None:
        """Stop reading; release the connection (closed unless fully read)."""
        self._ended = True
        self._pending.clear()
        self._release()

    def _release(self) -> None:
        if self._response is not None:
            _let_go(self._response)

    async def _pull(self) -> None:
        response, decoder = self._response, self._decoder
        assert response is not None and decoder is not None
        loop = asyncio.get_running_loop()
        timeouts = self._client.timeouts
        wait = _Wait.start(loop, timeouts.idle, "idle", self._deadline, timeouts)
        url = self._request.url.split("?", 1)[0]
        try:
            async with _timeout_at(wait.when):
                chunk = await response.content.readany()
            events = decoder.feed(chunk) if chunk else decoder.close()
        except builtins.TimeoutError as exc:
            await self.aclose()
            raise wait.error(loop, url, self._deadline, started=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            await self.aclose()
            raise TransportError(
                _read_failure(exc), url=url, response_started=True
            ) from exc
        except BaseException:
            await self.aclose()
            raise
        self._pending.extend(events)
        if decoder.finished or not chunk:
            # Events before an end marker or a failure are delivered first;
            # the failure is raised after them.
            self._ended = True
            self._error = decoder.error
            self._release()


# Bounded waits.


class _Wait:
    """When a wait ends, and which phase to blame when it does."""

    def __init__(self, when: float, phase: str, limit: float) -> None:
        self.when = when
        self.phase = phase
        self.limit = limit

    @classmethod
    def start(
        cls,
        loop: asyncio.AbstractEventLoop,
        seconds: float,
        phase: str,
        deadline: float | None,
        timeouts: Timeouts,
    ) -> _Wait:
        when = loop.time() + seconds
        if deadline is not None and deadline < when:
            return cls(deadline, "total", timeouts.total or 0.0)
        limit = getattr(timeouts, phase, seconds)
        return cls(when, phase, limit)

    def error(
        self,
        loop: asyncio.AbstractEventLoop,
        url: str,
        deadline: float | None,
        *,
        started: bool = False,
    ) -> TimeoutError:
        phase, limit = self.phase, self.limit
        if deadline is not None and loop.time() >= deadline:
            phase = "total"
        return TimeoutError(phase, limit, url=url, response_started=started)


async def _connection_ready(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: object,
) -> None:
    state = context.trace_request_ctx
    on_ready = getattr(state, "on_ready", None)
    if on_ready is not None:
        on_ready()


class _FallbackTimeout:
    """The part of :func:`asyncio.timeout_at` used here, for Python 3.10.

    Cancels the current task at ``when`` (which :meth:`reschedule` moves)
    and turns that cancellation into the builtin ``TimeoutError``.
    """

    def __init__(self, when: float) -> None:
        self._when = when
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._fired = False

    async def __aenter__(self) -> _FallbackTimeout:
        self._task = asyncio.current_task()
        self.reschedule(self._when)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._fired and exc_type is asyncio.CancelledError:
            raise builtins.TimeoutError from exc

    def reschedule(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._fired = True
        if self._task is not None:
            self._task.cancel()


if sys.version_info >= (3, 11):
    _timeout_at = asyncio.timeout_at
else:  # pragma: no cover (Python 3.10)
    _timeout_at = _FallbackTimeout


# Helpers.


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _let_go(response: aiohttp.ClientResponse) -> None:
    # A body read to its end leaves the connection clean for the pool;
    # unread bytes would be taken for the next answer, so the connection
    # of a body left unfinished is closed.
    if response.content.at_eof():
        response.release()
    else:
        response.close()


async def _read_small_body(
    response: aiohttp.ClientResponse,
    loop: asyncio.AbstractEventLoop,
    deadline: float | None,
    timeouts: Timeouts,
) -> bytes:
    # The status alone decides what happens next; a body that cannot be
    # read in full only costs the message.
    wait = _Wait.start(loop, timeouts.idle, "idle", deadline, timeouts)
    body = b""
    try:
        async with _timeout_at(wait.when):
            while len(body) < MAX_ERROR_BODY:
                chunk = await response.content.readany()
                if not chunk:
                    break
                body += chunk
    except (builtins.TimeoutError, aiohttp.ClientError, OSError):
        logger.debug("could not read the error body from %s", response.url.path)
    return body[:MAX_ERROR_BODY]


def _parse_failure(message: str) -> str:
    """What aiohttp's parser said was wrong, without the bytes it quotes.

    aiohttp quotes the offending bytes of the answer on the lines after its
    explanation (``Invalid header token:\\n\\n  b'...'``); the explanation
    alone is kept, as the synchronous transport reports it, so that an
    answer never reaches error messages and logs.
    """
    text = str(message).strip().split("\n", 1)[0]
    for quote_start in (": b'", ': b"', ": bytearray("):
        text = text.split(quote_start, 1)[0]
    text = text.rstrip(": ").strip()
    return text[:120] or "the answer is not HTTP/1.1"


def _read_failure(exc: BaseException) -> str:
    """The message of a failure while reading a body that had started."""
    cause = exc.__cause__
    if isinstance(exc, aiohttp.ClientPayloadError):
        if isinstance(cause, (ContentLengthError, TransferEncodingError)):
            return "the connection closed before the end of the answer"
        if isinstance(cause, HttpProcessingError):
            return f"malformed answer: {_parse_failure(cause.message)}"
    return f"connection lost while reading the answer: {_describe(exc)}"


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _session_or_new(session_id: str | None) -> str:
    # Only a missing id starts a new session. An empty one is refused by
    # the request builder like any malformed id: a caller that meant to
    # continue a session must not silently get a fresh one.
    return new_session_id() if session_id is None else session_id
