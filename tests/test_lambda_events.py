"""The Lambda adapter on the events API Gateway and EventBridge really send.

The events are the captured ones in ``tests/apigw_events``; the adapter is
called in process, and what it posts goes through a real loopback
``@connections`` server (the API Gateway emulator) to a real WebSocket
client, while its AgentCore calls go to the local AgentCore emulator.
A captured event names a connection that does not exist here, so its
``connectionId`` is replaced with that of a live client where the test
needs to see the posts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from agentcore_bridge.awslambda import LambdaBridge
from agentcore_bridge.awslambda._events import classify, warmer_spec
from agentcore_bridge.client import FrameDecoder, encode_invoke
from agentcore_bridge.config import Settings
from agentcore_bridge.exceptions import AuthenticationError, ValidationError
from agentcore_bridge.sessions import (
    SessionTokens,
    derive_session_id,
    session_fingerprint,
)
from apigw_stack import Gateway, local_apigw
from stack import Emulator, local_stack

EVENTS = Path(__file__).parent / "apigw_events"
HANDLERS = Path(__file__).parent / "handlers_lambda"
SECRET = "captured-events-session-secret-0123"
TOKENS = SessionTokens(SECRET.encode())


def captured(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


class Context:
    """What Lambda's Python runtime passes as the context."""

    def __init__(self, function_arn: str = "") -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = function_arn
        self._deadline = time.monotonic() + 60

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


@pytest.fixture(scope="module")
def stack() -> Iterator[Emulator]:
    with local_stack() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(stack: Emulator) -> Iterator[Gateway]:
    with local_apigw(
        "accept:handler", code_dir=str(HANDLERS), credentials=stack.credentials
    ) as running:
        yield running


def make_bridge(stack: Emulator, gateway: Gateway, **settings: str) -> LambdaBridge:
    env = {
        "AGENTCORE_RUNTIME_ARN": stack.runtime_arn,
        "AGENTCORE_ENDPOINT_URL": stack.url,
        "AWS_REGION": gateway.region,
        "BRIDGE_CONNECTIONS_ENDPOINT_URL": gateway.connections_url,
        "BRIDGE_LAMBDA_ENDPOINT_URL": gateway.lambda_url,
        "BRIDGE_SESSION_SECRET": SECRET,
    }
    env.update(settings)
    options: dict[str, Any] = {"credentials": stack.credentials}
    return LambdaBridge.from_env(env, **options)


def function_arn(gateway: Gateway) -> str:
    return gateway.config.function_arn


def live_connection_id(gateway: Gateway) -> str:
    (only,) = [c for c in gateway.stats()["connections"] if c["state"] == "open"]
    return str(only["connectionId"])


def on_connection(event: dict[str, Any], connection_id: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["requestContext"]["connectionId"] = connection_id
    return event


async def frames_until_terminal(ws: Any, decoder: FrameDecoder) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not any(f["type"] in {"end", "error"} for f in frames):
        frames += decoder.feed(await asyncio.wait_for(ws.recv(), 30), 0.0)
    return frames


# Which event is which.


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("connect.json", "connect"),
        ("message.json", "message"),
        ("disconnect.json", "disconnect"),
        ("authorizer-request.json", "authorizer"),
        ("scheduler.json", "warmer"),
    ],
)
def test_captured_events_are_told_apart(name: str, kind: str) -> None:
    assert classify(captured(name), "agentcore_bridge_warmer") == kind


def test_the_warmer_settings_come_from_the_input_or_the_detail() -> None:
    key = "agentcore_bridge_warmer"
    assert warmer_spec({key: {"concurrency": 4}}, key) == {"concurrency": 4}
    scheduled = captured("scheduler.json")
    assert warmer_spec(scheduled, key) == {}
    scheduled["detail"] = json.dumps({key: {"concurrency": 2}})
    assert warmer_spec(scheduled, key) == {"concurrency": 2}
    assert warmer_spec({"other": 1}, key) is None
    assert classify({"other": 1}, key) == "unknown"


# $connect and $disconnect.


def test_captured_connect_is_accepted(stack: Emulator, gateway: Gateway) -> None:
    bridge = make_bridge(stack, gateway)
    assert bridge(captured("connect.json"), Context()) == {"statusCode": 200}


def test_connect_from_another_origin_is_forbidden(
    stack: Emulator, gateway: Gateway
) -> None:
    bridge = make_bridge(stack, gateway, BRIDGE_ALLOWED_ORIGINS="https://app.example")
    event = captured("connect.json")
    event["headers"]["origin"] = "https://evil.example"
    assert bridge(event, Context()) == {"statusCode": 403}
    event["headers"]["origin"] = "https://APP.example/"
    assert bridge(event, Context()) == {"statusCode": 200}


def test_connect_without_origin_is_not_a_browser_and_is_allowed(
    stack: Emulator, gateway: Gateway
) -> None:
    """The captured event has no Origin: only browsers send one, and the
    allowlist guards against other web pages, as on the server."""
    bridge = make_bridge(stack, gateway, BRIDGE_ALLOWED_ORIGINS="https://app.example")
    assert "origin" not in {
        name.lower() for name in captured("connect.json")["headers"]
    }
    assert bridge(captured("connect.json"), Context()) == {"statusCode": 200}


def test_connect_hook_decides_with_401_or_403(
    stack: Emulator, gateway: Gateway
) -> None:
    def authorize(event: Any) -> str:
        status = int(event["headers"].get("X-Test-Status", "200"))
        if status != 200:
            raise AuthenticationError("refused by the test", status=status)
        return "principal-1"

    bridge = make_bridge(stack, gateway)
    bridge = LambdaBridge(
        bridge.settings, authorize=authorize, credentials=stack.credentials
    )
    event = captured("connect.json")
    assert bridge(event, Context()) == {"statusCode": 200}
    for status in (401, 403):
        event["headers"]["X-Test-Status"] = str(status)
        assert bridge(event, Context()) == {"statusCode": status}


def test_a_bad_resume_token_does_not_refuse_the_connection(
    stack: Emulator, gateway: Gateway
) -> None:
    bridge = make_bridge(stack, gateway)
    event = captured("connect.json")
    event["queryStringParameters"] = {"session": "v1.forged.token"}
    assert bridge(event, Context()) == {"statusCode": 200}


class HeldLambda(ThreadingHTTPServer):
    """Records every request; holds each answer until ``release`` is set."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HeldHandler)
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.release = threading.Event()
        self.answered_after_release: list[bool] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _HeldHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HeldLambda

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.path, dict(self.headers), json.loads(body)))
        # A hang guard only: the test releases the answer at once.
        released = self.server.release.wait(20)
        self.server.answered_after_release.append(released)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def held_lambda() -> Iterator[HeldLambda]:
    server = HeldLambda()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def test_connect_calls_nothing_without_a_warm_up(
    stack: Emulator, gateway: Gateway, held_lambda: HeldLambda
) -> None:
    """The handshake path makes no network call: every endpoint is the recorder."""
    bridge = make_bridge(
        stack,
        gateway,
        AGENTCORE_ENDPOINT_URL=held_lambda.url,
        BRIDGE_CONNECTIONS_ENDPOINT_URL=held_lambda.url + "/prod",
        BRIDGE_LAMBDA_ENDPOINT_URL=held_lambda.url,
        BRIDGE_ALLOWED_ORIGINS="https://app.example",
    )
    event = captured("connect.json")
    event["queryStringParameters"] = {"session": "v1.forged.token"}
    assert bridge(event, Context(function_arn(gateway))) == {"statusCode": 200}
    event["headers"]["Origin"] = "https://evil.example"
    assert bridge(event, Context(function_arn(gateway))) == {"statusCode": 403}
    assert held_lambda.requests == []


def test_the_warm_up_does_not_wait_for_lambdas_answer(
    stack: Emulator, gateway: Gateway, held_lambda: HeldLambda
) -> None:
    """$connect returns once the Event invocation is written, before its 202."""
    bridge = make_bridge(
        stack,
        gateway,
        BRIDGE_LAMBDA_ENDPOINT_URL=held_lambda.url,
        BRIDGE_WARMUP_PAYLOAD='{"prompt": "warm up"}',
    )
    event = captured("connect.json")
    assert bridge(event, Context(function_arn(gateway))) == {"statusCode": 200}
    # Written before the handshake was answered; read by the server soon.
    ((path, headers, payload),) = wait_for(lambda: held_lambda.requests)
    held_lambda.release.set()
    assert path == (
        "/2015-03-31/functions/"
        + urllib.parse.quote(function_arn(gateway), safe="")
        + "/invocations"
    )
    assert headers["X-Amz-Invocation-Type"] == "Event"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert "/lambda/aws4_request" in headers["Authorization"]
    connection_id = event["requestContext"]["connectionId"]
    assert payload == {
        "agentcore_bridge_warmup": {
            "connectionId": connection_id,
            "sessionId": derive_session_id(SECRET.encode(), connection_id),
        }
    }
    # Answered only after the handshake had returned.
    assert wait_for(lambda: held_lambda.answered_after_release) == [True]


def test_a_hook_principal_does_not_refuse_a_token_issued_by_a_message(
    stack: Emulator, gateway: Gateway, held_lambda: HeldLambda
) -> None:
    """Without an API Gateway authorizer, messages issue tokens for no principal.

    The hook's principal reaches no later event, so a token from an earlier
    connection is checked as the messages that will use it check it, and
    the session it names is the one warmed.
    """
    settings = make_bridge(
        stack,
        gateway,
        BRIDGE_LAMBDA_ENDPOINT_URL=held_lambda.url,
        BRIDGE_WARMUP_PAYLOAD='{"prompt": "warm up"}',
    ).settings
    bridge = LambdaBridge(
        settings, authorize=lambda event: "principal-1", credentials=stack.credentials
    )
    resumed = derive_session_id(SECRET.encode(), "an-earlier-connection")
    token, _ = TOKENS.issue(resumed, None, time.time())
    event = captured("connect.json")
    event["queryStringParameters"] = {"session": token}
    assert bridge(event, Context(function_arn(gateway))) == {"statusCode": 200}
    ((_, _, payload),) = wait_for(lambda: held_lambda.requests)
    held_lambda.release.set()
    assert payload["agentcore_bridge_warmup"]["sessionId"] == resumed


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
    return result


def test_captured_disconnect_stops_the_session_when_configured(
    stack: Emulator, gateway: Gateway
) -> None:
    bridge = make_bridge(stack, gateway, BRIDGE_STOP_SESSION_ON_DISCONNECT="yes")
    event = captured("disconnect.json")
    session_id = derive_session_id(
        SECRET.encode(), event["requestContext"]["connectionId"]
    )
    before = stack.session_stats(session_id).get("stops", 0)
    assert bridge(event, Context()) == {"statusCode": 200}
    # The session never ran, so AgentCore answers 404; the handler is fine.
    assert stack.session_stats(session_id)["stops"] == before + 1


# Messages.


def test_captured_message_is_not_protocol_v1_and_gets_bad_request(
    stack: Emulator, gateway: Gateway
) -> None:
    bridge = make_bridge(stack, gateway)

    async def scenario() -> list[dict[str, Any]]:
        async with connect(gateway.ws_url) as ws:
            event = on_connection(captured("message.json"), live_connection_id(gateway))
            answer = await asyncio.to_thread(bridge, event, Context())
            assert answer == {"statusCode": 200}
            return await frames_until_terminal(ws, FrameDecoder())

    (error,) = asyncio.run(scenario())
    assert (error["type"], error["id"], error["code"]) == ("error", None, "bad_request")
    assert "Hello from client" not in error["message"]


def test_a_message_event_streams_an_answer_to_the_client(
    stack: Emulator, gateway: Gateway
) -> None:
    bridge = make_bridge(stack, gateway)

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        async with connect(gateway.ws_url) as ws:
            connection_id = live_connection_id(gateway)
            event = on_connection(captured("message.json"), connection_id)
            event["body"] = encode_invoke("m1", {"prompt": "from a captured event"})
            await asyncio.to_thread(bridge, event, Context())
            return connection_id, await frames_until_terminal(ws, FrameDecoder())

    connection_id, frames = asyncio.run(scenario())
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "session" and kinds[-1] == "end"
    text = "".join(f["data"] for f in frames if f["type"] == "chunk")
    assert text == "Turn 1 of this session. You said: from a captured event"
    session_id = TOKENS.verify(frames[0]["session"], None, time.time())
    assert session_id == derive_session_id(SECRET.encode(), connection_id)


def test_an_invoke_timeout_of_zero_means_no_limit(
    stack: Emulator, gateway: Gateway
) -> None:
    bridge = make_bridge(stack, gateway, BRIDGE_INVOKE_TIMEOUT="0")

    async def scenario() -> list[dict[str, Any]]:
        async with connect(gateway.ws_url) as ws:
            event = on_connection(captured("message.json"), live_connection_id(gateway))
            event["body"] = encode_invoke("t0", {"prompt": "no limit"})
            await asyncio.to_thread(bridge, event, Context())
            return await frames_until_terminal(ws, FrameDecoder())

    frames = asyncio.run(scenario())
    assert frames[-1]["type"] == "end"
    assert "".join(f["data"] for f in frames if f["type"] == "chunk").endswith(
        "no limit"
    )


def test_posts_to_a_gone_connection_end_the_call_quietly(
    stack: Emulator, gateway: Gateway
) -> None:
    """The captured connection does not exist here: every post gets 410."""
    bridge = make_bridge(stack, gateway)
    event = captured("message.json")
    event["body"] = encode_invoke("m2", {"prompt": "nobody listens", "words": 50})
    assert bridge(event, Context()) == {"statusCode": 200}


# The function as the API's REQUEST authorizer.


def test_captured_authorizer_call_gets_a_policy_for_the_principal(
    stack: Emulator, gateway: Gateway
) -> None:
    def authorize(event: Any) -> str:
        if event["headers"].get("Authorization") != "Leo":
            raise AuthenticationError("who?", status=403)
        return "Leo"

    settings = make_bridge(stack, gateway).settings
    bridge = LambdaBridge(settings, authorize=authorize, credentials=stack.credentials)
    event = captured("authorizer-request.json")
    document = bridge(event, Context())
    assert document["principalId"] == "Leo"
    (statement,) = document["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": event["methodArn"],
    }
    assert "context" not in document

    event["headers"]["Authorization"] = "Mallory"
    denied = bridge(event, Context())
    assert denied["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_an_authorizer_401_is_raised_as_api_gateway_expects(
    stack: Emulator, gateway: Gateway
) -> None:
    def authorize(event: Any) -> str:
        raise AuthenticationError("no credentials", status=401)

    settings = make_bridge(stack, gateway).settings
    bridge = LambdaBridge(settings, authorize=authorize, credentials=stack.credentials)
    with pytest.raises(RuntimeError, match=r"^Unauthorized$"):
        bridge(captured("authorizer-request.json"), Context())


def test_a_token_checked_by_the_authorizer_follows_the_connection(
    stack: Emulator, gateway: Gateway
) -> None:
    """The resumed session travels in the authorizer context of later events."""
    settings = make_bridge(stack, gateway).settings
    bridge = LambdaBridge(
        settings, authorize=lambda e: "Leo", credentials=stack.credentials
    )
    resumed = derive_session_id(SECRET.encode(), "an-earlier-connection")
    token, _ = TOKENS.issue(resumed, "Leo", time.time())
    event = captured("authorizer-request.json")
    event["queryStringParameters"] = {"session": token}
    document = bridge(event, Context())
    assert document["context"] == {"agentcoreSessionId": resumed}

    async def scenario() -> list[dict[str, Any]]:
        async with connect(gateway.ws_url) as ws:
            message = on_connection(
                captured("message.json"), live_connection_id(gateway)
            )
            message["requestContext"]["authorizer"] = {
                "principalId": "Leo",
                **document["context"],
            }
            message["body"] = encode_invoke("m3", {"prompt": "resumed"})
            await asyncio.to_thread(bridge, message, Context())
            return await frames_until_terminal(ws, FrameDecoder())

    frames = asyncio.run(scenario())
    assert TOKENS.verify(frames[0]["session"], "Leo", time.time()) == resumed
    assert stack.session_stats(resumed)["invocations"] >= 1


# Warmers and everything else.


def test_captured_scheduled_event_is_a_warmer_ping(
    stack: Emulator, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = make_bridge(stack, gateway, BRIDGE_WARMER_HOLD="5")
    context = Context(function_arn(gateway))

    # A ping for one environment returns at once: nothing to overlap with,
    # so no hold, and no call to anything.
    naps: list[float] = []
    real_sleep = time.sleep
    caller = threading.get_ident()

    def sleep(seconds: float) -> None:
        if threading.get_ident() == caller:
            naps.append(seconds)
        real_sleep(seconds)

    invokes = gateway.stats()["counters"]["lambda_invokes"]
    monkeypatch.setattr(time, "sleep", sleep)
    assert bridge(captured("scheduler.json"), context) == {"warmed": 1, "failed": 0}
    monkeypatch.undo()
    assert naps == []
    assert gateway.stats()["counters"]["lambda_invokes"] == invokes

    bridge = make_bridge(stack, gateway)
    event = captured("scheduler.json")
    event["detail"] = json.dumps({"agentcore_bridge_warmer": {"concurrency": 3}})
    assert bridge(event, context) == {"warmed": 3, "failed": 0}
    assert gateway.stats()["counters"]["lambda_invokes"] == invokes + 2


def test_the_warmer_marker_is_configurable(stack: Emulator, gateway: Gateway) -> None:
    bridge = make_bridge(stack, gateway, BRIDGE_WARMER_KEY="keep_warm")
    context = Context(function_arn(gateway))
    invokes = gateway.stats()["counters"]["lambda_invokes"]
    assert bridge({"keep_warm": {"concurrency": 2}}, context) == {
        "warmed": 2,
        "failed": 0,
    }
    assert gateway.stats()["counters"]["lambda_invokes"] == invokes + 1
    event = captured("scheduler.json")
    event["detail"] = json.dumps({"keep_warm": {"concurrency": 2}})
    assert bridge(event, context) == {"warmed": 2, "failed": 0}
    # The default marker means nothing to this bridge.
    assert bridge({"agentcore_bridge_warmer": {}}, context) == {"statusCode": 400}


def test_a_warmer_ping_with_numbers_out_of_range_keeps_one_environment_warm(
    stack: Emulator, gateway: Gateway
) -> None:
    """Infinity (1e999 in JSON) or NaN takes the default instead of crashing."""
    bridge = make_bridge(stack, gateway)
    context = Context(function_arn(gateway))
    invokes = gateway.stats()["counters"]["lambda_invokes"]
    event = captured("scheduler.json")
    event["detail"] = '{"agentcore_bridge_warmer": {"concurrency": 1e999}}'
    assert bridge(event, context) == {"warmed": 1, "failed": 0}
    assert gateway.stats()["counters"]["lambda_invokes"] == invokes
    fanout = json.loads('{"agentcore_bridge_warmer": {"fanout": true, "hold": NaN}}')
    assert bridge(fanout, context) == {"warmed": 1}


def test_an_unknown_event_is_answered_400(stack: Emulator, gateway: Gateway) -> None:
    bridge = make_bridge(stack, gateway)
    assert bridge({"hello": "world"}, Context()) == {"statusCode": 400}


def test_the_runtime_arn_is_required() -> None:
    with pytest.raises(ValidationError, match="AGENTCORE_RUNTIME_ARN"):
        LambdaBridge(Settings())


def test_a_message_limit_above_api_gateways_quota_is_refused(
    stack: Emulator, gateway: Gateway
) -> None:
    with pytest.raises(ValidationError) as refused:
        make_bridge(stack, gateway, BRIDGE_MESSAGE_LIMIT_BYTES="131073")
    assert refused.value.field == "BRIDGE_MESSAGE_LIMIT_BYTES"
    assert "131072" in str(refused.value)
    make_bridge(stack, gateway, BRIDGE_MESSAGE_LIMIT_BYTES="131072")


# Without a session secret.


def test_without_a_secret_ids_still_agree_but_tokens_are_off(
    stack: Emulator, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "agentcore_bridge.lambda"):
        bridge = make_bridge(stack, gateway, BRIDGE_SESSION_SECRET="")
    assert "BRIDGE_SESSION_SECRET is not set" in caplog.text

    async def scenario() -> list[dict[str, Any]]:
        async with connect(gateway.ws_url) as ws:
            decoder = FrameDecoder()
            event = on_connection(captured("message.json"), live_connection_id(gateway))
            event["body"] = encode_invoke("n1", {"prompt": "no secret"})
            await asyncio.to_thread(bridge, event, Context())
            frames = await frames_until_terminal(ws, decoder)
            event["body"] = encode_invoke("n2", {"prompt": "x"}, session="v1.a.b")
            await asyncio.to_thread(bridge, event, Context())
            return frames + await frames_until_terminal(ws, decoder)

    frames = asyncio.run(scenario())
    assert "session" not in [f["type"] for f in frames]
    assert [f["type"] for f in frames if f["id"] == "n1"][-1] == "end"
    (refused,) = [f for f in frames if f["id"] == "n2"]
    assert refused["code"] == "unauthorized"


# Logs.


def test_lifecycle_logs_are_json_lines_without_payloads_or_secrets(
    stack: Emulator, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = make_bridge(stack, gateway)
    prompt = "a secret plan for the weekend"

    async def scenario() -> str:
        async with connect(gateway.ws_url) as ws:
            connection_id = live_connection_id(gateway)
            bridge(on_connection(captured("connect.json"), connection_id), Context())
            event = on_connection(captured("message.json"), connection_id)
            event["body"] = encode_invoke("l1", {"prompt": prompt})
            await asyncio.to_thread(bridge, event, Context())
            await frames_until_terminal(ws, FrameDecoder())
            bridge(on_connection(captured("disconnect.json"), connection_id), Context())
        return connection_id

    with caplog.at_level(logging.INFO, "agentcore_bridge.lambda"):
        connection_id = asyncio.run(scenario())
    session_id = derive_session_id(SECRET.encode(), connection_id)
    lines = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "agentcore_bridge.lambda"
    ]
    events = [line["event"] for line in lines]
    assert events == ["connect", "invoke_start", "invoke_end", "disconnect"]
    for line in lines:
        assert line["connectionId"] and line["requestId"]
        assert line["session"] == session_fingerprint(session_id)
    assert session_id not in caplog.text
    assert session_id[:8] not in caplog.text
    assert lines[2]["chunks"] == 13
    assert lines[2]["messages"] >= 1
    assert prompt not in caplog.text
    assert SECRET not in caplog.text
    assert stack.credentials.secret_access_key not in caplog.text
    assert "v1." not in caplog.text


def test_the_lambda_client_reports_lambda_errors_typed(gateway: Gateway) -> None:
    from agentcore_bridge.exceptions import ServiceError
    from agentcore_bridge.sync.lambda_api import LambdaClient

    client = LambdaClient(
        region=gateway.region,
        endpoint_url=gateway.lambda_url,
        credentials=gateway.credentials,
    )
    queued = client.invoke(function_arn(gateway), {"x": 1}, invocation_type="Event")
    assert (queued.status, queued.payload) == (202, None)
    with pytest.raises(ServiceError) as missing:
        client.invoke("another-function", {})
    assert (missing.value.status, missing.value.error_type) == (
        404,
        "ResourceNotFoundException",
    )
    with pytest.raises(ValidationError):
        client.invoke(function_arn(gateway), {}, invocation_type="DryRun")
