"""Unit tests of the signer's own promises (the wire format is checked by the
suite and botocore tests)."""

from __future__ import annotations

import copy
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.exceptions import ValidationError
from agentcore_bridge.local.sigv4_verifier import SigV4Verifier
from agentcore_bridge.sigv4 import (
    UNSIGNED_PAYLOAD,
    canonical_headers,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    credential_scope,
    header_signing_steps,
    presign_url,
    query_signing_steps,
    sign_headers,
    signature,
    signing_key,
    string_to_sign,
)

CREDENTIALS = Credentials(
    "AKIDEXAMPLE",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "FQoGZXIvYXdzEXAMPLEsessiontoken",
)
URL = (
    "https://bedrock-agentcore.us-west-2.amazonaws.com/runtimes/"
    "arn%3Aaws%3Abedrock-agentcore%3Aus-west-2%3A123456789012%3Aruntime%2Fx-1"
    "/invocations?qualifier=DEFAULT"
)
NOW = datetime(2025, 11, 20, 8, 30, 5, tzinfo=timezone.utc)
SIGNING: dict[str, Any] = {
    "credentials": CREDENTIALS,
    "region": "us-west-2",
    "service": "bedrock-agentcore",
    "now": NOW,
}


def test_sign_headers_leaves_the_callers_headers_unchanged() -> None:
    headers = {"Content-Type": "application/json", "Host": "example.com"}
    pairs = [("Accept", "text/event-stream"), ("accept", "application/json")]
    before = copy.deepcopy((headers, pairs))

    sign_headers("POST", URL, headers, b"{}", **SIGNING)
    sign_headers("POST", URL, pairs, b"{}", **SIGNING)
    presign_url("GET", URL, headers, **SIGNING)

    assert (headers, pairs) == before


def test_sign_headers_returns_only_the_headers_to_add() -> None:
    added = sign_headers("POST", URL, {"Content-Type": "application/json"}, **SIGNING)

    assert sorted(added) == ["Authorization", "X-Amz-Date", "X-Amz-Security-Token"]
    assert added["X-Amz-Date"] == "20251120T083005Z"
    assert added["X-Amz-Security-Token"] == CREDENTIALS.session_token


def test_signing_key_cache_hit_returns_the_same_key() -> None:
    first = signing_key("secret", "20251120", "us-west-2", "bedrock-agentcore")
    again = signing_key("secret", "20251120", "us-west-2", "bedrock-agentcore")
    next_day = signing_key("secret", "20251121", "us-west-2", "bedrock-agentcore")

    assert again is first
    assert next_day != first


def reference_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The key derivation written out from the specification, uncached."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@pytest.mark.parametrize(
    "changed",
    [
        ("other-secret", "20251120", "us-west-2", "bedrock-agentcore"),
        ("secret", "20251121", "us-west-2", "bedrock-agentcore"),
        ("secret", "20251120", "eu-west-1", "bedrock-agentcore"),
        ("secret", "20251120", "us-west-2", "execute-api"),
    ],
    ids=["secret", "date", "region", "service"],
)
def test_signing_key_cache_keeps_each_of_secret_date_region_service_apart(
    changed: tuple[str, str, str, str],
) -> None:
    """A key cached for one (secret, date, region, service) never serves another."""
    base = ("secret", "20251120", "us-west-2", "bedrock-agentcore")
    signing_key(*base)
    signing_key(*changed)

    assert signing_key(*base) == reference_signing_key(*base)
    assert signing_key(*changed) == reference_signing_key(*changed)
    assert signing_key(*changed) != signing_key(*base)


def test_signing_key_stays_right_after_the_cache_fills_up() -> None:
    key = signing_key("secret", "20251120", "us-west-2", "lambda")
    for day in range(1, 200):
        signing_key("other", f"2030{day:04d}", "us-east-1", "lambda")

    assert signing_key("secret", "20251120", "us-west-2", "lambda") == key


def test_signing_steps_repr_hides_token_signature_and_canonical_request() -> None:
    steps = header_signing_steps("POST", URL, None, b"{}", **SIGNING)
    presigned = query_signing_steps("GET", URL, **SIGNING)

    for shown in (repr(steps), repr(presigned), str(steps)):
        assert CREDENTIALS.session_token is not None
        assert CREDENTIALS.session_token not in shown
        assert CREDENTIALS.secret_access_key not in shown
        assert steps.signature not in shown
        assert presigned.signature not in shown
        assert "qualifier" not in shown  # neither the URL nor the canonical request


def test_naive_datetime_is_rejected() -> None:
    naive = datetime(2025, 11, 20, 8, 30, 5)

    with pytest.raises(ValidationError, match="now"):
        sign_headers(
            "GET", URL, credentials=CREDENTIALS, region="r", service="s", now=naive
        )
    with pytest.raises(ValidationError, match="now"):
        presign_url(
            "GET", URL, credentials=CREDENTIALS, region="r", service="s", now=naive
        )


@pytest.mark.parametrize(
    "now",
    [
        -1.0,
        -1e12,
        253402300800.0,
        1e20,
        float("nan"),
        float("inf"),
        datetime(1969, 12, 31, 23, 59, tzinfo=timezone.utc),
    ],
)
def test_moment_outside_what_x_amz_date_can_hold_is_rejected(
    now: float | datetime,
) -> None:
    """Not a malformed X-Amz-Date, nor an error from the time module."""
    with pytest.raises(ValidationError, match="now"):
        sign_headers("GET", URL, **{**SIGNING, "now": now})
    with pytest.raises(ValidationError, match="now"):
        presign_url("GET", URL, **{**SIGNING, "now": now})


def test_first_and_last_second_x_amz_date_can_hold_are_signed() -> None:
    first = sign_headers("GET", URL, **{**SIGNING, "now": 0})
    last = sign_headers("GET", URL, **{**SIGNING, "now": 253402300799.5})

    assert first["X-Amz-Date"] == "19700101T000000Z"
    assert last["X-Amz-Date"] == "99991231T235959Z"


def test_aware_datetime_in_any_zone_and_unix_time_sign_alike() -> None:
    in_utc = sign_headers("GET", URL, **{**SIGNING, "now": NOW})
    in_paris = sign_headers(
        "GET", URL, **{**SIGNING, "now": NOW.astimezone(timezone(timedelta(hours=1)))}
    )
    as_unix = sign_headers("GET", URL, **{**SIGNING, "now": NOW.timestamp()})

    assert in_utc == in_paris == as_unix


@pytest.mark.parametrize("expires", [0, -1, 604801, 30.5, 300.0, True, "300"])
def test_presign_rejects_expiry_outside_one_second_to_seven_days(expires: int) -> None:
    with pytest.raises(ValidationError, match="expires"):
        presign_url("GET", URL, expires=expires, **SIGNING)


@pytest.mark.parametrize("expires", [1, 300, 604800])
def test_presign_accepts_expiry_within_bounds(expires: int) -> None:
    url = presign_url("GET", URL, expires=expires, **SIGNING)

    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == [str(expires)]


def test_presign_keeps_callers_query_and_puts_signature_last() -> None:
    url = presign_url("GET", URL, **SIGNING)
    query = urlsplit(url).query

    assert query.startswith("qualifier=DEFAULT&X-Amz-Algorithm=AWS4-HMAC-SHA256&")
    assert query.rpartition("&")[2].startswith("X-Amz-Signature=")


@pytest.mark.parametrize(
    "url",
    [URL, URL.replace("?qualifier=DEFAULT", ""), URL + "&X-Amzn-Trace=keep%2Dme"],
)
def test_presigning_a_presigned_url_replaces_its_authentication(url: str) -> None:
    """Refreshing a presigned URL gives what presigning the original gives."""
    old = presign_url("GET", url, **{**SIGNING, "now": NOW - timedelta(hours=1)})
    fresh = presign_url("GET", url, **SIGNING)

    assert presign_url("GET", old, **SIGNING) == fresh
    assert presign_url("GET", old + "#part", **SIGNING) == fresh
    # The names spelled with escapes are recognised too.
    escaped = old.replace("X-Amz-Date=", "X-Amz%2DDate=")
    assert presign_url("GET", escaped, **SIGNING) == fresh


def test_a_refreshed_presigned_url_passes_verification() -> None:
    verifier = SigV4Verifier(
        [CREDENTIALS], region=SIGNING["region"], service=SIGNING["service"]
    )
    old = presign_url("GET", URL, **{**SIGNING, "now": NOW - timedelta(minutes=4)})
    parts = urlsplit(presign_url("GET", old, **SIGNING))

    verified = verifier.verify(
        "GET",
        parts.path,
        parts.query,
        [("Host", parts.netloc)],
        b"",
        now=NOW.timestamp(),
    )
    assert verified.presigned and verified.checked


def test_content_sha256_header_carries_the_payload_hash() -> None:
    body = b'{"prompt": "hi"}'
    hashed = sign_headers(
        "POST", URL, None, body, content_sha256_header=True, **SIGNING
    )
    unsigned = sign_headers(
        "POST",
        URL,
        payload_hash=UNSIGNED_PAYLOAD,
        content_sha256_header=True,
        **SIGNING,
    )

    assert hashed["X-Amz-Content-Sha256"] == hashlib.sha256(body).hexdigest()
    assert "x-amz-content-sha256" in hashed["Authorization"]
    assert unsigned["X-Amz-Content-Sha256"] == UNSIGNED_PAYLOAD


def test_unsigned_session_token_is_sent_but_not_signed() -> None:
    steps = header_signing_steps("POST", URL, sign_session_token=False, **SIGNING)
    presigned = query_signing_steps("GET", URL, sign_session_token=False, **SIGNING)

    assert steps.headers["X-Amz-Security-Token"] == CREDENTIALS.session_token
    assert "x-amz-security-token" not in steps.signed_headers
    assert "X-Amz-Security-Token" not in presigned.canonical_request
    assert parse_qs(urlsplit(presigned.url).query)["X-Amz-Security-Token"] == [
        CREDENTIALS.session_token
    ]


def test_unsigned_headers_are_left_out_of_the_signature() -> None:
    steps = header_signing_steps(
        "GET",
        URL,
        {"User-Agent": "x", "Connection": "Upgrade", "Upgrade": "websocket"},
        **SIGNING,
    )

    assert steps.signed_headers == "host;x-amz-date;x-amz-security-token"


def test_step_functions_rebuild_the_signature_from_a_received_request() -> None:
    """A verifier holding only the request as received gets the same signature."""
    sent = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    body = b'{"prompt": "hi"}'
    added = sign_headers("POST", URL, sent, body, **SIGNING)
    received = {**sent, **added, "Host": urlsplit(URL).netloc}

    auth = received["Authorization"]
    scope_text = auth.split("Credential=")[1].split(",")[0].partition("/")[2]
    datestamp, region, service, _ = scope_text.split("/")
    signed_names = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    block, signed = canonical_headers(
        [
            (name, value)
            for name, value in received.items()
            if name.lower() in signed_names
        ]
    )
    url = urlsplit(URL)
    canonical = canonical_request(
        "POST",
        canonical_uri(url.path),
        canonical_query_string(url.query),
        block,
        signed,
        hashlib.sha256(body).hexdigest(),
    )
    scope = credential_scope(datestamp, region, service)
    to_sign = string_to_sign(received["X-Amz-Date"], scope, canonical)
    key = signing_key(CREDENTIALS.secret_access_key, datestamp, region, service)

    assert auth.endswith(f"Signature={signature(key, to_sign)}")


def test_canonical_uri_encodes_an_encoded_arn_a_second_time() -> None:
    path = urlsplit(URL).path

    assert canonical_uri(path) == (
        "/runtimes/arn%253Aaws%253Abedrock-agentcore%253Aus-west-2%253A"
        "123456789012%253Aruntime%252Fx-1/invocations"
    )


any_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]))


@given(any_text)
def test_canonical_uri_encodes_like_urllib_quote(path: str) -> None:
    """Unnormalised, the canonical URI is the path quoted with "/" kept."""
    assert canonical_uri(path, normalize=False) == quote(path or "/", safe="/~")


@given(st.lists(st.tuples(any_text, any_text), max_size=4))
def test_canonical_query_string_encodes_like_urllib_quote(
    pairs: list[tuple[str, str]],
) -> None:
    """Decoded pairs are encoded with only the unreserved characters kept."""
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)

    assert canonical_query_string(pairs) == "&".join(f"{k}={v}" for k, v in encoded)
