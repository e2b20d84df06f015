"""Real servers on loopback for tests: apps, the demo agent, the emulator.

Every helper is a context manager that starts its server on 127.0.0.1 with
an ephemeral port, in a background thread with its own event loop, returns
once the socket listens (no sleeps), and shuts the server down on exit::

    with local_stack(cold_start=0.2) as emulator:
        client = AgentCoreClient(endpoint_url=emulator.url, ...)
        emulator.add_fault("error", nth=2, status=500)
        ...
        assert emulator.session_stats(session_id)["cold_starts"] == 1

``Emulator`` drives the emulator's control API over HTTP, so a test may call
it from any thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote

from aiohttp import web

from agentcore_bridge import Credentials
from agentcore_bridge.local.agentcore import (
    DEFAULT_RUNTIME_ARN,
    LOCAL_CREDENTIALS,
    EmulatorConfig,
    Fault,
    create_emulator_app,
)
from agentcore_bridge.local.demo_agent import create_demo_agent_app

__all__ = [
    "Emulator",
    "agentcore_emulator",
    "asgi_agent",
    "demo_agent",
    "local_stack",
    "running_app",
]


@contextmanager
def running_app(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1, port 0; yield ``"http://127.0.0.1:PORT"``."""
    loop = asyncio.new_event_loop()
    # A short grace period: a test that leaves a stream open must not wait
    # aiohttp's default 60 s at exit.
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=0.5
    )
    ready = threading.Event()
    failure: list[BaseException] = []
    addresses: list[Any] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        addresses.extend(runner.addresses)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except Exception as exc:  # noqa: BLE001 - raised again in the caller
            failure.append(exc)
        finally:
            ready.set()
        if failure:
            loop.close()
            return
        loop.run_forever()
        try:
            loop.run_until_complete(runner.cleanup())
            _cancel_leftovers(loop)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="test-server", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{addresses[0][1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


@contextmanager
def demo_agent(**options: Any) -> Iterator[str]:
    """Run the demo agent (``word_delay`` defaults to 0); yield its base URL."""
    options.setdefault("word_delay", 0.0)
    with running_app(create_demo_agent_app(**options)) as url:
        yield url


@dataclass(frozen=True)
class Emulator:
    """A running AgentCore emulator and what a client needs to call it."""

    url: str
    credentials: Credentials
    runtime_arn: str
    region: str
    agent_url: str

    def runtime_url(self, action: str = "invocations", **query: str) -> str:
        """``{url}/runtimes/{encoded ARN}/{action}`` with ``query`` appended.

        ``action`` is ``invocations``, ``stopruntimesession`` or ``ws``.
        """
        url = f"{self.url}/runtimes/{quote(self.runtime_arn, safe='')}/{action}"
        if query:
            url += "?" + "&".join(
                f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items()
            )
        return url

    def add_fault(self, kind: str, **options: Any) -> dict[str, Any]:
        """Inject a fault (see ``Fault``); return it as the emulator stored it."""
        answer = self._control("POST", "/faults", {"kind": kind, **options})
        fault: dict[str, Any] = answer["faults"][0]
        return fault

    def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self._control("GET", "/faults")["faults"]
        return faults

    def clear_faults(self) -> None:
        self._control("DELETE", "/faults")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change run-time settings (``cold_start=0.5``, ``rate_limit=2`` ...)."""
        answer: dict[str, Any] = self._control("POST", "/config", settings)
        return answer

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._control("GET", "/stats")
        return stats

    def session_stats(self, session_id: str) -> dict[str, Any]:
        """The counters of one session (all zero if the emulator never saw it)."""
        empty = {"calls": 0, "invocations": 0, "cold_starts": 0, "active": False}
        sessions: dict[str, dict[str, Any]] = self.stats()["sessions"]
        return sessions.get(session_id, empty)

    def advance_clock(self, seconds: float) -> None:
        """Let ``seconds`` pass for sessions and quotas (idle expiry, rates)."""
        self._control("POST", "/clock", {"advance": seconds})

    def reset(self) -> None:
        """Forget sessions, faults and counters."""
        self._control("POST", "/reset", {})

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_emulator{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@contextmanager
def agentcore_emulator(agent_url: str, **config: Any) -> Iterator[Emulator]:
    """Run the AgentCore emulator in front of ``agent_url``.

    ``config`` takes the fields of ``EmulatorConfig`` (``cold_start``,
    ``rate_limit``, ``runtime_arns``, ``faults`` as ``Fault`` objects or
    dicts ...). The yielded ``Emulator`` carries credentials the emulator
    accepts and a runtime ARN it knows.
    """
    names = {f.name for f in fields(EmulatorConfig)}
    unknown = set(config) - names
    if unknown:
        raise TypeError(f"unknown emulator settings: {', '.join(sorted(unknown))}")
    faults = [
        f if isinstance(f, Fault) else Fault.from_json(f)
        for f in config.pop("faults", ())
    ]
    if isinstance(config.get("runtime_arns"), (list, tuple, set)):
        config["runtime_arns"] = frozenset(config["runtime_arns"])
    settings = EmulatorConfig(agent_url=agent_url, faults=faults, **config)

    credentials = settings.credentials[0] if settings.credentials else LOCAL_CREDENTIALS
    if settings.runtime_arns:
        runtime_arn = sorted(settings.runtime_arns)[0]
    else:
        runtime_arn = DEFAULT_RUNTIME_ARN.replace(":us-west-2:", f":{settings.region}:")
    with running_app(create_emulator_app(settings)) as url:
        yield Emulator(url, credentials, runtime_arn, settings.region, agent_url)


@contextmanager
def local_stack(
    *, agent_options: dict[str, Any] | None = None, **config: Any
) -> Iterator[Emulator]:
    """The demo agent and the emulator in front of it; yield the emulator."""
    with (
        demo_agent(**(agent_options or {})) as agent_url,
        agentcore_emulator(agent_url, **config) as emulator,
    ):
        yield emulator


@contextmanager
def asgi_agent(app: Any) -> Iterator[str]:
    """Serve an ASGI app (e.g. a ``BedrockAgentCoreApp``) with uvicorn; yield its URL.

    The socket is bound and listening before uvicorn starts, so the URL
    works at once; the helper still waits for uvicorn's startup to finish
    so that a failing app fails here.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="auto",
        timeout_graceful_shutdown=1,
        ws_ping_interval=None,
    )
    started = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await super().startup(sockets=sockets)
            finally:
                started.set()

    server = Server(config)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            started.set()

    thread = threading.Thread(target=run, name="test-asgi-server", daemon=True)
    thread.start()
    started.wait()
    try:
        if not server.started:
            raise RuntimeError("uvicorn did not start the app")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
        _stop_worker_loop(app)


def _stop_worker_loop(app: Any) -> None:
    # BedrockAgentCoreApp runs async handlers on an event loop in a thread of
    # its own, started on first use and never stopped (the app has no call
    # for it): stop it, so that no test leaves a thread behind.
    loop = getattr(app, "_worker_loop", None)
    worker = getattr(app, "_worker_thread", None)
    if loop is None or worker is None:
        return
    loop.call_soon_threadsafe(loop.stop)
    worker.join(10)
    if not worker.is_alive():
        loop.close()
