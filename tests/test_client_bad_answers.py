"""Both AgentCore clients against a server that answers badly, over loopback.

A raw TCP server stands in for AgentCore: the first connection gets one
broken answer (a stream cut short, a bad header, an SSE line past the
limit, a reset ...), every later connection a good one. Each case checks
the error the caller gets (its class, whether the answer had started, a
message that says what went wrong without quoting the server's bytes) and
that the same client then completes a normal call: nothing is left
half-read or broken behind the failure.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentcore_bridge import AgentCoreClient, AsyncAgentCoreClient, Credentials
from agentcore_bridge.agentcore import Retries, Timeouts
from agentcore_bridge.exceptions import (
    AgentCoreError,
    AgentError,
    BridgeError,
    ProtocolError,
    TimeoutError,
    TransportError,
)
from agentcore_bridge.sse import DEFAULT_MAX_EVENT_SIZE

ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/bad_answers-1"
CREDENTIALS = Credentials("AKIDBADANSWERS000000", "not-a-real-secret")
#: Put into every broken answer; no error message may repeat it.
PEER = b"PEERBYTES"


def sse_head() -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


GOOD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Content-Length: 19\r\n\r\n"
    b'data: "recovered"\n\n'
)
#: What the server does instead of answering: reset the connection after
#: the headers and one event.
RESET = "reset"


@dataclass
class Case:
    """A broken answer and what a caller must see."""

    answer: bytes | str
    error: type[BridgeError] | None
    message: str = ""
    started: bool | None = None
    events: list[Any] = field(default_factory=list)
    #: Whether the answer is framed whole, so the server keeps the
    #: connection open for the next request, as a keep-alive server does.
    whole: bool = False


CASES = {
    "body cut mid-stream": Case(
        sse_head() + chunk(b"data: 1\n\n") + chunk(b"data: " + PEER),
        TransportError,
        "the connection closed before the end of the answer",
        started=True,
        events=[1],
    ),
    "reset mid-stream": Case(RESET, TransportError, "", started=True, events=[1]),
    "body shorter than its length": Case(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{" + PEER,
        TransportError,
        "before the end of the answer",
        started=True,
    ),
    "no answer at all": Case(
        b"",
        TransportError,
        "the server closed the connection without answering",
        started=False,
    ),
    "not HTTP": Case(
        b"SSH-2.0-" + PEER + b"\r\n\r\n",
        TransportError,
        "malformed answer",
        started=True,
    ),
    "NUL in a header": Case(
        b"HTTP/1.1 200 OK\r\nX-" + PEER + b"\x00: y\r\nContent-Length: 0\r\n\r\n",
        TransportError,
        "malformed answer",
        started=True,
    ),
    "header past every limit": Case(
        b"HTTP/1.1 200 OK\r\nX-Big: "
        + PEER * 10_000
        + b"\r\nContent-Length: 0\r\n\r\n",
        TransportError,
        "malformed answer",
        started=True,
    ),
    "bad chunk size": Case(
        sse_head() + PEER + b"\r\ndata\r\n",
        TransportError,
        "malformed answer",
        started=True,
    ),
    "SSE line past the event limit": Case(
        sse_head()
        + b"".join(
            chunk(b"data: " + b"x" * (1 << 20))
            for _ in range(DEFAULT_MAX_EVENT_SIZE // (1 << 20) + 1)
        ),
        ProtocolError,
        "server-sent event larger than",
    ),
    "error status with an HTML page": Case(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
        b"Content-Length: 22\r\n\r\n<html>" + PEER + b"</html>\r\n",
        AgentCoreError,
        "BadGateway (502): HTTP 502 with a 22-byte body",
        whole=True,
    ),
    "error event without details": Case(
        sse_head() + chunk(b'data: "a"\n\nevent: error\ndata:\n\n') + b"0\r\n\r\n",
        AgentError,
        "the agent failed",
        events=["a"],
        whole=True,
    ),
    # Not errors: what the SSE rules say these bytes mean.
    "invalid UTF-8": Case(
        sse_head() + chunk(b"data: \xff\xfeok\n\n") + b"0\r\n\r\n",
        None,
        events=["\ufffd\ufffdok"],
        whole=True,
    ),
    "lone CR line ends": Case(
        sse_head() + chunk(b"data: a\rdata: b\r\r") + b"0\r\n\r\n",
        None,
        events=["a\nb"],
        whole=True,
    ),
    "JSON answer that is not JSON": Case(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5\r\n\r\n{{{{{",
        None,
        events=["{{{{{"],
        whole=True,
    ),
}


@contextmanager
def bad_server(case: Case) -> Iterator[str]:
    """A server whose first request gets ``case.answer``, later ones GOOD.

    Connections are kept alive after GOOD and after a whole answer; a
    broken answer ends its connection, the way it was broken.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    requests = 0

    def read_request(conn: socket.socket, data: bytearray) -> bool:
        while b"\r\n\r\n" not in data:
            received = conn.recv(65536)
            if not received:
                return False
            data += received
        head, _, _ = bytes(data).partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(data) < len(head) + 4 + length:
            data += conn.recv(65536)
        del data[: len(head) + 4 + length]
        return True

    def answer(conn: socket.socket) -> None:
        nonlocal requests
        data = bytearray()
        while read_request(conn, data):
            requests += 1
            if requests > 1:
                conn.sendall(GOOD)
                continue
            if case.answer == RESET:
                conn.sendall(sse_head() + chunk(b"data: 1\n\n"))
                # Linger 0: close() sends RST instead of FIN.
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                return
            assert isinstance(case.answer, bytes)
            conn.sendall(case.answer)
            if not case.whole:
                conn.shutdown(socket.SHUT_WR)
                # Wait for the client to close its side first.
                while conn.recv(65536):
                    pass
                return

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except builtins.TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                with contextlib.suppress(OSError):
                    answer(conn)

    # accept() wakes up now and then to see whether the test is over:
    # closing a listening socket does not wake a thread blocked in it.
    listener.settimeout(0.05)
    stopping = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        thread.join()
        listener.close()


OPTIONS: dict[str, Any] = {
    "credentials": CREDENTIALS,
    "retries": Retries(max_attempts=1),
    "timeouts": Timeouts(connect=5, first_byte=5, idle=5, total=30),
}


def check(case: Case, error: BaseException | None, events: list[Any]) -> None:
    assert events == case.events
    if case.error is None:
        assert error is None
        return
    assert isinstance(error, case.error), repr(error)
    assert case.message in str(error)
    assert PEER.decode() not in str(error)
    assert PEER.decode() not in repr(error)
    if case.started is not None:
        assert isinstance(error, TransportError)
        assert error.response_started is case.started
        assert error.retryable is not case.started


def sync_call(client: AgentCoreClient) -> tuple[BaseException | None, list[Any]]:
    events: list[Any] = []
    try:
        with client.invoke({"prompt": "x"}) as stream:
            for event in stream:
                events.append(event.data)
    except BridgeError as exc:
        return exc, events
    return None, events


async def async_call(
    client: AsyncAgentCoreClient,
) -> tuple[BaseException | None, list[Any]]:
    events: list[Any] = []
    try:
        async with client.invoke({"prompt": "x"}) as stream:
            async for event in stream:
                events.append(event.data)
    except BridgeError as exc:
        return exc, events
    return None, events


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_sync_client_reports_a_bad_answer_and_keeps_working(name: str) -> None:
    case = CASES[name]
    with (
        bad_server(case) as url,
        AgentCoreClient(ARN, endpoint_url=url, **OPTIONS) as client,
    ):
        error, events = sync_call(client)
        check(case, error, events)

        assert sync_call(client) == (None, ["recovered"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_async_client_reports_a_bad_answer_and_keeps_working(name: str) -> None:
    case = CASES[name]

    async def scenario(url: str) -> None:
        async with AsyncAgentCoreClient(ARN, endpoint_url=url, **OPTIONS) as client:
            error, events = await async_call(client)
            check(case, error, events)

            assert await async_call(client) == (None, ["recovered"])

    with bad_server(case) as url:
        asyncio.run(scenario(url))


# A server that never completes the TCP handshake.


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose connections hang in the handshake: a full accept queue.

    The listener accepts nothing and its backlog holds one connection, so
    once that one is queued the kernel drops further SYNs and a connect
    waits until its timeout. Skips where the kernel behaves otherwise.
    """
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        held = []
        try:
            for _ in range(3):
                probe = socket.socket()
                probe.settimeout(0.5)
                held.append(probe)
                try:
                    probe.connect(("127.0.0.1", port))
                except builtins.TimeoutError:
                    break
            else:
                pytest.skip("this kernel completes connections past a full backlog")
            yield port
        finally:
            for probe in held:
                probe.close()


def retries_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "agentcore_bridge.agentcore"
        and record.getMessage().startswith("retrying")
    ]


CONNECT_OPTIONS: dict[str, Any] = {
    "credentials": CREDENTIALS,
    "retries": Retries(max_attempts=2, base_delay=0.01, max_delay=0.01),
    "timeouts": Timeouts(connect=0.2, first_byte=30, idle=30, total=60),
}


@pytest.mark.timeout(60)
def test_sync_client_bounds_a_hanging_connect_and_retries_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agentcore_bridge")
    with (
        unanswered_port() as port,
        AgentCoreClient(
            ARN, endpoint_url=f"http://127.0.0.1:{port}", **CONNECT_OPTIONS
        ) as client,
        pytest.raises(TimeoutError) as caught,
    ):
        client.invoke({"prompt": "x"})

    assert caught.value.phase == "connect"
    assert not caught.value.response_started
    # Nothing reached the agent, so the call was tried again, once.
    assert len(retries_logged(caplog)) == 1


@pytest.mark.timeout(60)
def test_async_client_bounds_a_hanging_connect_and_retries_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agentcore_bridge")

    async def scenario(url: str) -> BaseException | None:
        async with AsyncAgentCoreClient(ARN, endpoint_url=url, **CONNECT_OPTIONS) as c:
            error, _ = await async_call(c)
            return error

    with unanswered_port() as port:
        error = asyncio.run(scenario(f"http://127.0.0.1:{port}"))

    assert isinstance(error, TimeoutError)
    assert error.phase == "connect"
    assert not error.response_started
    assert len(retries_logged(caplog)) == 1
