"""Helpers for Python clients of the bridge (protocol v1), without I/O.

Bring your own WebSocket library: send the text of
:func:`~agentcore_bridge.protocol.encode_invoke`,
:func:`~agentcore_bridge.protocol.encode_cancel` or
:func:`~agentcore_bridge.protocol.encode_ping`, and pass every text message
received to a :class:`FrameDecoder` (or a stream of them to
:func:`iter_frames`), which joins split messages and yields the bridge's
frames as dicts::

    decoder = FrameDecoder()
    async for message in websocket:
        frame = decoder.feed(message, time.monotonic())
        if frame is None:
            continue  # part of a split frame; more to come
        if frame["type"] == "chunk":
            ...
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator

from .exceptions import ProtocolError
from .protocol import Reassembler, encode_cancel, encode_invoke, encode_ping

__all__ = [
    "FrameDecoder",
    "encode_cancel",
    "encode_invoke",
    "encode_ping",
    "iter_frames",
]


class FrameDecoder:
    """Decodes the bridge's messages into frames, joining split ones.

    ``reassembler`` holds partly received messages; give one with other
    bounds than the defaults if needed.
    """

    def __init__(self, reassembler: Reassembler | None = None) -> None:
        self.reassembler = Reassembler() if reassembler is None else reassembler

    def feed(self, message: str | bytes, now: float) -> dict[str, object] | None:
        """The frame in ``message``, received at ``now`` (seconds, any clock).

        Returns ``None`` for a ``part`` that does not complete its message.
        Raises :class:`ProtocolError` for a message that is not a JSON
        object with a string ``type``, or for a bad part; the decoder stays
        usable, so the caller may log it and read on.
        """
        frame = _load(message)
        if frame["type"] != "part":
            return frame
        text = self.reassembler.feed(frame, now)
        if text is None:
            return None
        frame = _load(text)
        if frame["type"] == "part":
            raise ProtocolError("a reassembled frame is itself a part")
        return frame


def iter_frames(
    messages: Iterable[str | bytes],
    *,
    clock: Callable[[], float] = time.monotonic,
    decoder: FrameDecoder | None = None,
) -> Iterator[dict[str, object]]:
    """Yield the frames carried by ``messages``, split ones joined.

    Raises :class:`ProtocolError` at the first message that breaks the
    protocol.
    """
    decoder = FrameDecoder() if decoder is None else decoder
    for message in messages:
        frame = decoder.feed(message, clock())
        if frame is not None:
            yield frame


def _load(message: str | bytes) -> dict[str, object]:
    try:
        frame = json.loads(message)
    except (ValueError, RecursionError):
        raise ProtocolError("bridge message is not valid JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ProtocolError("bridge message is not a JSON object with a type")
    return frame
