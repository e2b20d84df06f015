"""Real agents built with ``BedrockAgentCoreApp`` (PyPI ``bedrock-agentcore``).

Each factory returns a fresh ASGI app to run with ``stack.asgi_agent``; the
module constants are what the agents send, so a test can compare the exact
bytes that came through the emulator or the bridge::

    with asgi_agent(streaming_agent()) as agent_url, \\
            agentcore_emulator(agent_url) as emulator:
        ...
        assert body == STREAMING_SSE
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from bedrock_agentcore.runtime import BedrockAgentCoreApp, RequestContext

__all__ = [
    "FAILING_ERROR",
    "FAILING_ITEMS",
    "STREAMING_ITEMS",
    "WS_CLOSE_PREFIX",
    "failing_agent",
    "failing_sse",
    "raising_agent",
    "returning_agent",
    "sse_bytes",
    "streaming_agent",
    "websocket_agent",
]

#: What the streaming agent yields; the last item names the session.
STREAMING_ITEMS: list[Any] = ["Hello", " from", " a", " real", " agent", {"n": 1.5}]
#: What the failing agent yields before it raises ``FAILING_ERROR``.
FAILING_ITEMS = ["partial", " answer"]
FAILING_ERROR = "the model call failed"
#: A text frame starting with this makes the WebSocket agent close with the
#: code that follows, e.g. ``close:4001``.
WS_CLOSE_PREFIX = "close:"


def sse_bytes(items: list[Any]) -> bytes:
    """The body ``BedrockAgentCoreApp`` streams for ``items``."""
    return b"".join(
        f"data: {json.dumps(item, ensure_ascii=False)}\n\n".encode() for item in items
    )


def streaming_agent() -> BedrockAgentCoreApp:
    """Yields ``STREAMING_ITEMS`` then ``{"session": <session id>}``."""
    app = BedrockAgentCoreApp()

    @app.entrypoint
    async def invoke(
        payload: dict[str, Any], context: RequestContext
    ) -> AsyncIterator[Any]:
        for item in STREAMING_ITEMS:
            yield item
        yield {"session": context.session_id, "prompt": payload.get("prompt")}

    return app


def returning_agent() -> BedrockAgentCoreApp:
    """Returns one JSON value: ``{"answer": ..., "session": ...}``."""
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def invoke(payload: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        return {
            "answer": f"You said: {payload.get('prompt')}",
            "session": context.session_id,
        }

    return app


def failing_agent() -> BedrockAgentCoreApp:
    """A sync generator that yields ``FAILING_ITEMS`` and then raises."""
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def invoke(payload: dict[str, Any]) -> Iterator[str]:
        yield from FAILING_ITEMS
        raise RuntimeError(FAILING_ERROR)

    return app


def raising_agent() -> BedrockAgentCoreApp:
    """Raises ``FAILING_ERROR`` before answering: the app answers 500."""
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(FAILING_ERROR)

    return app


def failing_sse() -> bytes:
    """The exact body of a ``failing_agent`` answer."""
    error = {
        "error": FAILING_ERROR,
        "error_type": "RuntimeError",
        "message": "An error occurred during streaming",
    }
    return sse_bytes([*FAILING_ITEMS, error])


def websocket_agent() -> BedrockAgentCoreApp:
    """Greets with ``{"session": <id>}``, then echoes text and binary frames.

    ``close:<code>`` makes it close the connection with that code.
    """
    app = BedrockAgentCoreApp()

    @app.websocket
    async def chat(websocket: Any, context: RequestContext) -> None:
        await websocket.accept()
        await websocket.send_text(json.dumps({"session": context.session_id}))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                if text.startswith(WS_CLOSE_PREFIX):
                    await websocket.close(code=int(text[len(WS_CLOSE_PREFIX) :]))
                    return
                await websocket.send_text(text)
            elif message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])

    return app
