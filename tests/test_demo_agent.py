"""The demo agent follows the container contract the way BedrockAgentCoreApp does."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from agentcore_bridge.agentcore import SESSION_ID_HEADER
from agents import streaming_agent
from stack import asgi_agent, demo_agent

SESSION = "demo-session-00000000000000000000000001"


@pytest.fixture(scope="module")
def agent_url() -> Iterator[str]:
    with demo_agent() as url:
        yield url


def post(
    agent_url: str,
    payload: Any,
    session_id: str | None = None,
    raw: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection(agent_url.removeprefix("http://"))
    headers = {"Content-Type": "application/json"}
    if session_id:
        headers[SESSION_ID_HEADER] = session_id
    body = raw if raw is not None else json.dumps(payload).encode()
    connection.request("POST", "/invocations", body=body, headers=headers)
    response = connection.getresponse()
    result = response.status, response.headers, response.read()
    connection.close()
    return result


def events(body: bytes) -> list[Any]:
    """Split an SSE body, checking every event is exactly ``data: <json>``."""
    assert body.endswith(b"\n\n")
    return [json.loads(e.removeprefix(b"data: ")) for e in body[:-2].split(b"\n\n")]


def test_invocations_stream_each_word_as_a_json_quoted_sse_event(
    agent_url: str,
) -> None:
    status, headers, body = post(agent_url, {"prompt": "hi you"})
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert body == (
        b'data: "No"\n\ndata: " session."\n\ndata: " You"\n\ndata: " said:"\n\n'
        b'data: " hi"\n\ndata: " you"\n\n'
    )


def test_the_sse_content_type_is_the_one_bedrock_agentcore_app_sends(
    agent_url: str,
) -> None:
    with asgi_agent(streaming_agent()) as reference_url:
        _, reference, _ = post(reference_url, {"prompt": "x"})
    _, ours, _ = post(agent_url, {"prompt": "x"})
    assert ours["Content-Type"] == reference["Content-Type"]


def test_each_session_counts_its_turns(agent_url: str) -> None:
    session = "turns-" + "0" * 30
    first = "".join(events(post(agent_url, {"prompt": "a"}, session)[2]))
    second = "".join(events(post(agent_url, {"prompt": "b"}, session)[2]))
    other = "".join(events(post(agent_url, {"prompt": "c"}, SESSION + "x")[2]))
    assert first.startswith("Turn 1 of this session.")
    assert second.startswith("Turn 2 of this session.")
    assert other.startswith("Turn 1 of this session.")


def test_words_makes_a_long_answer(agent_url: str) -> None:
    pieces = events(post(agent_url, {"prompt": "", "words": 500})[2])
    assert len(pieces) == 4 + 500  # "No session. You said:" and 500 more


def test_size_makes_an_answer_of_exactly_that_many_characters(agent_url: str) -> None:
    pieces = events(post(agent_url, {"prompt": "", "size": 100_000, "chunk": 4096})[2])
    filler = pieces[4:]
    assert len(filler) == 25
    assert sum(len(p) for p in filler) == 100_000


def test_a_huge_size_streams_at_once_and_is_capped(agent_url: str) -> None:
    """The filler is made as it is sent: no waiting for, or holding, all of it."""
    connection = http.client.HTTPConnection(agent_url.removeprefix("http://"))
    body = json.dumps({"prompt": "", "size": 10**12, "chunk": 1, "words": 10**12})
    started = time.monotonic()
    connection.request("POST", "/invocations", body=body)
    response = connection.getresponse()
    assert response.status == 200
    assert response.read(10) == b'data: "No"'
    assert time.monotonic() - started < 2
    connection.close()


def test_the_answer_size_is_capped_at_the_agentcore_response_limit(
    agent_url: str,
) -> None:
    payload = {"prompt": "", "json": True, "size": 10**12, "chunk": 10**12}
    status, _, body = post(agent_url, payload)
    assert status == 200
    assert len(json.loads(body)["answer"]) == len("No session. You said:") + 10**8


def test_an_infinite_delay_is_ignored(agent_url: str) -> None:
    connection = http.client.HTTPConnection(
        agent_url.removeprefix("http://"), timeout=10
    )
    # Python's json reads 1e999 as infinity.
    body = b'{"prompt": "a b", "delay": 1e999}'
    connection.request("POST", "/invocations", body=body)
    response = connection.getresponse()
    assert events(response.read())[-2:] == [" a", " b"]
    connection.close()


def test_fail_after_ends_with_the_bedrock_agentcore_app_error_event(
    agent_url: str,
) -> None:
    status, _, body = post(agent_url, {"prompt": "a b c", "fail_after": 2})
    assert status == 200
    *pieces, error = events(body)
    assert pieces == ["No", " session."]
    assert set(error) == {"error", "error_type", "message"}
    assert error["message"] == "An error occurred during streaming"


def test_json_answers_once_with_application_json(agent_url: str) -> None:
    status, headers, body = post(agent_url, {"prompt": "hi", "json": True}, SESSION)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    answer = json.loads(body)
    assert answer["answer"].endswith("You said: hi")
    assert answer["session_id"] == SESSION


def test_status_answers_with_that_error_status(agent_url: str) -> None:
    status, _, body = post(agent_url, {"status": 503})
    assert status == 503
    assert "error" in json.loads(body)


@pytest.mark.parametrize("json_answer", [False, True], ids=["sse", "json"])
def test_a_prompt_with_a_lone_surrogate_is_echoed_as_its_json_escape(
    agent_url: str, json_answer: bool
) -> None:
    """UTF-8 cannot hold "\\ud800"; the answer carries it JSON-escaped."""
    raw = b'{"prompt": "a\\ud800b", "json": %s}' % (
        b"true" if json_answer else b"false"
    )
    status, _, body = post(agent_url, None, raw=raw)
    assert status == 200
    body.decode()  # valid UTF-8
    answer = json.loads(body)["answer"] if json_answer else "".join(events(body))
    assert answer.endswith("You said: a\ud800b")


def test_a_body_that_is_not_json_is_a_400(agent_url: str) -> None:
    status, _, body = post(agent_url, None, raw=b"{not json")
    assert status == 400
    assert json.loads(body)["error"] == "Invalid JSON"


def test_ping_reports_healthy_with_a_unix_timestamp(agent_url: str) -> None:
    connection = http.client.HTTPConnection(agent_url.removeprefix("http://"))
    connection.request("GET", "/ping")
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert answer["status"] == "Healthy"
    assert isinstance(answer["time_of_last_update"], int)
    assert abs(answer["time_of_last_update"] - time.time()) < 3600


def test_the_websocket_echoes_frames_chats_and_closes_on_request(
    agent_url: str,
) -> None:
    async def scenario() -> None:
        url = "ws://" + agent_url.removeprefix("http://") + "/ws"
        async with websockets.connect(
            url, additional_headers={SESSION_ID_HEADER: "ws-" + "1" * 33}
        ) as ws:
            await ws.send("echo me")
            assert await ws.recv() == "echo me"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
            await ws.send(json.dumps({"prompt": "hi"}))
            frames = []
            while not frames or frames[-1]["type"] != "end":
                frames.append(json.loads(await ws.recv()))
            text = "".join(f["data"] for f in frames[:-1])
            assert text == "Turn 1 of this session. You said: hi"
            # Codes that cannot go in a close frame are echoed like any text.
            for unsendable in ({"close": 1005}, {"close": 70000}, {"close": True}):
                await ws.send(json.dumps(unsendable))
                assert json.loads(await ws.recv()) == unsendable
            too_long = json.dumps({"close": 4000, "reason": "x" * 124})
            await ws.send(too_long)
            assert await ws.recv() == too_long
            await ws.send(json.dumps({"close": 4000, "reason": "bye"}))
            await ws.wait_closed()
            assert (ws.close_code, ws.close_reason) == (4000, "bye")

    asyncio.run(scenario())


def test_the_demo_agent_command_serves_until_interrupted() -> None:
    """``agentcore-bridge demo-agent --port 0`` prints its URL and answers there."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agentcore_bridge.cli", "demo-agent", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        status, _, _ = post(url, {"prompt": "x"})
        assert status == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("flag", ["--cold-start", "--word-delay"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_the_demo_command_refuses_a_delay_that_is_not_finite(
    flag: str, value: str
) -> None:
    from agentcore_bridge.local.demo import main as demo_main

    with pytest.raises(SystemExit) as exited:
        demo_main([flag, value])
    assert exited.value.code == 2
