"""One invocation's frames, shared by the Lambda adapter and the server.

:class:`InvocationFrames` numbers the ``chunk`` frames of one ``invoke`` and
guarantees the protocol's promise that every accepted invocation ends in
exactly one ``end`` or ``error``. :func:`error_for` turns whatever stopped
an invocation into the protocol error code, message and retryable flag the
client sees, with messages built from fixed text only.
"""

from __future__ import annotations

from .exceptions import (
    AgentCoreError,
    AgentError,
    BridgeError,
    CredentialsError,
    FrameError,
    TimeoutError,
    TransportError,
)
from .protocol import (
    AGENT_ERROR,
    AGENT_UNAVAILABLE,
    BAD_REQUEST,
    CANCELLED,
    ERROR_CODES,
    INTERNAL,
    PAYLOAD_TOO_LARGE,
    RATE_LIMITED,
    TIMEOUT,
    encode_chunk,
    encode_end,
    encode_error,
)

__all__ = ["InvocationFrames", "error_for"]

#: AgentCore error names whose cause is the request the client sent.
_CLIENT_FAULTS = {"ValidationException": BAD_REQUEST}
_AGENT_MESSAGE_CHARS = 200


def error_for(exc: BaseException) -> tuple[str, str, bool]:
    """The protocol ``(code, message, retryable)`` for an invocation's failure.

    AgentCore throttling becomes ``rate_limited``; other AgentCore answers
    ``agent_unavailable`` when AWS marks them retryable and ``agent_error``
    otherwise (a 413 is ``payload_too_large``); a failure the agent reported
    in its stream is ``agent_error`` with the agent's error type and a
    shortened message; network trouble is ``agent_unavailable`` (``timeout``
    for a time limit); anything else, including missing credentials, is
    ``internal`` with no detail: those are for the bridge's logs.
    """
    if isinstance(exc, FrameError):
        code = exc.code if exc.code in ERROR_CODES else INTERNAL
        return code, exc.message, ERROR_CODES[code]
    if isinstance(exc, AgentError):
        detail = f"{exc.error_type}: {exc.message}"
        if len(detail) > _AGENT_MESSAGE_CHARS:
            detail = detail[: _AGENT_MESSAGE_CHARS - 3] + "..."
        return AGENT_ERROR, f"the agent failed ({detail})", False
    if isinstance(exc, AgentCoreError):
        if exc.status == 429:
            return RATE_LIMITED, "AgentCore is throttling invocations", True
        if exc.status == 413:
            return PAYLOAD_TOO_LARGE, "the payload is too large for AgentCore", False
        if exc.error_type in _CLIENT_FAULTS:
            return (
                _CLIENT_FAULTS[exc.error_type],
                f"AgentCore refused the request ({exc.error_type})",
                False,
            )
        if exc.retryable:
            return (
                AGENT_UNAVAILABLE,
                f"AgentCore is unavailable ({exc.error_type})",
                True,
            )
        return (
            AGENT_ERROR,
            f"AgentCore refused the invocation ({exc.error_type})",
            False,
        )
    if isinstance(exc, TimeoutError):
        return TIMEOUT, f"no answer from the agent in time ({exc.phase})", True
    if isinstance(exc, TransportError):
        return AGENT_UNAVAILABLE, "the agent could not be reached", exc.retryable
    if isinstance(exc, CredentialsError | BridgeError):
        return INTERNAL, "the bridge could not run the invocation", False
    return INTERNAL, "the bridge failed", False


class InvocationFrames:
    """Frames for one invocation ``id``: numbered chunks, then one terminal.

    Call :meth:`chunk` for each piece of agent output, then exactly one of
    :meth:`end`, :meth:`error` or :meth:`fail`. After the terminal frame,
    every further call returns ``None``: a late chunk or a second terminal
    (for example a failure noticed while the ``end`` was being sent) is
    dropped instead of breaking the protocol's promise.
    """

    __slots__ = ("id", "seq", "terminal")

    def __init__(self, id: str) -> None:
        self.id = id
        #: Number of chunks produced so far (the next chunk's ``seq``).
        self.seq = 0
        #: The terminal frame's type once one was produced.
        self.terminal: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the terminal frame was produced."""
        return self.terminal is not None

    def chunk(self, data: object) -> str | None:
        """The next ``chunk`` frame, or ``None`` after the terminal frame."""
        if self.terminal is not None:
            return None
        frame = encode_chunk(self.id, self.seq, data)
        self.seq += 1
        return frame

    def end(self) -> str | None:
        """The ``end`` frame, or ``None`` if a terminal frame was produced."""
        if self.terminal is not None:
            return None
        self.terminal = "end"
        return encode_end(self.id, self.seq)

    def error(
        self, code: str, message: str, *, retryable: bool | None = None
    ) -> str | None:
        """An ``error`` frame, or ``None`` if a terminal frame was produced."""
        if self.terminal is not None:
            return None
        self.terminal = "error"
        return encode_error(self.id, code, message, retryable=retryable)

    def fail(self, exc: BaseException) -> str | None:
        """The ``error`` frame for ``exc`` (see :func:`error_for`)."""
        code, message, retryable = error_for(exc)
        return self.error(code, message, retryable=retryable)

    def cancelled(self) -> str | None:
        """The ``error`` frame for a cancelled invocation."""
        return self.error(CANCELLED, "the invocation was cancelled")
