"""Client protocol, version 1: JSON text frames between clients and the bridge.

Pure functions and value types, no I/O: adapters (the Lambda handler, the
aiohttp server) hand in the text of a WebSocket message and get back a typed
frame, or hand in values and get back the text to send.

Client to bridge, parsed by :func:`parse_client_frame`:

- :class:`Invoke` (``invoke``): run the agent on ``payload``;
- :class:`Cancel` (``cancel``): stop the invocation ``id``;
- :class:`Ping` (``ping``): keep-alive, answered with ``pong``.

Bridge to client, built by :func:`encode_chunk`, :func:`encode_end`,
:func:`encode_error`, :func:`encode_session` and :func:`encode_pong`.
:func:`encode_batch` packs several of those into one message, so that a
transport that pays per message (API Gateway) sends a burst of small
chunks as one.

A frame whose UTF-8 size exceeds the transport's message limit (128 KB on
API Gateway) goes through :func:`split_frame`, which cuts its text into
``part`` frames that are each valid JSON under the limit; a
:class:`Reassembler` on the client side joins them back. The wire format
of every frame is described in ``docs/protocol.md``.

Invocation ids are chosen by the client: 1 to 64 characters of printable
ASCII other than space, ``"`` and ``\\`` (:data:`ID_PATTERN`). Such an id
never needs escaping, so it can be logged and echoed as it is.

Errors: a frame that breaks the protocol raises
:class:`~agentcore_bridge.exceptions.FrameError` whose ``code`` is one of
:data:`ERROR_CODES`; the adapter answers it with :func:`encode_frame_error`.
Error messages name fields and rules, never the content of a payload.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from .exceptions import FrameError, ProtocolError, ValidationError

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar, Final, TypeGuard

__all__ = [
    "AGENT_ERROR",
    "AGENT_UNAVAILABLE",
    "BAD_REQUEST",
    "BATCH_OVERHEAD",
    "CANCELLED",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_SPLIT_LIMIT",
    "DUPLICATE_ID",
    "ERROR_CODES",
    "GOING_AWAY",
    "ID_PATTERN",
    "INTERNAL",
    "MAX_SESSION_CHARS",
    "MIN_SPLIT_LIMIT",
    "PAYLOAD_TOO_LARGE",
    "PROTOCOL_VERSION",
    "RATE_LIMITED",
    "TIMEOUT",
    "TOO_MANY_INVOCATIONS",
    "UNAUTHORIZED",
    "Cancel",
    "ClientFrame",
    "Invoke",
    "Ping",
    "Reassembler",
    "batch_size",
    "encode_batch",
    "encode_cancel",
    "encode_chunk",
    "encode_end",
    "encode_error",
    "encode_frame_error",
    "encode_invoke",
    "encode_ping",
    "encode_pong",
    "encode_session",
    "is_retryable",
    "new_message_id",
    "parse_client_frame",
    "split_frame",
    "utf8_size",
]

PROTOCOL_VERSION: Final = 1

# Error codes. The set is part of the protocol: clients switch on these
# strings, so a code is never renamed or reused with another meaning.

#: The frame is not valid protocol v1 (bad JSON, unknown type, missing or
#: wrong-typed field, binary frame). Sending the same frame fails again.
BAD_REQUEST: Final = "bad_request"
#: The frame, or the payload the agent was asked to take, is over a limit.
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
#: The session token is malformed, forged, expired or another principal's,
#: or the connection may not do this. Retry without the token.
UNAUTHORIZED: Final = "unauthorized"
#: An ``invoke`` reused the ``id`` of an invocation still running. Unlike
#: every other error this one does not end the running invocation.
DUPLICATE_ID: Final = "duplicate_id"
#: The connection already runs as many invocations as it may; retry after
#: one of them ends.
TOO_MANY_INVOCATIONS: Final = "too_many_invocations"
#: Frames arrive faster than allowed, or AgentCore throttled the call.
RATE_LIMITED: Final = "rate_limited"
#: The client cancelled the invocation.
CANCELLED: Final = "cancelled"
#: A time limit ran out (first byte, silence between chunks, total time).
TIMEOUT: Final = "timeout"
#: The agent ran and reported a failure, or AgentCore refused the request
#: for a reason retrying does not fix (validation, access, missing runtime).
AGENT_ERROR: Final = "agent_error"
#: AgentCore or the agent could not be reached or answered a transient
#: failure before any output was produced.
AGENT_UNAVAILABLE: Final = "agent_unavailable"
#: The bridge is shutting down (RFC 6455 close code 1001, "going away");
#: reconnect and send the invocation again.
GOING_AWAY: Final = "going_away"
#: A fault inside the bridge. Details are in the bridge's logs, never here.
INTERNAL: Final = "internal"

#: Every error code of protocol v1, mapped to its default ``retryable`` flag:
#: whether sending the same ``invoke`` again may succeed. An adapter may
#: override the flag for one error when it knows better (AgentCore's own
#: retryable flag, for example).
ERROR_CODES: Final[Mapping[str, bool]] = MappingProxyType(
    {
        BAD_REQUEST: False,
        PAYLOAD_TOO_LARGE: False,
        UNAUTHORIZED: False,
        DUPLICATE_ID: False,
        TOO_MANY_INVOCATIONS: True,
        RATE_LIMITED: True,
        CANCELLED: False,
        TIMEOUT: True,
        AGENT_ERROR: False,
        AGENT_UNAVAILABLE: True,
        GOING_AWAY: True,
        INTERNAL: False,
    }
)

#: Invocation ids and message ids: 1 to 64 characters of printable ASCII
#: (0x21 to 0x7E) other than ``"`` and ``\``, so they never need escaping in
#: JSON, in logs or in the ``of`` field of a part.
ID_PATTERN: Final = re.compile(r"[!#-\[\]-~]{1,64}")
_ID_RULE = "must be 1 to 64 printable ASCII characters other than space, '\"' and '\\'"

#: The largest client frame accepted by default, in UTF-8 bytes: API
#: Gateway's message quota, so a frame that passes here also passes there.
DEFAULT_MAX_FRAME_BYTES: Final = 131072
#: The default limit for :func:`split_frame`: API Gateway's 128 KB message
#: quota, which is also the largest ``@connections`` POST body.
DEFAULT_SPLIT_LIMIT: Final = 131072
#: The smallest limit :func:`split_frame` accepts. A part's fixed fields
#: take at most about 130 bytes, and the rest must fit the longest escaped
#: character (6 bytes, ``\u001f``).
MIN_SPLIT_LIMIT: Final = 256
#: Longest ``session`` token an ``invoke`` may carry.
MAX_SESSION_CHARS: Final = 512

# The longest JSON escape of one character: \u0000 to \u001f other than the
# five with short escapes. Astral characters take 4 bytes of UTF-8.
_MAX_ESCAPED_CHAR_BYTES = 6

# Compact JSON without NaN or Infinity, which JavaScript's JSON.parse rejects.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":")
)


def _refuse_constant(name: str) -> object:
    # NaN, Infinity and -Infinity are Python's extensions to JSON.
    raise ValueError(name)


# One decoder for every frame: json.loads with arguments builds a new one
# per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)

# An oversize frame is not parsed; its id is read only from its first
# bytes, when the object opens with "id" or with "type" then "id", as the
# bundled clients write it. A match there is certainly the top-level id.
# This pattern and the next serve only frames that fail, so they stay
# strings that re compiles on first use: every Lambda cold start imports
# this module.
_LEADING_ID = (
    r'\A[ \t\n\r]*\{[ \t\n\r]*(?:"type"[ \t\n\r]*:[ \t\n\r]*"[a-z]{1,16}"'
    r'[ \t\n\r]*,[ \t\n\r]*)?"id"[ \t\n\r]*:[ \t\n\r]*"([!#-\[\]-~]{1,64})"'
)
_LEADING_ID_SCAN = 160
_KNOWN_TYPE = r"[a-z_]{1,32}"


# Client frames.


class _Frame:
    """What the client frame types share: immutable values compared by value.

    Written out rather than declared as dataclasses: importing dataclasses
    (and the inspect module it loads) would cost the Lambda adapter's cold
    start several milliseconds. ``_fields`` lists the values in order (also
    as ``__match_args__``); ``_secret`` the ones the repr leaves out.
    """

    __slots__ = ()
    type: ClassVar[str]
    _fields: ClassVar[tuple[str, ...]]
    _secret: ClassVar[frozenset[str]] = frozenset()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} frames are immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} frames are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Frame) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self._fields
            if name not in self._secret
        )
        return f"{type(self).__name__}({shown})"


class Invoke(_Frame):
    """``invoke``: run the agent on ``payload``.

    ``payload`` is the decoded JSON value, ``session`` the resume token the
    client sent back (verify it with
    :meth:`agentcore_bridge.sessions.SessionTokens.verify`), or ``None``.
    Neither appears in the repr.
    """

    __slots__ = ("id", "payload", "session")
    type: ClassVar[str] = "invoke"
    _fields = __match_args__ = ("id", "payload", "session")
    _secret = frozenset({"payload", "session"})

    id: str
    payload: object
    session: str | None

    def __init__(self, id: str, payload: object, session: str | None = None) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "session", session)

    def payload_json(self) -> str:
        """The payload as compact JSON text, ready to send to the agent."""
        return _dumps(self.payload, "payload")


class Cancel(_Frame):
    """``cancel``: stop the invocation ``id``.

    The bridge answers with that invocation's ``end`` or ``error``; a cancel
    for an id that is not running (finished, never started) is ignored, since
    the client may send it while the last frames are already on their way.
    ``session`` is the resume token the client sent with that invocation, or
    ``None``: a bridge that keeps no state between frames (Lambda) finds the
    invocation's agent session through it. It is not in the repr.
    """

    __slots__ = ("id", "session")
    type: ClassVar[str] = "cancel"
    _fields = __match_args__ = ("id", "session")
    _secret = frozenset({"session"})

    id: str
    session: str | None

    def __init__(self, id: str, session: str | None = None) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "session", session)


class Ping(_Frame):
    """``ping``: keep-alive; answer with :func:`encode_pong` and the same id."""

    __slots__ = ("id",)
    type: ClassVar[str] = "ping"
    _fields = __match_args__ = ("id",)

    id: str | None

    def __init__(self, id: str | None = None) -> None:
        object.__setattr__(self, "id", id)


ClientFrame = Invoke | Cancel | Ping


def parse_client_frame(
    frame: str | bytes,
    *,
    binary: bool = False,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> ClientFrame:
    """Parse and validate one client WebSocket message.

    ``frame`` is the message's text (``bytes`` are decoded as UTF-8);
    ``binary`` says whether it arrived as a binary frame, which protocol v1
    refuses because API Gateway refuses them too. Fields other than those of
    the frame's type are ignored, so later versions can add some.

    Raises :class:`FrameError` with code ``payload_too_large`` when the
    frame exceeds ``max_frame_bytes``, and ``bad_request`` for everything
    else that is wrong. Its ``id`` is the frame's id when one could be read.
    The caller answers with ``encode_frame_error(exc)`` and keeps the
    connection open.
    """
    if binary:
        raise FrameError(
            BAD_REQUEST, "binary frames are not accepted: send JSON text frames"
        )
    if _over_size(frame, max_frame_bytes):
        raise FrameError(
            PAYLOAD_TOO_LARGE,
            f"frame exceeds the limit of {max_frame_bytes} bytes",
            id=_leading_id(frame),
        )

    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(BAD_REQUEST, "frame is not valid UTF-8") from None
    try:
        obj = _DECODER.decode(frame)
    except json.JSONDecodeError as exc:
        raise FrameError(
            BAD_REQUEST, f"frame is not valid JSON: {exc.msg} at character {exc.pos}"
        ) from None
    except ValueError:
        # NaN, Infinity, or an integer literal longer than Python converts.
        raise FrameError(
            BAD_REQUEST,
            "frame is not valid JSON: NaN, Infinity or an over-long number",
        ) from None
    except RecursionError:
        raise FrameError(BAD_REQUEST, "frame is nested too deeply") from None
    if not isinstance(obj, dict):
        raise FrameError(BAD_REQUEST, "frame must be a JSON object")

    raw_id = obj.get("id")
    readable_id = raw_id if _is_id(raw_id) else None
    kind = obj.get("type")
    if kind == "invoke":
        return _parse_invoke(obj, readable_id)
    if kind == "cancel":
        id_ = _required_id(obj, "cancel", readable_id)
        return Cancel(id_, _optional_session(obj, "cancel", id_))
    if kind == "ping":
        if raw_id is not None and readable_id is None:
            raise FrameError(BAD_REQUEST, f"ping: id {_ID_RULE}")
        return Ping(readable_id)
    if kind is None:
        raise FrameError(
            BAD_REQUEST, "frame has no type (invoke, cancel or ping)", id=readable_id
        )
    if kind in {"part", "batch"}:
        raise FrameError(
            BAD_REQUEST,
            f"{kind} frames only go from the bridge to clients; client frames "
            "cannot be split or batched",
            id=readable_id,
        )
    known = isinstance(kind, str) and re.fullmatch(_KNOWN_TYPE, kind)
    shown = f" {kind!r}" if known else ""
    raise FrameError(
        BAD_REQUEST,
        f"unknown frame type{shown}: expected invoke, cancel or ping",
        id=readable_id,
    )


def _parse_invoke(obj: dict[str, object], readable_id: str | None) -> Invoke:
    id_ = _required_id(obj, "invoke", readable_id)
    if "payload" not in obj:
        raise FrameError(BAD_REQUEST, "invoke: payload is missing", id=id_)
    return Invoke(id_, obj["payload"], _optional_session(obj, "invoke", id_))


def _optional_session(obj: dict[str, object], kind: str, id_: str) -> str | None:
    session = obj.get("session")
    if session is not None and not (
        isinstance(session, str) and 0 < len(session) <= MAX_SESSION_CHARS
    ):
        raise FrameError(
            BAD_REQUEST,
            f"{kind}: session must be a token string of 1 to {MAX_SESSION_CHARS} "
            "characters",
            id=id_,
        )
    return session


def _required_id(obj: dict[str, object], kind: str, readable_id: str | None) -> str:
    if readable_id is not None:
        return readable_id
    if obj.get("id") is None:
        raise FrameError(BAD_REQUEST, f"{kind}: id is missing")
    raise FrameError(BAD_REQUEST, f"{kind}: id {_ID_RULE}")


def _is_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def _over_size(frame: str | bytes, limit: int) -> bool:
    # A character takes 1 to 4 bytes of UTF-8: most frames are decided
    # without encoding them.
    if isinstance(frame, bytes) or len(frame) > limit:
        return len(frame) > limit
    if len(frame) * 4 <= limit:
        return False
    return utf8_size(frame) > limit


def _leading_id(frame: str | bytes) -> str | None:
    head = frame[:_LEADING_ID_SCAN]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "ignore")
    match = re.match(_LEADING_ID, head)
    return match.group(1) if match else None


# Frame encoders. Each returns compact JSON text whose UTF-8 encoding never
# fails; ``type`` comes first and ``id`` second, as _LEADING_ID expects.


def _dumps(obj: object, field_name: str) -> str:
    try:
        text = _ENCODER.encode(obj)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(
            field_name, "must be a JSON value (no NaN, Infinity or cycles)"
        ) from exc
    # A lone surrogate (from a JSON "\ud800" escape, say) passes through
    # ensure_ascii=False raw and cannot be encoded as UTF-8; escape it.
    # Trying the encoding is faster than a search with a regular expression,
    # and needs no pattern compiled at import (0.4 ms for that one).
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _ASCII_ENCODER.encode(obj)
    return text


def _check_id(value: object, field_name: str = "id") -> str:
    if not _is_id(value):
        raise ValidationError(field_name, _ID_RULE)
    return value


def _check_seq(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError("seq", "must be an integer >= 0")
    return value


def encode_invoke(id: str, payload: object, session: str | None = None) -> str:
    """An ``invoke`` frame (client side)."""
    frame: dict[str, object] = {
        "type": "invoke",
        "id": _check_id(id),
        "payload": payload,
    }
    if session is not None:
        frame["session"] = session
    return _dumps(frame, "payload")


def encode_cancel(id: str, session: str | None = None) -> str:
    """A ``cancel`` frame (client side); send the invocation's token along."""
    frame: dict[str, object] = {"type": "cancel", "id": _check_id(id)}
    if session is not None:
        frame["session"] = session
    return _dumps(frame, "session")


def encode_ping(id: str | None = None) -> str:
    """A ``ping`` frame (client side); ``id`` comes back in the ``pong``."""
    if id is None:
        return '{"type":"ping"}'
    return _dumps({"type": "ping", "id": _check_id(id)}, "id")


def encode_chunk(id: str, seq: int, data: object) -> str:
    """A ``chunk`` frame: output ``seq`` (0, 1, 2 ...) of invocation ``id``.

    ``data`` is any JSON value. Raises :class:`ValidationError` when it is
    not one (NaN, Infinity, cycles, other Python types).
    """
    frame = {"type": "chunk", "id": _check_id(id), "seq": _check_seq(seq), "data": data}
    return _dumps(frame, "data")


def encode_end(id: str, seq: int) -> str:
    """An ``end`` frame; ``seq`` is the number of chunks sent for ``id``."""
    return _dumps({"type": "end", "id": _check_id(id), "seq": _check_seq(seq)}, "seq")


def encode_error(
    id: str | None,
    code: str,
    message: str,
    *,
    retryable: bool | None = None,
) -> str:
    """An ``error`` frame; terminal for invocation ``id``.

    ``id`` is ``None`` when the frame could not be tied to an invocation.
    ``code`` must be one of :data:`ERROR_CODES`; ``retryable`` defaults to
    the code's flag there. ``message`` is sent as given: build it from
    fixed text, never from payloads, credentials or stack traces.
    """
    if code not in ERROR_CODES:
        raise ValidationError("code", "must be one of the protocol error codes")
    if retryable is None:
        retryable = ERROR_CODES[code]
    frame = {
        "type": "error",
        "id": None if id is None else _check_id(id),
        "code": code,
        "message": message,
        "retryable": retryable,
    }
    return _dumps(frame, "message")


def encode_frame_error(exc: FrameError) -> str:
    """The ``error`` frame that answers a :class:`FrameError`.

    The ``retryable`` flag is the code's default. A code outside
    :data:`ERROR_CODES` (a bug in the caller) is sent as ``internal``.
    """
    code = exc.code if exc.code in ERROR_CODES else INTERNAL
    return encode_error(exc.id, code, exc.message)


def encode_session(session: str, expires: float) -> str:
    """A ``session`` frame: the resume token and its expiry (Unix seconds)."""
    if not isinstance(session, str) or not 0 < len(session) <= MAX_SESSION_CHARS:
        raise ValidationError(
            "session", f"must be a token of 1 to {MAX_SESSION_CHARS} characters"
        )
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        raise ValidationError("expires", "must be a number of seconds")
    if not math.isfinite(expires):
        raise ValidationError("expires", "must be finite")
    return _dumps(
        {"type": "session", "session": session, "expires": expires}, "session"
    )


def encode_pong(id: str | None = None) -> str:
    """A ``pong`` frame answering a ``ping`` with the same ``id`` (or null)."""
    return _dumps({"type": "pong", "id": None if id is None else _check_id(id)}, "id")


# Batches. Several frames as one message, in order:
#
#   {"type":"batch","frames":[<frame>,<frame>,...]}
#
# The frames are the encoders' own text, joined as they are: no frame is
# decoded or encoded again, so a batch costs one string join.

_BATCH_HEAD = '{"type":"batch","frames":['
_BATCH_TAIL = "]}"
#: The bytes a batch adds to its frames, besides one comma between each two:
#: a batch of frames of sizes s1 .. sn takes ``BATCH_OVERHEAD + sum + n - 1``.
BATCH_OVERHEAD: Final = len(_BATCH_HEAD) + len(_BATCH_TAIL)
_UNBATCHABLE = ('{"type":"batch"', '{"type":"part"')


def batch_size(frames_bytes: int, count: int) -> int:
    """The UTF-8 size of a batch of ``count`` frames totalling ``frames_bytes``."""
    return BATCH_OVERHEAD + frames_bytes + max(count - 1, 0)


def encode_batch(frames: Sequence[str]) -> str:
    """One ``batch`` message carrying ``frames`` (encoded frames) in order.

    Clients process the inner frames in order, as if each had arrived alone.
    The caller keeps the result under the transport's message limit (see
    :func:`batch_size`); a batch is never split. Raises
    :class:`ValidationError` for an empty list, or a frame that is itself a
    ``batch`` or a ``part``, which a batch may not carry.
    """
    if not frames:
        raise ValidationError("frames", "must hold at least one frame")
    for frame in frames:
        if frame.startswith(_UNBATCHABLE):
            raise ValidationError("frames", "must not hold batch or part frames")
    return _BATCH_HEAD + ",".join(frames) + _BATCH_TAIL


def is_retryable(code: str) -> bool:
    """The default ``retryable`` flag of an error code (False if unknown)."""
    return ERROR_CODES.get(code, False)


# Splitting. A frame over the limit becomes ordered "part" frames:
#
#   {"type":"part","of":"<message id>","n":0,"total":3,"text":"..."}
#
# Joining the "text" of parts 0 .. total-1 gives back the original frame's
# text exactly. JSON escapes each character on its own, so the escaped size
# of a slice is the sum of its characters' escaped sizes: the splitter
# measures slices with the same encoder that writes them and never needs a
# second pass.


def utf8_size(text: str) -> int:
    """The size of ``text`` in UTF-8 bytes (what a transport limit counts).

    Raises :class:`ValidationError` when ``text`` holds a lone surrogate,
    which UTF-8 cannot encode.
    """
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError("frame", "must not contain lone surrogates") from None


def new_message_id() -> str:
    """A random id for the ``of`` field of parts (12 characters, 72 bits).

    Random rather than counted, because parts for one connection may come
    from several processes at once (Lambda environments) that share no
    counter.
    """
    # os.urandom rather than secrets, whose import loads random.
    return base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")


def split_frame(
    frame: str,
    limit: int = DEFAULT_SPLIT_LIMIT,
    *,
    message_id: str | None = None,
) -> list[str]:
    """Cut ``frame`` into messages of at most ``limit`` UTF-8 bytes each.

    A frame that fits is returned alone and unchanged. Otherwise the result
    is ``part`` frames numbered from 0, in the order they must be sent,
    tagged with ``message_id`` (a random one when not given; ids follow
    :data:`ID_PATTERN` and must be unique per connection while parts are in
    flight). Slices never cut a character, so each part is valid JSON.

    Raises :class:`ValidationError` when ``limit`` is below
    :data:`MIN_SPLIT_LIMIT` or ``frame`` holds a lone surrogate.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < MIN_SPLIT_LIMIT:
        raise ValidationError("limit", f"must be an integer >= {MIN_SPLIT_LIMIT}")
    if utf8_size(frame) <= limit:
        return [frame]
    of = new_message_id() if message_id is None else _check_id(message_id, "message_id")

    # ``total`` is at most one part per character, which bounds the digits
    # of both ``n`` and ``total`` before the parts are counted.
    digits = len(str(len(frame)))
    head = f'{{"type":"part","of":"{of}","n":'
    fixed = len(head) + digits + len(',"total":') + digits + len(',"text":"') + 2
    budget = limit - fixed
    slices = _escaped_slices(frame, budget)
    total = len(slices)
    return [
        f'{head}{n},"total":{total},"text":"{text}"}}' for n, text in enumerate(slices)
    ]


def _escaped_slices(frame: str, budget: int) -> list[str]:
    # Greedy: grow each slice by guessing how many characters fit the room
    # left (one byte each at best), shrinking the guess in proportion to the
    # overshoot until it fits. ``budget`` holds at least one character of
    # any kind, so every part makes progress.
    assert budget >= _MAX_ESCAPED_CHAR_BYTES
    slices: list[str] = []
    start = 0
    length = len(frame)
    while start < length:
        pieces: list[str] = []
        used = 0
        end = start
        while end < length and used < budget:
            room = budget - used
            step = min(length - end, room)
            while step > 0:
                piece = _ENCODER.encode(frame[end : end + step])[1:-1]
                size = utf8_size(piece)
                if size <= room:
                    break
                step = min(step - 1, step * room // size)
            if step == 0:
                break
            pieces.append(piece)
            used += size
            end += step
        slices.append("".join(pieces))
        start = end
    return slices


class _Partial:
    __slots__ = ("chars", "last_seen", "texts", "total")

    def __init__(self, total: int, texts: list[str], last_seen: float) -> None:
        self.total = total
        self.texts = texts
        self.last_seen = last_seen
        self.chars = 0


class Reassembler:
    """Joins ``part`` frames back into the frames they were cut from.

    Parts of one message must arrive in order (0, 1, 2 ...), as the bridge
    sends them over one WebSocket; parts of different messages may
    interleave. Pure: the caller passes the clock to :meth:`feed`.

    Bounded: at most ``max_pending`` messages in progress, ``max_parts``
    parts per message, ``max_chars`` characters buffered over all of them.
    A message that receives no part for ``max_age`` seconds is dropped
    (counted in :attr:`dropped`), and so is a message that breaks a rule;
    later parts of a dropped message are ignored.
    """

    #: How many dropped message ids are remembered to ignore their parts.
    _DISCARDED_MEMORY = 64

    def __init__(
        self,
        *,
        max_pending: int = 16,
        max_parts: int = 4096,
        max_chars: int = 128 * 1024 * 1024,
        max_age: float = 120.0,
    ) -> None:
        for name, value in (
            ("max_pending", max_pending),
            ("max_parts", max_parts),
            ("max_chars", max_chars),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(name, "must be an integer >= 1")
        if not (isinstance(max_age, (int, float)) and max_age > 0):
            raise ValidationError("max_age", "must be a number of seconds > 0")
        self.max_pending = max_pending
        self.max_parts = max_parts
        self.max_chars = max_chars
        self.max_age = float(max_age)
        #: Messages dropped unfinished: stale, or broken by a bad part.
        self.dropped = 0
        self._pending: dict[str, _Partial] = {}
        self._discarded: OrderedDict[str, None] = OrderedDict()
        self._chars = 0

    @property
    def pending(self) -> int:
        """How many messages are partly received."""
        return len(self._pending)

    def feed(self, part: Mapping[str, object], now: float) -> str | None:
        """Take one decoded ``part`` frame received at time ``now`` (seconds).

        Returns the original frame's text once its last part arrives, else
        ``None``. Raises :class:`ProtocolError` for a malformed part, a part
        out of order, repeated or after a missing one, a ``total`` that
        changes, or a message over the bounds; the message is dropped and
        the caller carries on with the next frame.
        """
        self._expire(now)
        of, n, total, text = _read_part(part)
        if of in self._discarded:
            return None
        partial = self._pending.get(of)

        if partial is None:
            if n != 0:
                self._discard(of)
                raise ProtocolError(
                    f"message {of}: part {n} arrived without part 0 "
                    "(parts lost or sent out of order)"
                )
            if total > self.max_parts:
                self._discard(of)
                raise ProtocolError(
                    f"message {of}: {total} parts is over the limit of {self.max_parts}"
                )
            if total == 1:
                return text
            if len(self._pending) >= self.max_pending:
                self._discard(of)
                raise ProtocolError(
                    f"message {of}: more than {self.max_pending} split messages "
                    "in progress at once"
                )
            partial = self._pending[of] = _Partial(total, [], now)
        elif total != partial.total:
            self._drop(of)
            raise ProtocolError(
                f"message {of}: part {n} says {total} parts, part 0 said "
                f"{partial.total}"
            )
        elif n != len(partial.texts):
            expected = len(partial.texts)
            self._drop(of)
            what = "repeated" if n < expected else "arrived early (a part is missing)"
            raise ProtocolError(f"message {of}: part {n} {what}; expected {expected}")

        if self._chars + len(text) > self.max_chars:
            self._drop(of)
            raise ProtocolError(
                f"message {of}: more than {self.max_chars} characters buffered"
            )
        partial.texts.append(text)
        partial.chars += len(text)
        partial.last_seen = now
        self._chars += len(text)
        if len(partial.texts) < partial.total:
            return None
        del self._pending[of]
        self._chars -= partial.chars
        return "".join(partial.texts)

    def _expire(self, now: float) -> None:
        stale = [
            of
            for of, partial in self._pending.items()
            if now - partial.last_seen > self.max_age
        ]
        for of in stale:
            self._drop(of)

    def _drop(self, of: str) -> None:
        partial = self._pending.pop(of)
        self._chars -= partial.chars
        self._discard(of)

    def _discard(self, of: str) -> None:
        self.dropped += 1
        self._discarded[of] = None
        while len(self._discarded) > self._DISCARDED_MEMORY:
            self._discarded.popitem(last=False)


def _read_part(part: Mapping[str, object]) -> tuple[str, int, int, str]:
    of = part.get("of")
    n = part.get("n")
    total = part.get("total")
    text = part.get("text")
    if not _is_id(of):
        raise ProtocolError(f"part: of {_ID_RULE}")
    if (
        isinstance(n, bool)
        or isinstance(total, bool)
        or not isinstance(n, int)
        or not isinstance(total, int)
        or not 0 <= n < total
    ):
        raise ProtocolError(
            f"message {of}: n and total must be integers, 0 <= n < total"
        )
    if not isinstance(text, str):
        raise ProtocolError(f"message {of}: text must be a string")
    return of, n, total, text
