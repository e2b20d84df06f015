"""AgentCoreClient against the local AgentCore emulator, over loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
import websockets.sync.client

import agents
from agentcore_bridge import AgentCoreClient, Credentials
from agentcore_bridge.agentcore import Retries, Timeouts, new_session_id
from agentcore_bridge.exceptions import (
    AgentCoreError,
    AgentError,
    TimeoutError,
    TransportError,
    ValidationError,
)
from agentcore_bridge.local.agentcore import LOCAL_CREDENTIALS
from client_helpers import (
    CountingSource,
    Script,
    counting_proxy,
    scripted_agent_url,
    wait_until,
)
from stack import Emulator, agentcore_emulator, asgi_agent, local_stack

FAST_RETRIES = Retries(max_attempts=3, base_delay=0.01, max_delay=0.02)


@pytest.fixture(scope="module")
def stack() -> Iterator[Emulator]:
    with local_stack() as emulator:
        yield emulator


@pytest.fixture
def emulator(stack: Emulator) -> Emulator:
    stack.reset()
    return stack


def make_client(emulator: Emulator, **options: Any) -> AgentCoreClient:
    options.setdefault("retries", FAST_RETRIES)
    options.setdefault("endpoint_url", emulator.url)
    options.setdefault("credentials", emulator.credentials)
    return AgentCoreClient(emulator.runtime_arn, **options)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[AgentCoreClient]:
    with make_client(emulator) as client:
        yield client


def words(events: list[Any]) -> str:
    return "".join(event.data for event in events)


# Streaming.


def test_streams_every_event_in_order(client: AgentCoreClient) -> None:
    session = new_session_id()
    with client.invoke({"prompt": "hello there", "words": 30}, session_id=session) as s:
        events = list(s)
        assert s.session_id == session
        assert s.content_type.startswith("text/event-stream")
    assert [event.data for event in events[:9]] == [
        "Turn",
        " 1",
        " of",
        " this",
        " session.",
        " You",
        " said:",
        " hello",
        " there",
    ]
    filler = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing"]
    assert words(events).split()[9:] == [filler[i % 7] for i in range(30)]


def test_first_event_arrives_while_the_agent_still_runs() -> None:
    """The agent is blocked after one event until the test has read it."""
    script = Script()
    with scripted_agent_url(script) as agent_url, agentcore_emulator(agent_url) as emu:
        with make_client(emu) as client, client.invoke({"gated": 1}) as stream:
            first = next(stream)
            assert first.data == "before 0"
            assert not script.finished.is_set()
            script.gate.set()
            assert [event.data for event in stream] == ["after"]
        assert script.finished.is_set()


def test_new_session_ids_are_made_and_reported(client: AgentCoreClient) -> None:
    with client.invoke({"prompt": "a"}) as first:
        list(first)
    with client.invoke({"prompt": "b"}, session_id=first.session_id) as second:
        text = words(list(second))
    assert len(first.session_id) >= 33
    assert text.startswith("Turn 2 of this session.")


def test_json_answer_is_one_event(client: AgentCoreClient) -> None:
    with client.invoke({"prompt": "hi", "json": True}) as stream:
        events = list(stream)
        assert stream.content_type.startswith("application/json")
    assert len(events) == 1
    assert isinstance(events[0].data, dict)


def test_agent_error_event_raises_after_the_events_before_it(
    client: AgentCoreClient,
) -> None:
    received = []
    with (
        pytest.raises(AgentError) as caught,
        client.invoke({"prompt": "x y z", "fail_after": 3}) as stream,
    ):
        received.extend(stream)
    assert len(received) == 3
    assert caught.value.error_type == "DemoAgentError"
    assert "fail after 3 events" in caught.value.message


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("typescript", ["Hello", " world"]),
        ("typescript-text", ["first", "second"]),
        ("named", [{"t": 1}, {"t": 2}]),
    ],
)
def test_other_sse_shapes(shape: str, expected: list[Any]) -> None:
    with (
        scripted_agent_url(Script()) as agent_url,
        agentcore_emulator(agent_url) as emu,
        make_client(emu) as client,
        client.invoke({"shape": shape}) as stream,
    ):
        events = list(stream)
    assert [event.data for event in events] == expected
    if shape == "named":
        assert [(e.event, e.id) for e in events] == [("token", "7"), ("token", "7")]


def test_typescript_error_event_is_an_agent_error() -> None:
    with (
        scripted_agent_url(Script()) as agent_url,
        agentcore_emulator(agent_url) as emu,
        make_client(emu) as client,
    ):
        received = []
        with (
            pytest.raises(AgentError, match="stream failed"),
            client.invoke({"shape": "typescript-error"}) as stream,
        ):
            received.extend(event.data for event in stream)
        assert received == ["partial"]


def test_trace_and_user_headers_reach_the_agent(client: AgentCoreClient) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with client.invoke(
        {"json": True, "echo_headers": True},
        user_id="user-42",
        traceparent=traceparent,
        baggage="k=v",
    ) as stream:
        (event,) = list(stream)
        assert stream.headers["traceparent"] == traceparent
    received = {k.lower(): v for k, v in event.data["headers"].items()}
    assert received["x-amzn-bedrock-agentcore-runtime-user-id"] == "user-42"
    assert received["baggage"] == "k=v"


# Errors.

ERROR_TABLE = [
    (400, "ValidationException", False),
    (402, "ServiceQuotaExceededException", False),
    (403, "AccessDeniedException", False),
    (404, "ResourceNotFoundException", False),
    (409, "RetryableConflictException", True),
    (424, "RuntimeClientError", False),
    (429, "ThrottlingException", True),
    (500, "InternalServerException", True),
    (502, "InternalServerException", True),
    (503, "InternalServerException", True),
    (504, "InternalServerException", True),
]


@pytest.mark.parametrize(("status", "error_type", "retryable"), ERROR_TABLE)
def test_every_error_status_maps_to_agentcore_error(
    emulator: Emulator, status: int, error_type: str, retryable: bool
) -> None:
    emulator.add_fault("error", status=status, error_type=error_type, message="boom")
    session = new_session_id()
    with (
        make_client(emulator, retries=Retries(max_attempts=1)) as client,
        pytest.raises(AgentCoreError) as caught,
    ):
        client.invoke({"prompt": "x"}, session_id=session)
    error = caught.value
    assert (error.status, error.error_type, error.retryable) == (
        status,
        error_type,
        retryable,
    )
    assert error.message == "boom"
    assert error.request_id
    assert emulator.session_stats(session)["calls"] == 1


def test_retryable_error_before_first_byte_is_retried(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    emulator.add_fault("error", status=503, error_type="InternalServerException")
    session = new_session_id()
    with client.invoke({"prompt": "again"}, session_id=session) as stream:
        assert "You said: again" in words(list(stream))
    assert emulator.session_stats(session)["calls"] == 2


def test_dropped_connection_before_answer_is_retried(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    emulator.add_fault("drop")
    session = new_session_id()
    with client.invoke({"prompt": "again"}, session_id=session) as stream:
        assert list(stream)
    assert emulator.session_stats(session)["calls"] == 2


def test_retries_stop_at_max_attempts(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    emulator.add_fault("error", status=429, error_type="ThrottlingException", repeat=0)
    session = new_session_id()
    with pytest.raises(AgentCoreError) as caught:
        client.invoke({"prompt": "x"}, session_id=session)
    assert caught.value.status == 429
    assert emulator.session_stats(session)["calls"] == 3


def test_final_error_is_not_retried(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    emulator.add_fault("error", status=424, error_type="RuntimeClientError", repeat=0)
    session = new_session_id()
    with pytest.raises(AgentCoreError):
        client.invoke({"prompt": "x"}, session_id=session)
    assert emulator.session_stats(session)["calls"] == 1


def test_reset_mid_stream_is_not_retried(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    emulator.add_fault("reset", after_events=2)
    session = new_session_id()
    received = []
    with (
        pytest.raises(TransportError) as caught,
        client.invoke({"prompt": "one two three four"}, session_id=session) as stream,
    ):
        received.extend(stream)
    assert caught.value.response_started
    assert not caught.value.retryable
    assert len(received) == 2
    assert emulator.session_stats(session)["calls"] == 1


def test_slow_first_byte_times_out_and_is_not_retried(emulator: Emulator) -> None:
    emulator.add_fault("slow_first_byte", seconds=3)
    session = new_session_id()
    with (
        make_client(emulator, timeouts=Timeouts(first_byte=0.3)) as client,
        pytest.raises(TimeoutError) as caught,
    ):
        client.invoke({"prompt": "x"}, session_id=session)
    assert caught.value.phase == "first_byte"
    assert not caught.value.response_started
    assert emulator.session_stats(session)["calls"] == 1


def test_silent_stream_times_out_as_idle(emulator: Emulator) -> None:
    with (
        make_client(emulator, timeouts=Timeouts(idle=0.3)) as client,
        client.invoke({"prompt": "a b c", "delay": 5}) as stream,
    ):
        assert next(stream).data == "Turn"
        with pytest.raises(TimeoutError) as caught:
            next(stream)
    assert caught.value.phase == "idle"
    assert caught.value.response_started


def test_total_timeout_bounds_the_whole_call(emulator: Emulator) -> None:
    with (
        make_client(emulator, timeouts=Timeouts(idle=5, total=0.5)) as client,
        client.invoke({"prompt": "a b c d e f", "delay": 0.2}) as stream,
        pytest.raises(TimeoutError) as caught,
    ):
        list(stream)
    assert caught.value.phase == "total"


def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    client = AgentCoreClient(
        "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/a",
        endpoint_url=f"http://127.0.0.1:{port}",
        credentials=LOCAL_CREDENTIALS,
        retries=FAST_RETRIES,
    )
    with client, pytest.raises(TransportError) as caught:
        client.invoke({})
    assert not caught.value.response_started
    assert "could not connect" in str(caught.value)


def test_expired_token_refreshes_credentials_once(emulator: Emulator) -> None:
    emulator.add_fault(
        "error", status=403, error_type="ExpiredTokenException", message="expired"
    )
    source = CountingSource(emulator.credentials)
    with (
        make_client(emulator, credentials=source, retries=Retries(max_attempts=1)) as c,
        c.invoke({"prompt": "x"}) as stream,
    ):
        assert list(stream)
    assert source.invalidations == 1
    assert source.gets == 2


def test_wrong_credentials_are_access_denied(emulator: Emulator) -> None:
    bad = Credentials("AKIAWRONGWRONGWRONG0", "not-the-secret")
    with (
        make_client(emulator, credentials=bad) as client,
        pytest.raises(AgentCoreError) as caught,
    ):
        client.invoke({"prompt": "x"})
    assert caught.value.status == 403
    assert not caught.value.retryable


# Connections.


def test_connections_are_kept_alive_between_calls(emulator: Emulator) -> None:
    with counting_proxy(emulator.url) as proxy:
        with make_client(emulator, endpoint_url=proxy.url) as client:
            for prompt in ("one", "two", "three"):
                with client.invoke({"prompt": prompt}) as stream:
                    assert list(stream)
            client.stop_session(stream.session_id)
        assert proxy.accepted == 1


def test_early_close_releases_the_connection() -> None:
    """Leaving a stream the agent is still writing closes its connection."""
    script = Script()
    with (
        scripted_agent_url(script) as agent_url,
        agentcore_emulator(agent_url) as emu,
        counting_proxy(emu.url) as proxy,
        make_client(emu, endpoint_url=proxy.url) as client,
    ):
        with client.invoke({"gated": 1}) as stream:
            assert next(stream).data == "before 0"
        wait_until(lambda: proxy.open == 0)
        script.gate.set()
        with client.invoke({"shape": "typescript"}) as stream:
            assert [event.data for event in stream] == ["Hello", " world"]
        assert proxy.accepted == 2


def test_reset_drops_pooled_connections_and_credentials(emulator: Emulator) -> None:
    source = CountingSource(emulator.credentials)
    with counting_proxy(emulator.url) as proxy:
        with make_client(
            emulator, endpoint_url=proxy.url, credentials=source
        ) as client:
            with client.invoke({"prompt": "a"}) as stream:
                list(stream)
            client.reset()
            wait_until(lambda: proxy.open == 0)
            with client.invoke({"prompt": "b"}) as stream:
                list(stream)
        assert proxy.accepted == 2
    assert source.invalidations == 1


# Sessions.


def test_stop_session_stops_a_live_session(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    with client.invoke({"prompt": "x"}) as stream:
        list(stream)
    client.stop_session(stream.session_id)
    stats = emulator.session_stats(stream.session_id)
    assert stats["stops"] == 1
    assert not stats["active"]


def test_dropped_stop_session_is_retried(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    with client.invoke({"prompt": "x"}) as stream:
        list(stream)
    emulator.add_fault("drop", operation="stop", session_id=stream.session_id)
    client.stop_session(stream.session_id)
    stats = emulator.session_stats(stream.session_id)
    assert stats["stops"] == 2
    assert not stats["active"]


def test_stop_unknown_session_is_not_found(client: AgentCoreClient) -> None:
    with pytest.raises(AgentCoreError) as caught:
        client.stop_session(new_session_id())
    assert caught.value.error_type == "ResourceNotFoundException"


def test_invalid_session_id_fails_before_sending(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    with pytest.raises(ValidationError):
        client.invoke({}, session_id="too-short")
    assert emulator.stats()["requests"] == {}


def test_an_empty_session_id_is_refused_not_replaced(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    """Only a missing id starts a new session; "" is a bad id like any other."""
    with pytest.raises(ValidationError) as caught:
        client.invoke({}, session_id="")
    assert caught.value.field == "runtimeSessionId"
    with pytest.raises(ValidationError):
        client.websocket_request(session_id="")
    with pytest.raises(ValidationError):
        client.presign_websocket(session_id="")
    assert emulator.stats()["requests"] == {}


# WebSocket.


def test_signed_websocket_upgrade_through_the_emulator(
    client: AgentCoreClient,
) -> None:
    request = client.websocket_request()
    with websockets.sync.client.connect(
        request.url, additional_headers=request.headers
    ) as ws:
        ws.send(b"\x00\x01binary")
        assert ws.recv() == b"\x00\x01binary"


def test_presigned_websocket_url_needs_no_headers(
    client: AgentCoreClient, emulator: Emulator
) -> None:
    session = new_session_id()
    url = client.presign_websocket(session_id=session, expires=60)
    with websockets.sync.client.connect(url) as ws:
        ws.send(json.dumps({"prompt": "hi there"}))
        frames = []
        while not frames or frames[-1]["type"] != "end":
            frames.append(json.loads(ws.recv()))
    text = "".join(f["data"] for f in frames if f["type"] == "chunk")
    assert "You said: hi there" in text
    assert emulator.session_stats(session)["ws_connections"] == 1


# Real BedrockAgentCoreApp agents.


@pytest.fixture(scope="module")
def real_agents() -> Iterator[dict[str, Emulator]]:
    apps = {
        "streaming": agents.streaming_agent(),
        "returning": agents.returning_agent(),
        "failing": agents.failing_agent(),
        "raising": agents.raising_agent(),
        "websocket": agents.websocket_agent(),
    }
    emulators: dict[str, Emulator] = {}
    with _serve_all(apps, emulators):
        yield emulators


@contextmanager
def _serve_all(apps: dict[str, Any], out: dict[str, Emulator]) -> Iterator[None]:
    with ExitStack() as stack_:
        for name, app in apps.items():
            agent_url = stack_.enter_context(asgi_agent(app))
            out[name] = stack_.enter_context(agentcore_emulator(agent_url))
        yield


def test_real_streaming_agent_delivers_every_item(
    real_agents: dict[str, Emulator],
) -> None:
    session = new_session_id()
    with (
        make_client(real_agents["streaming"]) as client,
        client.invoke({"prompt": "hi"}, session_id=session) as stream,
    ):
        data = [event.data for event in stream]
    assert data == [*agents.STREAMING_ITEMS, {"session": session, "prompt": "hi"}]


def test_real_returning_agent_gives_one_json_event(
    real_agents: dict[str, Emulator],
) -> None:
    session = new_session_id()
    with (
        make_client(real_agents["returning"]) as client,
        client.invoke({"prompt": "hi"}, session_id=session) as stream,
    ):
        data = [event.data for event in stream]
    assert data == [{"answer": "You said: hi", "session": session}]


def test_real_failing_agent_gives_items_then_agent_error(
    real_agents: dict[str, Emulator],
) -> None:
    data = []
    with (
        make_client(real_agents["failing"]) as client,
        pytest.raises(AgentError) as caught,
        client.invoke({"prompt": "hi"}) as stream,
    ):
        data.extend(event.data for event in stream)
    assert data == agents.FAILING_ITEMS
    assert caught.value.error_type == "RuntimeError"
    assert caught.value.message == agents.FAILING_ERROR


def test_real_agent_raising_before_its_answer_is_a_runtime_client_error(
    real_agents: dict[str, Emulator],
) -> None:
    """The app answers 500; AgentCore reports 424, which is not retried."""
    emulator = real_agents["raising"]
    session = new_session_id()
    with make_client(emulator) as client, pytest.raises(AgentCoreError) as caught:
        client.invoke({"prompt": "hi"}, session_id=session)
    assert (caught.value.status, caught.value.error_type) == (424, "RuntimeClientError")
    assert not caught.value.retryable
    assert emulator.session_stats(session)["calls"] == 1


def test_real_websocket_agent_through_presigned_url(
    real_agents: dict[str, Emulator],
) -> None:
    session = new_session_id()
    with make_client(real_agents["websocket"]) as client:
        url = client.presign_websocket(session_id=session)
        with websockets.sync.client.connect(url) as ws:
            assert json.loads(ws.recv()) == {"session": session}
            ws.send("ping")
            assert ws.recv() == "ping"


# Configuration.


def test_from_env_builds_a_working_client(emulator: Emulator) -> None:
    environ = {
        "AGENTCORE_RUNTIME_ARN": emulator.runtime_arn,
        "AGENTCORE_ENDPOINT_URL": emulator.url,
        "AWS_REGION": "eu-west-1",
    }
    with (
        AgentCoreClient.from_env(environ, credentials=emulator.credentials) as client,
        client.invoke({"prompt": "env"}) as stream,
    ):
        assert "You said: env" in words(list(stream))


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"AGENTCORE_RUNTIME_ARN": ""}, "AGENTCORE_RUNTIME_ARN"),
        ({"AGENTCORE_RUNTIME_ARN": "arn:nope"}, "AGENTCORE_RUNTIME_ARN"),
        ({"AGENTCORE_QUALIFIER": "no spaces"}, "AGENTCORE_QUALIFIER"),
        ({"AGENTCORE_ENDPOINT_URL": "http://example.com"}, "AGENTCORE_ENDPOINT_URL"),
        ({"AWS_REGION": "Mars"}, "AWS_REGION"),
        ({"AWS_DEFAULT_REGION": "x"}, "AWS_DEFAULT_REGION"),
    ],
)
def test_from_env_names_the_bad_variable(
    environ: dict[str, str], variable: str
) -> None:
    base = {
        "AGENTCORE_RUNTIME_ARN": (
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-1"
        )
    }
    with pytest.raises(ValidationError) as caught:
        AgentCoreClient.from_env({**base, **environ})
    assert caught.value.field == variable


def test_a_call_may_name_another_runtime(emulator: Emulator) -> None:
    with (
        AgentCoreClient(
            endpoint_url=emulator.url,
            credentials=emulator.credentials,
        ) as client,
        client.invoke({"prompt": "x"}, runtime_arn=emulator.runtime_arn) as stream,
    ):
        assert list(stream)
    with pytest.raises(ValidationError, match="runtime_arn"):
        client.invoke({})
