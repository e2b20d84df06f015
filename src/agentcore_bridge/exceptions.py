"""Every error agentcore-bridge raises, in one place.

The hierarchy separates "you misused the library" from "something outside
misbehaved", so callers can tell a bug in their set-up from a failure to
retry or report::

    BridgeError
    ├── ConfigurationError        bad argument or setting (also a ValueError)
    │   └── ValidationError       a value breaks a documented rule; names
    │                             the field and the rule
    ├── CredentialsError          no usable AWS credentials
    │   ├── NoCredentialsError    every provider was tried; lists them
    │   └── CredentialsFetchError a provider failed (endpoint down, slow,
    │                             bad answer)
    ├── TransportError            the network failed before an answer
    │   └── TimeoutError          a bounded wait ran out (also the
    │                             builtin TimeoutError); names the phase
    ├── ServiceError              an AWS service (or emulator) answered
    │   │                         with an error status
    │   ├── AgentCoreError        InvokeAgentRuntime, StopRuntimeSession
    │   └── ConnectionsError      the API Gateway @connections API
    │       ├── GoneError         410: the client connection is gone
    │       ├── ForbiddenError    403
    │       ├── PayloadTooLargeError  413
    │       └── ThrottledError    429 LimitExceededException
    ├── AgentError                the agent reported a failure inside a
    │                             successful (200) stream
    ├── AuthenticationError       a client's connection is refused (401 or
    │                             403), by an authentication hook or an
    │                             origin check, on the server or on Lambda
    └── ProtocolError             a peer sent bytes that break a protocol
        └── FrameError            a client frame breaks protocol v1;
            │                     carries the protocol error code
            └── SessionTokenError a session token was refused (code
                                  ``unauthorized``); names the reason

Every error keeps structured fields (``status``, ``error_type``,
``retryable`` ...) so callers never parse messages. Messages and reprs never
contain credentials, signatures, session tokens or payload bodies: they are
built from fixed text and from values the library has checked are safe
(field names, status codes, AWS error names, AWS error messages).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

__all__ = [
    "AgentCoreError",
    "AgentError",
    "AuthenticationError",
    "BridgeError",
    "ConfigurationError",
    "ConnectionsError",
    "CredentialsError",
    "CredentialsFetchError",
    "ForbiddenError",
    "FrameError",
    "GoneError",
    "NoCredentialsError",
    "PayloadTooLargeError",
    "ProtocolError",
    "ServiceError",
    "SessionTokenError",
    "ThrottledError",
    "TimeoutError",
    "TransportError",
    "ValidationError",
]


class BridgeError(Exception):
    """Base class of every error raised by agentcore-bridge."""

    #: Whether doing the same thing again may succeed.
    retryable: bool = False

    def __reduce__(self) -> tuple[object, ...]:
        # Exception pickles (and copies) as type(self)(*self.args), but args
        # holds the message alone, which the constructors below do not
        # take: the error is rebuilt without __init__ and its fields put
        # back, so it can cross a process pool or be copied.
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[BridgeError], args: tuple[object, ...]) -> BridgeError:
    error = cls.__new__(cls, *args)
    if isinstance(error, OSError):
        # OSError (the builtin TimeoutError's base) reads its message in
        # __init__ when a subclass defines one.
        OSError.__init__(error, *args)
    return error


class ConfigurationError(BridgeError, ValueError):
    """An argument or setting is wrong: fix the call or the configuration."""


class ValidationError(ConfigurationError):
    """A value breaks a documented rule.

    ``field`` names the argument or setting (for example ``runtimeSessionId``
    or ``AGENTCORE_RUNTIME_ARN``) and ``rule`` states what it must be. The
    offending value is not repeated, since it may be a secret.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class CredentialsError(BridgeError):
    """No usable AWS credentials could be obtained."""


class NoCredentialsError(CredentialsError):
    """Every credential provider was tried and none had credentials.

    ``tried`` lists each provider with the reason it did not apply.
    """

    def __init__(self, tried: Sequence[str]) -> None:
        self.tried = tuple(tried)
        listing = "; ".join(self.tried) if self.tried else "no providers configured"
        super().__init__(f"no AWS credentials found (tried: {listing})")


class CredentialsFetchError(CredentialsError):
    """A provider that applies failed to produce credentials.

    Raised, for example, when the container credentials endpoint refuses the
    authorization token, answers garbage, or does not answer in time.
    """

    def __init__(self, provider: str, reason: str, *, retryable: bool) -> None:
        self.provider = provider
        self.reason = reason
        self.retryable = retryable
        super().__init__(f"{provider}: {reason}")


class TransportError(BridgeError):
    """The network failed before a complete answer arrived.

    ``url`` is the endpoint without query string. Retrying is safe only when
    no response byte has been received (``response_started`` is false).
    """

    def __init__(
        self, message: str, *, url: str = "", response_started: bool = False
    ) -> None:
        self.url = url
        self.response_started = response_started
        self.retryable = not response_started
        super().__init__(message)


class TimeoutError(TransportError, builtins.TimeoutError):
    """A bounded wait ran out.

    ``phase`` is one of ``connect``, ``first_byte``, ``idle`` (silence
    between chunks of a stream) or ``total``; ``seconds`` is the limit that
    ran out.
    """

    def __init__(
        self,
        phase: str,
        seconds: float,
        *,
        url: str = "",
        response_started: bool = False,
    ) -> None:
        self.phase = phase
        self.seconds = seconds
        super().__init__(
            f"timed out after {seconds:g} s waiting for {phase.replace('_', ' ')}",
            url=url,
            response_started=response_started,
        )


class ServiceError(BridgeError):
    """An AWS service (or a local emulator of one) answered with an error.

    ``status`` is the HTTP status, ``error_type`` the AWS error name (from
    the ``x-amzn-ErrorType`` header or the body), ``message`` AWS's own
    message, ``request_id`` the AWS request id when one was sent.
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        retryable: bool,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.request_id = request_id
        super().__init__(f"{error_type} ({status}): {message}")


class AgentCoreError(ServiceError):
    """AgentCore Runtime answered an invocation or session call with an error."""


class ConnectionsError(ServiceError):
    """The API Gateway ``@connections`` API answered with an error."""


class GoneError(ConnectionsError):
    """410 GoneException: the client connection no longer exists.

    Stop sending to it; there is nothing to retry.
    """


class ForbiddenError(ConnectionsError):
    """403 ForbiddenException: the caller may not manage this API's connections."""


class PayloadTooLargeError(ConnectionsError):
    """413 PayloadTooLargeException: the message exceeds the 128 KB limit."""


class ThrottledError(ConnectionsError):
    """429 LimitExceededException: too many posts, or the client reads too slowly."""


class AgentError(BridgeError):
    """The agent reported a failure inside a stream that AWS answered with 200.

    ``error_type`` and ``message`` are the agent's own (for example from a
    ``data: {"error": ...}`` or ``event: error`` SSE event).
    """

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        self.message = message
        super().__init__(f"agent failed: {error_type}: {message}")


class AuthenticationError(BridgeError):
    """A client's connection request was refused before the WebSocket opened.

    Raised by authentication hooks (the server's ``authenticate`` and the
    Lambda adapter's ``authorize``).
    ``status`` is the HTTP status of the refusal: 401 when credentials are
    missing or wrong (``challenge`` is then the ``WWW-Authenticate`` value),
    403 when they are valid but not allowed. ``message`` is sent to the
    client: never put the credential in it.
    """

    def __init__(
        self,
        message: str = "authentication required",
        *,
        status: int = 401,
        challenge: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.challenge = challenge
        super().__init__(message)


class ProtocolError(BridgeError):
    """A peer sent something that breaks the protocol it speaks."""


class FrameError(ProtocolError):
    """A client frame breaks protocol v1.

    ``code`` is the protocol error code sent back to the client (for example
    ``bad_request`` or ``payload_too_large``); ``id`` is the invocation id
    when the frame carried a readable one.
    """

    def __init__(self, code: str, message: str, *, id: str | None = None) -> None:
        self.code = code
        self.message = message
        self.id = id
        super().__init__(f"{code}: {message}")


class SessionTokenError(FrameError):
    """A session token was refused; ``code`` is always ``unauthorized``.

    ``reason`` is ``malformed`` (not a token this library issues),
    ``invalid`` (forged, signed with an unknown secret, or issued to another
    principal: these cannot be told apart by design) or ``expired``. The
    caller answers the frame with an error, or starts a new session, and
    never tells the client which session the token named.
    """

    def __init__(self, reason: str, message: str, *, id: str | None = None) -> None:
        self.reason = reason
        super().__init__("unauthorized", message, id=id)
