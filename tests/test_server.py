"""The bridge server's /ws route speaks protocol v1 end to end.

Real clients (the ``websockets`` package, aiohttp) over loopback, against
``create_app`` wired to the AgentCore emulator and the demo agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from websockets.frames import Frame, Opcode

from agentcore_bridge.client import FrameDecoder
from agentcore_bridge.protocol import encode_cancel, encode_invoke
from agentcore_bridge.sessions import session_fingerprint
from server_helpers import (
    CLIENTS,
    Bridge,
    ProtocolClient,
    bridge_before,
    bridge_stack,
    wait_for,
)

SLOW = {"words": 200, "delay": 0.05}  # about 10 s of output
#: An answer that would stream for hours: only a stop ends it early.
ENDLESS = {"words": 200_000, "delay": 0.05}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def invoke_calls(bridge: Bridge) -> list[dict[str, Any]]:
    """The emulator's log of finished InvokeAgentRuntime calls."""
    return [c for c in bridge.emulator.stats()["log"] if c["operation"] == "invoke"]


#: How the emulator records a stream its client closed before the end: as
#: the client going away, or as the agent's stream breaking, depending on
#: which side of the emulator notices first. A finished stream is "ok".
CUT_SHORT = ("client_gone", "agent_reset")


def wait_until_cut_short(bridge: Bridge, before: int) -> None:
    """Wait until the emulator records the stream after ``before`` as cut short.

    The stream is an :data:`ENDLESS` one: it can only be over because the
    bridge closed it.
    """

    def cut_short() -> bool:
        calls = invoke_calls(bridge)
        return len(calls) > before and calls[before]["outcome"] in CUT_SHORT

    wait_for(cut_short, timeout=30)


def agent_saw_the_caller_leave(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether the demo agent logged that its caller stopped reading."""
    return any("the caller went away" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def bridge() -> Any:
    with bridge_stack() as running:
        yield running


@pytest.fixture(params=sorted(CLIENTS))
def client_class(request: pytest.FixtureRequest) -> type[ProtocolClient]:
    """Each WebSocket client library the server is tested with."""
    return CLIENTS[request.param]


class SilentAgentCore:
    """Plays AgentCore for an agent that says one thing, then thinks forever.

    Records each invocation's HTTP connection as it opens and as the bridge
    closes it: with nothing more to write, this is the only way to see
    that a stopped invocation really closed its upstream request.
    """

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        self.app = web.Application()
        self.app.router.add_post("/runtimes/{path:.+}/invocations", self.invocations)

    async def invocations(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: "thinking"\n\n')
        self.opened += 1
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.01)
        self.closed += 1
        return response


@pytest.fixture
def silent() -> Any:
    agentcore = SilentAgentCore()
    with bridge_before(agentcore.app) as running:
        yield running, agentcore


def test_chunks_arrive_in_order_then_exactly_one_end(
    bridge: Bridge, client_class: type[ProtocolClient]
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = await client_class.connect(bridge.ws_url())
        frames = await client.run("q1", {"prompt": "hello bridge"})
        await client.close()
        return frames

    frames = run(scenario())
    chunks = [f for f in frames if f["type"] == "chunk"]
    assert [f["seq"] for f in chunks] == list(range(len(chunks)))
    assert "".join(f["data"] for f in chunks) == (
        "Turn 1 of this session. You said: hello bridge"
    )
    assert frames[-1] == {"type": "end", "id": "q1", "seq": len(chunks)}
    assert [f["type"] for f in frames].count("end") == 1


def test_the_session_frame_comes_first_with_a_token_and_its_expiry(
    bridge: Bridge,
) -> None:
    async def scenario() -> dict[str, Any]:
        client = await ProtocolClient.connect(bridge.ws_url())
        await client.close()
        return client.frames[0]

    frame = run(scenario())
    assert frame["type"] == "session"
    assert frame["session"].startswith("v1.")
    assert frame["expires"] > time.time() + 3000


def test_a_session_token_resumes_the_session_after_reconnecting(
    bridge: Bridge,
    client_class: type[ProtocolClient],
) -> None:
    async def scenario() -> list[str]:
        first = await client_class.connect(bridge.ws_url())
        await first.run("a", {"prompt": "one"})
        token = first.session["session"] if first.session else ""
        await first.close()

        # In the query string of the new connection...
        second = await client_class.connect(bridge.ws_url(session=token))
        await second.run("b", {"prompt": "two"})
        await second.close()

        # ...or in the invoke, which also announces the resumed session.
        third = await client_class.connect(bridge.ws_url())
        sessions_before = len([f for f in third.frames if f["type"] == "session"])
        await third.run("c", {"prompt": "three"}, session=token)
        sessions_after = len([f for f in third.frames if f["type"] == "session"])
        await third.close()
        assert sessions_after == sessions_before + 1
        return [first.text_of("a"), second.text_of("b"), third.text_of("c")]

    texts = run(scenario())
    assert [t.split(" of")[0] for t in texts] == ["Turn 1", "Turn 2", "Turn 3"]


def test_without_a_token_each_connection_starts_a_new_session(bridge: Bridge) -> None:
    async def scenario() -> list[str]:
        texts = []
        for n in range(2):
            client = await ProtocolClient.connect(bridge.ws_url())
            await client.run(f"n{n}", {"prompt": "hi"})
            texts.append(client.text_of(f"n{n}"))
            await client.close()
        return texts

    assert [t.split(" of")[0] for t in run(scenario())] == ["Turn 1", "Turn 1"]


def test_concurrent_invocations_interleave_each_in_order(
    bridge: Bridge, client_class: type[ProtocolClient]
) -> None:
    async def scenario() -> ProtocolClient:
        client = await client_class.connect(bridge.ws_url())
        for id in ("x", "y", "z"):
            await client.invoke(id, {"prompt": id, "words": 15, "delay": 0.02})
        done: set[str] = set()
        while len(done) < 3:
            frame = await client.next_frame()
            if frame["type"] in ("end", "error"):
                done.add(frame["id"])
        await client.close()
        return client

    client = run(scenario())
    for id in ("x", "y", "z"):
        frames = client.frames_of(id)
        assert frames[-1]["type"] == "end"
        assert [f["seq"] for f in frames[:-1]] == list(range(len(frames) - 1))
    order = [f["id"] for f in client.frames if f["type"] == "chunk"]
    # z started streaming before x finished: they ran at the same time.
    assert order.index("z") < len(order) - 1 - order[::-1].index("x")


def test_cancel_stops_the_upstream_stream_and_ends_with_one_cancelled_error(
    bridge: Bridge,
    client_class: type[ProtocolClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agentcore_bridge.local")
    before = len(invoke_calls(bridge))

    async def scenario() -> ProtocolClient:
        client = await client_class.connect(bridge.ws_url())
        await client.invoke("long", {"prompt": "go", **ENDLESS})
        while len(client.frames_of("long")) < 2:
            await client.next_frame()
        await client.cancel("long")
        await client.until_terminal("long")
        # Anything still on its way for "long" would arrive before the pong.
        await client.ping("after")
        while (await client.next_frame())["type"] != "pong":
            pass
        await client.close()
        return client

    client = run(scenario())
    frames = client.frames_of("long")
    terminal = [f for f in frames if f["type"] in ("end", "error")]
    assert terminal == [
        {
            "type": "error",
            "id": "long",
            "code": "cancelled",
            "message": "the invocation was cancelled",
            "retryable": False,
        }
    ]
    assert frames[-1] is terminal[0]
    # AgentCore (the emulator) saw the bridge close the stream, and the
    # agent behind it saw its caller leave.
    wait_until_cut_short(bridge, before)
    wait_for(lambda: agent_saw_the_caller_leave(caplog), timeout=30)
    wait_for(lambda: bridge.server.invocations == 0)


def test_cancel_closes_the_upstream_request_even_while_the_agent_is_silent(
    silent: tuple[Bridge, SilentAgentCore], client_class: type[ProtocolClient]
) -> None:
    bridge, agentcore = silent

    async def scenario() -> dict[str, Any]:
        client = await client_class.connect(bridge.ws_url())
        await client.invoke("quiet", {"prompt": "think"})
        assert (await client.next_frame())["data"] == "thinking"
        await client.cancel("quiet")
        terminal = await client.until_terminal("quiet")
        # The upstream connection closes without waiting for the agent
        # to write (it never will).
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_for(lambda: agentcore.closed == 1, timeout=30)
        )
        # The connection goes on serving.
        await client.ping("still")
        pong = await client.next_frame()
        await client.close()
        assert pong == {"type": "pong", "id": "still"}
        return terminal

    assert run(scenario())["code"] == "cancelled"
    assert agentcore.opened == 1


def test_a_cancel_sent_with_its_invoke_still_ends_in_one_cancelled_error(
    bridge: Bridge,
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = await ProtocolClient.connect(bridge.ws_url())
        # Both frames in one TCP write: the bridge reads the cancel before
        # the invocation's task has run at all.
        protocol = client.ws.protocol
        protocol.send_text(encode_invoke("q", {"prompt": "x"}).encode())
        protocol.send_text(encode_cancel("q").encode())
        client.ws.transport.write(b"".join(protocol.data_to_send()))
        await client.until_terminal("q")
        await client.close()
        return client.frames_of("q")

    frames = run(scenario())
    assert [f["type"] for f in frames if f["type"] in ("end", "error")] == ["error"]
    assert frames[-1]["code"] == "cancelled"


def test_a_cancel_for_an_id_that_is_not_running_is_ignored(bridge: Bridge) -> None:
    async def scenario() -> dict[str, Any]:
        client = await ProtocolClient.connect(bridge.ws_url())
        await client.cancel("never-started")
        await client.ping("p1")
        frame = await client.next_frame()
        await client.close()
        return frame

    assert run(scenario()) == {"type": "pong", "id": "p1"}


def test_ping_is_answered_with_pong_and_the_same_id(
    bridge: Bridge, client_class: type[ProtocolClient]
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = await client_class.connect(bridge.ws_url())
        await client.ping("p7")
        await client.ping()
        frames = [await client.next_frame(), await client.next_frame()]
        await client.close()
        return frames

    assert run(scenario()) == [
        {"type": "pong", "id": "p7"},
        {"type": "pong", "id": None},
    ]


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        ("not json", None),
        ("[1, 2]", None),
        ('{"type": "launch", "id": "m1"}', "m1"),
        ('{"type": "invoke", "payload": {}}', None),
        ('{"type": "invoke", "id": "m2"}', "m2"),
        ('{"type": "invoke", "id": "has space", "payload": 1}', None),
        ('{"type": "part", "id": "m3"}', "m3"),
        (b'{"type": "ping"}', None),
        ("", None),
        ('{"type": "invoke", "id": 7, "payload": 1}', None),
        ('{"type": "invoke", "id": "' + "x" * 65 + '", "payload": 1}', None),
        ('{"type": "invoke", "id": "", "payload": 1}', None),
        ('{"type": "invoke", "id": "m4", "payload": 1, "session": 5}', "m4"),
        ('{"type": "invoke", "id": "m5", "payload": NaN}', None),
        ('{"type": "cancel"}', None),
        ('{"type": "ping", "id": {"nested": true}}', None),
        ('{"type": null, "id": "m6"}', "m6"),
        ("[" * 10_000 + "]" * 10_000, None),
    ],
)
def test_a_malformed_frame_gets_bad_request_and_the_connection_stays(
    bridge: Bridge,
    client_class: type[ProtocolClient],
    message: str | bytes,
    expected_id: str | None,
) -> None:
    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        client = await client_class.connect(bridge.ws_url())
        await client.send(message)
        error = await client.next_frame()
        frames = await client.run("ok", {"prompt": "still here"})
        await client.close()
        return error, frames

    error, frames = run(scenario())
    assert error["type"] == "error"
    assert error["code"] == "bad_request"
    assert error["id"] == expected_id
    assert error["retryable"] is False
    assert frames[-1]["type"] == "end"


def test_a_text_frame_that_is_not_utf8_closes_1007_and_the_server_stays(
    bridge: Bridge,
) -> None:
    """RFC 6455 section 8.1: invalid UTF-8 in a text message fails the
    connection (1007); nothing else is affected."""

    async def scenario() -> tuple[tuple[int | None, str], str]:
        other = await ProtocolClient.connect(bridge.ws_url())
        await other.invoke("o", {"prompt": "unaffected", "words": 20, "delay": 0.01})
        client = await ProtocolClient.connect(bridge.ws_url())
        client.ws.protocol.send_frame(Frame(Opcode.TEXT, b'{"type": "\xff"}'))
        client.ws.transport.write(b"".join(client.ws.protocol.data_to_send()))
        closed = await client.closed()
        end = await other.until_terminal("o")
        await other.close()
        return closed, end["type"]

    closed, other_end = run(scenario())
    assert closed[0] == 1007
    assert other_end == "end"


def test_a_duplicate_id_is_refused_and_the_running_invocation_goes_on(
    bridge: Bridge,
) -> None:
    async def scenario() -> ProtocolClient:
        client = await ProtocolClient.connect(bridge.ws_url())
        await client.invoke("dup", {"prompt": "first", "words": 10, "delay": 0.02})
        await client.invoke("dup", {"prompt": "second"})
        await client.until_terminal("dup")
        await client.until_terminal("dup")
        await client.close()
        return client

    client = run(scenario())
    terminals = [f for f in client.frames_of("dup") if f["type"] in ("end", "error")]
    assert [t.get("code", t["type"]) for t in terminals] == ["duplicate_id", "end"]
    assert "You said: first" in client.text_of("dup")


def test_an_agent_failure_mid_stream_ends_with_agent_error(bridge: Bridge) -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = await ProtocolClient.connect(bridge.ws_url())
        frames = await client.run("f", {"prompt": "a b c", "fail_after": 2})
        await client.close()
        return frames

    frames = run(scenario())
    assert [f["type"] for f in frames] == ["chunk", "chunk", "error"]
    assert frames[-1]["code"] == "agent_error"
    assert "DemoAgentError" in frames[-1]["message"]


@pytest.mark.parametrize(
    ("status", "error_type", "code", "retryable"),
    [
        (429, "ThrottlingException", "rate_limited", True),
        (403, "AccessDeniedException", "agent_error", False),
        (503, "ServiceUnavailableException", "agent_unavailable", True),
        (400, "ValidationException", "bad_request", False),
    ],
)
def test_agentcore_errors_become_protocol_errors(
    bridge: Bridge, status: int, error_type: str, code: str, retryable: bool
) -> None:
    bridge.emulator.add_fault("error", status=status, error_type=error_type, repeat=0)
    try:

        async def scenario() -> dict[str, Any]:
            client = await ProtocolClient.connect(bridge.ws_url())
            frames = await client.run("e", {"prompt": "x"})
            await client.close()
            return frames[-1]

        frame = run(scenario())
    finally:
        bridge.emulator.clear_faults()
    assert frame["code"] == code
    assert frame["retryable"] is retryable


def test_a_client_that_vanishes_mid_stream_closes_the_upstream_stream(
    bridge: Bridge,
    client_class: type[ProtocolClient],
) -> None:
    before = len(invoke_calls(bridge))

    async def scenario() -> None:
        client = await client_class.connect(bridge.ws_url())
        await client.invoke("gone", {"prompt": "go", **ENDLESS})
        while len(client.frames_of("gone")) < 2:
            await client.next_frame()
        client.abort()

    run(scenario())
    wait_until_cut_short(bridge, before)
    wait_for(lambda: bridge.server.invocations == 0 and not bridge.server.connections)
    assert_still_serving(bridge)


def assert_still_serving(bridge: Bridge) -> None:
    """A new client is served from start to end, and /healthz says ok."""

    async def scenario() -> tuple[str, int]:
        client = await ProtocolClient.connect(bridge.ws_url())
        frames = await client.run("next", {"prompt": "next client"})
        await client.close()
        async with (
            aiohttp.ClientSession() as http,
            http.get(bridge.url + "/healthz") as response,
        ):
            return str(frames[-1]["type"]), response.status

    assert run(scenario()) == ("end", 200)


def test_a_vanished_client_closes_the_upstream_request_even_while_the_agent_is_silent(
    silent: tuple[Bridge, SilentAgentCore], client_class: type[ProtocolClient]
) -> None:
    bridge, agentcore = silent

    async def scenario() -> None:
        client = await client_class.connect(bridge.ws_url())
        await client.invoke("quiet", {"prompt": "think"})
        await client.next_frame()
        client.abort()

    run(scenario())
    wait_for(lambda: agentcore.closed == 1, timeout=30)
    wait_for(lambda: bridge.server.invocations == 0 and not bridge.server.connections)


def test_a_client_that_stops_answering_pings_is_dropped_and_its_upstream_closed() -> (
    None
):
    """A client whose network vanished sends no FIN or RST: only the
    missing pong tells. The bridge drops it and closes its upstream."""
    agentcore = SilentAgentCore()
    with bridge_before(agentcore.app, ping_interval=0.5) as bridge:

        async def scenario() -> list[WSMsgType]:
            seen = []
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(bridge.ws_url(), autoping=False) as ws,
            ):
                await ws.send_str(encode_invoke("quiet", {"prompt": "think"}))
                # Read everything, answer no ping, until the bridge hangs up.
                while not seen or seen[-1] not in ENDINGS:
                    seen.append((await ws.receive(timeout=30)).type)
            return seen

        seen = run(scenario())
        wait_for(lambda: agentcore.closed == 1, timeout=30)
        wait_for(lambda: not bridge.server.connections)
    assert WSMsgType.PING in seen
    # Dropped, not closed: a peer that does not answer pings would not
    # answer a close frame either.
    assert seen[-1] in (WSMsgType.CLOSED, WSMsgType.ERROR)
    assert agentcore.opened == 1


ENDINGS = (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)


def test_aiohttp_clients_work_too(bridge: Bridge) -> None:
    async def scenario() -> list[dict[str, Any]]:
        # A message may carry several frames (a batch): decode as a client must.
        decoder = FrameDecoder()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(bridge.ws_url()) as ws,
        ):
            frames = decoder.feed((await ws.receive()).data, time.monotonic())
            await ws.send_str(
                json.dumps({"type": "invoke", "id": "a1", "payload": {"prompt": "aio"}})
            )
            while frames[-1]["type"] != "end":
                message = await ws.receive()
                frames += decoder.feed(message.data, time.monotonic())
            return frames

    frames = run(scenario())
    assert frames[0]["type"] == "session"
    assert frames[-1]["type"] == "end"


def test_healthz_reports_ok_with_counts(bridge: Bridge) -> None:
    async def scenario() -> tuple[int, dict[str, Any], str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(bridge.url + "/healthz") as response,
        ):
            return (
                response.status,
                await response.json(),
                response.headers["Cache-Control"],
            )

    status, body, cache = run(scenario())
    assert status == 200
    assert body["status"] == "ok"
    assert isinstance(body["connections"], int)
    assert cache == "no-store"


def test_a_plain_http_request_to_ws_is_refused(bridge: Bridge) -> None:
    async def scenario() -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.get(bridge.url + "/ws") as response,
        ):
            return response.status

    assert run(scenario()) == 400


def test_large_frames_are_split_under_the_message_limit_and_reassembled() -> None:
    with bridge_stack(message_limit_bytes=2048) as bridge:

        async def scenario() -> tuple[ProtocolClient, list[int]]:
            client = await ProtocolClient.connect(bridge.ws_url())
            sizes: list[int] = []
            original = client.ws.recv

            async def recording_recv(*args: Any, **kwargs: Any) -> Any:
                message = await original(*args, **kwargs)
                sizes.append(len(message.encode()))
                return message

            client.ws.recv = recording_recv  # type: ignore[method-assign]
            await client.run("big", {"prompt": "x", "size": 10000, "chunk": 10000})
            await client.close()
            return client, sizes

        client, sizes = run(scenario())
    big = [f for f in client.frames_of("big") if f["type"] == "chunk"][-1]
    assert len(big["data"]) == 10000
    assert max(sizes) <= 2048
    assert len(sizes) > 5


def test_a_warm_up_payload_runs_in_the_session_when_a_client_connects() -> None:
    with bridge_stack(warmup_payload={"prompt": "warm up"}) as bridge:

        async def scenario() -> str:
            client = await ProtocolClient.connect(bridge.ws_url())
            # The warm-up reached the agent (and took turn 1) before the
            # emulator logged its answer.
            wait_for(lambda: bool(bridge.emulator.stats()["log"]))
            await client.run("w", {"prompt": "real"})
            await client.close()
            return client.text_of("w")

        text = run(scenario())
    assert text.startswith("Turn 2 of this session.")


def test_sessions_are_stopped_on_disconnect_when_configured() -> None:
    with bridge_stack(stop_session_on_disconnect=True) as bridge:

        async def scenario() -> None:
            client = await ProtocolClient.connect(bridge.ws_url())
            await client.run("s", {"prompt": "x"})
            await client.close()

        run(scenario())
        wait_for(lambda: bridge.emulator.stats()["requests"].get("stop", 0) == 1)
        sessions = bridge.emulator.stats()["sessions"]
        assert [s["stops"] for s in sessions.values()] == [1]


def test_an_invocation_over_its_time_limit_ends_with_timeout() -> None:
    with bridge_stack(invoke_timeout=0.3) as bridge:

        async def scenario() -> dict[str, Any]:
            client = await ProtocolClient.connect(bridge.ws_url())
            frames = await client.run("t", {"prompt": "slow", **SLOW})
            await client.close()
            return frames[-1]

        frame = run(scenario())
    assert frame["code"] == "timeout"
    assert frame["retryable"] is True


def test_logs_never_carry_tokens_or_payloads_even_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentcore_bridge")
    with bridge_stack() as bridge:

        async def scenario() -> str:
            client = await ProtocolClient.connect(bridge.ws_url())
            token = client.session["session"] if client.session else ""
            await client.run("p", {"prompt": "secret-payload-words"}, session=token)
            await client.close()
            again = await ProtocolClient.connect(bridge.ws_url(session=token))
            await again.close()
            return token

        token = run(scenario())
        session_id = bridge.server.tokens.verify(token, None, time.time())
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "invocation p started" in text
    assert "sending chunk" in text
    assert token not in text
    assert token.split(".")[1] not in text
    assert "secret-payload-words" not in text
    # Sessions appear as the fingerprint the Lambda adapter logs too, never
    # as the id or a part of it (the emulators play AWS and may log them).
    ours = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith("agentcore_bridge.local")
    )
    assert f"session {session_fingerprint(session_id)}" in ours
    assert session_id[:8] not in ours


def test_every_invocation_ends_exactly_once_whatever_happens_to_it() -> None:
    """Many invocations at once, some cancelled at random moments (even
    before they start), some failing, some refused over the limit: each id
    gets exactly one terminal frame, and nothing after it."""
    rng = random.Random(20240601)
    ids = [f"r{n}" for n in range(24)]

    async def scenario() -> ProtocolClient:
        client = await ProtocolClient.connect(bridge.ws_url())
        for id in ids:
            payload: dict[str, Any] = {"prompt": id, "words": rng.randint(0, 12)}
            payload["delay"] = rng.choice([0, 0.005, 0.02])
            if rng.random() < 0.2:
                payload["fail_after"] = rng.randint(0, 3)
            await client.invoke(id, payload)
            if rng.random() < 0.3:
                await client.cancel(id)
        for id in rng.sample(ids, 6):
            await asyncio.sleep(rng.random() * 0.05)
            await client.cancel(id)
        ended: set[str] = set()
        while len(ended) < len(ids):
            frame = await client.next_frame()
            if frame["type"] in ("end", "error"):
                ended.add(frame["id"])
        # Anything late for an id would arrive before this pong.
        await client.ping("last")
        while (await client.next_frame())["type"] != "pong":
            pass
        await client.close()
        return client

    with bridge_stack(max_invocations=16, invocation_burst=100) as bridge:
        client = run(scenario())
    outcomes = set()
    for id in ids:
        frames = client.frames_of(id)
        kinds = [f["type"] for f in frames]
        assert kinds.count("end") + kinds.count("error") == 1, (id, kinds)
        assert kinds[-1] in ("end", "error"), (id, kinds)
        chunks = [f["seq"] for f in frames if f["type"] == "chunk"]
        assert chunks == list(range(len(chunks)))
        if frames[-1]["type"] == "end":
            assert frames[-1]["seq"] == len(chunks)
        outcomes.add(frames[-1].get("code", "end"))
    # The scenario did exercise several ways of ending, and no other.
    assert {"end", "cancelled"} <= outcomes
    assert outcomes <= {"end", "cancelled", "agent_error", "too_many_invocations"}
