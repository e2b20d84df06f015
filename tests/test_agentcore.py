"""AgentCore request builders, validation, session ids and error mapping."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit

import botocore.session
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcore_bridge import agentcore
from agentcore_bridge.agentcore import (
    SESSION_ID_HEADER,
    USER_ID_HEADER,
    PreparedRequest,
    Retries,
    Target,
    Timeouts,
    error_from_response,
    invoke_request,
    is_expired_token,
    new_session_id,
    presign_websocket_url,
    resolve_target,
    should_retry,
    sign_request,
    stop_session_request,
    validate_session_id,
    websocket_request,
)
from agentcore_bridge.credentials import Credentials
from agentcore_bridge.exceptions import (
    AgentCoreError,
    TimeoutError,
    TransportError,
    ValidationError,
)

ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/my_agent-Ab12Cd34Ef"
ENCODED_ARN = (
    "arn%3Aaws%3Abedrock-agentcore%3Aus-west-2%3A123456789012%3Aruntime%2F"
    "my_agent-Ab12Cd34Ef"
)
SESSION = "s" * 40
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok")
NOW = datetime(2025, 7, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def target() -> Target:
    return resolve_target(ARN)


# Targets.


def test_target_takes_region_and_endpoint_from_the_arn(target: Target) -> None:
    assert target.region == "us-west-2"
    assert target.endpoint == "https://bedrock-agentcore.us-west-2.amazonaws.com"
    assert target.qualifier is None


def test_target_region_and_fips_overrides() -> None:
    target = resolve_target(ARN, region="eu-central-1", fips=True)
    assert (
        target.endpoint == "https://bedrock-agentcore-fips.eu-central-1.amazonaws.com"
    )


PARTITION_REGIONS = [
    ("aws", "us-east-1"),
    ("aws", "ap-southeast-7"),
    ("aws-cn", "cn-north-1"),
    ("aws-us-gov", "us-gov-west-1"),
    ("aws-eusc", "eusc-de-east-1"),
    ("aws-iso", "us-iso-east-1"),
    ("aws-iso-b", "us-isob-east-1"),
    ("aws-iso-e", "eu-isoe-west-1"),
    ("aws-iso-f", "us-isof-south-1"),
]


@pytest.mark.parametrize("fips", [False, True], ids=["plain", "fips"])
@pytest.mark.parametrize(("partition", "region"), PARTITION_REGIONS)
def test_endpoint_of_every_partition_is_the_one_botocore_resolves(
    partition: str, region: str, fips: bool
) -> None:
    """botocore's endpoint rules for bedrock-agentcore are the oracle."""
    arn = f"arn:{partition}:bedrock-agentcore:{region}:123456789012:runtime/a-1"
    target = resolve_target(arn, fips=fips)
    client = botocore.session.get_session().create_client(
        "bedrock-agentcore",
        region_name=region,
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
        config=Config(use_fips_endpoint=fips),
    )

    assert target.region == region
    assert target.endpoint == client.meta.endpoint_url


def test_an_unknown_partition_is_refused_by_name() -> None:
    arn = "arn:aws-mars:bedrock-agentcore:ma-north-1:123456789012:runtime/a-1"
    with pytest.raises(ValidationError) as caught:
        resolve_target(arn)
    assert caught.value.field == "partition"
    # With an endpoint given, the partition does not matter.
    assert resolve_target(arn, endpoint="https://agentcore.example").region == (
        "ma-north-1"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://localhost:9000/",
        "http://[::1]:1234",
        "https://proxy.example.com",
        "https://proxy.example.com:8443/prefix/",
    ],
)
def test_endpoint_override_accepted(url: str) -> None:
    assert resolve_target(ARN, endpoint=url).endpoint == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://proxy.example.com",
        "http://10.0.0.1:8080",
        "ftp://127.0.0.1",
        "127.0.0.1:8080",
        "https://example.com/?x=1",
        "https://user:pw@example.com",
        "https://example.com:notaport",
        "",
    ],
)
def test_endpoint_override_refused(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        resolve_target(ARN, endpoint=url)
    assert caught.value.field == "endpoint_url"


@pytest.mark.parametrize(
    "arn",
    [
        "",
        "arn:aws:bedrock-agentcore:us-west-2:123:runtime/x",
        "arn:aws:bedrock:us-west-2:123456789012:runtime/x",
        ARN + "/extra",
    ],
)
def test_bad_runtime_arn_is_refused(arn: str) -> None:
    with pytest.raises(ValidationError) as caught:
        resolve_target(arn)
    assert caught.value.field == "agentRuntimeArn"


def test_bad_qualifier_and_region_are_refused() -> None:
    with pytest.raises(ValidationError, match="qualifier"):
        resolve_target(ARN, qualifier="bad qualifier")
    with pytest.raises(ValidationError, match="region"):
        resolve_target(ARN, region="US_EAST")


# InvokeAgentRuntime.


def test_invoke_request_url_headers_and_body(target: Target) -> None:
    request = invoke_request(
        target._replace(qualifier="prod"), {"prompt": "héllo"}, session_id=SESSION
    )
    assert request.method == "POST"
    assert request.url == (
        "https://bedrock-agentcore.us-west-2.amazonaws.com/runtimes/"
        f"{ENCODED_ARN}/invocations?qualifier=prod"
    )
    assert request.headers == {
        "Content-Type": "application/json",
        "Accept": "text/event-stream, application/json",
        SESSION_ID_HEADER: SESSION,
    }
    assert json.loads(request.body) == {"prompt": "héllo"}


def test_bytes_payload_is_sent_as_is(target: Target) -> None:
    request = invoke_request(
        target, b"\x00raw", session_id=SESSION, content_type="application/octet-stream"
    )
    assert request.body == b"\x00raw"
    assert request.headers["Content-Type"] == "application/octet-stream"


def test_unserialisable_payload_is_refused(target: Target) -> None:
    with pytest.raises(ValidationError, match="payload"):
        invoke_request(target, {"x": object()}, session_id=SESSION)


def test_optional_headers_are_validated_and_sent(target: Target) -> None:
    request = invoke_request(
        target,
        {},
        session_id=SESSION,
        user_id="user-1",
        trace_id="Root=1-5759e988-bd862e3fe1be46a994272793",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate="congo=t61rcWkgMzE",
        baggage="userId=alice",
    )
    assert request.headers[USER_ID_HEADER] == "user-1"
    assert request.headers["X-Amzn-Trace-Id"].startswith("Root=")
    assert request.headers["traceparent"].startswith("00-")
    assert request.headers["tracestate"] == "congo=t61rcWkgMzE"
    assert request.headers["baggage"] == "userId=alice"


@pytest.mark.parametrize(
    ("argument", "header", "limit"),
    [
        ("trace_id", "X-Amzn-Trace-Id", 128),
        ("traceparent", "traceparent", 128),
        ("tracestate", "tracestate", 512),
        ("baggage", "baggage", 8192),
    ],
)
def test_trace_header_length_limits(
    target: Target, argument: str, header: str, limit: int
) -> None:
    ok = invoke_request(target, {}, session_id=SESSION, **{argument: "a" * limit})
    assert len(ok.headers[header]) == limit
    with pytest.raises(ValidationError) as caught:
        invoke_request(target, {}, session_id=SESSION, **{argument: "a" * (limit + 1)})
    assert caught.value.field == header


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "tab\there", "é"])
def test_header_values_cannot_carry_control_or_non_ascii(
    target: Target, value: str
) -> None:
    with pytest.raises(ValidationError):
        invoke_request(target, {}, session_id=SESSION, baggage=value)
    with pytest.raises(ValidationError):
        invoke_request(target, {}, session_id=SESSION, user_id=value)


@pytest.mark.parametrize(
    "session_id", ["", "short", "a" * 32, "a" * 101, "-" + "a" * 40, "a" * 39 + "!"]
)
def test_bad_session_ids_are_refused_before_sending(
    target: Target, session_id: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        invoke_request(target, {}, session_id=session_id)
    assert caught.value.field == "runtimeSessionId"


def test_signature_matches_botocore(target: Target) -> None:
    """The invocation is signed exactly as botocore signs it."""
    unsigned = invoke_request(target, {"prompt": "hi"}, session_id=SESSION)
    ours = sign_request(unsigned, CREDS, target.region, now=NOW.timestamp())

    boto_request = AWSRequest(
        method="POST",
        url=unsigned.url,
        headers=dict(unsigned.headers),
        data=unsigned.body,
    )
    boto_request.context["timestamp"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    boto_request.headers["X-Amz-Date"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    boto_request.headers["X-Amz-Security-Token"] = "tok"
    signer = SigV4Auth(
        BotoCredentials("AKIDEXAMPLE", CREDS.secret_access_key, "tok"),
        "bedrock-agentcore",
        "us-west-2",
    )
    canonical = signer.canonical_request(boto_request)
    expected = signer.signature(
        signer.string_to_sign(boto_request, canonical), boto_request
    )

    assert ours.headers["Authorization"].endswith(f"Signature={expected}")
    assert ours.headers["X-Amz-Security-Token"] == "tok"
    assert unsigned.headers.get("Authorization") is None


def test_prepared_request_repr_hides_secrets(target: Target) -> None:
    signed = sign_request(
        invoke_request(target, {"secret": "payload"}, session_id=SESSION),
        CREDS,
        target.region,
    )
    text = repr(signed)
    assert "Signature=" not in text
    assert "tok" not in text.replace("[secure]", "")
    assert "payload" not in text
    assert "[secure]" in text


# StopRuntimeSession.


def test_stop_session_request_has_a_client_token(target: Target) -> None:
    request = stop_session_request(target, SESSION)
    token = json.loads(request.body)["clientToken"]
    assert 33 <= len(token) <= 256
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,256}", token)
    assert request.url.endswith(f"/runtimes/{ENCODED_ARN}/stopruntimesession")
    assert request.headers[SESSION_ID_HEADER] == SESSION
    assert stop_session_request(target, SESSION).body != request.body


def test_stop_session_client_token_rule(target: Target) -> None:
    token = "t" * 33
    request = stop_session_request(target, SESSION, client_token=token)
    assert json.loads(request.body) == {"clientToken": token}
    for bad in ["t" * 32, "t" * 257, "-" + "t" * 40, "t_" * 20]:
        with pytest.raises(ValidationError, match="clientToken"):
            stop_session_request(target, SESSION, client_token=bad)


# WebSocket.


def test_websocket_upgrade_request_is_signed_for_ws_path(target: Target) -> None:
    request = sign_request(
        websocket_request(target._replace(qualifier="DEFAULT"), SESSION),
        CREDS,
        target.region,
        now=NOW.timestamp(),
    )
    assert request.method == "GET"
    assert request.url == (
        "wss://bedrock-agentcore.us-west-2.amazonaws.com/runtimes/"
        f"{ENCODED_ARN}/ws?qualifier=DEFAULT"
    )
    assert request.headers[SESSION_ID_HEADER] == SESSION
    assert request.headers["X-Amz-Date"] == "20250701T120000Z"
    assert request.headers["X-Amz-Security-Token"] == "tok"
    authorization = request.headers["Authorization"]
    assert "/us-west-2/bedrock-agentcore/aws4_request" in authorization
    assert "x-amzn-bedrock-agentcore-runtime-session-id" in authorization


def test_websocket_url_is_ws_for_a_loopback_emulator() -> None:
    target = resolve_target(ARN, endpoint="http://127.0.0.1:9999")
    assert websocket_request(target, SESSION).url.startswith("ws://127.0.0.1:9999/")
    url = presign_websocket_url(target, SESSION, CREDS)
    assert url.startswith("ws://127.0.0.1:9999/runtimes/")


def test_presigned_url_matches_botocore(target: Target) -> None:
    """The presigned URL carries the session id and botocore's signature."""
    url = presign_websocket_url(target, SESSION, CREDS, expires=120, now=NOW)
    parts = urlsplit(url)
    assert parts.scheme == "wss"
    assert parts.path == f"/runtimes/{ENCODED_ARN}/ws"
    query = dict(parse_qsl(parts.query))
    assert query[SESSION_ID_HEADER] == SESSION
    assert query["X-Amz-Expires"] == "120"
    assert query["X-Amz-Security-Token"] == "tok"

    https_url = url.replace("wss://", "https://", 1)
    unsigned = https_url.split("&X-Amz-Algorithm", 1)[0]
    assert "?" in unsigned and "X-Amz-Signature" not in unsigned
    boto_request = AWSRequest(method="GET", url=unsigned, headers={})
    boto_request.context["timestamp"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    signer = SigV4QueryAuth(
        BotoCredentials("AKIDEXAMPLE", CREDS.secret_access_key, "tok"),
        "bedrock-agentcore",
        "us-west-2",
        expires=120,
    )
    signer._modify_request_before_signing(boto_request)
    canonical = signer.canonical_request(boto_request)
    expected = signer.signature(
        signer.string_to_sign(boto_request, canonical), boto_request
    )
    assert query["X-Amz-Signature"] == expected


@pytest.mark.parametrize("expires", [0, -1, 301, 3600, True, 1.5])
def test_presign_expiry_must_be_1_to_300(target: Target, expires: object) -> None:
    with pytest.raises(ValidationError) as caught:
        presign_websocket_url(target, SESSION, CREDS, expires=expires)  # type: ignore[arg-type]
    assert caught.value.field == "expires"


def test_presign_expiry_bounds_are_accepted(target: Target) -> None:
    for expires in (1, 300):
        url = presign_websocket_url(target, SESSION, CREDS, expires=expires)
        assert f"X-Amz-Expires={expires}" in url


# Session ids.


def test_new_session_ids_are_valid_and_distinct() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    for session_id in ids:
        assert validate_session_id(session_id) == session_id


# Errors.


@pytest.mark.parametrize(
    ("status", "name", "retryable"),
    [
        (400, "ValidationException", False),
        (402, "ServiceQuotaExceededException", False),
        (403, "AccessDeniedException", False),
        (404, "ResourceNotFoundException", False),
        (409, "RetryableConflictException", True),
        (424, "RuntimeClientError", False),
        (429, "ThrottlingException", True),
        (500, "InternalServerException", True),
        (502, "InternalServerException", True),
        (503, "InternalServerException", True),
        (504, "InternalServerException", True),
    ],
)
def test_error_table(status: int, name: str, retryable: bool) -> None:
    headers = {"x-amzn-errortype": f"{name}:http://internal.amazon.com/coral/x/"}
    body = json.dumps({"message": "why it failed"}).encode()
    error = error_from_response(status, {**headers, "x-amzn-requestid": "req-1"}, body)
    assert isinstance(error, AgentCoreError)
    assert (error.status, error.error_type, error.retryable) == (
        status,
        name,
        retryable,
    )
    assert error.message == "why it failed"
    assert error.request_id == "req-1"


def test_error_type_from_body_when_header_is_missing() -> None:
    body = b'{"__type": "com.amazon.coral#ThrottlingException", "Message": "slow"}'
    error = error_from_response(429, {}, body)
    assert (error.error_type, error.message, error.retryable) == (
        "ThrottlingException",
        "slow",
        True,
    )
    error = error_from_response(400, {}, b'{"code": "ValidationException"}')
    assert error.error_type == "ValidationException"


def test_non_json_error_body_is_described_not_echoed() -> None:
    error = error_from_response(502, {}, b"<html>Bad gateway: secret-looking</html>")
    assert error.error_type == "BadGateway"
    assert "secret" not in str(error)
    assert error.message == "HTTP 502 with a 40-byte body"
    assert error.retryable
    assert error_from_response(503, {}, b"").message == "HTTP 503 with no body"


def test_unknown_status_gets_a_name() -> None:
    assert error_from_response(599, {}, b"").error_type == "HTTP599"
    assert not error_from_response(418, {}, b"").retryable


def test_plain_conflict_is_final_but_retryable_conflict_is_not() -> None:
    final = error_from_response(409, {"x-amzn-errortype": "ConflictException"}, b"{}")
    assert not final.retryable
    assert error_from_response(409, {}, b"{}").retryable


def test_expired_token_is_recognised() -> None:
    expired = error_from_response(
        403, {"x-amzn-errortype": "ExpiredTokenException"}, b'{"message": "expired"}'
    )
    assert is_expired_token(expired)
    denied = error_from_response(
        403, {"x-amzn-errortype": "AccessDeniedException"}, b""
    )
    assert not is_expired_token(denied)


# Retries and timeouts.


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    retries = Retries(max_attempts=5, base_delay=0.5, max_delay=3.0)
    ceilings = [retries.delay(n, lambda low, high: high) for n in range(1, 6)]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert retries.delay(3, lambda low, high: low) == 0.0


def test_retry_and_timeout_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="max_attempts"):
        Retries(max_attempts=0)
    with pytest.raises(ValidationError, match="base_delay"):
        Retries(base_delay=10, max_delay=1)
    with pytest.raises(ValidationError, match=r"timeouts\.idle"):
        Timeouts(idle=0)
    with pytest.raises(ValidationError, match=r"timeouts\.connect"):
        Timeouts(connect="1")  # type: ignore[arg-type]
    assert Timeouts(total=None).total is None


def test_what_is_retried() -> None:
    assert should_retry(error_from_response(503, {}, b""))
    assert not should_retry(error_from_response(400, {}, b""))
    assert should_retry(TransportError("reset", response_started=False))
    assert not should_retry(TransportError("reset", response_started=True))
    assert should_retry(TimeoutError("connect", 1))
    assert not should_retry(TimeoutError("first_byte", 1))
    assert not should_retry(TimeoutError("idle", 1, response_started=True))
    assert not should_retry(ValueError("bug"))


def test_module_exports_exist() -> None:
    for name in agentcore.__all__:
        assert hasattr(agentcore, name), name
    assert PreparedRequest("GET", "https://x", {}).body == b""


# Validation rules hold for every input.

_SESSION_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=120))
def test_session_id_rule_for_any_text(value: str) -> None:
    """Accepted exactly when 33-100 chars of [A-Za-z0-9_-], first alphanumeric."""
    expected = (
        33 <= len(value) <= 100
        and set(value) <= set(_SESSION_ALPHABET)
        and value[0].isalnum()
    )
    try:
        validate_session_id(value)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == expected


@settings(max_examples=200)
@given(
    st.sampled_from(
        [
            ("trace_id", 128),
            ("traceparent", 128),
            ("tracestate", 512),
            ("baggage", 8192),
        ]
    ),
    st.integers(0, 9000),
    st.sampled_from([" ", "a", "=", ";", "\n", "\x00", "é"]),
)
def test_trace_headers_for_any_length_and_character(
    header: tuple[str, int], length: int, character: str
) -> None:
    """Accepted exactly when printable ASCII within the model's limit."""
    argument, limit = header
    value = "k" + character * max(0, length - 1) if length else ""
    expected = len(value) <= limit and (value.isascii() and value.isprintable())
    try:
        agentcore.validate_trace_headers(**{argument: value})
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == expected


@settings(max_examples=100)
@given(st.integers(-10, 400))
def test_presign_expiry_for_any_number(expires: int) -> None:
    target = resolve_target(ARN)
    if 1 <= expires <= 300:
        url = presign_websocket_url(target, SESSION, CREDS, expires=expires, now=NOW)
        assert f"X-Amz-Expires={expires}&" in url
    else:
        with pytest.raises(ValidationError):
            presign_websocket_url(target, SESSION, CREDS, expires=expires, now=NOW)
