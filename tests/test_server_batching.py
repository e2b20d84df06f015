"""The server's frame queue: frames that wait together leave as one message.

The socket tests serve a bare :class:`ClientSocket` whose handler queues
frames in a scripted way, and read the raw WebSocket messages with a
``websockets`` client; the last test goes through the whole bridge.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import websockets
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcore_bridge.client import FrameDecoder
from agentcore_bridge.config import Settings
from agentcore_bridge.protocol import (
    encode_batch,
    encode_chunk,
    encode_end,
    encode_pong,
    split_frame,
    utf8_size,
)
from agentcore_bridge.server import create_app
from agentcore_bridge.server.sockets import ClientSocket, SendWatchdog
from server_helpers import wait_for
from stack import agentcore_emulator, running_app

Scenario = Callable[[ClientSocket, list[Any]], Awaitable[None]]


def chunks(count: int, id: str = "q") -> list[str]:
    return [encode_chunk(id, n, f"piece {n}") for n in range(count)]


def serve_socket(scenario: Scenario, notes: list[Any]) -> web.Application:
    """An app whose ``/`` upgrades and runs ``scenario`` on the socket.

    The ``limit`` query parameter is the socket's message limit; the
    scenario writes what it observed into ``notes``; the socket is closed
    with 1000 afterwards.
    """
    watchdog = SendWatchdog(timeout=30.0)

    async def handler(request: web.Request) -> web.StreamResponse:
        socket = await ClientSocket.accept(
            request,
            watchdog,
            max_message_bytes=1 << 20,
            send_buffer_bytes=1 << 20,
            heartbeat=None,
            compress=False,
            message_limit=int(request.query.get("limit", "131072")),
        )
        try:
            await scenario(socket, notes)
        finally:
            await socket.close(1000, "")
        return socket.ws

    app = web.Application()
    app.router.add_get("/", handler)
    return app


async def messages_until_closed(
    url: str, send: str | None = None
) -> tuple[list[str], int | None, str]:
    """Every message the server sends, then its close code and reason."""
    received: list[str] = []
    async with websockets.connect(url, max_size=None) as ws:
        if send is not None:
            await ws.send(send)
        try:
            while True:
                message = await asyncio.wait_for(ws.recv(), 10)
                assert isinstance(message, str)
                received.append(message)
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None
            return received, exc.rcvd.code, exc.rcvd.reason


def run_scenario(
    scenario: Scenario, query: str = ""
) -> tuple[list[str], int | None, str, list[Any]]:
    notes: list[Any] = []
    with running_app(serve_socket(scenario, notes)) as url:
        ws_url = url.replace("http", "ws", 1) + "/" + query
        received, code, reason = asyncio.run(messages_until_closed(ws_url))
    return received, code, reason, notes


def test_frames_queued_together_leave_as_one_batch_message_in_order() -> None:
    frames = [*chunks(5), encode_end("q", 5)]

    async def scenario(socket: ClientSocket, notes: list[Any]) -> None:
        for frame in frames:
            await socket.send_frame(frame)

    received, code, _, _ = run_scenario(scenario)
    assert received == [encode_batch(frames)]
    assert code == 1000


def test_a_frame_alone_stays_a_plain_frame() -> None:
    async def scenario(socket: ClientSocket, notes: list[Any]) -> None:
        await socket.send_frame(encode_pong("p"))

    received, _, _, _ = run_scenario(scenario)
    assert received == [encode_pong("p")]


def test_a_frame_is_never_held_back_to_wait_for_more() -> None:
    """Once the loop has turned, a queued frame is gone; the next one is alone."""
    first, second = chunks(2)

    async def scenario(socket: ClientSocket, notes: list[Any]) -> None:
        await socket.send_frame(first)
        await asyncio.sleep(0)
        notes.append(socket.sent)
        await socket.send_frame(second)

    received, _, _, notes = run_scenario(scenario)
    assert notes == [1]
    assert received == [first, second]


def test_a_full_queue_makes_the_next_sender_wait_until_a_message_left() -> None:
    """A message's worth of queued frames: the next frame waits for room."""
    frames = [encode_chunk("q", n, "x" * 560) for n in range(3)]

    async def scenario(socket: ClientSocket, notes: list[Any]) -> None:
        for frame in frames[:2]:  # 1,200 bytes: the queue is full
            await socket.send_frame(frame)
        notes.append(socket.sent)
        await socket.send_frame(frames[2])
        notes.append(socket.sent)

    received, _, _, notes = run_scenario(scenario, "?limit=1024")
    assert notes[0] == 0
    assert notes[1] >= 1
    assert expand(received) == [json.loads(frame) for frame in frames]


def test_parts_of_a_split_frame_go_in_messages_of_their_own() -> None:
    big = encode_chunk("big", 1, "y" * 3000)
    parts = split_frame(big, 1024)
    frames = [*chunks(1, "small"), *parts, encode_end("small", 1)]

    async def scenario(socket: ClientSocket, notes: list[Any]) -> None:
        for frame in frames:
            await socket.send_frame(frame)

    received, _, _, _ = run_scenario(scenario, "?limit=1024")
    assert len(parts) > 1
    for part in parts:
        assert part in received
    whole = [frames[0], big, frames[-1]]
    assert expand(received) == [json.loads(frame) for frame in whole]


def test_close_sends_the_queued_frames_first_then_refuses_more() -> None:
    frames = chunks(3)

    async def scenario(socket: ClientSocket, notes: list[Any]) -> None:
        for frame in frames:
            await socket.send_frame(frame)
        closing = socket.start_close(1001, "going away")
        try:
            await socket.send_frame(encode_end("q", 3))
        except ConnectionError:
            notes.append("refused")
        await closing

    received, code, reason, notes = run_scenario(scenario)
    assert received == [encode_batch(frames)]
    assert (code, reason) == (1001, "going away")
    assert notes == ["refused"]


def test_frames_for_a_client_that_left_are_refused() -> None:
    async def scenario(socket: ClientSocket, notes: list[Any]) -> None:
        await socket.ws.receive()  # the client's close
        try:
            await socket.send_frame(encode_pong(None))
        except ConnectionError:
            notes.append("refused")

    notes: list[Any] = []
    with running_app(serve_socket(scenario, notes)) as url:

        async def leave() -> None:
            async with websockets.connect(url.replace("http", "ws", 1) + "/"):
                pass

        asyncio.run(leave())
        wait_for(lambda: bool(notes))
    assert notes == ["refused"]


def expand(messages: list[str]) -> list[Any]:
    """The frames the messages carry, as a client decodes them."""
    decoder = FrameDecoder()
    return [frame for message in messages for frame in decoder.feed(message, 0.0)]


# Any frames, any limit: every message fits, and the frames come out whole
# and in order.


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """A socket that queues, all at once, the frames the client sends it."""

    async def scenario(socket: ClientSocket, notes: list[Any]) -> None:
        message = await socket.ws.receive()
        for frame in json.loads(message.data):
            await socket.send_frame(frame)

    with running_app(serve_socket(scenario, [])) as url:
        yield url.replace("http", "ws", 1) + "/"


@settings(max_examples=40)
@given(
    data=st.lists(
        st.text(max_size=400) | st.text(alphabet="é€😀", max_size=200),
        min_size=1,
        max_size=30,
    ),
    limit=st.integers(min_value=256, max_value=4096),
)
def test_every_message_fits_the_limit_and_carries_the_frames_in_order(
    echo_url: str, data: list[str], limit: int
) -> None:
    frames = [encode_chunk("q", n, text) for n, text in enumerate(data)]
    queued = [part for frame in frames for part in split_frame(frame, limit)]
    received, code, _ = asyncio.run(
        messages_until_closed(f"{echo_url}?limit={limit}", json.dumps(queued))
    )
    assert code == 1000
    assert all(utf8_size(message) <= limit for message in received)
    assert expand(received) == [json.loads(frame) for frame in frames]
    for message in received:
        if message.startswith('{"type":"batch"'):
            inner = json.loads(message)["frames"]
            assert len(inner) >= 2
            assert all(f["type"] != "part" for f in inner)


# Through the bridge.


def one_write_agent(events: int) -> web.Application:
    """An agent that writes its whole streamed answer in one write."""

    async def invocations(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        body = "".join(f'data: "word {n} "\n\n' for n in range(events))
        await response.write(body.encode())
        await response.write_eof()
        return response

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"status": "Healthy", "time_of_last_update": 0})

    app = web.Application()
    app.router.add_post("/invocations", invocations)
    app.router.add_get("/ping", ping)
    return app


def test_an_answer_written_at_once_reaches_the_client_in_few_messages() -> None:
    events = 40
    with (
        running_app(one_write_agent(events)) as agent_url,
        agentcore_emulator(agent_url) as emulator,
    ):
        app = create_app(
            Settings(
                runtime_arn=emulator.runtime_arn,
                endpoint_url=emulator.url,
                ping_interval=0.0,
            ),
            credentials=emulator.credentials,
        )
        with running_app(app) as url:

            async def scenario() -> list[str]:
                ws_url = url.replace("http", "ws", 1) + "/ws"
                async with websockets.connect(ws_url) as ws:
                    messages = [await ws.recv()]  # the session frame
                    await ws.send(
                        json.dumps({"type": "invoke", "id": "a", "payload": {}})
                    )
                    while '"type":"end"' not in messages[-1]:
                        messages.append(await asyncio.wait_for(ws.recv(), 10))
                return [m for m in messages if isinstance(m, str)]

            messages = asyncio.run(scenario())
    frames = [f for f in expand(messages) if f.get("id") == "a"]
    assert [f["type"] for f in frames] == ["chunk"] * events + ["end"]
    assert [f["seq"] for f in frames] == list(range(events + 1))
    assert "".join(f["data"] for f in frames[:-1]) == "".join(
        f"word {n} " for n in range(events)
    )
    # The events arrived together, so most of them shared a message.
    assert len(messages) - 1 < events
