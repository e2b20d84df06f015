"""The Lambda adapter end to end, over the whole local stack.

A real WebSocket client (``websockets``) talks to the local API Gateway
emulator, which runs ``agentcore_bridge.awslambda.handler`` in worker
processes (Lambda execution environments) configured by environment
variables; the handler calls the local AgentCore emulator, which forwards
to the demo agent, and posts back through the emulator's ``@connections``.
Nothing is mocked. Assertions compare frames and counts, never timings.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from agentcore_bridge.client import FrameDecoder, encode_cancel, encode_invoke
from agentcore_bridge.exceptions import ProtocolError
from agentcore_bridge.protocol import encode_ping
from agentcore_bridge.sessions import SessionTokens, derive_session_id
from agentcore_bridge.sync.lambda_api import LambdaClient
from apigw_stack import Gateway, local_apigw
from stack import Emulator, local_stack
from test_client_js import NODE, node_has_websocket

HANDLERS = Path(__file__).parent / "handlers_lambda"
SECRET = "end-to-end-session-secret-0123456789"
TOKENS = SessionTokens(SECRET.encode())
# Long enough to be running whenever a test looks, never to finish.
ENDLESS = {"prompt": "go on", "words": 100_000, "delay": 0.05}


@pytest.fixture(scope="module")
def stack() -> Iterator[Emulator]:
    with local_stack() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def no_faults(stack: Emulator) -> Iterator[None]:
    stack.clear_faults()
    yield
    stack.clear_faults()


def bridge_env(stack: Emulator, **extra: str) -> dict[str, str]:
    env = {
        "AGENTCORE_RUNTIME_ARN": stack.runtime_arn,
        "AGENTCORE_ENDPOINT_URL": stack.url,
        "BRIDGE_SESSION_SECRET": SECRET,
        "BRIDGE_MAX_FRAME_BYTES": "4096",
        "BRIDGE_CONNECTION_CHECK_INTERVAL": "0.2",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def gateway(stack: Emulator) -> Iterator[Gateway]:
    with local_apigw(
        "agentcore_bridge.awslambda:handler",
        env=bridge_env(stack),
        credentials=stack.credentials,
        max_concurrency=4,
    ) as running:
        yield running


@dataclass
class Received:
    """What one client read: raw messages, the frames in them, anything else."""

    messages: list[str] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    decoder: FrameDecoder = field(default_factory=FrameDecoder)

    def of(self, id_: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("id") == id_]

    def chunks(self, id_: str) -> list[dict[str, Any]]:
        return [f for f in self.of(id_) if f["type"] == "chunk"]

    def terminals(self, id_: str) -> list[dict[str, Any]]:
        return [f for f in self.of(id_) if f["type"] in {"end", "error"}]

    def text(self, id_: str) -> str:
        return "".join(str(f["data"]) for f in self.chunks(id_))

    def token(self) -> str:
        sessions = [f for f in self.frames if f["type"] == "session"]
        return str(sessions[-1]["session"])

    async def read(
        self,
        ws: ClientConnection,
        until: Callable[[Received], bool],
        timeout: float = 30.0,
    ) -> None:
        """Read messages until ``until(self)`` holds."""
        while not until(self):
            message = await asyncio.wait_for(ws.recv(), timeout)
            assert isinstance(message, str)
            self.messages.append(message)
            try:
                self.frames += self.decoder.feed(message, time.monotonic())
            except ProtocolError:
                # API Gateway's own messages ("Endpoint request timed out").
                self.foreign.append(message)

    async def finish(self, ws: ClientConnection, *ids: str) -> None:
        """Read until every invocation of ``ids`` has its terminal frame."""
        await self.read(ws, lambda r: all(r.terminals(i) for i in ids))


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def assert_well_formed(received: Received, id_: str) -> None:
    """Chunks numbered 0, 1, 2 ... in order, then exactly one terminal frame, last."""
    frames = received.of(id_)
    terminals = received.terminals(id_)
    assert len(terminals) == 1
    assert frames[-1] is terminals[0]
    seqs = [f["seq"] for f in received.chunks(id_)]
    assert seqs == list(range(len(seqs)))
    if terminals[0]["type"] == "end":
        assert terminals[0]["seq"] == len(seqs)


def open_connection_ids(gateway: Gateway) -> list[str]:
    return [
        str(c["connectionId"])
        for c in gateway.stats()["connections"]
        if c["state"] == "open"
    ]


# Streaming.


def test_answer_streams_in_order_coalesced_with_one_end(gateway: Gateway) -> None:
    async def scenario() -> Received:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            await ws.send(encode_invoke("q1", {"prompt": "hello there", "words": 500}))
            await received.finish(ws, "q1")
        return received

    received = asyncio.run(scenario())
    assert_well_formed(received, "q1")
    assert received.terminals("q1")[0]["type"] == "end"
    assert received.text("q1").startswith("Turn 1 of this session. You said: hello")
    chunks = len(received.chunks("q1"))
    assert chunks == 509
    # Coalesced: far fewer messages than chunks, and the first chunk went
    # out at once, alone with the session frame that rides along with it.
    assert len(received.messages) < chunks / 2
    first = json.loads(received.messages[0])
    assert first["type"] == "batch"
    assert [f["type"] for f in first["frames"]] == ["session", "chunk"]
    assert first["frames"][1]["seq"] == 0


def test_a_300_kb_chunk_is_split_into_parts_and_reassembled(gateway: Gateway) -> None:
    async def scenario() -> Received:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            payload = {"prompt": "big", "size": 300_000, "chunk": 300_000}
            await ws.send(encode_invoke("big", payload))
            await received.finish(ws, "big")
        return received

    received = asyncio.run(scenario())
    assert_well_formed(received, "big")
    assert max(len(m.encode()) for m in received.messages) <= 131072
    assert sum(json.loads(m)["type"] == "part" for m in received.messages) >= 3
    last = received.chunks("big")[-1]["data"]
    assert len(last) == 300_000
    assert set(last) == {"x", "\n"}


def test_concurrent_invocations_each_end_once(gateway: Gateway) -> None:
    """Two invocations on one connection run in two environments at once."""

    async def scenario() -> Received:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            await ws.send(encode_invoke("a", {"prompt": "one", "words": 30}))
            await ws.send(encode_invoke("b", {"prompt": "two", "words": 40}))
            await received.finish(ws, "a", "b")
        return received

    received = asyncio.run(scenario())
    for id_, words in (("a", 30), ("b", 40)):
        assert_well_formed(received, id_)
        assert len(received.chunks(id_)) == 8 + words


# A client that goes away.


def test_a_client_gone_mid_stream_stops_the_agent(
    gateway: Gateway, stack: Emulator
) -> None:
    async def scenario() -> str:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            await ws.send(encode_invoke("long", ENDLESS))
            await received.read(ws, lambda r: len(r.chunks("long")) >= 3)
        return TOKENS.verify(received.token(), None, time.time())

    session_id = asyncio.run(scenario())

    def stream_ended() -> list[dict[str, Any]]:
        # The emulator logs a stream when it starts and notes how it ended;
        # the agent would stream for over an hour, so an end is an early
        # one. (A write to the closed connection is filed under either
        # outcome, depending on which side of it noticed first.)
        return [
            entry
            for entry in stack.stats()["log"]
            if entry["session_id"] == session_id
            and entry["operation"] == "invoke"
            and entry["outcome"] in {"client_gone", "agent_reset"}
        ]

    assert len(wait_until(stream_ended)) == 1
    wait_until(lambda: gateway.stats()["environments_busy"] == 0)


def test_a_silent_agent_is_stopped_when_its_client_is_gone(
    gateway: Gateway, stack: Emulator
) -> None:
    """No chunk to post: the handler's own check finds the 410 and cuts the stream."""
    stack.add_fault("slow_first_byte", seconds=120)
    invokes = stack.stats()["requests"].get("invoke", 0)

    async def scenario() -> None:
        async with connect(gateway.ws_url) as ws:
            await ws.send(encode_invoke("silent", {"prompt": "think"}))
            await asyncio.to_thread(
                wait_until,
                lambda: stack.stats()["requests"].get("invoke", 0) > invokes,
            )

    asyncio.run(scenario())
    wait_until(lambda: gateway.stats()["environments_busy"] == 0)


# Failures.


@pytest.mark.parametrize(
    ("fault", "payload", "code", "retryable"),
    [
        (
            {"kind": "error", "status": 429, "error_type": "ThrottlingException"},
            {},
            "rate_limited",
            True,
        ),
        (
            {"kind": "error", "status": 503, "error_type": "ServiceUnavailable"},
            {},
            "agent_unavailable",
            True,
        ),
        ({"kind": "reset", "after_events": 3}, {}, "agent_unavailable", False),
        (None, {"fail_after": 2}, "agent_error", False),
    ],
    ids=["throttled", "unavailable", "reset-mid-stream", "agent-error"],
)
def test_agentcore_failures_end_with_one_clear_error(
    gateway: Gateway,
    stack: Emulator,
    fault: dict[str, Any] | None,
    payload: dict[str, Any],
    code: str,
    retryable: bool,
) -> None:
    if fault is not None:
        # Every attempt of the client's retries fails the same way.
        kind = fault.pop("kind")
        stack.add_fault(kind, repeat=0, **fault)

    async def scenario() -> Received:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            await ws.send(encode_invoke("f", {"prompt": "try", "words": 20, **payload}))
            await received.finish(ws, "f")
            stack.clear_faults()
            await ws.send(encode_ping("after"))
            await received.read(ws, lambda r: bool(r.of("after")))
        return received

    received = asyncio.run(scenario())
    assert_well_formed(received, "f")
    (error,) = received.terminals("f")
    assert (error["type"], error["code"], error["retryable"]) == (
        "error",
        code,
        retryable,
    )
    assert "Traceback" not in error["message"]
    assert received.of("after") == [{"type": "pong", "id": "after"}]
    if payload:
        assert len(received.chunks("f")) == 2
        assert "DemoAgentError" in error["message"]


def test_malformed_and_oversize_frames_get_errors_and_the_handler_goes_on(
    gateway: Gateway,
) -> None:
    async def scenario() -> Received:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            await ws.send("not json at all")
            await received.read(ws, lambda r: len(r.frames) >= 1)
            await ws.send(encode_invoke("huge", "x" * 5000))
            await received.read(ws, lambda r: bool(r.of("huge")))
            await ws.send('{"type":"launch","id":"odd"}')
            await received.read(ws, lambda r: bool(r.of("odd")))
            await ws.send(encode_invoke("ok", {"prompt": "still here"}))
            await received.finish(ws, "ok")
        return received

    received = asyncio.run(scenario())
    first = received.frames[0]
    assert (first["type"], first["id"], first["code"]) == ("error", None, "bad_request")
    (huge,) = received.of("huge")
    assert (huge["code"], huge["retryable"]) == ("payload_too_large", False)
    (odd,) = received.of("odd")
    assert odd["code"] == "bad_request"
    assert "launch" in odd["message"]
    assert_well_formed(received, "ok")
    assert "still here" in received.text("ok")


def test_expired_credentials_give_a_clear_error(
    gateway: Gateway, stack: Emulator
) -> None:
    keys = stack.credentials
    stack.configure(
        credentials=[
            {
                "access_key_id": keys.access_key_id,
                "secret_access_key": keys.secret_access_key,
                "expiration": time.time() - 60,
            }
        ]
    )
    try:

        async def scenario() -> Received:
            received = Received()
            async with connect(gateway.ws_url) as ws:
                await ws.send(encode_invoke("e", {"prompt": "hi"}))
                await received.finish(ws, "e")
            return received

        received = asyncio.run(scenario())
    finally:
        stack.configure(
            credentials=[
                {
                    "access_key_id": keys.access_key_id,
                    "secret_access_key": keys.secret_access_key,
                }
            ]
        )
    (error,) = received.terminals("e")
    assert error["code"] == "agent_error"
    assert "ExpiredToken" in error["message"]
    assert keys.secret_access_key not in json.dumps(received.frames)


# Sessions.


def test_a_session_token_resumes_the_agent_session_after_reconnecting(
    gateway: Gateway,
) -> None:
    async def first_connection() -> tuple[str, str]:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            await ws.send(encode_invoke("t1", {"prompt": "remember"}))
            await received.finish(ws, "t1")
        return received.token(), received.text("t1")

    async def second_connection(token: str) -> Received:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            await ws.send(encode_invoke("t2", {"prompt": "again"}, session=token))
            await received.finish(ws, "t2")
            await ws.send(encode_invoke("t3", {"prompt": "fresh"}))
            await received.finish(ws, "t3")
            forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
            await ws.send(encode_invoke("t4", {"prompt": "steal"}, session=forged))
            await received.finish(ws, "t4")
        return received

    token, first_text = asyncio.run(first_connection())
    assert first_text.startswith("Turn 1 of this session.")
    received = asyncio.run(second_connection(token))
    assert received.text("t2").startswith("Turn 2 of this session.")
    assert received.text("t3").startswith("Turn 1 of this session.")
    (refused,) = received.of("t4")
    assert (refused["type"], refused["code"]) == ("error", "unauthorized")


def test_cancel_stops_the_stream_and_the_invocation_ends_once(
    gateway: Gateway, stack: Emulator
) -> None:
    stopped = stack.stats()["sessions_ended"].get("stopped", 0)

    async def scenario() -> Received:
        received = Received()
        async with connect(gateway.ws_url) as ws:
            await ws.send(encode_invoke("c1", ENDLESS))
            await received.read(ws, lambda r: len(r.chunks("c1")) >= 2)
            await ws.send(encode_cancel("c1", session=received.token()))
            await received.finish(ws, "c1")
            # The connection goes on, in a session started afresh.
            await ws.send(encode_invoke("c2", {"prompt": "after"}))
            await received.finish(ws, "c2")
        return received

    received = asyncio.run(scenario())
    assert_well_formed(received, "c1")
    assert received.terminals("c1")[0]["type"] == "error"
    assert stack.stats()["sessions_ended"].get("stopped", 0) == stopped + 1
    assert_well_formed(received, "c2")
    assert received.terminals("c2")[0]["type"] == "end"
    session_id = TOKENS.verify(received.token(), None, time.time())
    assert stack.session_stats(session_id)["cold_starts"] == 2


def test_a_backlog_at_the_deadline_gives_way_to_the_timeout_error(
    stack: Emulator,
) -> None:
    """Uncoalesced chunks still queued near the function's timeout are dropped
    and counted in the log; the ``timeout`` error arrives after those posted."""
    log = io.StringIO()
    with local_apigw(
        "agentcore_bridge.awslambda:handler",
        env=bridge_env(stack, BRIDGE_COALESCE_WINDOW="0"),
        credentials=stack.credentials,
        # The bridge stops the agent after 2 s. The agent writes its words
        # far faster than one post per word can go out, so tens of
        # thousands of chunks are still queued then: posting them all
        # would outlast the function.
        function_timeout=4.0,
        log_stream=log,
    ) as running:

        async def scenario() -> Received:
            received = Received()
            async with connect(running.ws_url) as ws:
                payload = {"prompt": "flood", "words": 1_000_000, "delay": 0}
                await ws.send(encode_invoke("late", payload))
                await received.finish(ws, "late")
            return received

        received = asyncio.run(scenario())
        counters = running.stats()["counters"]
        wait_until(lambda: '"event":"invoke_error"' in log.getvalue())

    assert_well_formed(received, "late")
    (terminal,) = received.terminals("late")
    assert terminal["code"] == "timeout"
    assert counters["posts"] > 0
    (line,) = [
        json.loads(text[text.index("{") :])
        for text in log.getvalue().splitlines()
        if '"event":"invoke_error"' in text
    ]
    assert line["code"] == "timeout"
    assert line["stop"] == "deadline"
    assert line["dropped"] > 0


# Connecting, warm-up, disconnecting, and the integration timeout: the
# adapter configured in code, with an authorization hook.


@pytest.fixture(scope="module")
def options_gateway(stack: Emulator) -> Iterator[Gateway]:
    env = bridge_env(
        stack,
        BRIDGE_ALLOWED_ORIGINS="https://app.example",
        BRIDGE_WARMUP_PAYLOAD=json.dumps({"prompt": "warm up"}),
        BRIDGE_STOP_SESSION_ON_DISCONNECT="true",
    )
    with local_apigw(
        "custom:handler",
        code_dir=str(HANDLERS),
        env=env,
        credentials=stack.credentials,
        # Short enough for a stream to outlive it, long enough for a cold
        # $connect on a busy machine (a slower one would be refused with 504).
        integration_timeout=2.0,
        max_concurrency=4,
    ) as running:
        yield running


@pytest.mark.parametrize(
    ("origin", "query", "status"),
    [
        ("https://evil.example", "?key=open-sesame", 403),
        ("https://app.example", "", 401),
        ("https://app.example", "?key=guess", 403),
    ],
)
def test_connect_is_refused_by_origin_or_authorization(
    options_gateway: Gateway, origin: str | None, query: str, status: int
) -> None:
    async def scenario() -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(options_gateway.ws_url + query, origin=origin):  # type: ignore[arg-type]
                pass
        return refused.value.response.status_code

    assert asyncio.run(scenario()) == status


def test_warm_up_runs_the_session_first_and_disconnect_stops_it(
    options_gateway: Gateway, stack: Emulator
) -> None:
    async def scenario() -> tuple[str, Received]:
        received = Received()
        url = options_gateway.ws_url + "?key=open-sesame"
        async with connect(url, origin="https://app.example") as ws:  # type: ignore[arg-type]
            (connection_id,) = open_connection_ids(options_gateway)
            session_id = derive_session_id(SECRET.encode(), connection_id)
            # The warm-up ran in another environment, on this session.
            await asyncio.to_thread(
                wait_until,
                lambda: stack.session_stats(session_id)["invocations"] >= 1,
            )
            await ws.send(encode_invoke("w", {"prompt": "real question"}))
            await received.finish(ws, "w")
        return session_id, received

    session_id, received = asyncio.run(scenario())
    assert received.text("w").startswith("Turn 2 of this session.")
    # Tokens are bound to the principal the hook returned, so a token
    # from this connection is useless to anybody else.
    wait_until(lambda: stack.session_stats(session_id)["stops"] >= 1)
    assert stack.session_stats(session_id)["active"] is False


def test_an_invocation_outlives_the_integration_timeout(
    options_gateway: Gateway,
) -> None:
    """After 2 s API Gateway says it timed out; the stream goes on to its end."""

    async def scenario() -> Received:
        received = Received()
        url = options_gateway.ws_url + "?key=open-sesame"
        async with connect(url, origin="https://app.example") as ws:  # type: ignore[arg-type]
            # 4 s of answer: twice the integration timeout.
            payload = {"prompt": "slow", "words": 40, "delay": 0.1}
            await ws.send(encode_invoke("slow", payload))
            await received.finish(ws, "slow")
        return received

    received = asyncio.run(scenario())
    assert_well_formed(received, "slow")
    assert len(received.chunks("slow")) == 48
    (timed_out,) = [json.loads(m) for m in received.foreign]
    assert timed_out["message"] == "Endpoint request timed out"


# Warmers.


def test_a_warmer_ping_keeps_n_environments_warm(stack: Emulator) -> None:
    with local_apigw(
        "agentcore_bridge.awslambda:handler",
        env=bridge_env(stack),
        credentials=stack.credentials,
        max_concurrency=6,
    ) as gateway:
        client = LambdaClient(
            region=gateway.region,
            endpoint_url=gateway.lambda_url,
            credentials=gateway.credentials,
        )
        ping = {"agentcore_bridge_warmer": {"concurrency": 3}}
        answer = client.invoke(gateway.function_name, ping)
        assert answer.payload == {"warmed": 3, "failed": 0}
        stats = gateway.stats()
        assert stats["environments_alive"] == 3
        assert stats["cold_starts"] == 3

        # A plain scheduled event keeps one environment warm: a warm one.
        event = json.loads(
            (Path(__file__).parent / "apigw_events" / "scheduler.json").read_text()
        )
        again = client.invoke(gateway.function_name, event)
        assert again.payload == {"warmed": 1, "failed": 0}
        assert gateway.stats()["cold_starts"] == 3


# The bundled JavaScript client, under Node.js, over the same stack.

JS_CLIENT = (
    Path(__file__).resolve().parent.parent
    / "src"
    / "agentcore_bridge"
    / "static"
    / "bridge-client.js"
)
JS_SCENARIO = """
const { BridgeClient } = require(process.argv[2]);
const types = [];
// The client's own socket, counting what arrives on the wire.
class CountingSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      types.push(JSON.parse(event.data).type);
    });
  }
}

async function run(client, payload) {
  const chunks = [];
  const onChunk = (data, seq) => chunks.push([seq, data]);
  const call = client.invoke(payload, { onChunk });
  try {
    return { result: await call.done, chunks };
  } catch (error) {
    const { name, code, message } = error;
    return { error: { name, code, message }, chunks };
  }
}

(async () => {
  const client = new BridgeClient(process.argv[3], {
    WebSocket: CountingSocket, storage: null, keepAliveMs: 0,
  });
  const big = await run(client, { prompt: "big", size: 300000, chunk: 300000 });
  const last = big.chunks[big.chunks.length - 1][1];
  const streamed = await run(client, { prompt: "hello there", words: 200 });
  const failed = await run(client, { prompt: "try", words: 20, fail_after: 2 });
  client.close();
  process.stdout.write(JSON.stringify({
    types,
    big: {
      result: big.result,
      seqs: big.chunks.map(([seq]) => seq),
      lastLength: last.length,
      lastChars: Array.from(new Set(last)).sort(),
    },
    streamed: {
      result: streamed.result,
      seqs: streamed.chunks.map(([seq]) => seq),
      text: streamed.chunks.map(([, data]) => String(data)).join(""),
    },
    failed: { error: failed.error, chunks: failed.chunks.length },
  }));
})().catch((error) => {
  process.stderr.write(String((error && error.stack) || error));
  process.exit(1);
});
"""


@pytest.mark.usefixtures("node")
def test_the_javascript_client_reassembles_and_orders_over_the_stack(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Node's WebSocket -> API Gateway emulator -> handler -> AgentCore -> agent."""
    assert NODE is not None
    if not node_has_websocket():
        pytest.skip("this node has no WebSocket client (needs Node.js 20.10 or later)")
    script = tmp_path / "scenario.js"
    script.write_text(JS_SCENARIO, encoding="utf-8")
    done = subprocess.run(
        [NODE, "--experimental-websocket", str(script), str(JS_CLIENT), gateway.ws_url],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result = json.loads(done.stdout)

    # The 300 KB chunk came in parts and was joined, in order.
    big = result["big"]
    assert big["result"]["chunks"] == len(big["seqs"])
    assert big["seqs"] == list(range(len(big["seqs"])))
    assert (big["lastLength"], big["lastChars"]) == (300_000, ["\n", "x"])
    assert result["types"].count("part") >= 3

    # The streamed answer came coalesced, every chunk once, in order.
    streamed = result["streamed"]
    count = streamed["result"]["chunks"]
    assert count > 200
    assert streamed["seqs"] == list(range(count))
    assert streamed["text"].startswith("Turn 2 of this session. You said: hello")
    assert "batch" in result["types"]
    assert len(result["types"]) < count

    # An agent failure rejects the invocation with the protocol's error.
    failed = result["failed"]
    assert (failed["error"]["name"], failed["error"]["code"]) == (
        "BridgeError",
        "agent_error",
    )
    assert "DemoAgentError" in failed["error"]["message"]
    assert failed["chunks"] == 2
