"""``agentcore-bridge demo``: the whole chain on one machine, with a chat page.

One process, one event loop, three servers on loopback:

- the demo agent (``demo_agent.py``), which follows the AgentCore container
  contract and streams its answers word by word;
- the AgentCore emulator (``agentcore.py``) in front of it, which checks the
  SigV4 signatures the bridge sends;
- the bridge server (``agentcore_bridge.server``), which also serves the
  chat page at ``/`` and the JavaScript client under ``/static/``.

The agent counts the turns of each session, so reloading the page and
chatting on shows "Turn 2": the page resumed its session with the token
the bridge gave it. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import math
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import hdrs, web

from .._listen import listen_error
from ..config import Settings
from ..credentials import Credentials, CredentialSource
from ..server import create_app, get_server
from ..server.cli import configure_logging
from .agentcore import (
    DEFAULT_RUNTIME_ARN,
    LOCAL_CREDENTIALS,
    EmulatorConfig,
    create_emulator_app,
)
from .demo_agent import create_demo_agent_app

__all__ = ["STATIC_DIR", "create_demo_app", "main"]

#: The browser page and the JavaScript client.
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Short: the demo holds no work worth waiting for at Ctrl-C.
_SHUTDOWN_TIMEOUT = 2.0


def create_demo_app(
    settings: Settings,
    *,
    credentials: Credentials | CredentialSource | None = None,
) -> web.Application:
    """The bridge server of ``settings`` plus the chat page at ``/``."""
    app = create_app(settings, credentials=credentials)
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC_DIR)
    return app


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / "index.html", headers={hdrs.CACHE_CONTROL: "no-cache"}
    )


def main(argv: Sequence[str]) -> int:
    """Run ``agentcore-bridge demo`` until Ctrl-C; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="agentcore-bridge demo",
        description=(
            "Run the demo agent, a local AgentCore emulator and the bridge "
            "server, and serve a chat page that talks to the agent through "
            "the bridge. No AWS account needed."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address of the page (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port of the page (default 8000)"
    )
    parser.add_argument(
        "--word-delay",
        type=float,
        default=0.05,
        metavar="SECONDS",
        help="pause between the agent's streamed words (default 0.05)",
    )
    parser.add_argument(
        "--cold-start",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="simulated cold start of each new agent session (default 0)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log connections and invocations"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    # "nan" and "inf" parse as floats; neither is a delay.
    if not (0 <= args.word_delay < math.inf and 0 <= args.cold_start < math.inf):
        parser.error("--word-delay and --cold-start must be finite, not negative")

    configure_logging("INFO" if args.verbose else "WARNING", "text")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(args))
    return 0


async def _run(args: argparse.Namespace) -> int:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, host: str, port: int) -> str:
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, host, port).start()
        address = runner.addresses[0]
        shown = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
        return f"http://{shown}:{address[1]}"

    try:
        agent_url = await start(
            create_demo_agent_app(word_delay=args.word_delay), "127.0.0.1", 0
        )
        emulator_url = await start(
            create_emulator_app(
                EmulatorConfig(agent_url=agent_url, cold_start=args.cold_start)
            ),
            "127.0.0.1",
            0,
        )
        settings = Settings(
            runtime_arn=DEFAULT_RUNTIME_ARN,
            endpoint_url=emulator_url,
            host=args.host,
            port=args.port,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        bridge = create_demo_app(settings, credentials=LOCAL_CREDENTIALS)
        try:
            url = await start(bridge, args.host, args.port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                message = listen_error(
                    args.host,
                    args.port,
                    exc,
                    host_setting="--host",
                    port_setting="--port",
                )
                sys.stderr.write(f"agentcore-bridge demo: {message}\n")
                return 1
            other = args.port + 1 if args.port < 65535 else 0
            sys.stderr.write(
                f"agentcore-bridge demo: port {args.port} is already in use "
                "(is another demo still running?). Stop that program, or choose "
                f"another port: agentcore-bridge demo --port {other} "
                f"(with make: make demo DEMO_PORT={other})\n"
            )
            return 1

        print(  # noqa: T201
            f"agentcore-bridge demo: open {url}/ in your browser "
            "(Ctrl-C to stop)\n"
            f"  bridge WebSocket  {url.replace('http', 'ws', 1)}/ws\n"
            f"  AgentCore emulator {emulator_url}\n"
            f"  demo agent         {agent_url}",
            flush=True,
        )

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        print("agentcore-bridge demo: stopping", flush=True)  # noqa: T201
        await get_server(bridge).shutdown()
        return 0
    finally:
        # The bridge first, so its connections close before the agent goes.
        for runner in reversed(runners):
            await runner.cleanup()
