"""Client protocol v1: parsing client frames and encoding bridge frames."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcore_bridge import protocol
from agentcore_bridge.exceptions import FrameError, ValidationError
from agentcore_bridge.protocol import (
    ERROR_CODES,
    Cancel,
    Invoke,
    Ping,
    encode_cancel,
    encode_chunk,
    encode_end,
    encode_error,
    encode_frame_error,
    encode_invoke,
    encode_ping,
    encode_pong,
    encode_session,
    parse_client_frame,
)

ids = st.text(
    alphabet=st.characters(
        min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'
    ),
    min_size=1,
    max_size=64,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def reject(frame: str | bytes, **kwargs: object) -> FrameError:
    with pytest.raises(FrameError) as info:
        parse_client_frame(frame, **kwargs)  # type: ignore[arg-type]
    return info.value


# Parsing: accepted frames.


def test_invoke_is_parsed_with_payload_and_session() -> None:
    frame = parse_client_frame(
        '{"type":"invoke","id":"q1","payload":{"prompt":"hi"},"session":"tok"}'
    )
    assert frame == Invoke("q1", {"prompt": "hi"}, "tok")


def test_invoke_without_session_has_none() -> None:
    assert parse_client_frame('{"type":"invoke","id":"q1","payload":null}') == Invoke(
        "q1", None, None
    )


def test_invoke_with_null_session_has_none() -> None:
    frame = parse_client_frame('{"type":"invoke","id":"q","payload":1,"session":null}')
    assert isinstance(frame, Invoke)
    assert frame.session is None


def test_cancel_and_ping_are_parsed() -> None:
    assert parse_client_frame('{"type":"cancel","id":"q1"}') == Cancel("q1")
    assert parse_client_frame('{"type":"ping","id":"p"}') == Ping("p")
    assert parse_client_frame('{"type":"ping"}') == Ping(None)
    assert parse_client_frame('{"type":"ping","id":null}') == Ping(None)


def test_utf8_bytes_frame_is_accepted() -> None:
    raw = '{"type":"invoke","id":"a","payload":"grüße 😀"}'.encode()
    assert parse_client_frame(raw) == Invoke("a", "grüße 😀")


def test_unknown_fields_are_ignored_for_later_versions() -> None:
    frame = parse_client_frame('{"type":"cancel","id":"a","reason":"user","v":2}')
    assert frame == Cancel("a")


def test_frame_types_are_exposed_as_class_constants() -> None:
    assert (Invoke.type, Cancel.type, Ping.type) == ("invoke", "cancel", "ping")


@given(id_=ids, payload=json_values)
def test_encode_invoke_parses_back(id_: str, payload: object) -> None:
    """Whatever a client encodes with encode_invoke, the bridge parses back."""
    frame = parse_client_frame(encode_invoke(id_, payload, session="s"))
    assert frame == Invoke(id_, payload, "s")


@given(id_=ids)
def test_encode_cancel_and_ping_parse_back(id_: str) -> None:
    assert parse_client_frame(encode_cancel(id_)) == Cancel(id_)
    assert parse_client_frame(encode_ping(id_)) == Ping(id_)
    assert parse_client_frame(encode_ping()) == Ping(None)


def test_payload_json_is_compact_and_round_trips() -> None:
    frame = parse_client_frame('{"type":"invoke","id":"a","payload":{"k": [1, "é"]}}')
    assert isinstance(frame, Invoke)
    assert frame.payload_json() == '{"k":[1,"é"]}'


def test_payload_json_escapes_lone_surrogates() -> None:
    """A lone surrogate from a JSON escape stays encodable as UTF-8."""
    frame = parse_client_frame('{"type":"invoke","id":"a","payload":"x\\ud800y"}')
    assert isinstance(frame, Invoke)
    text = frame.payload_json()
    text.encode("utf-8")
    assert json.loads(text) == "x\ud800y"


def test_repr_hides_payload_and_session() -> None:
    frame = Invoke("a", {"secret": "hunter2"}, "token-value")
    assert "hunter2" not in repr(frame)
    assert "token-value" not in repr(frame)
    assert "'a'" in repr(frame)


# Parsing: refused frames.


def test_binary_frame_is_refused() -> None:
    error = reject(b'{"type":"ping"}', binary=True)
    assert error.code == "bad_request"
    assert "binary" in error.message


def test_invalid_json_is_refused_without_echo() -> None:
    error = reject('{"type":"invoke","id":"a","payload":{"pw":"hunter2"')
    assert error.code == "bad_request"
    assert "not valid JSON" in error.message
    assert "hunter2" not in error.message
    assert error.id is None


def test_invalid_utf8_is_refused() -> None:
    error = reject(b'{"type":"ping","id":"\xff"}')
    assert error.code == "bad_request"
    assert "UTF-8" in error.message


@pytest.mark.parametrize("text", ["[]", '"invoke"', "3", "null", "true"])
def test_non_object_json_is_refused(text: str) -> None:
    error = reject(text)
    assert error.code == "bad_request"
    assert "JSON object" in error.message


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"invoke","id":"a","payload":NaN}',
        '{"type":"invoke","id":"a","payload":-Infinity}',
        '{"type":"invoke","id":"a","payload":' + "9" * 5000 + "}",
    ],
)
def test_non_standard_numbers_are_refused(text: str) -> None:
    assert reject(text).code == "bad_request"


def test_deep_nesting_is_refused_not_crashed() -> None:
    error = reject('{"type":"invoke","id":"a","payload":' + "[" * 100_000)
    assert error.code == "bad_request"


def test_missing_type_is_refused_with_id() -> None:
    error = reject('{"id":"a","payload":1}')
    assert (error.code, error.id) == ("bad_request", "a")
    assert "no type" in error.message


def test_unknown_type_is_named_when_short_and_plain() -> None:
    error = reject('{"type":"invok","id":"a"}')
    assert (error.code, error.id) == ("bad_request", "a")
    assert "'invok'" in error.message


def test_unknown_type_with_odd_content_is_not_echoed() -> None:
    error = reject('{"type":"<script>alert(1)</script>"}')
    assert "script" not in error.message


def test_part_frames_from_clients_are_refused() -> None:
    error = reject('{"type":"part","of":"m","n":0,"total":2,"text":"x"}')
    assert error.code == "bad_request"
    assert "cannot be split" in error.message


def test_invoke_without_id_is_refused() -> None:
    error = reject('{"type":"invoke","payload":1}')
    assert (error.code, error.id) == ("bad_request", None)
    assert "id is missing" in error.message


@pytest.mark.parametrize(
    "raw_id",
    [
        '""',
        '"' + "a" * 65 + '"',
        '"with space"',
        '"tab\\t"',
        '"é"',
        '"q\\"x"',
        "7",
        "[]",
    ],
)
def test_invoke_with_bad_id_is_refused_without_echo(raw_id: str) -> None:
    error = reject('{"type":"invoke","id":' + raw_id + ',"payload":1}')
    assert (error.code, error.id) == ("bad_request", None)
    assert "printable ASCII" in error.message


def test_invoke_without_payload_is_refused_with_id() -> None:
    error = reject('{"type":"invoke","id":"a"}')
    assert (error.code, error.id) == ("bad_request", "a")
    assert "payload is missing" in error.message


@pytest.mark.parametrize("session", ['""', "5", "{}", '"' + "t" * 513 + '"'])
def test_invoke_with_bad_session_is_refused_with_id(session: str) -> None:
    error = reject('{"type":"invoke","id":"a","payload":1,"session":' + session + "}")
    assert (error.code, error.id) == ("bad_request", "a")
    assert "session" in error.message


def test_cancel_with_bad_id_is_refused() -> None:
    assert reject('{"type":"cancel"}').code == "bad_request"
    assert reject('{"type":"cancel","id":""}').code == "bad_request"


def test_ping_with_bad_id_is_refused() -> None:
    assert reject('{"type":"ping","id":5}').code == "bad_request"


def test_id_of_64_chars_is_accepted_and_65_refused() -> None:
    assert parse_client_frame('{"type":"cancel","id":"' + "x" * 64 + '"}') == Cancel(
        "x" * 64
    )
    assert reject('{"type":"cancel","id":"' + "x" * 65 + '"}').code == "bad_request"


# Parsing: size limit.


def test_frame_at_the_limit_is_accepted() -> None:
    frame = '{"type":"invoke","id":"a","payload":"' + "é" * 20 + '"}'
    size = len(frame.encode())
    assert parse_client_frame(frame, max_frame_bytes=size) == Invoke("a", "é" * 20)


def test_frame_over_the_limit_in_utf8_bytes_is_refused() -> None:
    """The limit counts UTF-8 bytes, not characters."""
    frame = '{"type":"invoke","id":"a","payload":"' + "é" * 20 + '"}'
    size = len(frame.encode())
    assert len(frame) < size - 1
    error = reject(frame, max_frame_bytes=size - 1)
    assert error.code == "payload_too_large"
    assert str(size - 1) in error.message


def test_oversize_frame_echoes_a_leading_id() -> None:
    big = "x" * 200_000
    for frame in (
        '{"type":"invoke","id":"q-7","payload":"' + big + '"}',
        '{ "id" : "q-7", "type": "invoke", "payload": "' + big + '"}',
    ):
        error = reject(frame)
        assert (error.code, error.id) == ("payload_too_large", "q-7")
        assert reject(frame.encode()).id == "q-7"


def test_oversize_frame_does_not_guess_a_nested_id() -> None:
    frame = (
        '{"payload":{"id":"inner"},"type":"invoke","id":"a","x":"' + "x" * 9000 + '"}'
    )
    error = reject(frame, max_frame_bytes=1000)
    assert (error.code, error.id) == ("payload_too_large", None)


def test_default_limit_is_api_gateways_message_quota() -> None:
    assert protocol.DEFAULT_MAX_FRAME_BYTES == 131072 == protocol.DEFAULT_SPLIT_LIMIT


# Bridge frames.


def test_bridge_frames_are_compact_json_with_type_first() -> None:
    assert encode_chunk("a", 0, {"t": "é"}) == (
        '{"type":"chunk","id":"a","seq":0,"data":{"t":"é"}}'
    )
    assert encode_end("a", 3) == '{"type":"end","id":"a","seq":3}'
    assert encode_session("tok", 1700000000) == (
        '{"type":"session","session":"tok","expires":1700000000}'
    )
    assert encode_pong("p") == '{"type":"pong","id":"p"}'
    assert encode_pong() == '{"type":"pong","id":null}'


def test_error_frame_takes_the_codes_retryable_flag() -> None:
    assert json.loads(encode_error("a", "timeout", "took too long")) == {
        "type": "error",
        "id": "a",
        "code": "timeout",
        "message": "took too long",
        "retryable": True,
    }
    assert json.loads(encode_error(None, "bad_request", "m"))["retryable"] is False


def test_error_frame_retryable_can_be_overridden() -> None:
    frame = json.loads(encode_error("a", "agent_error", "m", retryable=True))
    assert frame["retryable"] is True


def test_error_frame_refuses_unknown_codes() -> None:
    with pytest.raises(ValidationError):
        encode_error("a", "oops", "m")


def test_frame_error_becomes_an_error_frame() -> None:
    error = reject('{"type":"invoke","id":"a"}')
    frame = json.loads(encode_frame_error(error))
    assert frame["type"] == "error"
    assert frame["id"] == "a"
    assert frame["code"] == "bad_request"
    assert frame["retryable"] is False


def test_frame_error_with_unknown_code_is_sent_as_internal() -> None:
    frame = json.loads(encode_frame_error(FrameError("weird", "m", id="a")))
    assert frame["code"] == "internal"


def test_error_codes_are_the_documented_set() -> None:
    assert dict(ERROR_CODES) == {
        "bad_request": False,
        "payload_too_large": False,
        "unauthorized": False,
        "duplicate_id": False,
        "too_many_invocations": True,
        "rate_limited": True,
        "cancelled": False,
        "timeout": True,
        "agent_error": False,
        "agent_unavailable": True,
        "going_away": True,
        "internal": False,
    }
    assert protocol.is_retryable("timeout")
    assert not protocol.is_retryable("no_such_code")


@given(id_=ids, seq=st.integers(min_value=0, max_value=2**53), data=json_values)
def test_chunk_round_trips_through_json(id_: str, seq: int, data: object) -> None:
    text = encode_chunk(id_, seq, data)
    text.encode("utf-8")
    assert json.loads(text) == {"type": "chunk", "id": id_, "seq": seq, "data": data}


def test_chunk_data_with_lone_surrogate_stays_utf8_encodable() -> None:
    text = encode_chunk("a", 0, "bad \udc80 half")
    text.encode("utf-8")
    assert json.loads(text)["data"] == "bad \udc80 half"


@pytest.mark.parametrize("data", [float("nan"), float("inf"), {1, 2}, object()])
def test_chunk_refuses_data_that_is_not_json(data: object) -> None:
    with pytest.raises(ValidationError):
        encode_chunk("a", 0, data)


@pytest.mark.parametrize("seq", [-1, True, 1.0, "1"])
def test_chunk_and_end_refuse_bad_seq(seq: object) -> None:
    with pytest.raises(ValidationError):
        encode_chunk("a", seq, 1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        encode_end("a", seq)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_id", ["", "a b", 'q"', "x" * 65, None])
def test_encoders_refuse_ids_outside_the_rule(bad_id: str) -> None:
    with pytest.raises(ValidationError):
        encode_chunk(bad_id, 0, 1)
    with pytest.raises(ValidationError):
        encode_end(bad_id, 0)


@pytest.mark.parametrize("expires", [float("nan"), "soon", True])
def test_session_frame_refuses_bad_expiry(expires: object) -> None:
    with pytest.raises(ValidationError):
        encode_session("tok", expires)  # type: ignore[arg-type]


def test_error_code_table_in_the_docs_matches_the_code() -> None:
    """docs/protocol.md lists every code with its retryable flag."""
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
    rows = {}
    for line in docs.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1] in ("yes", "no"):
            rows[cells[0].strip("`")] = cells[1] == "yes"
    assert rows == dict(ERROR_CODES)


def test_protocol_modules_import_only_the_standard_library() -> None:
    """protocol, sessions and client load no third-party module and no asyncio."""
    import subprocess
    import sys

    code = (
        "import sys, agentcore_bridge.protocol, agentcore_bridge.sessions, "
        "agentcore_bridge.client\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(roots & {'aiohttp', 'yarl', 'multidict', 'botocore', "
        "'boto3', 'asyncio', 'typing_extensions'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
