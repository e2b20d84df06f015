"""The emulator's SigV4 check, over loopback and as a pure function."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcore_bridge import Credentials
from agentcore_bridge.agentcore import SESSION_ID_HEADER
from agentcore_bridge.local.agentcore import LOCAL_CREDENTIALS
from agentcore_bridge.local.sigv4_verifier import SignatureError, SigV4Verifier
from agentcore_bridge.sigv4 import UNSIGNED_PAYLOAD, presign_url, sign_headers
from emulator_calls import Answer, call, new_session_id
from stack import Emulator, local_stack

PAYLOAD = {"prompt": "hello", "json": True}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with local_stack() as running:
        yield running


def assert_rejected(answer: Answer, status: int, error_type: str) -> None:
    assert answer.status == status
    assert answer.error_type == error_type
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.message
    assert answer.headers["x-amzn-RequestId"]


def test_accepts_a_header_signature_from_sign_headers(emulator: Emulator) -> None:
    answer = call(emulator, payload=PAYLOAD, session_id=new_session_id())
    assert answer.status == 200
    assert answer.json()["answer"].endswith("You said: hello")


def test_accepts_a_signed_content_sha256_header(emulator: Emulator) -> None:
    body = b'{"prompt": "sha", "json": true}'
    answer = call(
        emulator,
        body=body,
        session_id=new_session_id(),
        sign_options={"content_sha256_header": True},
    )
    assert answer.status == 200

    # A declared hash that is not the body's is caught by the signature.
    wrong = {"X-Amz-Content-Sha256": hashlib.sha256(b"other").hexdigest()}
    answer = call(emulator, body=body, headers=wrong)
    assert answer.status == 403


def test_accepts_an_unsigned_payload_declared_in_the_header(emulator: Emulator) -> None:
    """X-Amz-Content-Sha256 takes the place of the body's hash when present."""
    answer = call(
        emulator,
        payload=PAYLOAD,
        sign_options={"payload_hash": UNSIGNED_PAYLOAD, "content_sha256_header": True},
    )
    assert answer.status == 200


def test_accepts_a_presigned_invocation(emulator: Emulator) -> None:
    answer = call(emulator, payload=PAYLOAD, auth="presign")
    assert answer.status == 200


def test_rejects_a_tampered_signature(emulator: Emulator) -> None:
    # Sign a different body than the one sent: the signature no longer fits.
    answer = call(emulator, payload=PAYLOAD, sign_body=b'{"prompt": "other"}')
    assert_rejected(answer, 403, "InvalidSignatureException")
    assert "signature we calculated does not match" in answer.message


def test_rejects_a_wrong_secret(emulator: Emulator) -> None:
    wrong = Credentials(LOCAL_CREDENTIALS.access_key_id, "not-the-secret")
    answer = call(emulator, payload=PAYLOAD, credentials=wrong)
    assert_rejected(answer, 403, "InvalidSignatureException")


def test_rejects_an_unknown_access_key(emulator: Emulator) -> None:
    unknown = Credentials("AKIAUNKNOWNKEY000000", "whatever")
    answer = call(emulator, payload=PAYLOAD, credentials=unknown)
    assert_rejected(answer, 403, "UnrecognizedClientException")
    assert answer.message == "The security token included in the request is invalid."


def test_rejects_a_date_more_than_five_minutes_old(emulator: Emulator) -> None:
    answer = call(emulator, payload=PAYLOAD, now=time.time() - 301)
    assert_rejected(answer, 403, "AccessDeniedException")
    assert answer.message.startswith("Signature expired")


def test_rejects_a_date_more_than_five_minutes_ahead(emulator: Emulator) -> None:
    answer = call(emulator, payload=PAYLOAD, now=time.time() + 400)
    assert_rejected(answer, 403, "AccessDeniedException")
    assert answer.message.startswith("Signature not yet current")


def test_accepts_a_date_a_little_off(emulator: Emulator) -> None:
    assert call(emulator, payload=PAYLOAD, now=time.time() - 200).status == 200


def test_rejects_an_expired_presigned_url(emulator: Emulator) -> None:
    answer = call(emulator, payload=PAYLOAD, auth="presign", now=time.time() - 301)
    assert_rejected(answer, 403, "AccessDeniedException")
    assert answer.message.startswith("Signature expired")


def test_rejects_a_presigned_url_valid_for_too_long(emulator: Emulator) -> None:
    url = emulator.runtime_url("invocations")
    signed = presign_url(
        "POST",
        url,
        credentials=emulator.credentials,
        region=emulator.region,
        service="bedrock-agentcore",
        expires=3600,
    )
    query = dict(part.split("=", 1) for part in signed.split("?", 1)[1].split("&"))
    answer = call(emulator, payload=PAYLOAD, auth="none", query=query)
    assert_rejected(answer, 400, "IncompleteSignatureException")


def test_rejects_a_request_without_authentication(emulator: Emulator) -> None:
    answer = call(emulator, payload=PAYLOAD, auth="none")
    assert_rejected(answer, 403, "MissingAuthenticationTokenException")


def test_rejects_a_bearer_token_on_a_sigv4_runtime(emulator: Emulator) -> None:
    answer = call(
        emulator,
        payload=PAYLOAD,
        auth="none",
        headers={"Authorization": "Bearer x.y.z"},
    )
    assert_rejected(answer, 403, "AccessDeniedException")
    assert answer.message == "Authorization method mismatch"


def test_rejects_a_signature_scoped_to_another_region(emulator: Emulator) -> None:
    answer = call(emulator, payload=PAYLOAD, region="eu-west-1")
    assert_rejected(answer, 403, "InvalidSignatureException")
    assert "region" in answer.message


def test_rejects_a_malformed_authorization_header(emulator: Emulator) -> None:
    answer = call(
        emulator,
        payload=PAYLOAD,
        auth="none",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/x",
            "X-Amz-Date": "20260101T000000Z",
        },
    )
    assert_rejected(answer, 400, "IncompleteSignatureException")


def test_session_token_credentials_need_their_token() -> None:
    with local_stack() as emulator:
        temporary = Credentials("ASIATEMPORARY0000000", "temp-secret", "the-token")
        emulator.configure(
            credentials=[
                {
                    "access_key_id": temporary.access_key_id,
                    "secret_access_key": temporary.secret_access_key,
                    "session_token": temporary.session_token,
                }
            ]
        )
        assert call(emulator, payload=PAYLOAD, credentials=temporary).status == 200

        wrong_token = Credentials("ASIATEMPORARY0000000", "temp-secret", "other")
        answer = call(emulator, payload=PAYLOAD, credentials=wrong_token)
        assert_rejected(answer, 403, "UnrecognizedClientException")


def test_rejects_expired_credentials() -> None:
    with local_stack() as emulator:
        emulator.configure(
            credentials=[
                {
                    "access_key_id": "ASIAEXPIRED000000000",
                    "secret_access_key": "old-secret",
                    "session_token": "old-token",
                    "expiration": time.time() - 1,
                }
            ]
        )
        expired = Credentials("ASIAEXPIRED000000000", "old-secret", "old-token")
        answer = call(emulator, payload=PAYLOAD, credentials=expired)
        assert_rejected(answer, 403, "ExpiredTokenException")


def test_accept_any_credentials_lets_unknown_keys_in_but_checks_known_ones() -> None:
    with local_stack(accept_any_credentials=True) as emulator:
        anyone = Credentials("AKIAANYBODY000000000", "anything")
        assert call(emulator, payload=PAYLOAD, credentials=anyone).status == 200

        wrong = Credentials(LOCAL_CREDENTIALS.access_key_id, "not-the-secret")
        answer = call(emulator, payload=PAYLOAD, credentials=wrong)
        assert_rejected(answer, 403, "InvalidSignatureException")


# The verifier as a pure function.

VERIFIER = SigV4Verifier(
    [LOCAL_CREDENTIALS], region="us-west-2", service="bedrock-agentcore"
)
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PATH = (
    "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-west-2%3A123456789012"
    "%3Aruntime%2Fa/invocations"
)

header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20
)
query_values = st.text(max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=64),
    extra=st.dictionaries(
        st.sampled_from(["x-custom", "content-type", "accept", "x-amz-meta"]),
        header_values,
        max_size=3,
    ),
    query=st.dictionaries(st.sampled_from(["qualifier", "a", "b c"]), query_values),
)
def test_every_request_signed_by_sign_headers_verifies(
    body: bytes, extra: dict[str, str], query: dict[str, str]
) -> None:
    """Whatever the body, headers and query, our signer and verifier agree."""
    from urllib.parse import quote

    raw_query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items())
    url = f"http://127.0.0.1:9000{PATH}" + (f"?{raw_query}" if raw_query else "")
    headers = {"Host": "127.0.0.1:9000", **extra}
    headers.update(
        sign_headers(
            "POST",
            url,
            headers,
            body,
            credentials=LOCAL_CREDENTIALS,
            region="us-west-2",
            service="bedrock-agentcore",
            now=NOW,
        )
    )
    verified = VERIFIER.verify(
        "POST", PATH, raw_query, list(headers.items()), body, now=NOW
    )
    assert verified.access_key_id == LOCAL_CREDENTIALS.access_key_id
    assert verified.checked

    # Any change to the body breaks it.
    with pytest.raises(SignatureError) as rejected:
        VERIFIER.verify(
            "POST", PATH, raw_query, list(headers.items()), body + b"!", now=NOW
        )
    assert rejected.value.error_type == "InvalidSignatureException"


@settings(max_examples=30, deadline=None)
@given(session=st.text(alphabet="abcdef0123456789-", min_size=33, max_size=40))
def test_every_presigned_url_verifies_until_it_expires(session: str) -> None:
    path = PATH.replace("invocations", "ws")
    url = f"http://127.0.0.1:9000{path}?{SESSION_ID_HEADER}={session}"
    signed = presign_url(
        "GET",
        url,
        credentials=LOCAL_CREDENTIALS,
        region="us-west-2",
        service="bedrock-agentcore",
        expires=300,
        now=NOW,
    )
    path, _, raw_query = signed.partition("127.0.0.1:9000")[2].partition("?")
    headers = [("Host", "127.0.0.1:9000")]
    verified = VERIFIER.verify("GET", path, raw_query, headers, b"", now=NOW + 299)
    assert verified.presigned

    with pytest.raises(SignatureError) as rejected:
        VERIFIER.verify("GET", path, raw_query, headers, b"", now=NOW + 301)
    assert (rejected.value.status, rejected.value.error_type) == (
        403,
        "AccessDeniedException",
    )
