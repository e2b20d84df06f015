"""The bridge server as an aiohttp application.

Routes:

- ``GET /ws``: protocol v1 (``docs/protocol.md``), one
  :class:`~.connection.BridgeConnection` per client;
- ``GET /agent/ws``: the pass-through to the agent's own ``/ws``
  (``BRIDGE_PASSTHROUGH``), one :class:`~.passthrough.Passthrough` per client;
- ``GET /healthz``: 200 while serving, 503 from the moment shutdown starts,
  for the load balancer's health check.

Every WebSocket upgrade goes through the same admission, in this order:
shutting down (503), ``Origin`` allowlist (403), the per-process connection
cap (accepted, then closed with 1013 "try again later"), authentication
(401 or 403), then the ``session`` query parameter. ``docs/server.md``
describes each.

:func:`create_app` works with ``aiohttp.web.run_app`` and with any runner;
``agentcore-bridge serve`` (``cli.py``) adds signal handling that keeps
``/healthz`` answering 503 while connections drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Collection, Coroutine, Iterator, Mapping
from typing import Any, Final

import aiohttp
from aiohttp import hdrs, web
from yarl import URL

from ..agentcore import (
    ERROR_TYPE_HEADER,
    USER_AGENT,
    Timeouts,
    failure_summary,
    is_retryable,
)
from ..aio.agentcore import AsyncAgentCoreClient
from ..config import Settings
from ..credentials import Credentials, CredentialSource
from ..exceptions import (
    AuthenticationError,
    ConfigurationError,
    CredentialsError,
    SessionTokenError,
    ValidationError,
)
from ..sessions import SessionTokens, new_session_id, session_fingerprint
from .auth import (
    BEARER_PROTOCOL_PREFIX,
    SUBPROTOCOL,
    Authenticator,
    BearerTokens,
    authenticate,
    offered_protocols,
    origin_allowed,
)
from .connection import BridgeConnection
from .passthrough import Passthrough, client_left, refuse_after_upgrade
from .sockets import CLOSE_TIMEOUT, ClientSocket, SendWatchdog

__all__ = ["SERVER_KEY", "BridgeServer", "create_app", "get_server"]

logger = logging.getLogger("agentcore_bridge.server")

#: The query parameter that carries a session resume token on connect.
SESSION_PARAMETER: Final = "session"
#: A /ws message this many times over BRIDGE_MAX_FRAME_BYTES is not read to
#: the end: aiohttp closes the connection with 1009. Smaller oversize
#: frames get a payload_too_large error and the connection stays open.
FRAME_CLOSE_FACTOR: Final = 4
#: Seconds a connection refused at the connection cap has to answer the
#: close frame before its TCP connection is dropped: a client that answers
#: at all does so within a round trip.
REFUSAL_CLOSE_TIMEOUT: Final = 0.5
# Settings fields of the client, by the variable that configures them.
_CLIENT_FIELDS = {
    "runtime_arn": "AGENTCORE_RUNTIME_ARN",
    "qualifier": "AGENTCORE_QUALIFIER",
    "endpoint_url": "AGENTCORE_ENDPOINT_URL",
    "endpoint": "AGENTCORE_ENDPOINT_URL",
}


class _UpstreamRefusedError(Exception):
    """The agent's WebSocket could not be opened; close the client with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


class BridgeServer:
    """The state of one bridge server process: settings, clients, connections.

    Made by :func:`create_app`; find it with :func:`get_server`. Its
    :meth:`shutdown` drains the server (also run by aiohttp's
    ``on_shutdown``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: AsyncAgentCoreClient | None = None,
        credentials: Credentials | CredentialSource | None = None,
        authenticator: Authenticator | None = None,
        session_tokens: SessionTokens | None = None,
    ) -> None:
        self.settings = settings
        self._owns_client = client is None
        if client is None:
            client = _make_client(settings, credentials)
        self.client = client
        self.tokens = session_tokens or _make_tokens(settings)
        if authenticator is not None and settings.auth_tokens:
            raise ConfigurationError(
                "BRIDGE_AUTH_TOKENS is set and an authenticator was given: "
                "use one or the other"
            )
        if authenticator is None and settings.auth_tokens:
            authenticator = BearerTokens(
                settings.auth_tokens, query_parameter=settings.auth_query_parameter
            )
        self.authenticator = authenticator
        self.watchdog = SendWatchdog(settings.slow_client_timeout)
        self.close_frame_bytes = settings.max_frame_bytes * FRAME_CLOSE_FACTOR
        self.draining = False
        self.connections: set[BridgeConnection] = set()
        self.passthroughs: set[Passthrough] = set()
        #: WebSockets open or being opened, the number the cap applies to.
        self.open_sockets = 0
        self.invocations = 0
        self.connections_total = 0
        self.invocations_total = 0
        self._no_invocations = asyncio.Event()
        self._no_invocations.set()
        self._no_sockets = asyncio.Event()
        self._no_sockets.set()
        self._hurry = asyncio.Event()
        self._shutdown: asyncio.Future[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # aiohttp signals.

    async def on_startup(self, app: web.Application) -> None:
        self.watchdog.start()
        logger.info(
            "bridge server ready: /ws%s, /healthz; at most %d connections",
            ", /agent/ws" if self.settings.passthrough else "",
            self.settings.max_connections,
        )

    async def on_shutdown(self, app: web.Application) -> None:
        await self.shutdown()

    async def on_cleanup(self, app: web.Application) -> None:
        await self.watchdog.stop()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._owns_client:
            await self.client.close()

    # Counters the drain waits on.

    def invocation_started(self) -> None:
        self.invocations += 1
        self.invocations_total += 1
        self._no_invocations.clear()

    def invocation_ended(self) -> None:
        self.invocations -= 1
        if self.invocations == 0:
            self._no_invocations.set()

    @contextlib.contextmanager
    def _socket_slot(self) -> Iterator[None]:
        self.open_sockets += 1
        self._no_sockets.clear()
        try:
            yield
        finally:
            self.open_sockets -= 1
            if self.open_sockets == 0:
                self._no_sockets.set()

    # Routes.

    async def handle_healthz(self, request: web.Request) -> web.Response:
        """200 while serving; 503 from the moment shutdown starts."""
        headers = {hdrs.CACHE_CONTROL: "no-store"}
        if self.draining:
            return web.json_response(
                {"status": "draining"}, status=503, headers=headers
            )
        body = {
            "status": "ok",
            "connections": self.open_sockets,
            "invocations": self.invocations,
        }
        return web.json_response(body, headers=headers)

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        """``/ws``: protocol v1."""
        refusal = self._check_request(request)
        if refusal is not None:
            return refusal
        offered = offered_protocols(request)
        selectable = [SUBPROTOCOL] if SUBPROTOCOL in offered else []
        if self.open_sockets >= self.settings.max_connections:
            return await self._refuse_full(request, selectable)
        with self._socket_slot():
            admitted = await self._authenticate(request)
            if isinstance(admitted, web.StreamResponse):
                return admitted
            principal = admitted[0]
            session_id, resume_error = self.session_from_query(request, principal)
            try:
                socket = await self.accept_socket(request, selectable)
            except ConnectionResetError:
                # The client gave up while an authentication hook worked.
                return client_left(request)
            connection = BridgeConnection(
                self,
                socket,
                connection_id=_connection_id(),
                principal=principal,
                session_id=session_id,
            )
            self.connections.add(connection)
            self.connections_total += 1
            opened = time.monotonic()
            logger.info(
                "connection %s opened on /ws from %s (principal %s, session %s)",
                connection.id,
                request.remote,
                principal,
                session_fingerprint(session_id),
            )
            try:
                await connection.run(resume_error)
            finally:
                self.connections.discard(connection)
                logger.info(
                    "connection %s closed (code %s) after %.1f s and %d invocations",
                    connection.id,
                    socket.sent_close_code or socket.ws.close_code,
                    time.monotonic() - opened,
                    connection.invocations_total,
                )
            return socket.ws

    async def handle_passthrough(self, request: web.Request) -> web.StreamResponse:
        """``/agent/ws``: the pass-through to the agent's own ``/ws``."""
        refusal = self._check_request(request)
        if refusal is not None:
            return refusal
        offered = offered_protocols(request)
        marker = [SUBPROTOCOL] if SUBPROTOCOL in offered else []
        if self.open_sockets >= self.settings.max_connections:
            return await self._refuse_full(request, marker)
        with self._socket_slot():
            admitted = await self._authenticate(request)
            if isinstance(admitted, web.StreamResponse):
                return admitted
            principal = admitted[0]
            session_id, resume_error = self.session_from_query(request, principal)
            if resume_error is not None:
                return await refuse_after_upgrade(
                    request,
                    self,
                    marker,
                    1008,
                    f"{resume_error.message}: connect without it for a new session",
                )
            # The agent chooses among the client's own subprotocols.
            wanted = [
                p
                for p in offered
                if p != SUBPROTOCOL and not p.startswith(BEARER_PROTOCOL_PREFIX)
            ]
            connection_id = _connection_id()
            try:
                agent = await self.connect_agent(session_id, wanted)
            except _UpstreamRefusedError as exc:
                logger.warning(
                    "pass-through %s: could not open the agent's WebSocket: %s",
                    connection_id,
                    exc.reason,
                )
                return await refuse_after_upgrade(
                    request, self, marker, exc.code, exc.reason
                )
            if self.draining:
                # Shutdown began while AgentCore was answering.
                await agent.close(code=1001)
                return await refuse_after_upgrade(
                    request, self, marker, 1001, "the server is shutting down"
                )
            chosen = [agent.protocol] if agent.protocol else marker
            try:
                socket = await self.accept_socket(
                    request,
                    chosen,
                    max_message_bytes=self.settings.passthrough_max_frame_bytes,
                )
            except ConnectionResetError:
                # The client gave up while AgentCore was answering (a cold
                # start takes tens of seconds).
                await agent.close(code=1001)
                return client_left(request)
            except BaseException:
                await agent.close(code=1001)
                raise
            pipe = Passthrough(
                self,
                socket,
                agent,
                connection_id=connection_id,
                session_id=session_id,
            )
            self.passthroughs.add(pipe)
            self.connections_total += 1
            opened = time.monotonic()
            logger.info(
                "pass-through %s opened from %s (principal %s, session %s)",
                connection_id,
                request.remote,
                principal,
                session_fingerprint(session_id),
            )
            try:
                side, code = await pipe.run()
            finally:
                self.passthroughs.discard(pipe)
            logger.info(
                "pass-through %s closed by the %s (code %s) after %.1f s, "
                "%d messages to the agent, %d to the client",
                connection_id,
                side,
                code,
                time.monotonic() - opened,
                pipe.messages_to_agent,
                pipe.messages_to_client,
            )
            return socket.ws

    # Admission.

    def _check_request(self, request: web.Request) -> web.Response | None:
        if self.draining:
            return web.Response(
                status=503,
                text="the server is shutting down\n",
                headers={hdrs.RETRY_AFTER: "1"},
            )
        if not origin_allowed(request, self.settings.allowed_origins):
            logger.warning(
                "refused a connection from %s: origin not allowed", request.remote
            )
            return web.Response(status=403, text="origin not allowed\n")
        offered = offered_protocols(request)
        if SUBPROTOCOL not in offered and any(
            p.startswith(BEARER_PROTOCOL_PREFIX) for p in offered
        ):
            return web.Response(
                status=400,
                text=f"offer the {SUBPROTOCOL} subprotocol with the bearer one\n",
            )
        return None

    async def _authenticate(
        self, request: web.Request
    ) -> tuple[str | None] | web.StreamResponse:
        try:
            return (await authenticate(request, self.authenticator),)
        except AuthenticationError as exc:
            logger.warning(
                "refused a connection from %s: %s (%d)",
                request.remote,
                exc.message,
                exc.status,
            )
            headers = {}
            if exc.challenge is not None:
                headers[hdrs.WWW_AUTHENTICATE] = exc.challenge
            return web.Response(
                status=exc.status, text=exc.message + "\n", headers=headers
            )
        except Exception:
            logger.exception("the authenticator failed on a request")
            return web.Response(status=500, text="authentication failed\n")

    async def _refuse_full(
        self, request: web.Request, protocols: list[str]
    ) -> web.StreamResponse:
        logger.warning(
            "refused a connection from %s: %d connections is the limit; closing "
            "it with 1013",
            request.remote,
            self.settings.max_connections,
        )
        # The refused socket takes no slot, and its close handshake gets a
        # short deadline: a flood of refused connections must neither keep
        # clients out once a slot is free nor hold file descriptors long.
        return await refuse_after_upgrade(
            request,
            self,
            protocols,
            1013,
            "the server is at its connection limit; try again later",
            close_timeout=REFUSAL_CLOSE_TIMEOUT,
        )

    def session_from_query(
        self, request: web.Request, principal: str | None
    ) -> tuple[str, SessionTokenError | None]:
        """The session a new connection starts in, and why its token was refused.

        The ``session`` query parameter resumes the session of a token the
        bridge issued to the same principal; without one (or with a refused
        one) the connection gets a new session.
        """
        token = request.query.get(SESSION_PARAMETER)
        if token:
            try:
                return self.tokens.verify(token, principal, time.time()), None
            except SessionTokenError as exc:
                logger.info(
                    "refused the session token of a connection from %s: %s",
                    request.remote,
                    exc.reason,
                )
                return new_session_id(), exc
        return new_session_id(), None

    async def accept_socket(
        self,
        request: web.Request,
        protocols: Collection[str],
        *,
        max_message_bytes: int | None = None,
    ) -> ClientSocket:
        """Complete a WebSocket upgrade with the server's limits and pings."""
        settings = self.settings
        return await ClientSocket.accept(
            request,
            self.watchdog,
            protocols=protocols,
            max_message_bytes=max_message_bytes or self.close_frame_bytes,
            send_buffer_bytes=settings.send_buffer_bytes,
            heartbeat=settings.ping_interval or None,
            compress=settings.compression,
            message_limit=settings.message_limit_bytes,
        )

    # The agent's WebSocket.

    async def connect_agent(
        self, session_id: str, protocols: list[str]
    ) -> aiohttp.ClientWebSocketResponse[bool]:
        """Open the agent's ``/ws`` through AgentCore for ``session_id``.

        Raises :class:`_UpstreamRefusedError` with the close code for the
        client: 1013 (try again later) when AgentCore is throttling, failing
        or unreachable, 1011 when it refuses for good.
        """
        settings = self.settings
        client = self.client
        try:
            if settings.passthrough_presign:
                url = await client.presign_websocket(session_id=session_id)
                headers: dict[str, str] = {}
            else:
                prepared = await client.websocket_request(session_id=session_id)
                url, headers = prepared.url, dict(prepared.headers)
        except CredentialsError as exc:
            logger.warning("no AWS credentials to open the agent's WebSocket: %s", exc)
            raise _UpstreamRefusedError(
                1011, "the bridge could not sign the agent connection"
            ) from exc
        headers["User-Agent"] = USER_AGENT
        timeouts = client.timeouts
        try:
            return await asyncio.wait_for(
                self._http_session().ws_connect(
                    URL(url, encoded=True),
                    headers=headers,
                    protocols=protocols,
                    heartbeat=settings.ping_interval or None,
                    max_msg_size=settings.passthrough_max_frame_bytes,
                    autoping=True,
                    compress=0,
                ),
                timeouts.connect + timeouts.first_byte,
            )
        except aiohttp.WSServerHandshakeError as exc:
            answer_headers = exc.headers
            error_type = ""
            if isinstance(answer_headers, Mapping):
                error_type = str(answer_headers.get(ERROR_TYPE_HEADER, ""))
            name = error_type.split(":", 1)[0] or f"HTTP {exc.status}"
            if is_retryable(exc.status, error_type):
                raise _UpstreamRefusedError(
                    1013, f"the agent is unavailable ({name}); try again later"
                ) from exc
            raise _UpstreamRefusedError(
                1011, f"AgentCore refused the connection ({name})"
            ) from exc
        except asyncio.TimeoutError as exc:
            raise _UpstreamRefusedError(
                1013, "the agent did not answer in time; try again later"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            logger.info("the agent's WebSocket failed: %s", failure_summary(exc))
            raise _UpstreamRefusedError(
                1013, "the agent could not be reached; try again later"
            ) from exc

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._http

    # Sessions of closed connections.

    def stop_sessions(
        self, session_ids: Collection[str], closing: BridgeConnection
    ) -> None:
        """Stop AgentCore sessions no other open connection is using.

        A pass-through to the agent's ``/ws`` uses its session as much as a
        ``/ws`` connection does: stopping it would end that socket too.
        Once shutdown has begun, nothing is stopped (see below).
        """
        if self.draining:
            # The shutdown closes connections with 1001 and "reconnect": their
            # clients resume these sessions on another task with their tokens,
            # and would find them stopped (a cold start, the agent's state
            # lost). Sessions nobody resumes idle out in AgentCore.
            return
        in_use = {p.session_id for p in self.passthroughs}
        for connection in self.connections:
            if connection is not closing:
                in_use |= connection.sessions_in_use
        for session_id in session_ids:
            if session_id not in in_use:
                self.spawn(self._stop_session(session_id))

    async def _stop_session(self, session_id: str) -> None:
        try:
            await self.client.stop_session(session_id)
            logger.info("stopped session %s", session_fingerprint(session_id))
        except Exception as exc:  # noqa: BLE001 - best effort, reported below
            logger.warning(
                "could not stop session %s: %s",
                session_fingerprint(session_id),
                failure_summary(exc),
            )

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` in the background; it is cancelled at cleanup."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Shutdown.

    async def shutdown(self, timeout: float | None = None) -> None:
        """Drain the server; return once every WebSocket is closed.

        From the first call: ``/healthz`` answers 503, new WebSockets are
        refused, idle ``/ws`` connections close with 1001 and busy ones as
        soon as their last invocation ends. Invocations still running after
        ``timeout`` seconds (default ``BRIDGE_SHUTDOWN_TIMEOUT``) minus a
        short grace for closing end with a ``going_away`` error, then their
        connections and every pass-through close with 1001. A connection
        whose close has not finished by ``timeout`` is aborted, so the
        drain never outlasts it. Later calls wait for the first one.
        :meth:`hurry` skips the waiting.
        """
        if self._shutdown is None:
            if timeout is None:
                timeout = self.settings.shutdown_timeout
            self._shutdown = asyncio.ensure_future(self._shut_down(timeout))
        await asyncio.shield(self._shutdown)

    def hurry(self) -> None:
        """Stop waiting for running invocations (a second SIGTERM or Ctrl-C)."""
        self._hurry.set()

    async def _shut_down(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        grace = min(CLOSE_TIMEOUT, timeout / 5)
        self.draining = True
        logger.info(
            "shutting down: %d connections, %d invocations running; they have "
            "%.1f s to finish",
            self.open_sockets,
            self.invocations,
            timeout - grace,
        )
        for connection in list(self.connections):
            connection.drain()

        await _first_of(
            (self._no_invocations.wait(), self._hurry.wait()),
            started + timeout - grace - loop.time(),
        )
        if self.invocations:
            logger.warning(
                "shutdown: %d invocations still running; ending them with going_away",
                self.invocations,
            )
        for connection in list(self.connections):
            connection.going_away()
        for pipe in list(self.passthroughs):
            pipe.going_away()

        await _first_of(
            (self._no_sockets.wait(),), max(started + timeout - loop.time(), grace)
        )
        # A client that neither reads nor answers the close handshake would
        # hold its socket past the deadline, and the process past ECS's
        # stopTimeout.
        stuck = [c.socket for c in self.connections]
        stuck += [p.client for p in self.passthroughs]
        if stuck:
            logger.warning(
                "shutdown: aborting %d connections that did not close in time",
                len(stuck),
            )
            for socket in stuck:
                socket.abort()
        logger.info(
            "shutdown done in %.1f s; %d connections left",
            loop.time() - started,
            self.open_sockets,
        )


async def _first_of(
    waits: tuple[Coroutine[Any, Any, Any], ...], timeout: float
) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(
            tasks, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _connection_id() -> str:
    return secrets.token_hex(4)


def _make_client(
    settings: Settings, credentials: Credentials | CredentialSource | None
) -> AsyncAgentCoreClient:
    runtime_arn = settings.require_runtime_arn()
    total = settings.invoke_timeout or None
    try:
        return AsyncAgentCoreClient(
            runtime_arn,
            qualifier=settings.qualifier,
            endpoint_url=settings.endpoint_url,
            credentials=credentials,
            timeouts=Timeouts(total=total),
        )
    except ValidationError as exc:
        variable = _CLIENT_FIELDS.get(exc.field, exc.field)
        raise ValidationError(variable, exc.rule) from None


def _make_tokens(settings: Settings) -> SessionTokens:
    secret = settings.session_secret
    if secret is None:
        # Tokens then work only with this process: fine for one process and
        # for the demo, not for several tasks behind a load balancer.
        secret = secrets.token_bytes(32)
    try:
        return SessionTokens(secret, ttl=settings.session_ttl)
    except ValidationError as exc:
        raise ValidationError("BRIDGE_SESSION_TTL", exc.rule) from None


SERVER_KEY: Final = web.AppKey("agentcore_bridge.server", BridgeServer)


def create_app(
    settings: Settings | None = None,
    *,
    client: AsyncAgentCoreClient | None = None,
    credentials: Credentials | CredentialSource | None = None,
    authenticate: Authenticator | None = None,
    session_tokens: SessionTokens | None = None,
) -> web.Application:
    """The bridge server as an :class:`aiohttp.web.Application`.

    ``settings`` default to :meth:`Settings.from_env`. The AgentCore client
    is made from them (``AGENTCORE_RUNTIME_ARN`` is then required) with
    ``credentials`` (default: the standard chain), unless ``client`` is
    given, which the caller then closes. ``authenticate`` is the
    authentication hook (see :mod:`agentcore_bridge.server.auth`);
    ``BRIDGE_AUTH_TOKENS`` sets up bearer tokens instead. ``session_tokens``
    replaces the signer of session resume tokens (to rotate secrets, for
    example).

    Raises :class:`~agentcore_bridge.exceptions.ValidationError` naming the
    setting at fault, or :class:`ConfigurationError` for conflicting
    arguments. Run the result with ``aiohttp.web.run_app(app)``, or with
    ``agentcore-bridge serve``.
    """
    if settings is None:
        settings = Settings.from_env()
    server = BridgeServer(
        settings,
        client=client,
        credentials=credentials,
        authenticator=authenticate,
        session_tokens=session_tokens,
    )
    app = web.Application()
    app[SERVER_KEY] = server
    app.router.add_get("/ws", server.handle_ws)
    if settings.passthrough:
        app.router.add_get("/agent/ws", server.handle_passthrough)
    app.router.add_get("/healthz", server.handle_healthz)
    app.on_startup.append(server.on_startup)
    app.on_shutdown.append(server.on_shutdown)
    app.on_cleanup.append(server.on_cleanup)
    return app


def get_server(app: web.Application) -> BridgeServer:
    """The :class:`BridgeServer` of an application made by :func:`create_app`."""
    return app[SERVER_KEY]
