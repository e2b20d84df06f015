"""A small pooled HTTP/1.1 client on the standard library's ``http.client``.

This is the synchronous transport: it is what runs on Lambda, where every
millisecond of import time counts, so it loads nothing beyond the standard
library (no aiohttp, no botocore, no urllib3). It knows nothing about
AgentCore: it sends a method, a URL, headers and a body, and hands back a
:class:`Response` whose body is read incrementally.

What it adds to ``http.client``:

- keep-alive: idle connections are pooled per (scheme, host, port) and
  reused; a pooled connection the server has closed meanwhile is detected
  before use, or, when sending on it fails, replaced once by a new
  connection (the server cannot have received the whole request);
- one TLS context for the process, created on first use;
- bounded waits for each phase (``connect``, ``first_byte``, ``idle``
  between reads of the body, ``total``), each reported as
  :class:`~agentcore_bridge.exceptions.TimeoutError` with its ``phase``;
- errors of ``socket``, ``ssl`` and ``http.client`` translated into
  :class:`~agentcore_bridge.exceptions.TransportError`, with
  ``response_started`` telling whether any byte of the answer had arrived;
- :meth:`HTTPTransport.reset` to drop every pooled connection, for Lambda
  SnapStart (a restored snapshot must not reuse sockets made before it);
- :meth:`HTTPTransport.abort` to stop, from another thread, every request
  in flight (a thread blocked waiting for an answer or a body wakes up).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import NamedTuple
from urllib.parse import urlsplit

from ..agentcore import Timeouts
from ..exceptions import ConfigurationError, TimeoutError, TransportError

__all__ = ["HTTPTransport", "Response", "default_tls_context"]

logger = logging.getLogger("agentcore_bridge.http")

#: Bytes asked for per read of a streamed body; a read returns as soon as
#: any bytes are there, so this bounds memory, not latency.
READ_SIZE = 64 * 1024

_Key = tuple[str, str, int]

# socket.timeout is the builtin TimeoutError since Python 3.10; this name
# keeps it apart from the package's own TimeoutError.
_SocketTimeout = socket.timeout

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
    """Connect to ``host:port`` (with TLS when given a context), as http.client does.

    Done here rather than by ``HTTPConnection.connect``: given the host as
    text, ``getaddrinfo`` and ``ssl`` encode it with the ``idna`` codec,
    whose first use imports ``unicodedata`` and costs several milliseconds
    of every Lambda cold start. An ASCII host name (every AWS endpoint) is
    passed as bytes, which both take as they are.
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
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        # Sockets of requests in flight, for abort().
        self._busy: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

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
    ) -> Response:
        """Send a request and return once the status line and headers are in.

        ``url`` is sent as given (its path already percent-encoded).
        ``deadline`` is a :func:`time.monotonic` time by which everything,
        body included, must be done; by default ``timeouts.total`` from now.
        The caller must read the body to the end or :meth:`Response.close`
        it; only then is the connection free again.

        Raises :class:`TimeoutError` (phase ``connect``, ``first_byte`` or
        ``total``) or :class:`TransportError`, neither leaving anything open;
        :class:`ConfigurationError` for a closed transport or a URL that is
        not ``http://`` or ``https://``.
        """
        if self._closed:
            raise ConfigurationError("the transport is closed; make a new one")
        timeouts = timeouts or self.timeouts
        if deadline is None and timeouts.total is not None:
            deadline = time.monotonic() + timeouts.total
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigurationError("only http:// and https:// URLs can be sent")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        exchange = _Exchange(
            method, target, headers, body, timeouts, deadline, _safe_url(url)
        )

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

    def _checkout(self, key: _Key) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                pool = self._idle.get(key)
                if not pool:
                    return None
                connection = pool.pop()
            if _is_usable(connection):
                return connection
            connection.close()

    def _checkin(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                pool = self._idle.setdefault(key, [])
                if len(pool) < self._max_idle:
                    pool.append(connection)
                    return
        connection.close()

    def _connect(self, exchange: _Exchange, key: _Key) -> http.client.HTTPConnection:
        scheme, host, port = key
        wait = exchange.wait("connect")
        connection: http.client.HTTPConnection
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._tls_context or default_tls_context()
            connection = http.client.HTTPSConnection(
                host, port, timeout=wait.seconds, context=context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=wait.seconds)
        try:
            connection.sock = _open_socket(host, port, wait.seconds, context)
        except _SocketTimeout as exc:
            connection.close()
            raise wait.error(exchange.url) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise TransportError(
                f"could not connect to {host}:{port}: {_describe(exc)}",
                url=exchange.url,
            ) from exc
        if self._closed:
            # abort() ran while connecting.
            connection.close()
            raise _aborted(exchange.url)
        logger.debug("connected to %s:%s", host, port)
        return connection

    # One request on one connection.

    def _send(
        self,
        exchange: _Exchange,
        key: _Key,
        connection: http.client.HTTPConnection,
        *,
        reused: bool,
    ) -> Response:
        sock = connection.sock
        assert sock is not None  # connected above, or checked when pooled
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
            return self._exchange(exchange, key, connection, sock, wait, reused)
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
        connection: http.client.HTTPConnection,
        sock: socket.socket,
        wait: _Wait,
        reused: bool,
    ) -> Response:
        # Sending. A pooled connection that fails here was closed by the
        # server while idle; the request never arrived whole, so it is
        # sent again on a new connection.
        try:
            sock.settimeout(wait.seconds)
            _write_request(connection, exchange)
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

        # Waiting for the status line and headers. A failure here may come
        # after the server read the request, so it is reported, never
        # hidden: whether to send again is the caller's decision.
        try:
            answer = connection.getresponse()
        except _SocketTimeout as exc:
            connection.close()
            raise wait.error(exchange.url) from exc
        except http.client.RemoteDisconnected as exc:
            connection.close()
            raise TransportError(
                "the server closed the connection without answering",
                url=exchange.url,
            ) from exc
        except http.client.HTTPException as exc:
            connection.close()
            raise TransportError(
                f"malformed answer: {_describe(exc)}",
                url=exchange.url,
                response_started=True,
            ) from exc
        except OSError as exc:
            connection.close()
            raise TransportError(
                f"connection failed: {_describe(exc)}", url=exchange.url
            ) from exc
        return Response(
            self,
            key,
            connection,
            sock=sock,
            answer=answer,
            exchange=exchange,
            reused=reused,
        )


class _Exchange(NamedTuple):
    """The parts of one request and its time budget."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    timeouts: Timeouts
    deadline: float | None
    url: str

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


class _Wait(NamedTuple):
    """How long to wait, and what to report when the wait runs out."""

    seconds: float
    phase: str
    limit: float

    def error(self, url: str, *, started: bool = False) -> TimeoutError:
        return TimeoutError(self.phase, self.limit, url=url, response_started=started)


class _StaleConnectionError(Exception):
    """A pooled connection failed while the request was being sent."""


class Response:
    """An answer whose status and headers have arrived; the body follows.

    ``headers`` maps lower-case names to values (repeated headers joined
    with ``", "``). Read the body with :meth:`read1` or by iterating (each
    chunk as soon as it arrives), or whole with :meth:`read`. Reading to the
    end returns the connection to the pool; :meth:`close` before the end
    closes the connection instead, so an abandoned stream never leaks.
    """

    def __init__(
        self,
        transport: HTTPTransport,
        key: _Key,
        connection: http.client.HTTPConnection,
        *,
        sock: socket.socket,
        answer: http.client.HTTPResponse,
        exchange: _Exchange,
        reused: bool,
    ) -> None:
        self.status = answer.status
        self.reason = answer.reason
        self.headers = _headers(answer)
        self.url = exchange.url
        #: Whether the request went over a pooled connection.
        self.reused = reused
        self._transport = transport
        self._key = key
        self._connection: http.client.HTTPConnection | None = connection
        self._sock = sock
        self._answer = answer
        self._exchange = exchange
        self._done = False
        self._complete = False

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
            data = self._answer.read1(size)
        except _SocketTimeout as exc:
            self._abandon()
            raise wait.error(self.url, started=True) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._abandon()
            raise TransportError(
                f"connection lost while reading the answer: {_describe(exc)}",
                url=self.url,
                response_started=True,
            ) from exc
        if not data:
            # http.client returns a short read, not an error, when the
            # connection ends before Content-Length bytes arrived.
            if self._answer.length:
                missing = self._answer.length
                self._abandon()
                raise TransportError(
                    f"connection closed {missing} bytes before the end of the answer",
                    url=self.url,
                    response_started=True,
                )
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

    def _finish(self) -> None:
        self._done = True
        self._complete = True
        connection, self._connection = self._connection, None
        self._transport._release(self._sock)
        self._answer.close()
        if connection is None:
            return
        if self._answer.will_close or connection.sock is None:
            connection.close()
        else:
            self._transport._checkin(self._key, connection)

    def _abandon(self) -> None:
        # Unread bytes would be taken for the next answer: the connection
        # cannot be reused, whatever state the stream was in.
        self._done = True
        connection, self._connection = self._connection, None
        self._transport._release(self._sock)
        self._answer.close()
        if connection is not None:
            connection.close()


def _write_request(connection: http.client.HTTPConnection, exchange: _Exchange) -> None:
    has_host = any(name.lower() == "host" for name in exchange.headers)
    connection.putrequest(
        exchange.method,
        exchange.target,
        skip_host=has_host,
        skip_accept_encoding=True,
    )
    for name, value in exchange.headers.items():
        connection.putheader(name, value)
    if exchange.body or exchange.method in {"POST", "PUT", "PATCH"}:
        connection.putheader("Content-Length", str(len(exchange.body)))
    # One write for head and body avoids a Nagle/delayed-ACK stall.
    connection.endheaders(exchange.body or None)


def _aborted(url: str) -> TransportError:
    return TransportError("the request was aborted", url=url)


def _shut_down(sock: socket.socket) -> None:
    # shutdown(), unlike close(), wakes a thread blocked reading the socket.
    # The plain socket method is used even on a TLS socket: the TLS layer
    # is left alone while another thread may be inside it. Already closed
    # or never connected: nothing to wake.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _is_usable(connection: http.client.HTTPConnection) -> bool:
    # An idle keep-alive connection has nothing to read. If it is readable,
    # the server has closed it (EOF) or sent something unasked: either way
    # it cannot carry a new request.
    sock = connection.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _headers(answer: http.client.HTTPResponse) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in answer.getheaders():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _safe_url(url: str) -> str:
    # Query strings may carry presigned credentials; errors never show them.
    return url.split("?", 1)[0]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
