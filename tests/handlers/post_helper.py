"""Post to @connections with the bridge's own signer and http.client.

Handlers that only need to post import this instead of botocore, which
keeps their cold start to a few milliseconds.
"""

from __future__ import annotations

import http.client
import os
from urllib.parse import quote, urlsplit

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.sigv4 import sign_headers


def post_to_connection(connection_id: str, data: bytes) -> int:
    """POST ``data`` to the connection; return the HTTP status."""
    base = os.environ["BRIDGE_CONNECTIONS_ENDPOINT_URL"]
    url = f"{base}/@connections/{quote(connection_id, safe='')}"
    credentials = Credentials(
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    )
    headers = sign_headers(
        "POST",
        url,
        {"Content-Type": "application/octet-stream"},
        data,
        credentials=credentials,
        region=os.environ["AWS_REGION"],
        service="execute-api",
    )
    headers["Content-Type"] = "application/octet-stream"
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request("POST", parts.path, body=data, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
