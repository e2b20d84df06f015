"""Forwarding to the agent container: streamed HTTP answers and WebSockets.

The service hands a call to the agent's ``POST /invocations`` or ``/ws``
with the session id and tracing headers, and passes the agent's bytes and
frames back unchanged as they come. Faults that act in the middle of an
answer (a reset after some bytes, events or frames; a WebSocket closed
with a chosen code) are played here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from aiohttp import WSMsgType, web

from ..agentcore import SESSION_ID_HEADER, USER_ID_HEADER
from .emulation import (
    REQUEST_ID_HEADER,
    AgentCoreEmulator,
    Call,
    EmulatedError,
    Fault,
    Session,
    Stream,
)

__all__ = ["abort_connection", "forward_invocation", "forward_websocket"]

logger = logging.getLogger("agentcore_bridge.local")

#: The request id AgentCore hands to the agent container.
AGENT_REQUEST_ID_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"
# Headers the service passes on to the container besides the session id.
_FORWARDED_HEADERS = (
    USER_ID_HEADER,
    "X-Amzn-Trace-Id",
    "traceparent",
    "tracestate",
    "baggage",
)
_FORWARDED_PREFIXES = ("mcp-", "x-amzn-bedrock-agentcore-runtime-custom-")
# Trace headers the service echoes in its answer (service model, output shape).
_ECHOED_HEADERS = ("X-Amzn-Trace-Id", "traceparent", "tracestate", "baggage")


def _agent_headers(request: web.Request, call: Call) -> dict[str, str]:
    assert call.session_id is not None
    headers = {
        SESSION_ID_HEADER: call.session_id,
        AGENT_REQUEST_ID_HEADER: call.request_id,
    }
    for name in _FORWARDED_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    for name, value in request.headers.items():
        if name.lower().startswith(_FORWARDED_PREFIXES):
            headers[name] = value
    return headers


def _answer_headers(request: web.Request, call: Call) -> dict[str, str]:
    assert call.session_id is not None
    headers = {SESSION_ID_HEADER: call.session_id, REQUEST_ID_HEADER: call.request_id}
    for name in _ECHOED_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    return headers


async def forward_invocation(
    emulator: AgentCoreEmulator,
    request: web.Request,
    call: Call,
    *,
    session: Session,
    body: bytes,
    cut: Fault | None,
) -> web.StreamResponse:
    """Send the invocation to the agent and stream its answer back.

    A 2xx answer streams through as it arrives, with the agent's status and
    ``Content-Type``; any other status, or no answer at all, raises the
    service's 424 ``RuntimeClientError``. If the agent breaks its stream,
    the client's connection is aborted too. ``cut`` is a ``reset`` fault
    to play on the body. The caller returns the response as it is.
    """
    headers = _agent_headers(request, call)
    headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
    if "Accept" in request.headers:
        headers["Accept"] = request.headers["Accept"]
    http = await emulator.http()
    url = emulator.config.agent_url.rstrip("/") + "/invocations"
    try:
        agent_response = await http.post(url, data=body, headers=headers)
    except (aiohttp.ClientError, OSError) as exc:
        logger.info("invoke %s: agent unreachable: %s", call.request_id, exc)
        raise EmulatedError(
            424,
            "RuntimeClientError",
            "The agent did not answer on its invocation endpoint.",
        ) from None

    stream = Stream(abort=lambda: _abort_stream(request, agent_response))
    session.streams.add(stream)
    try:
        if not 200 <= agent_response.status < 300:
            raise EmulatedError(
                424,
                "RuntimeClientError",
                f"Received error ({agent_response.status}) from the agent runtime.",
            )
        response = web.StreamResponse(status=agent_response.status)
        response.headers.update(_answer_headers(request, call))
        for name in ("Content-Type", "Content-Encoding"):
            if name in agent_response.headers:
                response.headers[name] = agent_response.headers[name]
        await response.prepare(request)
        emulator.record(call)

        cutter = _Cutter(cut) if cut is not None and cut.kind == "reset" else None
        cut_now = cutter is not None and cutter.cut_at_once()
        while not cut_now:
            try:
                chunk = await agent_response.content.readany()
            except aiohttp.ClientError:
                # The agent broke its stream: the service cuts the client's too.
                call.outcome = "agent_reset"
                await _abort_stream(request, agent_response)
                return response
            if not chunk:
                break
            if cutter is not None:
                chunk, cut_now = cutter.feed(chunk)
            try:
                await response.write(chunk)
            except ConnectionError:
                call.outcome = "client_gone"
                return response
        if cut_now:
            call.outcome = "reset"
            emulator.record(call)
            await _abort_stream(request, agent_response)
            return response
        await response.write_eof()
        return response
    finally:
        session.streams.discard(stream)
        session.last_active = emulator.now()
        agent_response.release()


class _Cutter:
    """Lets through the first ``after_bytes`` bytes or ``after_events`` SSE events."""

    def __init__(self, fault: Fault) -> None:
        self.bytes_left = fault.after_bytes
        self.events_left = fault.after_events
        if self.bytes_left is None and self.events_left is None:
            self.bytes_left = 0
        self._previous = b""

    def cut_at_once(self) -> bool:
        """Whether the fault cuts before the first byte of the body."""
        return self.bytes_left == 0 or self.events_left == 0

    def feed(self, chunk: bytes) -> tuple[bytes, bool]:
        """The part of ``chunk`` to send, and whether to cut after it."""
        if self.bytes_left is not None:
            if len(chunk) >= self.bytes_left:
                return chunk[: self.bytes_left], True
            self.bytes_left -= len(chunk)
            return chunk, False
        assert self.events_left is not None
        # An SSE event ends at a blank line: "\n\n" (or "\r\n\r\n", whose
        # last two bytes are "\n\n" once the "\r"s are skipped).
        for index, byte in enumerate(chunk):
            if byte == 0x0D:
                continue
            if byte == 0x0A and self._previous == b"\n":
                self.events_left -= 1
                self._previous = b""
                if self.events_left == 0:
                    return chunk[: index + 1], True
                continue
            self._previous = bytes((byte,))
        return chunk, False


async def _abort_stream(
    request: web.Request, agent_response: aiohttp.ClientResponse
) -> None:
    agent_response.close()
    transport = request.transport
    if transport is not None:
        transport.abort()


def abort_connection(request: web.Request) -> None:
    """Abort the client's connection: whatever the handler returns is not sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()


# The WebSocket pass-through.

# Close codes that must never appear in a close frame (RFC 6455 section
# 7.4.1): they only report what happened to the connection.
_UNSENDABLE_CLOSE_CODES = frozenset({1005, 1006, 1015})
# What a pump returns when a reset fault wants the connection aborted.
_ABORT = -1


async def forward_websocket(
    emulator: AgentCoreEmulator,
    request: web.Request,
    call: Call,
    *,
    session: Session,
    cut: Fault | None,
) -> web.StreamResponse:
    """Open the agent's ``/ws``, then accept the client and relay frames.

    The agent is connected first, so that an agent without ``/ws`` gets the
    client a 424 instead of an upgrade. Text and binary frames go both ways
    unchanged; when one side closes, the other is closed with the same
    code and reason (or 1011/1001 when the code cannot be sent on). ``cut``
    is a ``reset`` or ``close`` fault to play on the frames to the client.
    """
    http = await emulator.http()
    agent_url = emulator.config.agent_url.rstrip("/") + "/ws"
    protocols = [
        p.strip()
        for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        if p.strip()
    ]
    size = emulator.config.ws_max_message_size
    try:
        agent_ws = await http.ws_connect(
            agent_url,
            headers=_agent_headers(request, call),
            protocols=protocols,
            max_msg_size=size,
            autoping=True,
        )
    except (aiohttp.ClientError, OSError) as exc:
        logger.info("ws %s: agent refused the WebSocket: %s", call.request_id, exc)
        raise EmulatedError(
            424,
            "RuntimeClientError",
            "The agent did not accept a WebSocket on /ws.",
        ) from None

    client_ws = web.WebSocketResponse(
        protocols=[agent_ws.protocol] if agent_ws.protocol else (),
        max_msg_size=size,
        autoping=True,
    )
    client_ws.headers.update(_answer_headers(request, call))

    async def abort() -> None:
        # The session's microVM is gone: both sides go away.
        await _close_quietly(client_ws, 1001, b"session ended")
        await _close_quietly(agent_ws, 1001, b"session ended")

    stream = Stream(abort=abort)
    session.streams.add(stream)
    try:
        await client_ws.prepare(request)
        call.status = 101
        emulator.record(call)
        to_agent = asyncio.ensure_future(_pump(client_ws, agent_ws, None))
        to_client = asyncio.ensure_future(_pump(agent_ws, client_ws, cut))
        done, _ = await asyncio.wait(
            {to_agent, to_client}, return_when=asyncio.FIRST_COMPLETED
        )
        if to_client in done:
            code, reason = to_client.result()
            if code == _ABORT:
                call.outcome = "reset"
                emulator.record(call)
                abort_connection(request)
                to_agent.cancel()
                await _close_quietly(agent_ws, 1001, b"")
                return client_ws
            await _close_quietly(client_ws, _sendable(code, 1011), reason)
            await _close_quietly(agent_ws, 1001, b"")
        else:
            code, reason = to_agent.result()
            await _close_quietly(agent_ws, _sendable(code, 1001), reason)
            await _close_quietly(client_ws, 1000, b"")
        for task in (to_agent, to_client):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return client_ws
    finally:
        session.streams.discard(stream)
        session.last_active = emulator.now()
        await _close_quietly(agent_ws, 1001, b"")


def _sendable(code: int | None, fallback: int) -> int:
    if code is None or code in _UNSENDABLE_CLOSE_CODES or code < 1000:
        return fallback
    return code


async def _close_quietly(
    ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    code: int,
    reason: bytes,
) -> None:
    if ws.closed:
        return
    with contextlib.suppress(Exception):
        await ws.close(code=code, message=reason)


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    cut: Fault | None,
) -> tuple[int | None, bytes]:
    """Copy frames until ``source`` closes; return its close code and reason.

    With a ``cut`` fault, stop after its ``after_frames`` frames: a
    ``close`` fault returns its own code, a ``reset`` returns ``_ABORT``.
    """
    frames_left = None if cut is None else (cut.after_frames or 0)
    try:
        return await _copy_frames(source, sink, cut, frames_left)
    except (ConnectionError, aiohttp.ClientError, RuntimeError):
        # The sink broke while sending: report an abnormal end.
        return None, b""


async def _copy_frames(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    cut: Fault | None,
    frames_left: int | None,
) -> tuple[int | None, bytes]:
    while True:
        if frames_left == 0:
            assert cut is not None
            if cut.kind == "reset":
                return _ABORT, b""
            return cut.code, cut.reason.encode()
        message = await source.receive()
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is WSMsgType.CLOSE:
            reason = message.extra.encode() if isinstance(message.extra, str) else b""
            return message.data, reason
        elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return source.close_code, b""
        else:
            continue
        if frames_left is not None:
            frames_left -= 1
