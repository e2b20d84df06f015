"""The Lambda adapter's outbox: coalescing, limits, and stopping on a gone client.

The outbox posts through a plain function; here that function records the
messages (and can refuse them as @connections would), so what is checked is
which frames travel in which message, never how long anything took.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentcore_bridge.awslambda._outbox import Outbox
from agentcore_bridge.client import FrameDecoder
from agentcore_bridge.exceptions import BridgeError, GoneError, ThrottledError
from agentcore_bridge.protocol import (
    encode_chunk,
    encode_end,
    encode_error,
    encode_session,
    utf8_size,
)


class Sink:
    """Records posted messages; fails with ``error`` from post number ``fail_at``."""

    def __init__(self, fail_at: int | None = None, error: BridgeError | None = None):
        self.messages: list[str] = []
        self.fail_at = fail_at
        self.error = error or GoneError(410, "GoneException", "gone", retryable=False)
        self.lock = threading.Lock()
        #: The deadline each post was given, in order.
        self.deadlines: list[float | None] = []
        #: While set, posts given a deadline (all but terminal ones) fail so.
        self.refuse_bounded: BridgeError | None = None

    def post(self, text: str, deadline: float | None = None) -> None:
        with self.lock:
            self.deadlines.append(deadline)
            if self.refuse_bounded is not None and deadline is not None:
                raise self.refuse_bounded
            if self.fail_at is not None and len(self.messages) + 1 >= self.fail_at:
                raise self.error
            self.messages.append(text)

    def frames(self) -> list[list[dict[str, Any]]]:
        decoder = FrameDecoder()
        return [decoder.feed(message, 0.0) for message in self.messages]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def make(sink: Sink, **options: Any) -> tuple[Outbox, list[BaseException]]:
    stops: list[BaseException] = []
    settings: dict[str, Any] = {
        "limit": 131072,
        "window": 60.0,
        "batch_bytes": 32768,
        "on_stop": stops.append,
    }
    settings.update(options)
    outbox = Outbox(sink.post, **settings)
    outbox.start()
    return outbox, stops


def chunks(count: int, size: int = 10, start: int = 0) -> list[str]:
    return [encode_chunk("q", n, "x" * size) for n in range(start, start + count)]


def test_first_chunk_goes_alone_and_the_rest_wait_for_the_window() -> None:
    sink = Sink()
    outbox, _ = make(sink)
    first, *rest = chunks(6)
    outbox.put(first)
    wait_for(lambda: len(sink.messages) == 1)
    for frame in rest:
        outbox.put(frame)
    outbox.close()
    assert sink.messages[0] == first
    assert [f["seq"] for f in sink.frames()[1]] == [1, 2, 3, 4, 5]
    assert (outbox.messages, outbox.frames) == (2, 6)


def test_first_chunk_is_not_held_back_by_frames_queued_with_it() -> None:
    """Frames queued before the thread runs: the first still goes alone."""
    sink = Sink()
    outbox = Outbox(
        sink.post, limit=131072, window=60.0, batch_bytes=32768, on_stop=print
    )
    for frame in chunks(5):
        outbox.put(frame)
    outbox.start()
    outbox.close()
    assert [len(frames) for frames in sink.frames()] == [1, 4]


def test_a_terminal_frame_flushes_at_once() -> None:
    sink = Sink()
    outbox, _ = make(sink)
    for frame in chunks(4):
        outbox.put(frame)
    outbox.put(encode_end("q", 4), flush=True)
    wait_for(lambda: len(sink.messages) == 2)
    assert sink.frames()[1][-1] == {"type": "end", "id": "q", "seq": 4}
    outbox.close()
    assert len(sink.messages) == 2


def test_the_window_ends_a_batch_while_nothing_else_arrives() -> None:
    """Gathered frames are posted when the window runs out, not only at close."""
    sink = Sink()
    outbox, _ = make(sink, window=0.05)
    for frame in chunks(3):
        outbox.put(frame)
    wait_for(lambda: len(sink.messages) == 2)
    assert [len(frames) for frames in sink.frames()] == [1, 2]
    outbox.close()


def test_lazy_frames_ride_with_the_next_post() -> None:
    sink = Sink()
    outbox, _ = make(sink)
    session = encode_session("v1.token.mac", 1700000000)
    outbox.put(session, lazy=True)
    first = chunks(1)[0]
    outbox.put(first)
    outbox.close()
    assert sink.frames() == [[json.loads(session), json.loads(first)]]


def test_batches_stop_at_the_metering_step() -> None:
    sink = Sink()
    outbox, _ = make(sink, batch_bytes=1000)
    for frame in chunks(40, size=100):
        outbox.put(frame)
    outbox.close()
    sizes = [utf8_size(message) for message in sink.messages]
    assert all(size <= 1000 for size in sizes[1:])
    assert [f["seq"] for frames in sink.frames() for f in frames] == list(range(40))


def test_no_message_exceeds_the_limit_and_big_frames_are_split() -> None:
    sink = Sink()
    outbox, _ = make(sink, limit=1024, batch_bytes=32768)
    big = encode_chunk("q", 3, "é" * 3000)
    for frame in [*chunks(3, size=300), big, *chunks(3, size=300, start=4)]:
        outbox.put(frame)
    outbox.close()
    assert max(utf8_size(message) for message in sink.messages) <= 1024
    received = [f for frames in sink.frames() for f in frames]
    assert [f["seq"] for f in received] == list(range(7))
    assert received[3]["data"] == "é" * 3000


def test_window_zero_posts_every_frame_alone() -> None:
    sink = Sink()
    outbox, _ = make(sink, window=0.0)
    outbox.put(encode_session("v1.token.mac", 1700000000), lazy=True)
    for frame in chunks(5):
        outbox.put(frame)
    outbox.close()
    assert [len(frames) for frames in sink.frames()] == [1] * 6


def test_a_gone_client_stops_posting_once_and_drops_later_frames() -> None:
    sink = Sink(fail_at=2)
    outbox, stops = make(sink, window=0.0)
    for frame in chunks(5):
        outbox.put(frame)
    wait_for(lambda: bool(stops))
    outbox.put(encode_end("q", 5), flush=True)
    outbox.close()
    assert len(sink.messages) == 1
    assert len(stops) == 1
    assert isinstance(stops[0], GoneError)
    assert outbox.error is stops[0]


def test_other_post_failures_stop_posting_too() -> None:
    throttled = ThrottledError(429, "LimitExceededException", "slow", retryable=True)
    sink = Sink(fail_at=1, error=throttled)
    outbox, stops = make(sink)
    outbox.put(chunks(1)[0])
    outbox.close()
    assert stops == [throttled]


TIMEOUT = encode_error("q", "timeout", "out of time")


def seqs_and_types(sink: Sink) -> list[tuple[Any, str]]:
    return [(f.get("seq"), f["type"]) for m in sink.frames() for f in m]


def test_past_the_deadline_only_the_terminal_frame_is_posted() -> None:
    """Unposted chunks are dropped and counted; chunk posts carry the deadline."""
    sink = Sink()
    now = [0.0]
    outbox, stops = make(sink, window=0.0, clock=lambda: now[0], deadline=10.0)
    first, second, *rest = chunks(5)
    outbox.put(first)
    outbox.put(second)
    wait_for(lambda: len(sink.messages) == 2)
    now[0] = 10.0
    for frame in rest:
        outbox.put(frame)
    outbox.put(TIMEOUT, flush=True)
    outbox.close()
    assert seqs_and_types(sink) == [(0, "chunk"), (1, "chunk"), (None, "error")]
    assert sink.deadlines == [10.0, 10.0, None]
    assert (outbox.dropped, outbox.messages, stops) == (3, 3, [])


def test_past_the_deadline_a_coalesced_batch_keeps_only_its_terminal_frame() -> None:
    sink = Sink()
    now = [0.0]
    outbox, stops = make(sink, clock=lambda: now[0], deadline=10.0)
    first, *rest = chunks(4)
    outbox.put(first)
    wait_for(lambda: len(sink.messages) == 1)
    for frame in rest:
        outbox.put(frame)
    now[0] = 11.0
    outbox.put(TIMEOUT, flush=True)
    outbox.close()
    assert seqs_and_types(sink) == [(0, "chunk"), (None, "error")]
    assert (outbox.dropped, stops) == (3, [])


def test_out_of_time_a_failed_post_drops_its_chunks_not_the_terminal_frame() -> None:
    """After expire(), a chunk post that fails is dropped, and so is every
    later chunk (no gap in seq); the terminal frame still goes, nothing stops."""
    throttled = ThrottledError(429, "LimitExceededException", "slow", retryable=True)
    sink = Sink()
    outbox, stops = make(sink, window=0.0, deadline=time.monotonic() + 60.0)
    first, second, *rest = chunks(5)
    outbox.put(first)
    wait_for(lambda: len(sink.messages) == 1)
    outbox.expire()
    sink.refuse_bounded = throttled
    outbox.put(second)
    wait_for(lambda: outbox.dropped == 1)
    sink.refuse_bounded = None
    for frame in rest:
        outbox.put(frame)
    outbox.put(TIMEOUT, flush=True)
    outbox.close()
    assert seqs_and_types(sink) == [(0, "chunk"), (None, "error")]
    assert (outbox.dropped, stops, outbox.error) == (4, [], None)


def test_before_it_is_out_of_time_a_failed_post_still_stops_posting() -> None:
    throttled = ThrottledError(429, "LimitExceededException", "slow", retryable=True)
    sink = Sink()
    sink.refuse_bounded = throttled
    outbox, stops = make(sink, window=0.0, deadline=time.monotonic() + 60.0)
    outbox.put(chunks(1)[0])
    wait_for(lambda: bool(stops))
    outbox.put(TIMEOUT, flush=True)
    outbox.close()
    assert stops == [throttled]
    assert (sink.messages, outbox.dropped) == ([], 0)


def test_a_silent_invocation_notices_a_gone_client() -> None:
    """With nothing to post, the check finds the client gone and stops."""
    gone = GoneError(410, "GoneException", "gone", retryable=False)
    checks: list[int] = []

    def check() -> None:
        checks.append(1)
        if len(checks) >= 2:
            raise gone

    sink = Sink()
    outbox, stops = make(sink, check=check, check_interval=0.01)
    wait_for(lambda: bool(stops))
    outbox.close()
    assert stops == [gone]
    assert sink.messages == []


@pytest.mark.parametrize("interval", [0.0])
def test_no_check_when_the_interval_is_zero(interval: float) -> None:
    calls: list[int] = []
    sink = Sink()
    outbox, _ = make(sink, check=lambda: calls.append(1), check_interval=interval)
    outbox.put(chunks(1)[0])
    outbox.close()
    assert calls == []
