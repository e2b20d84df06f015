"""Sleep, then post "late" to the sender and return "result".

With an integration timeout shorter than the sleep, the client sees API
Gateway's timeout message, then the late post, and never the result.
"""

from __future__ import annotations

import json
import time

from post_helper import post_to_connection


def handler(event, context):
    request = event["requestContext"]
    if request["routeKey"] in {"$connect", "$disconnect"}:
        return {"statusCode": 200}
    seconds = float(json.loads(event["body"]).get("sleep", 0.6))
    time.sleep(seconds)
    status = post_to_connection(request["connectionId"], b"late")
    return {"statusCode": 200, "body": f"result after post {status}"}
