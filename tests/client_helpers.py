"""Loopback helpers for the AgentCore client tests.

- :func:`counting_proxy`: a TCP forwarder that counts the connections a
  client opens, so keep-alive reuse is checked on the server side;
- :func:`scripted_agent`: a container-contract agent whose answer the test
  scripts (TypeScript-style SSE, a stream that waits for the test, raw
  bytes), served with ``stack.running_app``;
- :class:`CountingSource`: a credential source that records refreshes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from agentcore_bridge import Credentials
from stack import running_app

__all__ = [
    "CountingSource",
    "Proxy",
    "counting_proxy",
    "scripted_agent",
    "wait_until",
]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail the test if it never does."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@dataclass
class Proxy:
    """A running TCP forwarder: its URL and what it has seen."""

    url: str
    accepted: int = 0
    open: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def counting_proxy(target_url: str) -> Iterator[Proxy]:
    """Forward ``http://127.0.0.1:PORT`` to ``target_url``, counting connections."""
    target = urlsplit(target_url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    proxy = Proxy("")
    server_box: list[asyncio.AbstractServer] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with proxy.lock:
            proxy.accepted += 1
            proxy.open += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            await asyncio.gather(
                pipe(reader, upstream_writer), pipe(upstream_reader, writer)
            )
        finally:
            writer.close()
            with proxy.lock:
                proxy.open -= 1

    async def start() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        server_box.append(server)
        proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        server_box[0].close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name="test-proxy", daemon=True)
    thread.start()
    ready.wait()
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


@dataclass
class Script:
    """Controls for :func:`scripted_agent`: a gate the stream waits on."""

    gate: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


def _sse(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


#: Bodies the scripted agent sends, by the payload's "shape".
SHAPES: dict[str, bytes] = {
    # The TypeScript BedrockAgentCoreApp: JSON events, then "event: done".
    "typescript": _sse('"Hello"') + _sse('" world"') + _sse("{}", "done"),
    # Its newer versions send plain strings unquoted.
    "typescript-text": _sse("first") + _sse("second") + _sse("{}", "done"),
    "typescript-error": _sse('"partial"')
    + _sse(json.dumps({"error": "stream failed"}), "error"),
    # Named events, comments, CRLF line ends and an id.
    "named": b': hi\r\nevent: token\r\nid: 7\r\ndata: {"t": 1}\r\n\r\n'
    + b'event: token\r\ndata: {"t": 2}\r\n\r\n',
}


def scripted_agent(script: Script) -> web.Application:
    """An agent answering by the payload: ``{"shape": name}`` or ``{"gated": n}``.

    ``gated``: send ``n`` events, wait until ``script.gate`` is set, send
    one more, then set ``script.finished``.
    """

    async def invocations(request: web.Request) -> web.StreamResponse:
        payload: dict[str, Any] = json.loads(await request.read())
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8"}
        )
        await response.prepare(request)
        if "shape" in payload:
            await response.write(SHAPES[payload["shape"]])
        else:
            for n in range(int(payload["gated"])):
                await response.write(_sse(json.dumps(f"before {n}")))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, script.gate.wait, 10)
            await response.write(_sse(json.dumps("after")))
            script.finished.set()
        await response.write_eof()
        return response

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"status": "Healthy", "time_of_last_update": 0})

    app = web.Application()
    app.router.add_post("/invocations", invocations)
    app.router.add_get("/ping", ping)
    return app


@contextmanager
def scripted_agent_url(script: Script) -> Iterator[str]:
    with running_app(scripted_agent(script)) as url:
        yield url


class CountingSource:
    """A credential source that counts ``get`` and ``invalidate`` calls."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.gets = 0
        self.invalidations = 0

    def get(self) -> Credentials:
        self.gets += 1
        return self.credentials

    async def get_async(self) -> Credentials:
        return self.get()

    def invalidate(self) -> None:
        self.invalidations += 1
