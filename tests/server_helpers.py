"""Loopback helpers for the bridge server tests.

- :func:`bridge_stack`: the demo agent, the AgentCore emulator in front of
  it and ``create_app`` wired to them, each on its own ephemeral port;
  :func:`bridge_before` puts ``create_app`` in front of a test's own app
  playing AgentCore;
- :class:`ProtocolClient`: a protocol v1 client on the ``websockets``
  package that joins split frames and collects each invocation's frames;
  :class:`AiohttpProtocolClient` is the same on aiohttp's client, and
  :data:`CLIENTS` names both for tests that run with each;
- :func:`serve_process` and :func:`demo_process`: ``agentcore-bridge
  serve`` and ``agentcore-bridge demo`` as subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import websockets
from aiohttp import WSMsgType, web
from websockets.asyncio.client import ClientConnection

from agentcore_bridge import Credentials
from agentcore_bridge.client import FrameDecoder
from agentcore_bridge.config import Settings
from agentcore_bridge.protocol import encode_cancel, encode_invoke, encode_ping
from agentcore_bridge.server import BridgeServer, create_app, get_server
from agentcore_bridge.server.auth import Authenticator
from stack import Emulator, local_stack, running_app

__all__ = [
    "CLIENTS",
    "AiohttpProtocolClient",
    "Bridge",
    "Demo",
    "ProtocolClient",
    "bridge_before",
    "bridge_stack",
    "closed_with",
    "demo_process",
    "serve_process",
    "wait_for",
]

TERMINAL = ("end", "error")


@dataclass
class Bridge:
    """A running bridge server and the emulator behind it."""

    url: str
    emulator: Emulator
    server: BridgeServer

    def ws_url(self, path: str = "/ws", **query: str) -> str:
        url = self.url.replace("http://", "ws://", 1) + path
        return url + ("?" + urlencode(query) if query else "")


@contextmanager
def bridge_stack(
    *,
    agent_options: dict[str, Any] | None = None,
    emulator_options: dict[str, Any] | None = None,
    authenticate: Authenticator | None = None,
    **settings: Any,
) -> Iterator[Bridge]:
    """Serve ``create_app`` in front of the emulator and the demo agent.

    ``settings`` are :class:`Settings` fields; the runtime, endpoint and
    credentials point at the emulator. Pings are off unless asked for, so
    that a test's frames are the only traffic.
    """
    settings.setdefault("ping_interval", 0.0)
    with local_stack(agent_options=agent_options, **(emulator_options or {})) as emu:
        app = create_app(
            Settings(runtime_arn=emu.runtime_arn, endpoint_url=emu.url, **settings),
            credentials=emu.credentials,
            authenticate=authenticate,
        )
        with running_app(app) as url:
            yield Bridge(url, emu, get_server(app))


#: The runtime the bridge is pointed at when a test plays AgentCore itself.
TEST_RUNTIME_ARN = (
    "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/demo_agent-LocalEmu01"
)


@contextmanager
def bridge_before(upstream: web.Application, **settings: Any) -> Iterator[Bridge]:
    """Serve ``create_app`` in front of ``upstream``, an app playing AgentCore.

    For what the emulator cannot show, such as the moment the bridge
    closes an HTTP stream its agent is silent on. The bridge signs as
    usual; ``upstream`` does not check. ``Bridge.emulator`` is ``None``.
    """
    settings.setdefault("ping_interval", 0.0)
    with running_app(upstream) as upstream_url:
        settings.update(runtime_arn=TEST_RUNTIME_ARN, endpoint_url=upstream_url)
        app = create_app(
            Settings(**settings),
            credentials=Credentials("AKIDEXAMPLE", "not-a-secret"),
        )
        with running_app(app) as url:
            yield Bridge(url, None, get_server(app))  # type: ignore[arg-type]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class ProtocolClient:
    """Protocol v1 over one ``websockets`` connection, for tests."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.decoder = FrameDecoder()
        #: Every frame received so far, in order.
        self.frames: list[dict[str, Any]] = []
        self.session: dict[str, Any] | None = None
        # Frames decoded but not yet returned by next_frame (a batch
        # message carries several).
        self._pending: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str, **options: Any) -> ProtocolClient:
        """Connect and read the ``session`` frame the bridge sends first."""
        options.setdefault("max_size", None)
        ws = await websockets.connect(url, **options)
        client = cls(ws)
        frame = await client.next_frame()
        while frame["type"] != "session":
            frame = await client.next_frame()
        return client

    async def close(self) -> None:
        await self.ws.close()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client vanishes)."""
        self.ws.transport.abort()

    async def send(self, message: str | bytes) -> None:
        """Send one raw message (text or binary)."""
        await self.ws.send(message)

    async def _receive(self, timeout: float) -> str | bytes:
        """One message; raises ``ConnectionClosed`` once the bridge closed."""
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def next_frame(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next whole frame (split ones joined)."""
        while not self._pending:
            message = await self._receive(timeout)
            self._pending += self.decoder.feed(message, time.monotonic())
        frame = self._pending.pop(0)
        self.frames.append(frame)
        if frame["type"] == "session":
            self.session = frame
        return frame

    async def invoke(self, id: str, payload: Any, session: str | None = None) -> None:
        await self.send(encode_invoke(id, payload, session))

    async def cancel(self, id: str) -> None:
        await self.send(encode_cancel(id))

    async def ping(self, id: str | None = None) -> None:
        await self.send(encode_ping(id))

    async def until_terminal(self, id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Read until the terminal frame of ``id``; return it."""
        while True:
            frame = await self.next_frame(timeout)
            if frame.get("id") == id and frame["type"] in TERMINAL:
                return frame

    async def run(self, id: str, payload: Any, **options: Any) -> list[dict[str, Any]]:
        """Invoke and return every frame of ``id``, the terminal one last."""
        await self.invoke(id, payload, **options)
        await self.until_terminal(id)
        return self.frames_of(id)

    def frames_of(self, id: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("id") == id]

    def text_of(self, id: str) -> str:
        return "".join(f["data"] for f in self.frames_of(id) if f["type"] == "chunk")

    async def closed(self, timeout: float = 10.0) -> tuple[int | None, str]:
        """Read until the bridge closes; return its close code and reason."""
        self.frames += self._pending
        self._pending.clear()
        try:
            while True:
                message = await self._receive(timeout)
                self.frames += self.decoder.feed(message, time.monotonic())
        except websockets.ConnectionClosed as exc:
            return closed_with(exc)


class ServerClosedError(ConnectionError):
    """The bridge closed an aiohttp client connection: its code and reason."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


class AiohttpProtocolClient(ProtocolClient):
    """:class:`ProtocolClient` on aiohttp's WebSocket client.

    ``next_frame`` raises :class:`ServerClosedError` where the ``websockets``
    client raises ``ConnectionClosed``.
    """

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession
    ) -> None:
        super().__init__(ws)  # type: ignore[arg-type]
        self.aiohttp_ws = ws
        self.http = http

    @classmethod
    async def connect(cls, url: str, **options: Any) -> ProtocolClient:
        """Connect and read the ``session`` frame the bridge sends first.

        ``additional_headers`` (the ``websockets`` name) become aiohttp's
        ``headers``.
        """
        if "additional_headers" in options:
            options["headers"] = options.pop("additional_headers")
        options.setdefault("max_msg_size", 0)
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url, **options)
        except BaseException:
            await http.close()
            raise
        client = cls(ws, http)
        frame = await client.next_frame()
        while frame["type"] != "session":
            frame = await client.next_frame()
        return client

    async def close(self) -> None:
        await self.aiohttp_ws.close()
        await self.http.close()

    def abort(self) -> None:
        # aiohttp's client has no public way to drop the connection.
        self.aiohttp_ws._writer.transport.abort()

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self.aiohttp_ws.send_bytes(message)
        else:
            await self.aiohttp_ws.send_str(message)

    async def _receive(self, timeout: float) -> str | bytes:
        message = await self.aiohttp_ws.receive(timeout)
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            data: str | bytes = message.data
            return data
        if message.type == WSMsgType.CLOSE:
            raise ServerClosedError(message.data, message.extra or "")
        # Gone without a close frame (as closed_with reports it: None).
        raise ServerClosedError(None, "")

    async def closed(self, timeout: float = 10.0) -> tuple[int | None, str]:
        self.frames += self._pending
        self._pending.clear()
        try:
            while True:
                message = await self._receive(timeout)
                self.frames += self.decoder.feed(message, time.monotonic())
        except ServerClosedError as exc:
            await self.http.close()
            return exc.code, exc.reason


#: The two WebSocket client libraries the server is tested with.
CLIENTS: dict[str, type[ProtocolClient]] = {
    "websockets": ProtocolClient,
    "aiohttp": AiohttpProtocolClient,
}


def closed_with(exc: websockets.ConnectionClosed) -> tuple[int | None, str]:
    """The close code and reason the peer sent (``None`` if it sent none)."""
    if exc.rcvd is None:
        return None, ""
    return exc.rcvd.code, exc.rcvd.reason


@contextmanager
def serve_process(
    emulator: Emulator, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``agentcore-bridge serve`` against ``emulator``; yield it and its URL."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "AGENTCORE_", "BRIDGE_"))
    }
    environ.update(
        {
            "AGENTCORE_RUNTIME_ARN": emulator.runtime_arn,
            "AGENTCORE_ENDPOINT_URL": emulator.url,
            "AWS_ACCESS_KEY_ID": emulator.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": emulator.credentials.secret_access_key,
            "BRIDGE_LOG_FORMAT": "text",
            "BRIDGE_SESSION_SECRET": "s" * 32,
            "PYTHONUNBUFFERED": "1",
        }
    )
    environ.update(env or {})
    command = [sys.executable, "-m", "agentcore_bridge.cli", "serve"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0", *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            process.kill()
            _, errors = process.communicate(timeout=10)
            raise AssertionError(f"serve did not start: {line!r} {errors}")
        yield process, line.rsplit(" ", 1)[1].strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@dataclass
class Demo:
    """A running ``agentcore-bridge demo`` and the URLs it printed."""

    process: subprocess.Popen[str]
    #: The page's base URL (the bridge server).
    url: str
    emulator_url: str
    agent_url: str

    def ports(self) -> list[int]:
        """The TCP ports of the bridge, the emulator and the agent."""
        urls = (self.url, self.emulator_url, self.agent_url)
        return [int(url.rsplit(":", 1)[1]) for url in urls]


@contextmanager
def demo_process(*args: str) -> Iterator[Demo]:
    """Run ``agentcore-bridge demo``; yield it once its page is served."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agentcore_bridge.cli", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "open http://" not in line:
            process.kill()
            _, errors = process.communicate(timeout=10)
            raise AssertionError(f"demo did not start: {line!r} {errors}")
        url = line.split("open ", 1)[1].split("/ in", 1)[0]
        # "  bridge WebSocket ...", "  AgentCore emulator URL", "  demo agent URL"
        listed = [process.stdout.readline().split()[-1] for _ in range(3)]
        yield Demo(process, url, listed[1], listed[2])
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def jsonl(text: str) -> list[dict[str, Any]]:
    """Parse JSON lines (log output)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
