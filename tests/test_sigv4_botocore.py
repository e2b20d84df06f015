"""The signer against botocore, AWS's own Python signer, on generated requests.

For every generated request, :func:`sign_headers` must produce exactly the
headers botocore's ``SigV4Auth`` adds, and :func:`presign_url` a URL with
exactly the query parameters of botocore's ``SigV4QueryAuth``. Botocore is
the oracle here: its clock is frozen at the generated moment by patching
``botocore.auth.get_current_datetime``; our code is never patched.

Two inputs are shaped so that both signers are asked the same question:

- Queries are generated as decoded pairs and written with the canonical
  SigV4 encoding (RFC 3986 unreserved characters kept, everything else
  ``%XX`` from UTF-8). Botocore takes a URL's raw query into the canonical
  request as it stands, without decoding and encoding it again, so a query
  written any other way (``+`` for a space, ``%7e`` for ``~``) would be
  signed differently by botocore and by AWS, which re-encodes. Our signer
  re-encodes, as AWS does; the suite test covers that side.
- Presigned requests carry no body: botocore's presigner moves a body into
  the query string (the AWS query protocol), which is not what a presigned
  WebSocket URL does.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime, timezone
from unittest import mock
from urllib.parse import parse_qsl, quote, quote_from_bytes, unquote, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.sigv4 import (
    UNSIGNED_PAYLOAD,
    presign_url,
    query_signing_steps,
    sign_headers,
)

SERVICES = ["bedrock-agentcore", "execute-api", "lambda"]
REGIONS = ["us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2", "cn-north-1"]
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

#: Headers botocore replaces or handles itself (the date, the token, a
#: caller-provided payload hash, an old Authorization): the signer owns them.
OWNED_HEADERS = {
    "authorization",
    "date",
    "x-amz-content-sha256",
    "x-amz-date",
    "x-amz-security-token",
}
#: Headers that neither signer signs, as a WebSocket upgrade or a traced
#: client sends them.
UNSIGNED_EXAMPLES = [
    ("User-Agent", "agentcore-bridge/0.1 Python/3.12"),
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
]


@dataclass
class Case:
    """One request to sign, as both signers receive it."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    service: str
    region: str
    token: str | None
    moment: datetime
    expires: int = 300
    access_key: str = "AKIDEXAMPLE"
    #: Sign with ``UNSIGNED-PAYLOAD`` instead of the body's hash (https only:
    #: botocore always hashes the body of a plain-http request).
    unsigned: bool = False

    def ours(self) -> Credentials:
        return Credentials(self.access_key, SECRET, self.token)

    def botocore(self) -> BotoCredentials:
        return BotoCredentials(self.access_key, SECRET, self.token)


def agentcore_arn(region: str, name: str) -> str:
    return f"arn:aws:bedrock-agentcore:{region}:123456789012:runtime/{name}"


AGENTCORE_INVOKE = Case(
    method="POST",
    url="https://bedrock-agentcore.us-west-2.amazonaws.com/runtimes/"
    + quote(agentcore_arn("us-west-2", "x-1"), safe="")
    + "/invocations?qualifier=DEFAULT",
    headers={
        "Content-Type": "application/json",
        "Accept": "text/event-stream, application/json",
        "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "s" * 40,
        "User-Agent": "agentcore-bridge/0.1",
    },
    body=b'{"prompt": "hello"}',
    service="bedrock-agentcore",
    region="us-west-2",
    token="IQoJb3JpZ2luX2VjEXAMPLE//token+with/slashes==",
    moment=datetime(2025, 11, 20, 8, 30, 5, tzinfo=timezone.utc),
)

# Path segments: plain text (any Unicode except what ends a path),
# pre-encoded runtime ARNs, dot segments, and empty segments that make
# repeated slashes.
plain_segments = st.text(
    st.characters(
        codec="utf-8", exclude_categories=["Cc", "Cs"], exclude_characters="/?#"
    ),
    min_size=1,
    max_size=12,
)
arn_segments = st.builds(
    lambda region, name: quote(agentcore_arn(region, name), safe=""),
    st.sampled_from(REGIONS),
    st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=20),
)
segments = st.one_of(
    plain_segments,
    arn_segments,
    st.sampled_from([".", "..", "", "invocations", "ws", "%2F", "%3A", "a%20b"]),
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    parts = draw(st.lists(segments, max_size=6))
    if not parts and draw(st.booleans()):
        return ""  # a URL with no path at all signs as "/"
    trailing = "/" if draw(st.booleans()) else ""
    return "/" + "/".join(parts) + trailing


def canonical(text: str) -> str:
    return quote(text, safe="-_.~")


query_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10
)


@st.composite
def queries(draw: st.DrawFn) -> str:
    # Keys are unique because botocore's presigner reads the query into a
    # dict; they never start with X-Amz- because those are the signer's.
    keys = draw(
        st.lists(
            query_text.filter(lambda k: k and not k.lower().startswith("x-amz-")),
            unique=True,
            max_size=5,
        )
    )
    pairs = [(key, draw(query_text)) for key in keys]
    pairs = draw(st.permutations(pairs))
    rendered = []
    for key, value in pairs:
        if not value and draw(st.booleans()):
            rendered.append(canonical(key))  # "key" alone means "key="
        else:
            rendered.append(f"{canonical(key)}={canonical(value)}")
    return "&".join(rendered)


header_names = st.text(
    string.ascii_letters + string.digits + "-_", min_size=1, max_size=20
).filter(lambda name: name.lower() not in OWNED_HEADERS | {"host"})
# Visible ASCII with runs of spaces and tabs anywhere, which canonical
# headers collapse to single spaces and trim.
header_values = st.lists(
    st.text(string.printable[:95], max_size=6) | st.sampled_from(["  ", "\t", " \t "]),
    max_size=6,
).map("".join)


@st.composite
def header_sets(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(header_names, unique_by=str.lower, max_size=6))
    headers = {name: draw(header_values) for name in names}
    if names and draw(st.booleans()):
        # The same name again in other letters: both signers join the values.
        twin = names[0].swapcase()
        if twin != names[0]:
            headers[twin] = draw(header_values)
    for name, value in UNSIGNED_EXAMPLES:
        if draw(st.booleans()):
            headers[name] = value
    if draw(st.booleans()):
        headers["Content-Type"] = "application/json"
    return headers


@st.composite
def hosts(draw: st.DrawFn, service: str, region: str) -> tuple[str, str]:
    """A scheme and a host (with port when not the default) for the service."""
    name = {
        "bedrock-agentcore": f"bedrock-agentcore.{region}.amazonaws.com",
        "execute-api": f"abc123defg.execute-api.{region}.amazonaws.com",
        "lambda": f"lambda.{region}.amazonaws.com",
    }[service]
    return draw(
        st.sampled_from(
            [
                ("https", name),
                ("https", name.upper()),
                ("https", f"{name}:443"),
                ("https", f"{name}:8443"),
                ("http", "127.0.0.1:8080"),
                ("http", "localhost:80"),
            ]
        )
    )


tokens = st.none() | st.text(
    string.ascii_letters + string.digits + "+/=", min_size=1, max_size=400
)
moments = st.datetimes(
    min_value=datetime(2015, 1, 1),
    max_value=datetime(2040, 12, 31),
    timezones=st.just(timezone.utc),
).map(lambda moment: moment.replace(microsecond=0))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    service = draw(st.sampled_from(SERVICES))
    region = draw(st.sampled_from(REGIONS))
    scheme, host = draw(hosts(service, region))
    query = draw(queries())
    url = f"{scheme}://{host}{draw(paths())}" + (f"?{query}" if query else "")
    headers = draw(header_sets())
    if draw(st.booleans()):
        headers["Host"] = urlsplit(url).netloc.lower()
    return Case(
        method=draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "post"])),
        url=url,
        headers=headers,
        body=draw(st.binary(max_size=64)),
        service=service,
        region=region,
        token=draw(tokens),
        moment=draw(moments),
        expires=draw(st.integers(1, 604800)),
        unsigned=scheme == "https" and draw(st.booleans()),
    )


def botocore_header_signing(case: Case, url: str | None = None) -> dict[str, str]:
    """The headers SigV4Auth adds to ``case`` (sent to ``url`` if given)."""
    request = AWSRequest(case.method, url or case.url, case.headers, case.body)
    # How botocore's operations with unsigned payloads ask for one.
    request.context["payload_signing_enabled"] = not case.unsigned
    naive_utc = case.moment.replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda: naive_utc):
        botocore.auth.SigV4Auth(case.botocore(), case.service, case.region).add_auth(
            request
        )
    added = (
        "Authorization",
        "X-Amz-Date",
        "X-Amz-Security-Token",
        "X-Amz-Content-SHA256",
    )
    return {
        name.lower(): request.headers[name] for name in added if name in request.headers
    }


def botocore_presigning(case: Case, url: str | None = None) -> str:
    """The URL SigV4QueryAuth makes of ``case`` (sent to ``url`` if given)."""
    request = AWSRequest(case.method, url or case.url, case.headers)
    request.context["payload_signing_enabled"] = not case.unsigned
    naive_utc = case.moment.replace(tzinfo=None)
    signer = botocore.auth.SigV4QueryAuth(
        case.botocore(), case.service, case.region, expires=case.expires
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda: naive_utc):
        signer.add_auth(request)
    url: str = request.url
    return url


def url_parts(url: str) -> tuple[str, str, str, list[tuple[str, str]]]:
    parts = urlsplit(url)
    params = sorted(parse_qsl(parts.query, keep_blank_values=True))
    return parts.scheme, parts.netloc, parts.path, params


@settings(max_examples=300)
@example(AGENTCORE_INVOKE)
@given(cases())
def test_sign_headers_matches_botocore(case: Case) -> None:
    """sign_headers adds exactly the headers SigV4Auth adds, byte for byte.

    Unsigned payloads included: botocore then adds ``X-Amz-Content-SHA256:
    UNSIGNED-PAYLOAD`` and signs it, which is what ``payload_hash`` and
    ``content_sha256_header`` ask of ours.
    """
    assert our_header_signing(case) == botocore_header_signing(case)


def our_header_signing(case: Case, url: str | None = None) -> dict[str, str]:
    unsigned = {"payload_hash": UNSIGNED_PAYLOAD, "content_sha256_header": True}
    added = sign_headers(
        case.method,
        url or case.url,
        case.headers,
        case.body,
        credentials=case.ours(),
        region=case.region,
        service=case.service,
        now=case.moment,
        **(unsigned if case.unsigned else {}),
    )
    # Header names are compared without case: botocore spells it "SHA256".
    return {name.lower(): value for name, value in added.items()}


@settings(max_examples=300)
@example(AGENTCORE_INVOKE)
@given(cases())
def test_presign_url_matches_botocore(case: Case) -> None:
    """presign_url gives the same URL and query parameters as SigV4QueryAuth."""
    assert url_parts(our_presigning(case)) == url_parts(botocore_presigning(case))


def our_presigning(case: Case, url: str | None = None) -> str:
    return presign_url(
        case.method,
        url or case.url,
        case.headers,
        credentials=case.ours(),
        region=case.region,
        service=case.service,
        expires=case.expires,
        now=case.moment.timestamp(),
        payload_hash=UNSIGNED_PAYLOAD if case.unsigned else None,
    )


# The same query, spelled another way. AWS decodes a query and encodes it
# again its own way before it checks a signature, so any spelling of the
# same parameters must give the signature of the canonical spelling (which
# botocore, taking the query as it stands, computes).

#: Characters a query may carry unencoded besides the unreserved ones
#: (RFC 3986 pchar and "/" "?", without the "&", "=" and "+" that change
#: what the query means).
RAW_SAFE = frozenset("!$'()*,;:@/?")


@st.composite
def respelled(draw: st.DrawFn, text: str) -> str:
    """``text`` with each byte raw where allowed, or as %XX in either case."""
    out = []
    for char in text:
        raw_allowed = char.isascii() and (
            char.isalnum() or char in "-._~" or char in RAW_SAFE
        )
        if raw_allowed and draw(st.booleans()):
            out.append(char)
            continue
        for byte in char.encode():
            escape = f"%{byte:02X}"
            out.append(escape.lower() if draw(st.booleans()) else escape)
    return "".join(out)


@st.composite
def respelled_query(draw: st.DrawFn, url: str) -> str:
    """``url`` with its (canonically written) query spelled another way."""
    base, _, query = url.partition("?")
    parts = []
    for part in query.split("&") if query else []:
        key, equals, value = part.partition("=")
        spelled = draw(respelled(unquote(key)))
        if equals or draw(st.booleans()):
            spelled += "=" + draw(respelled(unquote(value)))
        parts.append(spelled)
    return f"{base}?{'&'.join(parts)}" if parts else base


@settings(max_examples=200)
@given(
    cases(),
    st.dictionaries(
        st.binary(min_size=1, max_size=6).filter(
            lambda key: not key.lower().startswith(b"x-amz-")
        ),
        st.binary(max_size=6),
        max_size=4,
    ),
    st.booleans(),
)
def test_query_bytes_that_are_not_utf_8_sign_like_botocore(
    case: Case, pairs: dict[bytes, bytes], lower_case: bool
) -> None:
    """Any bytes escaped in the query (%FF ...) are signed as those bytes.

    Botocore's header signer takes the canonically escaped query as it
    stands, so it is the oracle for header signing. Its presigner decodes
    the query as UTF-8 text first and cannot be one: presigning is checked
    on the canonical request instead.
    """
    canonical_pairs = [
        f"{quote_from_bytes(key, '-_.~')}={quote_from_bytes(value, '-_.~')}"
        for key, value in pairs.items()
    ]
    base = case.url.partition("?")[0]
    case.url = f"{base}?{'&'.join(canonical_pairs)}" if pairs else base
    sent = case.url
    if lower_case and pairs:
        # The query only: the path's escapes are signed as written.
        query = re.sub(
            "%[0-9A-F]{2}", lambda e: e[0].lower(), "&".join(canonical_pairs)
        )
        sent = f"{base}?{query}"

    assert our_header_signing(case, sent) == botocore_header_signing(case)

    steps = query_signing_steps(
        case.method,
        sent,
        case.headers,
        credentials=case.ours(),
        region=case.region,
        service=case.service,
        now=case.moment,
    )
    signed_query = steps.canonical_request.split("\n")[2].split("&")
    assert set(canonical_pairs) <= set(signed_query)


@settings(max_examples=200)
@given(cases(), st.data())
def test_any_spelling_of_the_query_signs_like_the_canonical_one(
    case: Case, data: st.DataObject
) -> None:
    """Lower-case escapes, escaped letters, raw sub-delimiters: one signature."""
    variant = data.draw(respelled_query(case.url))

    assert our_header_signing(case, variant) == botocore_header_signing(case)

    ours = our_presigning(case, variant)
    theirs = botocore_presigning(case)
    signature = dict(parse_qsl(urlsplit(ours).query))["X-Amz-Signature"]
    assert signature == dict(parse_qsl(urlsplit(theirs).query))["X-Amz-Signature"]
    # The caller's spelling is sent as it was given.
    variant_query = urlsplit(variant).query
    assert urlsplit(ours).query.startswith(variant_query)
