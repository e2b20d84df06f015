"""Server-sent events, parsed incrementally, and the agent events inside them.

Two layers, both without I/O:

- :class:`SSEParser` turns bytes, in chunks of any size, into
  :class:`ServerSentEvent` objects, following the WHATWG HTML standard's
  "event stream interpretation" (section 9.2.6): UTF-8 with a leading BOM
  ignored, lines ended by CR, LF or CRLF, ``field: value`` lines with one
  leading space removed from the value, comments starting with ``:``, and an
  event dispatched by each blank line when its data is not empty. A chunk
  may end anywhere: inside a line, between CR and LF, inside a UTF-8
  sequence.
- :class:`AgentStreamDecoder` reads a whole InvokeAgentRuntime answer. The
  answer is the agent container's own bytes, so it understands the shapes
  agents actually send: the Python ``BedrockAgentCoreApp`` streams one
  ``data: <json>`` per yielded item, with no end marker, and reports a
  failure as a last ``data: {"error": ..., "error_type": ..., "message":
  ...}``; the TypeScript app ends with ``event: done`` and reports
  ``event: error``; a non-streaming agent answers ``application/json``.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable

from ._value import Value
from .exceptions import AgentError, ProtocolError

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_EVENT_SIZE",
    "AgentEvent",
    "AgentStreamDecoder",
    "SSEParser",
    "ServerSentEvent",
    "agent_error_from",
    "parse_events",
]

#: The largest event (or unfinished line) a parser holds, in characters.
#: AgentCore streams chunks of up to 10 MB; anything larger is refused
#: rather than buffered without bound.
DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024
#: The largest non-streamed answer held in memory: AgentCore's 100 MB
#: payload limit.
DEFAULT_MAX_BODY_SIZE = 100_000_000

_LINE_END = r"\r\n|\r|\n"
_BOM = "\ufeff"


# A plain class rather than a NamedTuple, for import time (see _value).
class ServerSentEvent(Value):
    """One dispatched event: its type, its data and the last event id.

    ``event`` is ``"message"`` when the stream named no type. ``data`` joins
    the event's ``data:`` lines with ``\\n``. ``id`` is the last event id
    seen so far in the stream (it carries over to later events, as the
    standard says), ``""`` when none was set.
    """

    __slots__ = ("data", "event", "id")
    _fields = ("data", "event", "id")

    def __init__(self, data: str, event: str = "message", id: str = "") -> None:
        self.data = data
        self.event = event
        self.id = id


class SSEParser:
    """An incremental parser for ``text/event-stream``.

    Call :meth:`feed` with each chunk of bytes as it arrives; it returns the
    events completed by that chunk, in order. At the end of the stream call
    :meth:`close`: as the standard requires, an event not ended by a blank
    line is discarded. ``retry`` holds the last ``retry:`` value (ms), if any.

    Raises :class:`~agentcore_bridge.exceptions.ProtocolError` when one event
    or line grows beyond ``max_event_size`` characters.
    """

    def __init__(self, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self.retry: int | None = None
        self._max = max_event_size
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False
        # A chunk ended with CR: a LF at the start of the next one belongs
        # to the same line end.
        self._after_cr = False
        self._partial: list[str] = []
        self._partial_size = 0
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._last_id = ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk``; return the events it completed."""
        return self._feed_text(self._decoder.decode(chunk))

    def close(self) -> list[ServerSentEvent]:
        """End the stream; return what the last bytes completed.

        Bytes of an unfinished UTF-8 sequence decode to U+FFFD; an
        unfinished event is dropped.
        """
        events = self._feed_text(self._decoder.decode(b"", final=True))
        self._partial.clear()
        self._partial_size = 0
        self._data.clear()
        self._data_size = 0
        self._event = ""
        return events

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith(_BOM):
                text = text[1:]
        if self._after_cr:
            self._after_cr = False
            if text.startswith("\n"):
                text = text[1:]
        if not text:
            return []

        # Most chunks of a long line carry no line end: keep them aside
        # without joining, so a line in many pieces costs linear time.
        if "\n" not in text and "\r" not in text:
            self._keep_partial(text)
            return []
        if self._partial:
            text = "".join(self._partial) + text
            self._partial.clear()
            self._partial_size = 0

        lines = re.split(_LINE_END, text)
        rest = lines.pop()
        self._after_cr = text.endswith("\r")
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        if rest:
            self._keep_partial(rest)
        return events

    def _keep_partial(self, text: str) -> None:
        self._partial.append(text)
        self._partial_size += len(text)
        if self._partial_size + self._data_size > self._max:
            raise ProtocolError(f"server-sent event larger than {self._max} characters")

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]

        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                raise ProtocolError(
                    f"server-sent event larger than {self._max} characters"
                )
        elif name == "event":
            self._event = value
        elif name == "id":
            # The standard ignores an id containing NULL: it could not be
            # sent back in a Last-Event-ID header.
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        # An event without data lines is not dispatched even when it names an
        # event kind; the standard empties the buffers and waits for more.
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(
            "\n".join(self._data), self._event or "message", self._last_id
        )
        self._data.clear()
        self._data_size = 0
        self._event = ""
        return event


def parse_events(chunks: Iterable[bytes]) -> list[ServerSentEvent]:
    """Every event of a complete stream given as chunks (for tests and tools)."""
    parser = SSEParser()
    events = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


# The agent layer.


# A plain class rather than a NamedTuple, for import time (see _value).
class AgentEvent(Value):
    """One piece of agent output.

    ``data`` is the JSON value of the event's data, or its text when that
    is not JSON (the TypeScript app sends plain strings unquoted). ``event``
    and ``id`` are the SSE event type and last event id (``"message"`` and
    ``""`` for a JSON answer).
    """

    __slots__ = ("data", "event", "id")
    _fields = ("data", "event", "id")

    def __init__(self, data: Any, event: str = "message", id: str = "") -> None:
        self.data = data
        self.event = event
        self.id = id


def agent_error_from(value: Any) -> AgentError:
    """The :class:`AgentError` for the data of an agent's error event.

    Understands ``{"error": text, "error_type": name, "message": text}``
    (Python ``BedrockAgentCoreApp``), ``{"error": text}`` (TypeScript app),
    ``{"message": text}`` and plain text.
    """
    if isinstance(value, dict):
        error_type = value.get("error_type") or value.get("type") or "AgentError"
        detail = value.get("error") or value.get("message") or "the agent failed"
        if not isinstance(detail, str):
            detail = json.dumps(detail)
        return AgentError(str(error_type), detail)
    if isinstance(value, str) and value:
        return AgentError("AgentError", value)
    return AgentError("AgentError", "the agent failed")


def _is_python_app_error(value: Any) -> bool:
    # The exact shape BedrockAgentCoreApp writes when the handler raises
    # mid-stream; requiring both names keeps ordinary output that merely
    # has an "error" key from being taken for a failure.
    return (
        isinstance(value, dict)
        and "error" in value
        and "error_type" in value
        and set(value) <= {"error", "error_type", "message"}
    )


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class AgentStreamDecoder:
    """Turns the body of an InvokeAgentRuntime answer into agent events.

    Give it the answer's ``Content-Type``; :meth:`feed` each chunk of the
    body and deliver the events it returns, then call :meth:`close` at the
    end of the body. After each call check :attr:`error`: when the agent
    reported a failure, ``feed``/``close`` return the events before it and
    set ``error`` to the :class:`AgentError` to raise next; :attr:`finished`
    turns true at the end marker (``event: done``) or the failure, after
    which input is ignored.

    A ``text/event-stream`` answer is parsed as it arrives (events up to
    ``max_event_size`` characters); any other answer (``application/json``)
    is buffered, up to ``max_body_size`` bytes, and becomes one event at
    ``close``. Either limit exceeded raises
    :class:`~agentcore_bridge.exceptions.ProtocolError`.
    """

    def __init__(
        self,
        content_type: str | None,
        *,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        self.streaming = media_type == "text/event-stream"
        self.error: AgentError | None = None
        self.finished = False
        self._max_body = max_body_size
        self._parser = SSEParser(max_event_size=max_event_size)
        self._body: list[bytes] = []
        self._body_size = 0

    def feed(self, chunk: bytes) -> list[AgentEvent]:
        """Decode ``chunk``; return the agent events it completed."""
        if self.finished:
            return []
        if not self.streaming:
            self._body.append(chunk)
            self._body_size += len(chunk)
            if self._body_size > self._max_body:
                raise ProtocolError(f"agent answer larger than {self._max_body} bytes")
            return []
        return self._agent_events(self._parser.feed(chunk))

    def close(self) -> list[AgentEvent]:
        """End of the body: return the last events."""
        if self.finished:
            return []
        if self.streaming:
            events = self._agent_events(self._parser.close())
            self.finished = True
            return events
        self.finished = True
        body = b"".join(self._body)
        self._body.clear()
        if not body:
            return []
        text = body.decode("utf-8", errors="replace")
        value = _json_or_text(text)
        if _is_python_app_error(value):
            self.error = agent_error_from(value)
            return []
        return [AgentEvent(value)]

    def _agent_events(self, events: list[ServerSentEvent]) -> list[AgentEvent]:
        out = []
        for event in events:
            value = _json_or_text(event.data)
            if event.event == "error" or (
                event.event == "message" and _is_python_app_error(value)
            ):
                self.error = agent_error_from(value)
                self.finished = True
                break
            if event.event == "done":
                self.finished = True
                break
            out.append(AgentEvent(value, event.event, event.id))
        return out
