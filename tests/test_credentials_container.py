"""The container credentials provider against a real endpoint on loopback.

``CredentialsEndpoint`` is a small ``http.server`` that plays the ECS task
credentials endpoint and the Lambda (SnapStart) full-URI endpoint: it checks
the ``Authorization`` token, hands out numbered expiring credentials, counts
the fetches it saw, and fails on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcore_bridge.credentials import (
    ContainerProvider,
    Credentials,
    RefreshingCredentials,
    default_credentials,
)
from agentcore_bridge.exceptions import CredentialsFetchError, ValidationError

# Markers that make leaks easy to spot: every secret the endpoint hands out
# contains SECRET_MARK, every authorization token TOKEN_MARK.
SECRET_MARK = "S3CR3T"
TOKEN_MARK = "T0K3N"


@pytest.fixture(autouse=True)
def isolated_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS_* variable of the developer's may reach these tests."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


def iso_8601(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class CredentialsEndpoint:
    """The state and behaviour of the fake credentials endpoint for one test."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.expected_token: str | None = f"first-{TOKEN_MARK}"
        self.mode = "ok"
        self.lifetime = 3600.0
        self.clock: Callable[[], float] = time.time
        self.delay = 0.0
        self.seen_tokens: list[str | None] = []
        self.seen_paths: list[str] = []
        self.release = threading.Event()
        self._seen = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/2021-04-23/credentials"

    @property
    def fetches(self) -> int:
        return len(self.seen_tokens)

    def environ(self, **extra: str) -> dict[str, str]:
        """The variables Lambda SnapStart sets, pointing here."""
        environ = {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": f"first-{TOKEN_MARK}",
        }
        environ.update(extra)
        return environ

    def wait_for_fetches(self, count: int, timeout: float = 10.0) -> int:
        """Wait until ``count`` requests have arrived; return how many did.

        A client that gave up on a request returns before the server's
        thread has necessarily read it.
        """
        with self._seen:
            self._seen.wait_for(lambda: len(self.seen_tokens) >= count, timeout)
            return len(self.seen_tokens)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._seen:
            self.seen_tokens.append(request.headers.get("Authorization"))
            self.seen_paths.append(request.path)
            number = len(self.seen_tokens)
            self._seen.notify_all()
        # The client may have given up already (the timeout tests).
        with contextlib.suppress(OSError):
            self._answer(request, number)

    def _answer(self, request: BaseHTTPRequestHandler, number: int) -> None:
        if self.expected_token is not None and (
            request.headers.get("Authorization") != self.expected_token
        ):
            self._send(request, 401, b'{"message": "bad token"}')
            return
        if self.mode == "hang":
            self.release.wait(10)
        if self.mode == "trickle":
            self._trickle(request)
            return
        if self.mode == "trickle-headers":
            self._trickle_headers(request)
            return
        if self.delay:
            time.sleep(self.delay)
        document: dict[str, object] = {
            "AccessKeyId": f"ASIA{number:04d}",
            "SecretAccessKey": f"secret-{number}-{SECRET_MARK}",
            "Token": f"session-{number}-{SECRET_MARK}",
            "Expiration": iso_8601(self.clock() + self.lifetime),
        }
        if self.mode == "500":
            self._send(request, 500, b'{"message": "internal"}')
        elif self.mode == "invalid-json":
            self._send(request, 200, f'{{"SecretAccessKey": "{SECRET_MARK}"'.encode())
        elif self.mode == "missing-fields":
            del document["AccessKeyId"]
            self._send(request, 200, json.dumps(document).encode())
        elif self.mode == "not-an-object":
            self._send(request, 200, b"[]")
        elif self.mode == "bad-expiration":
            document["Expiration"] = "soon"
            self._send(request, 200, json.dumps(document).encode())
        elif self.mode == "huge":
            self._send(request, 200, b" " * (200 * 1024) + b"{}")
        elif self.mode == "deeply-nested":
            # Small enough for the size limit, too deep for the JSON decoder.
            self._send(request, 200, b"[" * 50000)
        else:
            self._send(request, 200, json.dumps(document).encode())

    def _trickle(self, request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "1000")
        request.end_headers()
        for _ in range(1000):
            request.wfile.write(b" ")
            request.wfile.flush()
            if self.release.wait(0.02):
                return

    def _trickle_headers(self, request: BaseHTTPRequestHandler) -> None:
        # One byte of one endless header line at a time, each well within
        # the timeout: the answer's head never ends.
        request.wfile.write(b"HTTP/1.1 200 OK\r\nX-Padding: ")
        for _ in range(1000):
            request.wfile.write(b"a")
            request.wfile.flush()
            if self.release.wait(0.02):
                return

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


class EndpointServer(ThreadingHTTPServer):
    """One server for the module; each test installs its own endpoint state."""

    daemon_threads = True
    current: CredentialsEndpoint | None = None


class Handler(BaseHTTPRequestHandler):
    server: EndpointServer

    def do_GET(self) -> None:
        assert self.server.current is not None
        self.server.current.handle(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[EndpointServer]:
    server = EndpointServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def endpoint(server: EndpointServer) -> Iterator[CredentialsEndpoint]:
    endpoint = CredentialsEndpoint(server)
    server.current = endpoint
    try:
        yield endpoint
    finally:
        # Lets a handler still hanging from a timeout test finish.
        endpoint.release.set()


def assert_no_secrets(text: str) -> None:
    assert SECRET_MARK not in text
    assert TOKEN_MARK not in text


def fetch_error(provider: ContainerProvider) -> CredentialsFetchError:
    with pytest.raises(CredentialsFetchError) as caught:
        provider.load()
    assert caught.value.provider == "container"
    assert_no_secrets(str(caught.value))
    assert_no_secrets(repr(caught.value))
    return caught.value


# Fetching.


def test_full_uri_with_token_returns_expiring_credentials(
    endpoint: CredentialsEndpoint,
) -> None:
    credentials = ContainerProvider(endpoint.environ()).load()
    assert credentials is not None
    assert credentials.access_key_id == "ASIA0001"
    assert credentials.secret_access_key == f"secret-1-{SECRET_MARK}"
    assert credentials.session_token == f"session-1-{SECRET_MARK}"
    assert credentials.expiration is not None
    assert credentials.expiration > time.time() + 3000
    assert endpoint.seen_tokens == [f"first-{TOKEN_MARK}"]


def test_token_file_is_read_again_at_every_fetch(
    endpoint: CredentialsEndpoint, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"first-{TOKEN_MARK}\n")
    environ = endpoint.environ(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file))
    del environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    provider = ContainerProvider(environ)
    assert provider.load() is not None

    token_file.write_text(f"rotated-{TOKEN_MARK}")
    endpoint.expected_token = f"rotated-{TOKEN_MARK}"
    assert provider.load() is not None
    assert endpoint.seen_tokens == [f"first-{TOKEN_MARK}", f"rotated-{TOKEN_MARK}"]


def test_token_file_wins_over_the_token_variable(
    endpoint: CredentialsEndpoint, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"from-file-{TOKEN_MARK}")
    endpoint.expected_token = f"from-file-{TOKEN_MARK}"
    environ = endpoint.environ(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file))
    assert ContainerProvider(environ).load() is not None


def test_without_a_token_no_authorization_header_is_sent(
    endpoint: CredentialsEndpoint,
) -> None:
    endpoint.expected_token = None
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url}
    assert ContainerProvider(environ).load() is not None
    assert endpoint.seen_tokens == [None]


def test_query_string_reaches_the_endpoint_but_not_error_messages(
    endpoint: CredentialsEndpoint,
) -> None:
    environ = endpoint.environ(
        AWS_CONTAINER_CREDENTIALS_FULL_URI=endpoint.url + "?sig=" + SECRET_MARK
    )
    endpoint.mode = "500"
    error = fetch_error(ContainerProvider(environ, retries=0))
    assert endpoint.seen_paths == [f"/2021-04-23/credentials?sig={SECRET_MARK}"]
    assert "/2021-04-23/credentials" in str(error)


def test_missing_token_file_is_a_fetch_error(
    endpoint: CredentialsEndpoint, tmp_path: Path
) -> None:
    environ = endpoint.environ(
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tmp_path / "absent")
    )
    error = fetch_error(ContainerProvider(environ, retries=0))
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in str(error)
    assert endpoint.fetches == 0


@pytest.mark.parametrize("bad", ["a\r\nX-Injected: 1", "line\nbreak", "cr\ronly"])
def test_token_with_cr_or_lf_is_refused_before_any_request(
    endpoint: CredentialsEndpoint, bad: str
) -> None:
    environ = endpoint.environ(AWS_CONTAINER_AUTHORIZATION_TOKEN=bad)
    with pytest.raises(ValidationError) as caught:
        ContainerProvider(environ).load()
    assert caught.value.field == "AWS_CONTAINER_AUTHORIZATION_TOKEN"
    assert bad not in str(caught.value)
    assert endpoint.fetches == 0


def test_token_file_with_an_inner_line_break_is_refused(
    endpoint: CredentialsEndpoint, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"one-{TOKEN_MARK}\ntwo\n")
    environ = endpoint.environ(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file))
    with pytest.raises(ValidationError) as caught:
        ContainerProvider(environ).load()
    assert caught.value.field == "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
    assert_no_secrets(str(caught.value))


# Failures.


def test_wrong_token_fails_at_once_without_showing_it(
    endpoint: CredentialsEndpoint,
) -> None:
    environ = endpoint.environ(AWS_CONTAINER_AUTHORIZATION_TOKEN=f"wrong-{TOKEN_MARK}")
    error = fetch_error(ContainerProvider(environ, retries=2))
    assert "HTTP 401" in str(error)
    assert not error.retryable
    assert endpoint.fetches == 1


def test_server_error_is_retried_then_reported(endpoint: CredentialsEndpoint) -> None:
    endpoint.mode = "500"
    error = fetch_error(ContainerProvider(endpoint.environ(), retries=2))
    assert "HTTP 500" in str(error)
    assert error.retryable
    assert endpoint.fetches == 3


def test_invalid_json_is_a_fetch_error(endpoint: CredentialsEndpoint) -> None:
    endpoint.mode = "invalid-json"
    error = fetch_error(ContainerProvider(endpoint.environ(), retries=1))
    assert "invalid JSON" in str(error)
    assert error.__cause__ is None
    assert endpoint.fetches == 2


def test_too_deeply_nested_json_is_a_fetch_error(
    endpoint: CredentialsEndpoint,
) -> None:
    """Not the decoder's RecursionError, which no caller expects."""
    endpoint.mode = "deeply-nested"
    error = fetch_error(ContainerProvider(endpoint.environ(), retries=0))
    assert "invalid JSON" in str(error)
    assert error.__cause__ is None
    assert endpoint.fetches == 1


def test_missing_fields_are_named_without_their_neighbours_values(
    endpoint: CredentialsEndpoint,
) -> None:
    endpoint.mode = "missing-fields"
    error = fetch_error(ContainerProvider(endpoint.environ()))
    assert "AccessKeyId" in str(error)
    assert not error.retryable
    assert endpoint.fetches == 1


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("not-an-object", "not an object"),
        ("bad-expiration", "Expiration"),
        ("huge", "more than"),
    ],
)
def test_answers_that_are_not_credentials_are_fetch_errors(
    endpoint: CredentialsEndpoint, mode: str, words: str
) -> None:
    endpoint.mode = mode
    error = fetch_error(ContainerProvider(endpoint.environ()))
    assert words in str(error)
    assert endpoint.fetches == 1


@pytest.mark.timeout(20)
def test_hanging_endpoint_fails_after_timeout_and_retries(
    endpoint: CredentialsEndpoint,
) -> None:
    """Bounded by timeout x attempts; pytest-timeout fails the test otherwise."""
    endpoint.mode = "hang"
    error = fetch_error(ContainerProvider(endpoint.environ(), timeout=0.2, retries=1))
    assert "did not answer within 0.2 s" in str(error)
    assert error.retryable
    assert endpoint.wait_for_fetches(2) == 2


@pytest.mark.timeout(20)
def test_trickling_endpoint_fails_within_the_attempt_timeout(
    endpoint: CredentialsEndpoint,
) -> None:
    """Each byte comes within the timeout, the whole body does not."""
    endpoint.mode = "trickle"
    error = fetch_error(ContainerProvider(endpoint.environ(), timeout=0.3, retries=0))
    assert "did not answer within 0.3 s" in str(error)
    assert endpoint.fetches == 1


@pytest.mark.timeout(20)
def test_endpoint_trickling_its_headers_fails_within_the_attempt_timeout(
    endpoint: CredentialsEndpoint,
) -> None:
    """Each byte of the head comes within the timeout, the whole head does not."""
    endpoint.mode = "trickle-headers"
    started = time.monotonic()
    error = fetch_error(ContainerProvider(endpoint.environ(), timeout=0.3, retries=0))
    assert "did not answer within 0.3 s" in str(error)
    assert time.monotonic() - started < 5
    assert endpoint.fetches == 1


def test_closed_port_is_a_fetch_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{port}/creds",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": f"t-{TOKEN_MARK}",
    }
    error = fetch_error(ContainerProvider(environ, retries=0))
    assert "cannot reach http://127.0.0.1" in str(error)


def test_nothing_secret_is_logged(
    endpoint: CredentialsEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentcore_bridge")
    clock = FakeClock()
    endpoint.clock = clock
    source = RefreshingCredentials(ContainerProvider(endpoint.environ()), clock=clock)
    source.get()
    clock.advance(3600 - 200)
    endpoint.mode = "500"
    source.get()  # advisory refresh fails: logged as a warning
    assert any(record.levelno == logging.WARNING for record in caplog.records)
    assert any("ASIA0001" in record.getMessage() for record in caplog.records)
    assert_no_secrets(caplog.text)


def test_provider_arguments_are_checked() -> None:
    with pytest.raises(ValidationError):
        ContainerProvider({}, timeout=0)
    with pytest.raises(ValidationError):
        ContainerProvider({}, retries=-1)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("retries", 1.5),
        ("retries", "2"),
        ("retries", True),
        ("timeout", "2"),
        ("timeout", float("nan")),
        ("timeout", None),
    ],
)
def test_arguments_of_the_wrong_type_are_refused_at_once(
    argument: str, value: object
) -> None:
    """At construction, not as a TypeError at the first fetch."""
    with pytest.raises(ValidationError) as caught:
        ContainerProvider({}, **{argument: value})  # type: ignore[arg-type]
    assert caught.value.field == argument


# Which endpoints are allowed.


def test_nothing_configured_means_the_provider_does_not_apply() -> None:
    provider = ContainerProvider({})
    assert provider.endpoint_url() is None
    assert provider.load() is None


def test_relative_uri_goes_to_the_ecs_endpoint() -> None:
    environ = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc-123"}
    url = ContainerProvider(environ).endpoint_url()
    assert url == "http://169.254.170.2/v2/credentials/abc-123"


def test_relative_uri_is_fetched_from_the_ecs_endpoint(
    endpoint: CredentialsEndpoint,
) -> None:
    """ECS's form: the path appended to the task endpoint, no Authorization."""
    endpoint.expected_token = None
    environ = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/task-1?x=1"}
    base = f"http://127.0.0.1:{endpoint.server.server_port}"
    provider = ContainerProvider(environ, ecs_endpoint=base)

    assert provider.endpoint_url() == f"{base}/v2/credentials/task-1"
    credentials = provider.load()
    assert credentials is not None
    assert credentials.access_key_id == "ASIA0001"
    assert endpoint.seen_paths == ["/v2/credentials/task-1?x=1"]
    assert endpoint.seen_tokens == [None]


@pytest.mark.parametrize(
    "base",
    [
        "ftp://127.0.0.1",
        "http://127.0.0.1/prefix",
        "http://127.0.0.1?x=1",
        "http://user@127.0.0.1",
        "http://",
    ],
)
def test_the_ecs_endpoint_must_be_a_bare_origin(base: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ContainerProvider({}, ecs_endpoint=base)
    assert caught.value.field == "ecs_endpoint"


def test_relative_uri_wins_over_full_uri() -> None:
    environ = {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "https://example.com/creds",
    }
    assert ContainerProvider(environ).endpoint_url() == (
        "http://169.254.170.2/v2/credentials/abc"
    )


def test_relative_uri_must_start_with_a_slash() -> None:
    environ = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "@evil.example/creds"}
    with pytest.raises(ValidationError) as caught:
        ContainerProvider(environ).load()
    assert caught.value.field == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://127.0.0.1:9001/2021-04-23/credentials", None),
        ("http://127.42.0.7/creds", None),
        ("http://localhost:8080/creds", None),
        ("http://[::1]:8080/creds", None),
        ("http://169.254.170.2/v2/credentials", None),
        ("http://169.254.170.23/v1/credentials", None),
        ("http://[fd00:ec2::23]/v1/credentials", None),
        ("http://[fd00:ec2:0:0::23]/v1/credentials", None),
        ("https://credentials.example.com/creds", None),
        ("HTTPS://10.1.2.3/creds", "https://10.1.2.3/creds"),
        ("https://user:pw@example.com/c?x=1#f", "https://example.com/c"),
    ],
)
def test_allowed_full_uris(uri: str, shown: str | None) -> None:
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}
    assert ContainerProvider(environ).endpoint_url() == (shown or uri)


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/creds",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/creds",
        "http://[fd00:ec2::254]/creds",
        "http://169.254.170.3/creds",
        "http://localhost.example.com/creds",
        "http://127.0.0.1.nip.io/creds",
        "ftp://127.0.0.1/creds",
        "file:///etc/passwd",
        "http:///no-host",
        "not a url",
        "http://[::1/creds",
        "http://127.0.0.1:99999/creds",
    ],
)
def test_refused_full_uris(uri: str) -> None:
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}
    with pytest.raises(ValidationError) as caught:
        ContainerProvider(environ).load()
    assert caught.value.field == "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    assert isinstance(caught.value, ValueError)


@given(address=st.ip_addresses(v=4))
def test_http_is_allowed_exactly_to_loopback_and_the_container_hosts(
    address: ipaddress.IPv4Address,
) -> None:
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://{address}/creds"}
    provider = ContainerProvider(environ)
    if address.is_loopback or str(address) in ("169.254.170.2", "169.254.170.23"):
        assert provider.endpoint_url() == f"http://{address}/creds"
    else:
        with pytest.raises(ValidationError):
            provider.endpoint_url()


@given(address=st.ip_addresses(v=6))
def test_any_host_is_allowed_over_https(address: ipaddress.IPv6Address) -> None:
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"https://[{address}]:8443/c"}
    assert ContainerProvider(environ).endpoint_url() is not None


# Refreshing against the endpoint.


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def refreshing(endpoint: CredentialsEndpoint, **extra: str) -> RefreshingCredentials:
    clock = FakeClock()
    endpoint.clock = clock
    return RefreshingCredentials(
        ContainerProvider(endpoint.environ(**extra)), clock=clock
    )


def test_refresh_in_the_advisory_window_fetches_new_credentials(
    endpoint: CredentialsEndpoint,
) -> None:
    source = refreshing(endpoint)
    clock = endpoint.clock
    assert isinstance(clock, FakeClock)
    assert source.get().access_key_id == "ASIA0001"
    clock.advance(3600 - 301)
    assert source.get().access_key_id == "ASIA0001"
    clock.advance(101)
    assert source.get().access_key_id == "ASIA0002"
    assert endpoint.fetches == 2


def test_failing_endpoint_in_the_advisory_window_keeps_credentials(
    endpoint: CredentialsEndpoint,
) -> None:
    source = refreshing(endpoint)
    clock = endpoint.clock
    assert isinstance(clock, FakeClock)
    source.get()
    clock.advance(3600 - 200)
    endpoint.mode = "500"
    assert source.get().access_key_id == "ASIA0001"
    clock.advance(200 - 30)
    with pytest.raises(CredentialsFetchError):
        source.get()
    endpoint.mode = "ok"
    assert source.get().access_key_id.startswith("ASIA")
    assert source.get().access_key_id != "ASIA0001"


def test_invalidate_after_restore_fetches_with_the_current_token(
    endpoint: CredentialsEndpoint, tmp_path: Path
) -> None:
    """The SnapStart sequence: restore, rotate token, invalidate, fetch."""
    token_file = tmp_path / "token"
    token_file.write_text(f"first-{TOKEN_MARK}")
    source = refreshing(
        endpoint, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file)
    )
    before = source.get()
    token_file.write_text(f"restored-{TOKEN_MARK}")
    endpoint.expected_token = f"restored-{TOKEN_MARK}"
    assert source.get() is before
    source.invalidate()
    assert source.get().access_key_id == "ASIA0002"
    assert endpoint.seen_tokens == [f"first-{TOKEN_MARK}", f"restored-{TOKEN_MARK}"]


def test_credentials_from_the_endpoint_leave_botocore_unloaded(
    endpoint: CredentialsEndpoint,
) -> None:
    """A fresh interpreter served by the endpoint never imports botocore."""
    script = (
        "import sys\n"
        "from agentcore_bridge.credentials import default_credentials\n"
        "print(default_credentials().get().access_key_id)\n"
        "print('botocore' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **endpoint.environ()},
    )
    assert result.stdout.split() == ["ASIA0001", "False"]


def test_twenty_threads_cause_one_fetch(endpoint: CredentialsEndpoint) -> None:
    endpoint.delay = 0.2
    source = default_credentials(endpoint.environ())
    barrier = threading.Barrier(20)
    results: list[Credentials] = []

    def worker() -> None:
        barrier.wait()
        results.append(source.get())

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert endpoint.fetches == 1
    assert len(results) == 20
    assert {credentials.access_key_id for credentials in results} == {"ASIA0001"}


def test_twenty_tasks_cause_one_fetch(endpoint: CredentialsEndpoint) -> None:
    endpoint.delay = 0.2
    source = default_credentials(endpoint.environ())

    async def main() -> list[Credentials]:
        return await asyncio.gather(*(source.get_async() for _ in range(20)))

    results = asyncio.run(main())
    assert endpoint.fetches == 1
    assert {credentials.access_key_id for credentials in results} == {"ASIA0001"}


def test_twenty_tasks_in_the_mandatory_window_cause_one_refresh(
    endpoint: CredentialsEndpoint,
) -> None:
    endpoint.delay = 0.1
    source = refreshing(endpoint)
    clock = endpoint.clock
    assert isinstance(clock, FakeClock)

    async def main() -> list[Credentials]:
        await source.get_async()
        clock.advance(3600 - 30)
        return await asyncio.gather(*(source.get_async() for _ in range(20)))

    results = asyncio.run(main())
    assert endpoint.fetches == 2
    assert {credentials.access_key_id for credentials in results} == {"ASIA0002"}
