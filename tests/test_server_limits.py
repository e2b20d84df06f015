"""Every limit of the bridge server: a clear error or close code for the
offender, and the rest of the server unaffected."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

import aiohttp
import pytest
import websockets

from agentcore_bridge.server.connection import TokenBucket
from agentcore_bridge.server.sockets import SendWatchdog, close_reason
from server_helpers import (
    CLIENTS,
    Bridge,
    ProtocolClient,
    bridge_stack,
    closed_with,
    wait_for,
)

SLOW = {"words": 200, "delay": 0.05}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture(params=sorted(CLIENTS))
def client_class(request: pytest.FixtureRequest) -> type[ProtocolClient]:
    """Each WebSocket client library the server is tested with."""
    return CLIENTS[request.param]


class Bystander:
    """Another client of the same server, streaming while a limit is hit.

    :meth:`start` begins a short answer; :meth:`finish` reads it to its
    end and returns the terminal frame's type, which is ``end`` when the
    breach elsewhere left this connection alone.
    """

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.client: ProtocolClient | None = None

    async def start(self) -> None:
        self.client = await ProtocolClient.connect(self.bridge.ws_url())
        await self.client.invoke(
            "bystander", {"prompt": "unaffected", "words": 30, "delay": 0.01}
        )

    async def finish(self) -> str:
        assert self.client is not None
        terminal = await self.client.until_terminal("bystander")
        frames = await self.client.run("after", {"prompt": "and after"})
        await self.client.close()
        assert frames[-1]["type"] == "end"
        return str(terminal["type"])


def test_a_frame_over_the_limit_gets_payload_too_large_and_the_connection_stays(
    client_class: type[ProtocolClient],
) -> None:
    with bridge_stack(max_frame_bytes=1024) as bridge:

        async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], str]:
            bystander = Bystander(bridge)
            await bystander.start()
            client = await client_class.connect(bridge.ws_url())
            frame = {"type": "invoke", "id": "big", "payload": "x" * 2000}
            await client.send(json.dumps(frame))
            error = await client.next_frame()
            frames = await client.run("small", {"prompt": "fits"})
            await client.close()
            return error, frames, await bystander.finish()

        error, frames, other = run(scenario())
    assert error["type"] == "error"
    assert error["code"] == "payload_too_large"
    assert error["id"] == "big"
    assert frames[-1]["type"] == "end"
    assert other == "end"


def test_a_frame_far_over_the_limit_closes_the_connection_with_1009(
    client_class: type[ProtocolClient],
) -> None:
    with bridge_stack(max_frame_bytes=1024) as bridge:

        async def scenario() -> tuple[tuple[int | None, str], str]:
            bystander = Bystander(bridge)
            await bystander.start()
            client = await client_class.connect(bridge.ws_url())
            await client.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
            return await client.closed(), await bystander.finish()

        (code, _), other = run(scenario())
    assert code == 1009
    assert other == "end"


def test_invocations_over_the_per_connection_limit_are_refused(
    client_class: type[ProtocolClient],
) -> None:
    with bridge_stack(max_invocations=2) as bridge:

        async def scenario() -> ProtocolClient:
            bystander = Bystander(bridge)
            await bystander.start()
            client = await client_class.connect(bridge.ws_url())
            await client.invoke("a", {"prompt": "a", **SLOW})
            await client.invoke("b", {"prompt": "b", **SLOW})
            await client.invoke("c", {"prompt": "c"})
            await client.until_terminal("c")
            # One ends: there is room again.
            await client.cancel("a")
            await client.until_terminal("a")
            await client.run("d", {"prompt": "d"})
            await client.cancel("b")
            await client.until_terminal("b")
            await client.close()
            # The limit is per connection: the other one was served.
            assert await bystander.finish() == "end"
            return client

        client = run(scenario())
    refused = client.frames_of("c")
    assert len(refused) == 1
    assert refused[0]["code"] == "too_many_invocations"
    assert refused[0]["retryable"] is True
    assert client.frames_of("d")[-1]["type"] == "end"


def test_invocations_faster_than_the_rate_are_refused(
    client_class: type[ProtocolClient],
) -> None:
    with bridge_stack(invocation_rate=0.01, invocation_burst=2) as bridge:

        async def scenario() -> ProtocolClient:
            client = await client_class.connect(bridge.ws_url())
            await client.run("r1", {"prompt": "1"})
            await client.run("r2", {"prompt": "2"})
            await client.run("r3", {"prompt": "3"})
            await client.close()
            # Each connection has its own budget.
            other = await ProtocolClient.connect(bridge.ws_url())
            for n in (1, 2):
                frames = await other.run(f"o{n}", {"prompt": "mine"})
                assert frames[-1]["type"] == "end"
            await other.close()
            return client

        client = run(scenario())
    assert client.frames_of("r2")[-1]["type"] == "end"
    assert client.frames_of("r3") == [
        {
            "type": "error",
            "id": "r3",
            "code": "rate_limited",
            "message": client.frames_of("r3")[0]["message"],
            "retryable": True,
        }
    ]


def test_connections_over_the_process_limit_are_closed_with_1013(
    client_class: type[ProtocolClient],
) -> None:
    with bridge_stack(max_connections=2) as bridge:

        async def scenario() -> tuple[tuple[int | None, str], list[str]]:
            first = await ProtocolClient.connect(bridge.ws_url())
            second = await ProtocolClient.connect(bridge.ws_url())
            refused = await refused_after_upgrade(client_class, bridge.ws_url())
            ends = []
            for n, client in enumerate((first, second)):
                frames = await client.run(f"ok{n}", {"prompt": "still served"})
                ends.append(frames[-1]["type"])
            await first.close()
            wait_for(lambda: bridge.server.open_sockets < 2)
            fourth = await ProtocolClient.connect(bridge.ws_url())
            ends.append((await fourth.run("ok4", {"prompt": "room again"}))[-1]["type"])
            await second.close()
            await fourth.close()
            return refused, ends

        refused, ends = run(scenario())
    assert refused[0] == 1013
    assert "try again later" in refused[1]
    assert ends == ["end", "end", "end"]


def test_refused_connections_free_their_slot_at_once_and_close_promptly() -> None:
    """A burst refused at the cap, whose clients never answer the close frame,
    neither keeps a client out once a slot is free nor lingers."""
    with bridge_stack(max_connections=1) as bridge:

        async def scenario() -> tuple[list[bytes], float, str]:
            holder = await ProtocolClient.connect(bridge.ws_url())
            refused = await asyncio.gather(
                *(SilentClient.refused(bridge.ws_url()) for _ in range(20))
            )
            refused_at = time.monotonic()
            await holder.close()
            # Within the 2 s a close handshake may take: the slot is free
            # while the refused clients still hold their connections open.
            wait_for(lambda: bridge.server.open_sockets == 0, timeout=1.0)
            newcomer = await ProtocolClient.connect(bridge.ws_url())
            frames = await newcomer.run("in", {"prompt": "let in"})
            await newcomer.close()
            for client in refused:
                await client.until_dropped()
            lingered = time.monotonic() - refused_at
            return [c.data for c in refused], lingered, frames[-1]["type"]

        answers, lingered, last = run(scenario())
    for data in answers:
        assert data.startswith(b"HTTP/1.1 101 ")
        # The close frame, unmasked from the server, with code 1013.
        assert b"\x88" in data
        assert (1013).to_bytes(2, "big") + b"the server is at its" in data
    assert lingered < 1.5
    assert last == "end"


class SilentClient:
    """A WebSocket client that upgrades and never answers a close frame."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.data = b""

    @classmethod
    async def refused(cls, url: str) -> SilentClient:
        """Connect to ``url``; return once refused for the connection cap."""
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        client = cls(*await asyncio.open_connection(host, int(port)))
        client.writer.write(
            b"GET /ws HTTP/1.1\r\n"
            + f"Host: {host}:{port}\r\n".encode()
            + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        client.data = await asyncio.wait_for(
            client.reader.readuntil(b"try again later"), timeout=10
        )
        return client

    async def until_dropped(self) -> None:
        """Wait for the server to close the TCP connection."""
        self.data += await asyncio.wait_for(self.reader.read(), timeout=10)
        self.writer.close()


async def refused_after_upgrade(
    client_class: type[ProtocolClient], url: str
) -> tuple[int | None, str]:
    """The close code and reason of a connection closed right after its upgrade."""
    if client_class is ProtocolClient:
        async with websockets.connect(url) as ws:
            try:
                await ws.recv()
            except websockets.ConnectionClosed as exc:
                return closed_with(exc)
        raise AssertionError("not closed")
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        return message.data, message.extra or ""


def test_the_connection_limit_counts_pass_throughs_too() -> None:
    with bridge_stack(max_connections=1) as bridge:

        async def scenario() -> tuple[int | None, str]:
            async with websockets.connect(bridge.ws_url("/agent/ws")):
                return await refused_after_upgrade(
                    ProtocolClient, bridge.ws_url("/agent/ws")
                )

        code, reason = run(scenario())
    assert code == 1013
    assert "try again later" in reason


def _small_receive_buffer_socket(url: str) -> socket.socket:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


def test_a_client_that_stops_reading_is_closed_and_its_stream_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="agentcore_bridge.server")
    with bridge_stack(send_buffer_bytes=65536, slow_client_timeout=1.0) as bridge:

        async def scenario() -> str:
            url = bridge.ws_url()
            stalled = await websockets.connect(
                url, sock=_small_receive_buffer_socket(url), max_queue=1, max_size=None
            )
            await stalled.recv()  # the session frame
            # 16 MB of answer, far more than every buffer on the way holds.
            invoke = {"prompt": "flood", "size": 16_000_000, "chunk": 65536}
            await stalled.send(
                json.dumps({"type": "invoke", "id": "f", "payload": invoke})
            )

            # Meanwhile another client is served as usual.
            other = await ProtocolClient.connect(url)
            frames = await other.run("o", {"prompt": "unaffected"})
            await other.close()

            wait_for(lambda: bridge.server.invocations == 0, timeout=15)
            stalled.transport.abort()
            return str(frames[-1]["type"])

        other_end = run(scenario())
        # The emulator logs a call when its handler ends, which for the
        # stopped stream comes a moment after the bridge closed it.
        deadline = time.monotonic() + 15
        while True:
            calls = [
                c for c in bridge.emulator.stats()["log"] if c["operation"] == "invoke"
            ]
            if len(calls) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert other_end == "end"
    assert any("closing it with 1008" in r.getMessage() for r in caplog.records)
    flood = [c for c in calls if c["outcome"] != "ok"]
    assert flood, "the flooding stream was read to its end instead of stopped"


def test_a_client_that_stops_reading_holds_a_bounded_buffer_and_pauses_its_agent() -> (
    None
):
    """While a client reads nothing, what the server holds for it stays
    under the documented bound (docs/server.md, "Backpressure"), and the
    agent's stream is not read any further."""
    send_buffer, limit = 65536, 131072
    total, chunk = 16_000_000, 65536
    # The buffer limit, one message written past it, a message's worth of
    # queue and the frame that overflowed it, one frame held by the waiting
    # invocation.
    bound = send_buffer + 4 * limit
    with bridge_stack(
        send_buffer_bytes=send_buffer,
        message_limit_bytes=limit,
        slow_client_timeout=600.0,
    ) as bridge:

        async def scenario() -> tuple[list[int], list[int], bool]:
            url = bridge.ws_url()
            stalled = await websockets.connect(
                url, sock=_small_receive_buffer_socket(url), max_queue=1, max_size=None
            )
            await stalled.recv()  # the session frame
            invoke = {"prompt": "flood", "size": total, "chunk": chunk}
            await stalled.send(
                json.dumps({"type": "invoke", "id": "f", "payload": invoke})
            )
            (connection,) = bridge.server.connections
            # Backpressure has reached the invocation: it waits for room.
            wait_for(
                lambda: (
                    connection.socket.waiting > 0
                    and connection.socket.buffered_bytes >= send_buffer
                )
            )
            # Sample until the stream has stalled: nothing more read for
            # half a second (a stream that ran to its end would fail below).
            held, read = [], []
            while len(read) < 25 or read[-25] != read[-1]:
                assert len(read) < 1500, "the stream never stalled"
                held.append(connection.socket.buffered_bytes)
                read.append(connection._running["f"].frames.seq)
                await asyncio.sleep(0.02)
            still_running = "f" in connection._running
            stalled.transport.abort()
            return held, read, still_running

        held, read, still_running = run(scenario())
        wait_for(lambda: bridge.server.invocations == 0)
    assert max(held) <= bound
    # Paused, not finished: what was read is what the client's TCP path
    # (kernel buffers of a few MB on loopback) took, far from the answer.
    assert still_running
    assert read[-1] * chunk < total / 2


def test_the_token_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)  # one token back after half a second at 2/s
    assert not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


class _Socket:
    """What the watchdog reads of a client socket."""

    def __init__(self) -> None:
        self.sent = 0
        self.seen_sent = 0
        self.stalled_since: float | None = None
        self.stalls = 0
        self.on_stalled = self._stalled

    def _stalled(self) -> None:
        self.stalls += 1


def test_the_watchdog_reports_only_sockets_without_progress() -> None:
    watchdog = SendWatchdog(timeout=2.0)
    stuck, moving = _Socket(), _Socket()
    for sock in (stuck, moving):
        watchdog.watch(sock)  # type: ignore[arg-type]
    for now in (0.0, 1.0, 2.0, 3.0):
        moving.sent += 1
        watchdog.check(now)
    assert stuck.stalls == 1
    assert moving.stalls == 0
    watchdog.check(10.0)
    assert stuck.stalls == 1  # reported once, then forgotten


@pytest.mark.parametrize(
    ("text", "size"), [("short", 5), ("é" * 100, 122), ("x" * 500, 123)]
)
def test_close_reasons_fit_a_close_frame_without_cutting_a_character(
    text: str, size: int
) -> None:
    reason = close_reason(text)
    assert len(reason) == size
    reason.decode("utf-8")
