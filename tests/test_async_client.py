"""AsyncAgentCoreClient against the local AgentCore emulator, over loopback."""

from __future__ import annotations

import asyncio
import builtins
import json
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack
from typing import Any, TypeVar

import aiohttp
import pytest
from yarl import URL

import agents
from agentcore_bridge import AsyncAgentCoreClient
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
    Proxy,
    Script,
    counting_proxy,
    scripted_agent_url,
    wait_until,
)
from stack import Emulator, agentcore_emulator, asgi_agent, local_stack

FAST_RETRIES = Retries(max_attempts=3, base_delay=0.01, max_delay=0.02)
T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


@pytest.fixture(scope="module")
def stack() -> Iterator[Emulator]:
    with local_stack() as emulator:
        yield emulator


@pytest.fixture
def emulator(stack: Emulator) -> Emulator:
    stack.reset()
    return stack


def make_client(emulator: Emulator, **options: Any) -> AsyncAgentCoreClient:
    options.setdefault("retries", FAST_RETRIES)
    options.setdefault("endpoint_url", emulator.url)
    options.setdefault("credentials", emulator.credentials)
    return AsyncAgentCoreClient(emulator.runtime_arn, **options)


async def collect(
    client: AsyncAgentCoreClient, payload: Any, **options: Any
) -> list[Any]:
    async with client.invoke(payload, **options) as stream:
        return [event.data async for event in stream]


# Streaming.


def test_streams_every_event_in_order(emulator: Emulator) -> None:
    async def main() -> tuple[list[Any], str, str]:
        session = new_session_id()
        async with (
            make_client(emulator) as client,
            client.invoke({"prompt": "a b", "words": 20}, session_id=session) as s,
        ):
            data = [event.data async for event in s]
            return data, s.session_id, s.content_type

    data, session, content_type = run(main)
    assert data[:7] == ["Turn", " 1", " of", " this", " session.", " You", " said:"]
    filler = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing"]
    assert "".join(data).split()[9:] == [filler[i % 7] for i in range(20)]
    assert len(session) >= 33
    assert content_type.startswith("text/event-stream")


def test_first_event_arrives_while_the_agent_still_runs() -> None:
    """The agent is blocked after two events until the test has read them."""
    script = Script()

    async def main(emu: Emulator) -> list[Any]:
        async with make_client(emu) as client, client.invoke({"gated": 2}) as stream:
            first = [await stream.__anext__(), await stream.__anext__()]
            assert not script.finished.is_set()
            script.gate.set()
            rest = [event async for event in stream]
        return [event.data for event in first + rest]

    with scripted_agent_url(script) as agent_url, agentcore_emulator(agent_url) as emu:
        assert asyncio.run(main(emu)) == ["before 0", "before 1", "after"]


def test_stream_can_be_awaited_or_iterated_directly(emulator: Emulator) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        async with make_client(emulator) as client:
            stream = await client.invoke({"prompt": "x"})
            async with stream:
                awaited = [event.data async for event in stream]
            iterated = [event.data async for event in client.invoke({"prompt": "x"})]
        return awaited, iterated

    awaited, iterated = run(main)
    assert awaited == iterated
    assert awaited[-1] == " x"


def test_json_answer_is_one_event(emulator: Emulator) -> None:
    async def main() -> list[Any]:
        async with make_client(emulator) as client:
            return await collect(client, {"prompt": "hi", "json": True})

    (value,) = run(main)
    assert isinstance(value, dict)


def test_agent_error_event_raises_after_the_events_before_it(
    emulator: Emulator,
) -> None:
    received: list[Any] = []

    async def main() -> None:
        async with (
            make_client(emulator) as client,
            client.invoke({"prompt": "x y", "fail_after": 2}) as stream,
        ):
            async for event in stream:
                received.append(event.data)

    with pytest.raises(AgentError) as caught:
        run(main)
    assert received == ["Turn", " 1"]
    assert caught.value.error_type == "DemoAgentError"


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("typescript", ["Hello", " world"]),
        ("typescript-text", ["first", "second"]),
        ("named", [{"t": 1}, {"t": 2}]),
    ],
)
def test_other_sse_shapes(shape: str, expected: list[Any]) -> None:
    async def main(emu: Emulator) -> list[Any]:
        async with make_client(emu) as client:
            return await collect(client, {"shape": shape})

    with (
        scripted_agent_url(Script()) as agent_url,
        agentcore_emulator(agent_url) as emu,
    ):
        assert asyncio.run(main(emu)) == expected


def test_typescript_error_event_is_an_agent_error() -> None:
    async def main(emu: Emulator) -> list[Any]:
        async with make_client(emu) as client:
            return await collect(client, {"shape": "typescript-error"})

    with (
        scripted_agent_url(Script()) as agent_url,
        agentcore_emulator(agent_url) as emu,
        pytest.raises(AgentError, match="stream failed"),
    ):
        asyncio.run(main(emu))


# Errors.


@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [
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
    ],
)
def test_every_error_status_maps_to_agentcore_error(
    emulator: Emulator, status: int, error_type: str, retryable: bool
) -> None:
    emulator.add_fault("error", status=status, error_type=error_type, message="boom")
    session = new_session_id()

    async def main() -> None:
        async with make_client(emulator, retries=Retries(max_attempts=1)) as client:
            await collect(client, {"prompt": "x"}, session_id=session)

    with pytest.raises(AgentCoreError) as caught:
        run(main)
    error = caught.value
    assert (error.status, error.error_type, error.retryable, error.message) == (
        status,
        error_type,
        retryable,
        "boom",
    )
    assert error.request_id
    assert emulator.session_stats(session)["calls"] == 1


@pytest.mark.parametrize("fault", ["error", "drop"])
def test_failure_before_first_byte_is_retried(emulator: Emulator, fault: str) -> None:
    emulator.add_fault(fault, status=503)
    session = new_session_id()

    async def main() -> list[Any]:
        async with make_client(emulator) as client:
            return await collect(client, {"prompt": "again"}, session_id=session)

    assert run(main)[-1] == " again"
    assert emulator.session_stats(session)["calls"] == 2


def test_retries_stop_at_max_attempts(emulator: Emulator) -> None:
    emulator.add_fault("error", status=500, repeat=0)
    session = new_session_id()

    async def main() -> None:
        async with make_client(emulator) as client:
            await collect(client, {"prompt": "x"}, session_id=session)

    with pytest.raises(AgentCoreError):
        run(main)
    assert emulator.session_stats(session)["calls"] == 3


def test_reset_mid_stream_is_not_retried(emulator: Emulator) -> None:
    emulator.add_fault("reset", after_events=2)
    session = new_session_id()
    received: list[Any] = []

    async def main() -> None:
        async with (
            make_client(emulator) as client,
            client.invoke({"prompt": "one two three"}, session_id=session) as stream,
        ):
            async for event in stream:
                received.append(event)

    with pytest.raises(TransportError) as caught:
        run(main)
    assert caught.value.response_started
    assert len(received) == 2
    assert emulator.session_stats(session)["calls"] == 1


def test_slow_first_byte_times_out_and_is_not_retried(emulator: Emulator) -> None:
    emulator.add_fault("slow_first_byte", seconds=3)
    session = new_session_id()

    async def main() -> None:
        timeouts = Timeouts(first_byte=0.3)
        async with make_client(emulator, timeouts=timeouts) as client:
            await collect(client, {"prompt": "x"}, session_id=session)

    with pytest.raises(TimeoutError) as caught:
        run(main)
    assert caught.value.phase == "first_byte"
    assert not caught.value.response_started
    assert emulator.session_stats(session)["calls"] == 1


def test_silent_stream_times_out_as_idle(emulator: Emulator) -> None:
    async def main() -> None:
        async with (
            make_client(emulator, timeouts=Timeouts(idle=0.3)) as client,
            client.invoke({"prompt": "a b", "delay": 5}) as stream,
        ):
            assert (await stream.__anext__()).data == "Turn"
            await stream.__anext__()

    with pytest.raises(TimeoutError) as caught:
        run(main)
    assert caught.value.phase == "idle"
    assert caught.value.response_started


def test_total_timeout_bounds_the_whole_call(emulator: Emulator) -> None:
    async def main() -> None:
        async with make_client(emulator, timeouts=Timeouts(total=0.5)) as client:
            await collect(client, {"prompt": "a b c d e f", "delay": 0.2})

    with pytest.raises(TimeoutError) as caught:
        run(main)
    assert caught.value.phase == "total"


def test_expired_token_refreshes_credentials_once(emulator: Emulator) -> None:
    emulator.add_fault("error", status=403, error_type="ExpiredTokenException")
    source = CountingSource(emulator.credentials)

    async def main() -> list[Any]:
        options = {"credentials": source, "retries": Retries(max_attempts=1)}
        async with make_client(emulator, **options) as client:
            return await collect(client, {"prompt": "x"})

    assert run(main)
    assert source.invalidations == 1


# Connections.


def test_connections_are_kept_alive_between_calls(emulator: Emulator) -> None:
    async def main(url: str) -> None:
        async with make_client(emulator, endpoint_url=url) as client:
            for prompt in ("one", "two", "three"):
                assert await collect(client, {"prompt": prompt})

    with counting_proxy(emulator.url) as proxy:
        asyncio.run(main(proxy.url))
        assert proxy.accepted == 1


def test_early_close_releases_the_connection() -> None:
    """Leaving a stream the agent is still writing closes its connection."""
    script = Script()

    async def main(emu: Emulator, proxy: Proxy) -> list[Any]:
        async with make_client(emu, endpoint_url=proxy.url) as client:
            async with client.invoke({"gated": 1}) as stream:
                await stream.__anext__()
            await asyncio.get_running_loop().run_in_executor(
                None, wait_until, lambda: proxy.open == 0
            )
            script.gate.set()
            return await collect(client, {"shape": "typescript"})

    with (
        scripted_agent_url(script) as agent_url,
        agentcore_emulator(agent_url) as emu,
        counting_proxy(emu.url) as proxy,
    ):
        assert asyncio.run(main(emu, proxy)) == ["Hello", " world"]
        assert proxy.accepted == 2


def test_stop_session(emulator: Emulator) -> None:
    session = new_session_id()

    async def main() -> None:
        async with make_client(emulator) as client:
            await collect(client, {"prompt": "x"}, session_id=session)
            await client.stop_session(session)
            with pytest.raises(AgentCoreError) as caught:
                await client.stop_session(new_session_id())
            assert caught.value.status == 404

    run(main)
    assert emulator.session_stats(session)["stops"] == 1


def test_invalid_values_fail_before_sending(emulator: Emulator) -> None:
    client = make_client(emulator)
    with pytest.raises(ValidationError):
        client.invoke({}, session_id="short")
    with pytest.raises(ValidationError):
        client.invoke({}, traceparent="x" * 129)
    assert emulator.stats()["requests"] == {}


def test_an_empty_session_id_is_refused_not_replaced(emulator: Emulator) -> None:
    """Only a missing id starts a new session; "" is a bad id like any other."""

    async def main() -> None:
        async with make_client(emulator) as client:
            with pytest.raises(ValidationError) as caught:
                client.invoke({}, session_id="")
            assert caught.value.field == "runtimeSessionId"
            with pytest.raises(ValidationError):
                await client.websocket_request(session_id="")
            with pytest.raises(ValidationError):
                await client.presign_websocket(session_id="")

    run(main)
    assert emulator.stats()["requests"] == {}


# WebSocket.


def test_signed_websocket_upgrade_with_aiohttp(emulator: Emulator) -> None:
    async def main() -> Any:
        async with make_client(emulator) as client, aiohttp.ClientSession() as http:
            request = await client.websocket_request()
            async with http.ws_connect(
                URL(request.url, encoded=True), headers=request.headers
            ) as ws:
                await ws.send_str(json.dumps({"prompt": "yo"}))
                frames = []
                while not frames or frames[-1]["type"] != "end":
                    frames.append(json.loads((await ws.receive()).data))
                return frames

    frames = run(main)
    assert "You said: yo" in "".join(f["data"] for f in frames if f["type"] == "chunk")


def test_presigned_websocket_with_aiohttp(emulator: Emulator) -> None:
    session = new_session_id()

    async def main() -> bytes:
        async with make_client(emulator) as client, aiohttp.ClientSession() as http:
            url = await client.presign_websocket(session_id=session, expires=30)
            async with http.ws_connect(URL(url, encoded=True)) as ws:
                await ws.send_bytes(b"\x01\x02")
                message = await ws.receive()
                return bytes(message.data)

    assert run(main) == b"\x01\x02"
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
    with ExitStack() as stack_:
        emulators = {}
        for name, app in apps.items():
            agent_url = stack_.enter_context(asgi_agent(app))
            emulators[name] = stack_.enter_context(agentcore_emulator(agent_url))
        yield emulators


def test_real_agents_deliver_every_event_in_order(
    real_agents: dict[str, Emulator],
) -> None:
    session = new_session_id()

    async def main() -> tuple[list[Any], list[Any]]:
        async with (
            make_client(real_agents["streaming"]) as streaming,
            make_client(real_agents["returning"]) as returning,
        ):
            return (
                await collect(streaming, {"prompt": "hi"}, session_id=session),
                await collect(returning, {"prompt": "hi"}, session_id=session),
            )

    streamed, returned = run(main)
    assert streamed == [*agents.STREAMING_ITEMS, {"session": session, "prompt": "hi"}]
    assert returned == [{"answer": "You said: hi", "session": session}]


def test_real_failing_agent_gives_items_then_agent_error(
    real_agents: dict[str, Emulator],
) -> None:
    received: list[Any] = []

    async def main() -> None:
        async with (
            make_client(real_agents["failing"]) as client,
            client.invoke({"prompt": "hi"}) as stream,
        ):
            async for event in stream:
                received.append(event.data)

    with pytest.raises(AgentError) as caught:
        run(main)
    assert received == agents.FAILING_ITEMS
    assert (caught.value.error_type, caught.value.message) == (
        "RuntimeError",
        agents.FAILING_ERROR,
    )


def test_real_agent_raising_before_its_answer_is_a_runtime_client_error(
    real_agents: dict[str, Emulator],
) -> None:
    """The app answers 500; AgentCore reports 424, which is not retried."""
    emulator = real_agents["raising"]
    session = new_session_id()

    async def main() -> None:
        async with make_client(emulator) as client:
            await collect(client, {"prompt": "hi"}, session_id=session)

    with pytest.raises(AgentCoreError) as caught:
        run(main)
    assert (caught.value.status, caught.value.error_type) == (424, "RuntimeClientError")
    assert not caught.value.retryable
    assert emulator.session_stats(session)["calls"] == 1


def test_real_websocket_agent_with_signed_upgrade(
    real_agents: dict[str, Emulator],
) -> None:
    session = new_session_id()

    async def main() -> list[Any]:
        async with (
            make_client(real_agents["websocket"]) as client,
            aiohttp.ClientSession() as http,
        ):
            request = await client.websocket_request(session_id=session)
            async with http.ws_connect(
                URL(request.url, encoded=True), headers=request.headers
            ) as ws:
                greeting = json.loads((await ws.receive()).data)
                await ws.send_str("echo me")
                echo = (await ws.receive()).data
                return [greeting, echo]

    assert run(main) == [{"session": session}, "echo me"]


def test_importing_the_package_does_not_load_aiohttp() -> None:
    import subprocess

    code = (
        "import sys, agentcore_bridge, agentcore_bridge.sync.agentcore;"
        "client = agentcore_bridge.AgentCoreClient;"
        "print(sorted(m for m in ('aiohttp', 'yarl', 'multidict', 'botocore')"
        " if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]

    async def main() -> None:
        async with AsyncAgentCoreClient(
            "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/a",
            endpoint_url=f"http://127.0.0.1:{port}",
            credentials=LOCAL_CREDENTIALS,
            retries=FAST_RETRIES,
        ) as client:
            await collect(client, {})

    with pytest.raises(TransportError, match="could not connect") as caught:
        run(main)
    assert not caught.value.response_started


def test_reset_opens_new_connections_and_refreshes_credentials(
    emulator: Emulator,
) -> None:
    source = CountingSource(emulator.credentials)

    async def main(url: str) -> None:
        async with make_client(emulator, endpoint_url=url, credentials=source) as c:
            assert await collect(c, {"prompt": "a"})
            await c.reset()
            assert await collect(c, {"prompt": "b"})

    with counting_proxy(emulator.url) as proxy:
        asyncio.run(main(proxy.url))
        assert proxy.accepted == 2
    assert source.invalidations == 1


# The timer used on Python 3.10, where asyncio.timeout_at does not exist.


def test_fallback_timeout_fires_and_can_be_moved() -> None:
    from agentcore_bridge.aio.agentcore import _FallbackTimeout

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        outcomes = []
        try:
            async with _FallbackTimeout(loop.time() + 0.05):
                await asyncio.sleep(5)
        except builtins.TimeoutError:
            outcomes.append("fired")
        try:
            async with _FallbackTimeout(loop.time() + 60) as timer:
                timer.reschedule(loop.time() + 0.05)
                await asyncio.sleep(5)
        except builtins.TimeoutError:
            outcomes.append("moved")
        async with _FallbackTimeout(loop.time() + 60):
            await asyncio.sleep(0)
        outcomes.append("finished")
        return outcomes

    assert run(main) == ["fired", "moved", "finished"]
