"""Splitting frames over the transport limit into parts, and joining them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcore_bridge.exceptions import ProtocolError, ValidationError
from agentcore_bridge.protocol import (
    MIN_SPLIT_LIMIT,
    Reassembler,
    encode_chunk,
    split_frame,
    utf8_size,
)

# Characters that make escaping and UTF-8 sizes differ from one byte each:
# quotes, backslashes, every control character (6-byte \u00XX escapes and
# 2-byte \n style ones), DEL, the JavaScript line separators, two- and
# three-byte characters, a byte order mark and astral characters (4 bytes,
# surrogate pairs in JavaScript).
TRICKY = ['"', "\\", "/", "\x7f", "\u2028", "\u2029", "é", "中", "\ufeff", "😀", "𝄞"]
TRICKY += [chr(code) for code in range(0x20)]
characters = st.sampled_from(TRICKY) | st.characters(exclude_categories=("Cs",))
pieces = st.text(alphabet=characters, max_size=40)
# Hypothesis favours short text; repeating drawn pieces gives frames of a few
# bytes to tens of kilobytes, most of them over the limit.
texts = st.builds(
    lambda head, count, middle, tail_count, tail: (
        head * count + middle + tail * tail_count
    ),
    pieces,
    st.integers(min_value=0, max_value=400),
    pieces,
    st.integers(min_value=0, max_value=400),
    pieces,
)
limits = st.integers(min_value=MIN_SPLIT_LIMIT, max_value=2048)


def join(parts: list[str], reassembler: Reassembler | None = None) -> str | None:
    reassembler = Reassembler() if reassembler is None else reassembler
    result = None
    for part in parts:
        assert result is None, "reassembled before the last part"
        result = reassembler.feed(json.loads(part), 0.0)
    return result


@given(text=texts, limit=limits)
def test_every_part_fits_and_reassembly_is_exact(text: str, limit: int) -> None:
    """For any content and limit, parts fit the limit and join back exactly."""
    parts = split_frame(text, limit, message_id="m1")
    assert all(utf8_size(part) <= limit for part in parts)
    if utf8_size(text) <= limit:
        assert parts == [text]
    else:
        assert join(parts) == text


@given(data=st.data(), limit=limits)
def test_encoded_chunks_round_trip(data: st.DataObject, limit: int) -> None:
    """A real chunk frame with any string data survives splitting."""
    payload = data.draw(st.dictionaries(texts, texts, max_size=3))
    frame = encode_chunk("q1", 5, payload)
    parts = split_frame(frame, limit)
    assert all(utf8_size(part) <= limit for part in parts)
    joined = frame if len(parts) == 1 else join(parts)
    assert joined is not None
    assert json.loads(joined)["data"] == payload


@given(text=texts, limit=limits)
def test_parts_are_numbered_valid_frames_and_nearly_full(text: str, limit: int) -> None:
    """Parts are JSON frames numbered 0..total-1; all but the last are nearly full.

    A part stops short only when the next character's escape (at most 6
    bytes) no longer fits, plus the digits reserved for n and total.
    """
    parts = split_frame(text, limit, message_id="msg")
    if len(parts) == 1:
        return
    frames = [json.loads(part) for part in parts]
    assert [frame["n"] for frame in frames] == list(range(len(parts)))
    for frame in frames:
        assert set(frame) == {"type", "of", "n", "total", "text"}
        assert (frame["type"], frame["of"], frame["total"]) == (
            "part",
            "msg",
            len(parts),
        )
        assert frame["text"]
    slack = 5 + 2 * len(str(len(text)))
    assert all(utf8_size(part) >= limit - slack for part in parts[:-1])


@given(
    first=texts,
    second=texts,
    order=st.lists(st.booleans(), max_size=200),
    limit=st.integers(min_value=MIN_SPLIT_LIMIT, max_value=600),
)
def test_interleaved_messages_reassemble(
    first: str, second: str, order: list[bool], limit: int
) -> None:
    """Parts of two messages, interleaved in any order, both join back."""
    queues = [
        split_frame(first, limit, message_id="one"),
        split_frame(second, limit, message_id="two"),
    ]
    merged: list[tuple[int, str]] = []
    positions = [0, 0]
    choices = iter(order)
    while positions[0] < len(queues[0]) or positions[1] < len(queues[1]):
        which = 0 if next(choices, False) else 1
        if positions[which] == len(queues[which]):
            which = 1 - which
        merged.append((which, queues[which][positions[which]]))
        positions[which] += 1

    reassembler = Reassembler()
    results: list[str] = []
    for which, message in merged:
        if len(queues[which]) == 1:
            results.append(message)
            continue
        joined = reassembler.feed(json.loads(message), 0.0)
        if joined is not None:
            results.append(joined)
    assert sorted(results) == sorted([first, second])
    assert reassembler.pending == 0


def test_frame_under_the_limit_is_returned_unchanged() -> None:
    frame = encode_chunk("a", 0, "hello")
    assert split_frame(frame) == [frame]


def test_default_limit_splits_a_large_chunk_into_128k_parts() -> None:
    frame = encode_chunk("a", 0, "é" * 200_000)
    parts = split_frame(frame)
    assert len(parts) == 4
    assert all(utf8_size(part) <= 131072 for part in parts)
    assert join(parts) == frame


def test_message_ids_default_to_random_and_distinct() -> None:
    text = "x" * 1000
    first = json.loads(split_frame(text, 300)[0])["of"]
    second = json.loads(split_frame(text, 300)[0])["of"]
    assert first != second
    assert len(first) == 12


def test_longest_message_id_still_fits_the_minimum_limit() -> None:
    parts = split_frame('"' * 5000, MIN_SPLIT_LIMIT, message_id="m" * 64)
    assert all(utf8_size(part) <= MIN_SPLIT_LIMIT for part in parts)
    assert join(parts) == '"' * 5000


@pytest.mark.parametrize("limit", [MIN_SPLIT_LIMIT - 1, 0, True, 300.0])
def test_limit_below_the_minimum_is_refused(limit: int) -> None:
    with pytest.raises(ValidationError):
        split_frame("x" * 1000, limit)


def test_bad_message_id_is_refused() -> None:
    with pytest.raises(ValidationError):
        split_frame("x" * 1000, 300, message_id="has space")


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValidationError):
        split_frame("x\ud800" * 1000, 300)


# The reassembler's rules.


def part(of: str, n: int, total: int, text: str) -> dict[str, object]:
    return {"type": "part", "of": of, "n": n, "total": total, "text": text}


def test_single_part_message_is_returned_at_once() -> None:
    assert Reassembler().feed(part("m", 0, 1, "abc"), 0.0) == "abc"


def test_part_without_part_zero_is_refused_and_the_rest_ignored() -> None:
    reassembler = Reassembler()
    with pytest.raises(ProtocolError, match="without part 0"):
        reassembler.feed(part("m", 1, 3, "b"), 0.0)
    assert reassembler.feed(part("m", 2, 3, "c"), 0.0) is None
    assert reassembler.dropped == 1


def test_repeated_part_is_refused() -> None:
    reassembler = Reassembler()
    reassembler.feed(part("m", 0, 3, "a"), 0.0)
    reassembler.feed(part("m", 1, 3, "b"), 0.0)
    with pytest.raises(ProtocolError, match="part 1 repeated"):
        reassembler.feed(part("m", 1, 3, "b"), 0.0)
    assert reassembler.pending == 0


def test_skipped_part_is_refused_as_missing() -> None:
    reassembler = Reassembler()
    reassembler.feed(part("m", 0, 3, "a"), 0.0)
    with pytest.raises(ProtocolError, match="a part is missing"):
        reassembler.feed(part("m", 2, 3, "c"), 0.0)


def test_changing_total_is_refused() -> None:
    reassembler = Reassembler()
    reassembler.feed(part("m", 0, 3, "a"), 0.0)
    with pytest.raises(ProtocolError, match="says 4 parts"):
        reassembler.feed(part("m", 1, 4, "b"), 0.0)


def test_stale_message_is_dropped_after_max_age() -> None:
    reassembler = Reassembler(max_age=10.0)
    reassembler.feed(part("old", 0, 2, "a"), 0.0)
    reassembler.feed(part("new", 0, 2, "x"), 5.0)
    assert reassembler.feed(part("new", 1, 2, "y"), 14.0) == "xy"
    assert reassembler.pending == 0
    assert reassembler.dropped == 1
    assert reassembler.feed(part("old", 1, 2, "b"), 14.0) is None


def test_message_with_recent_parts_is_not_stale() -> None:
    """Age counts from the last part, so a slow but steady message survives."""
    reassembler = Reassembler(max_age=10.0)
    for n in range(5):
        assert reassembler.feed(part("m", n, 6, str(n)), n * 8.0) is None
    assert reassembler.feed(part("m", 5, 6, "5"), 40.0) == "012345"


def test_too_many_messages_in_progress_is_refused() -> None:
    reassembler = Reassembler(max_pending=2)
    reassembler.feed(part("a", 0, 2, "a"), 0.0)
    reassembler.feed(part("b", 0, 2, "b"), 0.0)
    with pytest.raises(ProtocolError, match="more than 2 split messages"):
        reassembler.feed(part("c", 0, 2, "c"), 0.0)
    assert reassembler.feed(part("a", 1, 2, "A"), 0.0) == "aA"


def test_too_many_parts_is_refused() -> None:
    reassembler = Reassembler(max_parts=3)
    with pytest.raises(ProtocolError, match="over the limit of 3"):
        reassembler.feed(part("m", 0, 4, "a"), 0.0)


def test_too_many_buffered_characters_is_refused_and_freed() -> None:
    reassembler = Reassembler(max_chars=10)
    reassembler.feed(part("a", 0, 3, "12345"), 0.0)
    with pytest.raises(ProtocolError, match="more than 10 characters"):
        reassembler.feed(part("a", 1, 3, "123456"), 0.0)
    assert reassembler.pending == 0
    reassembler.feed(part("b", 0, 2, "1234567890"), 0.0)
    assert reassembler.feed(part("b", 1, 2, ""), 0.0) == "1234567890"


@pytest.mark.parametrize(
    "bad",
    [
        {"of": "m", "n": 0, "total": 2},
        {"of": "m", "n": 0, "total": 2, "text": 5},
        {"of": "", "n": 0, "total": 2, "text": "a"},
        {"of": "m", "n": True, "total": 2, "text": "a"},
        {"of": "m", "n": 2, "total": 2, "text": "a"},
        {"of": "m", "n": -1, "total": 2, "text": "a"},
        {"of": "m", "n": 0, "total": 0, "text": "a"},
        {"of": "m", "n": 0.0, "total": 2, "text": "a"},
    ],
)
def test_malformed_parts_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        Reassembler().feed(bad, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_pending": 0}, {"max_parts": True}, {"max_chars": 1.5}, {"max_age": 0}],
)
def test_reassembler_bounds_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Reassembler(**kwargs)  # type: ignore[arg-type]


def test_discarded_ids_are_remembered_in_bounded_memory() -> None:
    reassembler = Reassembler()
    for number in range(200):
        with pytest.raises(ProtocolError):
            reassembler.feed(part(f"m{number}", 1, 2, "x"), 0.0)
    assert len(reassembler._discarded) == 64
    assert reassembler.dropped == 200
