"""The exceptions module: its drawn hierarchy, and errors that survive pickling."""

from __future__ import annotations

import copy
import pickle
import re

import pytest

from agentcore_bridge import exceptions
from agentcore_bridge.exceptions import (
    AgentCoreError,
    AgentError,
    AuthenticationError,
    BridgeError,
    CredentialsFetchError,
    FrameError,
    GoneError,
    NoCredentialsError,
    SessionTokenError,
    TimeoutError,
    TransportError,
    ValidationError,
)


def drawn_parents() -> dict[str, str]:
    """Each class of the docstring's drawing, with the class drawn above it."""
    assert exceptions.__doc__ is not None
    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in exceptions.__doc__.splitlines():
        match = re.match(r"((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+Error)\b", line)
        if match is None:
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        del stack[depth - 1 :]
        if stack:
            parents[match.group(2)] = stack[-1]
        stack.append(match.group(2))
    return parents


def test_the_drawing_shows_every_error_under_its_real_base() -> None:
    drawn = drawn_parents()
    classes = {
        name: getattr(exceptions, name)
        for name in exceptions.__all__
        if name != "BridgeError"
    }

    assert set(drawn) == set(classes)
    for name, parent in drawn.items():
        assert classes[name].__bases__[0] is getattr(exceptions, parent), name


ERRORS = [
    ValidationError("AWS_REGION", "must be an AWS region name"),
    NoCredentialsError(["environment: not set"]),
    CredentialsFetchError("container", "did not answer", retryable=True),
    TransportError("connection lost", url="https://h/x", response_started=True),
    TimeoutError("first_byte", 2.5, url="https://h/x"),
    AgentCoreError(429, "ThrottlingException", "slow down", retryable=True),
    GoneError(410, "GoneException", "gone", retryable=False, request_id="r-1"),
    AgentError("ValueError", "bad input"),
    AuthenticationError("no", status=403, challenge="Bearer"),
    FrameError("bad_request", "not JSON", id="7"),
    SessionTokenError("expired", "token expired", id="8"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_errors_survive_pickling_and_copying_with_their_fields(
    error: BridgeError,
) -> None:
    """A process pool sends errors back pickled; copy uses the same protocol."""
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.args == error.args
        assert vars(clone) == vars(error)
        assert clone.retryable == error.retryable
