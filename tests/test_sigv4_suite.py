"""The signer against AWS's published SigV4 test suite, every case, both modes.

The suite lives in ``tests/sigv4_test_suite/v4`` (see the README there for
its source and licence). Each case folder holds a raw HTTP request, a
``context.json`` and the expected canonical request, string to sign,
signature and signed request for header signing (``header-*.txt``) and
query signing (``query-*.txt``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.sigv4 import (
    SigningSteps,
    header_signing_steps,
    query_signing_steps,
)

SUITE = Path(__file__).resolve().parent / "sigv4_test_suite" / "v4"
MODES = ("header", "query")
CASES = [
    pytest.param(case, mode, id=f"{case.name}-{mode}")
    for case in sorted(p for p in SUITE.iterdir() if p.is_dir())
    for mode in MODES
]


def test_suite_is_complete() -> None:
    """All 38 published cases are present, so none can drop out unnoticed."""
    assert len(CASES) == 38 * len(MODES)


@dataclass
class Request:
    """One HTTP/1.1 request as the suite writes it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next(v for n, v in self.headers if n.lower() == name.lower())


def parse_request(raw: bytes) -> Request:
    """Parse a suite request: request line, headers, blank line, body.

    Header values are kept as written (leading space and folded
    continuation lines included) so the signer's own trimming is what the
    test exercises. Repeated names stay separate entries, in order.
    """
    head, _, body = raw.partition(b"\n\n")
    lines = head.decode().rstrip("\n").split("\n")
    # The target may hold a space ("/example space/"): split the request
    # line at its first and last spaces only.
    method, _, rest = lines[0].partition(" ")
    target, _, version = rest.rpartition(" ")
    assert version == "HTTP/1.1", lines[0]

    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            # An obsolete folded line continues the previous header's value.
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\n{line}")
        else:
            name, colon, value = line.partition(":")
            assert colon, f"not a header line: {line!r}"
            headers.append((name, value))
    return Request(method, target, headers, body)


def sign_case(case: Path, mode: str) -> tuple[Request, SigningSteps]:
    context: dict[str, Any] = json.loads((case / "context.json").read_text())
    request = parse_request((case / "request.txt").read_bytes())
    creds = context["credentials"]
    credentials = Credentials(
        creds["access_key_id"], creds["secret_access_key"], creds.get("token")
    )
    # The body is hashed whether or not the case says "sign_body": the
    # cases without it have no body, so their payload hash is the empty
    # string's, which is what the expected files hold.
    sign_body = bool(context["sign_body"])
    common: dict[str, Any] = {
        "credentials": credentials,
        "region": context["region"],
        "service": context["service"],
        "now": datetime.fromisoformat(context["timestamp"].replace("Z", "+00:00")),
        "payload_hash": hashlib.sha256(request.body).hexdigest(),
        "normalize_path": bool(context["normalize"]),
        "sign_session_token": not context.get("omit_session_token", False),
    }
    url = f"https://{request.header('Host')}{request.target}"
    if mode == "header":
        steps = header_signing_steps(
            request.method,
            url,
            request.headers,
            request.body,
            content_sha256_header=sign_body,
            **common,
        )
    else:
        steps = query_signing_steps(
            request.method,
            url,
            request.headers,
            request.body,
            expires=int(context["expiration_in_seconds"]),
            **common,
        )
    return request, steps


def expected(case: Path, mode: str, name: str) -> str:
    return (case / f"{mode}-{name}.txt").read_text(encoding="utf-8")


def header_multiset(headers: list[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return Counter((name.lower(), value.strip()) for name, value in headers)


def query_multiset(query: str) -> Counter[tuple[str, str]]:
    return Counter(parse_qsl(query, keep_blank_values=True))


@pytest.mark.parametrize(("case", "mode"), CASES)
def test_canonical_request_string_to_sign_and_signature_match_suite(
    case: Path, mode: str
) -> None:
    """Each of the three intermediate results equals the suite's file."""
    _, steps = sign_case(case, mode)

    assert steps.canonical_request == expected(case, mode, "canonical-request")
    assert steps.string_to_sign == expected(case, mode, "string-to-sign")
    assert steps.signature == expected(case, mode, "signature").strip()


@pytest.mark.parametrize(("case", "mode"), CASES)
def test_signed_request_matches_suite(case: Path, mode: str) -> None:
    """The request as it would be sent carries what the suite's signed request does.

    Header order and query parameter order are free (the suite's generator
    has its own), so headers and query parameters compare as multisets;
    the method, path and body compare exactly.
    """
    request, steps = sign_case(case, mode)
    signed = parse_request((case / f"{mode}-signed-request.txt").read_bytes())

    if mode == "header":
        sent_target = request.target
        sent_headers = [*request.headers, *steps.headers.items()]
    else:
        url = urlsplit(steps.url)
        sent_target = f"{url.path}?{url.query}"
        sent_headers = request.headers
        assert steps.headers == {}

    sent_path, _, sent_query = sent_target.partition("?")
    signed_path, _, signed_query = signed.target.partition("?")
    assert request.method == signed.method
    assert sent_path == signed_path
    assert query_multiset(sent_query) == query_multiset(signed_query)
    assert header_multiset(sent_headers) == header_multiset(signed.headers)
    assert request.body == signed.body
