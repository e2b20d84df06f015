"""A small pooled HTTP/1.1 client written on ``socket`` and ``ssl``.

This is the synchronous transport: it is what runs on Lambda, where every
millisecond of import time counts. It therefore speaks HTTP/1.1 itself
rather than through ``http.client``, which imports the ``email`` package
to parse headers (7 to 9 ms of every cold start), and it loads nothing
beyond ``socket``, ``ssl`` and ``select``. It knows nothing about
AgentCore: it sends a method, a URL, headers and a body, and hands back a
:class:`Response` whose body is read incrementally.

What it does:

- requests: ``METHOD target HTTP/1.1``, ``Host`` unless given, the
  caller's headers (refused with :class:`ValidationError` when a name is
  not a token or a value holds CR, LF or NUL), ``Content-Length`` when
  there is a body (or the method carries one), then the body;
- answers (RFC 9112): the status line of HTTP/1.0 and 1.1, headers
  looked up without regard to case (every line kept in
  :attr:`Headers.raw`), interim 1xx answers skipped, bodies framed by
  ``Content-Length``, by ``Transfer-Encoding: chunked`` (extensions and
  trailers read and dropped), or by the end of the connection; none for
  ``HEAD``, 204 and 304. An answer that breaks the grammar, or whose head
  exceeds :data:`MAX_HEAD_BYTES` or :data:`MAX_HEADERS`, is a
  :class:`TransportError` saying "malformed answer";
- keep-alive: idle connections are pooled per (scheme, host, port) and
  reused unless the answer said ``Connection: close`` (or was HTTP/1.0,
  or ran to the end of the connection); a pooled connection the server
  has closed meanwhile is detected before use, or, when sending on it
  fails, replaced once by a new connection (the server cannot have
  received the whole request);
- one TLS context for the process, created on first use;
- bounded waits for each phase (``connect``, ``first_byte``, ``idle``
  between reads of the body, ``total``), each reported as
  :class:`~agentcore_bridge.exceptions.TimeoutError` with its ``phase``;
- errors of ``socket`` and ``ssl`` translated into
  :class:`~agentcore_bridge.exceptions.TransportError`, with
  ``response_started`` telling whether any byte of the answer had arrived;
- :meth:`HTTPTransport.reset` to drop every pooled connection, for Lambda
  SnapStart (a restored snapshot must not reuse sockets made before it);
- :meth:`HTTPTransport.abort` to stop, from another thread, every request
  in flight (a thread blocked waiting for an answer or a body wakes up).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from urllib.parse import urlsplit

from ..agentcore import Timeouts
from ..exceptions import (
    ConfigurationError,
    TimeoutError,
    TransportError,
    ValidationError,
)

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar, overload

    _T = TypeVar("_T")

__all__ = [
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "HTTPTransport",
    "Headers",
    "Response",
    "default_tls_context",
]

logger = logging.getLogger("agentcore_bridge.http")

#: Bytes asked for per read of a streamed body; a read returns as soon as
#: any bytes are there, so this bounds memory, not latency.
READ_SIZE = 64 * 1024

#: Largest status line plus headers (and, separately, chunked trailers)
#: accepted, in bytes: the size http.client allows for one line, and far
#: above what AWS endpoints send.
MAX_HEAD_BYTES = 64 * 1024

#: Most header lines accepted in one answer, as in http.client.
MAX_HEADERS = 100

# A chunk-size line is hex digits and optional extensions; longer than
# this it is not a chunk size.
_MAX_CHUNK_LINE = 4096

# Interim (1xx) answers before the final one; a server sends one or two
# (100 Continue, 103 Early Hints), an endless run is a broken server.
_MAX_INTERIM = 10

# Bodies up to this size go out in the same write as the head.
_COALESCE_BODY = 64 * 1024

# Methods whose request carries a body by definition: they get a
# Content-Length even when it is 0 (RFC 9110 section 8.6).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# RFC 9110 section 5.6.2: tchar, what a header name (token) is made of.
_TCHAR = (
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_HEX = b"0123456789abcdefABCDEF"

_Key = tuple[str, str, int]

# socket.timeout is the builtin TimeoutError since Python 3.10; this name
# keeps it apart from the package's own TimeoutError.
_SocketTimeout = socket.timeout

# How the end of a body is found (RFC 9112 section 6.3).
_NO_BODY = 0
_LENGTH = 1
_CHUNKED = 2
_UNTIL_CLOSE = 3

_tls_lock = threading.Lock()
_tls_context: ssl.SSLContext | None = None


def default_tls_context() -> ssl.SSLContext:
    """The process-wide TLS context: system CAs, hostname checks, TLS 1.2+.

    Created on first use, since loading the CA bundle costs several
    milliseconds that a plain-HTTP caller (a local emulator) never needs.
    """
    global _tls_context  # noqa: PLW0603 (one context per process, made lazily)
    with _tls_lock:
        if _tls_context is None:
            context = ssl.create_default_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            _tls_context = context
        return _tls_context


def _open_socket(
    host: str, port: int, timeout: float | None, context: ssl.SSLContext | None
) -> socket.socket:
    """Connect to ``host:port``, with TLS when given a context.

    Given the host as text, ``getaddrinfo`` and ``ssl`` encode it with the
    ``idna`` codec, whose first use imports ``unicodedata`` and costs
    several milliseconds of every Lambda cold start. An ASCII host name
    (every AWS endpoint) is passed as bytes, which both take as they are.
    """
    name: str | bytes
    try:
        name = host.encode("ascii")
    except UnicodeEncodeError:
        name = host
    # typeshed allows only str hosts here; getaddrinfo takes bytes as well.
    sock = socket.create_connection((name, port), timeout)  # type: ignore[arg-type]
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=name)
    except BaseException:
        sock.close()
        raise
    return sock


class HTTPTransport:
    """Sends HTTP/1.1 requests over pooled keep-alive connections.

    One transport is meant to live as long as the process (a Lambda
    execution environment, a worker) and is safe to share between threads.
    ``tls_context`` defaults to :func:`default_tls_context`; ``max_idle``
    bounds the idle connections kept per host.
    """

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        tls_context: ssl.SSLContext | None = None,
        max_idle: int = 8,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self._tls_context = tls_context
        self._max_idle = max_idle
        self._idle: dict[_Key, list[_Connection]] = {}
        # Sockets of requests in flight, for abort().
        self._busy: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._aborted = False

    def __enter__(self) -> HTTPTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        timeouts: Timeouts | None = None,
        deadline: float | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> Response:
        """Send a request and return once the status line and headers are in.

        ``url`` is sent as given (its path already percent-encoded).
        ``deadline`` is a :func:`time.monotonic` time by which everything,
        body included, must be done; by default ``timeouts.total`` from now.
        ``on_sent`` is called once the whole request is written, before the
        answer is awaited (another thread may then stop waiting for it).
        The caller must read the body to the end or :meth:`Response.close`
        it; only then is the connection free again.

        Raises :class:`TimeoutError` (phase ``connect``, ``first_byte`` or
        ``total``) or :class:`TransportError`, neither leaving anything open;
        :class:`ConfigurationError` for a closed transport or a URL that is
        not ``http://`` or ``https://``; :class:`ValidationError` for a
        method, URL or header that cannot be sent as it is (a CR or LF
        would let it add lines of its own to the request).
        """
        if self._closed:
            raise ConfigurationError("the transport is closed; make a new one")
        timeouts = timeouts or self.timeouts
        if deadline is None and timeouts.total is not None:
            deadline = time.monotonic() + timeouts.total
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError("the URL's port is not a number") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigurationError("only http:// and https:// URLs can be sent")
        default_port = 443 if parts.scheme == "https" else 80
        port = port or default_port
        key = (parts.scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if port != default_port:
            host += f":{port}"
        head = _request_head(method, target, host, headers, body)
        exchange = _Exchange(method, head, body, timeouts, deadline, _safe_url(url))
        exchange.on_sent = on_sent

        connection = self._checkout(key)
        if connection is not None:
            try:
                return self._send(exchange, key, connection, reused=True)
            except _StaleConnectionError:
                logger.debug("pooled connection to %s:%s was stale", *key[1:])
        return self._send(exchange, key, self._connect(exchange, key), reused=False)

    def close(self) -> None:
        """Close every idle connection and refuse new requests.

        Responses still being read keep their connection until they are
        closed; their connections are then closed instead of pooled.
        """
        self._closed = True
        self.reset()

    def abort(self) -> None:
        """Close the transport and cut every request in flight; thread-safe.

        Meant to be called from another thread than the one sending or
        reading: its socket is shut down, so a wait for an answer or a body
        ends at once with :class:`TransportError` instead of running to its
        timeout. Later requests are refused as after :meth:`close`; make a
        new transport to send again.
        """
        self._aborted = True
        self._closed = True
        with self._lock:
            busy = list(self._busy)
        for sock in busy:
            _shut_down(sock)
        self.reset()

    def reset(self) -> None:
        """Close every idle connection; later requests open new ones.

        Call it after a Lambda SnapStart restore (sockets from before the
        snapshot are dead or shared with other environments) or after a
        network change.
        """
        with self._lock:
            pools, self._idle = self._idle, {}
        for pool in pools.values():
            for connection in pool:
                connection.close()

    # Connections.

    def _checkout(self, key: _Key) -> _Connection | None:
        while True:
            with self._lock:
                pool = self._idle.get(key)
                if not pool:
                    return None
                connection = pool.pop()
            if connection.is_usable():
                return connection
            connection.close()

    def _checkin(self, key: _Key, connection: _Connection) -> None:
        with self._lock:
            if not self._closed:
                pool = self._idle.setdefault(key, [])
                if len(pool) < self._max_idle:
                    pool.append(connection)
                    return
        connection.close()

    def _connect(self, exchange: _Exchange, key: _Key) -> _Connection:
        scheme, host, port = key
        wait = exchange.wait("connect")
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._tls_context or default_tls_context()
        try:
            sock = _open_socket(host, port, wait.seconds, context)
        except _SocketTimeout as exc:
            raise wait.error(exchange.url) from exc
        except (OSError, UnicodeError) as exc:
            raise TransportError(
                f"could not connect to {host}:{port}: {_describe(exc)}",
                url=exchange.url,
            ) from exc
        if self._closed:
            # abort() ran while connecting.
            sock.close()
            raise _aborted(exchange.url)
        logger.debug("connected to %s:%s", host, port)
        return _Connection(sock)

    # One request on one connection.

    def _send(
        self,
        exchange: _Exchange,
        key: _Key,
        connection: _Connection,
        *,
        reused: bool,
    ) -> Response:
        sock = connection.sock
        try:
            wait = exchange.wait("first_byte")
        except TimeoutError:
            connection.close()
            raise
        with self._lock:
            self._busy.add(sock)
        if self._closed:
            # abort() ran before the socket was registered.
            _shut_down(sock)
        try:
            return self._exchange(exchange, key, connection, wait, reused)
        except BaseException as exc:
            self._release(sock)
            if self._closed and isinstance(exc, TransportError | _StaleConnectionError):
                raise _aborted(exchange.url) from exc
            raise

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            self._busy.discard(sock)

    def _exchange(
        self,
        exchange: _Exchange,
        key: _Key,
        connection: _Connection,
        wait: _Wait,
        reused: bool,
    ) -> Response:
        # Sending. A pooled connection that fails here was closed by the
        # server while idle; the request never arrived whole, so it is
        # sent again on a new connection.
        sock = connection.sock
        try:
            sock.settimeout(wait.seconds)
            body = exchange.body
            if len(body) <= _COALESCE_BODY:
                # One write for head and body: no Nagle/delayed-ACK stall,
                # and one TLS record instead of two.
                sock.sendall(exchange.head + body)
            else:
                sock.sendall(exchange.head)
                sock.sendall(body)
        except _SocketTimeout as exc:
            connection.close()
            raise wait.error(exchange.url) from exc
        except OSError as exc:
            connection.close()
            if reused:
                raise _StaleConnectionError from exc
            raise TransportError(
                f"connection lost while sending: {_describe(exc)}", url=exchange.url
            ) from exc
        if exchange.on_sent is not None:
            exchange.on_sent()

        # Waiting for the status line and headers. A failure here may come
        # after the server read the request, so it is reported, never
        # hidden: whether to send again is the caller's decision. The whole
        # head must arrive within the wait, not only each piece of it.
        head_deadline = time.monotonic() + exchange.timeouts.first_byte
        if exchange.deadline is not None:
            head_deadline = min(head_deadline, exchange.deadline)
        connection.deadline = head_deadline
        try:
            head = _read_head(connection)
        except _SocketTimeout as exc:
            connection.close()
            raise wait.error(exchange.url, started=bool(connection.seen)) from exc
        except _NoAnswerError as exc:
            connection.close()
            raise TransportError(
                "the server closed the connection without answering",
                url=exchange.url,
            ) from exc
        except _MalformedError as exc:
            connection.close()
            raise TransportError(
                f"malformed answer: {exc}", url=exchange.url, response_started=True
            ) from exc
        except OSError as exc:
            connection.close()
            raise TransportError(
                f"connection failed: {_describe(exc)}",
                url=exchange.url,
                response_started=bool(connection.seen),
            ) from exc
        finally:
            # The body's reads have waits of their own (idle and total).
            connection.deadline = None
        try:
            return Response(self, key, connection, head, exchange, reused)
        except _MalformedError as exc:
            connection.close()
            raise TransportError(
                f"malformed answer: {exc}", url=exchange.url, response_started=True
            ) from exc


class _Exchange:
    """The parts of one request and its time budget."""

    __slots__ = ("body", "deadline", "head", "method", "on_sent", "timeouts", "url")

    def __init__(
        self,
        method: str,
        head: bytes,
        body: bytes,
        timeouts: Timeouts,
        deadline: float | None,
        url: str,
    ) -> None:
        self.method = method
        self.head = head
        self.body = body
        self.timeouts = timeouts
        self.deadline = deadline
        self.url = url
        self.on_sent: Callable[[], None] | None = None

    def wait(self, phase: str, *, started: bool = False) -> _Wait:
        """The wait for ``phase``, cut short by the deadline.

        Raises :class:`TimeoutError` (phase ``total``) when the deadline has
        already passed.
        """
        seconds: float = getattr(self.timeouts, phase)
        if self.deadline is None:
            return _Wait(seconds, phase, seconds)
        remaining = self.deadline - time.monotonic()
        total = self.timeouts.total or 0.0
        if remaining <= 0:
            raise TimeoutError("total", total, url=self.url, response_started=started)
        if remaining < seconds:
            return _Wait(remaining, "total", total)
        return _Wait(seconds, phase, seconds)


class _Wait:
    """How long to wait, and what to report when the wait runs out."""

    __slots__ = ("limit", "phase", "seconds")

    def __init__(self, seconds: float, phase: str, limit: float) -> None:
        self.seconds = seconds
        self.phase = phase
        self.limit = limit

    def error(self, url: str, *, started: bool = False) -> TimeoutError:
        return TimeoutError(self.phase, self.limit, url=url, response_started=started)


class _StaleConnectionError(Exception):
    """A pooled connection failed while the request was being sent."""


class _NoAnswerError(Exception):
    """The connection ended before any byte of an answer."""


class _MalformedError(Exception):
    """The answer breaks HTTP/1.1; the message says how, never quoting it."""


class _LineTooLongError(_MalformedError):
    """A line of the head is longer than what is left of its size limit."""


class _TruncatedError(Exception):
    """The connection ended before the end of the body its framing announced."""


# Reading the answer.


class _Connection:
    """A connected socket and the bytes read from it but not yet used."""

    __slots__ = ("buffer", "deadline", "seen", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        #: Whether any byte of the current answer has arrived.
        self.seen = False
        #: A time.monotonic() time by which :meth:`fill` must be done, or None.
        self.deadline: float | None = None

    def close(self) -> None:
        self.sock.close()

    def fill(self) -> bool:
        """Wait for more bytes and buffer them; ``False`` at end of stream.

        Raises ``socket.timeout`` when :attr:`deadline` passes first.
        """
        deadline = self.deadline
        if deadline is not None:
            # The socket timeout bounds each wait, not their sum: a server
            # sending its head a byte at a time would otherwise hold the
            # caller for as long as it liked.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _SocketTimeout
            current = self.sock.gettimeout()
            if current is None or remaining < current:
                self.sock.settimeout(remaining)
        data = self.sock.recv(READ_SIZE)
        if not data:
            return False
        self.seen = True
        self.buffer += data
        return True

    def read_line(self, limit: int) -> bytes | None:
        """The next line without its line end; ``None`` at end of stream.

        RFC 9112 section 2.2 lets a recipient take a bare LF for CRLF, as
        http.client does. Raises :class:`_LineTooLongError` for a line
        longer than ``limit`` bytes and :class:`_TruncatedError` when the stream
        ends inside a line.
        """
        searched = 0
        while True:
            end = self.buffer.find(b"\n", searched)
            if end >= 0:
                if end > limit:
                    raise _LineTooLongError(f"a line is longer than {limit} bytes")
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buffer) > limit:
                raise _LineTooLongError(f"a line is longer than {limit} bytes")
            searched = len(self.buffer)
            if not self.fill():
                if self.buffer:
                    raise _TruncatedError
                return None

    def read_some(self, size: int) -> bytes:
        """Up to ``size`` bytes as soon as any have arrived; ``b""`` at the end."""
        buffer = self.buffer
        if buffer:
            data = bytes(buffer[:size])
            del buffer[:size]
            return data
        return self.sock.recv(size)

    def is_usable(self) -> bool:
        """Whether an idle connection can carry a new request."""
        # An idle keep-alive connection has nothing to read. If it is
        # readable, the server has closed it (EOF) or sent something
        # unasked: either way it cannot carry a new request.
        if self.buffer:
            return False
        sock = self.sock
        try:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return False
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                return not poller.poll(0)
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


class _Head:
    """The status line and headers of a final answer."""

    __slots__ = ("headers", "reason", "status", "version")

    def __init__(self, version: int, status: int, reason: str, headers: Headers):
        #: The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1 and later.
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers


def _read_head(connection: _Connection) -> _Head:
    """Read the status line and headers of the final answer, skipping 1xx.

    Raises :class:`_NoAnswerError` when the connection ends before any
    byte, :class:`_MalformedError` for anything else that is not an answer.
    """
    connection.seen = bool(connection.buffer)
    for _ in range(_MAX_INTERIM + 1):
        try:
            line = connection.read_line(MAX_HEAD_BYTES)
        except _TruncatedError:
            raise _MalformedError(
                "the connection closed inside the status line"
            ) from None
        if line is None:
            if connection.seen:
                raise _MalformedError("the connection closed before the status line")
            raise _NoAnswerError
        version, status, reason = _parse_status_line(line)
        headers = _read_fields(connection, MAX_HEAD_BYTES - len(line), "headers")
        if status >= 200:
            return _Head(version, status, reason, headers)
        # RFC 9110 section 15.2: a client must accept interim answers it
        # did not ask for and wait for the final one. 101 would mean the
        # connection now speaks another protocol, which was never asked.
        if status == 101:
            raise _MalformedError("the server switched protocols without being asked")
    raise _MalformedError(f"more than {_MAX_INTERIM} interim (1xx) answers")


def _parse_status_line(line: bytes) -> tuple[int, int, str]:
    # RFC 9112 section 4: HTTP-version SP status-code SP [ reason-phrase ].
    version, _, rest = line.partition(b" ")
    if (
        len(version) != 8
        or not version.startswith(b"HTTP/1.")
        or not version[7:].isdigit()
    ):
        raise _MalformedError("the status line is not HTTP/1.x")
    code, _, reason = rest.partition(b" ")
    if len(code) != 3 or not code.isdigit() or code < b"100" or code >= b"600":
        raise _MalformedError("the status code is not a number from 100 to 599")
    # A minor version above 1 is read as 1.1 (RFC 9110 section 2.5).
    return min(version[7] - 0x30, 1), int(code), reason.decode("latin-1")


def _read_fields(connection: _Connection, budget: int, what: str) -> Headers:
    """Read header (or trailer) lines up to the empty line that ends them."""
    raw: list[tuple[str, str]] = []
    while True:
        try:
            line = connection.read_line(budget)
        except _TruncatedError:
            line = None
        except _LineTooLongError:
            raise _MalformedError(
                f"{what} larger than {MAX_HEAD_BYTES} bytes"
            ) from None
        if line is None:
            raise _MalformedError(f"the connection closed inside the {what}")
        budget -= len(line) + 2
        if budget < 0:
            raise _MalformedError(f"{what} larger than {MAX_HEAD_BYTES} bytes")
        if not line:
            return Headers(raw)
        # RFC 9110 section 5.5: CR and NUL inside a field are refused.
        if b"\r" in line or b"\0" in line:
            raise _MalformedError(f"a CR or NUL inside the {what}")
        if line[0] in b" \t":
            # RFC 9112 section 5.2: a user agent replaces an obsolete line
            # folding with a space.
            if not raw:
                raise _MalformedError(f"the {what} start with a folded line")
            field, text = raw[-1]
            folded = line.strip(b" \t").decode("latin-1")
            raw[-1] = (field, f"{text} {folded}" if text else folded)
            continue
        if len(raw) >= MAX_HEADERS:
            raise _MalformedError(f"more than {MAX_HEADERS} {what}")
        name, colon, value = line.partition(b":")
        # RFC 9112 section 5.1: no whitespace between the name and the colon.
        if not colon or not name or name.translate(None, _TCHAR):
            raise _MalformedError(f"a line of the {what} is not 'name: value'")
        raw.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))


class Headers(dict[str, str]):
    """The headers of an answer: lower-case names to values.

    Lookups (``[]``, ``get``, ``in``) ignore case. A name that came on
    several lines maps to its values joined with ``", "`` (RFC 9110
    section 5.3); :attr:`raw` keeps every line as received, in order, as
    (name, value) pairs, and :meth:`get_all` reads the values of one name
    from it (for the rare header, like ``Set-Cookie``, that must not be
    joined).
    """

    __slots__ = ("raw",)

    def __init__(self, raw: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.raw: list[tuple[str, str]] = raw or []
        for name, value in self.raw:
            key = name.lower()
            previous = dict.get(self, key)
            dict.__setitem__(
                self, key, value if previous is None else f"{previous}, {value}"
            )

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    if TYPE_CHECKING:
        # dict.get's overloads, for the checker only.
        @overload
        def get(self, name: str, default: None = None, /) -> str | None: ...
        @overload
        def get(self, name: str, default: str, /) -> str: ...
        @overload
        def get(self, name: str, default: _T, /) -> str | _T: ...

    def get(self, name: str, default: object = None, /) -> object:
        return dict.get(self, name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, one per line it came on."""
        key = name.lower()
        return [value for field, value in self.raw if field.lower() == key]


def _tokens(value: str | None) -> list[str]:
    """The comma-separated tokens of a header value, lower-case."""
    if not value:
        return []
    return [part.strip(" \t").lower() for part in value.split(",") if part.strip()]


class Response:
    """An answer whose status and headers have arrived; the body follows.

    ``headers`` is a :class:`Headers`: lower-case names to values, looked
    up without regard to case, repeated headers joined with ``", "``. Read
    the body with :meth:`read1` or by iterating (each chunk as soon as it
    arrives), or whole with :meth:`read`. Reading to the end returns the
    connection to the pool; :meth:`close` before the end closes the
    connection instead, so an abandoned stream never leaks.
    """

    def __init__(
        self,
        transport: HTTPTransport,
        key: _Key,
        connection: _Connection,
        head: _Head,
        exchange: _Exchange,
        reused: bool,
    ) -> None:
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.url = exchange.url
        #: Whether the request went over a pooled connection.
        self.reused = reused
        self._transport = transport
        self._key = key
        self._connection: _Connection | None = connection
        self._sock = connection.sock
        self._exchange = exchange
        self._done = False
        self._complete = False
        # Bytes left of the body (_LENGTH) or of the current chunk
        # (_CHUNKED), and whether a chunk's closing CRLF is still unread.
        self._remaining = 0
        self._chunk_end_due = False
        self._framing, self._will_close = _framing(exchange.method, head)
        if self._framing == _LENGTH:
            self._remaining = _content_length(head.headers)

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read1():
            yield chunk

    @property
    def complete(self) -> bool:
        """Whether the body has been read to its end."""
        return self._complete

    def read1(self, size: int = READ_SIZE) -> bytes:
        """Up to ``size`` bytes of the body as soon as any arrive; ``b""`` at the end.

        Raises :class:`TimeoutError` (phase ``idle`` or ``total``) or
        :class:`TransportError` with ``response_started`` set; the
        connection is closed first.
        """
        if self._done:
            return b""
        try:
            wait = self._exchange.wait("idle", started=True)
        except TimeoutError:
            self._abandon()
            raise
        try:
            # Setting a timeout costs a system call; a stream read in many
            # small pieces mostly waits with the same one.
            if wait.seconds != self._sock.gettimeout():
                self._sock.settimeout(wait.seconds)
            data = self._read_body(max(size, 1))
        except _SocketTimeout as exc:
            self._abandon()
            raise wait.error(self.url, started=True) from exc
        except (OSError, ValueError, _MalformedError, _TruncatedError) as exc:
            self._abandon()
            if self._transport._aborted:
                raise _aborted(self.url, started=True) from exc
            if isinstance(exc, _TruncatedError):
                reason = (
                    str(exc) or "the connection closed before the end of the answer"
                )
            elif isinstance(exc, _MalformedError):
                reason = f"malformed answer: {exc}"
            else:
                reason = f"connection lost while reading the answer: {_describe(exc)}"
            raise TransportError(reason, url=self.url, response_started=True) from exc
        if not data:
            if self._framing == _UNTIL_CLOSE and self._transport._aborted:
                # The end of the connection is the end of this body, but
                # here it was abort() that ended it.
                self._abandon()
                raise _aborted(self.url, started=True)
            self._finish()
        return data

    def read(self, limit: int | None = None) -> bytes:
        """The rest of the body.

        Raises :class:`TransportError` when it exceeds ``limit`` bytes.
        """
        chunks = []
        size = 0
        for chunk in self:
            size += len(chunk)
            if limit is not None and size > limit:
                self.close()
                raise TransportError(
                    f"answer body larger than {limit} bytes",
                    url=self.url,
                    response_started=True,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Release the connection: pooled if the body was read, else closed."""
        if not self._done:
            self._abandon()

    def _read_body(self, size: int) -> bytes:
        connection = self._connection
        assert connection is not None  # set until _done
        framing = self._framing
        if framing == _LENGTH:
            if not self._remaining:
                return b""
            data = connection.read_some(min(size, self._remaining))
            if not data:
                raise _TruncatedError(
                    f"connection closed {self._remaining} bytes before the end "
                    "of the answer"
                )
            self._remaining -= len(data)
            return data
        if framing == _CHUNKED:
            if not self._remaining and not self._next_chunk(connection):
                return b""
            data = connection.read_some(min(size, self._remaining))
            if not data:
                raise _TruncatedError
            self._remaining -= len(data)
            self._chunk_end_due = True
            return data
        if framing == _UNTIL_CLOSE:
            return connection.read_some(size)
        return b""

    def _next_chunk(self, connection: _Connection) -> bool:
        """Read up to the next chunk's data; ``False`` after the last chunk."""
        # RFC 9112 section 7.1: chunk = chunk-size [ chunk-ext ] CRLF
        # chunk-data CRLF; the body ends with a chunk of size 0, then
        # trailer fields and an empty line.
        if self._chunk_end_due:
            line = connection.read_line(_MAX_CHUNK_LINE)
            if line is None:
                raise _TruncatedError
            if line:
                raise _MalformedError("a chunk is longer than its size")
            self._chunk_end_due = False
        line = connection.read_line(_MAX_CHUNK_LINE)
        if line is None:
            raise _TruncatedError
        size = _chunk_size(line)
        if size:
            self._remaining = size
            return True
        # Trailer fields: read so the connection can be reused, not used.
        _read_fields(connection, MAX_HEAD_BYTES, "trailers")
        return False

    def _finish(self) -> None:
        self._done = True
        self._complete = True
        connection, self._connection = self._connection, None
        self._transport._release(self._sock)
        if connection is None:
            return
        if self._will_close or connection.buffer:
            # Bytes after the end of the answer were never asked for: the
            # connection is out of step with its requests.
            connection.close()
        else:
            self._transport._checkin(self._key, connection)

    def _abandon(self) -> None:
        # Unread bytes would be taken for the next answer: the connection
        # cannot be reused, whatever state the stream was in.
        self._done = True
        connection, self._connection = self._connection, None
        self._transport._release(self._sock)
        if connection is not None:
            connection.close()


def _framing(method: str, head: _Head) -> tuple[int, bool]:
    """How the body ends, and whether the connection closes after it.

    Follows RFC 9112 section 6.3 in its order. Raises
    :class:`_MalformedError` for a Content-Length that is not one number.
    """
    headers = head.headers
    connection = _tokens(headers.get("connection"))
    if head.version == 0:
        # HTTP/1.0 closes after each answer unless it says otherwise.
        will_close = "keep-alive" not in connection
    else:
        will_close = "close" in connection
    if method == "HEAD" or head.status in {204, 304}:
        return _NO_BODY, will_close
    codings = _tokens(headers.get("transfer-encoding"))
    if codings:
        # Transfer-Encoding overrides Content-Length; an answer with both
        # may be an attempt at response splitting, so the connection is
        # not used again. Without chunked last, only the end of the
        # connection ends the body.
        will_close = will_close or "content-length" in headers
        if codings[-1] == "chunked":
            return _CHUNKED, will_close or head.version == 0
        return _UNTIL_CLOSE, True
    if "content-length" in headers:
        return _LENGTH, will_close
    return _UNTIL_CLOSE, True


def _content_length(headers: Headers) -> int:
    # RFC 9110 section 8.6: a list of identical values is one value; any
    # other list, or anything not a decimal number, is unrecoverable.
    values = {part.strip(" \t") for part in headers["content-length"].split(",")}
    if len(values) != 1:
        raise _MalformedError("Content-Length has several different values")
    value = values.pop()
    if not value or not value.isascii() or not value.isdigit() or len(value) > 18:
        raise _MalformedError("Content-Length is not a number")
    return int(value)


def _chunk_size(line: bytes) -> int:
    # chunk-size is 1*HEXDIG; chunk extensions (";name=value") and the
    # whitespace allowed around them are dropped.
    digits = line.partition(b";")[0].strip(b" \t")
    if not digits or digits.translate(None, _HEX) or len(digits) > 15:
        raise _MalformedError("a chunk size is not a hexadecimal number")
    return int(digits, 16)


# Writing the request.


def _request_head(
    method: str, target: str, host: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    """The request line and headers, ending with the empty line.

    Raises :class:`ValidationError` for anything that would not be read
    back as it was meant: a method that is not a token, a target with
    whitespace or control characters, a header name that is not a token,
    a value with CR, LF or NUL, or text that is not Latin-1.
    """
    if not _is_token(method):
        raise ValidationError("method", "must be an HTTP token, like GET or POST")
    if not (target.isascii() and target.isprintable()) or " " in target:
        raise ValidationError(
            "url", "must be ASCII without spaces or control characters"
        )
    lines = [f"{method} {target} HTTP/1.1"]
    names = set()
    for name, value in headers.items():
        if not _is_token(name):
            raise ValidationError("headers", "a header name must be an HTTP token")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValidationError(
                f"headers[{name}]", "must not contain CR, LF or NUL characters"
            )
        lowered = name.lower()
        names.add(lowered)
        # The body's own length is sent below; a second one would let the
        # two disagree (RFC 9112 section 6.3).
        if lowered != "content-length":
            lines.append(f"{name}: {value}")
    if "host" not in names:
        lines.append(f"Host: {host}")
    if body or method in _BODY_METHODS or "content-length" in names:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise ValidationError("headers", "header values must be Latin-1 text") from None


def _is_token(text: str) -> bool:
    return bool(text) and text.isascii() and not text.encode().translate(None, _TCHAR)


def _aborted(url: str, *, started: bool = False) -> TransportError:
    return TransportError("the request was aborted", url=url, response_started=started)


def _shut_down(sock: socket.socket) -> None:
    # shutdown(), unlike close(), wakes a thread blocked reading the socket.
    # The plain socket method is used even on a TLS socket: the TLS layer
    # is left alone while another thread may be inside it. Already closed
    # or never connected: nothing to wake.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _safe_url(url: str) -> str:
    # Query strings may carry presigned credentials; errors never show them.
    return url.split("?", 1)[0]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
