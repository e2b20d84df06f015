"""The emulated AgentCore Runtime: settings, sessions, quotas, faults, counters.

:class:`AgentCoreEmulator` holds everything the emulator remembers between
requests and decides what the service would do: whether a signature is
good, whether a call is over a quota, whether a session is warm or must
start cold, which injected fault fires. The HTTP side
(:mod:`agentcore_bridge.local.agentcore`) asks it and answers accordingly.
Everything runs on one event loop; nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import aiohttp

from ..agentcore import MAX_PAYLOAD_BYTES, SERVICE, parse_runtime_arn
from ..credentials import Credentials
from ..exceptions import ValidationError
from ..sessions import session_fingerprint
from .sigv4_verifier import SignatureError, SigV4Verifier, VerifiedRequest

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_RUNTIME_ARN",
    "ERROR_TYPE_HEADER",
    "FAULT_KINDS",
    "LOCAL_ACCESS_KEY_ID",
    "LOCAL_CREDENTIALS",
    "LOCAL_SECRET_ACCESS_KEY",
    "OPERATIONS",
    "REQUEST_ID_HEADER",
    "SETTINGS",
    "AgentCoreEmulator",
    "Call",
    "EmulatedError",
    "EmulatorConfig",
    "Fault",
    "Session",
    "Stream",
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
        # A fault usually arrives as JSON through the control API: every
        # field is checked here, so that a wrong one is refused with a 400
        # naming it rather than breaking the call the fault fires on.
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if self.operation not in OPERATIONS:
            raise ValueError(f"fault operation must be one of {', '.join(OPERATIONS)}")
        if not _is_int(self.nth) or not _is_int(self.repeat):
            raise ValueError("fault nth and repeat must be integers")
        if self.nth < 1 or self.repeat < 0:
            raise ValueError("fault nth must be at least 1 and repeat at least 0")
        # Below 400 the answer would not be an error, and a 1xx would not
        # even end the exchange.
        if not _is_int(self.status) or not 400 <= self.status <= 599:
            raise ValueError("fault status must be an HTTP error status, 400 to 599")
        if not _is_header_text(self.error_type):
            raise ValueError("fault error_type must be printable ASCII text")
        if not isinstance(self.message, str):
            raise ValueError("fault message must be a string")
        if self.session_id is not None and not isinstance(self.session_id, str):
            raise ValueError("fault session_id must be a string")
        if (
            isinstance(self.seconds, bool)
            or not isinstance(self.seconds, (int, float))
            or not 0 <= self.seconds < math.inf
        ):
            raise ValueError("fault seconds must be a finite number, not negative")
        limits = (self.after_bytes, self.after_events, self.after_frames)
        if any(limit is not None and not _is_int(limit) for limit in limits):
            raise ValueError("fault after_bytes, after_events, after_frames: integers")
        if any(limit is not None and limit < 0 for limit in limits):
            raise ValueError("fault after_bytes, after_events, after_frames: >= 0")
        # RFC 6455 section 7.4: 1004, 1005, 1006 and 1015 never go in a
        # close frame, and the reason must fit the 125-byte control frame
        # with the code.
        if (
            not _is_int(self.code)
            or not 1000 <= self.code <= 4999
            or self.code in (1004, 1005, 1006, 1015)
        ):
            raise ValueError("fault code must be a WebSocket close code to send")
        if not isinstance(self.reason, str) or len(self.reason.encode()) > 123:
            raise ValueError("fault reason must be a string of at most 123 bytes")
        if self.kind == "close" and self.operation not in ("ws", "any"):
            raise ValueError("a close fault applies to WebSockets (operation ws)")

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
    # The service takes payloads up to 100 MB (decimal), as the clients do.
    max_payload: int = MAX_PAYLOAD_BYTES
    ws_max_message_size: int = 0
    faults: Sequence[Fault] = ()

    def __post_init__(self) -> None:
        # Checked here, so that the command line, the control API and code
        # building a config all refuse the same values: a negative
        # max_sessions would answer every call with 402, a NaN idle_timeout
        # would keep every session warm forever.
        for name, kinds in SETTINGS.items():
            value = getattr(self, name)
            if kinds in ((str,), (bool,)):
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not isinstance(value, kinds)
                or not 0 <= value < math.inf
            ):
                kind = "a whole number" if kinds == (int,) else "a number"
                raise ValueError(f"{name} must be {kind}, finite and not negative")


#: Settings the control API may change at run time, with their types.
SETTINGS: dict[str, tuple[type, ...]] = {
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_header_text(value: object) -> bool:
    # It goes out in x-amzn-ErrorType: a CR or LF would end the header.
    return isinstance(value, str) and value.isascii() and value.isprintable()


# Errors answered the way the service answers them.


class EmulatedError(Exception):
    """An error answer: HTTP status, AWS error name and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        self.status = status
        self.error_type = error_type
        self.message = message
        super().__init__(f"{error_type} ({status}): {message}")


# Sessions and statistics.


@dataclass(eq=False)
class Stream:
    """One invocation or WebSocket in progress, so a stop can end it."""

    abort: Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Session:
    """A running session: what the service keeps a microVM for."""

    session_id: str
    runtime_arn: str
    qualifier: str
    created: float
    last_active: float
    ready: asyncio.Task[None] | None = None
    streams: set[Stream] = field(default_factory=set)


@dataclass
class Call:
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
    log_entry: dict[str, Any] | None = None


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
        self._sessions: dict[str, Session] = {}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._client_tokens: dict[str, str] = {}
        self._http: aiohttp.ClientSession | None = None
        self._aborting: set[asyncio.Task[None]] = set()
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
            elif name in SETTINGS:
                expected = SETTINGS[name]
                if not isinstance(value, expected) or (
                    isinstance(value, bool) and bool not in expected
                ):
                    kinds = " or ".join(t.__name__ for t in expected)
                    raise ValueError(f"{name} must be {kinds}")
                if isinstance(value, (int, float)) and value < 0:
                    raise ValueError(f"{name} must not be negative")
                changes[name] = value
            else:
                raise ValueError(f"unknown setting {name!r}")
        self.config = replace(self.config, **changes)
        self._verifier = self._make_verifier()

    def settings(self) -> dict[str, Any]:
        """The current settings as JSON, secrets left out."""
        result: dict[str, Any] = {name: getattr(self.config, name) for name in SETTINGS}
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
        """The faults added and not cleared, with their counters."""
        return list(self._faults)

    def clear_faults(self) -> None:
        """Remove every fault (what they fired stays counted)."""
        self._fired_cleared += sum(f.fired for f in self._faults)
        self._faults.clear()

    def reset(self) -> None:
        """Forget sessions, faults, quotas and counters (settings stay)."""
        for session in list(self._sessions.values()):
            self.end_session(session, "reset")
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

    # What the request handlers ask.

    def authenticate(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> VerifiedRequest:
        """Check the request's SigV4 signature; raise :class:`EmulatedError` if bad."""
        try:
            return self._verifier.verify(
                method, raw_path, raw_query, headers, body, now=time.time()
            )
        except SignatureError as rejected:
            raise EmulatedError(
                rejected.status, rejected.error_type, rejected.message
            ) from None

    def count_request(self, operation: str) -> None:
        """Count a request for ``operation`` before anything is checked."""
        self._requests[operation] = self._requests.get(operation, 0) + 1

    def stop_token_used(self, token: str, session_id: str) -> bool:
        """Whether a stop with ``token`` already ended ``session_id``."""
        return self._client_tokens.get(token) == session_id

    def remember_stop_token(self, token: str, session_id: str) -> None:
        """Note that a stop with ``token`` ended ``session_id``."""
        self._client_tokens[token] = session_id

    def record(self, call: Call) -> None:
        """Count the answer to ``call`` and log it; later calls update the entry.

        A stream is recorded when its answer starts, so that a client that
        has seen the answer also finds it in the statistics, and again when
        it ends, to note how it ended.
        """
        if call.log_entry is not None:
            call.log_entry["outcome"] = call.outcome
            return
        self._responses[str(call.status)] = self._responses.get(str(call.status), 0) + 1
        if call.error_type:
            self._errors[call.error_type] = self._errors.get(call.error_type, 0) + 1
        verified = call.verified
        call.log_entry = {
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
        self._log.append(call.log_entry)

    def session_counters(self, session_id: str) -> dict[str, Any]:
        """The counters of ``session_id`` in :meth:`stats`, to update."""
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

    def matching_faults(self, operation: str, session_id: str | None) -> list[Fault]:
        """Count a call against every fault; return the ones that fire for it."""
        return [f for f in self._faults if f.matches(operation, session_id)]

    def take_token(self, key: tuple[str, str]) -> bool:
        """Whether a call to the endpoint ``key`` fits the rate quota (and count it)."""
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

    def _expired(self, session: Session, now: float) -> str | None:
        if now - session.created > self.config.max_lifetime:
            return "lifetime"
        if not session.streams and now - session.last_active > self.config.idle_timeout:
            return "idle"
        return None

    def end_session(self, session: Session, reason: str) -> None:
        """End ``session`` now: its streams are aborted, its next call is cold."""
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
            # Keep a reference until it is done: the loop holds tasks weakly.
            task = asyncio.get_running_loop().create_task(stream.abort())
            self._aborting.add(task)
            task.add_done_callback(self._aborting.discard)
        session.streams.clear()
        logger.info(
            "session %s ended (%s)", session_fingerprint(session.session_id), reason
        )

    def live_session(self, session_id: str) -> Session | None:
        """The warm session ``session_id``; ``None`` if it never ran or expired."""
        session = self._sessions.get(session_id)
        if session is not None:
            reason = self._expired(session, self.now())
            if reason is not None:
                self.end_session(session, reason)
                return None
        return session

    async def warm_session(self, call: Call) -> Session:
        """The session of ``call``, after a cold start if it has none running."""
        assert call.session_id is not None
        session = self.live_session(call.session_id)
        if session is not None and (
            session.runtime_arn != call.runtime_arn
            or session.qualifier != call.qualifier
        ):
            self.end_session(session, "replaced")
            session = None
        if session is None:
            if self.config.max_sessions:
                now = self.now()
                for other in list(self._sessions.values()):
                    reason = self._expired(other, now)
                    if reason is not None:
                        self.end_session(other, reason)
                if len(self._sessions) >= self.config.max_sessions:
                    raise EmulatedError(
                        402,
                        "ServiceQuotaExceededException",
                        "maxVms limit exceeded: too many active sessions "
                        f"(limit {self.config.max_sessions})",
                    )
            now = self.now()
            session = Session(
                call.session_id, call.runtime_arn, call.qualifier, now, now
            )
            self._sessions[call.session_id] = session
            self._cold_starts += 1
            self.session_counters(call.session_id)["cold_starts"] += 1
            session.ready = asyncio.get_running_loop().create_task(
                self._cold_start(session)
            )
            logger.info("session %s: cold start", session_fingerprint(call.session_id))
        assert session.ready is not None
        try:
            await asyncio.shield(session.ready)
        except asyncio.CancelledError:
            if not session.ready.cancelled():
                raise
            raise EmulatedError(
                424, "RuntimeClientError", "The session was stopped while starting."
            ) from None
        session.last_active = self.now()
        return session

    async def _cold_start(self, session: Session) -> None:
        delay = self.config.cold_start
        limit = self.config.init_timeout
        await asyncio.sleep(min(delay, limit))
        if delay > limit:
            self.end_session(session, "init_timeout")
            raise EmulatedError(
                424,
                "RuntimeClientError",
                "Runtime initialization time exceeded. Please make sure that "
                f"initialization completes in {limit:g}s.",
            )

    async def http(self) -> aiohttp.ClientSession:
        """The HTTP client that reaches the agent (made on first use)."""
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
        """End every session and close the HTTP client."""
        for session in list(self._sessions.values()):
            self.end_session(session, "shutdown")
        if self._http is not None:
            await self._http.close()
            self._http = None

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
