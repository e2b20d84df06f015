"""A real botocore client against the emulator: signatures and wire format.

botocore signs with its own SigV4 code and parses answers with the service
model, so these tests prove that the emulator checks signatures the way
AWS does and answers in the shapes botocore expects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from emulator_calls import new_session_id
from stack import Emulator, agentcore_emulator, local_stack, running_app
from test_local_agentcore import gated_agent, release


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with local_stack() as running:
        yield running


def client_for(emulator: Emulator, secret: str | None = None, **config: Any) -> Any:
    return botocore.session.get_session().create_client(
        "bedrock-agentcore",
        region_name="us-west-2",
        endpoint_url=emulator.url,
        aws_access_key_id=emulator.credentials.access_key_id,
        aws_secret_access_key=secret or emulator.credentials.secret_access_key,
        config=Config(**config),
    )


def sse_events(body: bytes) -> list[Any]:
    return [
        json.loads(line[len(b"data: ") :])
        for line in body.split(b"\n")
        if line.startswith(b"data: ")
    ]


def test_invoke_agent_runtime_streams_the_agents_events(emulator: Emulator) -> None:
    session_id = new_session_id()
    response = client_for(emulator).invoke_agent_runtime(
        agentRuntimeArn=emulator.runtime_arn,
        qualifier="DEFAULT",
        runtimeSessionId=session_id,
        payload=json.dumps({"prompt": "hello botocore"}),
    )
    assert response["statusCode"] == 200
    assert response["runtimeSessionId"] == session_id
    assert response["contentType"] == "text/event-stream; charset=utf-8"
    body = b"".join(response["response"].iter_chunks())
    assert (
        "".join(sse_events(body)) == "Turn 1 of this session. You said: hello botocore"
    )


def test_botocore_reads_the_first_event_while_the_agent_still_runs() -> None:
    """The answer streams to botocore: its first event before the agent ends."""
    first = b'data: "first"\n\n'
    with (
        running_app(gated_agent()) as agent_url,
        agentcore_emulator(agent_url) as emulator,
    ):
        response = client_for(emulator).invoke_agent_runtime(
            agentRuntimeArn=emulator.runtime_arn,
            runtimeSessionId=new_session_id(),
            payload=b"{}",
        )
        body = response["response"]
        # Exactly the first event's length: the read returns without
        # waiting for more, while the agent holds back the rest.
        assert body.read(len(first)) == first
        release(agent_url)
        assert body.read() == b'data: "last"\n\n'


def test_botocore_generates_a_session_id_that_the_emulator_accepts(
    emulator: Emulator,
) -> None:
    response = client_for(emulator).invoke_agent_runtime(
        agentRuntimeArn=emulator.runtime_arn,
        payload=json.dumps({"prompt": "x", "json": True}),
    )
    session_id = response["runtimeSessionId"]
    assert json.loads(response["response"].read())["session_id"] == session_id


def test_stop_runtime_session_ends_the_session(emulator: Emulator) -> None:
    client = client_for(emulator)
    session_id = new_session_id()
    for _ in range(2):
        client.invoke_agent_runtime(
            agentRuntimeArn=emulator.runtime_arn,
            runtimeSessionId=session_id,
            payload=b'{"prompt": "x", "json": true}',
        )["response"].read()

    response = client.stop_runtime_session(
        agentRuntimeArn=emulator.runtime_arn, runtimeSessionId=session_id
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["runtimeSessionId"] == session_id
    assert not emulator.session_stats(session_id)["active"]

    again = client.invoke_agent_runtime(
        agentRuntimeArn=emulator.runtime_arn,
        runtimeSessionId=session_id,
        payload=b'{"prompt": "x", "json": true}',
    )
    again["response"].read()
    assert emulator.session_stats(session_id)["cold_starts"] == 2


def test_a_429_is_a_throttling_client_error(emulator: Emulator) -> None:
    emulator.configure(rate_limit=0.01)
    client = client_for(emulator, retries={"total_max_attempts": 1})
    call = {"agentRuntimeArn": emulator.runtime_arn, "payload": b"{}"}
    client.invoke_agent_runtime(**call)["response"].read()
    with pytest.raises(ClientError) as throttled:
        client.invoke_agent_runtime(**call)
    error = throttled.value.response
    assert error["Error"]["Code"] == "ThrottlingException"
    assert error["Error"]["Message"] == "Rate exceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (500, "InternalServerException"),
        (409, "RetryableConflictException"),
        (402, "ServiceQuotaExceededException"),
    ],
)
def test_injected_errors_reach_botocore_with_their_names(
    emulator: Emulator, status: int, error_type: str
) -> None:
    emulator.add_fault("error", status=status, error_type=error_type, message="boom")
    client = client_for(emulator, retries={"total_max_attempts": 1})
    with pytest.raises(ClientError) as failed:
        client.invoke_agent_runtime(agentRuntimeArn=emulator.runtime_arn, payload="{}")
    assert failed.value.response["Error"] == {"Code": error_type, "Message": "boom"}
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_a_wrong_secret_is_an_invalid_signature(emulator: Emulator) -> None:
    client = client_for(emulator, secret="not-the-secret")
    with pytest.raises(ClientError) as rejected:
        client.invoke_agent_runtime(agentRuntimeArn=emulator.runtime_arn, payload="{}")
    assert rejected.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_a_bad_qualifier_is_a_validation_exception(emulator: Emulator) -> None:
    with pytest.raises(ClientError) as rejected:
        client_for(emulator).invoke_agent_runtime(
            agentRuntimeArn=emulator.runtime_arn, qualifier="not valid!", payload="{}"
        )
    assert rejected.value.response["Error"]["Code"] == "ValidationException"
    assert "qualifier" in rejected.value.response["Error"]["Message"]


def test_an_agent_failure_is_a_runtime_client_error(emulator: Emulator) -> None:
    with pytest.raises(ClientError) as failed:
        client_for(emulator).invoke_agent_runtime(
            agentRuntimeArn=emulator.runtime_arn, payload=b'{"status": 503}'
        )
    assert failed.value.response["Error"]["Code"] == "RuntimeClientError"
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
