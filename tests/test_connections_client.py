"""The @connections client over real sockets: the API Gateway emulator and http.server.

The emulator checks the SigV4 signatures and answers with AWS's statuses
and error names; a scripted ``http.server`` plays the answers the emulator
cannot be asked for on demand (429 then 200, 5xx) and counts connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agentcore_bridge.agentcore import Retries, Timeouts
from agentcore_bridge.connections import endpoint_from_event
from agentcore_bridge.credentials import Credentials
from agentcore_bridge.exceptions import (
    ConnectionsError,
    ForbiddenError,
    GoneError,
    PayloadTooLargeError,
    ThrottledError,
    TimeoutError,
    TransportError,
)
from agentcore_bridge.sync.connections import DEFAULT_RETRIES, ConnectionsClient
from apigw_stack import Gateway, local_apigw

HANDLERS = Path(__file__).parent / "handlers_lambda"
EVENTS = Path(__file__).parent / "apigw_events"
FAST = Retries(max_attempts=4, base_delay=0.01, max_delay=0.02)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with local_apigw("accept:handler", code_dir=str(HANDLERS)) as running:
        yield running


def client_for(gateway: Gateway, **options: Any) -> ConnectionsClient:
    options.setdefault("credentials", gateway.credentials)
    return ConnectionsClient(gateway.connections_url, region=gateway.region, **options)


def open_connection_id(gateway: Gateway) -> str:
    (only,) = [c for c in gateway.stats()["connections"] if c["state"] == "open"]
    return str(only["connectionId"])


def test_posts_reach_the_client_as_text_messages(gateway: Gateway) -> None:
    client = client_for(gateway)

    async def session() -> list[Any]:
        async with connect(gateway.ws_url) as ws:
            connection_id = open_connection_id(gateway)
            client.post(connection_id, '{"type":"pong","id":"é"}')
            client.post(connection_id, b'{"type":"pong","id":null}')
            return [await ws.recv(), await ws.recv()]

    assert asyncio.run(session()) == [
        '{"type":"pong","id":"é"}',
        '{"type":"pong","id":null}',
    ]


def test_get_describes_and_delete_closes_then_the_connection_is_gone(
    gateway: Gateway,
) -> None:
    client = client_for(gateway)

    async def session() -> tuple[dict[str, Any], int, str]:
        async with connect(gateway.ws_url) as ws:
            connection_id = open_connection_id(gateway)
            described = client.get(connection_id)
            client.delete(connection_id)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return described, closed.value.rcvd.code, connection_id

    described, code, connection_id = asyncio.run(session())
    assert described["identity"]["sourceIp"] == "127.0.0.1"
    assert set(described) >= {"connectedAt", "lastActiveAt"}
    assert code == 1000
    for call in (
        lambda: client.post(connection_id, "x"),
        lambda: client.get(connection_id),
    ):
        with pytest.raises(GoneError) as gone:
            call()
        assert (gone.value.status, gone.value.error_type) == (410, "GoneException")
        assert gone.value.retryable is False


def test_an_unknown_connection_is_gone_at_once(gateway: Gateway) -> None:
    """410 is never retried: the sleep the client would use is never called."""
    naps: list[float] = []
    client = client_for(gateway, sleep=naps.append, retries=FAST)
    with pytest.raises(GoneError):
        client.post("AAAAAAAAAAAAAAA=", "x")
    assert naps == []


def test_payload_over_128_kib_is_too_large(gateway: Gateway) -> None:
    client = client_for(gateway)

    async def session() -> int:
        async with connect(gateway.ws_url, max_size=None) as ws:
            connection_id = open_connection_id(gateway)
            client.post(connection_id, "a" * 131072)
            with pytest.raises(PayloadTooLargeError) as too_large:
                client.post(connection_id, "a" * 131073)
            assert too_large.value.status == 413
            return len(await ws.recv())

    assert asyncio.run(session()) == 131072


def test_a_wrong_secret_is_forbidden(gateway: Gateway) -> None:
    wrong = Credentials(gateway.credentials.access_key_id, "not-the-secret")
    client = client_for(gateway, credentials=wrong)
    with pytest.raises(ForbiddenError) as forbidden:
        client.post("AAAAAAAAAAAAAAA=", "x")
    assert forbidden.value.status == 403


def test_the_endpoint_comes_from_api_id_and_stage_not_the_domain() -> None:
    """Behind a custom domain, domainName would not serve @connections."""
    event = json.loads((EVENTS / "message.json").read_text())
    event["requestContext"]["domainName"] = "chat.example.com"
    assert endpoint_from_event(event, "us-east-1") == (
        "https://asasasas.execute-api.us-east-1.amazonaws.com/prod"
    )


# Answers the emulator does not give on demand, from a scripted server.


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next status of ``statuses`` (then 200)."""

    daemon_threads = True

    def __init__(self, statuses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses = statuses
        self.requests: list[tuple[str, str, int, bool]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/prod"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.server.lock:
            signed = self.headers.get("Authorization", "").startswith("AWS4-HMAC")
            self.server.requests.append(
                (self.command, self.path, self.client_address[1], signed)
            )
            status = self.server.statuses.pop(0) if self.server.statuses else 200
        names = {429: "LimitExceededException", 500: "InternalServerError"}
        body = json.dumps({"message": "scripted"}).encode() if status >= 400 else b""
        self.send_response(status)
        if status in names:
            self.send_header("x-amzn-ErrorType", names[status])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted([])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


CREDENTIALS = Credentials("AKIDEXAMPLE", "secret")


def test_throttling_is_retried_with_growing_jittered_waits(scripted: Scripted) -> None:
    scripted.statuses[:] = [429, 429, 429]
    naps: list[float] = []
    retries = Retries(max_attempts=5, base_delay=0.1, max_delay=1.0)
    client = ConnectionsClient(
        scripted.url,
        region="us-east-1",
        credentials=CREDENTIALS,
        retries=retries,
        sleep=naps.append,
    )
    client.post("abc=", "x")
    assert len(scripted.requests) == 4
    assert len(naps) == 3
    for retry, nap in enumerate(naps, start=1):
        assert 0 <= nap <= 0.1 * 2 ** (retry - 1)
    assert all(signed for *_, signed in scripted.requests)
    assert scripted.requests[0][1] == "/prod/@connections/abc%3D"


def test_default_retries_outlast_a_second_of_throttling(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every wait at its jitter's ceiling, the tries span a second or two."""
    scripted.statuses[:] = [429] * 20
    naps: list[float] = []
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    client = ConnectionsClient(
        scripted.url, region="us-east-1", credentials=CREDENTIALS, sleep=naps.append
    )
    with pytest.raises(ThrottledError):
        client.post("abc=", "x")
    assert len(scripted.requests) == DEFAULT_RETRIES.max_attempts
    assert 2.0 <= sum(naps) <= 5.0


def test_throttling_that_outlasts_the_retries_is_raised(scripted: Scripted) -> None:
    scripted.statuses[:] = [429] * 10
    client = ConnectionsClient(
        scripted.url,
        region="us-east-1",
        credentials=CREDENTIALS,
        retries=FAST,
        sleep=lambda _: None,
    )
    with pytest.raises(ThrottledError) as throttled:
        client.post("abc=", "x")
    assert throttled.value.retryable
    assert len(scripted.requests) == FAST.max_attempts


def test_no_retry_starts_past_the_callers_deadline(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post given a deadline raises its last error instead of waiting past it."""
    scripted.statuses[:] = [429] * 20
    naps: list[float] = []
    monkeypatch.setattr(random, "uniform", lambda low, high: high)

    def nap(seconds: float) -> None:
        naps.append(seconds)
        time.sleep(seconds)

    client = ConnectionsClient(
        scripted.url, region="us-east-1", credentials=CREDENTIALS, sleep=nap
    )
    # Waits of 0.05, 0.1, 0.2 (0.35 in all) fit in 0.5 s; 0.4 more would not.
    with pytest.raises(ThrottledError):
        client.post("abc=", "x", deadline=time.monotonic() + 0.5)
    assert naps == [0.05, 0.1, 0.2]
    assert len(scripted.requests) == 4


def test_server_errors_are_retried_then_succeed(scripted: Scripted) -> None:
    scripted.statuses[:] = [500]
    client = ConnectionsClient(
        scripted.url, region="us-east-1", credentials=CREDENTIALS, retries=FAST
    )
    client.delete("abc=")
    assert [method for method, *_ in scripted.requests] == ["DELETE", "DELETE"]


def test_other_errors_are_typed_and_not_retried(scripted: Scripted) -> None:
    scripted.statuses[:] = [400]
    client = ConnectionsClient(
        scripted.url, region="us-east-1", credentials=CREDENTIALS, retries=FAST
    )
    with pytest.raises(ConnectionsError) as failed:
        client.post("abc=", "x")
    assert failed.value.status == 400
    assert len(scripted.requests) == 1


def test_calls_reuse_one_kept_alive_connection(scripted: Scripted) -> None:
    client = ConnectionsClient(
        scripted.url, region="us-east-1", credentials=CREDENTIALS
    )
    for _ in range(3):
        client.post("abc=", "x")
    client.get("abc=")
    ports = {port for _, _, port, _ in scripted.requests}
    assert len(scripted.requests) == 4
    assert len(ports) == 1


def test_an_unreachable_endpoint_is_a_transport_error() -> None:
    server = Scripted([])
    url = server.url
    server.server_close()
    client = ConnectionsClient(
        url,
        region="us-east-1",
        credentials=CREDENTIALS,
        retries=FAST,
        sleep=lambda _: None,
    )
    with pytest.raises(TransportError):
        client.post("abc=", "x")


def test_an_endpoint_that_never_answers_is_a_bounded_wait() -> None:
    """A server that reads the request and says nothing: a timeout, not a hang."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                accepted.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    try:
        client = ConnectionsClient(
            f"http://127.0.0.1:{listener.getsockname()[1]}/prod",
            region="us-east-1",
            credentials=CREDENTIALS,
            timeouts=Timeouts(connect=1.0, first_byte=0.2, idle=0.2, total=5.0),
            retries=FAST,
            sleep=lambda _: None,
        )
        with pytest.raises(TimeoutError) as timed_out:
            client.post("abc=", "x")
        assert timed_out.value.phase == "first_byte"
        # Retried like any network failure (docs/limitations.md: a retried
        # post may arrive twice), each try bounded, then given up. The
        # kernel completes a connection before the thread accepts it, so
        # the last one may still be on its way to the list.
        deadline = time.monotonic() + 10
        while len(accepted) < FAST.max_attempts and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(accepted) == FAST.max_attempts
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
