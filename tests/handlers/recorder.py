"""Append every event to the JSON-lines file named by RECORD_FILE.

``$connect`` answers with the status in the query parameter ``status``
(200 when absent) and raises when the query has ``fail``.
"""

from __future__ import annotations

import json
import os


def handler(event, context):
    with open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as record:
        record.write(json.dumps(event) + "\n")
    if event["requestContext"]["routeKey"] == "$connect":
        query = event.get("queryStringParameters") or {}
        if "fail" in query:
            raise ValueError("connect refused by the handler")
        return {"statusCode": int(query.get("status", "200"))}
    return {"statusCode": 200}
