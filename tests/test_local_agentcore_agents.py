"""Real ``BedrockAgentCoreApp`` agents behind the emulator.

HTTP goes through a real botocore client, WebSocket through the
``websockets`` library, and the tests compare the exact bytes and frames
the agents produce with what comes out of the emulator.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
import websockets
from botocore.config import Config

from agentcore_bridge.agentcore import SESSION_ID_HEADER
from agentcore_bridge.sigv4 import sign_headers
from agents import (
    STREAMING_ITEMS,
    failing_agent,
    failing_sse,
    returning_agent,
    sse_bytes,
    streaming_agent,
    websocket_agent,
)
from emulator_calls import new_session_id
from stack import Emulator, agentcore_emulator, asgi_agent


@contextmanager
def behind_emulator(make_agent: Callable[[], Any]) -> Iterator[Emulator]:
    with (
        asgi_agent(make_agent()) as agent_url,
        agentcore_emulator(agent_url) as emulator,
    ):
        yield emulator


def client_for(emulator: Emulator) -> Any:
    return botocore.session.get_session().create_client(
        "bedrock-agentcore",
        region_name=emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=emulator.credentials.access_key_id,
        aws_secret_access_key=emulator.credentials.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


def invoke(emulator: Emulator, payload: Any, session_id: str) -> dict[str, Any]:
    response: dict[str, Any] = client_for(emulator).invoke_agent_runtime(
        agentRuntimeArn=emulator.runtime_arn,
        runtimeSessionId=session_id,
        payload=json.dumps(payload),
    )
    response["body"] = response["response"].read()
    return response


def test_a_streaming_agents_events_come_through_unchanged() -> None:
    with behind_emulator(streaming_agent) as emulator:
        session_id = new_session_id()
        response = invoke(emulator, {"prompt": "hi"}, session_id)
    assert response["contentType"] == "text/event-stream; charset=utf-8"
    assert response["runtimeSessionId"] == session_id
    expected = [*STREAMING_ITEMS, {"session": session_id, "prompt": "hi"}]
    assert response["body"] == sse_bytes(expected)


def test_a_returning_agents_json_comes_through_unchanged() -> None:
    with behind_emulator(returning_agent) as emulator:
        session_id = new_session_id()
        response = invoke(emulator, {"prompt": "hi"}, session_id)
    assert response["contentType"] == "application/json"
    assert json.loads(response["body"]) == {
        "answer": "You said: hi",
        "session": session_id,
    }


def test_an_agent_failing_mid_stream_ends_with_its_error_event_on_a_200() -> None:
    with behind_emulator(failing_agent) as emulator:
        response = invoke(emulator, {"prompt": "hi"}, new_session_id())
    assert response["statusCode"] == 200
    assert response["body"] == failing_sse()


def test_a_websocket_agent_sees_the_session_and_echoes_frames() -> None:
    async def scenario(emulator: Emulator, session_id: str) -> None:
        url = emulator.runtime_url("ws")
        headers = {SESSION_ID_HEADER: session_id}
        headers.update(
            sign_headers(
                "GET",
                url,
                headers,
                credentials=emulator.credentials,
                region=emulator.region,
                service="bedrock-agentcore",
            )
        )
        ws_url = "ws://" + url.removeprefix("http://")
        async with websockets.connect(ws_url, additional_headers=headers) as ws:
            assert json.loads(await ws.recv()) == {"session": session_id}
            await ws.send("text frame")
            assert await ws.recv() == "text frame"
            await ws.send(b"\x00binary\xff")
            assert await ws.recv() == b"\x00binary\xff"
            await ws.send("close:4001")
            await ws.wait_closed()
            assert ws.close_code == 4001

    with behind_emulator(websocket_agent) as emulator:
        asyncio.run(scenario(emulator, new_session_id()))
