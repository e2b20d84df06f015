"""The HTTP/1.1 the synchronous transport writes and reads, byte for byte.

A raw loopback server answers each request with scripted bytes, written in
slices with a short pause between them, so that the transport meets every
way an answer can be cut by the network.
"""

from __future__ import annotations

import itertools
import queue
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcore_bridge.agentcore import Timeouts
from agentcore_bridge.exceptions import TimeoutError, TransportError, ValidationError
from agentcore_bridge.sync.http import MAX_HEAD_BYTES, MAX_HEADERS, HTTPTransport


class Answer:
    """Raw bytes to write for one request, in slices, then maybe close."""

    def __init__(self, *slices: bytes, close: bool = False, gap: float = 0.002) -> None:
        self.slices = slices
        self.close = close
        self.gap = gap


class RawServer:
    """A loopback server answering each request with the next queued Answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: queue.Queue[Answer] = queue.Queue()
        self.connections = 0
        self.requests: list[bytes] = []
        self.lock = threading.Lock()

    def answer(self, *answers: Answer) -> None:
        for answer in answers:
            self.answers.put(answer)


def read_request(conn: socket.socket) -> bytes | None:
    """One whole request (head and body), or None when the client closed."""
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
    return head + b"\r\n\r\n" + body


@contextmanager
def raw_server() -> Iterator[RawServer]:
    state = RawServer("")

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with state.lock:
                state.connections += 1
            while True:
                request = read_request(conn)
                if request is None:
                    return
                with state.lock:
                    state.requests.append(request)
                try:
                    answer = state.answers.get(timeout=5)
                except queue.Empty:
                    return
                for index, piece in enumerate(answer.slices):
                    if index:
                        time.sleep(answer.gap)
                    try:
                        conn.sendall(piece)
                    except OSError:
                        return  # the client gave up (the timeout tests)
                if answer.close:
                    conn.close()
                    return

    class ThreadedServer(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = ThreadedServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RawServer]:
    with raw_server() as server:
        yield server


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def chunked(*chunks: bytes, trailers: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body
        + b"0\r\n"
        + trailers
        + b"\r\n"
    )


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at each point (positions taken modulo its length)."""
    marks = sorted({point % (len(data) + 1) for point in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(marks) if b > a]


def read_all(transport: HTTPTransport, url: str, size: int | None) -> bytes:
    with transport.request("GET", url, {}) as response:
        assert response.status == 200
        if size is None:
            body = response.read()
        else:
            body = b"".join(iter(lambda: response.read1(size), b""))
        assert response.complete
        return body


# Framing, over every way of cutting the answer.


@st.composite
def framed_answers(draw: st.DrawFn) -> tuple[bytes, bytes, bool]:
    """(raw answer, its body, whether the connection stays open)."""
    body = draw(st.binary(max_size=200))
    framing = draw(st.sampled_from(["chunked", "length", "close"]))
    if framing == "length":
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        return head + body, body, True
    if framing == "close":
        return b"HTTP/1.1 200 OK\r\nX-Framing: none\r\n\r\n" + body, body, False
    points = draw(st.lists(st.integers(0, len(body)), max_size=6))
    pieces = cut(body, points)
    chunks = b""
    for piece in pieces:
        extension = draw(st.sampled_from([b"", b";a=b", b' ; name="q v";x']))
        chunks += b"%X%s\r\n%s\r\n" % (len(piece), extension, piece)
    trailers = draw(st.sampled_from([b"", b"Trailer-A: 1\r\n", b"A: 1\r\nB: 2\r\n"]))
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + chunks + b"0\r\n" + trailers + b"\r\n", body, True


@settings(max_examples=60, deadline=None)
@given(
    answer=framed_answers(),
    points=st.lists(st.integers(0, 10_000), max_size=6),
    size=st.one_of(st.none(), st.integers(1, 40)),
)
def test_any_framing_cut_anywhere_reads_the_same_body(
    shared_server: RawServer,
    answer: tuple[bytes, bytes, bool],
    points: list[int],
    size: int | None,
) -> None:
    """Chunked, Content-Length and read-until-close bodies, cut at random."""
    raw, body, keeps_open = answer
    shared_server.answer(Answer(*cut(raw, points), close=not keeps_open), Answer(OK))
    with HTTPTransport() as transport:
        assert read_all(transport, shared_server.url, size) == body
        with transport.request("GET", shared_server.url, {}) as second:
            assert second.read() == b"ok"
            # Nothing of the first answer was left unread, or too much read.
            assert second.reused == keeps_open


def test_a_chunked_answer_split_at_every_byte_reads_the_same() -> None:
    raw = chunked(b"hello", b" ", b"world!" * 3, trailers=b"Expires: never\r\n")
    raw = raw.replace(b"5\r\n", b"5;ext=1\r\n", 1)
    with raw_server() as server, HTTPTransport() as transport:
        for split in range(1, len(raw)):
            server.answer(Answer(raw[:split], raw[split:], gap=0.003))
            body = read_all(transport, server.url, None)
            assert body == b"hello world!world!world!", split
        assert server.connections == 1


def test_chunk_extensions_and_trailers_are_dropped() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value;flag\r\nabc\r\n"
        b'2 ; q="quoted;value"\r\nde\r\n'
        b"0;last\r\nDigest: xyz\r\nChecksum: 1\r\n\r\n"
    )
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(raw), Answer(OK))
        with transport.request("GET", server.url, {}) as response:
            assert response.read() == b"abcde"
            assert "digest" not in response.headers
        with transport.request("GET", server.url, {}) as second:
            assert second.read() == b"ok"
            assert second.reused


def test_body_until_close_is_read_to_the_end_and_not_reused() -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(
            Answer(b"HTTP/1.1 200 OK\r\n\r\nall ", b"of ", b"it", close=True),
            Answer(OK),
        )
        assert read_all(transport, server.url, None) == b"all of it"
        with transport.request("GET", server.url, {}) as second:
            assert second.read() == b"ok"
            assert not second.reused
        assert server.connections == 2


def test_http_1_0_answers_close_unless_kept_alive() -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(
            Answer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nab"),
            Answer(
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
                b"Content-Length: 2\r\n\r\ncd"
            ),
            Answer(OK),
        )
        assert read_all(transport, server.url, None) == b"ab"
        assert read_all(transport, server.url, None) == b"cd"
        with transport.request("GET", server.url, {}) as third:
            assert third.read() == b"ok"
            assert third.reused
        assert server.connections == 2


def test_interim_answers_are_skipped() -> None:
    """100 Continue and 103 Early Hints come before the real answer."""
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
    )
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(*cut(raw, [20, 30, 60])))
        with transport.request("POST", server.url, {}, b"x") as response:
            assert (response.status, response.reason) == (201, "Created")
            assert "link" not in response.headers
            assert response.read() == b"done"


def test_switching_protocols_unasked_is_malformed() -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"))
        with pytest.raises(TransportError, match="switched protocols"):
            transport.request("GET", server.url, {})


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)]
)
def test_answers_without_a_body_ignore_their_length(method: str, status: int) -> None:
    """HEAD, 204 and 304 end after the headers, whatever Content-Length says."""
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(
            Answer(b"HTTP/1.1 %d X\r\nContent-Length: 50\r\n\r\n" % status),
            Answer(OK),
        )
        with transport.request(method, server.url, {}) as response:
            assert response.status == status
            assert response.read() == b""
            assert response.complete
        with transport.request("GET", server.url, {}) as second:
            assert second.read() == b"ok"
            assert second.reused


def test_connection_close_is_honoured() -> None:
    """The server says close but keeps the socket open: it is not reused."""
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(
            Answer(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nab"
            ),
            Answer(OK),
        )
        assert read_all(transport, server.url, None) == b"ab"
        with transport.request("GET", server.url, {}) as second:
            assert second.read() == b"ok"
            assert not second.reused
        assert server.connections == 2


def test_keep_alive_is_reused_across_framings() -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(
            Answer(OK),
            Answer(chunked(b"abc")),
            Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"),
        )
        assert read_all(transport, server.url, 1) == b"ok"
        assert read_all(transport, server.url, 1) == b"abc"
        assert read_all(transport, server.url, None) == b"ok"
        assert server.connections == 1


def test_transfer_encoding_overrides_content_length_and_closes() -> None:
    raw = chunked(b"abc").replace(b"\r\n\r\n", b"\r\nContent-Length: 99\r\n\r\n", 1)
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(raw), Answer(OK))
        assert read_all(transport, server.url, None) == b"abc"
        with transport.request("GET", server.url, {}) as second:
            assert not second.reused
            second.read()


def test_a_body_cut_inside_a_chunk_is_a_transport_error_after_start() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhello"
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(raw, close=True))
        response = transport.request("GET", server.url, {})
        with pytest.raises(TransportError, match="closed before the end") as caught:
            response.read()
        assert caught.value.response_started
        assert not response.complete


@pytest.mark.parametrize(
    "tail",
    [
        b"5\r\nhel",  # inside the data
        b"5\r\nhello",  # before the chunk's CRLF
        b"5\r\nhello\r\n",  # before the next size
        b"5\r\nhello\r\n0\r\n",  # before the end of the trailers
        b"5\r\nhello\r\n0\r\nX: 1\r\n",  # inside the trailers
    ],
)
def test_a_chunked_body_cut_anywhere_is_never_complete(tail: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(head + tail, close=True))
        response = transport.request("GET", server.url, {})
        with pytest.raises(TransportError) as caught:
            response.read()
        assert caught.value.response_started


# Malformed answers.


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 600 Nope\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: no name\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded first\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
    ],
)
def test_a_malformed_head_is_a_clear_error(raw: bytes) -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(raw))
        with pytest.raises(TransportError, match="malformed answer") as caught:
            transport.request("GET", server.url, {})
        assert caught.value.response_started


@pytest.mark.parametrize(
    "chunks",
    [
        b"xyz\r\nabc\r\n0\r\n\r\n",
        b"-1\r\nabc\r\n0\r\n\r\n",
        b"0x3\r\nabc\r\n0\r\n\r\n",
        b"+3\r\nabc\r\n0\r\n\r\n",
        b"\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcd\r\n0\r\n\r\n",  # longer than its size
        b"1" * 20 + b"\r\n",  # a size no one can send
        b"0\r\nBad Trailer\r\n\r\n",
    ],
)
def test_a_malformed_chunk_is_a_clear_error(chunks: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(head + chunks, close=True))
        response = transport.request("GET", server.url, {})
        with pytest.raises(TransportError, match="malformed answer") as caught:
            response.read()
        assert caught.value.response_started


def test_too_many_headers_are_refused() -> None:
    lines = b"".join(b"X-%d: v\r\n" % number for number in range(MAX_HEADERS + 1))
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(b"HTTP/1.1 200 OK\r\n" + lines + b"\r\n"))
        with pytest.raises(TransportError, match=f"more than {MAX_HEADERS}"):
            transport.request("GET", server.url, {})


def test_as_many_headers_as_allowed_are_read() -> None:
    lines = b"".join(b"X-%d: v\r\n" % number for number in range(MAX_HEADERS - 1))
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(
            Answer(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 0\r\n\r\n")
        )
        with transport.request("GET", server.url, {}) as response:
            assert len(response.headers) == MAX_HEADERS
            assert response.read() == b""


@pytest.mark.parametrize("shape", ["one long line", "many lines", "long trailers"])
def test_oversize_heads_are_refused(shape: str) -> None:
    if shape == "one long line":
        raw = b"HTTP/1.1 200 OK\r\nX: " + b"v" * MAX_HEAD_BYTES + b"\r\n\r\n"
    elif shape == "many lines":
        line = b"X: " + b"v" * (MAX_HEAD_BYTES // 50) + b"\r\n"
        raw = b"HTTP/1.1 200 OK\r\n" + line * 60 + b"\r\n"
    else:
        trailer = b"T: " + b"v" * 1000 + b"\r\n"
        raw = chunked(b"x", trailers=trailer * 80)
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(raw, close=True))
        with pytest.raises(TransportError, match="larger than") as caught:
            transport.request("GET", server.url, {}).read()
        assert caught.value.response_started


def test_a_head_cut_short_is_malformed_but_no_answer_is_not_started() -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(
            Answer(b"HTTP/1.1 200 OK\r\nX-Half: ", close=True),
            Answer(close=True),
        )
        with pytest.raises(TransportError, match="malformed") as half:
            transport.request("GET", server.url, {})
        assert half.value.response_started
        with pytest.raises(TransportError, match="without answering") as none:
            transport.request("GET", server.url, {})
        assert not none.value.response_started


@pytest.mark.parametrize(
    ("timeouts", "phase"),
    [
        (Timeouts(first_byte=0.3, total=None), "first_byte"),
        (Timeouts(first_byte=10, total=0.3), "total"),
    ],
)
@pytest.mark.timeout(20)
def test_a_head_trickled_byte_by_byte_times_out_as_a_whole(
    timeouts: Timeouts, phase: str
) -> None:
    """Each byte comes well within the wait, the whole head does not."""
    head = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 400 + b"\r\n\r\n"
    with raw_server() as server, HTTPTransport(timeouts=timeouts) as transport:
        server.answer(Answer(*cut(head, list(range(len(head)))), gap=0.02))
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            transport.request("GET", server.url, {})
        assert time.monotonic() - started < 3
        assert caught.value.phase == phase
        assert caught.value.response_started


# Headers.


def test_header_lookup_ignores_case_and_keeps_every_line() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSET-COOKIE: b=2\r\n"
        b"X-Folded: one\r\n  two\r\n\tthree\r\nX-Empty:\r\n"
        b"X-Spaces: \t padded \t\r\nContent-Length: 0\r\n\r\n"
    )
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(raw))
        with transport.request("GET", server.url, {}) as response:
            headers = response.headers
            assert headers["Set-Cookie"] == headers["set-cookie"] == "a=1, b=2"
            assert headers.get_all("set-cookie") == ["a=1", "b=2"]
            assert ("SET-COOKIE", "b=2") in headers.raw
            assert headers.get("X-FOLDED") == "one two three"
            assert headers.get("x-empty") == ""
            assert headers["x-spaces"] == "padded"
            assert "CONTENT-LENGTH" in headers
            assert headers.get("missing", "default") == "default"
            assert dict(headers)["x-folded"] == "one two three"
            response.read()


def test_a_bare_lf_ends_lines_too() -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(b"HTTP/1.1 200 OK\nContent-Length: 2\nX: y\n\nok"))
        with transport.request("GET", server.url, {}) as response:
            assert response.headers["x"] == "y"
            assert response.read() == b"ok"


# The request.


def test_the_request_on_the_wire() -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(OK), Answer(OK), Answer(OK))
        port = server.url.rsplit(":", 1)[1]
        with transport.request(
            "POST", server.url + "/p/a%3Ab?q=1&r", {"X-A": "b c"}, b"abc"
        ) as response:
            response.read()
        with transport.request(
            "GET", server.url + "/", {"Host": "example.com", "content-length": "7"}
        ) as response:
            response.read()
        with transport.request("GET", server.url, {}) as response:
            response.read()
    assert server.requests == [
        b"POST /p/a%3Ab?q=1&r HTTP/1.1\r\nX-A: b c\r\n"
        b"Host: 127.0.0.1:" + port.encode() + b"\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() + b"\r\n\r\n",
    ]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/", {"X-Evil": "a\r\nX-Injected: 1"}),
        ("GET", "/", {"X-Evil": "a\nb"}),
        ("GET", "/", {"X-Evil": "a\rb"}),
        ("GET", "/", {"X-Evil": "a\0b"}),
        ("GET", "/", {"X-Evil\r\nX-Injected": "1"}),
        ("GET", "/", {"Bad Name": "1"}),
        ("GET", "/", {"Name:": "1"}),
        ("GET", "/", {"": "1"}),
        ("GET", "/", {"X-Text": "snowman \u2603"}),
        ("GET /x HTTP/1.1\r\nX:", "/", {}),
        ("", "/", {}),
        ("GET", "/a b", {}),
        ("GET", "/a\r\nX-Injected: 1", {}),
        ("GET", "/caf\u00e9", {}),
    ],
)
def test_requests_that_would_be_misread_are_refused_before_sending(
    method: str, path: str, headers: dict[str, str]
) -> None:
    with raw_server() as server, HTTPTransport() as transport:
        with pytest.raises(ValidationError):
            transport.request(method, server.url + path, headers)
        assert server.connections == 0


# Abort and imports.


def test_abort_during_a_body_until_close_is_not_a_complete_body() -> None:
    with raw_server() as server, HTTPTransport() as transport:
        server.answer(Answer(b"HTTP/1.1 200 OK\r\n\r\nstart", b"", gap=5))
        response = transport.request("GET", server.url, {})
        assert response.read1() == b"start"
        timer = threading.Timer(0.1, transport.abort)
        timer.start()
        with pytest.raises(TransportError, match="aborted") as caught:
            response.read()
        timer.join()
        assert caught.value.response_started
        assert not response.complete


def test_the_lambda_import_path_loads_no_http_client() -> None:
    """http.client pulls in the email package: milliseconds of cold start."""
    code = (
        "import sys, agentcore_bridge.awslambda, agentcore_bridge.sync.http;"
        "print(sorted(m for m in ('http', 'http.client', 'email', 'urllib.request',"
        " 'calendar') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
