"""The emulator's SigV4 checks accept what botocore signs and nothing altered."""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.local.apigw import ApiGatewayConfig, LocalApiGateway
from agentcore_bridge.local.sigv4_verifier import SignatureError, SigV4Verifier

KEYS = Credentials("AKIDEXAMPLE000000000", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
HOST = "127.0.0.1:8123"


def verifier(service: str, **config: object) -> SigV4Verifier:
    """The check the emulator runs for ``service``, built from ``config``."""
    settings = ApiGatewayConfig(
        handler="echo:handler",
        credentials=config.pop("credentials", KEYS),  # type: ignore[arg-type]
        **config,  # type: ignore[arg-type]
    )
    return LocalApiGateway(settings).verifiers[service]


segments = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/"), min_size=1
).filter(lambda s: s not in {".", ".."})
pairs = st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=4)


def signed_by_botocore(
    method: str, path: str, query: str, body: bytes, service: str
) -> tuple[str, str, list[tuple[str, str]]]:
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers={"Host": HOST})
    SigV4Auth(
        BotocoreCredentials(KEYS.access_key_id, KEYS.secret_access_key),
        service,
        "us-east-1",
    ).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    return parts.path, parts.query, list(prepared.headers.items())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(segments, min_size=1, max_size=4),
    pairs,
    st.binary(max_size=64),
    st.sampled_from(["POST", "GET", "DELETE"]),
)
def test_botocore_signatures_verify(
    path_parts: list[str], query: list[tuple[str, str]], body: bytes, method: str
) -> None:
    path = "/local/@connections/" + "/".join(quote(p, safe="") for p in path_parts)
    raw_path, raw_query, headers = signed_by_botocore(
        method, path, urlencode(query, quote_via=quote), body, "execute-api"
    )
    check = verifier("execute-api")
    now = time.time()
    verified = check.verify(method, raw_path, raw_query, headers, body, now=now)
    assert verified.checked
    with pytest.raises(SignatureError):
        check.verify(method, raw_path, raw_query, headers, body + b"!", now=now)
    with pytest.raises(SignatureError):
        check.verify(method, raw_path + "x", raw_query, headers, body, now=now)


def test_signature_checks_name_the_problem() -> None:
    raw_path, raw_query, headers = signed_by_botocore(
        "POST", "/local/@connections/abc%3D", "", b"x", "execute-api"
    )

    def refusal(
        service: str = "execute-api",
        *,
        now: float | None = None,
        signed: list[tuple[str, str]] = headers,
        **config: object,
    ) -> SignatureError:
        with pytest.raises(SignatureError) as refused:
            verifier(service, **config).verify(
                "POST", raw_path, raw_query, signed, b"x",
                now=time.time() if now is None else now,
            )  # fmt: skip
        return refused.value

    assert (
        verifier("execute-api")
        .verify("POST", raw_path, raw_query, headers, b"x", now=time.time())
        .checked
    )

    wrong_service = refusal("lambda")
    assert (wrong_service.error_type, wrong_service.reason) == (
        "InvalidSignatureException",
        "scope",
    )
    assert "service" in wrong_service.message
    wrong_region = refusal(region="eu-west-1")
    assert wrong_region.reason == "scope"
    assert "region" in wrong_region.message
    unknown = refusal(credentials=Credentials("AKIDOTHER", KEYS.secret_access_key))
    assert unknown.error_type == "UnrecognizedClientException"
    assert "security token" in unknown.message
    late = refusal(now=time.time() + 3600)
    assert late.reason == "expired"
    assert "expired" in late.message
    missing = refusal(signed=[])
    assert (missing.status, missing.error_type, missing.message) == (
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )

    anyone = verifier(
        "execute-api",
        credentials=Credentials("AKIDOTHER", "x"),
        accept_any_credentials=True,
    )
    accepted = anyone.verify(
        "POST", raw_path, raw_query, headers, b"x", now=time.time()
    )
    assert not accepted.checked
