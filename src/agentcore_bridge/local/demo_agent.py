"""A demo agent that follows the AgentCore Runtime container contract.

It answers the way an agent built with ``BedrockAgentCoreApp`` (PyPI
``bedrock-agentcore``) does, without a model behind it:

- ``POST /invocations`` takes a JSON payload such as ``{"prompt": "hi"}``
  and streams the answer word by word as server-sent events, one
  ``data: <json>\\n\\n`` event per word, strings JSON-quoted, no end marker,
  ``Content-Type: text/event-stream; charset=utf-8``.
- ``GET /ping`` answers ``{"status": "Healthy", "time_of_last_update": <unix s>}``.
- ``/ws`` is a WebSocket chat: binary frames come back unchanged, a JSON
  text frame with a ``prompt`` is answered word by word, other text frames
  are echoed.

Every answer names the turn of its session (counted per value of the
``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` header that AgentCore
forwards), so a resumed session is visible: "Turn 2 of this session".

Test knobs in the invocation payload (all optional):

==================  ======================================================
``words``           append N filler words (a long answer), at most 1,000,000
``size``            append filler text of exactly N characters, sent in
                    events of ``chunk`` characters (default 1024), at
                    most 100,000,000 (AgentCore's response limit)
``fail_after``      after K events, send the ``BedrockAgentCoreApp`` error
                    event ``{"error", "error_type", "message"}`` and stop
``json``            answer once with ``application/json`` instead of SSE
``delay``           seconds between events, overriding ``--word-delay``
``status``          answer with this HTTP status and a JSON error body
``echo_headers``    (with ``json``) include the request headers received
==================  ======================================================

Run it with ``agentcore-bridge demo-agent --port 8080``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from ..agentcore import SESSION_ID_HEADER
from ..sessions import session_fingerprint
from ._serve import serve

__all__ = ["create_demo_agent_app", "main"]

logger = logging.getLogger("agentcore_bridge.local")

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"

# BedrockAgentCoreApp's fixed text for a failure inside a stream.
_STREAM_ERROR_MESSAGE = "An error occurred during streaming"
_MAX_TRACKED_SESSIONS = 10_000
_FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing")
# The knobs come from whoever calls the agent (a browser, in the demo):
# bounded, so that one payload cannot make the agent hold gigabytes.
_MAX_WORDS = 1_000_000
_MAX_SIZE = 100_000_000  # AgentCore's response payload limit
# RFC 6455 section 7.4: codes that never go in a close frame.
_UNSENDABLE_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})


class _DemoAgent:
    """The agent's state: the start time and a turn counter per session."""

    def __init__(self, word_delay: float) -> None:
        self.word_delay = word_delay
        self.time_of_last_update = int(time.time())
        self._turns: dict[str, int] = {}

    def next_turn(self, session_id: str | None) -> int:
        """Count one more turn for ``session_id`` (every call is turn 1 without one)."""
        if not session_id:
            return 1
        turn = self._turns.pop(session_id, 0) + 1
        if len(self._turns) >= _MAX_TRACKED_SESSIONS:
            # Forget the least recently used session: dicts keep insertion
            # order and every turn re-inserts its session at the end.
            del self._turns[next(iter(self._turns))]
        self._turns[session_id] = turn
        return turn


_AGENT_KEY = web.AppKey("demo_agent", _DemoAgent)


def create_demo_agent_app(*, word_delay: float = 0.02) -> web.Application:
    """Build the demo agent; ``word_delay`` is the pause between streamed words."""
    app = web.Application()
    app[_AGENT_KEY] = _DemoAgent(word_delay)
    app.router.add_post("/invocations", _invocations)
    app.router.add_get("/ping", _ping)
    app.router.add_get("/ws", _websocket)
    return app


async def _ping(request: web.Request) -> web.Response:
    agent = request.app[_AGENT_KEY]
    body = {"status": "Healthy", "time_of_last_update": agent.time_of_last_update}
    return web.json_response(body)


async def _invocations(request: web.Request) -> web.StreamResponse:
    agent = request.app[_AGENT_KEY]
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        # The same answer BedrockAgentCoreApp gives to a body that is not JSON.
        return web.json_response(
            {"error": "Invalid JSON", "details": "the body is not JSON"}, status=400
        )
    if not isinstance(payload, dict):
        payload = {"prompt": payload}

    session_id = request.headers.get(SESSION_ID_HEADER)
    turn = agent.next_turn(session_id)
    # A session id is a secret; the logs carry its fingerprint.
    logger.info(
        "demo agent: turn %d of session %s",
        turn,
        session_fingerprint(session_id) if session_id else "(none)",
    )

    status = _int_knob(payload, "status", 0)
    if status >= 400:
        return web.json_response(
            {"error": f"the demo agent was asked to fail with {status}"},
            status=status,
        )

    count, pieces = _answer(payload, turn, session_id is not None)
    delay = _float_knob(payload, "delay", agent.word_delay)
    if payload.get("json"):
        body: dict[str, Any] = {
            "answer": "".join(pieces),
            "turn": turn,
            "session_id": session_id,
        }
        if payload.get("echo_headers"):
            body["headers"] = dict(request.headers)
        return web.Response(
            body=_json_bytes(body),
            headers={"Content-Type": JSON_CONTENT_TYPE},
        )

    response = web.StreamResponse(headers={"Content-Type": SSE_CONTENT_TYPE})
    await response.prepare(request)
    fail_after = _int_knob(payload, "fail_after", -1)
    if fail_after >= 0:
        count = min(count, fail_after)
        pieces = itertools.islice(pieces, fail_after)
    sent = 0
    try:
        for piece in pieces:
            if sent and delay > 0:
                await asyncio.sleep(delay)
            await response.write(_sse(piece))
            sent += 1
        if fail_after >= 0:
            await response.write(_sse(_error_event(count)))
        await response.write_eof()
    except ConnectionError:
        # The caller stopped reading (a cancelled invocation): an agent
        # stops working on the answer, it is no failure of its own.
        logger.info(
            "demo agent: the caller went away after %d of %d events",
            sent,
            count,
        )
    return response


def _answer(
    payload: dict[str, Any], turn: int, has_session: bool
) -> tuple[int, Iterator[str]]:
    """How many pieces the answer has, and the pieces, made as they are sent.

    Joined, the pieces read as one text. They are generated lazily, so a
    long answer costs memory for one piece at a time, not for all of it.
    """
    prompt = payload.get("prompt", "")
    if not isinstance(prompt, str):
        prompt = json.dumps(prompt, ensure_ascii=False)
    opening = f"Turn {turn} of this session." if has_session else "No session."
    words = f"{opening} You said: {prompt}".split()
    extra = min(max(_int_knob(payload, "words", 0), 0), _MAX_WORDS)
    size = min(max(_int_knob(payload, "size", 0), 0), _MAX_SIZE)
    chunk = min(max(1, _int_knob(payload, "chunk", 1024)), max(size, 1))
    count = len(words) + extra + -(-size // chunk)

    def pieces() -> Iterator[str]:
        yield words[0]
        for word in words[1:]:
            yield " " + word
        for i in range(extra):
            yield " " + _FILLER[i % len(_FILLER)]
        # Lines of 63 "x" and a newline; any piece of them is a slice of
        # this tile, which is only a little longer than one chunk.
        tile = ("x" * 63 + "\n") * (chunk // 64 + 2)
        for start in range(0, size, chunk):
            offset = start % 64
            yield tile[offset : offset + min(chunk, size - start)]

    return count, pieces()


def _error_event(after: int) -> dict[str, str]:
    return {
        "error": f"the demo agent was asked to fail after {after} events",
        "error_type": "DemoAgentError",
        "message": _STREAM_ERROR_MESSAGE,
    }


def _sse(value: object) -> bytes:
    return b"data: " + _json_bytes(value) + b"\n\n"


def _json_bytes(value: object) -> bytes:
    """``value`` as UTF-8 JSON, readable non-ASCII text kept as it is.

    A lone surrogate (a prompt holding ``"\\ud800"``) has no UTF-8 form;
    it can only stand inside a JSON string, where the backslash escape that
    ``backslashreplace`` writes is the JSON escape of the same character.
    """
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace")


def _int_knob(payload: dict[str, Any], name: str, default: int) -> int:
    value = payload.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float_knob(payload: dict[str, Any], name: str, default: float) -> float:
    value = payload.get(name, default)
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value < math.inf
    ):
        return float(value)
    return default


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    """Chat over one WebSocket.

    Binary frames are echoed unchanged. A text frame holding a JSON object
    with ``prompt`` is answered with one ``{"type": "chunk", "data": ...}``
    frame per word and a final ``{"type": "end", "turn": n}``; one with
    ``close`` (a close code that may be sent: 1000 to 4999, not 1004,
    1005, 1006 or 1015) and optional ``reason`` (at most 123 bytes) makes
    the agent close the connection with that code. Any other text frame is
    echoed.
    """
    agent = request.app[_AGENT_KEY]
    session_id = request.headers.get(SESSION_ID_HEADER)
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)

    try:
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
            elif message.type is WSMsgType.TEXT:
                command = _json_object(message.data)
                close = _close_command(command)
                if close is not None:
                    await ws.close(code=close[0], message=close[1])
                    break
                if command is not None and "prompt" in command:
                    await _chat(ws, agent, command, session_id)
                else:
                    await ws.send_str(message.data)
    except ConnectionError:
        # The client left in the middle of an answer.
        logger.info("demo agent: a WebSocket client went away mid-answer")
    return ws


async def _chat(
    ws: web.WebSocketResponse,
    agent: _DemoAgent,
    command: dict[str, Any],
    session_id: str | None,
) -> None:
    turn = agent.next_turn(session_id)
    delay = _float_knob(command, "delay", agent.word_delay)
    _, pieces = _answer(command, turn, bool(session_id))
    for index, piece in enumerate(pieces):
        if index and delay > 0:
            await asyncio.sleep(delay)
        await ws.send_str(json.dumps({"type": "chunk", "data": piece}))
    await ws.send_str(json.dumps({"type": "end", "turn": turn}))


def _close_command(command: dict[str, Any] | None) -> tuple[int, bytes] | None:
    """The close code and reason asked for, if they can go in a close frame."""
    if command is None:
        return None
    code, reason = command.get("close"), str(command.get("reason", "")).encode()
    if (
        not isinstance(code, int)
        or isinstance(code, bool)
        or not 1000 <= code <= 4999
        or code in _UNSENDABLE_CLOSE_CODES
        or len(reason) > 123
    ):
        return None
    return code, reason


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def main(argv: Sequence[str]) -> int:
    """``agentcore-bridge demo-agent``: serve the demo agent until interrupted."""
    parser = argparse.ArgumentParser(
        prog="agentcore-bridge demo-agent",
        description="Run a demo agent that follows the AgentCore container contract.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    parser.add_argument("--port", type=int, default=8080, help="default 8080")
    parser.add_argument(
        "--word-delay",
        type=float,
        default=0.02,
        metavar="SECONDS",
        help="pause between streamed words (default 0.02)",
    )
    args = parser.parse_args(argv)
    app = create_demo_agent_app(word_delay=args.word_delay)

    def ready(url: str) -> None:
        print(f"demo agent listening on {url}", flush=True)  # noqa: T201

    return serve(
        app, args.host, args.port, ready, program="agentcore-bridge demo-agent"
    )
