"""The emulator's WebSocket pass-through: frames, close codes, auth, faults."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import websockets
from aiohttp import WSMsgType, web
from yarl import URL

from agentcore_bridge.agentcore import SESSION_ID_HEADER
from agentcore_bridge.sigv4 import presign_url, sign_headers
from emulator_calls import new_session_id, stop
from stack import Emulator, agentcore_emulator, local_stack, running_app

RECEIVE_TIMEOUT = 10


def signed_upgrade(
    emulator: Emulator, session_id: str, **query: str
) -> tuple[str, dict[str, str]]:
    """The URL and the headers of a SigV4-signed WebSocket upgrade."""
    url = emulator.runtime_url("ws", **query)
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
    return url, headers


def presigned(emulator: Emulator, session_id: str, now: float | None = None) -> str:
    url = emulator.runtime_url("ws", **{SESSION_ID_HEADER: session_id})
    signed = presign_url(
        "GET",
        url,
        credentials=emulator.credentials,
        region=emulator.region,
        service="bedrock-agentcore",
        now=now,
    )
    return "ws://" + signed.removeprefix("http://")


@asynccontextmanager
async def connected(
    emulator: Emulator, session_id: str | None = None
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    url, headers = signed_upgrade(emulator, session_id or new_session_id())
    timeout = aiohttp.ClientWSTimeout(ws_receive=RECEIVE_TIMEOUT)
    # encoded=True: yarl would otherwise decode the ARN's "%3A" back to ":"
    # and the path sent would no longer be the path signed.
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(URL(url, encoded=True), headers=headers, timeout=timeout) as ws,
    ):
        yield ws


async def chat(ws: aiohttp.ClientWebSocketResponse, prompt: str) -> list[Any]:
    """Send a prompt to the demo agent; return its frames up to ``end``."""
    await ws.send_str(json.dumps({"prompt": prompt}))
    frames = []
    while True:
        frame = json.loads(await ws.receive_str())
        frames.append(frame)
        if frame["type"] == "end":
            return frames


def test_text_and_binary_frames_pass_through_both_ways() -> None:
    async def scenario(emulator: Emulator) -> None:
        async with connected(emulator) as ws:
            await ws.send_str("plain text")
            assert await ws.receive_str() == "plain text"
            await ws.send_bytes(b"\x00\xffbinary\x80")
            assert await ws.receive_bytes() == b"\x00\xffbinary\x80"
            big = bytes(range(256)) * 4096
            await ws.send_bytes(big)
            assert await ws.receive_bytes() == big

    with local_stack() as emulator:
        asyncio.run(scenario(emulator))
        assert emulator.stats()["log"][-1]["status"] == 101


def test_the_session_carries_over_between_connections() -> None:
    async def scenario(emulator: Emulator, session_id: str) -> None:
        async with connected(emulator, session_id) as ws:
            frames = await chat(ws, "first")
            assert frames[0] == {"type": "chunk", "data": "Turn"}
            assert frames[-1] == {"type": "end", "turn": 1}
        async with connected(emulator, session_id) as ws:
            assert (await chat(ws, "second"))[-1] == {"type": "end", "turn": 2}

    with local_stack() as emulator:
        session_id = new_session_id()
        asyncio.run(scenario(emulator, session_id))
        stats = emulator.session_stats(session_id)
        assert (stats["ws_connections"], stats["cold_starts"]) == (2, 1)


def test_the_agents_close_code_and_reason_reach_the_client() -> None:
    async def scenario(emulator: Emulator) -> None:
        async with connected(emulator) as ws:
            await ws.send_str(json.dumps({"close": 4001, "reason": "agent done"}))
            message = await ws.receive()
            assert message.type is WSMsgType.CLOSE
            assert (message.data, message.extra) == (4001, "agent done")

    with local_stack() as emulator:
        asyncio.run(scenario(emulator))


def recording_agent(closes: list[tuple[int | None, str]], done: threading.Event):
    """An agent whose /ws records the close code and reason it receives."""

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        message = await ws.receive()
        closes.append((message.data, message.extra))
        done.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    return app


def test_the_clients_close_code_and_reason_reach_the_agent() -> None:
    closes: list[tuple[int | None, str]] = []
    done = threading.Event()

    async def scenario(emulator: Emulator) -> None:
        async with connected(emulator) as ws:
            await ws.close(code=4002, message=b"client leaves")

    with (
        running_app(recording_agent(closes, done)) as agent_url,
        agentcore_emulator(agent_url) as emulator,
    ):
        asyncio.run(scenario(emulator))
        assert done.wait(RECEIVE_TIMEOUT)
    assert closes == [(4002, "client leaves")]


def test_a_presigned_url_opens_the_socket_with_the_session_in_the_query() -> None:
    async def scenario(emulator: Emulator, session_id: str) -> None:
        async with websockets.connect(presigned(emulator, session_id)) as ws:
            await ws.send(json.dumps({"prompt": "hi"}))
            frames = [json.loads(await ws.recv()) for _ in range(9)]
            # The agent got the session id from the query as its header.
            assert frames[0] == {"type": "chunk", "data": "Turn"}
            assert frames[-1] == {"type": "end", "turn": 1}
            await ws.send(b"\x01\x02")
            assert await ws.recv() == b"\x01\x02"

    with local_stack() as emulator:
        session_id = new_session_id()
        asyncio.run(scenario(emulator, session_id))
        entry = emulator.stats()["log"][-1]
        assert (entry["session_id"], entry["presigned"]) == (session_id, True)


def expect_refused(url: str, headers: dict[str, str] | None = None) -> Any:
    """Open ``url`` with websockets and return the HTTP answer that refused it."""

    async def attempt() -> Any:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url, additional_headers=headers):
                pass
        return refused.value.response

    return asyncio.run(attempt())


def test_an_expired_presigned_url_is_refused_with_403() -> None:
    with local_stack() as emulator:
        url = presigned(emulator, new_session_id(), now=time.time() - 400)
        response = expect_refused(url)
        assert response.status_code == 403
        assert response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        assert json.loads(response.body)["message"].startswith("Signature expired")


def test_an_unsigned_upgrade_is_refused_with_403() -> None:
    with local_stack() as emulator:
        url = "ws://" + emulator.runtime_url("ws").removeprefix("http://")
        response = expect_refused(url, {SESSION_ID_HEADER: new_session_id()})
        assert response.status_code == 403
        assert (
            response.headers["x-amzn-ErrorType"]
            == "MissingAuthenticationTokenException"
        )


def test_an_agent_without_a_websocket_endpoint_is_a_runtime_client_error() -> None:
    with (
        running_app(web.Application()) as agent_url,
        agentcore_emulator(agent_url) as emulator,
    ):
        url, headers = signed_upgrade(emulator, new_session_id())
        response = expect_refused("ws://" + url.removeprefix("http://"), headers)
        assert response.status_code == 424
        assert response.headers["x-amzn-ErrorType"] == "RuntimeClientError"


def test_a_close_fault_closes_with_its_code_after_k_frames() -> None:
    async def scenario(emulator: Emulator) -> None:
        async with connected(emulator) as ws:
            for text in ("one", "two", "three"):
                await ws.send_str(text)
            assert await ws.receive_str() == "one"
            assert await ws.receive_str() == "two"
            message = await ws.receive()
            assert message.type is WSMsgType.CLOSE
            assert (message.data, message.extra) == (1011, "injected")

    with local_stack() as emulator:
        emulator.add_fault(
            "close", operation="ws", after_frames=2, code=1011, reason="injected"
        )
        asyncio.run(scenario(emulator))


def test_a_reset_fault_aborts_the_socket_after_k_frames() -> None:
    async def scenario(emulator: Emulator) -> None:
        async with connected(emulator) as ws:
            await ws.send_str("one")
            await ws.send_str("two")
            assert await ws.receive_str() == "one"
            message = await ws.receive()
            assert message.type in (WSMsgType.CLOSED, WSMsgType.ERROR)
            assert ws.close_code == 1006

    with local_stack() as emulator:
        emulator.add_fault("reset", operation="ws", after_frames=1)
        asyncio.run(scenario(emulator))
        assert emulator.stats()["log"][-1]["outcome"] == "reset"


def test_an_error_fault_refuses_the_upgrade() -> None:
    with local_stack() as emulator:
        emulator.add_fault(
            "error", operation="ws", status=503, error_type="InternalServerException"
        )
        url, headers = signed_upgrade(emulator, new_session_id())
        response = expect_refused("ws://" + url.removeprefix("http://"), headers)
        assert response.status_code == 503
        assert response.headers["x-amzn-ErrorType"] == "InternalServerException"


def test_the_rate_limit_applies_to_websocket_upgrades() -> None:
    with local_stack(rate_limit=0.01) as emulator:
        url, headers = signed_upgrade(emulator, new_session_id())
        ws_url = "ws://" + url.removeprefix("http://")

        async def open_once() -> None:
            async with websockets.connect(ws_url, additional_headers=headers):
                pass

        asyncio.run(open_once())
        response = expect_refused(ws_url, headers)
        assert response.status_code == 429
        assert response.headers["x-amzn-ErrorType"] == "ThrottlingException"


def test_stopping_the_session_closes_its_socket_with_1001() -> None:
    async def scenario(emulator: Emulator, session_id: str) -> None:
        async with connected(emulator, session_id) as ws:
            await ws.send_str("hello")
            assert await ws.receive_str() == "hello"
            answer = await asyncio.to_thread(stop, emulator, session_id)
            assert answer.status == 200
            message = await ws.receive()
            assert message.type is WSMsgType.CLOSE
            assert message.data == 1001

    with local_stack() as emulator:
        asyncio.run(scenario(emulator, new_session_id()))


def test_a_cold_start_delays_the_upgrade() -> None:
    async def scenario(emulator: Emulator) -> float:
        started = time.monotonic()
        async with connected(emulator):
            return time.monotonic() - started

    with local_stack(cold_start=0.2) as emulator:
        assert asyncio.run(scenario(emulator)) >= 0.2
        assert emulator.stats()["cold_starts"] == 1
