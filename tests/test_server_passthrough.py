"""/agent/ws joins a client to the agent's own WebSocket through AgentCore."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
import websockets
from aiohttp import WSMsgType, web

from agentcore_bridge.config import Settings
from agentcore_bridge.credentials import Credentials
from agentcore_bridge.server import create_app, get_server
from server_helpers import Bridge, ProtocolClient, bridge_stack, closed_with, wait_for
from stack import agentcore_emulator, running_app

ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/demo_agent-LocalEmu01"


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def chat(ws: Any, prompt: str) -> list[dict[str, Any]]:
    """Send a prompt to the demo agent's /ws; return its frames up to "end"."""
    await ws.send(json.dumps({"prompt": prompt}))
    frames = [json.loads(await ws.recv())]
    while frames[-1]["type"] != "end":
        frames.append(json.loads(await ws.recv()))
    return frames


@pytest.fixture(scope="module")
def bridge() -> Iterator[Bridge]:
    with bridge_stack() as running:
        yield running


def test_text_frames_pass_both_ways(bridge: Bridge) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with websockets.connect(bridge.ws_url("/agent/ws")) as ws:
            return await chat(ws, "through the pass-through")

    frames = run(scenario())
    text = "".join(f["data"] for f in frames if f["type"] == "chunk")
    assert text == "Turn 1 of this session. You said: through the pass-through"
    assert frames[-1] == {"type": "end", "turn": 1}


def test_binary_frames_pass_both_ways_unchanged(bridge: Bridge) -> None:
    payload = bytes(range(256)) * 40

    async def scenario() -> Any:
        async with websockets.connect(bridge.ws_url("/agent/ws")) as ws:
            await ws.send(payload)
            return await ws.recv()

    assert run(scenario()) == payload


def test_the_agents_close_code_and_reason_reach_the_client(bridge: Bridge) -> None:
    async def scenario() -> tuple[int | None, str]:
        async with websockets.connect(bridge.ws_url("/agent/ws")) as ws:
            await ws.send(json.dumps({"close": 4001, "reason": "agent says bye"}))
            try:
                await ws.recv()
            except websockets.ConnectionClosed as exc:
                return closed_with(exc)
        raise AssertionError("not closed")

    assert run(scenario()) == (4001, "agent says bye")


def test_the_upgrade_is_signed_and_can_be_presigned_instead() -> None:
    for presign in (False, True):
        with bridge_stack(passthrough_presign=presign) as bridge:

            async def scenario(url: str) -> None:
                async with websockets.connect(url) as ws:
                    await chat(ws, "x")

            run(scenario(bridge.ws_url("/agent/ws")))
            calls = [
                c for c in bridge.emulator.stats()["log"] if c["operation"] == "ws"
            ]
        assert [c["presigned"] for c in calls] == [presign]
        assert calls[0]["access_key_id"] == bridge.emulator.credentials.access_key_id


def test_a_session_token_from_ws_resumes_the_session_in_the_pass_through(
    bridge: Bridge,
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = await ProtocolClient.connect(bridge.ws_url())
        await client.run("q", {"prompt": "first turn over protocol v1"})
        token = client.session["session"] if client.session else ""
        await client.close()
        async with websockets.connect(bridge.ws_url("/agent/ws", session=token)) as ws:
            return await chat(ws, "second turn over the agent's own socket")

    assert run(scenario())[-1] == {"type": "end", "turn": 2}


def test_closing_ws_does_not_stop_the_session_an_open_pass_through_uses() -> None:
    """BRIDGE_STOP_SESSION_ON_DISCONNECT spares a session still in use."""
    with bridge_stack(stop_session_on_disconnect=True) as bridge:

        async def scenario() -> list[dict[str, Any]]:
            client = await ProtocolClient.connect(bridge.ws_url())
            await client.run("q", {"prompt": "first turn over protocol v1"})
            token = client.session["session"] if client.session else ""
            url = bridge.ws_url("/agent/ws", session=token)
            async with websockets.connect(url) as ws:
                await chat(ws, "second turn over the agent's own socket")
                await client.close()
                wait_for(lambda: not bridge.server.connections)
                # Give a stop call, were one made, the time to land.
                await asyncio.sleep(0.5)
                return await chat(ws, "third turn, same socket")

        frames = run(scenario())
        sessions = bridge.emulator.stats()["sessions"]
    assert frames[-1] == {"type": "end", "turn": 3}
    assert [s["stops"] for s in sessions.values()] == [0]


def test_a_client_that_gives_up_during_the_agents_cold_start_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The agent's socket is closed again, and nothing is logged as a bug."""
    caplog.set_level(logging.INFO)
    with bridge_stack(emulator_options={"cold_start": 1.0}) as bridge:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as http:
                connecting = asyncio.ensure_future(
                    http.ws_connect(bridge.ws_url("/agent/ws"))
                )
                await asyncio.sleep(0.3)
                connecting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await connecting

        run(scenario())
        wait_for(lambda: "left before its WebSocket upgrade" in caplog.text)
        wait_for(lambda: bridge.server.open_sockets == 0)
        sessions = bridge.emulator.stats()["sessions"]
    assert [s["ws_connections"] for s in sessions.values()] == [1]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


def test_an_invalid_session_token_closes_the_pass_through_with_1008(
    bridge: Bridge,
) -> None:
    async def scenario() -> tuple[int | None, str]:
        url = bridge.ws_url("/agent/ws", session="v1.bad.token")
        async with websockets.connect(url) as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed as exc:
                return closed_with(exc)
        raise AssertionError("not closed")

    code, reason = run(scenario())
    assert code == 1008
    assert "session token" in reason


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (403, "AccessDeniedException", 1011),
        (424, "RuntimeClientError", 1011),
        (429, "ThrottlingException", 1013),
        (503, "ServiceUnavailableException", 1013),
    ],
)
def test_a_refused_agent_connection_closes_the_client_with_a_clear_code(
    bridge: Bridge, status: int, error_type: str, code: int
) -> None:
    bridge.emulator.add_fault(
        "error", operation="ws", status=status, error_type=error_type
    )

    async def scenario() -> tuple[int | None, str]:
        async with websockets.connect(bridge.ws_url("/agent/ws")) as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed as exc:
                return closed_with(exc)
        raise AssertionError("not closed")

    try:
        closed = run(scenario())
    finally:
        bridge.emulator.clear_faults()
    assert closed[0] == code
    assert error_type in closed[1]


# An agent that records what reaches it, behind the real emulator.


@contextmanager
def recording_stack(**settings: Any) -> Iterator[tuple[Bridge, dict[str, Any]]]:
    """An echoing agent that records each message (with its type) and the
    close code it got; the text message ``vanish`` makes it drop its TCP
    connection without a close frame."""
    record: dict[str, Any] = {"close_codes": [], "messages": [], "types": []}

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat.v2",), max_msg_size=0)
        await ws.prepare(request)
        async for message in ws:
            record["messages"].append(message.data)
            record["types"].append(message.type)
            if message.type == WSMsgType.TEXT and message.data == "vanish":
                assert request.transport is not None
                request.transport.abort()
                break
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        record["close_codes"].append(ws.close_code)
        return ws

    agent = web.Application()
    agent.router.add_get("/ws", ws_handler)
    settings.setdefault("ping_interval", 0.0)
    with running_app(agent) as agent_url, agentcore_emulator(agent_url) as emulator:
        app = create_app(
            Settings(
                runtime_arn=emulator.runtime_arn, endpoint_url=emulator.url, **settings
            ),
            credentials=emulator.credentials,
        )
        with running_app(app) as url:
            yield Bridge(url, emulator, get_server(app)), record


@pytest.mark.parametrize("library", ["websockets", "aiohttp"])
def test_binary_and_text_messages_reach_the_agent_as_sent_and_come_back(
    library: str,
) -> None:
    blob = bytes(range(256)) * 64 + b"\x00\xff"
    with recording_stack() as (bridge, record):

        async def with_websockets(url: str) -> list[Any]:
            async with websockets.connect(url) as ws:
                await ws.send(blob)
                await ws.send("text stays text")
                return [await ws.recv(), await ws.recv()]

        async def with_aiohttp(url: str) -> list[Any]:
            async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
                await ws.send_bytes(blob)
                await ws.send_str("text stays text")
                return [(await ws.receive()).data, (await ws.receive()).data]

        scenario = with_websockets if library == "websockets" else with_aiohttp
        echoed = run(scenario(bridge.ws_url("/agent/ws")))
    assert record["types"][:2] == [WSMsgType.BINARY, WSMsgType.TEXT]
    assert record["messages"][:2] == [blob, "text stays text"]
    assert echoed == [blob, "text stays text"]
    assert isinstance(echoed[0], bytes)


def test_a_client_that_vanishes_is_a_1001_for_the_agent() -> None:
    with recording_stack() as (bridge, record):

        async def scenario() -> None:
            ws = await websockets.connect(bridge.ws_url("/agent/ws"))
            await ws.send("hello")
            await ws.recv()
            ws.transport.abort()

        run(scenario())
        wait_for(lambda: bool(record["close_codes"]))
        wait_for(lambda: not bridge.server.passthroughs)
    assert record["close_codes"] == [1001]


def test_an_agent_that_vanishes_is_a_1011_for_the_client() -> None:
    with recording_stack() as (bridge, _):

        async def scenario() -> tuple[int | None, str]:
            async with websockets.connect(bridge.ws_url("/agent/ws")) as ws:
                await ws.send("vanish")
                try:
                    await ws.recv()
                except websockets.ConnectionClosed as exc:
                    return closed_with(exc)
            raise AssertionError("not closed")

        code, _ = run(scenario())
        wait_for(lambda: not bridge.server.passthroughs)
    assert code == 1011


def test_another_principals_session_token_is_refused_on_the_pass_through() -> None:
    tokens = ("first-principal-token-0123", "second-principal-token-0123")
    with bridge_stack(auth_tokens=tokens) as bridge:

        async def scenario() -> tuple[int | None, str]:
            mine = await ProtocolClient.connect(bridge.ws_url(access_token=tokens[0]))
            token = mine.session["session"] if mine.session else ""
            await mine.close()
            url = bridge.ws_url("/agent/ws", access_token=tokens[1], session=token)
            async with websockets.connect(url) as ws:
                try:
                    await ws.recv()
                except websockets.ConnectionClosed as exc:
                    return closed_with(exc)
            raise AssertionError("not closed")

        code, reason = run(scenario())
        calls = [c for c in bridge.emulator.stats()["log"] if c["operation"] == "ws"]
    assert code == 1008
    assert "session token" in reason
    assert calls == []  # the agent's WebSocket was never opened


def test_the_clients_close_code_reaches_the_agent() -> None:
    with recording_stack() as (bridge, record):

        async def scenario() -> None:
            async with websockets.connect(bridge.ws_url("/agent/ws")) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
                await ws.close(4002, "client done")

        run(scenario())
        wait_for(lambda: bool(record["close_codes"]))
    assert record["close_codes"] == [4002]


def test_the_agent_chooses_among_the_clients_subprotocols() -> None:
    with recording_stack() as (bridge, _):

        async def scenario() -> str | None:
            url = bridge.ws_url("/agent/ws")
            async with websockets.connect(url, subprotocols=["chat.v2"]) as ws:
                return ws.subprotocol

        assert run(scenario()) == "chat.v2"


def test_an_oversize_client_message_closes_1009_and_the_agent_hears_1001() -> None:
    with recording_stack(passthrough_max_frame_bytes=1024) as (bridge, record):

        async def scenario() -> tuple[int | None, str]:
            async with websockets.connect(bridge.ws_url("/agent/ws")) as ws:
                await ws.send("fits")
                await ws.recv()
                await ws.send("x" * 2000)
                try:
                    await ws.recv()
                except websockets.ConnectionClosed as exc:
                    return closed_with(exc)
            raise AssertionError("not closed")

        code, _ = run(scenario())
        wait_for(lambda: bool(record["close_codes"]))
    assert code == 1009
    assert record["close_codes"] == [1001]
    assert record["messages"][0] == "fits"


def test_the_bridge_pings_its_clients() -> None:
    with bridge_stack(ping_interval=0.2) as bridge:

        async def scenario() -> list[WSMsgType]:
            seen = []
            async with aiohttp.ClientSession() as http:
                for path in ("/ws", "/agent/ws"):
                    async with http.ws_connect(
                        bridge.ws_url(path), autoping=False
                    ) as ws:
                        message = await ws.receive(timeout=5)
                        while message.type != WSMsgType.PING:
                            message = await ws.receive(timeout=5)
                        seen.append(message.type)
                        await ws.pong(message.data)
            return seen

        assert run(scenario()) == [WSMsgType.PING, WSMsgType.PING]


def test_the_bridge_pings_the_agent_connection() -> None:
    pings: list[bytes] = []

    async def fake_agentcore(request: web.Request) -> web.WebSocketResponse:
        # Stands in for AgentCore's /runtimes/{arn}/ws, to see the bridge's
        # own pings (the emulator would answer them itself).
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.PING:
                pings.append(message.data)
                await ws.pong(message.data)
        return ws

    upstream = web.Application()
    upstream.router.add_get("/runtimes/{path:.+}/ws", fake_agentcore)
    with running_app(upstream) as upstream_url:
        app = create_app(
            Settings(runtime_arn=ARN, endpoint_url=upstream_url, ping_interval=0.2),
            credentials=Credentials("AKIDEXAMPLE", "secret"),
        )
        with running_app(app) as url:

            async def scenario() -> None:
                ws_url = url.replace("http", "ws", 1) + "/agent/ws"
                async with websockets.connect(ws_url):
                    # Keep the client's loop running: it must answer the
                    # bridge's pings too, or the bridge drops it.
                    for _ in range(500):
                        if len(pings) >= 2:
                            break
                        await asyncio.sleep(0.01)

            run(scenario())
    assert len(pings) >= 2
