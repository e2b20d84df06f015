"""Count invocations in a module global, to observe warm environments.

Returns ``{"count": <invocations in this environment>, "pid": ...}`` plus
what the runtime told it. An event (or message body) may ask it to
``sleep`` some seconds first, to wait ``until_started`` that many
invocations have started (so that invocations overlap whatever the
machine's speed), to ``print`` a line, to ``raise`` (with a message of
``raise_big`` characters), to ``exit`` the process, or to return a ``big``
string or an ``unserializable`` value.
"""

from __future__ import annotations

import json
import os
import time

# Lives as long as the execution environment: the warm-start evidence.
INVOCATIONS = [0]
LOADED_AT = time.time()

_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_ACCESS_KEY_ID",
    "BRIDGE_CONNECTIONS_ENDPOINT_URL",
    "BRIDGE_LAMBDA_ENDPOINT_URL",
    "EXTRA_SETTING",
    "UNRELATED_SETTING",
)


def handler(event, context):
    INVOCATIONS[0] += 1
    request = _request(event)
    if request.get("until_started"):
        _wait_until_started(int(request["until_started"]))
    if request.get("sleep"):
        time.sleep(float(request["sleep"]))
    if request.get("raise"):
        raise RuntimeError("asked to fail")
    if request.get("raise_big"):
        raise RuntimeError("x" * int(request["raise_big"]))
    if request.get("exit"):
        os._exit(3)
    if request.get("print"):
        print(request["print"])
    if request.get("big"):
        return "x" * int(request["big"])
    if request.get("unserializable"):
        return {"a set": {1, 2}}
    reply = {
        "count": INVOCATIONS[0],
        "route": event.get("requestContext", {}).get("routeKey"),
        "pid": os.getpid(),
        "loaded_at": LOADED_AT,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "context": {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
        },
        "environ": {name: os.environ.get(name) for name in _VARIABLES},
    }
    if "requestContext" in event:
        return {"statusCode": 200, "body": json.dumps(reply)}
    return reply


def _request(event):
    if "requestContext" not in event:
        return event
    try:
        body = json.loads(event.get("body") or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _wait_until_started(count):
    import urllib.request

    stats_url = os.environ["BRIDGE_LAMBDA_ENDPOINT_URL"] + "/_emulator/stats"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(stats_url) as response:
            if json.load(response)["invocations_started"] >= count:
                return
        time.sleep(0.02)
