"""Check SigV4 signatures the way an AWS front end does, for the emulators.

Pure: the caller passes the parts of a received request exactly as they
came over the wire (method, the raw percent-encoded path, the raw query,
the headers, the body) and the current time; :meth:`SigV4Verifier.verify`
rebuilds the canonical request with the step functions of
:mod:`agentcore_bridge.sigv4` and compares signatures in constant time.

A rejection raises :class:`SignatureError` carrying the HTTP status and
the AWS error name that AWS JSON services answer with:

=====================================  ======  =================================
situation                              status  error name
=====================================  ======  =================================
no Authorization, no query auth        403     MissingAuthenticationTokenException
``Authorization: Bearer`` (SigV4 API)  403     AccessDeniedException
malformed Authorization or parameters  400     IncompleteSignatureException
unknown access key, wrong token        403     UnrecognizedClientException
credentials past their expiration      403     ExpiredTokenException
X-Amz-Date more than 5 minutes off,    403     AccessDeniedException
presigned URL past X-Amz-Expires               ("Signature expired")
wrong scope or signature               403     InvalidSignatureException
=====================================  ======  =================================

Callers other than AgentCore (the ``@connections`` emulator) may map these
to their own service's names; ``reason`` says which case it was.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

from ..credentials import Credentials
from ..sigv4 import (
    ALGORITHM,
    canonical_headers,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    credential_scope,
    signature,
    signing_key,
    string_to_sign,
)

__all__ = ["SigV4Verifier", "SignatureError", "VerifiedRequest"]

_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details."
)
_QUERY_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


class SignatureError(Exception):
    """The request is not authenticated; answer with ``status`` and ``error_type``.

    ``reason`` is a stable keyword for the case (``missing``, ``bearer``,
    ``malformed``, ``unknown_key``, ``bad_token``, ``expired_token``,
    ``expired``, ``not_yet_valid``, ``scope``, ``mismatch``); ``message`` is
    the text AWS sends, safe to return to the client.
    """

    def __init__(self, status: int, error_type: str, reason: str, message: str):
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.message = message
        super().__init__(f"{error_type} ({status}): {message}")


@dataclass(frozen=True)
class VerifiedRequest:
    """Who signed an accepted request, and how.

    ``checked`` is false when the access key was unknown and the verifier
    accepts any credentials: the signature was then not verified.
    """

    access_key_id: str
    presigned: bool
    checked: bool


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    datestamp: str
    region: str
    service: str
    terminator: str
    signed_headers: str
    signature: str
    amz_date: str
    session_token: str | None


class SigV4Verifier:
    """Verifies requests signed for one ``region`` and ``service``.

    ``credentials`` are the key pairs the verifier knows; a key with a
    session token only matches requests that carry that token, and a key
    with an ``expiration`` is refused after it. With ``accept_any`` an
    unknown access key is let through without checking its signature (the
    shape, scope and date are still checked).
    """

    def __init__(
        self,
        credentials: Iterable[Credentials],
        *,
        region: str,
        service: str,
        accept_any: bool = False,
        max_clock_skew: float = 300.0,
        max_presign_expires: int = 604800,
    ) -> None:
        self.credentials = {c.access_key_id: c for c in credentials}
        self.region = region
        self.service = service
        self.accept_any = accept_any
        self.max_clock_skew = max_clock_skew
        self.max_presign_expires = max_presign_expires

    def verify(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        now: float,
    ) -> VerifiedRequest:
        """Check the request's signature; raise :class:`SignatureError` if bad.

        ``raw_path`` and ``raw_query`` are exactly as received (still
        percent-encoded); ``headers`` are every header received, repeated
        names included, in order.
        """
        header_map: dict[str, str] = {}
        for name, value in headers:
            header_map.setdefault(name.lower(), value)
        query = _split_query(raw_query)
        query_names = {name for name, _ in query}
        authorization = header_map.get("authorization")
        presigned = "X-Amz-Algorithm" in query_names

        if authorization is not None and presigned:
            raise SignatureError(
                400,
                "IncompleteSignatureException",
                "malformed",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                "query parameter or the Authorization header should be specified",
            )
        if authorization is not None:
            auth = _parse_authorization(authorization, header_map)
            moment = _parse_amz_date(auth.amz_date)
            self._check_skew(moment, now, auth.amz_date)
            payload_hash = header_map.get("x-amz-content-sha256")
            query_for_signature = raw_query
        elif presigned:
            auth, expires = self._parse_query_auth(dict(query))
            moment = _parse_amz_date(auth.amz_date)
            self._check_presign_window(moment, expires, now, auth.amz_date)
            payload_hash = None
            # Every parameter but the signature itself is signed.
            query_for_signature = "&".join(
                part
                for part in raw_query.split("&")
                if unquote(part.partition("=")[0]) != "X-Amz-Signature"
            )
        else:
            raise SignatureError(
                403,
                "MissingAuthenticationTokenException",
                "missing",
                "Missing Authentication Token",
            )

        self._check_scope(auth)
        known = self.credentials.get(auth.access_key_id)
        if known is None:
            if self.accept_any:
                return VerifiedRequest(auth.access_key_id, presigned, checked=False)
            raise SignatureError(
                403,
                "UnrecognizedClientException",
                "unknown_key",
                "The security token included in the request is invalid.",
            )
        _check_token(known, auth.session_token, now)

        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        signed_names = set(auth.signed_headers.split(";"))
        block, _ = canonical_headers(
            [(name, value) for name, value in headers if name.lower() in signed_names]
        )
        canonical = canonical_request(
            method,
            canonical_uri(raw_path),
            canonical_query_string(query_for_signature),
            block,
            auth.signed_headers,
            payload_hash,
        )
        scope = credential_scope(auth.datestamp, auth.region, auth.service)
        key = signing_key(
            known.secret_access_key, auth.datestamp, auth.region, auth.service
        )
        try:
            to_sign = string_to_sign(auth.amz_date, scope, canonical)
        except UnicodeEncodeError:
            # Header bytes that are not UTF-8 (a server decodes them with
            # surrogate escapes) cannot have been signed as sent.
            to_sign = None
        expected = "" if to_sign is None else signature(key, to_sign)
        if not expected or not hmac.compare_digest(expected, auth.signature):
            raise SignatureError(
                403, "InvalidSignatureException", "mismatch", _SIGNATURE_MISMATCH
            )
        return VerifiedRequest(auth.access_key_id, presigned, checked=True)

    def _parse_query_auth(
        self, params: Mapping[str, str]
    ) -> tuple[_Authorization, int]:
        for name in _QUERY_AUTH_PARAMS:
            if not params.get(name):
                raise SignatureError(
                    400,
                    "IncompleteSignatureException",
                    "malformed",
                    f"AWS query-string parameters must include '{name}'. "
                    "Re-examine the query-string parameters.",
                )
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise _malformed(
                f"Unsupported AWS 'algorithm': '{params['X-Amz-Algorithm']}'"
            )
        expires_text = params["X-Amz-Expires"]
        if not expires_text.isdigit() or not (
            1 <= int(expires_text) <= self.max_presign_expires
        ):
            raise _malformed(
                "X-Amz-Expires must be a whole number of seconds between 1 and "
                f"{self.max_presign_expires}"
            )
        credential = _parse_credential(params["X-Amz-Credential"])
        auth = _Authorization(
            *credential,
            signed_headers=params["X-Amz-SignedHeaders"],
            signature=params["X-Amz-Signature"],
            amz_date=params["X-Amz-Date"],
            session_token=params.get("X-Amz-Security-Token"),
        )
        return auth, int(expires_text)

    def _check_skew(self, moment: datetime, now: float, amz_date: str) -> None:
        current = datetime.fromtimestamp(now, timezone.utc)
        skew = timedelta(seconds=self.max_clock_skew)
        if moment < current - skew:
            raise SignatureError(
                403,
                "AccessDeniedException",
                "expired",
                f"Signature expired: {amz_date} is now earlier than "
                f"{_format(current - skew)} ({_format(current)} - "
                f"{self.max_clock_skew:g} s.)",
            )
        if moment > current + skew:
            raise SignatureError(
                403,
                "AccessDeniedException",
                "not_yet_valid",
                f"Signature not yet current: {amz_date} is still later than "
                f"{_format(current + skew)} ({_format(current)} + "
                f"{self.max_clock_skew:g} s.)",
            )

    def _check_presign_window(
        self, moment: datetime, expires: int, now: float, amz_date: str
    ) -> None:
        current = datetime.fromtimestamp(now, timezone.utc)
        if current > moment + timedelta(seconds=expires):
            raise SignatureError(
                403,
                "AccessDeniedException",
                "expired",
                f"Signature expired: the presigned URL from {amz_date} was valid "
                f"for {expires} s and it is now {_format(current)}",
            )
        if moment > current + timedelta(seconds=self.max_clock_skew):
            raise SignatureError(
                403,
                "AccessDeniedException",
                "not_yet_valid",
                f"Signature not yet current: {amz_date} is later than "
                f"{_format(current)}",
            )

    def _check_scope(self, auth: _Authorization) -> None:
        problem = None
        if auth.datestamp != auth.amz_date[:8]:
            problem = (
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                f"version of date from HTTP: '{auth.datestamp}' != "
                f"'{auth.amz_date[:8]}', from '{auth.amz_date}'."
            )
        elif auth.region != self.region:
            problem = (
                f"Credential should be scoped to a valid region: '{self.region}', "
                f"not '{auth.region}'."
            )
        elif auth.service != self.service:
            problem = (
                f"Credential should be scoped to correct service: '{self.service}'."
            )
        elif auth.terminator != "aws4_request":
            problem = (
                "Credential should be scoped with a valid terminator: 'aws4_request'."
            )
        elif "host" not in auth.signed_headers.split(";"):
            problem = "'Host' must be a 'SignedHeader' in the AWS Authorization."
        if problem is not None:
            raise SignatureError(403, "InvalidSignatureException", "scope", problem)


def _parse_authorization(value: str, headers: Mapping[str, str]) -> _Authorization:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        # A runtime configured for SigV4 refuses OAuth tokens, and the
        # other way round, with this message.
        raise SignatureError(
            403, "AccessDeniedException", "bearer", "Authorization method mismatch"
        )
    if scheme != ALGORITHM:
        raise _malformed(f"Unsupported AWS 'algorithm': '{scheme}'")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field_value = part.strip().partition("=")
        if sep:
            fields[name] = field_value
    for name in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(name):
            raise _malformed(
                f"Authorization header requires '{name}' parameter. "
                "Authorization header requires 'Credential', 'SignedHeaders' "
                "and 'Signature' parameters."
            )
    amz_date = headers.get("x-amz-date")
    if not amz_date:
        raise _malformed(
            "Authorization header requires existence of a 'X-Amz-Date' header."
        )
    return _Authorization(
        *_parse_credential(fields["Credential"]),
        signed_headers=fields["SignedHeaders"],
        signature=fields["Signature"],
        amz_date=amz_date,
        session_token=headers.get("x-amz-security-token"),
    )


def _parse_credential(value: str) -> tuple[str, str, str, str, str]:
    # The access key id comes first and never contains "/"; split from the
    # right so the four scope fields are exact.
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        raise _malformed(
            "Credential must have the form "
            "<access key>/<date>/<region>/<service>/aws4_request."
        )
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def _parse_amz_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, _AMZ_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise _malformed(
            "X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z'."
        ) from None


def _check_token(known: Credentials, token: str | None, now: float) -> None:
    if (token or None) != known.session_token:
        raise SignatureError(
            403,
            "UnrecognizedClientException",
            "bad_token",
            "The security token included in the request is invalid.",
        )
    if known.expiration is not None and now >= known.expiration:
        raise SignatureError(
            403,
            "ExpiredTokenException",
            "expired_token",
            "The security token included in the request is expired",
        )


def _split_query(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _format(moment: datetime) -> str:
    return moment.strftime(_AMZ_DATE_FORMAT)


def _malformed(message: str) -> SignatureError:
    return SignatureError(400, "IncompleteSignatureException", "malformed", message)
