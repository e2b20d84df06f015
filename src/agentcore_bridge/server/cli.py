"""``agentcore-bridge serve``: run the bridge server until SIGTERM.

Settings come from the environment (``docs/configuration.md``); a flag
overrides the variable it names. Every value is checked before the server
starts, and a bad one stops it with a message naming the variable and the
flag.

On SIGTERM (or Ctrl-C) the server drains as ECS expects: ``/healthz``
answers 503 at once while the listener stays open, new WebSockets are
refused, running invocations get until ``BRIDGE_SHUTDOWN_TIMEOUT`` to
finish, every connection closes with 1001, and the process exits 0 within
that time. A second signal skips the wait.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .._listen import listen_error
from ..cli import INTERRUPTED_EXIT
from ..config import Settings
from ..exceptions import ConfigurationError, ValidationError
from .app import create_app, get_server
from .sockets import CLOSE_TIMEOUT

__all__ = [
    "AccessLogger",
    "JsonFormatter",
    "configure_logging",
    "main",
    "serve",
]

logger = logging.getLogger("agentcore_bridge.server")

# flag -> (variable, help)
_FLAGS: dict[str, tuple[str, str]] = {
    "--host": ("BRIDGE_HOST", "address to listen on (default 0.0.0.0)"),
    "--port": ("BRIDGE_PORT", "TCP port (default 8000; 0: any free port)"),
    "--runtime-arn": ("AGENTCORE_RUNTIME_ARN", "the agent runtime to invoke"),
    "--qualifier": ("AGENTCORE_QUALIFIER", "the runtime's endpoint name"),
    "--endpoint-url": ("AGENTCORE_ENDPOINT_URL", "override of the AgentCore URL"),
    "--max-connections": ("BRIDGE_MAX_CONNECTIONS", "WebSockets per process"),
    "--max-invocations": (
        "BRIDGE_MAX_INVOCATIONS",
        "invocations running at once per connection",
    ),
    "--invocation-rate": (
        "BRIDGE_INVOCATION_RATE",
        "invocations per second per connection",
    ),
    "--allowed-origins": (
        "BRIDGE_ALLOWED_ORIGINS",
        "comma-separated Origin values allowed to connect",
    ),
    "--ping-interval": ("BRIDGE_PING_INTERVAL", "seconds between keep-alive pings"),
    "--shutdown-timeout": (
        "BRIDGE_SHUTDOWN_TIMEOUT",
        "seconds from SIGTERM to exit (keep it under ECS's stopTimeout)",
    ),
    "--log-level": ("BRIDGE_LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    "--log-format": ("BRIDGE_LOG_FORMAT", "json or text"),
}


def main(argv: Sequence[str]) -> int:
    """Run ``agentcore-bridge serve`` with ``argv``; return the exit code."""
    # Once the server listens, SIGINT drains it like SIGTERM (see _serve);
    # before that, Ctrl-C only means "do not start", which needs no
    # traceback.
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="agentcore-bridge serve",
        description=(
            "Run the agentcore-bridge WebSocket server. Settings come from "
            "environment variables (see docs/configuration.md); each flag "
            "overrides the variable named in its help. Bearer tokens are "
            "read from BRIDGE_AUTH_TOKENS only, never from the command line."
        ),
    )
    for flag, (variable, text) in _FLAGS.items():
        parser.add_argument(flag, metavar="VALUE", help=f"{text} [{variable}]")
    parser.add_argument(
        "--access-log", action="store_true", help="log every HTTP request"
    )
    args = parser.parse_args(argv)

    environ = dict(os.environ)
    for flag, (variable, _) in _FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            environ[variable] = value
    try:
        settings = Settings.from_env(environ)
        settings.require_runtime_arn()
    except ValidationError as exc:
        return _config_error(exc.field, exc.rule)

    configure_logging(settings.log_level, settings.log_format)
    try:
        return serve(settings, access_log=args.access_log)
    except ValidationError as exc:
        return _config_error(exc.field, exc.rule)
    except ConfigurationError as exc:
        sys.stderr.write(f"agentcore-bridge serve: {exc}\n")
        return 2


def _config_error(variable: str, rule: str) -> int:
    flags = [flag for flag, (name, _) in _FLAGS.items() if name == variable]
    shown = f"{variable} ({flags[0]})" if flags else variable
    sys.stderr.write(f"agentcore-bridge serve: {shown} {rule}\n")
    return 2


def serve(
    settings: Settings,
    *,
    access_log: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT, drain, and return the exit code.

    ``on_ready`` receives the base URL once the socket listens (default:
    print it). Returns 1, after saying why, when it cannot listen (the
    port is in use, the host is not an address of this machine).
    """
    if settings.session_secret is None:
        logger.warning(
            "BRIDGE_SESSION_SECRET is not set: session tokens are signed with a "
            "random secret and only work with this process"
        )
    _raise_open_file_limit(2 * settings.max_connections + 256)
    app = create_app(settings)
    return asyncio.run(_serve(app, settings, access_log, on_ready or _print_ready))


def _print_ready(url: str) -> None:
    print(f"agentcore-bridge serve: listening on {url}", flush=True)  # noqa: T201


async def _serve(
    app: web.Application,
    settings: Settings,
    access_log: bool,
    on_ready: Callable[[str], None],
) -> int:
    server = get_server(app)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        access_log_class=AccessLogger,
        shutdown_timeout=CLOSE_TIMEOUT,
    )
    await runner.setup()
    try:
        # A deep accept backlog: a load balancer may open many connections
        # at once after a deployment.
        site = web.TCPSite(runner, settings.host, settings.port, backlog=2048)
        try:
            await site.start()
        except OSError as exc:
            message = listen_error(settings.host, settings.port, exc)
            sys.stderr.write(f"agentcore-bridge serve: {message}\n")
            return 1
        stop = asyncio.Event()

        def on_signal() -> None:
            if stop.is_set():
                server.hurry()
            stop.set()

        # Before saying it is ready: from then on a signal drains.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal)
        on_ready(_base_url(runner.addresses[0]))
        await stop.wait()
        logger.info("signal received: draining")
        # The listener stays open meanwhile, so the load balancer's health
        # check reads 503 instead of a refused connection.
        await server.shutdown()
    finally:
        await runner.cleanup()
    return 0


class AccessLogger(AbstractAccessLogger):
    """One line per HTTP request, without the query string.

    The query may carry a bearer token (``access_token``) or a session
    token (``session``), which must never reach the logs; aiohttp's default
    format logs the whole request line.
    """

    def log(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> None:
        self.logger.info(
            '%s "%s %s" %d %.3f s',
            request.remote,
            request.method,
            request.path,
            response.status,
            time,
        )


def _base_url(address: Any) -> str:
    host, port = address[0], address[1]
    if ":" in str(host):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _raise_open_file_limit(wanted: int) -> None:
    # Every WebSocket is a file descriptor (two for a pass-through); the
    # usual soft limit of 1024 would cap the server long before
    # BRIDGE_MAX_CONNECTIONS. Raising the soft limit up to the hard one
    # needs no privilege.
    try:
        import resource  # noqa: PLC0415 - not on Windows
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            logger.debug("open file limit raised from %d to %d", soft, target)


# Logging set-up for the commands; the library itself never configures
# logging.


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def configure_logging(level: str, log_format: str) -> None:
    """Send log records at ``level`` and above to stderr, as JSON or text."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
