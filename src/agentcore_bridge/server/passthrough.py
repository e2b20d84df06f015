"""The pass-through route: a client WebSocket joined to the agent's own ``/ws``.

The bridge opens AgentCore's ``/runtimes/{arn}/ws`` with a SigV4-signed
upgrade request (or a presigned URL) for the client's session, then copies
messages both ways unchanged, text as text and binary as binary. Nothing of
protocol v1 applies: the frames are the agent's own.

Close codes cross over: when one side closes with a code a close frame may
carry, the other side is closed with the same code and reason. When a side
disappears without a close frame, the other gets 1001 (the client went
away) or 1011 (the agent's connection failed). Both legs are pinged every
``BRIDGE_PING_INTERVAL`` seconds of silence.

Backpressure is TCP's own: a copy loop that cannot send (the reader on the
other side is slow) stops reading its source. A client that reads nothing
for ``BRIDGE_SLOW_CLIENT_TIMEOUT`` while messages wait is closed with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import WSMsgType, web

from .sockets import CLOSE_TIMEOUT, ClientSocket, close_reason

if TYPE_CHECKING:
    from .app import BridgeServer

__all__ = [
    "Passthrough",
    "client_left",
    "forwardable_close_code",
    "refuse_after_upgrade",
]

logger = logging.getLogger("agentcore_bridge.server")

# Close codes a close frame may carry (RFC 6455 section 7.4 and the IANA
# registry): the defined ones except 1004 (reserved), 1005, 1006 and 1015
# (which only report what happened), plus the 3000-4999 application range.
_SENDABLE_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def forwardable_close_code(code: int | None, fallback: int) -> int:
    """``code`` if a close frame may carry it, else ``fallback``.

    1005 (a close frame without a code) is a normal closure: 1000.
    """
    if code == 1005:
        return 1000
    if code is not None and (code in _SENDABLE_CLOSE_CODES or 3000 <= code <= 4999):
        return code
    return fallback


class Passthrough:
    """One client WebSocket joined to one agent WebSocket, until either closes."""

    def __init__(
        self,
        server: BridgeServer,
        client: ClientSocket,
        agent: aiohttp.ClientWebSocketResponse[bool],
        *,
        connection_id: str,
        session_id: str,
    ) -> None:
        self.server = server
        self.client = client
        self.agent = agent
        self.id = connection_id
        self.session_id = session_id
        self.messages_to_agent = 0
        self.messages_to_client = 0
        self._ending: tuple[int, str, int] | None = None
        self._client_too_big = False
        client.on_stalled = self._on_stalled

    async def run(self) -> tuple[str, int | None]:
        """Copy both ways until one side closes; close the other side.

        Returns which side ended it (``client``, ``agent`` or ``server``) and
        the close code that side used.
        """
        to_agent = asyncio.ensure_future(self._client_to_agent())
        to_client = asyncio.ensure_future(self._agent_to_client())
        try:
            done, _ = await asyncio.wait(
                {to_agent, to_client}, return_when=asyncio.FIRST_COMPLETED
            )
            if self._ending is not None:
                client_code, reason, agent_code = self._ending
                await asyncio.gather(
                    self.client.close(client_code, reason),
                    self._close_agent(agent_code, reason),
                )
                return "server", client_code
            if to_agent in done:
                code, reason = to_agent.result()
                if self._client_too_big:
                    # aiohttp closed the client with 1009; for the agent, the
                    # client went away.
                    await self._close_agent(1001, "")
                    return "client", 1009
                # Without a close frame the client went away, too.
                await self._close_agent(forwardable_close_code(code, 1001), reason)
                await self.client.close(1000, "")
                return "client", code
            code, reason = to_client.result()
            await self.client.close(forwardable_close_code(code, 1011), reason)
            await self._close_agent(1000, "")
            return "agent", code
        finally:
            for task in (to_agent, to_client):
                task.cancel()
            await asyncio.gather(to_agent, to_client, return_exceptions=True)
            await self._close_agent(1001, "")

    async def _client_to_agent(self) -> tuple[int | None, str]:
        ws = self.client.ws
        try:
            while True:
                message = await ws.receive()
                if message.type == WSMsgType.TEXT:
                    await self.agent.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await self.agent.send_bytes(message.data)
                elif message.type == WSMsgType.CLOSE:
                    return message.data, message.extra or ""
                elif message.type == WSMsgType.ERROR:
                    code = getattr(message.data, "code", None)
                    if code == 1009:
                        logger.warning(
                            "pass-through %s: closed with 1009: a client message "
                            "over %d bytes",
                            self.id,
                            self.server.settings.passthrough_max_frame_bytes,
                        )
                        self._client_too_big = True
                    return None, ""
                else:
                    return ws.close_code, ""
                self.messages_to_agent += 1
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return None, ""

    async def _agent_to_client(self) -> tuple[int | None, str]:
        try:
            while True:
                message = await self.agent.receive()
                if message.type == WSMsgType.TEXT:
                    await self.client.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await self.client.send_bytes(message.data)
                elif message.type == WSMsgType.CLOSE:
                    return message.data, message.extra or ""
                elif message.type == WSMsgType.ERROR:
                    code = getattr(message.data, "code", None)
                    if code == 1009:
                        logger.warning(
                            "pass-through %s: the agent sent a message over %d bytes",
                            self.id,
                            self.server.settings.passthrough_max_frame_bytes,
                        )
                        return 1011, "the agent sent a message that is too big"
                    return None, ""
                else:
                    return self.agent.close_code, ""
                self.messages_to_client += 1
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return None, ""

    async def _close_agent(self, code: int, reason: str) -> None:
        if self.agent.closed:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.agent.close(code=code, message=close_reason(reason)), 2.0
            )

    def end(self, client_code: int, reason: str, agent_code: int) -> None:
        """Close both sides (shutdown, slow client): the client with ``client_code``."""
        if self._ending is not None:
            return
        self._ending = (client_code, reason, agent_code)
        # Closing the client's socket ends the copy loop reading it.
        self.client.start_close(client_code, reason)

    def going_away(self) -> None:
        """The server shuts down: both sides get 1001."""
        self.end(1001, "the server is shutting down; reconnect", 1001)

    def _on_stalled(self) -> None:
        logger.warning(
            "pass-through %s: the client read nothing for %.0f s while messages "
            "waited; closing it with 1008",
            self.id,
            self.server.settings.slow_client_timeout,
        )
        self.end(1008, "the client did not read its messages in time", 1001)


async def refuse_after_upgrade(
    request: web.Request,
    server: BridgeServer,
    protocols: list[str],
    code: int,
    reason: str,
    *,
    close_timeout: float = CLOSE_TIMEOUT,
) -> web.StreamResponse:
    """Complete the upgrade only to close at once with ``code`` and ``reason``.

    Browsers see neither the status nor the body of a refused upgrade, only
    close code 1006; a close frame tells them what happened. A client that
    has not answered it within ``close_timeout`` seconds is dropped.
    """
    try:
        socket = await server.accept_socket(request, protocols)
    except ConnectionResetError:
        return client_left(request)
    await socket.close(code, reason, timeout=close_timeout)
    return socket.ws


def client_left(request: web.Request) -> web.Response:
    """The answer to an upgrade whose client disconnected before it completed.

    aiohttp raises :class:`ConnectionResetError` from the upgrade then, and
    would log it as an error in the handler; nothing is wrong with the
    server. The response is never sent (499, "client closed request", is
    what the access log shows).
    """
    logger.info(
        "a client from %s left before its WebSocket upgrade completed",
        request.remote,
    )
    return web.Response(status=499)
