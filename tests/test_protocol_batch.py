"""Batch frames (several frames in one message) and the cancel frame's token."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcore_bridge.client import FrameDecoder
from agentcore_bridge.exceptions import FrameError, ValidationError
from agentcore_bridge.protocol import (
    BATCH_OVERHEAD,
    Cancel,
    batch_size,
    encode_batch,
    encode_cancel,
    encode_chunk,
    encode_end,
    encode_session,
    parse_client_frame,
    split_frame,
    utf8_size,
)

texts = st.text(min_size=0, max_size=40)


@given(st.lists(texts, min_size=1, max_size=20))
def test_a_batch_decodes_to_its_frames_in_order(pieces: list[str]) -> None:
    frames = [encode_chunk("q", n, piece) for n, piece in enumerate(pieces)]
    batch = encode_batch(frames)
    assert json.loads(batch) == {
        "type": "batch",
        "frames": [json.loads(frame) for frame in frames],
    }
    assert FrameDecoder().feed(batch, 0.0) == [json.loads(f) for f in frames]


@given(st.lists(texts, min_size=1, max_size=20))
def test_batch_size_is_the_exact_utf8_size(pieces: list[str]) -> None:
    """What the coalescer computes before posting is what goes on the wire."""
    frames = [encode_chunk("q", n, piece) for n, piece in enumerate(pieces)]
    total = sum(utf8_size(frame) for frame in frames)
    assert batch_size(total, len(frames)) == utf8_size(encode_batch(frames))


def test_a_batch_of_one_costs_only_the_overhead() -> None:
    frame = encode_end("q", 0)
    assert utf8_size(encode_batch([frame])) == utf8_size(frame) + BATCH_OVERHEAD


def test_a_batch_is_made_of_the_frames_text_as_it_is() -> None:
    """No frame is decoded and encoded again: the batch embeds the text."""
    frames = [encode_session("tok", 7), encode_chunk("q", 0, {"b": 1, "a": 2})]
    batch = encode_batch(frames)
    assert batch == '{"type":"batch","frames":[' + ",".join(frames) + "]}"


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [encode_batch([encode_end("q", 0)])],
        split_frame(encode_chunk("q", 0, "x" * 600), 256)[:1],
    ],
)
def test_empty_nested_and_part_batches_are_refused(frames: list[str]) -> None:
    with pytest.raises(ValidationError):
        encode_batch(frames)


def test_clients_may_not_send_batches() -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame('{"type":"batch","id":"q","frames":[]}')
    assert caught.value.code == "bad_request"
    assert caught.value.id == "q"
    assert "batched" in caught.value.message


def test_cancel_carries_the_invocations_token() -> None:
    frame = parse_client_frame(encode_cancel("q1", session="v1.abc.def"))
    assert frame == Cancel("q1", "v1.abc.def")
    assert "v1.abc" not in repr(frame)
    assert parse_client_frame(encode_cancel("q1")) == Cancel("q1", None)


@pytest.mark.parametrize("session", ['""', "7", "[]", json.dumps("x" * 513)])
def test_cancel_with_a_bad_token_is_refused_with_its_id(session: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame('{"type":"cancel","id":"q1","session":' + session + "}")
    assert caught.value.code == "bad_request"
    assert caught.value.id == "q1"
