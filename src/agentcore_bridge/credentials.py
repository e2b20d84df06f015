"""AWS credentials: the value type, the providers and a refreshing cache.

Three layers, each usable on its own:

- :class:`Credentials`, an immutable value whose ``repr`` hides the secret
  and the session token. The signer needs nothing else.
- Providers (:class:`CredentialProvider`): each knows one place credentials
  come from. :meth:`~CredentialProvider.load` returns ``None`` when its
  place is not configured and raises when it is configured but fails.
  :class:`EnvironmentProvider` and :class:`ContainerProvider` cover Lambda
  (SnapStart included) and ECS with the standard library alone;
  :class:`BotocoreProvider` hands everything else (profiles, SSO, IMDS, web
  identity) to botocore, which it imports only when it is asked to load.
  :class:`ChainProvider` tries providers in order.
- Sources (:class:`CredentialSource`), what the HTTP clients consume:
  :class:`RefreshingCredentials` caches what a provider returned and
  refreshes it ahead of expiry, from threads and from asyncio tasks, with at
  most one fetch in flight.

Importing this module loads only light standard-library modules: no
botocore, no asyncio, no ``socket`` or ``ssl``. Those are imported by the code
paths that need them, so a Lambda function whose credentials come from the
environment never pays for them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from urllib.parse import SplitResult, urlsplit

from ._lazy import lazy_attributes
from ._value import Value
from .exceptions import (
    ConfigurationError,
    CredentialsError,
    CredentialsFetchError,
    NoCredentialsError,
    ValidationError,
)

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    # Protocols, read from this module at run time through __getattr__.
    from ._interfaces import CredentialProvider, CredentialSource

__all__ = [
    "BotocoreProvider",
    "ChainProvider",
    "ContainerProvider",
    "CredentialProvider",
    "CredentialSource",
    "Credentials",
    "EnvironmentProvider",
    "RefreshingCredentials",
    "StaticProvider",
    "as_source",
    "default_credentials",
    "default_provider",
]

logger = logging.getLogger("agentcore_bridge.credentials")


# A plain class rather than a dataclass or a NamedTuple: importing
# dataclasses (and the inspect module it loads) would cost the Lambda
# adapter's cold start several milliseconds, a NamedTuple class about 0.2 ms.
class Credentials(Value):
    """An AWS access key, its secret, an optional session token and expiry.

    ``expiration`` is a Unix time in seconds, or ``None`` for credentials
    that do not expire. ``repr`` and ``str`` show the access key id only:
    the secret and the token never reach logs through this object.
    """

    __slots__ = ("access_key_id", "expiration", "secret_access_key", "session_token")
    _fields = ("access_key_id", "secret_access_key", "session_token", "expiration")

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expiration: float | None = None,
    ) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.expiration = expiration

    def __repr__(self) -> str:
        token = ", session_token=[hidden]" if self.session_token else ""
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, "
            f"secret_access_key=[hidden]{token}, expiration={self.expiration!r})"
        )

    def __str__(self) -> str:
        return self.__repr__()

    def expires_within(self, seconds: float, now: float) -> bool:
        """Whether these credentials expire less than ``seconds`` after ``now``."""
        return self.expiration is not None and self.expiration - now < seconds


# Shared parsing.


# A string that re compiles on first use: only container credentials carry
# an expiry to parse, and every Lambda cold start imports this module.
_ISO_8601 = (
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


def _parse_iso_8601(text: str) -> float | None:
    """The Unix time of an ISO 8601 date-time, or ``None`` when it is not one.

    Written out rather than left to ``datetime.fromisoformat``, which does
    not accept a trailing ``Z`` before Python 3.11. A time without a zone is
    taken as UTC, as the AWS credential endpoints always mean UTC.
    """
    match = re.fullmatch(_ISO_8601, text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, _, sign, offset_hours, offset_minutes = match.groups()[6:]
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None
    timestamp = moment.timestamp()
    if fraction:
        # float, not int: int() refuses strings of over 4300 digits, and a
        # credentials endpoint decides how many digits it sends.
        timestamp += float(f"0.{fraction}")
    if sign:
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        timestamp -= offset.total_seconds() if sign == "+" else -offset.total_seconds()
    return timestamp


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    # os.environ is read at every load, not captured once: after a SnapStart
    # restore, or in tests, the process environment may have changed.
    return os.environ if environ is None else environ


# Providers.


# Names of environment variables (not secrets, whatever ruff's S105 thinks).
_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105
_SESSION_TOKEN = "AWS_SESSION_TOKEN"  # noqa: S105
_SECURITY_TOKEN = "AWS_SECURITY_TOKEN"  # noqa: S105
_CREDENTIAL_EXPIRATION = "AWS_CREDENTIAL_EXPIRATION"


class EnvironmentProvider:
    """Credentials from the ``AWS_*`` environment variables.

    ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` are required
    together; ``AWS_SESSION_TOKEN`` (or the older ``AWS_SECURITY_TOKEN``)
    and ``AWS_CREDENTIAL_EXPIRATION`` (ISO 8601) are optional. Empty values
    count as unset, as the AWS SDKs treat them. ``environ`` defaults to the
    process environment, read at every :meth:`load`.
    """

    name = "environment"
    missing_reason = f"{_ACCESS_KEY_ID} and {_SECRET_ACCESS_KEY} are not set"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def __repr__(self) -> str:
        return "EnvironmentProvider()"

    def load(self) -> Credentials | None:
        """Read the variables; ``None`` when neither key variable is set.

        Raises :class:`~agentcore_bridge.exceptions.ValidationError` when
        only one of the two key variables is set, or when
        ``AWS_CREDENTIAL_EXPIRATION`` is not an ISO 8601 time.
        """
        environ = _environ(self._environ)
        access_key_id = environ.get(_ACCESS_KEY_ID, "")
        secret_access_key = environ.get(_SECRET_ACCESS_KEY, "")
        if not access_key_id and not secret_access_key:
            return None
        if not access_key_id:
            raise ValidationError(
                _ACCESS_KEY_ID, f"must be set with {_SECRET_ACCESS_KEY}"
            )
        if not secret_access_key:
            raise ValidationError(
                _SECRET_ACCESS_KEY, f"must be set with {_ACCESS_KEY_ID}"
            )

        # AWS_SESSION_TOKEN is the documented name; AWS_SECURITY_TOKEN is an
        # older one that some tools still set, and botocore still reads.
        session_token = environ.get(_SESSION_TOKEN) or environ.get(_SECURITY_TOKEN)

        expiration = None
        expiration_text = environ.get(_CREDENTIAL_EXPIRATION, "")
        if expiration_text:
            expiration = _parse_iso_8601(expiration_text)
            if expiration is None:
                raise ValidationError(
                    _CREDENTIAL_EXPIRATION,
                    "must be an ISO 8601 date-time such as 2030-01-01T00:00:00Z",
                )
        return Credentials(
            access_key_id, secret_access_key, session_token or None, expiration
        )


_RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
_FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
_AUTHORIZATION_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"  # noqa: S105
_AUTHORIZATION_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"  # noqa: S105

#: Where ECS serves task credentials; the relative URI is appended to it.
ECS_CREDENTIALS_HOST = "169.254.170.2"

#: Hosts a full URI may name over plain http, besides loopback addresses:
#: the ECS task endpoint and the EKS Pod Identity agent (IPv4 and IPv6), as
#: the AWS SDKs allow. Anything else must use https, since the answer
#: carries a secret and the request an authorization token.
ALLOWED_HTTP_HOSTS = (ECS_CREDENTIALS_HOST, "169.254.170.23", "fd00:ec2::23")
_PLAIN_HTTP_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", *ALLOWED_HTTP_HOSTS})

# A credentials answer is a few hundred bytes; anything much larger is not
# one, and reading it whole would let a broken endpoint exhaust memory.
_MAX_RESPONSE_BYTES = 64 * 1024
_BACKOFF_SECONDS = 0.05


# A plain class rather than a NamedTuple: creating a NamedTuple class costs
# about 0.2 ms of import time.
class _Endpoint:
    """A validated container credentials URL, split into its parts."""

    __slots__ = ("display", "host", "https", "port", "target")

    def __init__(
        self, *, https: bool, host: str, port: int | None, target: str, display: str
    ) -> None:
        self.https = https
        self.host = host
        self.port = port
        self.target = target
        # Printable in messages: no user info, query or fragment, which could
        # carry secrets.
        self.display = display


class ContainerProvider:
    """Credentials from the ECS / EKS / Lambda container credentials endpoint.

    Applies when one of these variables is set (the first wins, as in the
    AWS SDKs):

    - ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``: ECS; fetched from
      ``ecs_endpoint`` (``http://169.254.170.2``, where ECS serves task
      credentials) followed by the URI.
    - ``AWS_CONTAINER_CREDENTIALS_FULL_URI``: any https URL, or an http URL
      to a loopback address or to one of :data:`ALLOWED_HTTP_HOSTS`. Lambda
      SnapStart and EKS Pod Identity use it. The ``Authorization`` header is
      the content of ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``, read again
      at every fetch because the file is rotated, or else
      ``AWS_CONTAINER_AUTHORIZATION_TOKEN``.

    ``timeout`` bounds each attempt: connecting, sending, and each wait for
    the answer, whose body must arrive within what is left of ``timeout``.
    A failed attempt is retried ``retries`` times after a short growing
    pause, so a silent endpoint costs about ``timeout * (retries + 1)``
    seconds. Refusals (4xx other than 429) and answers that are not
    credentials are not retried.

    ``ecs_endpoint`` changes where relative URIs are resolved; leave it
    alone outside tests (a loopback server standing in for ECS) and
    proxies. Raises :class:`~agentcore_bridge.exceptions.ValidationError`
    for a bad ``timeout``, ``retries`` or ``ecs_endpoint``.
    """

    name = "container"
    missing_reason = f"neither {_RELATIVE_URI} nor {_FULL_URI} is set"

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        ecs_endpoint: str = f"http://{ECS_CREDENTIALS_HOST}",
    ) -> None:
        # Checked here, not at the first fetch, where a float retries or a
        # string timeout would fail with a TypeError far from its cause.
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not (timeout > 0 and math.isfinite(timeout))
        ):
            raise ValidationError("timeout", "must be a positive number of seconds")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValidationError("retries", "must be a whole number, 0 or more")
        _split_endpoint("ecs_endpoint", ecs_endpoint)
        base = urlsplit(ecs_endpoint)
        if (
            base.path not in ("", "/")
            or base.query
            or base.fragment
            or "@" in base.netloc
        ):
            raise ValidationError(
                "ecs_endpoint", "must be a scheme, a host and a port, nothing more"
            )
        self._environ = environ
        self._timeout = timeout
        self._retries = retries
        self._ecs_endpoint = ecs_endpoint.rstrip("/")

    def __repr__(self) -> str:
        return (
            f"ContainerProvider(timeout={self._timeout!r}, retries={self._retries!r})"
        )

    def endpoint_url(self) -> str | None:
        """The URL credentials would be fetched from, or ``None`` if unset.

        Raises :class:`~agentcore_bridge.exceptions.ValidationError` when
        the configured URI is not allowed. The URL is returned without its
        query string and user info, fit for logs.
        """
        endpoint = self._endpoint(_environ(self._environ))
        return None if endpoint is None else endpoint.display

    def load(self) -> Credentials | None:
        """Fetch credentials; ``None`` when no container URI is configured.

        Raises :class:`~agentcore_bridge.exceptions.ValidationError` for a
        disallowed URI or a token that is not a legal header value, and
        :class:`~agentcore_bridge.exceptions.CredentialsFetchError` when the
        endpoint cannot be reached, refuses, or answers something other
        than credentials. Neither message contains the token or the secret.
        """
        environ = _environ(self._environ)
        endpoint = self._endpoint(environ)
        if endpoint is None:
            return None

        for attempt in range(self._retries):
            try:
                return self._attempt(environ, endpoint)
            except CredentialsFetchError as exc:
                if not exc.retryable:
                    raise
                logger.debug(
                    "container credentials attempt %d failed, retrying: %s",
                    attempt + 1,
                    exc.reason,
                )
            time.sleep(_BACKOFF_SECONDS * 2**attempt)
        return self._attempt(environ, endpoint)

    def _attempt(self, environ: Mapping[str, str], endpoint: _Endpoint) -> Credentials:
        # The token is read for each attempt: a token file may have been
        # rotated since the last one.
        headers = {"Accept": "application/json"}
        token = self._authorization_token(environ)
        if token is not None:
            headers["Authorization"] = token
        return self._fetch(endpoint, headers)

    def _endpoint(self, environ: Mapping[str, str]) -> _Endpoint | None:
        relative = environ.get(_RELATIVE_URI, "")
        if relative:
            if not relative.startswith("/"):
                raise ValidationError(_RELATIVE_URI, "must start with '/'")
            return _split_endpoint(_RELATIVE_URI, f"{self._ecs_endpoint}{relative}")
        full = environ.get(_FULL_URI, "")
        if full:
            endpoint = _split_endpoint(_FULL_URI, full)
            if not endpoint.https and not _http_host_allowed(endpoint.host):
                raise ValidationError(
                    _FULL_URI,
                    "an http:// URL must name a loopback address or one of "
                    + ", ".join(str(host) for host in ALLOWED_HTTP_HOSTS)
                    + "; use https:// for any other host",
                )
            return endpoint
        return None

    def _authorization_token(self, environ: Mapping[str, str]) -> str | None:
        path = environ.get(_AUTHORIZATION_TOKEN_FILE, "")
        if path:
            try:
                with open(path, encoding="utf-8") as file:
                    # A trailing newline is what `echo ... > file` leaves.
                    token = file.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise CredentialsFetchError(
                    self.name,
                    f"cannot read {_AUTHORIZATION_TOKEN_FILE} ({type(exc).__name__})",
                    retryable=True,
                ) from exc
            variable = _AUTHORIZATION_TOKEN_FILE
        else:
            token = environ.get(_AUTHORIZATION_TOKEN, "")
            variable = _AUTHORIZATION_TOKEN
            if not token:
                return None
        # A CR or LF would let the token add headers of its own (header
        # injection); the AWS SDKs refuse such tokens the same way.
        if "\r" in token or "\n" in token:
            raise ValidationError(variable, "must not contain CR or LF characters")
        return token

    def _fetch(self, endpoint: _Endpoint, headers: dict[str, str]) -> Credentials:
        # Imported here: only container users pay for the transport.
        from .agentcore import Timeouts  # noqa: PLC0415
        from .exceptions import TimeoutError, TransportError  # noqa: PLC0415
        from .sync.http import HTTPTransport  # noqa: PLC0415

        # Every wait is bounded by the attempt's timeout, and the deadline
        # bounds the attempt as a whole, even against an endpoint that
        # trickles its answer.
        timeout = self._timeout
        timeouts = Timeouts(timeout, timeout, timeout, timeout)
        try:
            with (
                HTTPTransport(timeouts=timeouts) as transport,
                transport.request("GET", _request_url(endpoint), headers) as response,
            ):
                status = response.status
                chunks: list[bytes] = []
                size = 0
                while chunk := response.read1(16384):
                    size += len(chunk)
                    if size > _MAX_RESPONSE_BYTES:
                        raise CredentialsFetchError(
                            self.name,
                            f"{endpoint.display} answered more than "
                            f"{_MAX_RESPONSE_BYTES} bytes",
                            retryable=False,
                        )
                    chunks.append(chunk)
            body = b"".join(chunks)
        except TimeoutError as exc:
            raise CredentialsFetchError(
                self.name,
                f"{endpoint.display} did not answer within {self._timeout:g} s",
                retryable=True,
            ) from exc
        except TransportError as exc:
            cause = exc.__cause__ or exc
            raise CredentialsFetchError(
                self.name,
                f"cannot reach {endpoint.display} ({type(cause).__name__})",
                retryable=True,
            ) from exc

        # The body is never quoted in errors: a 200 carries the secret, and
        # an error answer may echo what was sent.
        if status != 200:
            retryable = status == 429 or status >= 500
            raise CredentialsFetchError(
                self.name,
                f"{endpoint.display} answered HTTP {status}",
                retryable=retryable,
            )
        return self._parse(endpoint, body)

    def _parse(self, endpoint: _Endpoint, body: bytes) -> Credentials:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            # Not chained: the decoder's error keeps the whole document,
            # which may hold the secret next to the syntax error. Arrays
            # nested thousands deep fit in the size limit but exhaust the
            # decoder's recursion limit instead of raising ValueError.
            raise CredentialsFetchError(
                self.name, f"{endpoint.display} answered invalid JSON", retryable=True
            ) from None
        if not isinstance(document, dict):
            raise CredentialsFetchError(
                self.name,
                f"{endpoint.display} answered JSON that is not an object",
                retryable=False,
            )

        missing = [
            key
            for key in ("AccessKeyId", "SecretAccessKey", "Expiration")
            if not isinstance(document.get(key), str) or not document[key]
        ]
        token = document.get("Token")
        if token is not None and not isinstance(token, str):
            missing.append("Token")
        if missing:
            raise CredentialsFetchError(
                self.name,
                f"{endpoint.display} answered without a valid " + ", ".join(missing),
                retryable=False,
            )
        expiration = _parse_iso_8601(document["Expiration"])
        if expiration is None:
            raise CredentialsFetchError(
                self.name,
                f"{endpoint.display} answered an Expiration that is not ISO 8601",
                retryable=False,
            )
        return Credentials(
            document["AccessKeyId"],
            document["SecretAccessKey"],
            token or None,
            expiration,
        )


def _request_url(endpoint: _Endpoint) -> str:
    # The URL without its user info, which is never sent.
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    port = "" if endpoint.port is None else f":{endpoint.port}"
    scheme = "https" if endpoint.https else "http"
    return f"{scheme}://{host}{port}{endpoint.target}"


def _split_endpoint(variable: str, url: str) -> _Endpoint:
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(variable, "must be an http:// or https:// URL") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise ValidationError(
            variable, "must be an http:// or https:// URL with a host"
        )
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    shown_host = f"[{host}]" if ":" in host else host
    shown_port = f":{port}" if port is not None else ""
    return _Endpoint(
        https=scheme == "https",
        host=host,
        port=port,
        target=target,
        display=f"{scheme}://{shown_host}{shown_port}{parts.path}",
    )


def _http_host_allowed(host: str) -> bool:
    # A name other than "localhost" is refused rather than resolved: the
    # check must not depend on DNS, which an attacker may answer.
    if host.lower() in _PLAIN_HTTP_HOSTS:
        # The usual spellings, without importing ipaddress on the first
        # fetch after a SnapStart restore.
        return True
    import ipaddress  # noqa: PLC0415 - only unusual spellings pay for it

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # Compared as addresses, so that every spelling of an IPv6 address (and
    # of 127.0.0.0/8) is recognised.
    allowed = {ipaddress.ip_address(name) for name in ALLOWED_HTTP_HOSTS}
    return address.is_loopback or address in allowed


class StaticProvider:
    """Always the same credentials, given in code."""

    name = "static"
    missing_reason = "no credentials given"

    def __init__(self, credentials: Credentials) -> None:
        if not isinstance(credentials, Credentials):
            raise ConfigurationError("StaticProvider needs a Credentials instance")
        self._credentials = credentials

    def __repr__(self) -> str:
        return f"StaticProvider({self._credentials!r})"

    def load(self) -> Credentials:
        """Return the credentials given at construction."""
        return self._credentials


# When botocore cannot say when refreshable credentials expire, they are
# handed out as if they expired this soon, so that the refreshing cache
# asks botocore again (botocore refreshes them itself when due).
_BOTOCORE_RECHECK_SECONDS = 900.0


class BotocoreProvider:
    """Everything else botocore knows: profiles, SSO, IMDS, web identity ...

    botocore is imported at the first :meth:`load`, never before; the
    botocore credentials it resolves are kept, and later loads ask them for
    their current value, which botocore refreshes when due. botocore reads
    the process environment (``AWS_PROFILE``, ``AWS_CONFIG_FILE``,
    ``AWS_SHARED_CREDENTIALS_FILE`` ...), not a mapping given elsewhere.
    """

    name = "botocore"

    def __init__(self, profile: str | None = None) -> None:
        self._profile = profile
        self._resolved: Any = None
        self._lock = threading.Lock()
        self.missing_reason = "botocore found no credentials" + (
            f" for profile {profile!r}" if profile else ""
        )

    def __repr__(self) -> str:
        return f"BotocoreProvider(profile={self._profile!r})"

    def load(self) -> Credentials | None:
        """Resolve credentials through botocore; ``None`` if it finds none.

        Raises :class:`~agentcore_bridge.exceptions.ValidationError` when
        the profile does not exist, and
        :class:`~agentcore_bridge.exceptions.CredentialsFetchError` when
        botocore fails (an expired SSO session, an unreachable STS ...).
        Only botocore's error class is quoted, not its message, which can
        carry a credential process's output; the original is chained.
        """
        try:
            # botocore costs over 100 ms and about 20 MiB to import: only the
            # fallback pays.
            import botocore.exceptions  # type: ignore[import-untyped]  # noqa: PLC0415
            import botocore.session  # type: ignore[import-untyped]  # noqa: PLC0415
        except ImportError:
            self.missing_reason = "botocore is not installed"
            return None

        with self._lock:
            try:
                if self._resolved is None:
                    session = botocore.session.Session(profile=self._profile)
                    self._resolved = session.get_credentials()
                    if self._resolved is None:
                        return None
                frozen = self._resolved.get_frozen_credentials()
            except botocore.exceptions.ProfileNotFound as exc:
                raise ValidationError(
                    "profile", "names no profile in the AWS config files"
                ) from exc
            except (
                botocore.exceptions.BotoCoreError,
                botocore.exceptions.ClientError,
                # A credential_process that cannot start, a config value
                # botocore cannot parse: raised by botocore untranslated.
                OSError,
                ValueError,
            ) as exc:
                raise CredentialsFetchError(
                    self.name,
                    f"botocore raised {type(exc).__name__}",
                    retryable=True,
                ) from exc
            expiration = _botocore_expiration(self._resolved)
        if not frozen.access_key or not frozen.secret_key:
            return None
        return Credentials(
            frozen.access_key, frozen.secret_key, frozen.token or None, expiration
        )


def _botocore_expiration(resolved: Any) -> float | None:
    # botocore keeps the expiry of refreshable credentials in a private
    # attribute; plain credentials have neither it nor refresh_needed().
    expiry = getattr(resolved, "_expiry_time", None)
    if isinstance(expiry, datetime):
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=timezone.utc)
        return expiry.timestamp()
    if callable(getattr(resolved, "refresh_needed", None)):
        return time.time() + _BOTOCORE_RECHECK_SECONDS
    return None


class ChainProvider:
    """Try providers in order; the first that returns credentials wins.

    A provider that applies but fails stops the chain: its error is raised
    rather than hidden behind a later provider's credentials.
    """

    name = "chain"

    def __init__(self, providers: Sequence[CredentialProvider]) -> None:
        self.providers: tuple[CredentialProvider, ...] = tuple(providers)

    def __repr__(self) -> str:
        return f"ChainProvider({list(self.providers)!r})"

    def load(self) -> Credentials:
        """Return the first provider's credentials.

        Raises :class:`~agentcore_bridge.exceptions.NoCredentialsError`,
        whose ``tried`` names every provider and why it did not apply, when
        none had any; and whatever a provider raised when one failed.
        """
        tried = []
        for provider in self.providers:
            credentials = provider.load()
            if credentials is not None:
                logger.debug("credentials from the %s provider", provider.name)
                return credentials
            reason = getattr(provider, "missing_reason", "found no credentials")
            tried.append(f"{provider.name}: {reason}")
        raise NoCredentialsError(tried)


# The refreshing cache.


class RefreshingCredentials:
    """A :class:`CredentialSource` that caches a provider's credentials.

    Credentials are fetched on first use and again as their expiry nears:

    - more than ``refresh_margin`` seconds before expiry, the cached
      credentials are returned as they are;
    - within ``refresh_margin`` (the advisory window), one caller refreshes
      while the others keep getting the cached credentials; if the refresh
      fails, the cached ones stay in use and the next attempt waits
      :attr:`advisory_retry_interval` seconds;
    - within ``mandatory_margin``, or once expired, every caller waits for
      the refresh, and a failure is raised.

    There is never more than one fetch in flight: threads share one lock,
    and asyncio tasks of one event loop share one task that runs the fetch
    in a worker thread. Credentials without an expiration are fetched once
    and kept until :meth:`invalidate`.
    """

    #: Seconds to wait before retrying a failed advisory refresh.
    advisory_retry_interval = 10.0

    def __init__(
        self,
        provider: CredentialProvider,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 300.0,
        mandatory_margin: float = 60.0,
    ) -> None:
        if not 0 <= mandatory_margin <= refresh_margin:
            raise ValidationError(
                "mandatory_margin", "must be between 0 and refresh_margin"
            )
        self._provider = provider
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._mandatory_margin = mandatory_margin

        self._cached: Credentials | None = None
        # Bumped by invalidate(): a fetch started before it does not refill
        # the cache with what may be the credentials being invalidated.
        self._generation = 0
        self._advisory_retry_at = -math.inf
        self._fetch_lock = threading.Lock()
        self._tasks_lock = threading.Lock()
        self._tasks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Task[Credentials]
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"RefreshingCredentials({self._provider!r})"

    @property
    def provider(self) -> CredentialProvider:
        """The provider credentials are fetched from."""
        return self._provider

    def get(self) -> Credentials:
        """Return credentials, fetching or refreshing them when due.

        Blocks while a fetch is needed (first use, mandatory window), so do
        not call it on an event loop: use :meth:`get_async` there. Raises
        :class:`~agentcore_bridge.exceptions.CredentialsError` (or a
        :class:`~agentcore_bridge.exceptions.ConfigurationError`) when no
        usable credentials can be had.
        """
        cached = self._cached
        now = self._clock()
        if cached is not None and not cached.expires_within(self._refresh_margin, now):
            return cached

        if cached is not None and not cached.expires_within(
            self._mandatory_margin, now
        ):
            # Advisory window: refresh only if nobody else is, and never wait.
            if now < self._advisory_retry_at:
                return cached
            if not self._fetch_lock.acquire(blocking=False):
                return cached
            try:
                return self._refresh_locked()
            finally:
                self._fetch_lock.release()

        with self._fetch_lock:
            return self._refresh_locked()

    async def get_async(self) -> Credentials:
        """Return credentials like :meth:`get`, without blocking the loop.

        The fetch runs in a worker thread, and every task of this event loop
        that needs it awaits the same one. Cancelling one waiter does not
        cancel the fetch for the others. Raises what :meth:`get` raises.
        """
        cached = self._cached
        now = self._clock()
        if cached is not None and not cached.expires_within(self._refresh_margin, now):
            return cached

        import asyncio  # noqa: PLC0415 - loaded by then; the core must not import it

        if cached is not None and not cached.expires_within(
            self._mandatory_margin, now
        ):
            if now >= self._advisory_retry_at:
                self._refresh_task()
            return cached
        return await asyncio.shield(self._refresh_task())

    def invalidate(self) -> None:
        """Drop the cached credentials; the next call fetches new ones.

        Call it after a Lambda SnapStart restore (credentials cached in the
        snapshot belong to another environment) and when AWS answers
        ``ExpiredToken`` or similar. Never blocks.
        """
        self._generation += 1
        self._cached = None
        self._advisory_retry_at = -math.inf
        with self._tasks_lock:
            # Tasks already running finish for their waiters; new callers
            # must not join them, since they may return the old credentials.
            self._tasks.clear()

    def _refresh_task(self) -> asyncio.Task[Credentials]:
        """The running loop's refresh task, started if there is none."""
        import asyncio  # noqa: PLC0415 - loaded by then; the core must not import it

        loop = asyncio.get_running_loop()
        with self._tasks_lock:
            task = self._tasks.get(loop)
            if task is None:
                task = loop.create_task(asyncio.to_thread(self._refresh_blocking))
                self._tasks[loop] = task
                task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Credentials]) -> None:
        with self._tasks_lock:
            loop = task.get_loop()
            if self._tasks.get(loop) is task:
                del self._tasks[loop]
        if not task.cancelled():
            # Marks the error as seen: an advisory refresh nobody awaited has
            # already been logged, and awaiting callers get it themselves.
            task.exception()

    def _refresh_blocking(self) -> Credentials:
        with self._fetch_lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> Credentials:
        """Fetch from the provider; the caller holds ``_fetch_lock``."""
        cached = self._cached
        now = self._clock()
        if cached is not None and not cached.expires_within(self._refresh_margin, now):
            # Another caller refreshed while this one waited for the lock.
            return cached

        generation = self._generation
        try:
            fresh = self._fetch(now)
        except (CredentialsError, ConfigurationError) as exc:
            now = self._clock()
            if cached is None or cached.expires_within(self._mandatory_margin, now):
                raise
            self._advisory_retry_at = now + self.advisory_retry_interval
            logger.warning(
                "refreshing credentials from the %s provider failed; using the "
                "current ones for now: %s",
                self._provider.name,
                exc,
            )
            return cached

        if generation == self._generation:
            self._cached = fresh
            # Credentials that arrive already inside the advisory window
            # (their lifetime is shorter than refresh_margin) would otherwise
            # start a fetch at every call.
            if fresh.expires_within(self._refresh_margin, now):
                self._advisory_retry_at = now + self.advisory_retry_interval
            else:
                self._advisory_retry_at = -math.inf
        return fresh

    def _fetch(self, now: float) -> Credentials:
        fresh = self._provider.load()
        if fresh is None:
            reason = getattr(self._provider, "missing_reason", "found no credentials")
            raise NoCredentialsError([f"{self._provider.name}: {reason}"])
        if fresh.expiration is not None and fresh.expiration <= now:
            raise CredentialsFetchError(
                self._provider.name,
                "returned credentials that have already expired",
                retryable=False,
            )
        if fresh.expires_within(self._mandatory_margin, now):
            logger.warning(
                "the %s provider returned credentials that expire in %.0f s, "
                "within the %g s mandatory margin; every use will fetch again",
                self._provider.name,
                fresh.expiration - now if fresh.expiration is not None else 0,
                self._mandatory_margin,
            )
        logger.debug(
            "fetched credentials %s from the %s provider",
            fresh.access_key_id,
            self._provider.name,
        )
        return fresh


class _StaticSource:
    """A :class:`CredentialSource` that always returns the same credentials."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __repr__(self) -> str:
        return f"_StaticSource({self._credentials!r})"

    def get(self) -> Credentials:
        return self._credentials

    async def get_async(self) -> Credentials:
        return self._credentials

    def invalidate(self) -> None:
        """Nothing to drop: the credentials were given in code."""


def default_provider(
    environ: Mapping[str, str] | None = None, *, static: Credentials | None = None
) -> ChainProvider:
    """The provider chain: environment, container endpoint, static, botocore.

    ``environ`` is what the first two read (default: the process
    environment); botocore always reads the process environment.
    ``static`` credentials, when given, come third: what the platform
    provides (the environment of a Lambda function, an ECS task's role)
    wins over them, and botocore is never reached. Raises
    :class:`~agentcore_bridge.exceptions.ConfigurationError` when
    ``static`` is not a :class:`Credentials`.
    """
    providers: list[CredentialProvider] = [
        EnvironmentProvider(environ),
        ContainerProvider(environ),
    ]
    if static is not None:
        providers.append(StaticProvider(static))
    providers.append(BotocoreProvider())
    return ChainProvider(providers)


def default_credentials(
    environ: Mapping[str, str] | None = None, *, static: Credentials | None = None
) -> RefreshingCredentials:
    """A refreshing source over :func:`default_provider`.

    Nothing is fetched until the first :meth:`~RefreshingCredentials.get`.
    """
    return RefreshingCredentials(default_provider(environ, static=static))


# The methods of CredentialSource (a test keeps the two in step).
_SOURCE_METHODS = ("get", "get_async", "invalidate")


def as_source(
    credentials: Credentials | CredentialSource | None,
) -> CredentialSource:
    """Turn what a client was given into a :class:`CredentialSource`.

    :class:`Credentials` become a source that always returns them, ``None``
    becomes :func:`default_credentials`, and a source is returned as it is.
    Raises :class:`~agentcore_bridge.exceptions.ConfigurationError` for
    anything else.
    """
    if credentials is None:
        return default_credentials()
    if isinstance(credentials, Credentials):
        return _StaticSource(credentials)
    # Any object with the Protocol's methods is a source. They are looked
    # for here, as isinstance would load the Protocol, and typing with it,
    # on a Lambda function's first message.
    if all(callable(getattr(credentials, name, None)) for name in _SOURCE_METHODS):
        return credentials
    raise ConfigurationError(
        "credentials must be Credentials, a CredentialSource or None, "
        f"not {type(credentials).__name__}"
    )


# The Protocols live in ._interfaces, imported on first use: typing is not
# on the Lambda adapter's import path. Only at run time: a type checker
# takes the two names from the imports above, and still reports any name
# this module lacks.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_attributes(
        __name__,
        "agentcore_bridge._interfaces",
        frozenset({"CredentialProvider", "CredentialSource"}),
    )
