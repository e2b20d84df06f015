"""Posting one invocation's frames to a client, coalesced, on a thread of its own.

API Gateway bills every ``@connections`` post as a message (in 32 KB
steps), and an agent streams many small chunks: one post per chunk makes a
long answer cost thousands of messages. The :class:`Outbox` therefore
gathers frames and posts them as one ``batch`` message:

- a frame that arrives when nothing was posted for a whole window goes out
  at once, so the first chunk of an answer is never delayed;
- frames arriving sooner are gathered and posted together once the window
  since the last post has passed, or earlier when the next frame would
  take the batch over ``batch_bytes`` (the 32 KB metering step) or when a
  terminal frame (``end``, ``error``) arrives, since nothing follows it;
- *lazy* frames (the ``session`` frame) never cause a post of their own:
  they go out with the next one;
- with a window of 0 every frame is posted alone, as it comes.

No message exceeds ``limit``: a batch is posted before it would, and a
frame larger than the limit is split into ``part`` frames
(:func:`~agentcore_bridge.protocol.split_frame`) posted one by one.

Posting runs on a thread of its own while the caller's thread reads the
agent's stream, so that a slow post never stalls the reading and a window
can end while the reader is blocked. The same thread watches the client:
when nothing was posted for ``check_interval`` seconds it asks
``@connections`` whether the client is still there. Either way, a client
found gone (410), or a post that fails for good, is reported once through
``on_stop``, which must make the reader stop (the Lambda adapter cuts the
AgentCore stream); later frames are dropped.

A ``deadline`` bounds the time spent on everything but the terminal frame,
which Lambda's timeout would otherwise take from it when ``@connections``
is slow or throttled: each post of other frames must be over by then
(retries included), and frames still unposted at the deadline are dropped
and counted in :attr:`Outbox.dropped`, the terminal frame still posted.
Once :meth:`Outbox.expire` says the invocation ran out of time, a failed
post no longer ends posting either: its frames are dropped the same way.
Dropping never leaves a gap: after one dropped frame, every later frame
but the terminal one is dropped too, so the client sees an unbroken run of
``seq`` ending in the terminal frame.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from ..exceptions import BridgeError, GoneError
from ..protocol import batch_size, encode_batch, split_frame, utf8_size

__all__ = ["Outbox"]

logger = logging.getLogger("agentcore_bridge.lambda")


class _StopError(Exception):
    """The client is gone or cannot be posted to: the thread ends."""


class Outbox:
    """Coalesces and posts frames for one invocation; see the module docstring.

    ``post`` sends one message (raising a
    :class:`~agentcore_bridge.exceptions.BridgeError` when it fails) and
    must be over by its second argument, a ``clock`` time (``None``: no
    bound of the outbox's own). Frames put with ``flush`` are terminal;
    others are not posted after ``deadline`` (a ``clock`` time).
    ``check`` raises :class:`~agentcore_bridge.exceptions.GoneError` when
    the client is gone (``None``: never checked). ``on_stop`` is called on
    the outbox's thread with the error that ended posting. Call
    :meth:`start`, then :meth:`put` for each frame, then :meth:`close`.
    """

    def __init__(
        self,
        post: Callable[[str, float | None], None],
        *,
        limit: int,
        window: float,
        batch_bytes: int,
        on_stop: Callable[[BaseException], None],
        check: Callable[[], None] | None = None,
        check_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        deadline: float | None = None,
    ) -> None:
        self._post_message = post
        self._deadline = deadline
        self._expired = False
        self._check = check if check_interval > 0 else None
        self._check_interval = check_interval
        self._limit = limit
        self._window = window
        self._batch_bytes = min(batch_bytes, limit)
        self._on_stop = on_stop
        self._clock = clock

        self._queue: deque[tuple[str, bool, bool]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(
            target=self._run, name="agentcore-bridge-outbox", daemon=True
        )

        # Owned by the outbox's thread.
        self._buffer: list[str] = []
        self._buffer_bytes = 0
        self._eager = False  # the buffer holds a frame that asks to be posted
        self._force = False  # ... at once (a terminal frame)
        self._last_post = -math.inf
        self._last_activity = clock()
        self._dropping = False  # a frame was dropped: so is every later one

        #: Messages posted, and frames they carried (parts count as frames).
        self.messages = 0
        self.frames = 0
        #: Frames dropped for time (see the module docstring).
        self.dropped = 0
        #: What ended posting early (GoneError, another BridgeError), if anything.
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the posting thread."""
        self._thread.start()

    def put(self, frame: str, *, lazy: bool = False, flush: bool = False) -> None:
        """Queue ``frame``; ``lazy`` waits for another post, ``flush`` posts now."""
        with self._cond:
            if self.error is not None or self._closing:
                return
            self._queue.append((frame, lazy, flush))
            self._cond.notify()

    def expire(self) -> None:
        """Say the invocation ran out of time: failed posts now drop, not stop.

        Call it from any thread when the invocation is stopped for time,
        before its terminal frame is put.
        """
        self._expired = True

    def close(self, timeout: float | None = None) -> None:
        """Post what is queued, then stop; wait for the thread up to ``timeout``."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # The posting thread.

    def _run(self) -> None:
        try:
            while True:
                items, closing = self._take()
                for frame, lazy, flush in items:
                    self._add(frame, lazy, flush)
                if self._buffer and self._due(closing):
                    self._post_buffer()
                if closing:
                    return
                self._maybe_check()
        except _StopError:
            return
        except BaseException as exc:  # a bug: report it as a stop, never hang
            logger.exception("the outbox thread failed")
            self._stop(exc)

    def _take(self) -> tuple[list[tuple[str, bool, bool]], bool]:
        with self._cond:
            while not self._queue and not self._closing:
                wait = self._wait_time()
                if wait is not None and wait <= 0:
                    break
                self._cond.wait(wait)
            items = list(self._queue)
            self._queue.clear()
            return items, self._closing

    def _wait_time(self) -> float | None:
        deadlines = []
        if self._eager:
            deadlines.append(self._last_post + self._window)
        if self._check is not None:
            deadlines.append(self._last_activity + self._check_interval)
        if not deadlines:
            return None
        return min(deadlines) - self._clock()

    def _add(self, frame: str, lazy: bool, flush: bool) -> None:
        if not flush and self._late():
            self.dropped += 1
            return
        size = utf8_size(frame)
        if self._window <= 0:
            # No coalescing: every frame is a message of its own.
            self._send_frame(frame, size, flush)
            return
        if size > self._limit:
            self._post_buffer()
            self._send_frame(frame, size, flush)
            return
        # A batch stays within the metering step (itself within the limit):
        # a frame that would take it over goes into the next one.
        if self._buffer and (
            batch_size(self._buffer_bytes + size, len(self._buffer) + 1)
            > self._batch_bytes
        ):
            self._post_buffer()
        quiet = not self._eager and self._clock() - self._last_post >= self._window
        self._buffer.append(frame)
        self._buffer_bytes += size
        self._eager = self._eager or not lazy
        self._force = self._force or flush
        if quiet and not lazy:
            # The first frame after a quiet window goes out at once, with
            # the lazy frames before it, even if more frames are queued.
            self._post_buffer()

    def _due(self, closing: bool) -> bool:
        if closing or self._force:
            return True
        if batch_size(self._buffer_bytes, len(self._buffer)) >= self._batch_bytes:
            return True
        return self._eager and self._clock() - self._last_post >= self._window

    def _post_buffer(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        # A terminal frame flushes the buffer as it arrives: it is the last.
        final = self._force
        self._buffer = []
        self._buffer_bytes = 0
        self._eager = self._force = False
        if self._late():
            kept = buffer[-1:] if final else []
            self.dropped += len(buffer) - len(kept)
            buffer = kept
            if not buffer:
                return
        text = buffer[0] if len(buffer) == 1 else encode_batch(buffer)
        self._post(text, len(buffer), final)

    def _send_frame(self, frame: str, size: int, final: bool) -> None:
        if size <= self._limit:
            self._post(frame, 1, final)
            return
        for part in split_frame(frame, self._limit):
            if not self._post(part, 1, final):
                # Counted once as a dropped frame; its later parts are not sent.
                return

    def _post(self, text: str, frames: int, final: bool) -> bool:
        """Post ``text``; ``False`` when its frames were dropped instead."""
        if not final and self._late():
            self.dropped += frames
            return False
        self._last_post = self._last_activity = self._clock()
        try:
            self._post_message(text, None if final else self._deadline)
        except BridgeError as exc:
            if final or not self._expired or isinstance(exc, GoneError):
                self._stop(exc)
                raise _StopError from exc
            # Out of time, and this post did not make it before the
            # deadline: give up on the chunks, not on the terminal frame.
            logger.debug("post dropped for time: %s", type(exc).__name__)
            self._dropping = True
            self.dropped += frames
            return False
        self.messages += 1
        self.frames += frames
        return True

    def _late(self) -> bool:
        """Whether frames other than the terminal one are dropped from now on."""
        if not self._dropping and self._deadline is not None:
            self._dropping = self._clock() >= self._deadline
        return self._dropping

    def _maybe_check(self) -> None:
        if self._check is None:
            return
        if self._clock() - self._last_activity < self._check_interval:
            return
        self._last_activity = self._clock()
        try:
            self._check()
        except GoneError as exc:
            self._stop(exc)
            raise _StopError from exc
        except BridgeError as exc:
            # Only a definite 410 stops the invocation; anything else may be
            # passing, and the next post will tell.
            logger.debug("connection check failed: %s", type(exc).__name__)

    def _stop(self, exc: BaseException) -> None:
        with self._cond:
            if self.error is not None:
                return
            self.error = exc
            self._queue.clear()
        self._on_stop(exc)
