"""The emulator's SigV4 check accepts what botocore signs and nothing altered."""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.local.apigw import verify_signature

KEYS = Credentials("AKIDEXAMPLE000000000", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
HOST = "127.0.0.1:8123"

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
    common = {
        "credentials": KEYS,
        "region": "us-east-1",
        "service": "execute-api",
    }
    assert (
        verify_signature(method, raw_path, raw_query, headers, body, **common) is None
    )
    assert verify_signature(method, raw_path, raw_query, headers, body + b"!", **common)
    assert verify_signature(method, raw_path + "x", raw_query, headers, body, **common)


def test_signature_checks_name_the_problem() -> None:
    raw_path, raw_query, headers = signed_by_botocore(
        "POST", "/local/@connections/abc%3D", "", b"x", "execute-api"
    )

    def check(**overrides: object) -> str | None:
        arguments: dict[str, object] = {
            "credentials": KEYS,
            "region": "us-east-1",
            "service": "execute-api",
        }
        arguments.update(overrides)
        return verify_signature(
            "POST",
            raw_path,
            raw_query,
            headers,
            b"x",
            **arguments,  # type: ignore[arg-type]
        )

    assert check() is None
    assert "service" in (check(service="lambda") or "")
    assert "region" in (check(region="eu-west-1") or "")
    assert "security token" in (
        check(credentials=Credentials("AKIDOTHER", KEYS.secret_access_key)) or ""
    )
    assert "expired" in (check(now=time.time() + 3600) or "")
    anyone = Credentials("AKIDOTHER", "x")
    assert check(credentials=anyone, accept_any_credentials=True) is None
    assert verify_signature(
        "POST", raw_path, raw_query, [], b"x", credentials=KEYS, region="us-east-1",
        service="execute-api",
    ) == "Missing Authentication Token"  # fmt: skip
