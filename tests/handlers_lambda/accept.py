"""Accept every connection and ignore every message (the tests post themselves)."""

from __future__ import annotations


def handler(event, context):
    return {"statusCode": 200}
