"""The @connections endpoint, URLs and error mapping (no I/O)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcore_bridge.connections import (
    connection_url,
    connections_endpoint,
    endpoint_from_event,
    error_from_response,
)
from agentcore_bridge.exceptions import (
    ConnectionsError,
    ForbiddenError,
    GoneError,
    PayloadTooLargeError,
    ThrottledError,
    ValidationError,
)

EVENTS = Path(__file__).resolve().parent / "apigw_events"


def test_endpoint_is_built_from_api_id_region_and_stage() -> None:
    assert (
        connections_endpoint("abc123", "eu-west-1", "prod")
        == "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    )
    assert connections_endpoint("abc123", "cn-north-1", "v1", "aws-cn").endswith(
        ".amazonaws.com.cn/v1"
    )


def test_endpoint_ignores_a_custom_domain_name() -> None:
    event = {
        "requestContext": {
            "apiId": "abc123",
            "stage": "prod",
            "domainName": "chat.example.com",
        }
    }
    url = endpoint_from_event(event, "us-east-1")
    assert url == "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


@pytest.mark.skipif(not EVENTS.is_dir(), reason="captured events not present")
def test_endpoint_from_a_captured_message_event() -> None:
    event = json.loads((EVENTS / "message.json").read_text())
    context = event["requestContext"]
    url = endpoint_from_event(event, "us-east-1")
    assert url == (
        f"https://{context['apiId']}.execute-api.us-east-1.amazonaws.com/"
        f"{context['stage']}"
    )


def test_override_wins_and_loses_its_trailing_slash() -> None:
    url = endpoint_from_event({}, "us-east-1", "http://127.0.0.1:4000/local/")
    assert url == "http://127.0.0.1:4000/local"


def test_connection_id_is_one_encoded_segment() -> None:
    url = connection_url("https://x.example/prod", "BFHPhfCWIAMCKlQ=")
    assert url == "https://x.example/prod/@connections/BFHPhfCWIAMCKlQ%3D"
    assert connection_url("https://x/p", "a/b").endswith("/@connections/a%2Fb")


@pytest.mark.parametrize(
    ("api_id", "stage"), [("", "prod"), ("abc/../x", "prod"), ("abc", "")]
)
def test_bad_endpoint_parts_are_rejected(api_id: str, stage: str) -> None:
    with pytest.raises(ValidationError):
        connections_endpoint(api_id, "us-east-1", stage)


@pytest.mark.parametrize(
    ("status", "cls", "name", "retryable"),
    [
        (410, GoneError, "GoneException", False),
        (403, ForbiddenError, "ForbiddenException", False),
        (413, PayloadTooLargeError, "PayloadTooLargeException", False),
        (429, ThrottledError, "LimitExceededException", True),
        (500, ConnectionsError, "HTTP500", True),
        (400, ConnectionsError, "HTTP400", False),
    ],
)
def test_statuses_map_to_typed_errors(
    status: int, cls: type[ConnectionsError], name: str, retryable: bool
) -> None:
    error = error_from_response(status, {}, b"")
    assert type(error) is cls
    assert error.error_type == name
    assert error.status == status
    assert error.retryable is retryable


def test_header_and_body_details_are_kept() -> None:
    error = error_from_response(
        410,
        {"x-amzn-ErrorType": "GoneException:http://internal", "x-amzn-RequestId": "r1"},
        b'{"message": "connection is gone"}',
    )
    assert error.error_type == "GoneException"
    assert error.message == "connection is gone"
    assert error.request_id == "r1"


def test_a_non_json_body_still_gives_a_typed_error() -> None:
    error = error_from_response(429, {}, b"<html>busy</html>")
    assert isinstance(error, ThrottledError)
    assert "429" in error.message
