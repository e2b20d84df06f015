"""Signed HTTP calls to the AgentCore emulator with the standard library.

Tests of the emulator itself use ``http.client`` directly so that what goes
over the wire is exactly what the test built: the signature comes from
``agentcore_bridge.sigv4`` and nothing else touches the request.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from agentcore_bridge import Credentials
from agentcore_bridge.agentcore import SESSION_ID_HEADER
from agentcore_bridge.sigv4 import presign_url, sign_headers
from stack import Emulator


def new_session_id() -> str:
    """A fresh, valid session id (37 characters)."""
    return f"test-{uuid.uuid4().hex}"


@dataclass
class Answer:
    """A complete answer from the emulator."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def error_type(self) -> str | None:
        return self.headers.get("x-amzn-ErrorType")

    @property
    def message(self) -> str:
        message: str = json.loads(self.body)["message"]
        return message

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[Any]:
        """The JSON values of the SSE ``data:`` lines, in order."""
        return [
            json.loads(line[len(b"data: ") :])
            for line in self.body.split(b"\n")
            if line.startswith(b"data: ")
        ]


def build_url(
    emulator: Emulator,
    action: str = "invocations",
    *,
    runtime_arn: str | None = None,
    query: Mapping[str, str] | None = None,
) -> str:
    arn = emulator.runtime_arn if runtime_arn is None else runtime_arn
    url = f"{emulator.url}/runtimes/{quote(arn, safe='')}/{action}"
    if query:
        url += "?" + "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items()
        )
    return url


def open_call(
    emulator: Emulator,
    action: str = "invocations",
    *,
    payload: Any = None,
    body: bytes | None = None,
    method: str = "POST",
    session_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    runtime_arn: str | None = None,
    credentials: Credentials | None = None,
    region: str | None = None,
    now: float | None = None,
    auth: str = "header",
    sign_body: bytes | None = None,
    sign_options: Mapping[str, Any] | None = None,
    timeout: float = 30,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send one signed request and return the connection and the response.

    ``auth`` is ``header`` (Authorization), ``presign`` (query string) or
    ``none``. ``sign_body`` signs other bytes than the ones sent. The
    ``sign_options`` go to ``sign_headers`` (``payload_hash``,
    ``content_sha256_header``). The caller reads the response
    (incrementally if it likes) and closes the connection.
    """
    if body is None:
        body = b"" if payload is None else json.dumps(payload).encode()
    url = build_url(emulator, action, runtime_arn=runtime_arn, query=query)
    sent = {"Content-Type": "application/json"} if method == "POST" else {}
    if session_id is not None:
        sent[SESSION_ID_HEADER] = session_id
    sent.update(headers or {})
    signing = {
        "credentials": credentials or emulator.credentials,
        "region": region or emulator.region,
        "service": "bedrock-agentcore",
        "now": now,
    }
    signed_body = body if sign_body is None else sign_body
    if auth == "header":
        options = {**signing, **(sign_options or {})}
        sent.update(sign_headers(method, url, sent, signed_body, **options))
    elif auth == "presign":
        url = presign_url(method, url, sent, signed_body, **signing)

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection.request(method, target, body=body, headers=sent)
    return connection, connection.getresponse()


def call(emulator: Emulator, action: str = "invocations", **options: Any) -> Answer:
    """Send one signed request and read the whole answer."""
    connection, response = open_call(emulator, action, **options)
    try:
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def stop(emulator: Emulator, session_id: str, **options: Any) -> Answer:
    """StopRuntimeSession with a fresh client token."""
    options.setdefault("payload", {"clientToken": str(uuid.uuid4())})
    return call(emulator, "stopruntimesession", session_id=session_id, **options)
