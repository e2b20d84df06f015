"""Append every event to the JSON-lines file named by RECORD_FILE.

``$connect`` answers with the status in the query parameter ``status``
(200 when absent), raises when the query has ``fail``, and first waits
``sleep`` seconds when the query has that.

Each record is one ``write`` on a descriptor opened for appending, so the
records of environments running at once never interleave; a reader may
still see the last record half written, and takes only complete lines.
"""

from __future__ import annotations

import json
import os
import time


def handler(event, context):
    record = (json.dumps(event) + "\n").encode("utf-8")
    descriptor = os.open(
        os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
    )
    try:
        os.write(descriptor, record)
    finally:
        os.close(descriptor)
    if event["requestContext"]["routeKey"] == "$connect":
        query = event.get("queryStringParameters") or {}
        if "fail" in query:
            raise ValueError("connect refused by the handler")
        time.sleep(float(query.get("sleep", "0")))
        return {"statusCode": int(query.get("status", "200"))}
    return {"statusCode": 200}
