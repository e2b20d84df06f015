"""Echo each message back through @connections with a real botocore client.

``$connect`` tries to post to its own connection first (API Gateway answers
410 until ``$connect`` has returned) and reports the error code it got in a
response header, and picks the first subprotocol the client offered.
Messages ``{"action": "get"}`` and ``{"action": "delete"}`` call
GetConnection and DeleteConnection on the sender's own connection.
"""

from __future__ import annotations

import json
import os

import botocore.session
from botocore.exceptions import ClientError

_client = botocore.session.get_session().create_client(
    "apigatewaymanagementapi",
    endpoint_url=os.environ["BRIDGE_CONNECTIONS_ENDPOINT_URL"],
    region_name=os.environ["AWS_REGION"],
)


def handler(event, context):
    request = event["requestContext"]
    connection_id = request["connectionId"]
    route = request["routeKey"]
    if route == "$connect":
        return _connect(event, connection_id)
    if route == "$disconnect":
        return {"statusCode": 200}

    action = _action(event.get("body", ""))
    if action == "get":
        found = _client.get_connection(ConnectionId=connection_id)
        reply = {
            "connectedAt": found["ConnectedAt"].isoformat(),
            "lastActiveAt": found["LastActiveAt"].isoformat(),
            "identity": found["Identity"],
        }
        _client.post_to_connection(
            ConnectionId=connection_id, Data=json.dumps(reply).encode()
        )
    elif action == "delete":
        _client.delete_connection(ConnectionId=connection_id)
    else:
        _client.post_to_connection(
            ConnectionId=connection_id, Data=event["body"].encode()
        )
    return {"statusCode": 200}


def _connect(event, connection_id):
    try:
        _client.post_to_connection(ConnectionId=connection_id, Data=b"too early")
        outcome = "posted"
    except ClientError as exc:
        outcome = exc.response["Error"]["Code"]
    headers = {"X-Post-During-Connect": outcome}
    offered = event["headers"].get("Sec-WebSocket-Protocol")
    if offered:
        headers["Sec-WebSocket-Protocol"] = offered.split(",")[0].strip()
    return {"statusCode": 200, "headers": headers}


def _action(body):
    try:
        return json.loads(body).get("action")
    except (ValueError, AttributeError):
        return None
