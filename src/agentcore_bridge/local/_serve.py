"""Run an aiohttp application from a command-line entry point.

Shared by the ``demo-agent`` and ``local-agentcore`` subcommands: bind,
report the bound address (the port may have been 0), serve until SIGINT or
SIGTERM, then shut down cleanly so open WebSockets get a close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .._listen import listen_error

__all__ = ["base_url", "serve"]


def serve(
    app: web.Application,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    *,
    program: str,
) -> int:
    """Serve ``app`` on ``host:port`` until interrupted; return an exit code.

    ``on_ready`` receives the base URL (``http://host:port``) once the socket
    listens, so a caller can print it with the real port. When the socket
    cannot listen, says why on stderr under ``program``'s name and returns 1.
    """
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(app, host, port, on_ready, program))
    return 0


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    program: str,
) -> int:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            message = listen_error(
                host, port, exc, host_setting="--host", port_setting="--port"
            )
            sys.stderr.write(f"{program}: {message}\n")
            return 1
        on_ready(base_url(runner.addresses[0]))

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Not available on every platform; Ctrl-C still ends asyncio.run.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def base_url(address: Any) -> str:
    """``http://host:port`` for a socket address as ``AppRunner.addresses`` gives it."""
    host, port = address[0], address[1]
    if ":" in str(host):
        host = f"[{host}]"
    return f"http://{host}:{port}"
