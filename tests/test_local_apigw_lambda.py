"""The emulator's Lambda side: execution environments and the Invoke API.

Invocations come from real botocore ``lambda`` clients; handlers run in real
worker processes, whose module globals show which environment ran what.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from websockets.asyncio.client import connect

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.sigv4 import sign_headers
from apigw_stack import Gateway, local_apigw


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


_clients: dict[str, Any] = {}


def invoke(gateway: Gateway, payload: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """Invoke the function; return botocore's answer and the decoded payload."""
    client = _clients.get(gateway.lambda_url)
    if client is None:
        client = _clients[gateway.lambda_url] = gateway.client("lambda")
    kwargs.setdefault("FunctionName", gateway.function_name)
    answer = client.invoke(Payload=json.dumps(payload).encode(), **kwargs)
    body = answer["Payload"].read()
    return answer, json.loads(body) if body else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_request_response_returns_the_result_with_a_lambda_context() -> None:
    with local_apigw("counter:handler", function_timeout=20) as gateway:
        answer, reply = invoke(gateway, {"hello": 1})
    assert answer["StatusCode"] == 200
    assert answer["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in answer
    context = reply["context"]
    assert context["function_name"] == "local-websocket-handler"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:local-websocket-handler"
    )
    assert context["memory_limit_in_mb"] == "128"
    assert context["log_group_name"] == "/aws/lambda/local-websocket-handler"
    assert "[$LATEST]" in context["log_stream_name"]
    assert context["aws_request_id"] == answer["ResponseMetadata"]["RequestId"]
    assert 0 < reply["remaining_ms"] <= 20000


def test_environments_get_lambda_variables_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UNRELATED_SETTING", "the emulator's own")
    config = {"env": {"EXTRA_SETTING": "on"}, "region": "eu-west-1"}
    with local_apigw("counter:handler", **config) as gateway:
        _, reply = invoke(gateway, {})
    environ = reply["environ"]
    assert environ["AWS_LAMBDA_FUNCTION_NAME"] == gateway.function_name
    assert environ["AWS_REGION"] == environ["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert environ["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python3.")
    assert environ["AWS_ACCESS_KEY_ID"] == gateway.credentials.access_key_id
    assert environ["BRIDGE_CONNECTIONS_ENDPOINT_URL"] == gateway.connections_url
    assert environ["BRIDGE_LAMBDA_ENDPOINT_URL"] == gateway.lambda_url
    assert environ["EXTRA_SETTING"] == "on"
    assert environ["UNRELATED_SETTING"] is None


def test_warm_environment_keeps_its_module_globals() -> None:
    with local_apigw("counter:handler") as gateway:
        replies = [invoke(gateway, {})[1] for _ in range(3)]
        stats = gateway.stats()
    assert [reply["count"] for reply in replies] == [1, 2, 3]
    assert len({reply["pid"] for reply in replies}) == 1
    assert stats["cold_starts"] == 1
    assert stats["environments"][0]["invocations"] == 3


def test_event_arriving_while_the_environment_is_busy_starts_cold() -> None:
    with local_apigw("counter:handler") as gateway:
        first = invoke(gateway, {})[1]
        # Busy until the third invocation (the next one) has started.
        invoke(gateway, {"until_started": 3}, InvocationType="Event")
        wait_until(lambda: gateway.stats()["environments_busy"] == 1)
        second = invoke(gateway, {})[1]
        stats = gateway.stats()
    assert second["count"] == 1
    assert second["pid"] != first["pid"]
    assert second["loaded_at"] > first["loaded_at"]
    assert stats["cold_starts"] == 2


def test_overlapping_event_invocations_start_one_environment_each() -> None:
    with local_apigw("counter:handler") as gateway:
        for _ in range(4):
            answer, _ = invoke(gateway, {"until_started": 4}, InvocationType="Event")
            assert answer["StatusCode"] == 202
        stats = wait_until(
            lambda: (s := gateway.stats())["invocations"] == 4 and s, timeout=15
        )
    assert stats["cold_starts"] == 4
    assert stats["environments_alive"] == 4
    assert [e["invocations"] for e in stats["environments"]] == [1, 1, 1, 1]


def test_events_beyond_the_concurrency_limit_wait_for_an_environment() -> None:
    with local_apigw("counter:handler", max_concurrency=2) as gateway:
        for _ in range(4):
            invoke(gateway, {"until_started": 2}, InvocationType="Event")
        stats = wait_until(
            lambda: (s := gateway.stats())["invocations"] == 4 and s, timeout=15
        )
    assert stats["cold_starts"] == 2
    assert stats["environments_alive"] == 2
    assert sum(e["invocations"] for e in stats["environments"]) == 4


def test_websocket_messages_share_warm_environments_until_they_overlap() -> None:
    with local_apigw("counter:handler", route_responses=["$default"]) as gateway:

        async def session() -> list[dict[str, Any]]:
            async with connect(gateway.ws_url) as ws:
                await ws.send("{}")
                after_connect = json.loads(await ws.recv())
                # Runs until the next message's invocation (the fourth,
                # after $connect) has started, so that the two overlap.
                await ws.send(json.dumps({"until_started": 4}))
                await ws.send("{}")
                overlapping = [json.loads(await ws.recv()) for _ in range(2)]
                return [after_connect, *overlapping]

        after_connect, *overlapping = asyncio.run(session())
    # $connect ran first in the same environment.
    assert after_connect["count"] == 2
    assert len({reply["pid"] for reply in overlapping}) == 2
    assert sorted(reply["count"] for reply in overlapping) == [1, 3]


def test_handler_exception_is_reported_and_the_environment_stays_warm() -> None:
    with local_apigw("counter:handler") as gateway:
        failed, error = invoke(gateway, {"raise": True})
        _, after = invoke(gateway, {})
        stats = gateway.stats()
    assert failed["StatusCode"] == 200
    assert failed["FunctionError"] == "Unhandled"
    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "asked to fail"
    assert error["stackTrace"]
    assert after["count"] == 2
    assert stats["cold_starts"] == 1


def test_results_json_cannot_carry_or_above_6_mb_fail_the_invocation() -> None:
    with local_apigw("counter:handler") as gateway:
        _, too_big = invoke(gateway, {"big": 6 * 1024 * 1024})
        _, unserializable = invoke(gateway, {"unserializable": True})
        _, after = invoke(gateway, {})
    assert too_big["errorType"] == "Function.ResponseSizeTooLarge"
    assert unserializable["errorType"] == "Runtime.MarshalError"
    assert after["count"] == 3


def test_an_error_above_6_mb_fails_its_invocation_and_no_other() -> None:
    """The next invocation gets its own result, from the same warm environment."""
    with local_apigw("counter:handler", max_concurrency=1) as gateway:
        failed, error = invoke(gateway, {"raise_big": 9 * 1024 * 1024})
        _, second = invoke(gateway, {"print": "second"})
        _, third = invoke(gateway, {})
    assert failed["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert (second["count"], third["count"]) == (2, 3)
    assert second["pid"] == third["pid"]


def test_crashed_environment_is_replaced_by_a_cold_one() -> None:
    with local_apigw("counter:handler") as gateway:
        _, first = invoke(gateway, {})
        failed, error = invoke(gateway, {"exit": True})
        _, after = invoke(gateway, {})
        stats = gateway.stats()
    assert failed["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert after["count"] == 1
    assert after["pid"] != first["pid"]
    assert not alive(first["pid"])
    assert stats["cold_starts"] == 2


def test_environment_killed_while_idle_is_not_used_again() -> None:
    import signal

    with local_apigw("counter:handler") as gateway:
        _, first = invoke(gateway, {})
        os.kill(first["pid"], signal.SIGKILL)
        wait_until(lambda: not alive(first["pid"]))
        answer, after = invoke(gateway, {})
    assert "FunctionError" not in answer
    assert after["count"] == 1


def test_function_timeout_ends_the_invocation_and_the_environment() -> None:
    # The quick invocations must finish within the timeout too, however
    # busy the machine: it is far longer than they take.
    with local_apigw("counter:handler", function_timeout=2.0) as gateway:
        _, first = invoke(gateway, {})
        failed, error = invoke(gateway, {"sleep": 30})
        _, after = invoke(gateway, {})
    assert failed["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in error["errorMessage"]
    assert after["pid"] != first["pid"]


def test_import_error_fails_invocations_and_connects() -> None:
    with local_apigw("no_such_module:handler") as gateway:
        failed, error = invoke(gateway, {})

        async def session() -> int:
            from websockets.exceptions import InvalidStatus

            with pytest.raises(InvalidStatus) as rejected:
                async with connect(gateway.ws_url):
                    pass
            return rejected.value.response.status_code

        status = asyncio.run(session())
    assert failed["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert status == 500


def test_function_names_arns_and_qualifiers() -> None:
    with local_apigw("counter:handler") as gateway:
        arn = "arn:aws:lambda:us-east-1:123456789012:function:local-websocket-handler"
        for name in [
            arn,
            f"{arn}:$LATEST",
            "123456789012:function:" + "local-websocket-handler",
        ]:
            answer, _ = invoke(gateway, {}, FunctionName=name)
            assert answer["StatusCode"] == 200
        for name in [
            "another-function",
            f"{arn}:prod",
            arn.replace("us-east-1", "eu-west-1"),
        ]:
            with pytest.raises(ClientError) as missing:
                invoke(gateway, {}, FunctionName=name)
            error = missing.value.response
            assert error["Error"]["Code"] == "ResourceNotFoundException"
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_dry_run_and_invalid_payloads() -> None:
    with local_apigw("counter:handler") as gateway:
        client = gateway.client("lambda")
        dry = client.invoke(
            FunctionName=gateway.function_name, InvocationType="DryRun", Payload=b"{}"
        )
        with pytest.raises(ClientError) as invalid:
            client.invoke(FunctionName=gateway.function_name, Payload=b"{not json")
        stats = gateway.stats()
    assert dry["StatusCode"] == 204
    assert invalid.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert stats["cold_starts"] == 0


def test_invoke_with_wrong_credentials_is_refused() -> None:
    with local_apigw("counter:handler") as gateway:
        right = gateway.credentials
        codes = []
        for keys in [
            Credentials(right.access_key_id, "wrong-secret"),
            Credentials("AKIDSOMEONEELSE00000", right.secret_access_key),
        ]:
            with pytest.raises(ClientError) as denied:
                gateway.client("lambda", credentials=keys).invoke(
                    FunctionName=gateway.function_name, Payload=b"{}"
                )
            assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            codes.append(denied.value.response["Error"]["Code"])
    assert codes == ["InvalidSignatureException", "UnrecognizedClientException"]


def test_invoke_refusals_carry_lambda_error_names() -> None:
    with local_apigw("counter:handler") as gateway:
        url = (
            f"{gateway.lambda_url}/2015-03-31/functions/"
            f"{gateway.function_name}/invocations"
        )

        def answer(headers: dict[str, str]) -> tuple[int, str, str]:
            request = urllib.request.Request(url, b"{}", headers, method="POST")
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(request)
            message = json.loads(denied.value.read())["message"]
            return denied.value.code, denied.value.headers["x-amzn-ErrorType"], message

        stale = sign_headers(
            "POST", url, {}, b"{}", credentials=gateway.credentials,
            region=gateway.region, service="lambda", now=time.time() - 3600,
        )  # fmt: skip
        answers = [
            answer({}),
            answer(stale),
            answer({"Authorization": "Bearer some-token"}),
        ]
        invocations = gateway.stats()["counters"]["lambda_invokes"]
    assert [(status, name) for status, name, _ in answers] == [
        (403, "MissingAuthenticationTokenException"),
        (403, "InvalidSignatureException"),
        (400, "IncompleteSignatureException"),
    ]
    assert answers[0][2] == "Missing Authentication Token"
    assert answers[1][2].startswith("Signature expired")
    assert "Bearer" in answers[2][2]
    assert invocations == 0


def test_idle_environments_are_stopped() -> None:
    with local_apigw("counter:handler", environment_idle_timeout=0.3) as gateway:
        _, reply = invoke(gateway, {})
        wait_until(lambda: gateway.stats()["environments_alive"] == 0)
        wait_until(lambda: not alive(reply["pid"]))
        _, after = invoke(gateway, {})
    assert after["count"] == 1


def test_retired_environments_start_cold_with_fresh_globals() -> None:
    with local_apigw("counter:handler") as gateway:
        invoke(gateway, {})
        invoke(gateway, {})
        assert gateway.retire_environments() == 1
        _, after = invoke(gateway, {})
        stats = gateway.stats()
    assert after["count"] == 1
    assert stats["cold_starts"] == 2


def test_handler_output_is_prefixed_with_the_environment_id() -> None:
    log = io.StringIO()
    with local_apigw("counter:handler", log_stream=log) as gateway:
        invoke(gateway, {"print": "hello from the handler"})
    lines = log.getvalue().splitlines()
    assert "[env-1] hello from the handler" in lines
    assert any(
        line.startswith("[env-1] REPORT RequestId:") and "Init Duration" in line
        for line in lines
    )


def test_without_a_stream_handler_output_is_logged_not_written_to_stderr(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Output goes where logging sends it: a test runner's capture, not the tty."""
    with (
        caplog.at_level(logging.INFO, "agentcore_bridge.local.function"),
        local_apigw("counter:handler") as gateway,
    ):
        invoke(gateway, {"print": "hello from the handler"})
        # The REPORT line follows the answer; the printed line may lag it.
        wait_until(
            lambda: (
                "hello from the handler" in caplog.text
                and "REPORT RequestId:" in caplog.text
            )
        )
    records = [r for r in caplog.records if r.name == "agentcore_bridge.local.function"]
    messages = [r.getMessage() for r in records]
    assert "[env-1] hello from the handler" in messages
    report = next(r for r in records if "REPORT RequestId:" in r.getMessage())
    assert report.getMessage().startswith("[env-1] REPORT RequestId:")
    assert "Init Duration" in report.getMessage()
    assert (report.levelno, report.environment) == (logging.INFO, "env-1")  # type: ignore[attr-defined]
    captured = capfd.readouterr()
    assert "[env-1]" not in captured.err + captured.out


def test_a_failed_init_is_logged_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.INFO, "agentcore_bridge.local.function"),
        local_apigw("no_such_module:handler") as gateway,
    ):
        answer, _ = invoke(gateway, {})
    assert answer["FunctionError"] == "Unhandled"
    (failed,) = [r for r in caplog.records if "INIT failed" in r.getMessage()]
    assert failed.levelno == logging.WARNING
    assert "Runtime.ImportModuleError" in failed.getMessage()


def test_stopping_the_emulator_ends_every_worker() -> None:
    with local_apigw("counter:handler") as gateway:
        for _ in range(3):
            invoke(gateway, {"sleep": 30}, InvocationType="Event")
        pids = wait_until(lambda: len(p := gateway.stats()["worker_pids"]) == 3 and p)
        wait_until(lambda: gateway.stats()["environments_busy"] == 3)
    assert not any(alive(pid) for pid in pids)


def test_a_worker_that_exits_as_its_grace_period_ends_needs_no_kill() -> None:
    """Stopping a worker that asyncio has just reaped is not an error."""
    import sys

    from agentcore_bridge.local._lambda_pool import _kill

    async def scenario() -> int | None:
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await process.wait()
        _kill(process)
        return process.returncode

    assert asyncio.run(scenario()) == 0
