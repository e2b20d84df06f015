"""A local emulator of the AgentCore Runtime data plane.

It serves the three data-plane calls the bridge makes, on the same paths
and with the same rules as ``bedrock-agentcore.{region}.amazonaws.com``:

- ``POST /runtimes/{arn}/invocations?qualifier=``: InvokeAgentRuntime;
- ``POST /runtimes/{arn}/stopruntimesession?qualifier=``: StopRuntimeSession;
- ``GET /runtimes/{arn}/ws?qualifier=``: the WebSocket stream.

Each request is authenticated with SigV4 (header or presigned query), then
validated (ARN, qualifier, session id, user id), then forwarded to an agent
that follows the container contract (``POST /invocations``, ``/ws``): the
agent's bytes stream back as they arrive, with its ``Content-Type``. Errors
come back the way botocore expects them: the status from the service's
error table, the name in ``x-amzn-ErrorType`` and ``{"message": ...}``.

On top of that it simulates what makes the real service hard to build
against: a cold start on the first call of a session (and after the
session idled out or was stopped), idle expiry and maximum lifetime of
sessions, the invocation rate quota (429), the active-session quota (402),
the initialisation time limit (424), and faults injected on the Nth call:
an error status, a connection dropped before the answer or reset in the
middle of a stream, a slow first byte, a WebSocket closed with a chosen
code. Every simulation is set at start and changed at run time through a
small control API under ``/_emulator/`` (see ``docs/local.md``).

Run it with ``agentcore-bridge local-agentcore``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import WSMsgType, web

from ..agentcore import (
    SERVICE,
    SESSION_ID_HEADER,
    USER_ID_HEADER,
    parse_runtime_arn,
    validate_qualifier,
    validate_session_id,
    validate_user_id,
)
from ..credentials import Credentials
from ..exceptions import ValidationError
from ._serve import serve
from .sigv4_verifier import SignatureError, SigV4Verifier, VerifiedRequest

__all__ = [
    "DEFAULT_RUNTIME_ARN",
    "LOCAL_ACCESS_KEY_ID",
    "LOCAL_CREDENTIALS",
    "LOCAL_SECRET_ACCESS_KEY",
    "AgentCoreEmulator",
    "EmulatorConfig",
    "Fault",
    "create_emulator_app",
    "get_emulator",
    "main",
]

logger = logging.getLogger("agentcore_bridge.local")

#: The key pair the emulator accepts by default. It is public on purpose:
#: it opens nothing but a local emulator.
LOCAL_ACCESS_KEY_ID = "AKIALOCALEMULATOR00"
LOCAL_SECRET_ACCESS_KEY = "LocalEmulatorSecretKeyNotASecret00000000"  # noqa: S105
LOCAL_CREDENTIALS = Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY)
DEFAULT_REGION = "us-west-2"
DEFAULT_RUNTIME_ARN = (
    "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/demo_agent-LocalEmu01"
)

REQUEST_ID_HEADER = "x-amzn-RequestId"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
#: The request id AgentCore hands to the agent container.
AGENT_REQUEST_ID_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"
# Headers the service passes on to the container besides the session id.
_FORWARDED_HEADERS = (
    USER_ID_HEADER,
    "X-Amzn-Trace-Id",
    "traceparent",
    "tracestate",
    "baggage",
)
_FORWARDED_PREFIXES = ("mcp-", "x-amzn-bedrock-agentcore-runtime-custom-")
# Trace headers the service echoes in its answer (service model, output shape).
_ECHOED_HEADERS = ("X-Amzn-Trace-Id", "traceparent", "tracestate", "baggage")
_CLIENT_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
)
_LOG_SIZE = 200

#: Fault kinds and the operations they apply to.
FAULT_KINDS = ("error", "drop", "reset", "slow_first_byte", "close")
OPERATIONS = ("invoke", "stop", "ws", "any")


# Configuration.


@dataclass
class Fault:
    """A failure to inject into the calls that match it.

    The fault counts the calls of ``operation`` (``invoke``, ``stop``,
    ``ws`` or ``any``), optionally only those of ``session_id``, from the
    moment it is added, and fires on the ``nth`` of them and on the
    ``repeat - 1`` after it (``repeat=0``: on every call from the nth on).

    Kinds:

    - ``error``: answer ``status`` with ``error_type`` and ``message``
      instead of calling the agent;
    - ``drop``: close the connection without answering (before any byte);
    - ``reset``: abort the connection after ``after_bytes`` bytes of the
      body, or after ``after_events`` SSE events, or (WebSocket) after
      ``after_frames`` frames to the client;
    - ``slow_first_byte``: wait ``seconds`` before the answer starts;
    - ``close``: (WebSocket) close with ``code`` and ``reason`` after
      ``after_frames`` frames to the client.
    """

    kind: str
    operation: str = "invoke"
    nth: int = 1
    repeat: int = 1
    session_id: str | None = None
    status: int = 500
    error_type: str = "InternalServerException"
    message: str = "An internal error occurred (injected by the emulator)."
    after_bytes: int | None = None
    after_events: int | None = None
    after_frames: int | None = None
    seconds: float = 0.0
    code: int = 1011
    reason: str = ""
    id: int = 0
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if self.operation not in OPERATIONS:
            raise ValueError(f"fault operation must be one of {', '.join(OPERATIONS)}")
        if self.nth < 1 or self.repeat < 0:
            raise ValueError("fault nth must be at least 1 and repeat at least 0")
        if not 100 <= self.status <= 599:
            raise ValueError("fault status must be an HTTP status code")
        if self.seconds < 0:
            raise ValueError("fault seconds must not be negative")

    @classmethod
    def from_json(cls, value: object) -> Fault:
        """Build a fault from its JSON form; raise ``ValueError`` if it is wrong."""
        if not isinstance(value, dict):
            raise ValueError("a fault is a JSON object")
        names = {f.name for f in fields(cls)} - {"id", "seen", "fired"}
        unknown = set(value) - names
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**value)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def matches(self, operation: str, session_id: str | None) -> bool:
        """Count this call if it is one the fault watches; return whether it fires."""
        if self.operation not in ("any", operation):
            return False
        if self.session_id is not None and self.session_id != session_id:
            return False
        self.seen += 1
        if self.seen < self.nth:
            return False
        if self.repeat and self.seen >= self.nth + self.repeat:
            return False
        self.fired += 1
        return True


@dataclass
class EmulatorConfig:
    """Everything the emulator can be told at start.

    Times are in seconds. ``runtime_arns`` limits the runtimes that exist
    (others get 404); ``None`` accepts every well-formed ARN. A zero
    ``rate_limit`` or ``max_sessions`` turns that quota off. Defaults follow
    the service where it publishes a value (15 min idle timeout, 8 h
    session lifetime, 100 MB payloads) and are off where turning them on by
    default would only slow local work down (cold start, quotas).
    """

    agent_url: str = "http://127.0.0.1:8080"
    region: str = DEFAULT_REGION
    credentials: Sequence[Credentials] = (LOCAL_CREDENTIALS,)
    accept_any_credentials: bool = False
    runtime_arns: frozenset[str] | None = None
    cold_start: float = 0.0
    init_timeout: float = 30.0
    idle_timeout: float = 900.0
    max_lifetime: float = 8 * 3600.0
    rate_limit: float = 0.0
    max_sessions: int = 0
    max_clock_skew: float = 300.0
    max_presign_expires: int = 300
    max_payload: int = 100 * 1024 * 1024
    ws_max_message_size: int = 0
    faults: Sequence[Fault] = ()


#: Settings the control API may change at run time, with their types.
_SETTINGS: dict[str, tuple[type, ...]] = {
    "agent_url": (str,),
    "accept_any_credentials": (bool,),
    "cold_start": (int, float),
    "init_timeout": (int, float),
    "idle_timeout": (int, float),
    "max_lifetime": (int, float),
    "rate_limit": (int, float),
    "max_sessions": (int,),
    "max_clock_skew": (int, float),
    "max_presign_expires": (int,),
    "max_payload": (int,),
    "ws_max_message_size": (int,),
}


# Errors answered the way the service answers them.


class _ServiceError(Exception):
    """An error answer: HTTP status, AWS error name and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        self.status = status
        self.error_type = error_type
        self.message = message
        super().__init__(f"{error_type} ({status}): {message}")


def _validation_error(error: ValidationError) -> _ServiceError:
    return _ServiceError(
        400,
        "ValidationException",
        f"1 validation error detected: Value at '{error.field}' failed to "
        f"satisfy constraint: {error.rule}",
    )


def _error_response(error: _ServiceError, request_id: str) -> web.Response:
    return web.Response(
        status=error.status,
        body=json.dumps({"message": error.message}).encode(),
        headers={
            "Content-Type": "application/json",
            ERROR_TYPE_HEADER: error.error_type,
            REQUEST_ID_HEADER: request_id,
        },
    )


class _DropConnectionError(Exception):
    """The connection was aborted on purpose; there is no answer to send."""


# Sessions and statistics.


@dataclass(eq=False)
class _Stream:
    """One invocation or WebSocket in progress, so a stop can end it."""

    abort: Callable[[], Coroutine[Any, Any, None]]


@dataclass
class _Session:
    session_id: str
    runtime_arn: str
    qualifier: str
    created: float
    last_active: float
    ready: asyncio.Task[None] | None = None
    streams: set[_Stream] = field(default_factory=set)


@dataclass
class _Call:
    """What one request is about, once its path has been read."""

    operation: str
    request_id: str
    runtime_arn: str = ""
    qualifier: str = "DEFAULT"
    session_id: str | None = None
    user_id: str | None = None
    verified: VerifiedRequest | None = None
    outcome: str = "ok"
    status: int = 200
    error_type: str | None = None


class AgentCoreEmulator:
    """The emulator's state: configuration, sessions, faults and counters.

    One instance lives in each application made by
    :func:`create_emulator_app` (see :func:`get_emulator`). Its methods are
    not thread-safe: call them from the application's event loop, or use
    the control API over HTTP from elsewhere.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = replace(config, faults=())
        self._verifier = self._make_verifier()
        self._faults: list[Fault] = []
        self._next_fault_id = 1
        self._clock_offset = 0.0
        self._sessions: dict[str, _Session] = {}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._client_tokens: dict[str, str] = {}
        self._http: aiohttp.ClientSession | None = None
        self._reset_stats()
        for fault in config.faults:
            self.add_fault(replace(fault))

    # The control surface.

    def now(self) -> float:
        """The emulator's clock for sessions and quotas (monotonic, can be advanced)."""
        return time.monotonic() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the session clock forward, as if ``seconds`` had passed idle."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._clock_offset += seconds

    def configure(self, settings: Mapping[str, object]) -> None:
        """Change run-time settings; raise ``ValueError`` if one is wrong."""
        changes: dict[str, Any] = {}
        for name, value in settings.items():
            if name == "runtime_arns":
                changes[name] = _runtime_arns(value)
            elif name == "credentials":
                changes[name] = _credentials_from_json(value)
            elif name in _SETTINGS:
                if isinstance(value, bool) and bool not in _SETTINGS[name]:
                    raise ValueError(f"{name} must be a number")
                if not isinstance(value, _SETTINGS[name]):
                    raise ValueError(f"{name} has the wrong type")
                if isinstance(value, (int, float)) and value < 0:
                    raise ValueError(f"{name} must not be negative")
                changes[name] = value
            else:
                raise ValueError(f"unknown setting {name!r}")
        self.config = replace(self.config, **changes)
        self._verifier = self._make_verifier()

    def settings(self) -> dict[str, Any]:
        """The current settings as JSON, secrets left out."""
        result: dict[str, Any] = {
            name: getattr(self.config, name) for name in _SETTINGS
        }
        result["region"] = self.config.region
        arns = self.config.runtime_arns
        result["runtime_arns"] = None if arns is None else sorted(arns)
        result["access_key_ids"] = [c.access_key_id for c in self.config.credentials]
        return result

    def add_fault(self, fault: Fault) -> Fault:
        """Inject ``fault`` into the calls that follow; return it with its id."""
        fault.id = self._next_fault_id
        fault.seen = fault.fired = 0
        self._next_fault_id += 1
        self._faults.append(fault)
        return fault

    def faults(self) -> list[Fault]:
        return list(self._faults)

    def clear_faults(self) -> None:
        self._fired_cleared += sum(f.fired for f in self._faults)
        self._faults.clear()

    def reset(self) -> None:
        """Forget sessions, faults, quotas and counters (settings stay)."""
        for session in list(self._sessions.values()):
            self._end_session(session, "reset")
        self._sessions.clear()
        self._buckets.clear()
        self._client_tokens.clear()
        self._faults.clear()
        self._reset_stats()

    def stats(self) -> dict[str, Any]:
        """Counters since start (or the last reset), as JSON.

        ``sessions`` maps each session id seen to its counters and whether
        it is still warm; ``log`` lists the last requests, newest last.
        """
        now = self.now()
        sessions = {}
        for session_id, counters in self._session_stats.items():
            session = self._sessions.get(session_id)
            active = session is not None and not self._expired(session, now)
            sessions[session_id] = {**counters, "active": active}
        return {
            "requests": dict(self._requests),
            "responses": dict(self._responses),
            "errors": dict(self._errors),
            "cold_starts": self._cold_starts,
            "throttled": self._errors.get("ThrottlingException", 0),
            "faults_fired": sum(f.fired for f in self._faults) + self._fired_cleared,
            "active_sessions": sum(1 for s in sessions.values() if s["active"]),
            "sessions_ended": dict(self._ended),
            "sessions": sessions,
            "log": list(self._log),
        }

    # Internals.

    def _make_verifier(self) -> SigV4Verifier:
        return SigV4Verifier(
            self.config.credentials,
            region=self.config.region,
            service=SERVICE,
            accept_any=self.config.accept_any_credentials,
            max_clock_skew=self.config.max_clock_skew,
            max_presign_expires=self.config.max_presign_expires,
        )

    def _reset_stats(self) -> None:
        self._requests: dict[str, int] = {}
        self._responses: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._ended: dict[str, int] = {}
        self._cold_starts = 0
        self._fired_cleared = 0
        self._session_stats: dict[str, dict[str, Any]] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_SIZE)

    def _record(self, call: _Call) -> None:
        self._responses[str(call.status)] = self._responses.get(str(call.status), 0) + 1
        if call.error_type:
            self._errors[call.error_type] = self._errors.get(call.error_type, 0) + 1
        verified = call.verified
        self._log.append(
            {
                "operation": call.operation,
                "request_id": call.request_id,
                "status": call.status,
                "outcome": call.outcome,
                "error_type": call.error_type,
                "runtime_arn": call.runtime_arn or None,
                "qualifier": call.qualifier,
                "session_id": call.session_id,
                "user_id": call.user_id,
                "access_key_id": verified.access_key_id if verified else None,
                "presigned": verified.presigned if verified else None,
            }
        )

    def _session_counters(self, session_id: str) -> dict[str, Any]:
        counters = self._session_stats.get(session_id)
        if counters is None:
            counters = {
                "calls": 0,
                "invocations": 0,
                "ws_connections": 0,
                "stops": 0,
                "cold_starts": 0,
                "runtime_arn": None,
                "qualifier": None,
            }
            self._session_stats[session_id] = counters
        return counters

    def _matching_faults(self, operation: str, session_id: str | None) -> list[Fault]:
        return [f for f in self._faults if f.matches(operation, session_id)]

    def _take_token(self, key: tuple[str, str]) -> bool:
        rate = self.config.rate_limit
        if rate <= 0:
            return True
        # A token bucket that holds one second's worth of calls (at least one).
        capacity = max(1.0, rate)
        now = self.now()
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def _expired(self, session: _Session, now: float) -> str | None:
        if now - session.created > self.config.max_lifetime:
            return "lifetime"
        if not session.streams and now - session.last_active > self.config.idle_timeout:
            return "idle"
        return None

    def _end_session(self, session: _Session, reason: str) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
        self._ended[reason] = self._ended.get(reason, 0) + 1
        starting = session.ready
        # A cold start that fails ends its own session: it must not cancel
        # itself, or its error would turn into a cancellation.
        if (
            starting is not None
            and not starting.done()
            and starting is not asyncio.current_task()
        ):
            starting.cancel()
        for stream in list(session.streams):
            asyncio.get_running_loop().create_task(stream.abort())
        session.streams.clear()
        logger.info("session %s ended (%s)", session.session_id, reason)

    def _live_session(self, session_id: str) -> _Session | None:
        session = self._sessions.get(session_id)
        if session is not None:
            reason = self._expired(session, self.now())
            if reason is not None:
                self._end_session(session, reason)
                return None
        return session

    async def _warm_session(self, call: _Call) -> _Session:
        """The session of ``call``, after a cold start if it has none running."""
        assert call.session_id is not None
        session = self._live_session(call.session_id)
        if session is not None and (
            session.runtime_arn != call.runtime_arn
            or session.qualifier != call.qualifier
        ):
            self._end_session(session, "replaced")
            session = None
        if session is None:
            if self.config.max_sessions:
                now = self.now()
                for other in list(self._sessions.values()):
                    reason = self._expired(other, now)
                    if reason is not None:
                        self._end_session(other, reason)
                if len(self._sessions) >= self.config.max_sessions:
                    raise _ServiceError(
                        402,
                        "ServiceQuotaExceededException",
                        "maxVms limit exceeded: too many active sessions "
                        f"(limit {self.config.max_sessions})",
                    )
            now = self.now()
            session = _Session(
                call.session_id, call.runtime_arn, call.qualifier, now, now
            )
            self._sessions[call.session_id] = session
            self._cold_starts += 1
            self._session_counters(call.session_id)["cold_starts"] += 1
            session.ready = asyncio.get_running_loop().create_task(
                self._cold_start(session)
            )
            logger.info("session %s: cold start", call.session_id)
        assert session.ready is not None
        try:
            await asyncio.shield(session.ready)
        except asyncio.CancelledError:
            if not session.ready.cancelled():
                raise
            raise _ServiceError(
                424, "RuntimeClientError", "The session was stopped while starting."
            ) from None
        session.last_active = self.now()
        return session

    async def _cold_start(self, session: _Session) -> None:
        delay = self.config.cold_start
        limit = self.config.init_timeout
        await asyncio.sleep(min(delay, limit))
        if delay > limit:
            self._end_session(session, "init_timeout")
            raise _ServiceError(
                424,
                "RuntimeClientError",
                "Runtime initialization time exceeded. Please make sure that "
                f"initialization completes in {limit:g}s.",
            )

    async def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            # No connection limit: every client stream holds one agent
            # connection, and the bridge benchmarks open thousands.
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
            )
        return self._http

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            self._end_session(session, "shutdown")
        if self._http is not None:
            await self._http.close()
            self._http = None


_EMULATOR_KEY = web.AppKey("agentcore_emulator", AgentCoreEmulator)


def get_emulator(app: web.Application) -> AgentCoreEmulator:
    """The :class:`AgentCoreEmulator` behind an app from :func:`create_emulator_app`."""
    return app[_EMULATOR_KEY]


def create_emulator_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator as an aiohttp application."""
    emulator = AgentCoreEmulator(config or EmulatorConfig())
    app = web.Application()
    app[_EMULATOR_KEY] = emulator

    async def close_emulator(app: web.Application) -> None:
        await emulator.close()

    app.on_shutdown.append(close_emulator)
    app.router.add_route("*", "/runtimes/{tail:.+}", _runtimes)
    app.router.add_get("/_emulator/stats", _control_stats)
    app.router.add_get("/_emulator/faults", _control_faults)
    app.router.add_post("/_emulator/faults", _control_faults)
    app.router.add_delete("/_emulator/faults", _control_faults)
    app.router.add_get("/_emulator/config", _control_config)
    app.router.add_post("/_emulator/config", _control_config)
    app.router.add_post("/_emulator/clock", _control_clock)
    app.router.add_post("/_emulator/reset", _control_reset)
    app.router.add_route("*", "/{tail:.*}", _unknown_operation)
    return app


# The data plane.

_ACTIONS = {
    ("POST", "invocations"): "invoke",
    ("POST", "stopruntimesession"): "stop",
    ("GET", "ws"): "ws",
}


async def _unknown_operation(request: web.Request) -> web.Response:
    error = _ServiceError(404, "UnknownOperationException", "Unknown operation")
    return _error_response(error, str(uuid.uuid4()))


async def _runtimes(request: web.Request) -> web.StreamResponse:
    emulator = request.app[_EMULATOR_KEY]
    # The ARN travels percent-encoded as one segment: split the raw path,
    # never the decoded one, or the ARN's own "/" would split it.
    segments = request.rel_url.raw_path.split("/")
    operation = None
    if len(segments) == 4:
        operation = _ACTIONS.get((request.method, segments[3]))
    if operation is None:
        return await _unknown_operation(request)

    call = _Call(operation, str(uuid.uuid4()))
    emulator._requests[operation] = emulator._requests.get(operation, 0) + 1
    try:
        body = await _read_body(request, emulator.config.max_payload)
        call.verified = _authenticate(emulator, request, body)
        _validate(emulator, request, call, unquote(segments[2]))
        if operation == "stop":
            return await _stop_session(emulator, request, call, body)
        return await _invoke(emulator, request, call, body)
    except _ServiceError as error:
        call.outcome, call.status, call.error_type = (
            "error",
            error.status,
            error.error_type,
        )
        logger.info(
            "%s %s: %s (%d)", operation, call.request_id, error.error_type, error.status
        )
        response = _error_response(error, call.request_id)
        if call.session_id and operation != "stop":
            response.headers[SESSION_ID_HEADER] = call.session_id
        return response
    except _DropConnectionError:
        call.outcome, call.status = "dropped", 0
        _abort_connection(request)
        return web.Response()
    finally:
        emulator._record(call)


async def _read_body(request: web.Request, limit: int) -> bytes:
    too_large = _ServiceError(
        400,
        "ValidationException",
        "1 validation error detected: Value at 'payload' failed to satisfy "
        f"constraint: Member must have length less than or equal to {limit}",
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)


def _authenticate(
    emulator: AgentCoreEmulator, request: web.Request, body: bytes
) -> VerifiedRequest:
    try:
        return emulator._verifier.verify(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.raw_query_string,
            list(request.headers.items()),
            body,
            now=time.time(),
        )
    except SignatureError as rejected:
        raise _ServiceError(
            rejected.status, rejected.error_type, rejected.message
        ) from None


def _validate(
    emulator: AgentCoreEmulator, request: web.Request, call: _Call, target: str
) -> None:
    """Fill ``call`` from the request, or raise the service's 400 or 404."""
    query = request.rel_url.query
    try:
        if target.startswith("arn:"):
            call.runtime_arn = parse_runtime_arn(target).arn
        else:
            # The model also accepts a bare runtime id with an accountId.
            account = query.get("accountId")
            if not account:
                raise ValidationError(
                    "accountId", "is required when agentRuntimeArn is a runtime id"
                )
            arn = (
                f"arn:aws:{SERVICE}:{emulator.config.region}:{account}:runtime/{target}"
            )
            call.runtime_arn = parse_runtime_arn(arn).arn
        if "qualifier" in query:
            call.qualifier = validate_qualifier(query["qualifier"])

        session_id = request.headers.get(SESSION_ID_HEADER)
        if session_id is None and call.operation == "ws":
            # A presigned WebSocket URL carries the session id as a parameter.
            session_id = query.get(SESSION_ID_HEADER)
        if session_id is None:
            if call.operation == "stop":
                raise ValidationError("runtimeSessionId", "is required")
            # The service starts a new session and returns its id.
            session_id = str(uuid.uuid4())
        call.session_id = validate_session_id(session_id)

        user_id = request.headers.get(USER_ID_HEADER)
        if user_id is not None:
            call.user_id = validate_user_id(user_id)
    except ValidationError as error:
        raise _validation_error(error) from None

    known = emulator.config.runtime_arns
    if known is not None and call.runtime_arn not in known:
        raise _ServiceError(
            404,
            "ResourceNotFoundException",
            f"No endpoint or agent found with qualifier '{call.qualifier}' for "
            f"agent '{call.runtime_arn}'",
        )


async def _stop_session(
    emulator: AgentCoreEmulator, request: web.Request, call: _Call, body: bytes
) -> web.Response:
    assert call.session_id is not None
    token = _client_token(body)
    counters = emulator._session_counters(call.session_id)
    counters["calls"] += 1
    counters["stops"] += 1

    faults = emulator._matching_faults("stop", call.session_id)
    await _apply_before_answer(faults)
    # A retried stop with the same token gets the first answer again.
    if token is not None and emulator._client_tokens.get(token) == call.session_id:
        return _stopped_response(call)

    session = emulator._live_session(call.session_id)
    if session is None or session.runtime_arn != call.runtime_arn:
        raise _ServiceError(
            404,
            "ResourceNotFoundException",
            f"Session '{call.session_id}' not found for agent '{call.runtime_arn}'",
        )
    emulator._end_session(session, "stopped")
    if token is not None:
        emulator._client_tokens[token] = call.session_id
    return _stopped_response(call)


def _stopped_response(call: _Call) -> web.Response:
    assert call.session_id is not None
    return web.Response(
        body=b"{}",
        headers={
            "Content-Type": "application/json",
            SESSION_ID_HEADER: call.session_id,
            REQUEST_ID_HEADER: call.request_id,
        },
    )


def _client_token(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise _ServiceError(
            400, "ValidationException", "The request body is not a JSON object."
        )
    token = document.get("clientToken")
    if token is None:
        return None
    if (
        not isinstance(token, str)
        or not 33 <= len(token) <= 256
        or not set(token) <= _CLIENT_TOKEN_CHARS
        or token.startswith("-")
        or token.endswith("-")
    ):
        raise _validation_error(
            ValidationError(
                "clientToken",
                "Member must have length between 33 and 256 and satisfy regular "
                "expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,256}",
            )
        )
    return token


async def _apply_before_answer(faults: Sequence[Fault]) -> None:
    """Play the faults that act before any answer byte: delay, drop, error."""
    delay = sum(f.seconds for f in faults if f.kind == "slow_first_byte")
    if delay:
        await asyncio.sleep(delay)
    for fault in faults:
        if fault.kind == "drop":
            raise _DropConnectionError
        if fault.kind == "error":
            raise _ServiceError(fault.status, fault.error_type, fault.message)


async def _invoke(
    emulator: AgentCoreEmulator, request: web.Request, call: _Call, body: bytes
) -> web.StreamResponse:
    assert call.session_id is not None
    counters = emulator._session_counters(call.session_id)
    counters["calls"] += 1
    counters["runtime_arn"], counters["qualifier"] = call.runtime_arn, call.qualifier
    if call.operation == "ws":
        counters["ws_connections"] += 1
    else:
        counters["invocations"] += 1

    if not emulator._take_token((call.runtime_arn, call.qualifier)):
        raise _ServiceError(429, "ThrottlingException", "Rate exceeded")
    faults = emulator._matching_faults(call.operation, call.session_id)
    await _apply_before_answer(faults)
    session = await emulator._warm_session(call)
    cut = next((f for f in faults if f.kind in ("reset", "close")), None)
    if call.operation == "ws":
        return await _forward_websocket(emulator, request, call, session, cut)
    return await _forward_invocation(
        emulator, request, call, session=session, body=body, cut=cut
    )


def _agent_headers(request: web.Request, call: _Call) -> dict[str, str]:
    assert call.session_id is not None
    headers = {
        SESSION_ID_HEADER: call.session_id,
        AGENT_REQUEST_ID_HEADER: call.request_id,
    }
    for name in _FORWARDED_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    for name, value in request.headers.items():
        if name.lower().startswith(_FORWARDED_PREFIXES):
            headers[name] = value
    return headers


def _answer_headers(request: web.Request, call: _Call) -> dict[str, str]:
    assert call.session_id is not None
    headers = {SESSION_ID_HEADER: call.session_id, REQUEST_ID_HEADER: call.request_id}
    for name in _ECHOED_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    return headers


async def _forward_invocation(
    emulator: AgentCoreEmulator,
    request: web.Request,
    call: _Call,
    *,
    session: _Session,
    body: bytes,
    cut: Fault | None,
) -> web.StreamResponse:
    headers = _agent_headers(request, call)
    headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
    if "Accept" in request.headers:
        headers["Accept"] = request.headers["Accept"]
    http = await emulator.http()
    url = emulator.config.agent_url.rstrip("/") + "/invocations"
    try:
        agent_response = await http.post(url, data=body, headers=headers)
    except (aiohttp.ClientError, OSError) as exc:
        logger.info("invoke %s: agent unreachable: %s", call.request_id, exc)
        raise _ServiceError(
            424,
            "RuntimeClientError",
            "The agent did not answer on its invocation endpoint.",
        ) from None

    stream = _Stream(abort=lambda: _abort_stream(request, agent_response))
    session.streams.add(stream)
    try:
        if not 200 <= agent_response.status < 300:
            raise _ServiceError(
                424,
                "RuntimeClientError",
                f"Received error ({agent_response.status}) from the agent runtime.",
            )
        response = web.StreamResponse(status=agent_response.status)
        response.headers.update(_answer_headers(request, call))
        for name in ("Content-Type", "Content-Encoding"):
            if name in agent_response.headers:
                response.headers[name] = agent_response.headers[name]
        await response.prepare(request)

        cutter = _Cutter(cut) if cut is not None and cut.kind == "reset" else None
        if cutter is not None and cutter.cut_at_once():
            call.outcome = "reset"
            await _abort_stream(request, agent_response)
            return response
        try:
            async for chunk in agent_response.content.iter_any():
                if cutter is not None:
                    allowed, stop = cutter.feed(chunk)
                    if allowed:
                        await response.write(allowed)
                    if stop:
                        call.outcome = "reset"
                        await _abort_stream(request, agent_response)
                        return response
                else:
                    await response.write(chunk)
        except aiohttp.ClientError:
            # The agent broke its stream: the service cuts the client's too.
            call.outcome = "agent_reset"
            await _abort_stream(request, agent_response)
            return response
        except ConnectionError:
            call.outcome = "client_gone"
            return response
        await response.write_eof()
        return response
    finally:
        session.streams.discard(stream)
        session.last_active = emulator.now()
        agent_response.release()


class _Cutter:
    """Lets through the first ``after_bytes`` bytes or ``after_events`` SSE events."""

    def __init__(self, fault: Fault) -> None:
        self.bytes_left = fault.after_bytes
        self.events_left = fault.after_events
        if self.bytes_left is None and self.events_left is None:
            self.bytes_left = 0
        self._previous = b""

    def cut_at_once(self) -> bool:
        """Whether the fault cuts before the first byte of the body."""
        return self.bytes_left == 0 or self.events_left == 0

    def feed(self, chunk: bytes) -> tuple[bytes, bool]:
        """The part of ``chunk`` to send, and whether to cut after it."""
        if self.bytes_left is not None:
            if len(chunk) >= self.bytes_left:
                return chunk[: self.bytes_left], True
            self.bytes_left -= len(chunk)
            return chunk, False
        assert self.events_left is not None
        # An SSE event ends at a blank line: "\n\n" (or "\r\n\r\n", whose
        # last two bytes are "\n\n" once the "\r"s are skipped).
        for index, byte in enumerate(chunk):
            if byte == 0x0D:
                continue
            if byte == 0x0A and self._previous == b"\n":
                self.events_left -= 1
                self._previous = b""
                if self.events_left == 0:
                    return chunk[: index + 1], True
                continue
            self._previous = bytes((byte,))
        return chunk, False


async def _abort_stream(
    request: web.Request, agent_response: aiohttp.ClientResponse
) -> None:
    agent_response.close()
    transport = request.transport
    if transport is not None:
        transport.abort()


def _abort_connection(request: web.Request) -> None:
    """Abort the client's connection: whatever the handler returns is not sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()


# The WebSocket pass-through.

# Close codes that must never appear in a close frame (RFC 6455 section
# 7.4.1): they only report what happened to the connection.
_UNSENDABLE_CLOSE_CODES = frozenset({1005, 1006, 1015})


async def _forward_websocket(
    emulator: AgentCoreEmulator,
    request: web.Request,
    call: _Call,
    session: _Session,
    cut: Fault | None,
) -> web.StreamResponse:
    http = await emulator.http()
    agent_url = emulator.config.agent_url.rstrip("/") + "/ws"
    protocols = [
        p.strip()
        for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        if p.strip()
    ]
    size = emulator.config.ws_max_message_size
    try:
        agent_ws = await http.ws_connect(
            agent_url,
            headers=_agent_headers(request, call),
            protocols=protocols,
            max_msg_size=size,
            autoping=True,
        )
    except (aiohttp.ClientError, OSError) as exc:
        logger.info("ws %s: agent refused the WebSocket: %s", call.request_id, exc)
        raise _ServiceError(
            424,
            "RuntimeClientError",
            "The agent did not accept a WebSocket on /ws.",
        ) from None

    client_ws = web.WebSocketResponse(
        protocols=[agent_ws.protocol] if agent_ws.protocol else (),
        max_msg_size=size,
        autoping=True,
    )
    client_ws.headers.update(_answer_headers(request, call))

    async def abort() -> None:
        # The session's microVM is gone: both sides go away.
        await _close_quietly(client_ws, 1001, b"session ended")
        await _close_quietly(agent_ws, 1001, b"session ended")

    stream = _Stream(abort=abort)
    session.streams.add(stream)
    try:
        await client_ws.prepare(request)
        to_agent = asyncio.ensure_future(_pump(client_ws, agent_ws, None))
        to_client = asyncio.ensure_future(_pump(agent_ws, client_ws, cut))
        done, _ = await asyncio.wait(
            {to_agent, to_client}, return_when=asyncio.FIRST_COMPLETED
        )
        if to_client in done:
            code, reason = to_client.result()
            if code == -1:
                call.outcome = "reset"
                _abort_connection(request)
                to_agent.cancel()
                await _close_quietly(agent_ws, 1001, b"")
                return client_ws
            await _close_quietly(client_ws, _sendable(code, 1011), reason)
            await _close_quietly(agent_ws, 1000, b"")
        else:
            code, reason = to_agent.result()
            await _close_quietly(agent_ws, _sendable(code, 1001), reason)
            await _close_quietly(client_ws, 1000, b"")
        for task in (to_agent, to_client):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return client_ws
    finally:
        session.streams.discard(stream)
        session.last_active = emulator.now()
        await _close_quietly(agent_ws, 1001, b"")


def _sendable(code: int | None, fallback: int) -> int:
    if code is None or code in _UNSENDABLE_CLOSE_CODES or code < 1000:
        return fallback
    return code


async def _close_quietly(
    ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    code: int,
    reason: bytes,
) -> None:
    if ws.closed:
        return
    with contextlib.suppress(Exception):
        await ws.close(code=code, message=reason)


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    cut: Fault | None,
) -> tuple[int | None, bytes]:
    """Copy frames until ``source`` closes; return its close code and reason.

    With a ``cut`` fault, stop after its ``after_frames`` frames: a
    ``close`` fault returns its own code, a ``reset`` returns -1.
    """
    frames_left = None if cut is None else (cut.after_frames or 0)
    try:
        return await _copy_frames(source, sink, cut, frames_left)
    except (ConnectionError, aiohttp.ClientError, RuntimeError):
        # The sink broke while sending: report an abnormal end.
        return None, b""


async def _copy_frames(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool],
    cut: Fault | None,
    frames_left: int | None,
) -> tuple[int | None, bytes]:
    while True:
        if frames_left == 0:
            assert cut is not None
            if cut.kind == "reset":
                return -1, b""
            return cut.code, cut.reason.encode()
        message = await source.receive()
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is WSMsgType.CLOSE:
            reason = message.extra.encode() if isinstance(message.extra, str) else b""
            return message.data, reason
        elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return source.close_code, b""
        else:
            continue
        if frames_left is not None:
            frames_left -= 1


# The control API.


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"message": "the body must be JSON"}),
            content_type="application/json",
        ) from None


def _bad_control_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"message": message}), content_type="application/json"
    )


async def _control_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[_EMULATOR_KEY].stats())


async def _control_faults(request: web.Request) -> web.Response:
    emulator = request.app[_EMULATOR_KEY]
    if request.method == "POST":
        document = await _json_body(request)
        items = document.get("faults") if isinstance(document, dict) else None
        if items is None:
            items = [document]
        if not isinstance(items, list):
            raise _bad_control_request("faults must be a list")
        try:
            faults = [Fault.from_json(item) for item in items]
        except ValueError as exc:
            raise _bad_control_request(str(exc)) from None
        added = [emulator.add_fault(fault).to_json() for fault in faults]
        return web.json_response({"faults": added})
    if request.method == "DELETE":
        emulator.clear_faults()
    return web.json_response({"faults": [f.to_json() for f in emulator.faults()]})


async def _control_config(request: web.Request) -> web.Response:
    emulator = request.app[_EMULATOR_KEY]
    if request.method == "POST":
        document = await _json_body(request)
        if not isinstance(document, dict):
            raise _bad_control_request("the settings must be a JSON object")
        try:
            emulator.configure(document)
        except ValueError as exc:
            raise _bad_control_request(str(exc)) from None
    return web.json_response(emulator.settings())


async def _control_clock(request: web.Request) -> web.Response:
    emulator = request.app[_EMULATOR_KEY]
    document = await _json_body(request)
    seconds = document.get("advance") if isinstance(document, dict) else None
    if (
        not isinstance(seconds, (int, float))
        or isinstance(seconds, bool)
        or seconds < 0
    ):
        raise _bad_control_request('send {"advance": <seconds, not negative>}')
    emulator.advance_clock(float(seconds))
    return web.json_response({"advanced": emulator._clock_offset})


async def _control_reset(request: web.Request) -> web.Response:
    request.app[_EMULATOR_KEY].reset()
    return web.json_response({"reset": True})


def _runtime_arns(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("runtime_arns must be a list of ARNs or null")
    try:
        return frozenset(parse_runtime_arn(v).arn for v in value)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None


def _credentials_from_json(value: object) -> tuple[Credentials, ...]:
    if not isinstance(value, list):
        raise ValueError("credentials must be a list of objects")
    result = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("access_key_id"), str):
            raise ValueError(
                "each credential needs access_key_id and secret_access_key"
            )
        try:
            result.append(Credentials(**item))
        except TypeError as exc:
            raise ValueError(str(exc)) from None
    return tuple(result)


# The command line.


def main(argv: Sequence[str]) -> int:
    """``agentcore-bridge local-agentcore``: run the emulator until interrupted."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = _config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_emulator_app(config)
    runtime_arn = args.runtime_arn[0] if args.runtime_arn else DEFAULT_RUNTIME_ARN
    custom_keys = bool(args.credentials)

    def ready(url: str) -> None:
        lines = [
            f"AgentCore emulator listening on {url}",
            f"forwarding to the agent at {config.agent_url}",
            "",
            "Point the bridge (or any AWS SDK) at it with:",
            f"  export AGENTCORE_ENDPOINT_URL={url}",
            f"  export AGENTCORE_RUNTIME_ARN={runtime_arn}",
            f"  export AWS_REGION={config.region}",
        ]
        if custom_keys:
            key = config.credentials[0].access_key_id
            lines += [
                f"  export AWS_ACCESS_KEY_ID={key}",
                "  export AWS_SECRET_ACCESS_KEY=<the secret given to --credentials>",
            ]
        else:
            lines += [
                f"  export AWS_ACCESS_KEY_ID={LOCAL_ACCESS_KEY_ID}",
                f"  export AWS_SECRET_ACCESS_KEY={LOCAL_SECRET_ACCESS_KEY}",
            ]
        lines += [
            "  unset AWS_SESSION_TOKEN",
            "",
            f"Control API: {url}/_emulator/stats, /_emulator/faults, "
            "/_emulator/config (see docs/local.md)",
        ]
        print("\n".join(lines), flush=True)  # noqa: T201

    return serve(app, args.host, args.port, ready)


def _parser() -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="agentcore-bridge local-agentcore",
        description="Run a local emulator of the AgentCore Runtime data plane.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=9000, help="port to listen on (default 9000)")
    add(
        "--agent-url",
        default=defaults.agent_url,
        help=f"base URL of the agent container (default {defaults.agent_url})",
    )
    add("--region", default=defaults.region, help=f"default {defaults.region}")
    add(
        "--runtime-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="a runtime that exists (repeatable); others get 404. "
        "Default: every well-formed ARN",
    )
    add(
        "--credentials",
        action="append",
        default=[],
        metavar="KEY:SECRET[:TOKEN]",
        help="a key pair to accept (repeatable), replacing the built-in local pair",
    )
    add(
        "--accept-any-credentials",
        action="store_true",
        help="let unknown access keys through without checking their signature",
    )
    add(
        "--cold-start",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay of the first call of each session (default 0)",
    )
    add(
        "--init-timeout",
        type=float,
        default=defaults.init_timeout,
        metavar="SECONDS",
        help="a cold start longer than this fails with 424 (default 30)",
    )
    add(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout,
        metavar="SECONDS",
        help="sessions idle this long end (default 900)",
    )
    add(
        "--max-lifetime",
        type=float,
        default=defaults.max_lifetime,
        metavar="SECONDS",
        help="sessions end this long after they started (default 28800)",
    )
    add(
        "--rate-limit",
        type=float,
        default=0.0,
        metavar="PER_SECOND",
        help="invocations per second per endpoint before 429 (default 0: off; "
        "AWS's default quota is 25)",
    )
    add(
        "--max-sessions",
        type=int,
        default=0,
        metavar="N",
        help="active sessions before 402 (default 0: off)",
    )
    add(
        "--max-clock-skew",
        type=float,
        default=defaults.max_clock_skew,
        metavar="SECONDS",
        help="tolerated X-Amz-Date skew (default 300)",
    )
    add(
        "--max-presign-expires",
        type=int,
        default=defaults.max_presign_expires,
        metavar="SECONDS",
        help="largest X-Amz-Expires accepted (default 300)",
    )
    add(
        "--max-payload",
        type=int,
        default=defaults.max_payload,
        metavar="BYTES",
        help="largest request body (default 100 MiB)",
    )
    add(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='a fault to inject, e.g. \'{"kind": "error", "nth": 2, "status": 500}\' '
        "(repeatable)",
    )
    add("-v", "--verbose", action="store_true", help="log every call")
    return parser


def _config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    credentials: list[Credentials] = []
    for text in args.credentials:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError("--credentials takes KEY:SECRET or KEY:SECRET:TOKEN")
        credentials.append(Credentials(*parts))
    try:
        runtime_arns = (
            frozenset(parse_runtime_arn(a).arn for a in args.runtime_arn)
            if args.runtime_arn
            else None
        )
    except ValidationError as exc:
        raise ValueError(f"--runtime-arn: {exc.rule}") from None
    try:
        faults = [Fault.from_json(json.loads(text)) for text in args.fault]
    except ValueError as exc:
        raise ValueError(f"--fault: {exc}") from None
    return EmulatorConfig(
        agent_url=args.agent_url,
        region=args.region,
        credentials=tuple(credentials) or (LOCAL_CREDENTIALS,),
        accept_any_credentials=args.accept_any_credentials,
        runtime_arns=runtime_arns,
        cold_start=args.cold_start,
        init_timeout=args.init_timeout,
        idle_timeout=args.idle_timeout,
        max_lifetime=args.max_lifetime,
        rate_limit=args.rate_limit,
        max_sessions=args.max_sessions,
        max_clock_skew=args.max_clock_skew,
        max_presign_expires=args.max_presign_expires,
        max_payload=args.max_payload,
        faults=faults,
    )
