"""AWS Signature Version 4, as pure functions.

Nothing here does I/O, reads the clock (unless ``now`` is left out) or
changes its arguments: the caller passes a method, a URL, headers and a body
(or its hash), and gets back the headers to add (:func:`sign_headers`) or a
presigned URL (:func:`presign_url`).

The module follows the steps of the SigV4 specification under the spec's
own names, each a public function so that a verifier (the local emulators)
can rebuild a signature from the parts of a received request:

1. :func:`canonical_request` from :func:`canonical_uri`,
   :func:`canonical_query_string` and :func:`canonical_headers`;
2. :func:`string_to_sign` over the :func:`credential_scope`;
3. :func:`signing_key`, derived from the secret by four HMACs and cached
   per (secret, date, region, service);
4. :func:`signature`, the hex HMAC of the string to sign.

Path handling follows every AWS service except S3: the path of the URL is
normalised (dot segments and repeated slashes removed) and then
percent-encoded once more. A path that already carries an encoded segment,
such as the AgentCore invocation path with its ARN as ``arn%3Aaws%3A...``,
therefore appears double-encoded (``arn%253Aaws...``) in the canonical
request, which is what AgentCore expects.

Speed: a bridge signs one request per client message, nearly always to the
same URL, so the parts of a URL that do not change between calls (its
canonical URI and query string, the ``Host`` value) are computed once and
cached, as are the signing key (per day) and the timestamp text (per
second). What remains per call is the headers, two SHA-256 hashes and one
HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from urllib.parse import SplitResult, quote_from_bytes, unquote, urlsplit, urlunsplit

from ._value import Value
from .credentials import Credentials
from .exceptions import ValidationError

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "UNSIGNED_HEADERS",
    "UNSIGNED_PAYLOAD",
    "SigningSteps",
    "canonical_headers",
    "canonical_query_string",
    "canonical_request",
    "canonical_uri",
    "credential_scope",
    "header_signing_steps",
    "presign_url",
    "query_signing_steps",
    "sign_headers",
    "signature",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

#: Headers never signed: hop-by-hop headers that proxies rewrite or drop
#: (``connection``, ``upgrade`` ... which a WebSocket upgrade carries), and
#: headers that tracing and clients change in flight. The set matches what
#: botocore leaves out, so both sign the same request the same way.
UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

HeadersInput = Mapping[str, str] | Iterable[tuple[str, str]]


# Percent-encoding, as the spec defines it: the RFC 3986 unreserved
# characters stay, every other byte of the UTF-8 text becomes %XX with
# upper-case hex.

_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_PATH_SAFE = _UNRESERVED + b"/"


def _percent_encode(text: str, safe: bytes = _UNRESERVED) -> str:
    # Equal to urllib.parse.quote(text, safe=...), which spends one Python
    # step per byte: too slow for a session token of a thousand characters
    # that is encoded on every presign. Here the bytes to escape are found
    # by one C-level pass, and each distinct one is replaced by one more.
    # surrogateescape turns the bytes of a query that are not UTF-8 back
    # into themselves (see _split_query).
    raw = text.encode("utf-8", "surrogateescape")
    to_escape = set(raw.translate(None, safe))
    if not to_escape:
        return text
    if len(to_escape) > 16:
        # Mostly non-ASCII text: one pass per distinct byte would cost more.
        return quote_from_bytes(raw, safe)
    if 0x25 in to_escape:
        # "%" first: the escapes added below must not be escaped again.
        raw = raw.replace(b"%", b"%25")
        to_escape.discard(0x25)
    for byte in to_escape:
        raw = raw.replace(bytes((byte,)), b"%%%02X" % byte)
    return raw.decode("ascii")


# Step 1: the canonical request.


def canonical_uri(path: str, *, normalize: bool = True) -> str:
    """The canonical URI of ``path`` (the path part of the URL, as sent).

    With ``normalize`` (every service but S3) dot segments and empty segments
    are removed first (RFC 3986 section 5.2.4, plus AWS's rule that repeated
    slashes collapse). The result is then percent-encoded with ``/`` and the
    unreserved characters left alone: existing ``%XX`` escapes are encoded a
    second time, as the spec requires for these services.
    """
    if not path:
        path = "/"
    if normalize:
        path = _remove_dot_segments(path)
    return _percent_encode(path, _PATH_SAFE)


def _remove_dot_segments(path: str) -> str:
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    leading = "/" if path.startswith("/") else ""
    trailing = "/" if path.endswith("/") and kept else ""
    return leading + "/".join(kept) + trailing


def canonical_query_string(query: str | Iterable[tuple[str, str]]) -> str:
    """The canonical query string of a raw query or of decoded pairs.

    A raw query (``"b=2&a=%E1%88%B4"``) is split on ``&`` and ``=``, each
    part percent-decoded and encoded again the spec's way, so any encoding
    and any order give the same result. Pairs are sorted by encoded key,
    then by encoded value.
    """
    pairs = _split_query(query) if isinstance(query, str) else query
    return _join_query(_encode_pairs(pairs))


def _split_query(query: str) -> list[tuple[str, str]]:
    # AWS decodes and re-encodes bytes, not text: an escape that is not
    # UTF-8 (%FF) must come out as it went in, not as U+FFFD's %EF%BF%BD.
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append(
                (
                    unquote(key, errors="surrogateescape"),
                    unquote(value, errors="surrogateescape"),
                )
            )
    return pairs


def _encode_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(
        (_percent_encode(key), _percent_encode(value)) for key, value in pairs
    )


def _join_query(encoded_pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join([f"{key}={value}" for key, value in encoded_pairs])


def canonical_headers(headers: HeadersInput) -> tuple[str, str]:
    """The canonical headers block and the signed-headers list.

    Names are lower-cased and sorted; values are trimmed and inner runs of
    whitespace (folded lines included) collapse to one space; repeated names
    join their values with commas in the order given. The block ends with a
    newline, as it does inside the canonical request.
    """
    return _header_block(_merge_headers(_items(headers), frozenset(), {}))


def _items(headers: HeadersInput | None) -> Iterable[tuple[str, str]]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def _merge_headers(
    items: Iterable[tuple[str, str]],
    skipped: frozenset[str],
    added: Mapping[str, str],
) -> dict[str, str]:
    # Lower-cased name -> canonical value, leaving out the names in
    # ``skipped`` and in ``added`` (whose values the signer supplies).
    merged: dict[str, str] = {}
    for raw_name, raw_value in items:
        name = raw_name.lower()
        if name in skipped or name in added:
            continue
        value = " ".join(raw_value.split())
        previous = merged.get(name)
        merged[name] = value if previous is None else f"{previous},{value}"
    return merged


def _header_block(merged: Mapping[str, str]) -> tuple[str, str]:
    names = sorted(merged)
    block = "".join([f"{name}:{merged[name]}\n" for name in names])
    return block, ";".join(names)


# The six parts are positional, in the order the specification lists them.
def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers_block: str,
    signed_headers: str,
    payload_hash: str,
) -> str:
    """Join the six canonical parts, one per line."""
    return (
        f"{method.upper()}\n{uri}\n{query}\n{headers_block}\n"
        f"{signed_headers}\n{payload_hash}"
    )


# Step 2: the string to sign.


def credential_scope(datestamp: str, region: str, service: str) -> str:
    """``YYYYMMDD/region/service/aws4_request``."""
    return f"{datestamp}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """The algorithm, the timestamp, the scope and the canonical request's hash."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


# Step 3: the signing key.

_KEY_CACHE: dict[tuple[str, str, str, str], bytes] = {}
_KEY_CACHE_SIZE = 64


def signing_key(secret: str, datestamp: str, region: str, service: str) -> bytes:
    """Derive the day's signing key: HMAC chain over date, region, service.

    Keys are cached per (secret, date, region, service): deriving one costs
    four HMACs, and a process signs with the same few keys all day. The
    cache holds at most a few dozen keys and is emptied when full.
    """
    cache_key = (secret, datestamp, region, service)
    key = _KEY_CACHE.get(cache_key)
    if key is None:
        key = _hmac(("AWS4" + secret).encode(), datestamp)
        key = _hmac(key, region)
        key = _hmac(key, service)
        key = _hmac(key, "aws4_request")
        if len(_KEY_CACHE) >= _KEY_CACHE_SIZE:
            _KEY_CACHE.clear()
        _KEY_CACHE[cache_key] = key
    return key


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode(), "sha256")


# Step 4: the signature.


def signature(key: bytes, to_sign: str) -> str:
    """The lower-case hex HMAC-SHA256 of the string to sign."""
    return _hmac(key, to_sign).hex()


# Putting the steps together.


# A plain class rather than a NamedTuple, for import time (see _value).
class SigningSteps(Value):
    """Every intermediate result of one signing, for tests and debugging.

    ``headers`` are the headers to add (header signing) and ``url`` the URL
    to use (the presigned URL, or the input URL for header signing). The
    canonical request and the URL may contain the session token, so the
    ``repr`` shows neither.
    """

    __slots__ = (
        "canonical_request",
        "headers",
        "signature",
        "signed_headers",
        "string_to_sign",
        "url",
    )
    _fields = (
        "canonical_request",
        "string_to_sign",
        "signature",
        "signed_headers",
        "headers",
        "url",
    )

    def __init__(
        self,
        canonical_request: str,
        string_to_sign: str,
        signature: str,
        signed_headers: str,
        headers: dict[str, str],
        url: str,
    ) -> None:
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign
        self.signature = signature
        self.signed_headers = signed_headers
        self.headers = headers
        self.url = url

    def __repr__(self) -> str:
        return (
            f"SigningSteps(string_to_sign={self.string_to_sign!r}, "
            f"signed_headers={self.signed_headers!r})"
        )


# A plain class rather than a NamedTuple: creating a NamedTuple class costs
# about 0.2 ms of import time.
class _Target:
    """What signing needs from a URL, computed once per URL."""

    __slots__ = ("host", "parts", "query", "query_pairs", "uri")

    def __init__(
        self,
        parts: SplitResult,
        host: str,
        uri: str,
        query_pairs: tuple[tuple[str, str], ...],
        query: str,
    ) -> None:
        self.parts = parts
        self.host = host  # the Host header the request carries
        self.uri = uri  # the canonical URI
        self.query_pairs = query_pairs  # encoded and sorted
        self.query = query  # the canonical query string


# A bridge sends nearly every request to the same URL (one runtime, one
# qualifier) or to a few, so the work that depends on the URL alone is done
# once per URL. The cache is bounded; URLs are not secret.
@lru_cache(maxsize=256)
def _target(url: str, normalize_path: bool) -> _Target:
    parts = urlsplit(url)
    pairs = tuple(_encode_pairs(_split_query(parts.query)))
    return _Target(
        parts,
        _host(parts),
        canonical_uri(parts.path, normalize=normalize_path),
        pairs,
        _join_query(pairs),
    )


def header_signing_steps(
    method: str,
    url: str,
    headers: HeadersInput | None = None,
    body: bytes = b"",
    *,
    credentials: Credentials,
    region: str,
    service: str,
    now: float | datetime | None = None,
    payload_hash: str | None = None,
    content_sha256_header: bool = False,
    normalize_path: bool = True,
    sign_session_token: bool = True,
) -> SigningSteps:
    """Sign with an ``Authorization`` header; see :func:`sign_headers`.

    With ``sign_session_token=False`` the session token is still returned in
    ``X-Amz-Security-Token`` but left out of the signature, as some services
    (and the SigV4 test suite's "sts-header-after" cases) expect.
    """
    amz_date, datestamp = _timestamps(now)
    target = _target(url, normalize_path)
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    token = credentials.session_token

    # The headers the signer adds are signed too (lower-case names here).
    added = {"x-amz-date": amz_date}
    if content_sha256_header:
        added["x-amz-content-sha256"] = payload_hash
    if token and sign_session_token:
        added["x-amz-security-token"] = token
    merged = _merge_headers(_items(headers), UNSIGNED_HEADERS, added)
    if "host" not in merged:
        merged["host"] = target.host
    merged.update(added)
    block, signed = _header_block(merged)

    canonical = canonical_request(
        method, target.uri, target.query, block, signed, payload_hash
    )
    scope = credential_scope(datestamp, region, service)
    to_sign = string_to_sign(amz_date, scope, canonical)
    key = signing_key(credentials.secret_access_key, datestamp, region, service)
    sig = signature(key, to_sign)

    result = {"X-Amz-Date": amz_date}
    if content_sha256_header:
        result["X-Amz-Content-Sha256"] = payload_hash
    if token:
        result["X-Amz-Security-Token"] = token
    result["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={sig}"
    )
    return SigningSteps(canonical, to_sign, sig, signed, result, url)


def sign_headers(
    method: str,
    url: str,
    headers: HeadersInput | None = None,
    body: bytes = b"",
    *,
    credentials: Credentials,
    region: str,
    service: str,
    now: float | datetime | None = None,
    payload_hash: str | None = None,
    content_sha256_header: bool = False,
    normalize_path: bool = True,
) -> dict[str, str]:
    """Return the headers that sign this request with SigV4.

    ``url`` is the full URL as it will be sent (path already percent-encoded,
    query in any order). ``headers`` are the headers that will be sent and
    should be signed (``Host`` is taken from the URL when absent; the
    headers in :data:`UNSIGNED_HEADERS` are skipped). The payload hash is
    ``payload_hash`` when given (for example :data:`UNSIGNED_PAYLOAD`), else
    the SHA-256 of ``body``. ``now`` is a Unix time or an aware datetime;
    left out, the clock is read.

    The result holds ``X-Amz-Date``, ``Authorization``, ``X-Amz-Security-Token``
    when the credentials carry a token, and ``X-Amz-Content-Sha256`` when
    ``content_sha256_header`` is set. The caller's objects are not changed.

    Raises :class:`~agentcore_bridge.exceptions.ValidationError` when ``now``
    is a naive datetime or outside 1970 to 9999, and ``ValueError`` when the
    URL's port is not a number.
    """
    return header_signing_steps(
        method,
        url,
        headers,
        body,
        credentials=credentials,
        region=region,
        service=service,
        now=now,
        payload_hash=payload_hash,
        content_sha256_header=content_sha256_header,
        normalize_path=normalize_path,
    ).headers


def query_signing_steps(
    method: str,
    url: str,
    headers: HeadersInput | None = None,
    body: bytes = b"",
    *,
    credentials: Credentials,
    region: str,
    service: str,
    expires: int = 300,
    now: float | datetime | None = None,
    payload_hash: str | None = None,
    normalize_path: bool = True,
    sign_session_token: bool = True,
) -> SigningSteps:
    """Sign with query parameters; see :func:`presign_url`.

    With ``sign_session_token=False`` the session token is still added to
    the URL but left out of the signature.
    """
    # X-Amz-Expires is a whole number of seconds: a float would be written
    # as "30.5", which AWS refuses when the URL is used, not here.
    if (
        isinstance(expires, bool)
        or not isinstance(expires, int)
        or not 1 <= expires <= 604800
    ):
        raise ValidationError(
            "expires", "a whole number of seconds between 1 and 604800 (7 days)"
        )
    amz_date, datestamp = _timestamps(now)
    target = _target(url, normalize_path)
    if any(key in _QUERY_AUTH_PARAMS for key, _ in target.query_pairs):
        # A URL presigned before (one about to expire, say): its old
        # parameters would be sent twice and signed, and AWS would refuse
        # it. They are replaced, as botocore's presigner replaces them.
        target = _target(_without_query_auth(target.parts), normalize_path)
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    token = credentials.session_token
    scope = credential_scope(datestamp, region, service)

    merged = _merge_headers(_items(headers), UNSIGNED_HEADERS, {})
    if "host" not in merged:
        merged["host"] = target.host
    block, signed = _header_block(merged)

    # The authentication parameters, encoded once for both the canonical
    # query string and the URL. Their names need no encoding.
    auth_params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", _percent_encode(f"{credentials.access_key_id}/{scope}")),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", _percent_encode(signed)),
    ]
    encoded_token = _percent_encode(token) if token else ""
    if token and sign_session_token:
        auth_params.append(("X-Amz-Security-Token", encoded_token))

    canonical = canonical_request(
        method,
        target.uri,
        _join_query(sorted([*target.query_pairs, *auth_params])),
        block,
        signed,
        payload_hash,
    )
    to_sign = string_to_sign(amz_date, scope, canonical)
    key = signing_key(credentials.secret_access_key, datestamp, region, service)
    sig = signature(key, to_sign)

    # The caller's own parameters keep their order and encoding; the
    # authentication parameters follow, the signature last.
    extra = _join_query(auth_params)
    if token and not sign_session_token:
        extra += f"&X-Amz-Security-Token={encoded_token}"
    extra += f"&X-Amz-Signature={sig}"
    parts = target.parts
    query = f"{parts.query}&{extra}" if parts.query else extra
    signed_url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return SigningSteps(canonical, to_sign, sig, signed, {}, signed_url)


#: The query parameters of query-string authentication, which presigning
#: adds (their names need no percent-encoding).
_QUERY_AUTH_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
    }
)


def _without_query_auth(parts: SplitResult) -> str:
    # The caller's other parameters keep their order and spelling.
    kept = [
        part
        for part in parts.query.split("&")
        if unquote(part.partition("=")[0]) not in _QUERY_AUTH_PARAMS
    ]
    return urlunsplit(parts._replace(query="&".join(kept), fragment=""))


def presign_url(
    method: str,
    url: str,
    headers: HeadersInput | None = None,
    body: bytes = b"",
    *,
    credentials: Credentials,
    region: str,
    service: str,
    expires: int = 300,
    now: float | datetime | None = None,
    payload_hash: str | None = None,
    normalize_path: bool = True,
) -> str:
    """Return ``url`` with SigV4 query-string authentication added.

    The URL is valid for ``expires`` seconds from ``now``. ``headers`` are
    the headers the request will carry that must be signed (``Host``, taken
    from the URL, always is). The session token, when there is one, goes in
    ``X-Amz-Security-Token`` and is signed. A URL that was presigned before
    is presigned afresh: its old authentication parameters are replaced.
    Anyone holding the URL can use it until it expires: hand it only to the
    party meant to connect.

    Raises :class:`~agentcore_bridge.exceptions.ValidationError` when
    ``expires`` is not a whole number from 1 to 604800 seconds, or ``now``
    is a naive datetime or outside 1970 to 9999.
    """
    return query_signing_steps(
        method,
        url,
        headers,
        body,
        credentials=credentials,
        region=region,
        service=service,
        expires=expires,
        now=now,
        payload_hash=payload_hash,
        normalize_path=normalize_path,
    ).url


def _timestamps(now: float | datetime | None) -> tuple[str, str]:
    if now is None:
        now = time.time()
    elif isinstance(now, datetime):
        if now.utcoffset() is None:
            raise ValidationError("now", "a timezone-aware datetime or a Unix time")
        now = now.timestamp()
    # X-Amz-Date holds a four-digit year; outside 1970 to 9999 the text
    # would be malformed ("-2971904..."), and NaN or infinity would fail
    # inside the time module with a message that names no argument.
    if not 0 <= now < _YEAR_10000:
        raise ValidationError("now", "a Unix time from 1970 to the year 9999")
    amz_date = _amz_date(math.floor(now))
    return amz_date, amz_date[:8]


_YEAR_10000 = 253402300800  # 10000-01-01T00:00:00Z as a Unix time


@lru_cache(maxsize=8)
def _amz_date(second: int) -> str:
    # ISO 8601 basic format in UTC; the same text for every signature made
    # within one second.
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))


def _host(parts: SplitResult) -> str:
    hostname = parts.hostname or ""
    port = parts.port
    if ":" in hostname:
        hostname = f"[{hostname}]"
    if port is None or _DEFAULT_PORTS.get(parts.scheme) == port:
        return hostname
    return f"{hostname}:{port}"
