"""Frames of one invocation and the mapping of failures to protocol errors."""

from __future__ import annotations

import json

import pytest

from agentcore_bridge import exceptions as ex
from agentcore_bridge.invocation import InvocationFrames, error_for
from agentcore_bridge.protocol import ERROR_CODES


def test_chunks_are_numbered_and_end_counts_them() -> None:
    frames = InvocationFrames("q1")
    sent = [frames.chunk("a"), frames.chunk({"b": 1}), frames.end()]
    decoded = [json.loads(frame) for frame in sent if frame is not None]
    assert [frame["type"] for frame in decoded] == ["chunk", "chunk", "end"]
    assert [frame["seq"] for frame in decoded] == [0, 1, 2]
    assert decoded[1]["data"] == {"b": 1}
    assert frames.finished


def test_nothing_follows_the_terminal_frame() -> None:
    frames = InvocationFrames("q1")
    assert frames.error("timeout", "late") is not None
    assert frames.chunk("x") is None
    assert frames.end() is None
    assert frames.cancelled() is None
    assert frames.terminal == "error"


def test_cancelled_is_a_terminal_error() -> None:
    frame = json.loads(InvocationFrames("c").cancelled() or "")
    assert frame == {
        "type": "error",
        "id": "c",
        "code": "cancelled",
        "message": "the invocation was cancelled",
        "retryable": False,
    }


def _agentcore(status: int, name: str, retryable: bool) -> ex.AgentCoreError:
    return ex.AgentCoreError(status, name, "details", retryable=retryable)


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (_agentcore(429, "ThrottlingException", True), "rate_limited", True),
        (_agentcore(400, "ValidationException", False), "bad_request", False),
        (_agentcore(413, "PayloadTooLarge", False), "payload_too_large", False),
        (_agentcore(503, "InternalServerException", True), "agent_unavailable", True),
        (_agentcore(424, "RuntimeClientError", False), "agent_error", False),
        (_agentcore(403, "AccessDeniedException", False), "agent_error", False),
        (ex.AgentError("ValueError", "boom"), "agent_error", False),
        (ex.TimeoutError("first_byte", 5.0), "timeout", True),
        (ex.TransportError("reset", response_started=True), "agent_unavailable", False),
        (ex.TransportError("refused"), "agent_unavailable", True),
        (ex.NoCredentialsError(["environment: not set"]), "internal", False),
        (RuntimeError("bug"), "internal", False),
        (ex.FrameError("bad_request", "no id"), "bad_request", False),
    ],
)
def test_failures_map_to_protocol_codes(
    exc: BaseException, code: str, retryable: bool
) -> None:
    got_code, message, got_retryable = error_for(exc)
    assert (got_code, got_retryable) == (code, retryable)
    assert got_code in ERROR_CODES
    assert message


def test_internal_failures_reveal_nothing() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    _, message, _ = error_for(RuntimeError(f"leaked {secret}"))
    assert secret not in message
    _, message, _ = error_for(
        ex.CredentialsFetchError("container", secret, retryable=True)
    )
    assert secret not in message


def test_agent_messages_are_shortened() -> None:
    _, message, _ = error_for(ex.AgentError("E", "x" * 5000))
    assert len(message) < 300
    assert message.endswith("...)")
