"""Graceful shutdown of ``agentcore-bridge serve`` on SIGTERM, and /healthz.

Each test runs the real command in a subprocess against the emulator and
the demo agent, and signals it as ECS does.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from server_helpers import (
    CLIENTS,
    ProtocolClient,
    closed_with,
    serve_process,
    wait_for,
)
from stack import Emulator, local_stack


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with local_stack() as running:
        yield running


@pytest.mark.parametrize("library", sorted(CLIENTS))
def test_a_stream_running_at_sigterm_finishes_then_the_connection_closes_1001(
    emulator: Emulator, library: str
) -> None:
    env = {"BRIDGE_SHUTDOWN_TIMEOUT": "20"}
    with serve_process(emulator, env=env) as (process, url):
        assert healthz(url) == 200
        ws_url = url.replace("http", "ws", 1) + "/ws"

        async def scenario() -> tuple[
            list[dict[str, Any]], tuple[int | None, str], int
        ]:
            client = await CLIENTS[library].connect(ws_url)
            await client.invoke(
                "s", {"prompt": "finish me", "words": 30, "delay": 0.05}
            )
            while len(client.frames_of("s")) < 3:
                await client.next_frame()
            process.send_signal(signal.SIGTERM)

            # Draining: the health check fails at once, new connections are
            # refused, and the running stream goes on.
            wait_for(lambda: healthz(url) == 503)
            try:
                async with websockets.connect(ws_url):
                    refused = 101
            except websockets.InvalidStatus as exc:
                refused = exc.response.status_code
            closed = await client.closed(timeout=20)
            return client.frames_of("s"), closed, refused

        frames, closed, refused = run(scenario())
        assert process.wait(timeout=25) == 0
    assert refused == 503
    assert frames[-1]["type"] == "end"
    assert [f["type"] for f in frames].count("end") == 1
    assert "lorem" in "".join(f["data"] for f in frames if f["type"] == "chunk")
    assert closed[0] == 1001


@pytest.mark.parametrize("library", sorted(CLIENTS))
def test_a_stream_longer_than_the_deadline_ends_with_going_away_then_1001(
    emulator: Emulator, library: str
) -> None:
    with serve_process(emulator, env={"BRIDGE_SHUTDOWN_TIMEOUT": "1.5"}) as (
        process,
        url,
    ):
        ws_url = url.replace("http", "ws", 1) + "/ws"

        async def scenario() -> tuple[list[dict[str, Any]], tuple[int | None, str]]:
            client = await CLIENTS[library].connect(ws_url)
            await client.invoke("l", {"prompt": "long", "words": 400, "delay": 0.05})
            while len(client.frames_of("l")) < 2:
                await client.next_frame()
            process.send_signal(signal.SIGTERM)
            closed = await client.closed(timeout=20)
            return client.frames_of("l"), closed

        frames, closed = run(scenario())
        # Within the shutdown timeout, give or take process start-up noise.
        assert process.wait(timeout=10) == 0
    terminal = [f for f in frames if f["type"] in ("end", "error")]
    assert len(terminal) == 1
    assert terminal[0]["code"] == "going_away"
    assert terminal[0]["retryable"] is True
    assert frames[-1] is terminal[0]
    assert closed[0] == 1001


def test_a_client_that_reads_nothing_cannot_hold_the_process_past_its_deadline(
    emulator: Emulator,
) -> None:
    """A stalled client answers no close frame: at the deadline its
    connection is aborted, and the process exits."""
    env = {"BRIDGE_SHUTDOWN_TIMEOUT": "2", "BRIDGE_SEND_BUFFER_BYTES": "16384"}
    with serve_process(emulator, env=env) as (process, url):
        ws_url = url.replace("http", "ws", 1) + "/ws"

        async def scenario() -> None:
            host, port = url.split("//", 1)[1].rsplit(":", 1)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.setblocking(False)
            stalled = await websockets.connect(
                ws_url, sock=sock, max_queue=1, max_size=None
            )
            await stalled.recv()
            flood = {"prompt": "flood", "size": 16_000_000, "chunk": 65536}
            await stalled.send(
                json.dumps({"type": "invoke", "id": "f", "payload": flood})
            )
            # Streaming; from now on the client reads nothing. The 16 MB
            # answer fills every buffer on the way long before the deadline.
            await stalled.recv()
            process.send_signal(signal.SIGTERM)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: process.wait(timeout=20)
            )
            stalled.transport.abort()

        run(scenario())
        assert process.returncode == 0
        _, err = process.communicate(timeout=10)
    assert "aborting 1 connections that did not close in time" in err


def test_idle_connections_and_pass_throughs_close_with_1001_at_once(
    emulator: Emulator,
) -> None:
    with serve_process(emulator, env={"BRIDGE_SHUTDOWN_TIMEOUT": "20"}) as (
        process,
        url,
    ):
        base = url.replace("http", "ws", 1)

        async def scenario() -> list[int | None]:
            idle = await ProtocolClient.connect(base + "/ws")
            passthrough = await websockets.connect(base + "/agent/ws")
            process.send_signal(signal.SIGTERM)
            codes = [(await idle.closed())[0]]
            try:
                await asyncio.wait_for(passthrough.recv(), 10)
            except websockets.ConnectionClosed as exc:
                codes.append(closed_with(exc)[0])
            return codes

        codes = run(scenario())
        assert process.wait(timeout=10) == 0
    assert codes == [1001, 1001]


def test_a_second_sigterm_skips_the_wait(emulator: Emulator) -> None:
    with serve_process(emulator, env={"BRIDGE_SHUTDOWN_TIMEOUT": "60"}) as (
        process,
        url,
    ):
        ws_url = url.replace("http", "ws", 1) + "/ws"

        async def scenario() -> dict[str, Any]:
            client = await ProtocolClient.connect(ws_url)
            await client.invoke("h", {"prompt": "long", "words": 400, "delay": 0.05})
            await client.next_frame()
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: healthz(url) == 503)
            process.send_signal(signal.SIGTERM)
            return await client.until_terminal("h", timeout=20)

        terminal = run(scenario())
        assert process.wait(timeout=15) == 0
    assert terminal["code"] == "going_away"


def test_an_idle_server_exits_0_on_sigterm_and_sigint(emulator: Emulator) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        with serve_process(emulator) as (process, url):
            assert healthz(url) == 200
            process.send_signal(signum)
            assert process.wait(timeout=10) == 0


RUN_APP = textwrap.dedent(
    """
    import socket, sys
    from aiohttp import web
    from agentcore_bridge.server import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    web.run_app(create_app(), sock=sock, print=None)
    """
)


def test_create_app_drains_under_aiohttp_run_app_too(emulator: Emulator) -> None:
    env = {
        "AGENTCORE_RUNTIME_ARN": emulator.runtime_arn,
        "AGENTCORE_ENDPOINT_URL": emulator.url,
        "AWS_ACCESS_KEY_ID": emulator.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": emulator.credentials.secret_access_key,
        "BRIDGE_SHUTDOWN_TIMEOUT": "20",
        "PATH": "/usr/bin:/bin",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_APP],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        ws_url = f"ws://127.0.0.1:{port}/ws"

        async def scenario() -> tuple[str, int | None]:
            client = None
            for _ in range(200):
                try:
                    client = await ProtocolClient.connect(ws_url)
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            assert client is not None
            await client.invoke("r", {"prompt": "x", "words": 20, "delay": 0.05})
            await client.next_frame()
            process.send_signal(signal.SIGTERM)
            code = (await client.closed(timeout=20))[0]
            return str(client.frames_of("r")[-1]["type"]), code

        last, code = run(scenario())
        assert process.wait(timeout=25) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
    assert last == "end"
    assert code == 1001


def test_healthz_is_503_while_draining_and_json(emulator: Emulator) -> None:
    with serve_process(emulator, env={"BRIDGE_SHUTDOWN_TIMEOUT": "20"}) as (
        process,
        url,
    ):
        ws_url = url.replace("http", "ws", 1) + "/ws"

        async def scenario() -> tuple[int, Any]:
            client = await ProtocolClient.connect(ws_url)
            await client.invoke("k", {"prompt": "x", "words": 20, "delay": 0.05})
            await client.next_frame()
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: healthz(url) == 503)
            try:
                urllib.request.urlopen(url + "/healthz", timeout=5)
            except urllib.error.HTTPError as exc:
                body = json.loads(exc.read())
                status = exc.code
            await client.closed(timeout=20)
            return status, body

        status, body = run(scenario())
        assert process.wait(timeout=25) == 0
    assert status == 503
    assert body == {"status": "draining"}


def test_with_stop_session_on_disconnect_shutdown_leaves_sessions_to_resume(
    emulator: Emulator,
) -> None:
    """A client's own disconnect stops its session; the shutdown's 1001 does
    not: that client resumes its session on another task."""
    env = {"BRIDGE_STOP_SESSION_ON_DISCONNECT": "true"}

    def stops() -> int:
        return int(emulator.stats()["requests"].get("stop", 0))

    def ws_url(url: str, token: str = "") -> str:
        query = "?" + urllib.parse.urlencode({"session": token}) if token else ""
        return url.replace("http", "ws", 1) + "/ws" + query

    before = stops()
    with serve_process(emulator, env=env) as (process, url):

        async def first_task() -> tuple[str, int | None]:
            leaving = await ProtocolClient.connect(ws_url(url))
            await leaving.run("l", {"prompt": "bye"})
            await leaving.close()
            wait_for(lambda: stops() == before + 1)
            staying = await ProtocolClient.connect(ws_url(url))
            await staying.run("s", {"prompt": "hello"})
            assert staying.session is not None
            process.send_signal(signal.SIGTERM)
            code = (await staying.closed(timeout=20))[0]
            return str(staying.session["session"]), code

        token, code = run(first_task())
        assert process.wait(timeout=15) == 0
    assert code == 1001
    # The process is gone: any stop it made has reached the emulator.
    assert stops() == before + 1

    with serve_process(emulator, env=env) as (process, url):

        async def second_task() -> str:
            client = await ProtocolClient.connect(ws_url(url, token))
            await client.run("r", {"prompt": "again"})
            await client.close()
            return client.text_of("r")

        text = run(second_task())
    assert text.startswith("Turn 2 of this session.")
