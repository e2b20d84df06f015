"""Helpers for Python clients of the bridge (protocol v1), without I/O.

Bring your own WebSocket library: send the text of
:func:`~agentcore_bridge.protocol.encode_invoke`,
:func:`~agentcore_bridge.protocol.encode_cancel` or
:func:`~agentcore_bridge.protocol.encode_ping`, and pass every text message
received to a :class:`FrameDecoder` (or a stream of them to
:func:`iter_frames`), which joins split messages, unpacks batches and
yields the bridge's frames as dicts::

    decoder = FrameDecoder()
    async for message in websocket:
        # No frame for a part of a split frame, several for a batch.
        for frame in decoder.feed(message, time.monotonic()):
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
    """Decodes the bridge's messages into frames: joins split ones, unpacks batches.

    ``reassembler`` holds partly received messages; give one with other
    bounds than the defaults if needed.
    """

    def __init__(self, reassembler: Reassembler | None = None) -> None:
        self.reassembler = Reassembler() if reassembler is None else reassembler

    def feed(self, message: str | bytes, now: float) -> list[dict[str, object]]:
        """The frames ``message`` carries, received at ``now`` (seconds, any clock).

        Returns them in order: none for a ``part`` that does not complete
        its message, the frames inside a ``batch``, else the one frame.
        Raises :class:`ProtocolError` for a message that is not a JSON
        object with a string ``type``, a bad part, or a batch that is not a
        list of such objects (or holds a batch or a part); nothing of that
        message is returned. The decoder stays usable, so the caller may
        log the error and read on.
        """
        frame = _load(message)
        if frame["type"] == "part":
            text = self.reassembler.feed(frame, now)
            if text is None:
                return []
            frame = _load(text)
            if frame["type"] == "part":
                raise ProtocolError("a reassembled frame is itself a part")
        if frame["type"] == "batch":
            return _unbatch(frame)
        return [frame]


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
        yield from decoder.feed(message, clock())


def _unbatch(batch: dict[str, object]) -> list[dict[str, object]]:
    inner = batch.get("frames")
    if not isinstance(inner, list) or not inner:
        raise ProtocolError("batch: frames must be a non-empty list")
    frames: list[dict[str, object]] = []
    for frame in inner:
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise ProtocolError("batch: every frame must be a JSON object with a type")
        if frame["type"] in {"batch", "part"}:
            raise ProtocolError("batch: a batch cannot carry batch or part frames")
        frames.append(frame)
    return frames


def _load(message: str | bytes) -> dict[str, object]:
    try:
        frame = json.loads(message)
    except (ValueError, RecursionError):
        raise ProtocolError("bridge message is not valid JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ProtocolError("bridge message is not a JSON object with a type")
    return frame
