"""AgentCore Runtime requests, without I/O.

The names and rules here come from the ``bedrock-agentcore`` service model
(API version 2024-02-28): the runtime ARN travels percent-encoded as one path
segment, the session id in a header, the endpoint name in ``qualifier``.
Every value is checked before anything is sent, so a bad one fails here with
a :class:`~agentcore_bridge.exceptions.ValidationError` naming the field and
the rule, instead of as an opaque 400 from AWS.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote

from .exceptions import ValidationError

__all__ = [
    "SERVICE",
    "SESSION_ID_HEADER",
    "USER_ID_HEADER",
    "RuntimeArn",
    "endpoint_url",
    "parse_runtime_arn",
    "runtime_path",
    "validate_qualifier",
    "validate_session_id",
    "validate_user_id",
]

#: The SigV4 signing name and endpoint prefix of the data plane.
SERVICE = "bedrock-agentcore"
SESSION_ID_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_ID_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"

_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):bedrock-agentcore:"
    r"(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"runtime/(?P<runtime_id>[A-Za-z0-9][A-Za-z0-9_-]{0,99})"
)
# The service accepts 33 to 256 characters, but echoes the id back in a
# response header limited to 100 characters of this alphabet; ids outside
# that range work for one call and then cannot be read back.
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{32,99}")
_QUALIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")

_DNS_SUFFIX = {
    "aws": "amazonaws.com",
    "aws-cn": "amazonaws.com.cn",
    "aws-us-gov": "amazonaws.com",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
}


class RuntimeArn(NamedTuple):
    """The parts of an agent runtime ARN."""

    arn: str
    partition: str
    region: str
    account: str
    runtime_id: str


def parse_runtime_arn(arn: str) -> RuntimeArn:
    """Split a runtime ARN into its parts.

    Raises :class:`ValidationError` (field ``agentRuntimeArn``) unless ``arn``
    has the form ``arn:aws:bedrock-agentcore:REGION:ACCOUNT:runtime/ID``.
    """
    match = _ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise ValidationError(
            "agentRuntimeArn",
            "must look like arn:aws:bedrock-agentcore:<region>:<12-digit account>"
            ":runtime/<runtime id>",
        )
    return RuntimeArn(arn, **match.groupdict())


def validate_session_id(value: str, field: str = "runtimeSessionId") -> str:
    """Return ``value`` if it is a usable AgentCore session id.

    The rule: 33 to 100 characters of letters, digits, ``_`` and ``-``,
    starting with a letter or digit.
    """
    if not isinstance(value, str) or _SESSION_ID.fullmatch(value) is None:
        raise ValidationError(
            field,
            "must be 33 to 100 characters of A-Z, a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
        )
    return value


def validate_qualifier(value: str) -> str:
    """Return ``value`` if it is a usable endpoint name (``qualifier``)."""
    if not isinstance(value, str) or _QUALIFIER.fullmatch(value) is None:
        raise ValidationError(
            "qualifier",
            "must be 1 to 100 characters of A-Z, a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
        )
    return value


def validate_user_id(value: str) -> str:
    """Return ``value`` if it can travel in the runtime user id header."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 1024
        or not value.isprintable()
        or not value.isascii()
    ):
        raise ValidationError(
            "runtimeUserId", "must be 1 to 1024 printable ASCII characters"
        )
    return value


def endpoint_url(region: str, partition: str = "aws", *, fips: bool = False) -> str:
    """The data-plane base URL, e.g. ``https://bedrock-agentcore.us-east-1.amazonaws.com``."""
    suffix = _DNS_SUFFIX.get(partition)
    if suffix is None:
        raise ValidationError("partition", f"must be one of {', '.join(_DNS_SUFFIX)}")
    host = f"{SERVICE}-fips" if fips else SERVICE
    return f"https://{host}.{region}.{suffix}"


def runtime_path(arn: str, action: str) -> str:
    """``/runtimes/<ARN encoded as one segment>/<action>``.

    ``action`` is ``invocations``, ``stopruntimesession`` or ``ws``. Every
    reserved character of the ARN (``:`` and ``/``) is percent-encoded, so the
    ARN stays one path segment.
    """
    return f"/runtimes/{quote(arn, safe='')}/{action}"
