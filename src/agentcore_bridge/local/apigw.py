"""Local emulator of an API Gateway WebSocket API with a Lambda integration.

One aiohttp server plays three AWS services for one Lambda function:

- the WebSocket API itself, at ``ws://HOST:PORT/{stage}``: it turns the
  client's handshake, text frames and close into ``$connect``, MESSAGE and
  ``$disconnect`` events of the shape API Gateway sends, and enforces API
  Gateway's rules (the handshake waits for ``$connect``; binary frames close
  with 1003, oversize messages with 1009; idle and maximum-duration limits
  close with 1001; the integration timeout);
- the ``@connections`` management API, ``POST|GET|DELETE
  /{stage}/@connections/{connectionId}``, SigV4-verified (service
  ``execute-api``), with AWS's status codes and error names;
- the Lambda Invoke API for the function, ``POST
  /2015-03-31/functions/{FunctionName}/invocations`` (service ``lambda``),
  so that a handler can invoke itself, as warmers do.

The function runs as Lambda runs it: in execution environments that are
separate processes, each handling one event at a time, started cold when
none is idle (see :mod:`._lambda_pool`). ``GET /_emulator/stats`` shows the
environments, cold starts and open connections; ``DELETE
/_emulator/environments`` retires every environment so that the next event
starts cold and imports the handler's code anew.

Run it with ``agentcore-bridge local-apigw --handler module:function``
(:func:`main`), or in code with :func:`create_apigw_app`. Every value that
AWS documents is the default; every value that a test needs to shrink (the
timeouts, the limits) is a field of :class:`ApiGatewayConfig`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

from aiohttp import WSMsgType, web

from .._listen import listen_error
from ..credentials import Credentials
from ..exceptions import ValidationError
from ..sigv4 import UNSIGNED_PAYLOAD
from ._lambda_pool import EnvironmentPool, InvocationResult, PoolSettings
from .sigv4_verifier import SignatureError, SigV4Verifier

__all__ = [
    "DEFAULT_CREDENTIALS",
    "ApiGatewayConfig",
    "LocalApiGateway",
    "create_apigw_app",
    "main",
]

logger = logging.getLogger("agentcore_bridge.local.apigw")

#: The key pair the emulator accepts unless told otherwise. It is fixed and
#: public on purpose: it only ever unlocks this local emulator.
DEFAULT_CREDENTIALS = Credentials(
    "AKIDLOCALAPIGATEWAY0", "local-apigw-secret-access-key-not-a-secret"
)

DEFAULT_PORT = 3001

#: Route keys API Gateway reserves; a route selection never picks them.
_SPECIAL_ROUTES = frozenset({"$connect", "$disconnect", "$default"})

# Lambda's payload limits: 6 MB for a synchronous invocation, 1 MB for an
# asynchronous one (raised from 256 KB in 2025).
_SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
_ASYNC_PAYLOAD_LIMIT = 1024 * 1024

_STAGE_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MONTHS = tuple(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
)

# Environment variables a worker inherits from the emulator: enough to find
# Python and its packages, nothing that could point a handler at real AWS.
_INHERITED_VARIABLES = tuple(
    ["PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT"]
)

#: What GET /_emulator/stats counts.
_COUNTERS = [
    "connects",
    "connects_rejected",
    "messages",
    "disconnects",
    "posts",
    "posts_gone",
    "posts_throttled",
    "lambda_invokes",
]

# Handshake headers that aiohttp writes itself; a $connect response cannot
# replace them.
_HANDSHAKE_HEADERS = frozenset(
    [
        "connection",
        "upgrade",
        "sec-websocket-accept",
        "content-length",
        "transfer-encoding",
        "date",
        "server",
    ]
)


@dataclass(frozen=True)
class ApiGatewayConfig:
    """Everything the emulator can be told; the defaults are AWS's values.

    ``handler`` is ``module:function`` (Lambda's ``module.function`` works
    too), imported from ``code_dir`` (Lambda's task root) in each execution
    environment. ``routes`` limits the route keys a route selection can
    pick (``None``: any value is a route); ``route_responses`` names the
    routes whose return value is sent back to the client. ``env`` adds
    environment variables to every execution environment. ``credentials``
    are the only key pair the SigV4 checks accept, unless
    ``accept_any_credentials`` is set. ``log_stream`` receives what the
    handler prints and the ``REPORT`` lines, prefixed with the environment
    id; ``None`` (the default) logs each line on the
    ``agentcore_bridge.local.function`` logger instead, at INFO (the
    command line passes its stderr).

    Raises :class:`~agentcore_bridge.exceptions.ValidationError` naming the
    field when a value is out of range.
    """

    handler: str
    code_dir: str = "."
    stage: str = "local"
    route_selection_expression: str = "$request.body.action"
    routes: frozenset[str] | None = None
    route_responses: frozenset[str] = frozenset()
    send_integration_errors: bool = True
    api_id: str = "localapigw"
    domain_name: str | None = None
    region: str = "us-east-1"
    account_id: str = "123456789012"
    function_name: str = "local-websocket-handler"
    memory_size: int = 128
    function_timeout: float = 30.0
    init_timeout: float = 10.0
    max_concurrency: int = 10
    environment_idle_timeout: float = 300.0
    integration_timeout: float = 29.0
    idle_timeout: float = 600.0
    max_connection_duration: float = 7200.0
    max_message_bytes: int = 131072
    max_post_bytes: int = 131072
    post_rate_limit: int | None = None
    credentials: Credentials = DEFAULT_CREDENTIALS
    accept_any_credentials: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    python: str = sys.executable
    log_stream: TextIO | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Accept any iterable for the sets, so callers can pass lists.
        if self.routes is not None:
            object.__setattr__(self, "routes", frozenset(self.routes))
        object.__setattr__(self, "route_responses", frozenset(self.route_responses))
        object.__setattr__(self, "env", dict(self.env))

        if ":" not in self.handler and "." not in self.handler:
            raise ValidationError("handler", "must be module:function")
        if not _STAGE_RE.match(self.stage):
            raise ValidationError("stage", "must be 1 to 128 of A-Z a-z 0-9 _ -")
        _selection_path(self.route_selection_expression)
        for name in (
            "function_timeout",
            "init_timeout",
            "environment_idle_timeout",
            "integration_timeout",
            "idle_timeout",
            "max_connection_duration",
        ):
            if not getattr(self, name) > 0:
                raise ValidationError(name, "must be a positive number of seconds")
        for name in (
            "max_concurrency",
            "memory_size",
            "max_message_bytes",
            "max_post_bytes",
        ):
            if not getattr(self, name) >= 1:
                raise ValidationError(name, "must be a positive integer")
        if self.post_rate_limit is not None and self.post_rate_limit < 1:
            raise ValidationError("post_rate_limit", "must be a positive integer")

    @property
    def function_arn(self) -> str:
        """The function's unqualified ARN."""
        return (
            f"arn:aws:lambda:{self.region}:{self.account_id}"
            f":function:{self.function_name}"
        )


def _selection_path(expression: str) -> tuple[str, ...]:
    prefix = "$request.body."
    path = expression[len(prefix) :] if expression.startswith(prefix) else ""
    keys = tuple(path.split(".")) if path else ()
    if not keys or not all(keys):
        raise ValidationError(
            "route_selection_expression", "must be $request.body.<key>[.<key>...]"
        )
    return keys


class _Connection:
    """One client WebSocket, from its handshake to its close."""

    def __init__(
        self,
        connection_id: str,
        *,
        source_ip: str,
        user_agent: str,
        domain_name: str,
    ) -> None:
        self.id = connection_id
        self.source_ip = source_ip
        self.user_agent = user_agent
        self.domain_name = domain_name
        # connecting -> open -> closing -> closed; only "open" accepts posts.
        self.state = "connecting"
        self.ws: web.WebSocketResponse | None = None
        self.connected_at_ms = _now_ms()
        self.last_active_ms = self.connected_at_ms
        self.opened = time.monotonic()
        self.last_data = self.opened
        self.close_code: int | None = None
        self.close_reason = ""

    def touch(self) -> None:
        """Record a data message in either direction."""
        self.last_active_ms = _now_ms()
        self.last_data = time.monotonic()

    def describe(self) -> dict[str, Any]:
        return {
            "connectionId": self.id,
            "state": self.state,
            "connectedAt": _iso8601(self.connected_at_ms),
            "lastActiveAt": _iso8601(self.last_active_ms),
            "sourceIp": self.source_ip,
        }


class LocalApiGateway:
    """The emulator's state and request handlers; one per server.

    Build the aiohttp application with :meth:`make_app` (or
    :func:`create_apigw_app`). Call :meth:`set_base_url` once the server
    listens, so that execution environments learn the emulator's address
    before the first request (otherwise the first request's ``Host`` is
    used). ``verifiers`` holds the SigV4 check of each service the
    emulator plays, by signing name (``execute-api``, ``lambda``).
    """

    def __init__(self, config: ApiGatewayConfig) -> None:
        self.config = config
        self.base_url: str | None = None
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._selection = _selection_path(config.route_selection_expression)
        self._connections: dict[str, _Connection] = {}
        self._issued_ids: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._post_times: deque[float] = deque()
        self._shutting_down = False
        # AWS scopes a signature to one signing name: a request signed for
        # Lambda is refused by @connections, and the other way round.
        self.verifiers = {
            service: SigV4Verifier(
                [config.credentials],
                region=config.region,
                service=service,
                accept_any=config.accept_any_credentials,
            )
            for service in ("execute-api", "lambda")
        }
        self.pool = EnvironmentPool(
            PoolSettings(
                python=config.python,
                code_dir=os.path.abspath(config.code_dir),
                environment=self.worker_environment,
                function_timeout=config.function_timeout,
                init_timeout=config.init_timeout,
                max_concurrency=config.max_concurrency,
                idle_timeout=config.environment_idle_timeout,
                log_stream=config.log_stream,
            )
        )

    # Addresses.

    def set_base_url(self, url: str) -> None:
        """Tell the emulator its own ``http://host:port`` address."""
        self.base_url = url.rstrip("/")

    @property
    def connections_url(self) -> str:
        """The ``@connections`` endpoint (with the stage), as SDKs want it."""
        return f"{self.base_url}/{self.config.stage}"

    @property
    def websocket_url(self) -> str:
        """The ``ws://`` URL clients connect to."""
        base = self.base_url or ""
        return "ws" + base[len("http") :] + f"/{self.config.stage}"

    def worker_environment(self) -> dict[str, str]:
        """The environment variables of a new execution environment."""
        config = self.config
        environment = {
            name: os.environ[name]
            for name in _INHERITED_VARIABLES
            if name in os.environ
        }
        environment.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_size),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.function_name}",
                "AWS_REGION": config.region,
                "AWS_DEFAULT_REGION": config.region,
                "AWS_EXECUTION_ENV": (
                    f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}"
                ),
                "LAMBDA_TASK_ROOT": os.path.abspath(config.code_dir),
                "_HANDLER": config.handler,
                "TZ": ":UTC",
                "PYTHONUNBUFFERED": "1",
                "AWS_ACCESS_KEY_ID": config.credentials.access_key_id,
                "AWS_SECRET_ACCESS_KEY": config.credentials.secret_access_key,
            }
        )
        if config.credentials.session_token:
            environment["AWS_SESSION_TOKEN"] = config.credentials.session_token
        if self.base_url:
            # Our own names, and the per-service endpoint variables that
            # botocore and boto3 read, so unmodified SDK code reaches us.
            environment["BRIDGE_CONNECTIONS_ENDPOINT_URL"] = self.connections_url
            environment["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = (
                self.connections_url
            )
            environment["BRIDGE_LAMBDA_ENDPOINT_URL"] = self.base_url
            environment["AWS_ENDPOINT_URL_LAMBDA"] = self.base_url
        environment.update(config.env)
        return environment

    def _remember_base_url(self, request: web.Request) -> None:
        if self.base_url is None:
            self.set_base_url(f"{request.scheme}://{request.host}")

    # The application.

    def make_app(self) -> web.Application:
        """Build the aiohttp application serving every endpoint."""
        app = web.Application(client_max_size=_SYNC_PAYLOAD_LIMIT + 1024 * 1024)
        app[GATEWAY_KEY] = self
        stage = self.config.stage
        app.router.add_get("/_emulator/stats", self._handle_stats)
        app.router.add_delete("/_emulator/environments", self._handle_retire)
        app.router.add_post(
            "/2015-03-31/functions/{function_name}/invocations", self._handle_invoke
        )
        connection_path = f"/{stage}/@connections/{{connection_id}}"
        app.router.add_post(connection_path, self._handle_post)
        app.router.add_get(connection_path, self._handle_get)
        app.router.add_delete(connection_path, self._handle_delete)
        app.router.add_get(f"/{stage}", self._handle_websocket)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self.pool.start()

    async def _on_shutdown(self, app: web.Application) -> None:
        # Close clients first (1001, as a server going away does), then stop
        # the environments so that pending invocations end at once.
        self._shutting_down = True
        closing = [
            self._server_close(connection, 1001, "Going away")
            for connection in list(self._connections.values())
            if connection.state == "open"
        ]
        if closing:
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=2.0)
        await self.pool.close()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.pool.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _integrate(self, event: dict[str, Any]) -> InvocationResult | None:
        """Invoke the function for an API Gateway event.

        Returns ``None`` when the integration timeout ran out first; the
        invocation itself goes on, as it does on Lambda.
        """
        invocation = self._spawn(
            self.pool.invoke(event, invoked_function_arn=self.config.function_arn)
        )
        try:
            return await asyncio.wait_for(
                asyncio.shield(invocation), self.config.integration_timeout
            )
        except asyncio.TimeoutError:
            logger.info(
                "integration timeout on %s for %s",
                event["requestContext"]["routeKey"],
                event["requestContext"]["connectionId"],
            )
            return None

    # The WebSocket API.

    async def _handle_websocket(self, request: web.Request) -> web.StreamResponse:
        config = self.config
        # Offer the client's own subprotocols to the check, so that aiohttp
        # does not warn about them: the $connect route decides.
        offered = request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        probe = web.WebSocketResponse(protocols=[p.strip() for p in offered])
        if not probe.can_prepare(request).ok:
            return _json_error(426, "UpgradeRequired", "Upgrade Required")
        self._remember_base_url(request)

        connection = _Connection(
            self._new_connection_id(),
            source_ip=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
            domain_name=config.domain_name or request.host,
        )
        self._connections[connection.id] = connection

        # $connect: the handshake waits for the integration's answer.
        outcome = await self._integrate(self._connect_event(request, connection))
        rejection, headers = _connect_decision(outcome)
        if rejection is not None or self._shutting_down:
            self._connections.pop(connection.id, None)
            connection.state = "closed"
            self.counters["connects_rejected"] += 1
            logger.info("connection %s rejected", connection.id)
            return rejection or _json_error(503, "ServiceUnavailable", "Going away")
        # A subprotocol the route chose is negotiated by aiohttp itself.
        protocols = [v for n, v in headers if n.lower() == "sec-websocket-protocol"]
        ws = web.WebSocketResponse(
            max_msg_size=config.max_message_bytes,
            timeout=5.0,
            autoping=True,
            protocols=protocols[:1],
        )
        for name, value in headers:
            if name.lower() != "sec-websocket-protocol":
                ws.headers[name] = value

        code, reason = 1006, "Connection closed abnormally"
        watchdog: asyncio.Task[None] | None = None
        try:
            try:
                await ws.prepare(request)
            except ConnectionResetError:
                # The client gave up while $connect ran: there is nobody to
                # answer, but the handler accepted the connection and may
                # have stored it, so $disconnect still follows.
                logger.info("connection %s left during $connect", connection.id)
                return ws
            connection.ws = ws
            connection.state = "open"
            connection.opened = connection.last_data = time.monotonic()
            self.counters["connects"] += 1
            logger.info("connection %s open", connection.id)
            watchdog = asyncio.create_task(self._watch(connection))
            code, reason = await self._receive(connection, ws)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            connection.state = "closed"
            self._connections.pop(connection.id, None)
            logger.info("connection %s closed (%s)", connection.id, code)
            # $disconnect is best effort, as on AWS: not during shutdown.
            if not self._shutting_down:
                self.counters["disconnects"] += 1
                self._spawn(
                    self._integrate(self._disconnect_event(connection, code, reason))
                )
        return ws

    async def _receive(
        self, connection: _Connection, ws: web.WebSocketResponse
    ) -> tuple[int, str]:
        """Read client frames until the socket closes; return code and reason."""
        while True:
            message = await ws.receive()
            if message.type is WSMsgType.TEXT:
                connection.touch()
                self.counters["messages"] += 1
                self._spawn(self._route_message(connection, message.data))
            elif message.type is WSMsgType.BINARY:
                # API Gateway accepts text frames only.
                await self._server_close(connection, 1003, "Unsupported data")
            elif message.type is WSMsgType.CLOSE:
                code = int(message.data or 0)
                if code == 0:
                    return 1005, "Client-side close frame status not set"
                return code, str(message.extra or "")
            elif message.type is WSMsgType.ERROR:
                # aiohttp has closed the socket already, with the code its
                # error carries (1009 for a message above max_msg_size).
                code = int(getattr(message.data, "code", 1006) or 1006)
                reasons = {1009: "Message too big", 1002: "Protocol error"}
                return code, reasons.get(code, "Connection closed abnormally")
            elif connection.close_code is not None:
                return connection.close_code, connection.close_reason
            else:
                # The TCP connection ended without a close frame.
                return 1006, "Connection closed abnormally"

    async def _server_close(
        self, connection: _Connection, code: int, reason: str
    ) -> None:
        if connection.state not in {"open", "connecting"} or connection.ws is None:
            return
        connection.state = "closing"
        connection.close_code, connection.close_reason = code, reason
        with contextlib.suppress(ConnectionError, RuntimeError):
            await connection.ws.close(code=code, message=reason.encode())

    async def _watch(self, connection: _Connection) -> None:
        # API Gateway closes a connection idle for 10 minutes (data messages
        # reset the clock, pings do not) and any connection after 2 hours.
        config = self.config
        while connection.state == "open":
            idle_deadline = connection.last_data + config.idle_timeout
            hard_deadline = connection.opened + config.max_connection_duration
            wait = min(idle_deadline, hard_deadline) - time.monotonic()
            if wait <= 0:
                logger.info("connection %s timed out", connection.id)
                self._spawn(self._server_close(connection, 1001, "Going away"))
                return
            await asyncio.sleep(wait)

    async def _route_message(self, connection: _Connection, body: str) -> None:
        route = self._select_route(body)
        event = self._message_event(connection, route, body)
        logger.debug(
            "message of %d characters on %s to route %s",
            len(body),
            connection.id,
            route,
        )
        outcome = await self._integrate(event)
        reply = self._route_reply(connection, route, event, outcome)
        if reply is not None and connection.state == "open" and connection.ws:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await connection.ws.send_str(reply)
                connection.touch()

    def _select_route(self, body: str) -> str:
        # Frames that are not JSON objects, or lack the key, go to $default.
        try:
            value: Any = json.loads(body)
        except ValueError:
            return "$default"
        for key in self._selection:
            if not isinstance(value, dict) or key not in value:
                return "$default"
            value = value[key]
        if value is None or isinstance(value, (dict, list)):
            return "$default"
        route = value if isinstance(value, str) else json.dumps(value)
        routes = self.config.routes
        if route in _SPECIAL_ROUTES or (routes is not None and route not in routes):
            return "$default"
        return route

    def _route_reply(
        self,
        connection: _Connection,
        route: str,
        event: dict[str, Any],
        outcome: InvocationResult | None,
    ) -> str | None:
        # Errors reach the client as a JSON message naming the connection
        # and request; a result only when the route has a route response.
        request_id = event["requestContext"]["requestId"]
        if outcome is None or not outcome.ok:
            if not self.config.send_integration_errors:
                return None
            text = (
                "Endpoint request timed out"
                if outcome is None
                else ("Internal server error")
            )
            return json.dumps(
                {
                    "message": text,
                    "connectionId": connection.id,
                    "requestId": request_id,
                }
            )
        if route not in self.config.route_responses or outcome.result is None:
            return None
        result = outcome.result
        if isinstance(result, dict):
            body = result.get("body")
            if body is None:
                return None
            return body if isinstance(body, str) else json.dumps(body)
        return result if isinstance(result, str) else json.dumps(result)

    # Events, in the shape API Gateway sends them.

    def _request_context(
        self, connection: _Connection, route: str, event_type: str
    ) -> dict[str, Any]:
        now_ms = _now_ms()
        request_id = _new_id()
        context: dict[str, Any] = {"routeKey": route}
        if event_type == "MESSAGE":
            context["messageId"] = _new_id()
        context.update(
            {
                "eventType": event_type,
                "extendedRequestId": request_id,
                "requestTime": _request_time(now_ms),
                "messageDirection": "IN",
                "stage": self.config.stage,
                "connectedAt": connection.connected_at_ms,
                "requestTimeEpoch": now_ms,
                "identity": {"sourceIp": connection.source_ip},
                "requestId": request_id,
                "domainName": connection.domain_name,
                "connectionId": connection.id,
                "apiId": self.config.api_id,
            }
        )
        return context

    def _connect_event(
        self, request: web.Request, connection: _Connection
    ) -> dict[str, Any]:
        # The client's upgrade headers without the hop-by-hop ones, plus
        # what API Gateway's front end adds.
        pairs = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.raw_headers
            if name.lower() not in {b"connection", b"upgrade"}
        ]
        port = str(request.url.port or "")
        pairs += [
            ("X-Amzn-Trace-Id", _trace_id()),
            ("X-Forwarded-For", connection.source_ip),
            ("X-Forwarded-Port", port),
            ("X-Forwarded-Proto", request.scheme),
        ]
        headers, multi_headers = _single_and_multi(pairs)
        event: dict[str, Any] = {"headers": headers, "multiValueHeaders": multi_headers}
        query = list(request.rel_url.query.items())
        if query:
            single, multi = _single_and_multi(query)
            event["queryStringParameters"] = single
            event["multiValueQueryStringParameters"] = multi
        event["requestContext"] = self._request_context(
            connection, "$connect", "CONNECT"
        )
        event["isBase64Encoded"] = False
        return event

    def _message_event(
        self, connection: _Connection, route: str, body: str
    ) -> dict[str, Any]:
        return {
            "requestContext": self._request_context(connection, route, "MESSAGE"),
            "body": body,
            "isBase64Encoded": False,
        }

    def _disconnect_event(
        self, connection: _Connection, code: int, reason: str
    ) -> dict[str, Any]:
        # API Gateway sends these four headers, whatever the client sent.
        headers, multi_headers = _single_and_multi(
            [
                ("Host", connection.domain_name),
                ("x-api-key", ""),
                ("X-Forwarded-For", ""),
                ("x-restapi", ""),
            ]
        )
        context = self._request_context(connection, "$disconnect", "DISCONNECT")
        # Keep AWS's key order: the status code follows routeKey, the
        # reason follows messageDirection.
        ordered: dict[str, Any] = {}
        for key, value in context.items():
            ordered[key] = value
            if key == "routeKey":
                ordered["disconnectStatusCode"] = code
            elif key == "messageDirection":
                ordered["disconnectReason"] = reason
        return {
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "requestContext": ordered,
            "isBase64Encoded": False,
        }

    def _new_connection_id(self) -> str:
        while True:
            connection_id = _new_id()
            if connection_id not in self._issued_ids:
                self._issued_ids.add(connection_id)
                return connection_id

    # The @connections API.

    async def _connection_request(
        self, request: web.Request
    ) -> tuple[web.Response | None, bytes, _Connection | None, str]:
        body = await request.read()
        request_id = str(uuid.uuid4())
        self._remember_base_url(request)
        refused = self._authenticate(request, body, "execute-api")
        if refused is not None:
            # ForbiddenException is the one authentication error the
            # @connections API declares; the message still tells the case.
            return (
                _json_error(403, "ForbiddenException", refused.message, request_id),
                body,
                None,
                request_id,
            )
        connection = self._connections.get(request.match_info["connection_id"])
        if connection is not None and connection.state != "open":
            connection = None
        return None, body, connection, request_id

    async def _handle_post(self, request: web.Request) -> web.Response:
        denied, body, connection, request_id = await self._connection_request(request)
        if denied is not None:
            return denied
        if len(body) > self.config.max_post_bytes:
            return _json_error(
                413,
                "PayloadTooLargeException",
                f"Message too long: {len(body)} bytes, the limit is "
                f"{self.config.max_post_bytes}",
                request_id,
            )
        if self._throttled():
            self.counters["posts_throttled"] += 1
            return _json_error(
                429, "LimitExceededException", "Rate exceeded", request_id
            )
        if connection is None or connection.ws is None:
            self.counters["posts_gone"] += 1
            return _gone(request_id)

        # API Gateway sends posted data as a text frame; bytes that are not
        # UTF-8 cannot be text and go as a binary frame.
        try:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                await connection.ws.send_bytes(body)
            else:
                await connection.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            self.counters["posts_gone"] += 1
            return _gone(request_id)
        connection.touch()
        self.counters["posts"] += 1
        return web.Response(status=200, headers={"x-amzn-RequestId": request_id})

    async def _handle_get(self, request: web.Request) -> web.Response:
        denied, _, connection, request_id = await self._connection_request(request)
        if denied is not None:
            return denied
        if connection is None:
            return _gone(request_id)
        document = {
            "connectedAt": _iso8601(connection.connected_at_ms),
            "identity": {
                "sourceIp": connection.source_ip,
                "userAgent": connection.user_agent,
            },
            "lastActiveAt": _iso8601(connection.last_active_ms),
        }
        return web.json_response(document, headers={"x-amzn-RequestId": request_id})

    async def _handle_delete(self, request: web.Request) -> web.Response:
        denied, _, connection, request_id = await self._connection_request(request)
        if denied is not None:
            return denied
        if connection is None:
            return _gone(request_id)
        self._spawn(self._server_close(connection, 1000, ""))
        return web.Response(status=204, headers={"x-amzn-RequestId": request_id})

    def _authenticate(
        self, request: web.Request, body: bytes, service: str
    ) -> SignatureError | None:
        # The refusal to answer with, or None when the request may proceed.
        try:
            verified = self.verifiers[service].verify(
                request.method,
                request.rel_url.raw_path,
                request.rel_url.raw_query_string,
                list(request.headers.items()),
                body,
                now=time.time(),
            )
        except SignatureError as refused:
            return refused

        # The signature covers the hash the request declares, not the body:
        # a declared hash must be the body's, or the body went unsigned.
        declared = request.headers.get("x-amz-content-sha256")
        if verified.checked and declared not in {
            None,
            UNSIGNED_PAYLOAD,
            hashlib.sha256(body).hexdigest(),
        }:
            return SignatureError(
                403,
                "InvalidSignatureException",
                "mismatch",
                "The provided x-amz-content-sha256 header does not match the body.",
            )
        return None

    def _throttled(self) -> bool:
        limit = self.config.post_rate_limit
        if limit is None:
            return False
        now = time.monotonic()
        while self._post_times and now - self._post_times[0] >= 1.0:
            self._post_times.popleft()
        if len(self._post_times) >= limit:
            return True
        self._post_times.append(now)
        return False

    # The Lambda Invoke API.

    async def _handle_invoke(self, request: web.Request) -> web.Response:
        body = await request.read()
        request_id = str(uuid.uuid4())
        self._remember_base_url(request)
        refused = self._authenticate(request, body, "lambda")
        if refused is not None:
            return _lambda_refusal(refused, request_id)

        name = request.match_info["function_name"]
        qualifier = request.query.get("Qualifier")
        if not self._is_this_function(name, qualifier):
            return _lambda_error(
                404,
                "ResourceNotFoundException",
                f"Function not found: {self._qualified_arn(name, qualifier)}",
                request_id,
            )

        invocation_type = request.headers.get(
            "X-Amz-Invocation-Type", "RequestResponse"
        )
        if invocation_type not in {"RequestResponse", "Event", "DryRun"}:
            return _lambda_error(
                400,
                "InvalidParameterValueException",
                "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun",
                request_id,
            )
        limit = (
            _ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else _SYNC_PAYLOAD_LIMIT
        )
        if len(body) > limit:
            return _lambda_error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the "
                f"{invocation_type} invocation type",
                request_id,
            )
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError:
            return _lambda_error(
                400,
                "InvalidRequestContentException",
                "Could not parse request body into json",
                request_id,
            )

        headers = {"x-amzn-RequestId": request_id}
        if invocation_type == "DryRun":
            return web.Response(status=204, headers=headers)
        self.counters["lambda_invokes"] += 1
        invoked_arn = self._qualified_arn(self.config.function_name, qualifier)
        invocation = self.pool.invoke(
            event, invoked_function_arn=invoked_arn, request_id=request_id
        )
        if invocation_type == "Event":
            self._spawn(invocation)
            return web.Response(status=202, headers=headers)

        outcome = await invocation
        headers["X-Amz-Executed-Version"] = "$LATEST"
        if outcome.error is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
            payload = json.dumps(outcome.error)
        else:
            payload = json.dumps(outcome.result)
        return web.Response(
            status=200,
            body=payload.encode(),
            headers=headers,
            content_type="application/json",
        )

    def _is_this_function(self, name: str, qualifier: str | None) -> bool:
        # FunctionName may be a name, name:qualifier, a partial ARN
        # (account:function:name) or a full ARN, each with a qualifier.
        parts = name.split(":")
        if parts[0] == "arn":
            if len(parts) not in {7, 8} or parts[2] != "lambda":
                return False
            if parts[3] != self.config.region or parts[4] != self.config.account_id:
                return False
            parts = parts[6:]
        elif len(parts) >= 3 and parts[1] == "function":
            if parts[0] != self.config.account_id:
                return False
            parts = parts[2:]
        if len(parts) > 2 or parts[0] != self.config.function_name:
            return False
        qualifiers = {
            q for q in (qualifier, parts[1] if len(parts) == 2 else None) if q
        }
        return qualifiers <= {"$LATEST"}

    def _qualified_arn(self, name: str, qualifier: str | None) -> str:
        if name.startswith("arn:"):
            return name
        arn = (
            f"arn:aws:lambda:{self.config.region}:{self.config.account_id}"
            f":function:{name.rsplit(':', 1)[-1] if ':function:' in name else name}"
        )
        return f"{arn}:{qualifier}" if qualifier else arn

    # The emulator's own endpoints.

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _handle_retire(self, request: web.Request) -> web.Response:
        return web.json_response({"retired": self.pool.retire_all()})

    def stats(self) -> dict[str, Any]:
        """Environments, cold starts, connections and counters, as JSON data."""
        document = self.pool.describe()
        open_connections = [
            c.describe() for c in self._connections.values() if c.state == "open"
        ]
        document.update(
            {
                "connections_open": len(open_connections),
                "connections": [c.describe() for c in self._connections.values()],
                "counters": dict(self.counters),
                "worker_pids": self.pool.pids(),
            }
        )
        return document


GATEWAY_KEY = web.AppKey("agentcore_bridge.local.apigw", LocalApiGateway)


def create_apigw_app(config: ApiGatewayConfig) -> web.Application:
    """Return the emulator as an aiohttp application.

    The :class:`LocalApiGateway` behind it is ``app[GATEWAY_KEY]``; call its
    ``set_base_url`` once the server listens. Shutting the application
    down closes every client with 1001 and stops every environment.
    """
    return LocalApiGateway(config).make_app()


# Small helpers.


def _connect_decision(
    outcome: InvocationResult | None,
) -> tuple[web.Response | None, list[tuple[str, str]]]:
    # A rejection (the response to send instead of the handshake), or the
    # headers the $connect route asked to add to the handshake.
    if outcome is None:
        return _json_error(504, "IntegrationTimeout", "Endpoint request timed out"), []
    if not outcome.ok:
        return _json_error(500, "InternalServerError", "Internal server error"), []
    result = outcome.result
    if not isinstance(result, dict):
        return None, []
    status = result.get("statusCode")
    if status is not None:
        try:
            code = int(status)
        except (TypeError, ValueError):
            code = 502
        if not 200 <= code < 300:
            body = result.get("body")
            return web.Response(
                status=code if 400 <= code < 600 else 502,
                text=body if isinstance(body, str) else "",
            ), []
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        if str(name).lower() not in _HANDSHAKE_HEADERS:
            headers.append((str(name), str(value)))
    return None, headers


def _json_error(
    status: int, error_type: str, message: str, request_id: str | None = None
) -> web.Response:
    headers = {"x-amzn-ErrorType": error_type}
    if request_id:
        headers["x-amzn-RequestId"] = request_id
    return web.json_response({"message": message}, status=status, headers=headers)


def _lambda_refusal(refused: SignatureError, request_id: str) -> web.Response:
    status, error_type, message = refused.status, refused.error_type, refused.message
    if refused.reason in {"expired", "not_yet_valid"}:
        # Lambda names a date outside the clock-skew window
        # InvalidSignatureException ("Signature expired: ..."), where
        # AgentCore says AccessDeniedException.
        status, error_type = 403, "InvalidSignatureException"
    elif refused.reason == "bearer":
        # Lambda has no OAuth mode: a Bearer token is just an
        # unsupported signing algorithm, not a method mismatch.
        status, error_type = 400, "IncompleteSignatureException"
        message = "Unsupported AWS 'algorithm': 'Bearer'"
    return _json_error(status, error_type, message, request_id)


def _lambda_error(
    status: int, error_type: str, message: str, request_id: str
) -> web.Response:
    return web.json_response(
        {"Type": "User", "message": message},
        status=status,
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id},
    )


def _gone(request_id: str) -> web.Response:
    return _json_error(410, "GoneException", "Gone", request_id)


def _single_and_multi(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _new_id() -> str:
    # API Gateway's ids look like 11 bytes in URL-safe base64: 16 characters
    # ending with "=" (for example "BFaT_fALIAMCKug=").
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _request_time(epoch_ms: int) -> str:
    # "11/Nov/2024:13:45:46 +0000", with English month names whatever the
    # locale.
    moment = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)
    month = _MONTHS[moment.month - 1]
    return f"{moment.day:02d}/{month}/{moment.year}:{moment:%H:%M:%S} +0000"


def _iso8601(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


# The command line.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentcore-bridge local-apigw",
        description=(
            "Run a Lambda handler behind a local emulator of an API Gateway "
            "WebSocket API, with the @connections API and the Lambda Invoke API."
        ),
    )
    add = parser.add_argument
    add("--handler", required=True, help="module:function to run (required)")
    add("--code-dir", default=".", help="directory the handler is imported from")
    add("--host", default="127.0.0.1", help="address to listen on")
    add("--port", type=int, default=DEFAULT_PORT, help="port (0: any free port)")
    add("--stage", default="local", help="stage name, the first path segment")
    add(
        "--route-selection",
        default="$request.body.action",
        help="route selection expression",
    )
    add(
        "--route",
        action="append",
        default=None,
        metavar="KEY",
        help="a custom route key (repeatable); without any, every value routes",
    )
    add(
        "--route-response",
        action="append",
        default=[],
        metavar="KEY",
        help="send this route's return value to the client (repeatable)",
    )
    add(
        "--max-concurrency",
        type=int,
        default=10,
        help="most execution environments at once",
    )
    add("--function-name", default="local-websocket-handler")
    add("--region", default="us-east-1")
    add("--memory-size", type=int, default=128, help="MB, reported to the handler")
    add("--function-timeout", type=float, default=30.0, help="seconds")
    add("--integration-timeout", type=float, default=29.0, help="seconds")
    add(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="seconds a connection may stay without data messages",
    )
    add("--max-connection-duration", type=float, default=7200.0, help="seconds")
    add(
        "--environment-idle-timeout",
        type=float,
        default=300.0,
        help="seconds before an idle execution environment stops",
    )
    add("--max-message-bytes", type=int, default=131072)
    add(
        "--post-rate-limit",
        type=int,
        default=None,
        help="answer 429 beyond this many @connections posts per second",
    )
    add(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the handler (repeatable)",
    )
    add("--access-key-id", default=DEFAULT_CREDENTIALS.access_key_id)
    add(
        "--secret-access-key", default=None, help="default: the documented local secret"
    )
    add(
        "--accept-any-credentials",
        action="store_true",
        help="accept any well-formed SigV4 signature",
    )
    add("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return parser


def _config_from_args(args: argparse.Namespace) -> ApiGatewayConfig:
    env: dict[str, str] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError("--env", "must be KEY=VALUE")
        env[key] = value
    secret = args.secret_access_key or DEFAULT_CREDENTIALS.secret_access_key
    return ApiGatewayConfig(
        handler=args.handler,
        code_dir=args.code_dir,
        stage=args.stage,
        route_selection_expression=args.route_selection,
        routes=frozenset(args.route) if args.route else None,
        route_responses=frozenset(args.route_response),
        function_name=args.function_name,
        region=args.region,
        memory_size=args.memory_size,
        function_timeout=args.function_timeout,
        integration_timeout=args.integration_timeout,
        idle_timeout=args.idle_timeout,
        max_connection_duration=args.max_connection_duration,
        environment_idle_timeout=args.environment_idle_timeout,
        max_concurrency=args.max_concurrency,
        max_message_bytes=args.max_message_bytes,
        post_rate_limit=args.post_rate_limit,
        credentials=Credentials(args.access_key_id, secret),
        accept_any_credentials=args.accept_any_credentials,
        env=env,
        # In a terminal the functions' output reads best as it was printed.
        log_stream=sys.stderr,
    )


async def _serve(config: ApiGatewayConfig, host: str, port: int) -> int:
    gateway = LocalApiGateway(config)
    runner = web.AppRunner(gateway.make_app(), shutdown_timeout=2.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            # Most often another emulator still running: say so, no traceback.
            message = listen_error(
                host, port, exc, host_setting="--host", port_setting="--port"
            )
            sys.stderr.write(f"agentcore-bridge local-apigw: {message}\n")
            return 1
        bound_port = runner.addresses[0][1]
        url_host = "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host  # noqa: S104
        gateway.set_base_url(f"http://{url_host}:{bound_port}")
        any_key = "  (any key accepted)" if config.accept_any_credentials else ""
        sys.stdout.write(
            f"WebSocket API:   {gateway.websocket_url}\n"
            f"@connections:    {gateway.connections_url}"
            "   (BRIDGE_CONNECTIONS_ENDPOINT_URL)\n"
            f"Lambda Invoke:   {gateway.base_url}   (BRIDGE_LAMBDA_ENDPOINT_URL)\n"
            f"function:        {config.function_arn} -> {config.handler}\n"
            f"access key id:   {config.credentials.access_key_id}{any_key}\n"
            f"stats:           {gateway.base_url}/_emulator/stats\n"
            "Press Ctrl-C to stop.\n"
        )
        sys.stdout.flush()

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until Ctrl-C; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        config = _config_from_args(args)
    except ValidationError as exc:
        sys.stderr.write(f"agentcore-bridge local-apigw: {exc}\n")
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(config, args.host, args.port))
    return 0
