"""AgentCore Runtime requests, without I/O.

The names and rules here come from the ``bedrock-agentcore`` service model
(API version 2024-02-28): the runtime ARN travels percent-encoded as one path
segment, the session id in a header, the endpoint name in ``qualifier``.
Every value is checked before anything is sent, so a bad one fails here with
a :class:`~agentcore_bridge.exceptions.ValidationError` naming the field and
the rule, instead of as an opaque 400 from AWS.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlencode, urlsplit

from . import __version__, sigv4
from ._value import Value
from .credentials import Credentials
from .exceptions import AgentCoreError, TimeoutError, TransportError, ValidationError
from .sessions import derive_session_id, new_session_id

__all__ = [
    "ACCEPT",
    "ERROR_TYPE_HEADER",
    "EXPIRED_TOKEN_ERRORS",
    "MAX_PAYLOAD_BYTES",
    "MAX_PRESIGN_EXPIRES",
    "REQUEST_ID_HEADER",
    "RETRYABLE_STATUSES",
    "SERVICE",
    "SESSION_ID_HEADER",
    "USER_AGENT",
    "USER_ID_HEADER",
    "EnvSettings",
    "PreparedRequest",
    "Retries",
    "RuntimeArn",
    "Target",
    "TargetResolver",
    "Timeouts",
    "derive_session_id",
    "encode_payload",
    "endpoint_url",
    "error_from_response",
    "failure_summary",
    "invoke_request",
    "is_expired_token",
    "is_retryable",
    "new_session_id",
    "operation_name",
    "parse_runtime_arn",
    "presign_websocket_url",
    "resolve_target",
    "runtime_path",
    "settings_from_env",
    "should_retry",
    "sign_request",
    "stop_session_request",
    "validate_endpoint",
    "validate_qualifier",
    "validate_region",
    "validate_session_id",
    "validate_trace_headers",
    "validate_user_id",
    "websocket_request",
]

#: The SigV4 signing name and endpoint prefix of the data plane.
SERVICE = "bedrock-agentcore"
SESSION_ID_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_ID_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
REQUEST_ID_HEADER = "x-amzn-RequestId"
USER_AGENT = f"agentcore-bridge/{__version__}"
#: What AWS's own tools send: the agent may stream (SSE) or answer once (JSON).
ACCEPT = "text/event-stream, application/json"
#: Request and response payloads are limited to 100 MB (AgentCore quotas).
MAX_PAYLOAD_BYTES = 100_000_000
#: AWS's SDKs refuse to presign a WebSocket URL for longer than this.
MAX_PRESIGN_EXPIRES = 300
#: The statuses after which the same call may succeed (see :func:`is_retryable`).
RETRYABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
#: Error names AWS uses for credentials whose session token has expired.
EXPIRED_TOKEN_ERRORS = frozenset({"ExpiredToken", "ExpiredTokenException"})

# Patterns stay strings: re compiles each on first use and caches it, so
# importing this module (on every Lambda cold start) compiles none.
_ARN = (
    r"arn:(?P<partition>aws[a-z-]*):bedrock-agentcore:"
    r"(?P<region>[a-z]{2,4}(?:-[a-z]+)+-\d+):(?P<account>\d{12}):"
    r"runtime/(?P<runtime_id>[A-Za-z0-9][A-Za-z0-9_-]{0,99})"
)
# The service accepts 33 to 256 characters, but echoes the id back in a
# response header limited to 100 characters of this alphabet; ids outside
# that range work for one call and then cannot be read back.
_SESSION_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{32,99}"
_QUALIFIER = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
# Region names: "us-east-1", "us-gov-west-1", "eusc-de-east-1" ...
_REGION = r"[a-z]{2,4}(?:-[a-z]+)+-\d+"
# The service model's ClientToken: 33 to 256 characters.
_CLIENT_TOKEN_PATTERN = r"(?=.{33,256}\Z)[a-zA-Z0-9](?:-*[a-zA-Z0-9])*"  # noqa: S105
#: (header, maximum length) of the tracing headers, in the argument order of
#: validate_trace_headers; the limits are the service model's.
_TRACE_HEADERS = (
    ("X-Amzn-Trace-Id", 128),
    ("traceparent", 128),
    ("tracestate", 512),
    ("baggage", 8192),
)
_OPERATIONS = (
    ("/invocations", "InvokeAgentRuntime"),
    ("/stopruntimesession", "StopRuntimeSession"),
)
_SECRET_HEADERS = frozenset({"authorization", "x-amz-security-token"})

# The DNS suffix of each partition (botocore's partitions.json).
_DNS_SUFFIX = {
    "aws": "amazonaws.com",
    "aws-cn": "amazonaws.com.cn",
    "aws-us-gov": "amazonaws.com",
    "aws-eusc": "amazonaws.eu",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
    "aws-iso-e": "cloud.adc-e.uk",
    "aws-iso-f": "csp.hci.ic.gov",
}


# A plain class rather than a NamedTuple, for import time (see _value).
class RuntimeArn(Value):
    """The parts of an agent runtime ARN."""

    __slots__ = ("account", "arn", "partition", "region", "runtime_id")
    _fields = ("arn", "partition", "region", "account", "runtime_id")

    def __init__(
        self, arn: str, partition: str, region: str, account: str, runtime_id: str
    ) -> None:
        self.arn = arn
        self.partition = partition
        self.region = region
        self.account = account
        self.runtime_id = runtime_id


def parse_runtime_arn(arn: str) -> RuntimeArn:
    """Split a runtime ARN into its parts.

    Raises :class:`ValidationError` (field ``agentRuntimeArn``) unless ``arn``
    has the form ``arn:aws:bedrock-agentcore:REGION:ACCOUNT:runtime/ID``.
    """
    match = re.fullmatch(_ARN, arn) if isinstance(arn, str) else None
    if match is None:
        raise ValidationError(
            "agentRuntimeArn",
            "must look like arn:aws:bedrock-agentcore:<region>:<12-digit account>"
            ":runtime/<runtime id>",
        )
    return RuntimeArn(arn, **match.groupdict())


def validate_session_id(value: str, field: str = "runtimeSessionId") -> str:
    """Return ``value`` if it is a usable AgentCore session id.

    The rule: 33 to 100 characters of letters, digits, ``_`` and ``-``,
    starting with a letter or digit.
    """
    if not isinstance(value, str) or re.fullmatch(_SESSION_ID, value) is None:
        raise ValidationError(
            field,
            "must be 33 to 100 characters of A-Z, a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
        )
    return value


def validate_qualifier(value: str) -> str:
    """Return ``value`` if it is a usable endpoint name (``qualifier``)."""
    if not isinstance(value, str) or re.fullmatch(_QUALIFIER, value) is None:
        raise ValidationError(
            "qualifier",
            "must be 1 to 100 characters of A-Z, a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
        )
    return value


def validate_user_id(value: str) -> str:
    """Return ``value`` if it can travel in the runtime user id header."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 1024
        or not value.isprintable()
        or not value.isascii()
    ):
        raise ValidationError(
            "runtimeUserId", "must be 1 to 1024 printable ASCII characters"
        )
    return value


def endpoint_url(region: str, partition: str = "aws", *, fips: bool = False) -> str:
    """The data-plane base URL, e.g. ``https://bedrock-agentcore.us-east-1.amazonaws.com``."""
    suffix = _DNS_SUFFIX.get(partition)
    if suffix is None:
        raise ValidationError("partition", f"must be one of {', '.join(_DNS_SUFFIX)}")
    host = f"{SERVICE}-fips" if fips else SERVICE
    return f"https://{host}.{region}.{suffix}"


def runtime_path(arn: str, action: str) -> str:
    """``/runtimes/<ARN encoded as one segment>/<action>``.

    ``action`` is ``invocations``, ``stopruntimesession`` or ``ws``. Every
    reserved character of the ARN (``:`` and ``/``) is percent-encoded, so the
    ARN stays one path segment.
    """
    return f"/runtimes/{quote(arn, safe='')}/{action}"


# Everything below builds on the rules above: where a request goes, what it
# carries, how it is signed, and what an error answer means.


def validate_region(value: str, field: str = "region") -> str:
    """Return ``value`` if it looks like an AWS region name (``us-east-1``)."""
    if not isinstance(value, str) or re.fullmatch(_REGION, value) is None:
        raise ValidationError(field, "must be an AWS region name such as us-east-1")
    return value


def validate_endpoint(value: str, field: str = "endpoint_url") -> str:
    """Return an endpoint override without its trailing slash.

    The URL must be ``https://``; plain ``http://`` is accepted only for a
    loopback host (a local emulator), because the request would otherwise
    cross a network with its signature and payload in clear text. Query
    strings and fragments are refused: the library adds its own.
    """
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError(field, "must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(
            field, "must not carry a query string, a fragment or user information"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValidationError(
            field, "must use https:// unless the host is loopback (127.0.0.1, ::1)"
        )
    try:
        parts.port  # noqa: B018 (urllib checks the port only when it is read)
    except ValueError:
        raise ValidationError(field, "has an invalid port") from None
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost"):
        return True
    # Other spellings (127.0.0.2, 0:0::1 ...) need the parser.
    import ipaddress  # noqa: PLC0415 (only endpoint overrides need it)

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# A plain class rather than a NamedTuple, for import time (see _value).
class Target(Value):
    """One agent runtime endpoint, resolved and validated.

    Build it with :func:`resolve_target`; every request builder takes one.
    """

    __slots__ = ("endpoint", "qualifier", "region", "runtime_arn")
    _fields = ("runtime_arn", "region", "endpoint", "qualifier")

    def __init__(
        self, runtime_arn: str, region: str, endpoint: str, qualifier: str | None = None
    ) -> None:
        self.runtime_arn = runtime_arn
        self.region = region
        self.endpoint = endpoint
        self.qualifier = qualifier


def resolve_target(
    runtime_arn: str,
    *,
    region: str | None = None,
    qualifier: str | None = None,
    endpoint: str | None = None,
    fips: bool = False,
) -> Target:
    """Validate a runtime and find where its requests go.

    ``region`` defaults to the ARN's region; ``endpoint`` overrides the
    public data-plane URL (see :func:`validate_endpoint`). Raises
    :class:`ValidationError` naming the first value that breaks its rule.
    """
    arn = parse_runtime_arn(runtime_arn)
    region = validate_region(region) if region is not None else arn.region
    if qualifier is not None:
        validate_qualifier(qualifier)
    if endpoint is None:
        endpoint = endpoint_url(region, arn.partition, fips=fips)
    else:
        endpoint = validate_endpoint(endpoint)
    return Target(arn.arn, region, endpoint, qualifier)


# Session ids.


# Request headers.


def validate_trace_headers(
    *,
    trace_id: str | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
    baggage: str | None = None,
) -> dict[str, str]:
    """The tracing headers to send, checked against the service's limits.

    Each value must be printable ASCII within the model's length limit
    (``X-Amzn-Trace-Id`` and ``traceparent`` 128, ``tracestate`` 512,
    ``baggage`` 8192); ``None`` leaves the header out.
    """
    headers = {}
    values = (trace_id, traceparent, tracestate, baggage)
    for value, (header, limit) in zip(values, _TRACE_HEADERS, strict=True):
        if value is None:
            continue
        if (
            not isinstance(value, str)
            or len(value) > limit
            or not _is_header_text(value)
        ):
            raise ValidationError(
                header, f"must be at most {limit} printable ASCII characters"
            )
        headers[header] = value
    return headers


def _is_header_text(value: str) -> bool:
    # Printable ASCII only: a CR or LF would let a value start a new header.
    return value.isascii() and value.isprintable()


def encode_payload(payload: object) -> bytes:
    """The request body for ``payload``.

    ``bytes`` (and ``bytearray``, ``memoryview``) are sent as they are; any
    other value is encoded as compact JSON in UTF-8. Raises
    :class:`ValidationError` if the value is not JSON-serialisable or the
    body exceeds the service's 100 MB limit.
    """
    if isinstance(payload, (bytes, bytearray, memoryview)):
        body = bytes(payload)
    else:
        try:
            text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                "payload", "must be bytes or a JSON-serialisable value"
            ) from exc
        body = text.encode()
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ValidationError("payload", "must be at most 100,000,000 bytes")
    return body


# Requests.


# A plain class rather than a NamedTuple, for import time (see _value).
class PreparedRequest(Value):
    """A request ready to send: method, full URL, headers and body.

    Builders return it unsigned; :func:`sign_request` returns a signed
    copy. The ``repr`` hides the signature, the session token and the body.
    """

    __slots__ = ("body", "headers", "method", "url")
    _fields = ("method", "url", "headers", "body")

    def __init__(
        self, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        shown = {
            name: "[secure]" if name.lower() in _SECRET_HEADERS else value
            for name, value in self.headers.items()
        }
        return (
            f"PreparedRequest(method={self.method!r}, url={self.url!r}, "
            f"headers={shown!r}, body=<{len(self.body)} bytes>)"
        )


def invoke_request(
    target: Target,
    payload: object,
    *,
    session_id: str,
    user_id: str | None = None,
    content_type: str = "application/json",
    accept: str = ACCEPT,
    trace_id: str | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
    baggage: str | None = None,
) -> PreparedRequest:
    """An unsigned InvokeAgentRuntime request.

    ``payload`` is encoded by :func:`encode_payload`. Every header value is
    validated here; sign the result with :func:`sign_request` right before
    sending it (and again for each retry: signatures carry a timestamp).
    """
    headers = {
        "Content-Type": _header_value(content_type, "contentType", 256),
        "Accept": _header_value(accept, "accept", 256),
        SESSION_ID_HEADER: validate_session_id(session_id),
    }
    if user_id is not None:
        headers[USER_ID_HEADER] = validate_user_id(user_id)
    headers.update(
        validate_trace_headers(
            trace_id=trace_id,
            traceparent=traceparent,
            tracestate=tracestate,
            baggage=baggage,
        )
    )
    url = _url(target, "invocations")
    return PreparedRequest("POST", url, headers, encode_payload(payload))


def stop_session_request(
    target: Target, session_id: str, *, client_token: str | None = None
) -> PreparedRequest:
    """An unsigned StopRuntimeSession request.

    ``client_token`` makes the call idempotent (AWS ignores a repeat with the
    same token); by default a new random one is made, so build the request
    once and re-sign the same one for retries.
    """
    if client_token is None:
        client_token = os.urandom(20).hex()  # secrets would import random
    elif re.fullmatch(_CLIENT_TOKEN_PATTERN, client_token) is None:
        raise ValidationError(
            "clientToken",
            "must be 33 to 256 letters, digits and single or repeated '-', "
            "starting and ending with a letter or digit",
        )
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        SESSION_ID_HEADER: validate_session_id(session_id),
    }
    body = json.dumps({"clientToken": client_token}).encode()
    return PreparedRequest("POST", _url(target, "stopruntimesession"), headers, body)


def websocket_request(
    target: Target, session_id: str, *, user_id: str | None = None
) -> PreparedRequest:
    """An unsigned WebSocket upgrade request for the runtime's ``/ws``.

    The URL is ``wss://`` (``ws://`` for a loopback ``http://`` endpoint).
    After :func:`sign_request`, pass the URL and the headers to the
    WebSocket library, which adds the upgrade headers itself.
    """
    headers = {SESSION_ID_HEADER: validate_session_id(session_id)}
    if user_id is not None:
        headers[USER_ID_HEADER] = validate_user_id(user_id)
    return PreparedRequest("GET", _ws_url(_url(target, "ws")), headers)


def sign_request(
    request: PreparedRequest,
    credentials: Credentials,
    region: str,
    *,
    now: float | None = None,
) -> PreparedRequest:
    """A copy of ``request`` with SigV4 headers for AgentCore added.

    The signed headers cover ``Host`` (from the URL) and every header of
    the request except the tracing headers, which AWS lets proxies change.
    """
    added = sigv4.sign_headers(
        request.method,
        _http_url(request.url),
        request.headers,
        request.body,
        credentials=credentials,
        region=region,
        service=SERVICE,
        now=now,
    )
    return request._replace(headers={**request.headers, **added})


def presign_websocket_url(
    target: Target,
    session_id: str,
    credentials: Credentials,
    *,
    expires: int = MAX_PRESIGN_EXPIRES,
    now: float | None = None,
) -> str:
    """A presigned ``wss://`` URL for the runtime's ``/ws``.

    The session id travels as the query parameter
    ``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id``, added before signing so
    the signature covers it. ``expires`` is 1 to 300 seconds (the limit
    AWS's own SDKs enforce). Anyone holding the URL can connect to that
    session until it expires: hand it only to the party meant to connect.
    """
    if isinstance(expires, bool) or not isinstance(expires, int):
        raise ValidationError("expires", "must be a whole number of seconds")
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise ValidationError("expires", "must be between 1 and 300 seconds")
    base = _url(target, "ws")
    query = urlencode({SESSION_ID_HEADER: validate_session_id(session_id)})
    base += ("&" if "?" in base else "?") + query
    # The payload hash is that of the empty body, as botocore's
    # SigV4QueryAuth (which AWS's own AgentCore SDK presigns with) computes
    # it; S3's UNSIGNED-PAYLOAD convention does not apply here.
    url = sigv4.presign_url(
        "GET",
        base,
        credentials=credentials,
        region=target.region,
        service=SERVICE,
        expires=expires,
        now=now,
    )
    return _ws_url(url)


def _url(target: Target, action: str) -> str:
    url = target.endpoint + runtime_path(target.runtime_arn, action)
    if target.qualifier is not None:
        url += "?" + urlencode({"qualifier": target.qualifier})
    return url


def _ws_url(url: str) -> str:
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def _http_url(url: str) -> str:
    if url.startswith("wss://"):
        return "https://" + url[len("wss://") :]
    if url.startswith("ws://"):
        return "http://" + url[len("ws://") :]
    return url


def _header_value(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValidationError(field, f"must be 1 to {limit} characters")
    if not _is_header_text(value):
        raise ValidationError(field, "must be printable ASCII")
    return value


# Error answers.


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes
) -> AgentCoreError:
    """The :class:`AgentCoreError` for an error answer.

    ``headers`` must have lower-case names. The error name comes from the
    ``x-amzn-ErrorType`` header (anything after ``:`` dropped), else from
    ``__type`` or ``code`` in a JSON body (any ``namespace#`` prefix
    dropped), else from the HTTP status. The message is the body's
    ``message`` (or ``Message``); a body that is not JSON is described by
    its size only, since it may echo the request.
    """
    error_type = headers.get(ERROR_TYPE_HEADER.lower(), "").split(":", 1)[0].strip()
    message = ""
    document = _json_object(body)
    if document is not None:
        if not error_type:
            raw = document.get("__type") or document.get("code") or ""
            error_type = str(raw).rsplit("#", 1)[-1].split(":", 1)[0].strip()
        for key in ("message", "Message", "error"):
            value = document.get(key)
            if isinstance(value, str) and value:
                message = value
                break
    if not error_type:
        error_type = _status_phrase(status)
    if not message:
        message = (
            f"HTTP {status} with a {len(body)}-byte body"
            if body
            else f"HTTP {status} with no body"
        )
    return AgentCoreError(
        status,
        error_type,
        message,
        retryable=is_retryable(status, error_type),
        request_id=headers.get(REQUEST_ID_HEADER.lower()),
    )


def is_retryable(status: int, error_type: str = "") -> bool:
    """Whether AgentCore may accept the same call if it is sent again.

    409, 429, 500, 502, 503 and 504 are retryable, except a 409
    ``ConflictException``, which the service model marks as final (only
    ``RetryableConflictException`` is worth another try).
    """
    if status == 409 and error_type == "ConflictException":
        return False
    return status in RETRYABLE_STATUSES


def is_expired_token(error: AgentCoreError) -> bool:
    """Whether AWS rejected the request because the credentials expired.

    The caller should drop its cached credentials, fetch fresh ones and
    send the request once more.
    """
    return error.status in {400, 403} and error.error_type in EXPIRED_TOKEN_ERRORS


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _status_phrase(status: int) -> str:
    from http import HTTPStatus  # noqa: PLC0415 (error path only)

    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return f"HTTP{status}"


# Timeouts and retries: plain values shared by the sync and asyncio clients.


# Plain classes rather than NamedTuples, for import time (see _value).
class Timeouts(Value):
    """The bounded waits of one call, in seconds.

    - ``connect``: TCP and TLS set-up of a new connection;
    - ``first_byte``: from the end of sending the request to the first byte
      of the answer, and to the end of its headers. A new session
      cold-starts its container in 20 to 30 s and the agent may think
      before it writes, so this is generous;
    - ``idle``: silence between two reads of a streamed answer;
    - ``total``: the whole call, retries and streaming included (AgentCore
      ends streams after 60 minutes); ``None`` for no limit.

    Raises :class:`ValidationError` for a value that is not a positive number.
    """

    __slots__ = ("connect", "first_byte", "idle", "total")
    _fields = ("connect", "first_byte", "idle", "total")

    def __init__(
        self,
        connect: float = 10.0,
        first_byte: float = 120.0,
        idle: float = 300.0,
        total: float | None = 3600.0,
    ) -> None:
        values = {"connect": connect, "first_byte": first_byte, "idle": idle}
        if total is not None:
            values["total"] = total
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValidationError(f"timeouts.{name}", "must be a number")
            if not value > 0:
                raise ValidationError(f"timeouts.{name}", "must be positive")
        self.connect = connect
        self.first_byte = first_byte
        self.idle = idle
        self.total = total


class Retries(Value):
    """How often and how patiently a failed call is sent again.

    ``max_attempts`` counts the first try (1 disables retries). The wait
    before retry ``n`` is drawn uniformly from 0 to
    ``min(max_delay, base_delay * 2 ** (n - 1))`` ("full jitter"), which
    spreads the retries of many clients apart.
    """

    __slots__ = ("base_delay", "max_attempts", "max_delay")
    _fields = ("max_attempts", "base_delay", "max_delay")

    def __init__(
        self, max_attempts: int = 3, base_delay: float = 0.1, max_delay: float = 5.0
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise ValidationError("retries.max_attempts", "must be an integer")
        if max_attempts < 1:
            raise ValidationError("retries.max_attempts", "must be at least 1")
        if not 0 <= base_delay <= max_delay:
            raise ValidationError(
                "retries.base_delay", "must be between 0 and retries.max_delay"
            )
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    def delay(self, retry: int, uniform: Callable[[float, float], float]) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return uniform(0.0, ceiling)


def operation_name(request: PreparedRequest) -> str:
    """The AWS operation a request performs, for log messages."""
    path = request.url.split("?", 1)[0]
    for suffix, name in _OPERATIONS:
        if path.endswith(suffix):
            return name
    return f"{request.method} request"


def failure_summary(error: BaseException) -> str:
    """A one-line account of a failed attempt, safe for logs."""
    if isinstance(error, AgentCoreError):
        return f"{error.error_type} ({error.status})"
    return f"{type(error).__name__}: {error}"


def should_retry(error: BaseException) -> bool:
    """Whether a call that failed with ``error`` may be sent again.

    Every retry runs the agent again, so only failures that happened before
    any byte of the answer arrived qualify: retryable AgentCore errors, and
    transport failures with ``response_started`` false. A ``first_byte``
    timeout does not qualify: the request reached the agent, which is
    probably still running it.
    """
    if isinstance(error, AgentCoreError):
        return error.retryable
    if isinstance(error, TimeoutError):
        return not error.response_started and error.phase == "connect"
    if isinstance(error, TransportError):
        return not error.response_started
    return False


# Configuration from the environment.


# A plain class rather than a NamedTuple, for import time (see _value).
class EnvSettings(Value):
    """The client settings read from the environment."""

    __slots__ = ("endpoint_url", "qualifier", "runtime_arn")
    _fields = ("runtime_arn", "qualifier", "endpoint_url")

    def __init__(
        self, runtime_arn: str, qualifier: str | None, endpoint_url: str | None
    ) -> None:
        self.runtime_arn = runtime_arn
        self.qualifier = qualifier
        self.endpoint_url = endpoint_url


def settings_from_env(environ: Mapping[str, str]) -> EnvSettings:
    """The client settings configured by environment variables, validated.

    ``AGENTCORE_RUNTIME_ARN`` (required), ``AGENTCORE_QUALIFIER`` and
    ``AGENTCORE_ENDPOINT_URL`` (optional). ``AWS_REGION`` and
    ``AWS_DEFAULT_REGION`` are checked when set, but calls go to the region
    named in the runtime ARN: a Lambda function in one region may call an
    agent in another, and only the agent's region can answer. Raises
    :class:`ValidationError` whose ``field`` is the variable at fault.
    """
    arn = environ.get("AGENTCORE_RUNTIME_ARN", "").strip()
    if not arn:
        raise ValidationError("AGENTCORE_RUNTIME_ARN", "must be set to a runtime ARN")
    qualifier = environ.get("AGENTCORE_QUALIFIER", "").strip() or None
    endpoint = environ.get("AGENTCORE_ENDPOINT_URL", "").strip() or None
    checks: list[tuple[str, Callable[[], object]]] = [
        ("AGENTCORE_RUNTIME_ARN", lambda: parse_runtime_arn(arn)),
    ]
    if qualifier is not None:
        checks.append(("AGENTCORE_QUALIFIER", lambda: validate_qualifier(qualifier)))
    if endpoint is not None:
        checks.append(("AGENTCORE_ENDPOINT_URL", lambda: validate_endpoint(endpoint)))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        region = environ.get(name, "").strip()
        if region:
            checks.append((name, functools.partial(validate_region, region)))
    for variable, check in checks:
        try:
            check()
        except ValidationError as exc:
            raise ValidationError(variable, exc.rule) from None
    return EnvSettings(arn, qualifier, endpoint)


class TargetResolver:
    """The runtime settings of a client, validated once; targets per call.

    ``runtime_arn`` is the default runtime (a call may name another);
    ``region`` overrides the ARN's region, ``qualifier`` the endpoint name,
    ``endpoint`` the data-plane URL. Every value is checked here, so a
    misconfigured client fails when it is made, not at its first call.
    """

    def __init__(
        self,
        runtime_arn: str | None = None,
        *,
        region: str | None = None,
        qualifier: str | None = None,
        endpoint: str | None = None,
        fips: bool = False,
    ) -> None:
        self.region = validate_region(region) if region is not None else None
        self.qualifier = (
            validate_qualifier(qualifier) if qualifier is not None else None
        )
        self.endpoint = validate_endpoint(endpoint) if endpoint is not None else None
        self.fips = fips
        self._targets: dict[tuple[str, str | None], Target] = {}
        self.default = self.target(runtime_arn) if runtime_arn is not None else None

    def target(
        self, runtime_arn: str | None = None, qualifier: str | None = None
    ) -> Target:
        """The target for one call: the default runtime unless one is named."""
        if runtime_arn is None:
            if self.default is None:
                raise ValidationError(
                    "runtime_arn", "must be given to the client or to the call"
                )
            if qualifier is None:
                return self.default
            runtime_arn = self.default.runtime_arn
        qualifier = qualifier if qualifier is not None else self.qualifier
        key = (runtime_arn, qualifier)
        target = self._targets.get(key)
        if target is None:
            target = resolve_target(
                runtime_arn,
                region=self.region,
                qualifier=qualifier,
                endpoint=self.endpoint,
                fips=self.fips,
            )
            if len(self._targets) >= 64:
                self._targets.clear()
            self._targets[key] = target
        return target
