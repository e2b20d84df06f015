"""The AgentCore emulator: request validation and forwarding to the agent."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from aiohttp import web

from agentcore_bridge import Credentials
from agentcore_bridge.agentcore import (
    MAX_PAYLOAD_BYTES,
    SESSION_ID_HEADER,
    USER_ID_HEADER,
)
from agentcore_bridge.local.agentcore import main as agentcore_main
from agentcore_bridge.local.emulation import EmulatorConfig
from emulator_calls import Answer, call, new_session_id, open_call, stop
from stack import Emulator, agentcore_emulator, demo_agent, local_stack, running_app

JSON_PAYLOAD = {"prompt": "hi", "json": True}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with local_stack() as running:
        yield running


def assert_error(answer: Answer, status: int, error_type: str) -> None:
    assert (answer.status, answer.error_type) == (status, error_type)
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.message


# Validation.


def test_a_malformed_arn_is_a_validation_error_naming_the_field(
    emulator: Emulator,
) -> None:
    answer = call(emulator, payload=JSON_PAYLOAD, runtime_arn="arn:aws:s3:::bucket")
    assert_error(answer, 400, "ValidationException")
    assert "agentRuntimeArn" in answer.message


def test_a_bad_qualifier_is_a_validation_error_naming_the_field(
    emulator: Emulator,
) -> None:
    answer = call(emulator, payload=JSON_PAYLOAD, query={"qualifier": "no spaces!"})
    assert_error(answer, 400, "ValidationException")
    assert "qualifier" in answer.message


def test_a_short_session_id_is_a_validation_error_naming_the_field(
    emulator: Emulator,
) -> None:
    answer = call(emulator, payload=JSON_PAYLOAD, session_id="too-short")
    assert_error(answer, 400, "ValidationException")
    assert "runtimeSessionId" in answer.message


def test_a_bad_user_id_is_a_validation_error(emulator: Emulator) -> None:
    answer = call(emulator, payload=JSON_PAYLOAD, headers={USER_ID_HEADER: "u" * 1025})
    assert_error(answer, 400, "ValidationException")
    assert "runtimeUserId" in answer.message


def test_an_unknown_runtime_is_not_found_when_runtimes_are_listed() -> None:
    known = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/known-0001"
    other = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/other-0002"
    with local_stack(runtime_arns=[known]) as emulator:
        assert emulator.runtime_arn == known
        assert call(emulator, payload=JSON_PAYLOAD).status == 200
        answer = call(emulator, payload=JSON_PAYLOAD, runtime_arn=other)
        assert_error(answer, 404, "ResourceNotFoundException")


def test_a_runtime_id_with_an_account_id_names_the_runtime(emulator: Emulator) -> None:
    answer = call(
        emulator,
        payload=JSON_PAYLOAD,
        runtime_arn="demo_agent-LocalEmu01",
        query={"accountId": "123456789012"},
    )
    assert answer.status == 200
    answer = call(emulator, payload=JSON_PAYLOAD, runtime_arn="demo_agent-LocalEmu01")
    assert_error(answer, 400, "ValidationException")
    assert "accountId" in answer.message


def test_an_unencoded_arn_is_an_unknown_operation(emulator: Emulator) -> None:
    connection = http.client.HTTPConnection(emulator.url.removeprefix("http://"))
    connection.request("POST", f"/runtimes/{emulator.runtime_arn}/invocations", b"{}")
    response = connection.getresponse()
    assert response.status == 404
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    connection.close()


def test_a_missing_session_id_starts_a_new_session_and_returns_its_id(
    emulator: Emulator,
) -> None:
    answer = call(emulator, payload=JSON_PAYLOAD)
    assert answer.status == 200
    session_id = answer.headers[SESSION_ID_HEADER]
    assert str(uuid.UUID(session_id)) == session_id
    assert answer.json()["session_id"] == session_id


def test_a_payload_over_the_limit_is_a_validation_error() -> None:
    with local_stack(max_payload=100) as emulator:
        answer = call(emulator, payload={"prompt": "x" * 200})
        assert_error(answer, 400, "ValidationException")
        assert "payload" in answer.message


def test_the_default_payload_limit_is_the_services_and_the_clients() -> None:
    """100 MB in decimal bytes: what the clients send, the emulator takes."""
    assert EmulatorConfig().max_payload == MAX_PAYLOAD_BYTES == 100_000_000


def test_stop_needs_a_session_id(emulator: Emulator) -> None:
    answer = call(emulator, "stopruntimesession", payload={})
    assert_error(answer, 400, "ValidationException")
    assert "runtimeSessionId" in answer.message


def test_stop_of_an_unknown_session_is_not_found(emulator: Emulator) -> None:
    assert_error(stop(emulator, new_session_id()), 404, "ResourceNotFoundException")


def test_stop_checks_the_client_token(emulator: Emulator) -> None:
    session_id = new_session_id()
    assert call(emulator, payload=JSON_PAYLOAD, session_id=session_id).status == 200
    answer = stop(emulator, session_id, payload={"clientToken": "short"})
    assert_error(answer, 400, "ValidationException")
    assert "clientToken" in answer.message


def test_stop_answers_a_retry_with_the_same_token_like_the_first_call(
    emulator: Emulator,
) -> None:
    session_id = new_session_id()
    call(emulator, payload=JSON_PAYLOAD, session_id=session_id)
    token = {"clientToken": str(uuid.uuid4())}
    first = stop(emulator, session_id, payload=token)
    again = stop(emulator, session_id, payload=token)
    assert (first.status, again.status) == (200, 200)
    assert first.headers[SESSION_ID_HEADER] == session_id
    assert_error(stop(emulator, session_id), 404, "ResourceNotFoundException")


def test_an_unknown_path_is_an_unknown_operation(emulator: Emulator) -> None:
    answer = call(emulator, "invoke")
    assert_error(answer, 404, "UnknownOperationException")


# Forwarding.


def test_the_session_user_and_trace_headers_reach_the_agent(emulator: Emulator) -> None:
    session_id = new_session_id()
    sent = {
        USER_ID_HEADER: "user-42",
        "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Team": "blue",
        "X-Not-Forwarded": "no",
    }
    answer = call(
        emulator,
        payload={**JSON_PAYLOAD, "echo_headers": True},
        session_id=session_id,
        headers=sent,
    )
    received = {k.lower(): v for k, v in answer.json()["headers"].items()}
    assert received[SESSION_ID_HEADER.lower()] == session_id
    for name, value in sent.items():
        if name != "X-Not-Forwarded":
            assert received[name.lower()] == value
    assert "x-not-forwarded" not in received
    assert "authorization" not in received
    assert received["x-amzn-bedrock-agentcore-runtime-request-id"]
    # The trace headers come back in the answer, as the service model says.
    assert answer.headers["traceparent"] == sent["traceparent"]
    assert answer.headers[SESSION_ID_HEADER] == session_id


def test_a_json_answer_passes_through_with_its_content_type(emulator: Emulator) -> None:
    answer = call(emulator, payload=JSON_PAYLOAD, session_id=new_session_id())
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["turn"] == 1


def test_an_sse_answer_passes_through_byte_for_byte(emulator: Emulator) -> None:
    answer = call(emulator, payload={"prompt": "a b"}, session_id=new_session_id())
    assert answer.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert answer.body == (
        b'data: "Turn"\n\ndata: " 1"\n\ndata: " of"\n\ndata: " this"\n\n'
        b'data: " session."\n\ndata: " You"\n\ndata: " said:"\n\n'
        b'data: " a"\n\ndata: " b"\n\n'
    )


def test_a_big_answer_arrives_whole(emulator: Emulator) -> None:
    size = 3 * 1024 * 1024
    answer = call(emulator, payload={"prompt": "", "size": size, "chunk": 65536})
    filler = [e for e in answer.events() if set(e) <= {"x", "\n"}]
    assert len(filler) == size // 65536
    assert sum(len(e) for e in filler) == size


def test_the_session_persists_across_calls(emulator: Emulator) -> None:
    session_id = new_session_id()
    call(emulator, payload=JSON_PAYLOAD, session_id=session_id)
    second = call(emulator, payload=JSON_PAYLOAD, session_id=session_id)
    assert "Turn 2 of this session." in second.json()["answer"]


def test_an_agent_error_status_becomes_a_runtime_client_error(
    emulator: Emulator,
) -> None:
    answer = call(emulator, payload={"status": 500})
    assert_error(answer, 424, "RuntimeClientError")
    assert "500" in answer.message


def test_an_unreachable_agent_is_a_runtime_client_error() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    with agentcore_emulator(f"http://127.0.0.1:{closed_port}") as emulator:
        answer = call(emulator, payload=JSON_PAYLOAD)
        assert_error(answer, 424, "RuntimeClientError")


# Agents that the tests steer step by step.

_GATE = web.AppKey("gate", asyncio.Event)


def gated_agent() -> web.Application:
    """Streams one event, waits for ``POST /release``, then streams the last."""

    async def startup(app: web.Application) -> None:
        app[_GATE] = asyncio.Event()

    async def invocations(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: "first"\n\n')
        await request.app[_GATE].wait()
        await response.write(b'data: "last"\n\n')
        await response.write_eof()
        return response

    async def release(request: web.Request) -> web.Response:
        request.app[_GATE].set()
        return web.Response()

    app = web.Application()
    app.on_startup.append(startup)
    app.router.add_post("/invocations", invocations)
    app.router.add_post("/release", release)
    return app


def breaking_agent() -> web.Application:
    """Streams one event and then drops its connection."""

    async def invocations(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: "only"\n\n')
        assert request.transport is not None
        request.transport.abort()
        return response

    app = web.Application()
    app.router.add_post("/invocations", invocations)
    return app


def release(agent_url: str) -> None:
    connection = http.client.HTTPConnection(agent_url.removeprefix("http://"))
    connection.request("POST", "/release")
    assert connection.getresponse().status == 200
    connection.close()


def test_events_pass_through_as_the_agent_produces_them() -> None:
    """The first event arrives while the agent still holds back the last."""
    with (
        running_app(gated_agent()) as agent_url,
        agentcore_emulator(agent_url) as emulator,
    ):
        connection, response = open_call(emulator, payload={}, timeout=10)
        assert response.status == 200
        assert response.readline() == b'data: "first"\n'
        assert response.readline() == b"\n"
        release(agent_url)
        assert response.read() == b'data: "last"\n\n'
        connection.close()


def test_an_agent_that_breaks_its_stream_breaks_the_clients() -> None:
    with (
        running_app(breaking_agent()) as agent_url,
        agentcore_emulator(agent_url) as emulator,
    ):
        connection, response = open_call(emulator, payload={}, timeout=10)
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as broken:
            response.read()
        assert broken.value.partial == b'data: "only"\n\n'
        connection.close()


def test_stopping_a_session_cuts_its_open_stream() -> None:
    with (
        running_app(gated_agent()) as agent_url,
        agentcore_emulator(agent_url) as emulator,
    ):
        session_id = new_session_id()
        connection, response = open_call(
            emulator, payload={}, session_id=session_id, timeout=10
        )
        assert response.readline() == b'data: "first"\n'
        assert stop(emulator, session_id).status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()
        connection.close()
        assert emulator.stats()["sessions_ended"] == {"stopped": 1}
        release(agent_url)


def test_the_control_api_rejects_bad_input_and_hides_secrets(
    emulator: Emulator,
) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as bad_fault:
        emulator.add_fault("explode")
    assert bad_fault.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as bad_setting:
        emulator.configure(cold_start="slow")
    assert bad_setting.value.code == 400
    settings = emulator.configure()
    assert settings["access_key_ids"] == [emulator.credentials.access_key_id]
    assert emulator.credentials.secret_access_key not in json.dumps(settings)


def test_a_setting_that_is_not_a_finite_number_is_refused(
    emulator: Emulator,
) -> None:
    """NaN would keep every session warm for ever; the setting stays as it was."""
    import urllib.error

    before = emulator.configure()["idle_timeout"]
    for value in (float("nan"), float("inf")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            emulator.configure(idle_timeout=value)
        assert refused.value.code == 400
        assert "idle_timeout" in json.loads(refused.value.read())["message"]
    assert emulator.configure()["idle_timeout"] == before


def test_a_fault_with_a_field_of_the_wrong_kind_is_refused_at_once(
    emulator: Emulator,
) -> None:
    """Refused with a 400 naming the field, not stored to break a later call."""
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as bad_fault:
        emulator.add_fault("error", error_type="Bad\r\nX-Injected: 1")
    assert bad_fault.value.code == 400
    assert "error_type" in json.loads(bad_fault.value.read())["message"]
    assert emulator.faults() == []
    answer = call(emulator, payload={"prompt": "hi"}, session_id=new_session_id())
    assert answer.status == 200


# The command line.


def test_the_local_agentcore_command_prints_what_to_export_and_serves() -> None:
    with demo_agent() as agent_url:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentcore_bridge.cli",
                "local-agentcore",
                "--port",
                "0",
                "--agent-url",
                agent_url,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None
            exported = {}
            for line in process.stdout:
                if line.startswith("  export "):
                    name, _, value = (
                        line.removeprefix("  export ").strip().partition("=")
                    )
                    exported[name] = value
                if line.startswith("Control API"):
                    break
            emulator = Emulator(
                url=exported["AGENTCORE_ENDPOINT_URL"],
                credentials=Credentials(
                    exported["AWS_ACCESS_KEY_ID"], exported["AWS_SECRET_ACCESS_KEY"]
                ),
                runtime_arn=exported["AGENTCORE_RUNTIME_ARN"],
                region=exported["AWS_REGION"],
                agent_url=agent_url,
            )
            assert call(emulator, payload=JSON_PAYLOAD).status == 200
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0


@pytest.mark.parametrize(
    "arguments",
    [
        ["--credentials", "only-a-key"],
        ["--runtime-arn", "arn:aws:s3:::bucket"],
        ["--fault", '{"kind": "explode"}'],
        ["--max-sessions", "-1"],
        ["--idle-timeout", "nan"],
        ["--cold-start", "inf"],
        ["--max-payload", "-5"],
    ],
)
def test_the_command_refuses_bad_arguments(arguments: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        agentcore_main(arguments)
    assert exited.value.code == 2


@pytest.mark.parametrize("command", ["local-agentcore", "demo-agent"])
def test_a_port_in_use_is_one_line_naming_the_flag(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentcore_bridge.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main([command, "--host", "127.0.0.1", "--port", str(port)])
    errors = capsys.readouterr().err
    assert status == 1
    assert errors == (
        f"agentcore-bridge {command}: port {port} on 127.0.0.1 is already in use; "
        "stop the program using it or choose another port with --port\n"
    )
