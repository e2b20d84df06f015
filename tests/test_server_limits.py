"""Every limit of the bridge server: a clear error or close code for the
offender, and the rest of the server unaffected."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import pytest
import websockets

from agentcore_bridge.server.connection import TokenBucket
from agentcore_bridge.server.sockets import SendWatchdog, close_reason
from server_helpers import ProtocolClient, bridge_stack, closed_with, wait_for

SLOW = {"words": 200, "delay": 0.05}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_frame_over_the_limit_gets_payload_too_large_and_the_connection_stays() -> (
    None
):
    with bridge_stack(max_frame_bytes=1024) as bridge:

        async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            client = await ProtocolClient.connect(bridge.ws_url())
            frame = {"type": "invoke", "id": "big", "payload": "x" * 2000}
            await client.ws.send(json.dumps(frame))
            error = await client.next_frame()
            frames = await client.run("small", {"prompt": "fits"})
            await client.close()
            return error, frames

        error, frames = run(scenario())
    assert error["type"] == "error"
    assert error["code"] == "payload_too_large"
    assert error["id"] == "big"
    assert frames[-1]["type"] == "end"


def test_a_frame_far_over_the_limit_closes_the_connection_with_1009() -> None:
    with bridge_stack(max_frame_bytes=1024) as bridge:

        async def scenario() -> tuple[int | None, str]:
            client = await ProtocolClient.connect(bridge.ws_url())
            await client.ws.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
            return await client.closed()

        code, _ = run(scenario())
    assert code == 1009


def test_invocations_over_the_per_connection_limit_are_refused() -> None:
    with bridge_stack(max_invocations=2) as bridge:

        async def scenario() -> ProtocolClient:
            client = await ProtocolClient.connect(bridge.ws_url())
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
            return client

        client = run(scenario())
    refused = client.frames_of("c")
    assert len(refused) == 1
    assert refused[0]["code"] == "too_many_invocations"
    assert refused[0]["retryable"] is True
    assert client.frames_of("d")[-1]["type"] == "end"


def test_invocations_faster_than_the_rate_are_refused() -> None:
    with bridge_stack(invocation_rate=0.01, invocation_burst=2) as bridge:

        async def scenario() -> ProtocolClient:
            client = await ProtocolClient.connect(bridge.ws_url())
            await client.run("r1", {"prompt": "1"})
            await client.run("r2", {"prompt": "2"})
            await client.run("r3", {"prompt": "3"})
            await client.close()
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


def test_connections_over_the_process_limit_are_closed_with_1013() -> None:
    with bridge_stack(max_connections=2) as bridge:

        async def scenario() -> tuple[tuple[int | None, str], list[str]]:
            first = await ProtocolClient.connect(bridge.ws_url())
            second = await ProtocolClient.connect(bridge.ws_url())
            async with websockets.connect(bridge.ws_url()) as third:
                try:
                    await third.recv()
                    refused: tuple[int | None, str] = (None, "")
                except websockets.ConnectionClosed as exc:
                    refused = closed_with(exc)
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
        calls = [
            c for c in bridge.emulator.stats()["log"] if c["operation"] == "invoke"
        ]
    assert other_end == "end"
    assert any("closing it with 1008" in r.getMessage() for r in caplog.records)
    flood = [c for c in calls if c["outcome"] != "ok"]
    assert flood, "the flooding stream was read to its end instead of stopped"


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
