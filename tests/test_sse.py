"""The SSE parser and the agent-event layer, bytes in, events out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcore_bridge.exceptions import AgentError, ProtocolError
from agentcore_bridge.sse import (
    AgentEvent,
    AgentStreamDecoder,
    ServerSentEvent,
    SSEParser,
    parse_events,
)


def parse(data: bytes) -> list[ServerSentEvent]:
    return parse_events([data])


def split_at(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted(cuts)
    starts, ends = [0, *bounds], [*bounds, len(stream)]
    return [stream[a:b] for a, b in zip(starts, ends, strict=True)]


def test_data_lines_of_one_event_join_with_newlines() -> None:
    assert parse(b"data: a\ndata: b\n\n") == [ServerSentEvent("a\nb")]


@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"])
def test_every_line_end_ends_a_line(end: bytes) -> None:
    stream = b"data: one" + end + end + b"data: two" + end + end
    assert parse(stream) == [ServerSentEvent("one"), ServerSentEvent("two")]


def test_mixed_line_ends_in_one_stream() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\n"
    assert parse(stream) == [ServerSentEvent("a\nb\nc")]


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert parse(b"data:  two spaces\n\ndata:none\n\n") == [
        ServerSentEvent(" two spaces"),
        ServerSentEvent("none"),
    ]


def test_field_without_colon_has_an_empty_value() -> None:
    """A bare ``data`` line adds an empty line, and the event is still sent."""
    assert parse(b"data\n\n") == [ServerSentEvent("")]
    assert parse(b"data\ndata\n\n") == [ServerSentEvent("\n")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    stream = b": keep-alive\nfoo: bar\ndata: x\n:another\n\n"
    assert parse(stream) == [ServerSentEvent("x")]


def test_event_type_applies_to_one_event_only() -> None:
    stream = b"event: token\ndata: a\n\ndata: b\n\n"
    assert parse(stream) == [
        ServerSentEvent("a", "token"),
        ServerSentEvent("b", "message"),
    ]


def test_last_event_id_carries_over_and_ignores_null() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n"
    assert [event.id for event in parse(stream)] == ["1", "1", "1", ""]


def test_event_without_data_is_not_dispatched() -> None:
    assert parse(b"event: done\n\nid: 3\n\ndata: x\n\n") == [
        ServerSentEvent("x", "message", "3")
    ]


def test_retry_keeps_only_digit_values() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 1500\n\n")
    assert parser.retry == 1500
    parser.feed(b"retry: 1x\nretry: -5\nretry:\n\n")
    assert parser.retry == 1500


def test_leading_bom_is_skipped_once() -> None:
    bom = "\ufeff".encode()
    assert parse(bom + b"data: a\n\n") == [ServerSentEvent("a")]
    # A second BOM is part of the field name, so that line is ignored.
    assert parse(bom + bom + b"data: a\n\n") == []


def test_bom_split_across_chunks_is_skipped() -> None:
    bom = "\ufeff".encode()
    assert parse_events([bom[:1], bom[1:2], bom[2:] + b"data: a\n\n"]) == [
        ServerSentEvent("a")
    ]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    assert parse_events([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [
        ServerSentEvent("a\nb")
    ]


def test_utf8_sequence_split_between_chunks() -> None:
    raw = "data: héllo 🌍\n\n".encode()
    cut = raw.index("🌍".encode()) + 2
    assert parse_events([raw[:cut], raw[cut:]]) == [ServerSentEvent("héllo 🌍")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert parse(b"data: \xff\n\n") == [ServerSentEvent("\ufffd")]


def test_unfinished_event_at_end_of_stream_is_dropped() -> None:
    assert parse(b"data: a\n\ndata: b\n") == [ServerSentEvent("a")]


def test_oversized_line_is_refused() -> None:
    parser = SSEParser(max_event_size=100)
    with pytest.raises(ProtocolError):
        for _ in range(20):
            parser.feed(b"data: " + b"x" * 10)


def test_oversized_event_is_refused() -> None:
    parser = SSEParser(max_event_size=100)
    with pytest.raises(ProtocolError):
        parser.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"y" * 60 + b"\n")


def test_long_line_in_many_chunks() -> None:
    parser = SSEParser()
    events = [parser.feed(b"data: ")]
    events += [parser.feed(b"x" * 1000) for _ in range(1000)]
    events.append(parser.feed(b"\n\n"))
    flat = [event for batch in events for event in batch]
    assert flat == [ServerSentEvent("x" * 1_000_000)]


# Property: chunking never changes the result.

_field_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=12,
)
_lines = st.one_of(
    st.builds(lambda v: f"data:{v}", _field_values),
    st.builds(lambda v: f"data: {v}", _field_values),
    st.builds(lambda v: f"event: {v}", _field_values),
    st.builds(lambda v: f"id: {v}", _field_values),
    st.builds(lambda v: f"retry: {v}", st.from_regex(r"[0-9]{1,5}", fullmatch=True)),
    st.builds(lambda v: f":{v}", _field_values),
    st.just("data"),
    st.just(""),
    _field_values,
)
_line_ends = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def _streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_lines, _line_ends), max_size=30))
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + "".join(line + end for line, end in lines)).encode()


@st.composite
def _splits(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    stream = draw(_streams())
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=12))
    return stream, split_at(stream, cuts)


@settings(max_examples=300, deadline=None)
@given(_splits())
def test_any_chunking_gives_the_events_of_the_whole_stream(
    split: tuple[bytes, list[bytes]],
) -> None:
    stream, chunks = split
    assert parse_events(chunks) == parse_events([stream])


@settings(max_examples=100, deadline=None)
@given(_streams())
def test_byte_by_byte_gives_the_events_of_the_whole_stream(stream: bytes) -> None:
    one_byte_chunks = [stream[i : i + 1] for i in range(len(stream))]
    assert parse_events(one_byte_chunks) == parse_events([stream])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=8), _line_ends)
def test_data_round_trips(values: list[str], end: str) -> None:
    """Any text without line ends written as ``data:`` comes back unchanged."""
    values = [v.replace("\r", "").replace("\n", "") for v in values]
    stream = "".join(f"data: {v}{end}{end}" for v in values).encode()
    assert [event.data for event in parse(stream)] == values


# Property: the events written are the events read, over any chunking.
#
# Unlike the tests above, which compare the parser with itself, this one
# compares it with the events the stream was written from: a model of what
# the standard says a stream means.

_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"
    ),
    max_size=10,
)


@st.composite
def _written_events(
    draw: st.DrawFn,
) -> tuple[bytes, list[ServerSentEvent]]:
    """A stream written event by event, and the events it must give."""
    out: list[str] = []
    expected = []
    last_id = ""

    def line(text: str) -> None:
        end = draw(_line_ends)
        if not text and out and out[-1].endswith("\r"):
            # CR then an empty line ended by LF reads as one CRLF: the
            # stream would not say what the model means.
            end = "\r"
        out.append(text + end)

    if draw(st.booleans()):
        out.append("\ufeff")
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            line(":" + draw(_text))  # a comment, ignored
        event_type = draw(st.none() | _text)
        if event_type is not None:
            line("event: " + event_type)
        event_id = draw(st.none() | _text)
        if event_id is not None:
            line("id: " + event_id)
            last_id = event_id
        data = draw(st.lists(_text, max_size=3))
        for value in data:
            # "data:x" and "data: x" mean the same, unless x starts with a space.
            spaced = value.startswith(" ") or draw(st.booleans())
            line(("data: " if spaced else "data:") + value)
            if draw(st.booleans()):
                line(":" + draw(_text))  # comments may sit between data lines
        line("")
        if data:
            expected.append(
                ServerSentEvent("\n".join(data), event_type or "message", last_id)
            )
    return "".join(out).encode(), expected


@st.composite
def _awkward_cuts(draw: st.DrawFn, stream: bytes) -> list[int]:
    """Cut positions, many of them between CR and LF or inside a UTF-8 character."""
    awkward = [
        i
        for i in range(1, len(stream))
        if stream[i - 1 : i + 1] == b"\r\n" or 0x80 <= stream[i] <= 0xBF
    ]
    anywhere = st.integers(0, len(stream))
    choice = st.sampled_from(awkward) | anywhere if awkward else anywhere
    return draw(st.lists(choice, max_size=16))


@settings(max_examples=400)
@given(st.data())
def test_written_events_are_read_back_over_any_chunking(data: st.DataObject) -> None:
    stream, expected = data.draw(_written_events())
    chunks = split_at(stream, data.draw(_awkward_cuts(stream)))

    assert parse_events(chunks) == expected


# The agent layer.


def decode(
    content_type: str, *chunks: bytes
) -> tuple[list[AgentEvent], AgentStreamDecoder]:
    decoder = AgentStreamDecoder(content_type)
    events: list[AgentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.close()
    return events, decoder


def test_python_app_stream_gives_json_values() -> None:
    events, decoder = decode(
        "text/event-stream; charset=utf-8",
        b'data: "Hello"\n\ndata: {"delta": 1}\n\ndata: [1, 2]\n\n',
    )
    assert [event.data for event in events] == ["Hello", {"delta": 1}, [1, 2]]
    assert decoder.error is None
    assert decoder.finished


def test_python_app_error_object_becomes_agent_error() -> None:
    error = {
        "error": "model unavailable",
        "error_type": "RuntimeError",
        "message": "An error occurred during streaming",
    }
    events, decoder = decode(
        "text/event-stream",
        b'data: "partial"\n\ndata: ' + json.dumps(error).encode() + b"\n\n",
    )
    assert [event.data for event in events] == ["partial"]
    assert isinstance(decoder.error, AgentError)
    assert decoder.error.error_type == "RuntimeError"
    assert decoder.error.message == "model unavailable"


def test_output_with_an_error_key_is_not_a_failure() -> None:
    """Only the exact error shape counts: ordinary output may say "error"."""
    events, decoder = decode(
        "text/event-stream",
        b'data: {"error": "typo", "line": 3}\n\ndata: {"error": null, "ok": 1}\n\n',
    )
    assert len(events) == 2
    assert decoder.error is None


def test_typescript_stream_with_plain_text_and_done() -> None:
    events, decoder = decode(
        "text/event-stream",
        b"data: first\n\ndata: second words\n\nevent: done\ndata: {}\n\n"
        b"data: after done\n\n",
    )
    assert [event.data for event in events] == ["first", "second words"]
    assert decoder.finished
    assert decoder.error is None


def test_typescript_error_event_becomes_agent_error() -> None:
    events, decoder = decode(
        "text/event-stream",
        b'data: "a"\n\nevent: error\ndata: {"error": "stream failed"}\n\n',
    )
    assert [event.data for event in events] == ["a"]
    assert decoder.error is not None
    assert decoder.error.message == "stream failed"


def test_error_events_stop_the_stream_within_one_chunk() -> None:
    decoder = AgentStreamDecoder("text/event-stream")
    events = decoder.feed(b"data: 1\n\nevent: error\ndata: bad\n\ndata: 2\n\n")
    assert [event.data for event in events] == [1]
    assert decoder.error is not None and decoder.error.message == "bad"
    assert decoder.feed(b"data: 3\n\n") == []


def test_named_events_keep_their_type_and_id() -> None:
    events, _ = decode("text/event-stream", b"event: token\nid: 9\ndata: {}\n\n")
    assert events == [AgentEvent({}, "token", "9")]


def test_json_answer_is_one_event_with_the_whole_body() -> None:
    events, decoder = decode("application/json", b'{"answer": ', b'"forty-two"}')
    assert events == [AgentEvent({"answer": "forty-two"})]
    assert decoder.error is None


def test_non_json_answer_is_one_text_event() -> None:
    events, _ = decode("text/plain", b"just ", b"text")
    assert events == [AgentEvent("just text")]


def test_empty_json_answer_has_no_event() -> None:
    events, _ = decode("application/json")
    assert events == []


def test_json_answer_in_the_python_error_shape_is_an_agent_error() -> None:
    body = b'{"error": "x", "error_type": "KeyError"}'
    events, decoder = decode("application/json", body)
    assert events == []
    assert decoder.error is not None and decoder.error.error_type == "KeyError"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda c: st.lists(c, max_size=3),
            max_leaves=5,
        ),
        max_size=6,
    ),
    st.data(),
)
def test_python_app_values_survive_any_chunking(
    values: list[object], data: st.DataObject
) -> None:
    stream = b"".join(
        b"data: " + json.dumps(v, ensure_ascii=False).encode() + b"\n\n" for v in values
    )
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    events, _ = decode("text/event-stream", *split_at(stream, cuts))
    assert [event.data for event in events] == values


def test_answer_size_limits() -> None:
    decoder = AgentStreamDecoder("application/json", max_body_size=10)
    decoder.feed(b"[1, 2, 3,")
    with pytest.raises(ProtocolError):
        decoder.feed(b" 4]")
    streaming = AgentStreamDecoder("text/event-stream", max_event_size=10)
    with pytest.raises(ProtocolError):
        streaming.feed(b"data: " + b"x" * 20 + b"\n")
