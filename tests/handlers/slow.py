"""Wait, then post "late" to the sender and return "result".

A message ``{"until": <path>}`` waits until that file exists (the test
creates it once the client has seen API Gateway's timeout message), so the
handler outlives any integration timeout however fast or slow the machine
is; the client then sees the late post, and never the result.
"""

from __future__ import annotations

import json
import os
import time

from post_helper import post_to_connection


def handler(event, context):
    request = event["requestContext"]
    if request["routeKey"] in {"$connect", "$disconnect"}:
        return {"statusCode": 200}
    _wait_for_file(json.loads(event["body"])["until"])
    status = post_to_connection(request["connectionId"], b"late")
    return {"statusCode": 200, "body": f"result after post {status}"}


def _wait_for_file(path, ceiling=30.0):
    deadline = time.monotonic() + ceiling
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
