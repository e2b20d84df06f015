"""The Python client helpers: decoding the bridge's messages into frames."""

from __future__ import annotations

import json

import pytest

from agentcore_bridge.client import FrameDecoder, iter_frames
from agentcore_bridge.exceptions import ProtocolError
from agentcore_bridge.protocol import (
    Reassembler,
    encode_batch,
    encode_chunk,
    encode_end,
    encode_pong,
    encode_session,
    split_frame,
)


def test_whole_frames_are_decoded_as_they_come() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_end("a", 2), 0.0) == [
        {"type": "end", "id": "a", "seq": 2}
    ]
    assert decoder.feed(encode_session("t", 5).encode(), 0.0) == [
        {"type": "session", "session": "t", "expires": 5}
    ]


def test_split_frames_come_out_whole_between_others() -> None:
    """Parts of two frames, interleaved with whole frames, give every frame once."""
    big_a = encode_chunk("a", 0, "ü" * 2000)
    big_b = encode_chunk("b", 0, '"\\' * 900)
    parts_a = split_frame(big_a, 512, message_id="ma")
    parts_b = split_frame(big_b, 512, message_id="mb")
    messages = [encode_end("x", 0)]
    for index in range(max(len(parts_a), len(parts_b))):
        messages += parts_a[index : index + 1] + parts_b[index : index + 1]
    messages.append(encode_end("y", 0))

    assert len(parts_a) < len(parts_b)

    frames = list(iter_frames(messages))
    assert frames == [
        json.loads(encode_end("x", 0)),
        json.loads(big_a),
        json.loads(big_b),
        json.loads(encode_end("y", 0)),
    ]


def test_part_that_does_not_complete_gives_no_frame() -> None:
    parts = split_frame(encode_chunk("a", 0, "x" * 1000), 300)
    decoder = FrameDecoder()
    counts = [len(decoder.feed(part, 0.0)) for part in parts]
    assert counts == [0] * (len(parts) - 1) + [1]


def test_a_batch_gives_its_frames_in_order() -> None:
    frames = [encode_session("t", 5), encode_chunk("a", 0, "x"), encode_end("a", 1)]
    decoded = FrameDecoder().feed(encode_batch(frames), 0.0)
    assert decoded == [json.loads(frame) for frame in frames]


def test_a_split_batch_is_joined_then_unpacked() -> None:
    """A batch that arrives in parts is a batch all the same."""
    frames = [encode_chunk("a", n, "y" * 200) for n in range(5)]
    parts = split_frame(encode_batch(frames), 300)
    assert len(parts) > 1
    assert list(iter_frames(parts)) == [json.loads(frame) for frame in frames]


@pytest.mark.parametrize(
    "message",
    [
        '{"type":"batch"}',
        '{"type":"batch","frames":[]}',
        '{"type":"batch","frames":{}}',
        '{"type":"batch","frames":[1]}',
        '{"type":"batch","frames":[{"no":"type"}]}',
        '{"type":"batch","frames":[{"type":"batch","frames":[]}]}',
        '{"type":"batch","frames":[{"type":"part","of":"m","n":0,"total":2}]}',
    ],
)
def test_malformed_batches_are_refused_whole(message: str) -> None:
    with pytest.raises(ProtocolError, match="batch"):
        FrameDecoder().feed(message, 0.0)


def test_decoder_reads_on_after_a_bad_batch() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed('{"type":"batch","frames":[{"type":"pong"},7]}', 0.0)
    assert decoder.feed(encode_pong("p"), 0.0) == [{"type": "pong", "id": "p"}]


@pytest.mark.parametrize("message", ["not json", "[1]", '{"no":"type"}', '{"type":3}'])
def test_messages_that_are_not_frames_are_refused(message: str) -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(message, 0.0)


def test_decoder_reads_on_after_a_bad_part() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed('{"type":"part","of":"m","n":1,"total":2,"text":"x"}', 0.0)
    assert decoder.feed(encode_end("a", 0), 0.0) == [
        {"type": "end", "id": "a", "seq": 0}
    ]


def test_a_part_wrapped_in_parts_is_refused() -> None:
    inner = '{"type":"part","of":"in","n":0,"total":2,"text":"x"}'
    outer = split_frame(inner + " " * 400, 256, message_id="out")
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match="itself a part"):
        for message in outer:
            decoder.feed(message, 0.0)


def test_stale_parts_are_dropped_by_the_clock_given() -> None:
    parts = split_frame(encode_chunk("a", 0, "x" * 1000), 300)
    ticks = iter([0.0] + [1000.0] * 100)
    decoder = FrameDecoder(Reassembler(max_age=5.0))
    assert list(iter_frames(parts, clock=lambda: next(ticks), decoder=decoder)) == []
    assert decoder.reassembler.dropped == 1
