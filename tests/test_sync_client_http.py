"""The pooled HTTP/1.1 transport against scripted loopback servers."""

from __future__ import annotations

import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentcore_bridge.agentcore import Timeouts
from agentcore_bridge.exceptions import ConfigurationError, TimeoutError, TransportError
from agentcore_bridge.sync.http import HTTPTransport
from client_helpers import wait_until


@dataclass
class Server:
    url: str
    connections: int = 0
    closed: int = 0
    requests: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


# A script answers one request: it gets the connection number (1, 2 ...),
# the request number on that connection and the socket, and returns whether
# to keep the connection open.
Script = Callable[[int, int, socket.socket], bool]


def read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return head


@contextmanager
def scripted_server(
    script: Script, tls: ssl.SSLContext | None = None
) -> Iterator[Server]:
    server_state = Server("")

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            with server_state.lock:
                server_state.connections += 1
                number = server_state.connections
            count = 0
            while True:
                head = read_request(conn)
                if head is None:
                    return
                count += 1
                with server_state.lock:
                    server_state.requests.append(head)
                if not script(number, count, conn):
                    conn.close()
                    with server_state.lock:
                        server_state.closed += 1
                    return

    class ThreadedServer(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = ThreadedServer(("127.0.0.1", 0), Handler)
    scheme = "https" if tls else "http"
    server_state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def always_ok(number: int, count: int, conn: socket.socket) -> bool:
    conn.sendall(OK)
    return True


def test_keep_alive_reuses_one_connection() -> None:
    with scripted_server(always_ok) as server, HTTPTransport() as transport:
        for _ in range(3):
            with transport.request("GET", server.url + "/x", {}) as response:
                assert response.read() == b"ok"
                assert response.complete
        assert server.connections == 1
        assert len(server.requests) == 3


def test_connection_closed_by_server_while_idle_is_replaced() -> None:
    """A pooled connection the server has closed is not used again."""

    def answer_then_close(number: int, count: int, conn: socket.socket) -> bool:
        conn.sendall(OK)
        return False

    with scripted_server(answer_then_close) as server, HTTPTransport() as transport:
        for n in range(1, 4):
            with transport.request("POST", server.url + "/x", {}, b"{}") as response:
                assert response.read() == b"ok"
            wait_until(lambda n=n: server.closed == n)  # type: ignore[misc]
        assert server.connections == 3
        assert len(server.requests) == 3


def test_answer_lost_on_a_reused_connection_is_reported() -> None:
    """A request the server read but never answered is not sent again."""

    def drop_second(number: int, count: int, conn: socket.socket) -> bool:
        if count == 2:
            return False
        conn.sendall(OK)
        return True

    with scripted_server(drop_second) as server, HTTPTransport() as transport:
        with transport.request("GET", server.url + "/", {}) as response:
            response.read()
        with pytest.raises(TransportError) as caught:
            transport.request("POST", server.url + "/", {}, b"x")
        assert not caught.value.response_started
        assert len(server.requests) == 2


def test_body_is_read_incrementally_from_a_chunked_answer() -> None:
    second_chunk = threading.Event()

    def chunked(number: int, count: int, conn: socket.socket) -> bool:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        )
        second_chunk.wait(5)
        conn.sendall(b"6\r\nsecond\r\n0\r\n\r\n")
        return True

    with scripted_server(chunked) as server, HTTPTransport() as transport:
        response = transport.request("GET", server.url + "/", {})
        assert response.read1() == b"first"
        second_chunk.set()
        assert response.read() == b"second"
        assert response.complete
        with transport.request("GET", server.url + "/", {}) as again:
            second_chunk.set()
            assert again.read() == b"firstsecond"
        assert server.connections == 1


def test_unfinished_body_closes_the_connection() -> None:
    release = threading.Event()

    def slow_body(number: int, count: int, conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        release.wait(5)
        return False

    with scripted_server(slow_body) as server, HTTPTransport() as transport:
        response = transport.request("GET", server.url + "/", {})
        assert response.read1() == b"abc"
        response.close()
        assert not response.complete
        release.set()
        with transport.request("GET", server.url + "/", {}) as second:
            assert second.read1() == b"abc"
        assert server.connections == 2


def test_truncated_body_is_a_transport_error_after_start() -> None:
    def truncate(number: int, count: int, conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        return False

    with scripted_server(truncate) as server, HTTPTransport() as transport:
        response = transport.request("GET", server.url + "/", {})
        with pytest.raises(TransportError) as caught:
            response.read()
        assert caught.value.response_started


def test_garbage_status_line_is_malformed() -> None:
    def garbage(number: int, count: int, conn: socket.socket) -> bool:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        return False

    with scripted_server(garbage) as server, HTTPTransport() as transport:
        with pytest.raises(TransportError, match="malformed") as caught:
            transport.request("GET", server.url + "/", {})
        assert caught.value.response_started


def test_first_byte_and_idle_timeouts_name_their_phase() -> None:
    gate = threading.Event()

    def stall(number: int, count: int, conn: socket.socket) -> bool:
        if count == 1 and number == 1:
            gate.wait(5)
            return False
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
        gate.wait(5)
        return False

    timeouts = Timeouts(first_byte=0.2, idle=0.2)
    with scripted_server(stall) as server, HTTPTransport(timeouts=timeouts) as t:
        with pytest.raises(TimeoutError) as first:
            t.request("GET", server.url + "/", {})
        assert (first.value.phase, first.value.response_started) == (
            "first_byte",
            False,
        )
        response = t.request("GET", server.url + "/", {})
        assert response.read1() == b"ab"
        with pytest.raises(TimeoutError) as idle:
            response.read1()
        assert (idle.value.phase, idle.value.response_started) == ("idle", True)
        gate.set()


def test_read_limit_is_enforced() -> None:
    def big(number: int, count: int, conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
        return True

    with scripted_server(big) as server, HTTPTransport() as transport:
        response = transport.request("GET", server.url + "/", {})
        with pytest.raises(TransportError, match="larger than 10 bytes"):
            response.read(limit=10)


def test_headers_are_lower_case_and_joined() -> None:
    def answer(number: int, count: int, conn: socket.socket) -> bool:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nX-Thing: a\r\nx-thing: b\r\nContent-Length: 0\r\n\r\n"
        )
        return True

    with (
        scripted_server(answer) as server,
        HTTPTransport() as transport,
        transport.request("GET", server.url + "/", {"X-Sent": "1"}) as response,
    ):
        assert response.headers["x-thing"] == "a, b"
        assert response.read() == b""
    assert b"X-Sent: 1" in server.requests[0]
    assert b"Host: 127.0.0.1:" in server.requests[0]


def test_closed_transport_refuses_requests() -> None:
    transport = HTTPTransport()
    transport.close()
    with pytest.raises(ConfigurationError):
        transport.request("GET", "http://127.0.0.1:1/", {})
    with pytest.raises(ConfigurationError):
        HTTPTransport().request("GET", "ftp://127.0.0.1/", {})


def test_errors_never_show_the_query_string() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with HTTPTransport() as transport, pytest.raises(TransportError) as caught:
        transport.request(
            "GET", f"http://127.0.0.1:{port}/ws?X-Amz-Signature=s3cr3t", {}
        )
    assert "s3cr3t" not in str(caught.value) + caught.value.url
    assert caught.value.url == f"http://127.0.0.1:{port}/ws"


# TLS.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_with_a_trusted_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    with (
        scripted_server(always_ok, tls=server_tls) as server,
        HTTPTransport(tls_context=client_tls) as transport,
    ):
        for _ in range(2):
            with transport.request("GET", server.url + "/", {}) as response:
                assert response.read() == b"ok"
        assert server.connections == 1


def test_https_with_an_untrusted_certificate_fails(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with (
        scripted_server(always_ok, tls=server_tls) as server,
        HTTPTransport() as transport,
        pytest.raises(TransportError, match="could not connect") as caught,
    ):
        transport.request("GET", server.url + "/", {})
    assert isinstance(caught.value.__cause__, ssl.SSLError)


def test_the_default_tls_context_is_made_once_per_process(
    certificate: tuple[Path, Path],
) -> None:
    """Two transports, two TLS connections, one context from the system store.

    A fresh interpreter trusts the test certificate through SSL_CERT_FILE,
    the way a system CA store is found, and counts the contexts the
    standard library makes.
    """
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    script = (
        "import ssl, sys\n"
        "made = []\n"
        "original = ssl.create_default_context\n"
        "def counting(*args, **kwargs):\n"
        "    made.append(1)\n"
        "    return original(*args, **kwargs)\n"
        "ssl.create_default_context = counting\n"
        "from agentcore_bridge.sync.http import HTTPTransport\n"
        "for _ in range(2):\n"
        "    with HTTPTransport() as transport:\n"
        "        for _ in range(2):\n"
        "            with transport.request('GET', sys.argv[1], {}) as response:\n"
        "                assert response.read() == b'ok'\n"
        "print(len(made))\n"
    )
    with scripted_server(always_ok, tls=server_tls) as server:
        result = subprocess.run(
            [sys.executable, "-c", script, server.url + "/"],
            capture_output=True,
            text=True,
            env={**os.environ, "SSL_CERT_FILE": str(cert)},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "1"
        assert server.connections == 2


def test_transport_imports_only_the_standard_library() -> None:
    code = (
        "import sys, agentcore_bridge.sync.http, agentcore_bridge.sync.agentcore;"
        "print(sorted(m for m in ('aiohttp', 'yarl', 'multidict', 'botocore', 'boto3',"
        " 'urllib3') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
