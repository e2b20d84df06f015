"""Settings from environment variables, shared by Lambda, the server and the CLI.

Every setting is declared once, in :class:`Settings`, with its variable, its
default and its rule; :meth:`Settings.from_env` reads and checks them all at
start-up and raises :class:`~agentcore_bridge.exceptions.ValidationError`
naming the variable of the first bad value. ``docs/configuration.md`` lists
the same table (a test keeps the two in step).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from ._value import Value
from .agentcore import (
    parse_runtime_arn,
    validate_endpoint,
    validate_qualifier,
    validate_region,
)
from .exceptions import ValidationError

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    from typing_extensions import dataclass_transform as _dataclass_transform

    _T = TypeVar("_T")
else:

    def _dataclass_transform(**_: object) -> Callable[[type], type]:
        # PEP 681's marker only tells type checkers how a class is built;
        # at run time it changes nothing that the bridge reads.
        return lambda cls: cls


__all__ = ["Settings", "origin_allowed"]


# (variable, parser, description, secret) of each setting, in the order of
# the fields of Settings: _setting() appends while the class body runs.
_SPECS: list[tuple[str, Callable[[str, str], Any], str, bool]] = []


def _setting(
    env: str,
    *,
    default: _T,
    parse: Callable[[str, str], _T],
    doc: str,
    secret: bool = False,
) -> _T:
    """Declare a field of :class:`Settings`: its variable, default and parser.

    ``default`` is a keyword because type checkers read a field's default
    from ``default=`` (PEP 681), and check it and the parser's result
    against the field's type.
    """
    _SPECS.append((env, parse, doc, secret))
    return default


def origin_allowed(origin: str | None, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether a client with this ``Origin`` header may connect.

    ``allowed`` is ``BRIDGE_ALLOWED_ORIGINS``: empty, or containing ``*``,
    allows every origin. Scheme and host compare case-insensitively (RFC
    6454 section 4) and a trailing slash is ignored. A request without
    ``Origin`` is allowed: browsers always send one on WebSocket upgrades
    (RFC 6455 section 4.1), and the check exists to stop other web pages
    from connecting with a visitor's browser; a program that is not a
    browser can send any Origin it likes anyway. The server and the Lambda
    adapter both decide with this function.
    """
    if not allowed or origin is None:
        return True
    wanted = _normalize_origin(origin)
    return any(item == "*" or _normalize_origin(item) == wanted for item in allowed)


def _normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


# Parsers take (variable name, raw text) and return the typed value.


def _text(name: str, raw: str) -> str:
    return raw


def _arn(name: str, raw: str) -> str:
    try:
        return parse_runtime_arn(raw).arn
    except ValidationError as exc:
        raise ValidationError(name, exc.rule) from None


def _qualifier(name: str, raw: str) -> str:
    try:
        return validate_qualifier(raw)
    except ValidationError as exc:
        raise ValidationError(name, exc.rule) from None


def _agentcore_url(name: str, raw: str) -> str:
    # The rule the AgentCore clients apply, checked at start-up under the
    # variable's name: https://, or http:// to a loopback host only.
    return validate_endpoint(raw, name)


def _url(name: str, raw: str) -> str:
    # Paths are appended to these URLs ("/@connections/{id}"), so a query
    # or fragment would swallow them; a port that is not one, or a missing
    # host, would otherwise fail only at the first request.
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018 - read for the ValueError of a bad port
    except ValueError:
        raise ValidationError(name, "must have a port from 0 to 65535") from None
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.query
        or parts.fragment
    ):
        raise ValidationError(
            name, "must be an http:// or https:// URL with a host and no query"
        )
    return raw.rstrip("/")


def _region(name: str, raw: str) -> str:
    # The rule the clients apply when they are given a region: it becomes
    # part of a host name and of every signature's credential scope.
    return validate_region(raw, name)


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValidationError(name, "must be a whole number of at least 1")
    return value


def _message_limit(name: str, raw: str) -> int:
    value = _positive_int(name, raw)
    if value < 1024:
        raise ValidationError(name, "must be at least 1024 bytes")
    return value


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValidationError(name, "must be a number of seconds, 0 or more")
    return value


def _ping_interval(name: str, raw: str) -> float:
    # A peer must answer a ping within half the interval (aiohttp's
    # heartbeat), so a fraction of a second would drop healthy clients on
    # any network with some latency.
    value = _seconds(name, raw)
    if 0 < value < 1:
        raise ValidationError(name, "must be 0 (no pings) or 1 second or more")
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValidationError(name, "must be true or false")


def _secret(name: str, raw: str) -> bytes:
    if len(raw) < 32:
        raise ValidationError(name, "must be at least 32 characters long")
    return raw.encode()


def _json(name: str, raw: str) -> Any:
    # NaN and Infinity are Python's extensions, not JSON (RFC 8259), and
    # would be sent on as they are; arrays nested thousands deep exhaust
    # the decoder's recursion limit instead of raising ValueError.
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise ValidationError(name, "must be valid JSON") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _words(name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _origins(name: str, raw: str) -> tuple[str, ...]:
    # An entry that is not an origin (a bare host name, a URL with a path)
    # would never equal a browser's Origin header and silently shut every
    # browser out.
    origins = _words(name, raw)
    for origin in origins:
        if origin not in {"*", "null"} and not _is_origin(origin):
            raise ValidationError(
                name,
                "must list origins as scheme://host[:port] (such as "
                "https://app.example.com, without a path), or *",
            )
    return origins


def _is_origin(text: str) -> bool:
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - read for the ValueError of a bad port
    except ValueError:
        return False
    return bool(
        parts.scheme
        and parts.hostname
        and parts.path in {"", "/"}
        and not parts.query
        and not parts.fragment
        and parts.username is None
    )


def _key(name: str, raw: str) -> str:
    if not raw.replace("_", "").isalnum() or not raw.isascii():
        raise ValidationError(name, "must be letters, digits and underscores")
    return raw


def _log_format(name: str, raw: str) -> str:
    if raw not in {"json", "text"}:
        raise ValidationError(name, "must be json or text")
    return raw


def _port(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise ValidationError(name, "must be a TCP port, 0 to 65535 (0: any free port)")
    return value


def _host(name: str, raw: str) -> str:
    if not raw.strip() or any(c.isspace() or c in "/?#" for c in raw.strip()):
        raise ValidationError(name, "must be an IP address or host name to listen on")
    return raw.strip()


def _rate(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not (value > 0 and value != float("inf")):
        raise ValidationError(name, "must be a number greater than 0 (per second)")
    return value


def _positive_seconds(name: str, raw: str) -> float:
    value = _seconds(name, raw)
    if value == 0:
        raise ValidationError(name, "must be a number of seconds greater than 0")
    return value


def _tokens(name: str, raw: str) -> tuple[str, ...]:
    tokens = _words(name, raw)
    for token in tokens:
        # RFC 6750 section 2.1 (b64token), which also keeps a token usable
        # in a URL query and, without "+", "/" and "=", in a subprotocol.
        if len(token) < 16 or not all(
            c.isascii() and (c.isalnum() or c in "-._~+/=") for c in token
        ):
            raise ValidationError(
                name,
                "must list tokens of at least 16 characters, each one of "
                "A-Z a-z 0-9 - . _ ~ + / =",
            )
    return tokens


def _log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValidationError(name, "must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


# Neither a dataclass nor a NamedTuple: importing dataclasses (and the
# inspect module it loads) would cost the Lambda adapter's cold start
# several milliseconds, and a NamedTuple of this size about 1 ms (typing
# compiles every annotation) on top of importing typing. Type checkers
# still see keyword-only, typed, read-only fields, as for a frozen
# dataclass (PEP 681).
@_dataclass_transform(
    kw_only_default=True, frozen_default=True, field_specifiers=(_setting,)
)
class _Record(Value):
    """A read-only value whose fields are the annotated names of its class body.

    The class attribute of each field is its default; an instance keeps the
    values it was given. ``_fields`` and ``_field_defaults`` are as on a
    ``NamedTuple``, and :class:`Value` gives equality, hashing, ``repr``
    and ``_replace``.
    """

    _field_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # __annotations__ holds the class's own fields only (Python 3.10
        # and later): a subclass that declares none, one that adds
        # methods, keeps its parent's, as a subclass of a NamedTuple does.
        own = [name for name in cls.__annotations__ if name not in cls._fields]
        cls._fields = (*cls._fields, *own)
        # Every field has a default: an AttributeError here, at import,
        # otherwise.
        cls._field_defaults = {name: getattr(cls, name) for name in cls._fields}

    def __init__(self, **values: Any) -> None:
        unknown = values.keys() - set(self._fields)
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword arguments: "
                f"{', '.join(sorted(unknown))}"
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def _asdict(self) -> dict[str, Any]:
        """The fields and their values, in order, as a ``NamedTuple`` gives them."""
        return dict(zip(self._fields, self._values(), strict=True))


class Settings(_Record):
    """Every setting of the bridge; build it with :meth:`from_env` or directly."""

    runtime_arn: str | None = _setting(
        "AGENTCORE_RUNTIME_ARN",
        default=None,
        parse=_arn,
        doc="The agent runtime to invoke. Required by the Lambda handler and the "
        "server.",
    )
    qualifier: str | None = _setting(
        "AGENTCORE_QUALIFIER",
        default=None,
        parse=_qualifier,
        doc="Endpoint name of the runtime; unset means the runtime's DEFAULT endpoint.",
    )
    endpoint_url: str | None = _setting(
        "AGENTCORE_ENDPOINT_URL",
        default=None,
        parse=_agentcore_url,
        doc="Override of the AgentCore data-plane URL (local emulator, FIPS, proxy).",
    )
    region: str | None = _setting(
        "AWS_REGION",
        default=None,
        parse=_region,
        doc="AWS region; unset means AWS_DEFAULT_REGION, then the runtime ARN's "
        "region.",
    )
    connections_endpoint_url: str | None = _setting(
        "BRIDGE_CONNECTIONS_ENDPOINT_URL",
        default=None,
        parse=_url,
        doc="Override of the @connections endpoint (up to and including the stage); "
        "unset means it is built from the event's apiId, region and stage.",
    )
    max_frame_bytes: int = _setting(
        "BRIDGE_MAX_FRAME_BYTES",
        default=131072,
        parse=_positive_int,
        doc="Largest client frame accepted, in bytes; larger ones get a "
        "payload_too_large error.",
    )
    message_limit_bytes: int = _setting(
        "BRIDGE_MESSAGE_LIMIT_BYTES",
        default=131072,
        parse=_message_limit,
        doc="Largest frame sent to a client; longer frames are split into parts "
        "(API Gateway's limit is 128 KB).",
    )
    coalesce_window: float = _setting(
        "BRIDGE_COALESCE_WINDOW",
        default=0.1,
        parse=_seconds,
        doc="Seconds during which chunks after the first are gathered into one "
        "@connections post; 0 posts every chunk at once.",
    )
    coalesce_bytes: int = _setting(
        "BRIDGE_COALESCE_BYTES",
        default=32768,
        parse=_positive_int,
        doc="Gathered chunks are posted as soon as they reach this many bytes "
        "(API Gateway meters messages in 32 KB steps).",
    )
    session_secret: bytes | None = _setting(
        "BRIDGE_SESSION_SECRET",
        default=None,
        parse=_secret,
        doc="Secret (32+ characters) that signs session resume tokens and derives "
        "session ids. Unset: on Lambda, ids are derived without a secret and "
        "resume tokens are off; the server uses a random per-process secret. "
        "See docs/security.md.",
        secret=True,
    )
    session_ttl: float = _setting(
        "BRIDGE_SESSION_TTL",
        default=3600.0,
        parse=_positive_seconds,
        doc="Seconds a session resume token stays valid.",
    )
    allowed_origins: tuple[str, ...] = _setting(
        "BRIDGE_ALLOWED_ORIGINS",
        default=(),
        parse=_origins,
        doc="Comma-separated Origin values allowed to connect; empty allows any.",
    )
    stop_session_on_disconnect: bool = _setting(
        "BRIDGE_STOP_SESSION_ON_DISCONNECT",
        default=False,
        parse=_bool,
        doc="Stop the AgentCore session when the client disconnects (frees the "
        "microVM at once, but the session can no longer be resumed).",
    )
    warmup_payload: Any = _setting(
        "BRIDGE_WARMUP_PAYLOAD",
        default=None,
        parse=_json,
        doc="JSON payload sent to the agent when a client connects, so the agent's "
        "session cold start is over before the first message. Unset: no warm-up.",
    )
    invoke_timeout: float = _setting(
        "BRIDGE_INVOKE_TIMEOUT",
        default=900.0,
        parse=_seconds,
        doc="Longest an invocation may run, in seconds, before it ends with a "
        "timeout error.",
    )
    lambda_endpoint_url: str | None = _setting(
        "BRIDGE_LAMBDA_ENDPOINT_URL",
        default=None,
        parse=_url,
        doc="Override of the Lambda API endpoint used for warmer fan-out and "
        "session warm-up (local emulator); unset means "
        "https://lambda.{region}.amazonaws.com.",
    )
    connection_check_interval: float = _setting(
        "BRIDGE_CONNECTION_CHECK_INTERVAL",
        default=10.0,
        parse=_seconds,
        doc="While an invocation posts nothing for this many seconds, the Lambda "
        "handler asks @connections whether the client is still there, so a "
        "silent agent is stopped when it is gone; 0 never asks.",
    )
    warmer_key: str = _setting(
        "BRIDGE_WARMER_KEY",
        default="agentcore_bridge_warmer",
        parse=_key,
        doc="Key that marks a warmer ping in a scheduled event's input, for "
        'example {"agentcore_bridge_warmer": {"concurrency": 3}}.',
    )
    warmer_hold: float = _setting(
        "BRIDGE_WARMER_HOLD",
        default=0.25,
        parse=_seconds,
        doc="Seconds each environment reached by a warmer ping stays busy, so the "
        "concurrent pings overlap and land in separate environments.",
    )
    warmer_max_concurrency: int = _setting(
        "BRIDGE_WARMER_MAX_CONCURRENCY",
        default=50,
        parse=_positive_int,
        doc="Most environments one warmer ping may keep warm; larger requests "
        "are cut down to it.",
    )
    log_format: str = _setting(
        "BRIDGE_LOG_FORMAT",
        default="json",
        parse=_log_format,
        doc="Log line format of the CLI and the ready-made Lambda handler: json or "
        "text.",
    )

    # The standalone server (agentcore-bridge serve); see docs/server.md.
    host: str = _setting(
        "BRIDGE_HOST",
        default="0.0.0.0",  # noqa: S104 - a server in a container listens on every interface
        parse=_host,
        doc="Address the server listens on (0.0.0.0: every interface, as a container "
        "behind a load balancer needs).",
    )
    port: int = _setting(
        "BRIDGE_PORT",
        default=8000,
        parse=_port,
        doc="TCP port the server listens on (0: any free port).",
    )
    max_connections: int = _setting(
        "BRIDGE_MAX_CONNECTIONS",
        default=10000,
        parse=_positive_int,
        doc="WebSocket connections one server process holds; further ones are "
        "closed at once with 1013 (try again later).",
    )
    max_invocations: int = _setting(
        "BRIDGE_MAX_INVOCATIONS",
        default=8,
        parse=_positive_int,
        doc="Invocations one connection may run at once; more get a "
        "too_many_invocations error.",
    )
    invocation_rate: float = _setting(
        "BRIDGE_INVOCATION_RATE",
        default=5.0,
        parse=_rate,
        doc="Invocations per second one connection may start, on average; faster "
        "ones get a rate_limited error.",
    )
    invocation_burst: int = _setting(
        "BRIDGE_INVOCATION_BURST",
        default=20,
        parse=_positive_int,
        doc="Invocations one connection may start at once above its rate "
        "(token bucket size).",
    )
    auth_tokens: tuple[str, ...] = _setting(
        "BRIDGE_AUTH_TOKENS",
        default=(),
        parse=_tokens,
        doc="Comma-separated bearer tokens the server accepts; empty: no bearer "
        "authentication. See docs/server.md.",
        secret=True,
    )
    auth_query_parameter: bool = _setting(
        "BRIDGE_AUTH_QUERY_PARAMETER",
        default=True,
        parse=_bool,
        doc="Also accept the bearer token as the access_token query parameter "
        "(browsers cannot set headers on WebSockets; URLs end up in logs).",
    )
    ping_interval: float = _setting(
        "BRIDGE_PING_INTERVAL",
        default=25.0,
        parse=_ping_interval,
        doc="Seconds of silence after which the server pings a WebSocket peer "
        "(clients and the agent's /ws); 0 turns pings off.",
    )
    shutdown_timeout: float = _setting(
        "BRIDGE_SHUTDOWN_TIMEOUT",
        default=25.0,
        parse=_seconds,
        doc="Seconds from SIGTERM to exit: running invocations may finish within "
        "it; keep it below ECS's stopTimeout (30 s by default).",
    )
    send_buffer_bytes: int = _setting(
        "BRIDGE_SEND_BUFFER_BYTES",
        default=262144,
        parse=_positive_int,
        doc="Bytes buffered for one client before the server stops reading the "
        "agent's answers for it.",
    )
    slow_client_timeout: float = _setting(
        "BRIDGE_SLOW_CLIENT_TIMEOUT",
        default=30.0,
        parse=_positive_seconds,
        doc="Seconds a client may leave its send buffer full without reading "
        "before it is closed with 1008.",
    )
    passthrough: bool = _setting(
        "BRIDGE_PASSTHROUGH",
        default=True,
        parse=_bool,
        doc="Serve /agent/ws, a WebSocket pass-through to the agent's own /ws.",
    )
    passthrough_max_frame_bytes: int = _setting(
        "BRIDGE_PASSTHROUGH_MAX_FRAME_BYTES",
        default=1048576,
        parse=_positive_int,
        doc="Largest message passed through /agent/ws in either direction; a "
        "larger one closes that side with 1009.",
    )
    passthrough_presign: bool = _setting(
        "BRIDGE_PASSTHROUGH_PRESIGN",
        default=False,
        parse=_bool,
        doc="Open the agent's /ws with a presigned URL instead of a signed upgrade "
        "request.",
    )
    compression: bool = _setting(
        "BRIDGE_WS_COMPRESSION",
        default=False,
        parse=_bool,
        doc="Accept permessage-deflate from clients (less bandwidth, about 300 KB "
        "more memory per connection).",
    )
    log_level: str = _setting(
        "BRIDGE_LOG_LEVEL",
        default="INFO",
        parse=_log_level,
        doc="Lowest level the CLI logs: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: ``os.environ``).

        Unset and empty variables keep their defaults. Raises
        :class:`ValidationError` naming the variable of a bad value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field_name, (variable, parse, _, _) in zip(
            cls._fields, _SPECS, strict=True
        ):
            name = variable
            raw = env.get(name, "")
            if name == "AWS_REGION" and not raw:
                name, raw = "AWS_DEFAULT_REGION", env.get("AWS_DEFAULT_REGION", "")
            if raw != "":
                values[field_name] = parse(name, raw)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed."""
        return self._replace(**changes)

    def require_runtime_arn(self) -> str:
        """The runtime ARN, or a ValidationError saying it must be set."""
        if self.runtime_arn is None:
            raise ValidationError("AGENTCORE_RUNTIME_ARN", "must be set")
        return self.runtime_arn

    def __repr__(self) -> str:
        # Secret settings are shown as set or unset, never by value, so
        # printing or logging a Settings object cannot leak them.
        parts = []
        for name, value, (_, _, _, secret) in zip(
            self._fields, self._values(), _SPECS, strict=True
        ):
            shown = (
                ("[hidden]" if value is not None else "None") if secret else repr(value)
            )
            parts.append(f"{name}={shown}")
        return f"Settings({', '.join(parts)})"

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each environment variable with its description, in declaration order."""
        return {name: doc for name, _, doc, _ in _SPECS}

    @classmethod
    def specs(cls) -> list[tuple[str, str, Any, str]]:
        """``(field, variable, default, description)`` of every setting, in order."""
        return [
            (field_name, variable, cls._field_defaults[field_name], doc)
            for field_name, (variable, _, doc, _) in zip(
                cls._fields, _SPECS, strict=True
            )
        ]
