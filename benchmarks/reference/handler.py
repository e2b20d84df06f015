"""A WebSocket-to-AgentCore Lambda handler written the way AWS samples do it.

This is the reference the cold-start benchmarks compare the bridge with:
boto3 clients for ``bedrock-agentcore`` and ``apigatewaymanagementapi``
created at module level (so a warm environment reuses them), the agent
invoked with ``invoke_agent_runtime``, its answer read line by line and
each ``data:`` line posted to the client with one ``post_to_connection``.

It reads the same environment variables as the bridge, so both point at
the same local emulators: ``AGENTCORE_RUNTIME_ARN``,
``AGENTCORE_ENDPOINT_URL`` (optional), ``BRIDGE_CONNECTIONS_ENDPOINT_URL``
(optional; otherwise the client is made on the first message, for the
``https://{domainName}/{stage}`` endpoint of its event, as the samples
that do not know their API's URL in advance do) and ``AWS_REGION``.
Client messages are the bridge's ``invoke`` frames; only ``payload`` is
used.
"""

import hashlib
import json
import os

import boto3

RUNTIME_ARN = os.environ["AGENTCORE_RUNTIME_ARN"]
CONNECTIONS_URL = os.environ.get("BRIDGE_CONNECTIONS_ENDPOINT_URL")

agentcore = boto3.client(
    "bedrock-agentcore", endpoint_url=os.environ.get("AGENTCORE_ENDPOINT_URL")
)
apigateway = (
    boto3.client("apigatewaymanagementapi", endpoint_url=CONNECTIONS_URL)
    if CONNECTIONS_URL
    else None
)


def handler(event, context):
    global apigateway  # noqa: PLW0603 - one client per environment, as samples keep it
    request = event["requestContext"]
    if request["eventType"] != "MESSAGE":
        return {"statusCode": 200}
    if apigateway is None:
        apigateway = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=f"https://{request['domainName']}/{request['stage']}",
        )

    connection_id = request["connectionId"]
    message = json.loads(event.get("body") or "{}")
    # One agent session per connection; session ids need 33+ characters.
    session_id = hashlib.sha256(connection_id.encode()).hexdigest()

    response = agentcore.invoke_agent_runtime(
        agentRuntimeArn=RUNTIME_ARN,
        runtimeSessionId=session_id,
        payload=json.dumps(message.get("payload", {})).encode(),
        contentType="application/json",
        accept="text/event-stream, application/json",
    )
    for line in response["response"].iter_lines():
        if line.startswith(b"data:"):
            apigateway.post_to_connection(
                ConnectionId=connection_id, Data=line[5:].strip()
            )
    return {"statusCode": 200}
