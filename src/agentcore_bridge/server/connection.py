"""One client connection speaking protocol v1 (``/ws``).

A :class:`BridgeConnection` reads the client's frames in one loop and runs
each accepted ``invoke`` as its own task, so several invocations stream at
once and a ``cancel`` or ``ping`` is answered while they do. Every frame to
the client is queued on the connection's :class:`~.sockets.ClientSocket`,
which sends the frames that wait together as one ``batch`` message, in
order, and whose bounded queue and buffer make a slow client pause the
agent streams it is fed from (see ``sockets.py``).

The protocol's promise, that every accepted ``invoke`` ends in exactly one
``end`` or ``error``, rests on :class:`~agentcore_bridge.invocation.InvocationFrames`
and on one rule here: an invocation is stopped by recording *why*
(``cancelled``, ``going_away``, ``disconnected``, ``slow_client``) before
its task is cancelled, and the task turns that reason into its one
terminal frame (none when the client is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final

from aiohttp import WSMsgType

from ..agentcore import failure_summary
from ..exceptions import (
    BridgeError,
    CredentialsError,
    FrameError,
    SessionTokenError,
)
from ..invocation import InvocationFrames, error_for
from ..protocol import (
    DUPLICATE_ID,
    GOING_AWAY,
    INTERNAL,
    RATE_LIMITED,
    TOO_MANY_INVOCATIONS,
    Cancel,
    Invoke,
    encode_error,
    encode_frame_error,
    encode_pong,
    encode_session,
    parse_client_frame,
    split_frame,
)
from ..sessions import session_fingerprint

if TYPE_CHECKING:
    from .app import BridgeServer
    from .sockets import ClientSocket

__all__ = ["BridgeConnection", "TokenBucket"]

logger = logging.getLogger("agentcore_bridge.server")

#: Close code and reason when the server shuts down (RFC 6455: 1001, the
#: endpoint is going away).
GOING_AWAY_CLOSE: Final = (1001, "the server is shutting down; reconnect")
#: Close code and reason for a client that stopped reading (1008, policy).
SLOW_CLIENT_CLOSE: Final = (1008, "the client did not read its messages in time")

# Why an invocation was stopped before its agent finished.
_CANCELLED = "cancelled"
_GOING_AWAY = "going_away"
_DISCONNECTED = "disconnected"
_SLOW_CLIENT = "slow_client"


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, at most ``capacity`` saved.

    Starts full. Pure: the caller passes the clock to :meth:`take`.
    """

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.stamp = now

    def take(self, now: float) -> bool:
        """Take one token at time ``now``; return whether there was one."""
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


class _ClientGoneError(Exception):
    """The client's connection closed while a frame was being sent."""


class _Invocation:
    """One running invocation: its frames, its task and why it was stopped."""

    __slots__ = ("frames", "id", "session_id", "started", "stop_reason", "task")

    def __init__(self, id: str, session_id: str) -> None:
        self.id = id
        self.session_id = session_id
        self.frames = InvocationFrames(id)
        self.task: asyncio.Task[None] | None = None
        self.started = False
        self.stop_reason: str | None = None


class BridgeConnection:
    """Protocol v1 on one accepted client WebSocket.

    Made by the server once the upgrade is authenticated; :meth:`run`
    serves the connection until it closes. ``session_id`` is the AgentCore
    session the connection starts in (a new one, or the one its ``session``
    query parameter resumed).
    """

    def __init__(
        self,
        server: BridgeServer,
        socket: ClientSocket,
        *,
        connection_id: str,
        principal: str | None,
        session_id: str,
    ) -> None:
        self.server = server
        self.socket = socket
        self.id = connection_id
        self.principal = principal
        self.session_id = session_id
        settings = server.settings
        self._max_frame_bytes = settings.max_frame_bytes
        self._max_invocations = settings.max_invocations
        self._message_limit = settings.message_limit_bytes
        # A text of at most limit/4 characters is at most limit UTF-8 bytes.
        self._split_above = settings.message_limit_bytes // 4
        self._bucket = TokenBucket(
            settings.invocation_rate,
            settings.invocation_burst,
            time.monotonic(),
        )
        self._running: dict[str, _Invocation] = {}
        self._sessions_used = {session_id}
        self._token_issued = 0.0
        self._draining = False
        self._background: set[asyncio.Task[None]] = set()
        self.invocations_total = 0
        socket.on_stalled = self._on_stalled

    @property
    def sessions_in_use(self) -> set[str]:
        """The connection's session and those its running invocations use."""
        return {self.session_id} | {r.session_id for r in self._running.values()}

    @property
    def running(self) -> int:
        """How many invocations are running on this connection."""
        return len(self._running)

    # Serving.

    async def run(self, resume_error: SessionTokenError | None = None) -> None:
        """Serve the connection until it closes; never raises.

        ``resume_error`` is the reason the ``session`` query parameter was
        refused, if it was: the client hears it before its new session's
        token.
        """
        try:
            if resume_error is not None:
                await self._send(
                    encode_error(
                        None,
                        resume_error.code,
                        f"{resume_error.message}; a new session was started",
                    )
                )
            await self._send_session()
            self._warm_up()
            if self.server.draining:
                self.drain()
            await self._read_frames()
        except _ClientGoneError:
            pass
        except Exception:
            logger.exception("connection %s: unexpected failure", self.id)
            await self.socket.close(1011, "internal error")
        finally:
            await self._tear_down()

    async def _read_frames(self) -> None:
        ws = self.socket.ws
        while True:
            message = await ws.receive()
            kind = message.type
            if kind == WSMsgType.TEXT:
                await self._on_text(message.data)
            elif kind == WSMsgType.BINARY:
                try:
                    parse_client_frame(message.data, binary=True)
                except FrameError as exc:
                    await self._refuse(exc)
            elif kind == WSMsgType.ERROR:
                code = getattr(message.data, "code", None)
                if code == 1009:
                    logger.warning(
                        "connection %s: closed with 1009: a message over %d bytes",
                        self.id,
                        self.server.close_frame_bytes,
                    )
                else:
                    logger.info(
                        "connection %s: connection failed: %s",
                        self.id,
                        type(message.data).__name__,
                    )
                return
            else:
                # CLOSE, CLOSING or CLOSED: aiohttp answered the close.
                return

    async def _on_text(self, text: str) -> None:
        try:
            frame = parse_client_frame(text, max_frame_bytes=self._max_frame_bytes)
        except FrameError as exc:
            await self._refuse(exc)
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "connection %s: received %s %s (%d characters)",
                self.id,
                frame.type,
                frame.id,
                len(text),
            )
        if isinstance(frame, Invoke):
            await self._on_invoke(frame)
        elif isinstance(frame, Cancel):
            record = self._running.get(frame.id)
            if record is not None:
                self._stop(record, _CANCELLED)
        else:
            await self._send(encode_pong(frame.id))

    async def _refuse(self, exc: FrameError) -> None:
        logger.info(
            "connection %s: refused a frame (id %s): %s",
            self.id,
            exc.id,
            exc.code,
        )
        await self._send(encode_frame_error(exc))

    async def _on_invoke(self, frame: Invoke) -> None:
        if self._draining:
            await self._refuse(
                FrameError(
                    GOING_AWAY,
                    "the bridge is shutting down: reconnect and send the "
                    "invocation again",
                    id=frame.id,
                )
            )
            return
        if frame.id in self._running:
            await self._refuse(
                FrameError(
                    DUPLICATE_ID,
                    "an invocation with this id is still running",
                    id=frame.id,
                )
            )
            return
        if len(self._running) >= self._max_invocations:
            await self._refuse(
                FrameError(
                    TOO_MANY_INVOCATIONS,
                    f"this connection already runs {self._max_invocations} "
                    "invocations; send it again when one has ended",
                    id=frame.id,
                )
            )
            return
        if not self._bucket.take(time.monotonic()):
            await self._refuse(
                FrameError(
                    RATE_LIMITED,
                    "invocations are arriving faster than this connection may "
                    "start them; wait a moment",
                    id=frame.id,
                )
            )
            return

        session_id = self.session_id
        if frame.session is not None:
            try:
                session_id = self.server.tokens.verify(
                    frame.session, self.principal, time.time()
                )
            except SessionTokenError as exc:
                await self._refuse(
                    SessionTokenError(exc.reason, exc.message, id=frame.id)
                )
                return
            if session_id != self.session_id:
                # The client resumed another of its sessions (after a
                # reconnect): it becomes this connection's session.
                logger.info(
                    "connection %s: resumed session %s",
                    self.id,
                    session_fingerprint(session_id),
                )
                self.session_id = session_id
                self._sessions_used.add(session_id)
                await self._send_session()

        record = _Invocation(frame.id, session_id)
        self._running[frame.id] = record
        self.invocations_total += 1
        self.server.invocation_started()
        record.task = asyncio.ensure_future(self._invoke(record, frame.payload))

    # One invocation.

    async def _invoke(self, record: _Invocation, payload: object) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        record.started = True
        outcome = "end"
        logger.info(
            "connection %s: invocation %s started in session %s",
            self.id,
            record.id,
            session_fingerprint(record.session_id),
        )
        try:
            terminal: str | None
            try:
                if record.stop_reason is not None:
                    # Stopped before its task ran (a cancel in the same read).
                    raise asyncio.CancelledError
                client = self.server.client
                async with client.invoke(payload, session_id=record.session_id) as s:
                    async for event in s:
                        chunk = record.frames.chunk(event.data)
                        if chunk is not None:
                            await self._send(chunk)
                terminal = record.frames.end()
            except asyncio.CancelledError:
                reason = record.stop_reason
                if reason is None:
                    raise
                _uncancel()
                outcome = reason
                terminal = self._terminal_for(record, reason)
            except _ClientGoneError:
                outcome = _DISCONNECTED
                terminal = None
            except Exception as exc:  # noqa: BLE001 - every failure becomes its error frame
                code, _, _ = error_for(exc)
                outcome = code
                terminal = record.frames.fail(exc)
                self._log_failure(record, code, exc)
            if terminal is not None and not self.socket.closed:
                await self._send(terminal)
        except (_ClientGoneError, asyncio.CancelledError):
            # The connection is going: nothing more can reach the client.
            outcome = outcome if outcome != "end" else _DISCONNECTED
        finally:
            self._running.pop(record.id, None)
            self.server.invocation_ended()
            logger.info(
                "connection %s: invocation %s ended (%s) after %d chunks in %.3f s",
                self.id,
                record.id,
                outcome,
                record.frames.seq,
                loop.time() - started,
            )
            self._after_invocation()

    def _terminal_for(self, record: _Invocation, reason: str) -> str | None:
        if reason == _CANCELLED:
            return record.frames.cancelled()
        if reason == _GOING_AWAY:
            return record.frames.error(
                GOING_AWAY,
                "the bridge is shutting down: reconnect and send the invocation again",
            )
        # Disconnected or too slow: the client will not read a terminal frame.
        return None

    def _log_failure(self, record: _Invocation, code: str, exc: Exception) -> None:
        if code == INTERNAL and not isinstance(exc, BridgeError):
            logger.error(
                "connection %s: invocation %s failed inside the bridge",
                self.id,
                record.id,
                exc_info=exc,
            )
        elif isinstance(exc, CredentialsError):
            logger.warning(
                "connection %s: invocation %s: no AWS credentials: %s",
                self.id,
                record.id,
                exc,
            )
        else:
            logger.info(
                "connection %s: invocation %s failed: %s",
                self.id,
                record.id,
                failure_summary(exc),
            )

    def _after_invocation(self) -> None:
        if self._draining and not self._running:
            self._close_soon(*GOING_AWAY_CLOSE)
            return
        # Tokens are refreshed as the session is used, so one that is in
        # use never expires under the client.
        if (
            not self.socket.closed
            and time.monotonic() - self._token_issued > self.server.tokens.ttl / 2
        ):
            self._spawn(self._refresh_session())

    async def _refresh_session(self) -> None:
        with contextlib.suppress(_ClientGoneError):
            await self._send_session()

    def _stop(self, record: _Invocation, reason: str, *, force: bool = False) -> None:
        """Stop an invocation for ``reason``; its task sends the terminal frame.

        Without ``force``, an invocation whose terminal frame is already
        produced is left to deliver it.
        """
        if record.stop_reason is not None:
            return
        if record.frames.finished and not force:
            return
        record.stop_reason = reason
        if record.started and record.task is not None:
            record.task.cancel()

    # Sending.

    async def _send(self, text: str) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            # Encoders write the type first: {"type":"chunk",... The rest
            # may be agent output, which stays out of the logs.
            kind = text[9 : text.find('"', 9)]
            logger.debug(
                "connection %s: sending %s (%d characters)", self.id, kind, len(text)
            )
        parts = (
            split_frame(text, self._message_limit)
            if len(text) > self._split_above
            else (text,)
        )
        try:
            for part in parts:
                await self.socket.send_frame(part)
        except ConnectionError as exc:
            raise _ClientGoneError from exc

    async def _send_session(self) -> None:
        token, expires = self.server.tokens.issue(
            self.session_id, self.principal, time.time()
        )
        self._token_issued = time.monotonic()
        await self._send(encode_session(token, expires))

    # Warm-up, shutdown, slow clients, the end.

    def _warm_up(self) -> None:
        payload = self.server.settings.warmup_payload
        if payload is not None:
            self._spawn(self._run_warm_up(payload, self.session_id))

    async def _run_warm_up(self, payload: object, session_id: str) -> None:
        try:
            async with self.server.client.invoke(payload, session_id=session_id) as s:
                async for _ in s:
                    pass
            logger.info(
                "connection %s: session %s warmed up",
                self.id,
                session_fingerprint(session_id),
            )
        except Exception as exc:  # noqa: BLE001 - a failed warm-up only costs time
            logger.warning(
                "connection %s: warm-up of session %s failed: %s",
                self.id,
                session_fingerprint(session_id),
                failure_summary(exc),
            )

    def drain(self) -> None:
        """The server is shutting down: refuse new invocations, close when idle."""
        self._draining = True
        if not self._running:
            self._close_soon(*GOING_AWAY_CLOSE)

    def going_away(self) -> None:
        """The shutdown deadline passed: end running invocations, then close 1001."""
        self._draining = True
        for record in list(self._running.values()):
            self._stop(record, _GOING_AWAY)
        if not self._running:
            self._close_soon(*GOING_AWAY_CLOSE)

    def _on_stalled(self) -> None:
        logger.warning(
            "connection %s: the client read nothing for %.0f s while frames "
            "waited; closing it with 1008 and stopping its %d invocations",
            self.id,
            self.server.settings.slow_client_timeout,
            len(self._running),
        )
        for record in list(self._running.values()):
            self._stop(record, _SLOW_CLIENT, force=True)
        self._close_soon(*SLOW_CLIENT_CLOSE)

    def _close_soon(self, code: int, reason: str) -> None:
        if not self.socket.closed:
            self.socket.start_close(code, reason)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _tear_down(self) -> None:
        for record in list(self._running.values()):
            self._stop(record, _DISCONNECTED, force=True)
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.socket.close(1000, "")
        if self.server.settings.stop_session_on_disconnect:
            self.server.stop_sessions(self._sessions_used, self)


def _uncancel() -> None:
    # Python 3.11+ counts cancellation requests per task; an invocation that
    # handled its stop and goes on sending must not look cancelled to the
    # timeouts it meets later.
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()
