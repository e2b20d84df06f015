"""Client WebSockets with bounded sending and closes that always end.

Theory of operation. A client that stops reading must not make the server
buffer without bound. Each client connection's transport gets a write
buffer limit (``BRIDGE_SEND_BUFFER_BYTES``); aiohttp's writer is told to
wait for the transport to drain after every frame (``writer_limit=0``), so
once the buffer is over the limit every sender of that connection waits in
:meth:`ClientSocket.send_str`. An invocation waiting there does not read the
agent's stream any further, so TCP flow control slows the agent down as
well: nothing piles up in the bridge beyond the limit plus one frame per
waiting sender.

A client that reads slowly still makes progress and is left alone. One that
makes none for ``BRIDGE_SLOW_CLIENT_TIMEOUT`` seconds is found by the
:class:`SendWatchdog` (one timer for the whole process, not one per frame),
which hands it to its owner to close with 1008.

Batching. Protocol frames go through :meth:`ClientSocket.send_frame`,
which queues them for one sender task per connection. The task starts when
the first frame is queued and runs at the event loop's next turn, so it
never waits for more frames: it sends what is queued by then, as one
``batch`` message when there are several (within the message limit; a
``part`` goes alone), and ends when the queue is empty. An agent that
writes many events at once thus costs one WebSocket message and one
``send`` system call, not one per chunk. The queue holds at most one
message's worth of frames; further senders wait for room, which keeps the
flow control above intact. Frames leave in the order they were queued.

Closing: :meth:`ClientSocket.close` sends what is queued, then the close
frame, and waits for the client's answer for a short while; when the
client does not answer (or does not even read the close frame) the TCP
connection is aborted, so a close never hangs, whatever the client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Final

from aiohttp import web

from ..protocol import DEFAULT_SPLIT_LIMIT, batch_size, encode_batch, utf8_size

__all__ = [
    "CLOSE_TIMEOUT",
    "ClientSocket",
    "SendWatchdog",
    "close_reason",
]

logger = logging.getLogger("agentcore_bridge.server")

#: Seconds a close handshake may take before the connection is aborted.
CLOSE_TIMEOUT: Final = 2.0
# A close frame's reason is at most 123 bytes (RFC 6455 section 5.5: control
# frames carry at most 125 bytes, 2 of which are the code).
_MAX_REASON_BYTES = 123
# A split frame's parts go in messages of their own (a batch never carries
# a part).
_PART_PREFIX = '{"type":"part"'


def close_reason(text: str) -> bytes:
    """``text`` as a close reason: UTF-8, cut to 123 bytes on a character edge."""
    data = text.encode("utf-8")
    if len(data) <= _MAX_REASON_BYTES:
        return data
    return data[:_MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


class ClientSocket:
    """A prepared server-side WebSocket to one client.

    Build it with :meth:`accept`. ``on_stalled`` is called (once) by the
    watchdog when the client has not read anything for the slow-client
    timeout while frames wait for it; the owner then closes the socket.

    A socket carries either protocol frames, through :meth:`send_frame`
    (queued and batched), or raw messages, through :meth:`send_str` and
    :meth:`send_bytes` (sent at once): mixing both on one socket would
    reorder them.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        watchdog: SendWatchdog,
        *,
        message_limit: int = DEFAULT_SPLIT_LIMIT,
    ) -> None:
        self.ws = ws
        self.request = request
        self.on_stalled: Callable[[], None] | None = None
        #: The close code this side sent, once it closed.
        self.sent_close_code: int | None = None
        self._watchdog = watchdog
        self._waiting = 0
        #: Messages sent so far; the watchdog compares it between its rounds.
        self.sent = 0
        self.seen_sent = 0
        self.stalled_since: float | None = None
        self._closing: asyncio.Task[None] | None = None
        # The frame queue: encoded frames with their UTF-8 sizes, the sender
        # task while it runs, and an event for senders waiting for room.
        self._message_limit = message_limit
        self._queue: list[tuple[str, int]] = []
        self._queued_bytes = 0
        self._sender: asyncio.Task[None] | None = None
        self._room: asyncio.Event | None = None
        self._broken = False

    @classmethod
    async def accept(
        cls,
        request: web.Request,
        watchdog: SendWatchdog,
        *,
        protocols: Iterable[str] = (),
        max_message_bytes: int,
        send_buffer_bytes: int,
        heartbeat: float | None,
        compress: bool,
        message_limit: int = DEFAULT_SPLIT_LIMIT,
    ) -> ClientSocket:
        """Complete the upgrade of ``request`` and return the socket.

        ``protocols`` are the subprotocols the server may select (the first
        one the client offered is chosen). A message over
        ``max_message_bytes`` makes aiohttp close the connection with 1009.
        ``heartbeat`` is the ping interval (``None``: no pings); a peer that
        does not answer a ping within half of it is dropped.
        ``message_limit`` is the largest message :meth:`send_frame` builds
        (in UTF-8 bytes).
        """
        ws = web.WebSocketResponse(
            protocols=tuple(protocols),
            max_msg_size=max_message_bytes,
            heartbeat=heartbeat,
            compress=compress,
            autoping=True,
            timeout=CLOSE_TIMEOUT,
            # Wait for the transport to drain after every frame once its
            # buffer is over the limit set below, not every 64 KB.
            writer_limit=0,
        )
        await ws.prepare(request)
        transport = request.transport
        if transport is not None:
            transport.set_write_buffer_limits(high=send_buffer_bytes)
        return cls(ws, request, watchdog, message_limit=message_limit)

    @property
    def closed(self) -> bool:
        """Whether this side closed, or the connection is gone."""
        return self.ws.closed or self._closing is not None

    async def send_frame(self, text: str) -> None:
        """Queue one encoded protocol frame for the client.

        ``text`` must fit the message limit (split larger frames first).
        Returns once the frame is queued, which is at once unless a
        message's worth of frames already waits: then it waits for room
        (the client reads slowly). Queued frames go out in order; see the
        module's docstring for how they are batched.

        Raises :class:`ConnectionError` when the socket is closing or the
        connection is gone; the caller stops sending. A frame queued just
        before the connection fails is lost with it.
        """
        while self._queued_bytes >= self._message_limit and not self._unusable:
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()
        if self._unusable:
            raise ConnectionResetError("the client connection is closing or gone")
        size = utf8_size(text)
        self._queue.append((text, size))
        self._queued_bytes += size
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_queued())

    @property
    def _unusable(self) -> bool:
        return self._broken or self._closing is not None or self.ws.closed

    async def _send_queued(self) -> None:
        # The queue's one consumer: a message at a time, until it is empty.
        try:
            while self._queue:
                message, size = self._next_message()
                self._begin()
                try:
                    await self.ws.send_str(message)
                finally:
                    self._end()
                self._queued_bytes -= size
                if self._queued_bytes < self._message_limit:
                    self._wake_waiting()
        except (ConnectionError, RuntimeError) as exc:
            # Closing or gone: what is queued can no longer arrive.
            logger.debug("sending to a client failed: %s", type(exc).__name__)
            self._drop_queue()
        except asyncio.CancelledError:
            # An aborted connection, or a close that could not wait longer.
            self._drop_queue()
            raise
        except Exception:
            logger.exception("sending to a client failed inside the bridge")
            self._drop_queue()
        finally:
            self._sender = None

    def _next_message(self) -> tuple[str, int]:
        """Take the next message off the queue: one frame, or a batch of several."""
        queue = self._queue
        first, first_size = queue[0]
        count, total = 1, first_size
        if not first.startswith(_PART_PREFIX):
            limit = self._message_limit
            while count < len(queue):
                text, size = queue[count]
                if text.startswith(_PART_PREFIX) or (
                    batch_size(total + size, count + 1) > limit
                ):
                    break
                count += 1
                total += size
        if count == 1:
            del queue[0]
            return first, first_size
        frames = [text for text, _ in queue[:count]]
        del queue[:count]
        return encode_batch(frames), total

    def _drop_queue(self) -> None:
        self._broken = True
        self._queue.clear()
        self._queued_bytes = 0
        self._wake_waiting()

    def _wake_waiting(self) -> None:
        room, self._room = self._room, None
        if room is not None:
            room.set()

    async def _flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the queue to be sent; drop it after."""
        sender = self._sender
        if sender is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(sender), max(timeout, 0.0))
        except asyncio.TimeoutError:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        except asyncio.CancelledError:
            # The sender was cancelled (an abort) unless this task was.
            if not sender.done():
                raise

    async def send_str(self, text: str) -> None:
        """Send one text frame; wait while the client's buffer is full.

        Raises :class:`ConnectionError` (aiohttp's ``ClientConnectionResetError``)
        when the connection is closing or gone; the caller stops sending.
        """
        self._begin()
        try:
            await self.ws.send_str(text)
        finally:
            self._end()

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary frame; see :meth:`send_str`."""
        self._begin()
        try:
            await self.ws.send_bytes(data)
        finally:
            self._end()

    def _begin(self) -> None:
        self._waiting += 1
        if self._waiting == 1:
            self._watchdog.watch(self)

    def _end(self) -> None:
        self._waiting -= 1
        self.sent += 1
        if self._waiting == 0:
            self._watchdog.unwatch(self)

    @property
    def waiting(self) -> int:
        """How many senders are waiting for the client to read."""
        return self._waiting

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for this client: queued frames plus the write buffer.

        The quantity the backpressure bounds (see the module's docstring).
        """
        transport = self.request.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return self._queued_bytes + buffered

    async def close(
        self, code: int, reason: str, *, timeout: float = CLOSE_TIMEOUT
    ) -> None:
        """Close with ``code`` and ``reason``; return once the connection is closed.

        Idempotent: a second call waits for the first close. Never raises
        and never waits more than about ``timeout`` seconds: a peer that has
        not answered the close frame by then is dropped.
        """
        closing = self.start_close(code, reason, timeout=timeout)
        # Shielded: the caller being cancelled must not leave the socket
        # half closed.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(closing)

    def start_close(
        self, code: int, reason: str, *, timeout: float = CLOSE_TIMEOUT
    ) -> asyncio.Task[None]:
        """Start closing (see :meth:`close`) without waiting; return the task."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(code, reason, timeout))
        return self._closing

    async def _close(self, code: int, reason: str, timeout: float) -> None:
        # The frames queued before the close go first (a terminal frame,
        # say), within the same time limit as the handshake.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._flush(timeout)
        self._watchdog.unwatch(self)
        if not self.ws.closed:
            self.sent_close_code = code
            try:
                await asyncio.wait_for(
                    self.ws.close(code=code, message=close_reason(reason)),
                    max(deadline - loop.time(), 0.0),
                )
            except (asyncio.TimeoutError, ConnectionError, RuntimeError) as exc:
                logger.debug("close handshake did not finish: %s", type(exc).__name__)
        # A client that does not read keeps its unread bytes in our buffer
        # and would hold a gracefully closed transport open forever.
        transport = self.request.transport
        if transport is not None and (
            not transport.is_closing() or transport.get_write_buffer_size()
        ):
            transport.abort()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame."""
        self._watchdog.unwatch(self)
        self._drop_queue()
        if self._sender is not None:
            self._sender.cancel()
        transport = self.request.transport
        if transport is not None:
            transport.abort()


class SendWatchdog:
    """Finds client sockets that stopped reading while frames wait for them.

    One periodic check for the whole server: a socket with waiting senders
    that sent no frame between two checks is stalled from the first of
    them; after ``timeout`` seconds its ``on_stalled`` callback runs. A
    socket enters the watch list only while a send waits, so the check costs
    nothing for clients that keep up.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.interval = min(1.0, timeout / 4)
        self._watched: set[ClientSocket] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, socket: ClientSocket) -> None:
        socket.stalled_since = None
        socket.seen_sent = socket.sent
        self._watched.add(socket)

    def unwatch(self, socket: ClientSocket) -> None:
        self._watched.discard(socket)

    def start(self) -> None:
        """Start checking, in the running event loop."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop checking."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            self.check(loop.time())

    def check(self, now: float) -> None:
        """One round: report every socket stalled for ``timeout`` seconds."""
        for socket in list(self._watched):
            if socket.sent != socket.seen_sent:
                socket.seen_sent = socket.sent
                socket.stalled_since = now
            elif socket.stalled_since is None:
                socket.stalled_since = now
            elif now - socket.stalled_since >= self.timeout:
                self._watched.discard(socket)
                callback = socket.on_stalled
                if callback is not None:
                    callback()
