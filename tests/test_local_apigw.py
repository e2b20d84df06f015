"""The local API Gateway emulator over real sockets: WebSocket API and @connections.

Clients are real ``websockets`` clients; handlers run in real worker
processes; the @connections calls come from real botocore clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.exceptions import ValidationError
from agentcore_bridge.local.apigw import ApiGatewayConfig
from agentcore_bridge.sigv4 import presign_url, sign_headers
from apigw_stack import Gateway, local_apigw

CAPTURED = Path(__file__).parent / "apigw_events"

# Keys whose values are maps of names the client chooses: compared by the
# type of their values only.
_MAPS = {
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
}


def shape(value: Any) -> Any:
    """Keys and value types at every level, with free-form maps collapsed."""
    if isinstance(value, dict):
        return {
            key: (
                sorted({json.dumps(shape(v)) for v in item.values()})
                if key in _MAPS
                else shape(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return sorted({json.dumps(shape(item)) for item in value})
    return type(value).__name__


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` until it returns something true; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


async def async_wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The events the recorder handler has written completely so far.

    The handler may be writing a record while the test reads: the text
    after the last newline is a record still being written, left out.
    """
    if not path.exists():
        return []
    *complete, _ = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in complete if line]


def routes(records: list[dict[str, Any]]) -> list[str]:
    return [r["requestContext"]["routeKey"] for r in records]


def open_connection_id(gateway: Gateway) -> str:
    (only,) = [c for c in gateway.stats()["connections"] if c["state"] == "open"]
    return str(only["connectionId"])


async def close_code(ws: ClientConnection) -> int:
    """Wait for the server to close the socket; return its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@pytest.fixture(scope="module")
def echo() -> Iterator[Gateway]:
    with local_apigw("echo:handler") as gateway:
        yield gateway


@pytest.fixture
def recorder(tmp_path: Path) -> Callable[..., Any]:
    record = tmp_path / "events.jsonl"

    def start(**config: Any) -> Any:
        config.setdefault("env", {"RECORD_FILE": str(record)})
        return local_apigw("recorder:handler", **config)

    start.record = record  # type: ignore[attr-defined]
    return start


# Events.


def test_events_have_the_keys_and_types_of_captured_events(recorder: Any) -> None:
    with recorder() as gateway:

        async def session() -> None:
            async with connect(gateway.ws_url) as ws:
                await ws.send(json.dumps({"action": "chat", "message": "Hello"}))
                await async_wait_until(lambda: len(read_records(recorder.record)) >= 2)
                # An empty close frame: API Gateway reports 1005.
                await ws.close(code=None)  # type: ignore[arg-type]

        asyncio.run(session())
        records = wait_until(lambda: (r := read_records(recorder.record))[2:] and r)

    connect_event, message_event, disconnect_event = records
    for produced, name in [
        (connect_event, "connect.json"),
        (message_event, "message.json"),
        (disconnect_event, "disconnect.json"),
    ]:
        captured = json.loads((CAPTURED / name).read_text())
        assert shape(produced) == shape(captured), name

    captured_headers = json.loads((CAPTURED / "connect.json").read_text())["headers"]
    assert set(captured_headers) <= set(connect_event["headers"])
    assert "Upgrade" not in connect_event["headers"]
    assert message_event["requestContext"]["routeKey"] == "chat"
    assert message_event["body"] == json.dumps({"action": "chat", "message": "Hello"})
    context = disconnect_event["requestContext"]
    assert context["disconnectStatusCode"] == 1005
    assert context["disconnectReason"] == "Client-side close frame status not set"
    ids = {r["requestContext"]["connectionId"] for r in records}
    assert len(ids) == 1
    assert re.fullmatch(r"[A-Za-z0-9_-]{15}=", ids.pop())
    assert len({r["requestContext"]["connectedAt"] for r in records}) == 1


def test_connect_event_carries_query_string_and_ids_are_unique(recorder: Any) -> None:
    with recorder() as gateway:

        async def session() -> None:
            async with connect(gateway.ws_url + "?a=1&a=2&b=x%20y"):
                pass
            async with connect(gateway.ws_url):
                pass

        asyncio.run(session())
        records = wait_until(lambda: (r := read_records(recorder.record))[3:] and r)

    first = next(r for r in records if r.get("queryStringParameters"))
    assert first["queryStringParameters"] == {"a": "2", "b": "x y"}
    assert first["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    connects = [r for r in records if r["requestContext"]["eventType"] == "CONNECT"]
    assert len({r["requestContext"]["connectionId"] for r in connects}) == 2


def test_client_close_code_and_reason_reach_disconnect(recorder: Any) -> None:
    with recorder() as gateway:

        async def session() -> None:
            async with connect(gateway.ws_url) as ws:
                await ws.close(code=4001, reason="bye now")

        asyncio.run(session())
        records = wait_until(lambda: (r := read_records(recorder.record))[1:] and r)
    context = records[1]["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (
        4001,
        "bye now",
    )


# $connect.


def test_non_2xx_connect_status_rejects_the_handshake(recorder: Any) -> None:
    with recorder() as gateway:

        async def session() -> int:
            with pytest.raises(InvalidStatus) as rejected:
                async with connect(gateway.ws_url + "?status=403"):
                    pass
            return rejected.value.response.status_code

        assert asyncio.run(session()) == 403
        assert gateway.stats()["counters"]["connects_rejected"] == 1
    assert routes(read_records(recorder.record)) == ["$connect"]


def test_connect_handler_error_gives_500_and_the_environment_stays_usable(
    recorder: Any,
) -> None:
    with recorder() as gateway:

        async def session() -> int:
            with pytest.raises(InvalidStatus) as rejected:
                async with connect(gateway.ws_url + "?fail=1"):
                    pass
            async with connect(gateway.ws_url):
                pass
            return rejected.value.response.status_code

        assert asyncio.run(session()) == 500
        stats = wait_until(
            lambda: (s := gateway.stats())["invocations"] == 3 and s  # + $disconnect
        )
    assert stats["cold_starts"] == 1
    assert stats["counters"]["connects"] == 1


def test_a_client_that_leaves_during_connect_is_disconnected_without_an_error(
    recorder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The handshake cannot be answered: no handler error, then $disconnect."""
    with recorder() as gateway:

        async def session() -> None:
            # asyncio.TimeoutError: the builtin TimeoutError from Python 3.11
            # on, a class of its own on 3.10, where websockets raises it.
            with pytest.raises(asyncio.TimeoutError):
                async with connect(gateway.ws_url + "?sleep=1", open_timeout=0.2):
                    pass

        with caplog.at_level(logging.ERROR):
            asyncio.run(session())
            records = wait_until(
                lambda: len(r := read_records(recorder.record)) == 2 and r
            )
        assert wait_until(lambda: gateway.stats()["connections"] == [])
    assert routes(records) == ["$connect", "$disconnect"]
    assert records[1]["requestContext"]["disconnectStatusCode"] == 1006
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_post_before_connect_returns_is_gone(echo: Gateway) -> None:
    async def session() -> str | None:
        async with connect(echo.ws_url) as ws:
            return ws.response.headers.get("X-Post-During-Connect")

    assert asyncio.run(session()) == "GoneException"


def test_connect_response_headers_choose_the_subprotocol(echo: Gateway) -> None:
    async def session() -> str | None:
        async with connect(echo.ws_url, subprotocols=["chat.v1", "chat.v0"]) as ws:  # type: ignore[list-item]
            return ws.subprotocol

    assert asyncio.run(session()) == "chat.v1"


# @connections.


def test_botocore_post_to_connection_reaches_the_client_as_text(echo: Gateway) -> None:
    async def session() -> list[Any]:
        async with connect(echo.ws_url) as ws:
            received = []
            for text in ["hello", "héllo ✓"]:
                await ws.send(text)
                received.append(await ws.recv())
            return received

    assert asyncio.run(session()) == ["hello", "héllo ✓"]


def test_get_connection_reports_identity_and_times(echo: Gateway) -> None:
    async def session() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(echo.ws_url) as ws:
            await ws.send(json.dumps({"action": "get"}))
            from_handler = json.loads(await ws.recv())
            from_test = echo.client("apigatewaymanagementapi").get_connection(
                ConnectionId=open_connection_id(echo)
            )
            return from_handler, from_test

    from_handler, from_test = asyncio.run(session())
    assert from_handler["identity"]["SourceIp"] == "127.0.0.1"
    assert "websockets" in from_handler["identity"]["UserAgent"]
    assert from_test["ConnectedAt"] <= from_test["LastActiveAt"]
    assert from_test["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_delete_connection_closes_the_socket_then_posts_are_gone(
    echo: Gateway,
) -> None:
    client = echo.client("apigatewaymanagementapi")

    async def session() -> tuple[int, str]:
        async with connect(echo.ws_url) as ws:
            connection_id = open_connection_id(echo)
            deleted = client.delete_connection(ConnectionId=connection_id)
            assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
            return await close_code(ws), connection_id

    code, connection_id = asyncio.run(session())
    assert code == 1000
    with pytest.raises(ClientError) as gone:
        client.post_to_connection(ConnectionId=connection_id, Data=b"x")
    assert gone.value.response["Error"]["Code"] == "GoneException"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)


def test_unknown_connection_is_gone(echo: Gateway) -> None:
    client = echo.client("apigatewaymanagementapi")
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")


def test_post_limit_is_128_kib(echo: Gateway) -> None:
    client = echo.client("apigatewaymanagementapi")

    async def session() -> tuple[int, str]:
        async with connect(echo.ws_url) as ws:
            connection_id = open_connection_id(echo)
            client.post_to_connection(ConnectionId=connection_id, Data=b"a" * 131072)
            received = await ws.recv()
            with pytest.raises(ClientError) as too_large:
                client.post_to_connection(
                    ConnectionId=connection_id, Data=b"a" * 131073
                )
            error = too_large.value.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
            return len(received), error["Error"]["Code"]

    assert asyncio.run(session()) == (131072, "PayloadTooLargeException")


def test_posted_bytes_that_are_not_utf8_arrive_as_binary(echo: Gateway) -> None:
    client = echo.client("apigatewaymanagementapi")

    async def session() -> Any:
        async with connect(echo.ws_url) as ws:
            client.post_to_connection(
                ConnectionId=open_connection_id(echo), Data=b"\xff\x00\xfe"
            )
            return await ws.recv()

    assert asyncio.run(session()) == b"\xff\x00\xfe"


def test_wrong_secret_is_forbidden(echo: Gateway) -> None:
    wrong = Credentials(echo.credentials.access_key_id, "not-the-secret")
    client = echo.client("apigatewaymanagementapi", credentials=wrong)
    with pytest.raises(ClientError) as denied:
        client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
    assert denied.value.response["Error"]["Code"] == "ForbiddenException"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "signature" in denied.value.response["Error"]["Message"]


def test_unsigned_request_is_forbidden_with_aws_error_shape(echo: Gateway) -> None:
    request = urllib.request.Request(
        f"{echo.connections_url}/@connections/AAAAAAAAAAAAAAA%3D",
        data=b"x",
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request)
    assert denied.value.code == 403
    assert denied.value.headers["x-amzn-ErrorType"] == "ForbiddenException"
    assert json.loads(denied.value.read()) == {
        "message": "Missing Authentication Token"
    }


def test_accept_any_credentials_still_needs_a_signature_for_the_service() -> None:
    with local_apigw("counter:handler", accept_any_credentials=True) as gateway:
        anyone = Credentials("AKIDSOMEONEELSE00000", "whatever")
        client = gateway.client("apigatewaymanagementapi", credentials=anyone)
        # Past the signature check: the connection simply does not exist.
        with pytest.raises(client.exceptions.GoneException):
            client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
        # Signed for another service, it is still refused.
        url = f"{gateway.connections_url}/@connections/AAAAAAAAAAAAAAA%3D"
        headers = sign_headers(
            "POST", url, {}, b"x", credentials=anyone, region="us-east-1",
            service="lambda",
        )  # fmt: skip
        request = urllib.request.Request(url, b"x", headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(request)
        assert denied.value.code == 403


def refused(request: urllib.request.Request) -> tuple[int, str, str]:
    """Send ``request``, which must fail: its status, error name and message."""
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request)
    message = json.loads(denied.value.read())["message"]
    return denied.value.code, denied.value.headers["x-amzn-ErrorType"], message


def test_stale_signature_is_forbidden(echo: Gateway) -> None:
    """A request signed an hour ago is past the five-minute clock skew."""
    url = f"{echo.connections_url}/@connections/AAAAAAAAAAAAAAA%3D"
    headers = sign_headers(
        "POST", url, {}, b"x", credentials=echo.credentials, region=echo.region,
        service="execute-api", now=time.time() - 3600,
    )  # fmt: skip
    status, error_type, message = refused(
        urllib.request.Request(url, b"x", headers, method="POST")
    )
    assert (status, error_type) == (403, "ForbiddenException")
    assert message.startswith("Signature expired")


def test_declared_payload_hash_must_be_the_bodys(echo: Gateway) -> None:
    """A signed X-Amz-Content-Sha256 of another body does not sign this one."""
    url = f"{echo.connections_url}/@connections/AAAAAAAAAAAAAAA%3D"
    headers = sign_headers(
        "POST", url, {}, b"signed", credentials=echo.credentials,
        region=echo.region, service="execute-api", content_sha256_header=True,
    )  # fmt: skip
    status, error_type, message = refused(
        urllib.request.Request(url, b"sent", headers, method="POST")
    )
    assert (status, error_type) == (403, "ForbiddenException")
    assert "x-amz-content-sha256" in message

    # The same signature over the body it names gets past the check.
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(
            urllib.request.Request(url, b"signed", headers, method="POST")
        )
    assert gone.value.code == 410


def test_presigned_connection_request_is_accepted(echo: Gateway) -> None:
    """Query-string SigV4 works for @connections too; the id is simply unknown."""
    url = presign_url(
        "GET", f"{echo.connections_url}/@connections/AAAAAAAAAAAAAAA%3D",
        credentials=echo.credentials, region=echo.region, service="execute-api",
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(url)
    assert gone.value.code == 410
    assert gone.value.headers["x-amzn-ErrorType"] == "GoneException"


def test_posts_beyond_the_rate_limit_are_throttled() -> None:
    with local_apigw("counter:handler", post_rate_limit=3) as gateway:
        client = gateway.client("apigatewaymanagementapi")
        codes = []
        for _ in range(5):
            try:
                client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
    assert codes == ["GoneException"] * 3 + ["LimitExceededException"] * 2


# Client frames and connection limits.


def test_binary_client_frame_closes_with_1003(echo: Gateway) -> None:
    async def session() -> int:
        async with connect(echo.ws_url) as ws:
            await ws.send(b"\x00\x01")
            return await close_code(ws)

    assert asyncio.run(session()) == 1003


def test_message_above_128_kib_closes_with_1009(echo: Gateway) -> None:
    async def session() -> int:
        async with connect(echo.ws_url) as ws:
            await ws.send("a" * 131073)
            return await close_code(ws)

    assert asyncio.run(session()) == 1009


def test_idle_connection_closes_with_1001_even_while_pinging(recorder: Any) -> None:
    with recorder(idle_timeout=0.5) as gateway:

        async def session() -> int:
            async with connect(gateway.ws_url, ping_interval=None) as ws:

                async def ping_forever() -> None:
                    while True:
                        await ws.ping()
                        await asyncio.sleep(0.1)

                pinger = asyncio.create_task(ping_forever())
                try:
                    return await close_code(ws)
                finally:
                    pinger.cancel()

        assert asyncio.run(session()) == 1001
        records = wait_until(lambda: (r := read_records(recorder.record))[1:] and r)
    context = records[-1]["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (
        1001,
        "Going away",
    )


def test_data_messages_keep_a_connection_alive(recorder: Any) -> None:
    idle_timeout = 1.2
    with recorder(idle_timeout=idle_timeout) as gateway:

        def counted() -> int:
            return int(gateway.stats()["counters"]["messages"])

        async def session() -> tuple[int, int]:
            async with connect(gateway.ws_url) as ws:
                # Twice the idle timeout, with pauses far shorter than it, so
                # that a busy machine cannot stretch one into a timeout.
                for _ in range(48):
                    await ws.send("tick")
                    await asyncio.sleep(idle_timeout / 24)
                # The emulator may not have read the last ticks yet.
                await async_wait_until(lambda: counted() >= 48)
                return counted(), await close_code(ws)

        assert asyncio.run(session()) == (48, 1001)


def test_connection_closes_after_the_maximum_duration(recorder: Any) -> None:
    with recorder(max_connection_duration=0.5) as gateway:

        async def session() -> int:
            async with connect(gateway.ws_url) as ws:

                async def chatter() -> None:
                    while True:
                        await ws.send("tick")
                        await asyncio.sleep(0.1)

                talker = asyncio.create_task(chatter())
                try:
                    return await close_code(ws)
                finally:
                    talker.cancel()

        assert asyncio.run(session()) == 1001


# Routes.


def test_route_selection_expression_picks_the_route(recorder: Any) -> None:
    frames = [
        json.dumps({"action": "chat"}),
        "not json",
        json.dumps({"other": 1}),
        json.dumps({"action": "$connect"}),
        json.dumps({"action": 5}),
        json.dumps(["action"]),
    ]
    with recorder() as gateway:

        async def session() -> None:
            async with connect(gateway.ws_url) as ws:
                for frame in frames:
                    await ws.send(frame)
                await async_wait_until(
                    lambda: len(read_records(recorder.record)) > len(frames)
                )

        asyncio.run(session())
    by_body = {
        r["body"]: r["requestContext"]["routeKey"]
        for r in read_records(recorder.record)
        if "body" in r
    }
    assert [by_body[frame] for frame in frames] == [
        "chat",
        "$default",
        "$default",
        "$default",
        "5",
        "$default",
    ]


def test_nested_selection_expression_and_declared_routes(recorder: Any) -> None:
    frames = [
        json.dumps({"meta": {"kind": "known"}}),
        json.dumps({"meta": {"kind": "unknown"}}),
        json.dumps({"meta": "flat"}),
    ]
    config = {"route_selection_expression": "$request.body.meta.kind"}
    with recorder(routes=["known"], **config) as gateway:

        async def session() -> None:
            async with connect(gateway.ws_url) as ws:
                for frame in frames:
                    await ws.send(frame)
                await async_wait_until(
                    lambda: len(read_records(recorder.record)) > len(frames)
                )

        asyncio.run(session())
    by_body = {
        r["body"]: r["requestContext"]["routeKey"]
        for r in read_records(recorder.record)
        if "body" in r
    }
    assert [by_body[frame] for frame in frames] == ["known", "$default", "$default"]


def test_only_routes_with_a_route_response_answer_the_client() -> None:
    with local_apigw("counter:handler", route_responses=["ask"]) as gateway:

        async def session() -> list[Any]:
            async with connect(gateway.ws_url) as ws:
                await ws.send(json.dumps({"action": "silent"}))
                await ws.send(json.dumps({"action": "ask"}))
                first = json.loads(await ws.recv())
                await ws.send(json.dumps({"action": "ask"}))
                second = json.loads(await ws.recv())
                return [first, second]

        replies = asyncio.run(session())
    assert [reply["route"] for reply in replies] == ["ask", "ask"]


def test_handler_error_on_a_message_sends_internal_server_error() -> None:
    with local_apigw("counter:handler") as gateway:

        async def session() -> dict[str, Any]:
            async with connect(gateway.ws_url) as ws:
                await ws.send(json.dumps({"raise": True}))
                return dict(json.loads(await ws.recv()))

        reply = asyncio.run(session())
    assert reply["message"] == "Internal server error"
    assert set(reply) == {"message", "connectionId", "requestId"}


def test_integration_timeout_stops_waiting_but_later_posts_arrive(
    tmp_path: Path,
) -> None:
    # Long enough for a cold $connect on a busy machine; the message's
    # handler waits for the test, so it times out whatever the timeout.
    config = {"integration_timeout": 2.0, "route_responses": ["$default"]}
    go_on = tmp_path / "go-on"
    with local_apigw("slow:handler", **config) as gateway:

        async def session() -> list[Any]:
            async with connect(gateway.ws_url) as ws:
                await ws.send(json.dumps({"until": str(go_on)}))
                received = [json.loads(await ws.recv())]
                go_on.touch()
                received.append(await ws.recv())
                # The handler has returned once the pool counts it; its
                # result must not reach the client any more.
                await async_wait_until(lambda: gateway.stats()["invocations"] == 2)
                await ws.close()
                received += [frame async for frame in ws]
                return received

        received = asyncio.run(session())
    assert received[0]["message"] == "Endpoint request timed out"
    assert received[1:] == ["late"]


# Configuration and the command line.


def test_configuration_is_validated() -> None:
    for field, value in [
        ("stage", "a/b"),
        ("route_selection_expression", "$request.header.x"),
        ("integration_timeout", 0),
        ("max_concurrency", 0),
        ("post_rate_limit", 0),
    ]:
        with pytest.raises(ValidationError) as invalid:
            ApiGatewayConfig(handler="m:f", **{field: value})
        assert invalid.value.field == field


def test_command_line_names_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from agentcore_bridge.local.apigw import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["--handler", "counter:handler", "--port", str(port)])
    errors = capsys.readouterr().err
    assert status == 1
    assert f"port {port} on 127.0.0.1 is already in use" in errors
    assert "Traceback" not in errors


def test_command_line_serves_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from apigw_stack import HANDLERS_DIR

    command = [
        sys.executable,
        "-m",
        "agentcore_bridge.cli",
        "local-apigw",
        "--handler",
        "counter:handler",
        "--code-dir",
        HANDLERS_DIR,
        "--port",
        "0",
        "--route-response",
        "$default",
        "--env",
        "EXTRA_SETTING=from-cli",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        ws_url = lines[0].split()[-1]
        assert lines[1].split()[1].endswith("/local")

        async def session() -> dict[str, Any]:
            async with connect(ws_url) as ws:
                await ws.send("{}")
                return dict(json.loads(await ws.recv()))

        reply = asyncio.run(session())
        assert reply["environ"]["EXTRA_SETTING"] == "from-cli"
        worker = reply["pid"]
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=15)
        assert process.returncode == 0
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)
        # In a terminal the functions' output is printed as Lambda logs it.
        assert "[env-1] REPORT RequestId: " in errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_names_a_host_that_is_not_this_machines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from agentcore_bridge.local.apigw import main

    # TEST-NET-1 (RFC 5737): never an address of this machine.
    status = main(["--handler", "counter:handler", "--host", "192.0.2.1"])
    errors = capsys.readouterr().err
    assert status == 1
    assert errors.startswith("agentcore-bridge local-apigw: cannot listen on 192.0.2.1")
    assert "--host is not an address of this machine" in errors
