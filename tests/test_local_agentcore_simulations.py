"""The emulator's simulations: cold starts, idle sessions, quotas, faults.

Delays are checked only from below ("took at least X"): a loaded machine
may always be slower, never faster.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time

import pytest

from agentcore_bridge.local.agentcore import Fault
from agentcore_bridge.sessions import session_fingerprint
from emulator_calls import Answer, call, new_session_id, open_call, stop
from stack import local_stack

PAYLOAD = {"prompt": "hi", "json": True}
STREAM = {"prompt": "one two three four"}


def timed_call(*args: object, **options: object) -> tuple[Answer, float]:
    started = time.monotonic()
    answer = call(*args, **options)  # type: ignore[arg-type]
    return answer, time.monotonic() - started


# Cold starts and session lifetime.


def test_the_first_call_of_a_session_waits_for_the_cold_start() -> None:
    with local_stack(cold_start=0.3) as emulator:
        session_id = new_session_id()
        answer, elapsed = timed_call(emulator, payload=PAYLOAD, session_id=session_id)
        assert answer.status == 200
        assert elapsed >= 0.3
        assert emulator.session_stats(session_id)["cold_starts"] == 1

        warm = call(emulator, payload=PAYLOAD, session_id=session_id)
        assert "Turn 2" in warm.json()["answer"]
        stats = emulator.session_stats(session_id)
        assert (stats["cold_starts"], stats["invocations"]) == (1, 2)
        assert stats["active"]


def test_concurrent_first_calls_share_one_cold_start() -> None:
    with local_stack(cold_start=0.2) as emulator:
        session_id = new_session_id()
        answers: list[Answer] = []

        def invoke() -> None:
            answers.append(call(emulator, payload=PAYLOAD, session_id=session_id))

        threads = [threading.Thread(target=invoke) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status for a in answers] == [200, 200, 200]
        assert emulator.session_stats(session_id)["cold_starts"] == 1


def test_a_stopped_session_starts_cold_again() -> None:
    with local_stack(cold_start=0.2) as emulator:
        session_id = new_session_id()
        call(emulator, payload=PAYLOAD, session_id=session_id)
        assert stop(emulator, session_id).status == 200
        assert not emulator.session_stats(session_id)["active"]

        answer, elapsed = timed_call(emulator, payload=PAYLOAD, session_id=session_id)
        assert answer.status == 200
        assert elapsed >= 0.2
        assert emulator.session_stats(session_id)["cold_starts"] == 2


def test_the_agent_keeps_its_memory_of_a_stopped_session() -> None:
    """Unlike the service, which would start a new microVM, the same agent
    answers the session's next call, so its turn counter goes on."""
    with local_stack() as emulator:
        session_id = new_session_id()
        call(emulator, payload=PAYLOAD, session_id=session_id)
        assert stop(emulator, session_id).status == 200
        answer = call(emulator, payload=PAYLOAD, session_id=session_id)
        assert emulator.session_stats(session_id)["cold_starts"] == 2
        assert answer.json()["turn"] == 2


def test_an_idle_session_expires_and_starts_cold_again() -> None:
    with local_stack(idle_timeout=60) as emulator:
        session_id = new_session_id()
        call(emulator, payload=PAYLOAD, session_id=session_id)
        emulator.advance_clock(30)
        call(emulator, payload=PAYLOAD, session_id=session_id)
        assert emulator.session_stats(session_id)["cold_starts"] == 1

        emulator.advance_clock(61)
        assert not emulator.session_stats(session_id)["active"]
        call(emulator, payload=PAYLOAD, session_id=session_id)
        assert emulator.session_stats(session_id)["cold_starts"] == 2
        assert emulator.stats()["sessions_ended"] == {"idle": 1}


def test_a_session_ends_at_its_maximum_lifetime_even_when_busy() -> None:
    with local_stack(max_lifetime=100) as emulator:
        session_id = new_session_id()
        for _ in range(3):
            call(emulator, payload=PAYLOAD, session_id=session_id)
            emulator.advance_clock(40)
        call(emulator, payload=PAYLOAD, session_id=session_id)
        assert emulator.session_stats(session_id)["cold_starts"] == 2
        assert emulator.stats()["sessions_ended"] == {"lifetime": 1}


def test_a_stream_past_its_sessions_lifetime_is_cut_by_the_next_call() -> None:
    """The clock alone ends nothing: the stream goes on and the stats show the
    session inactive but not ended, until its next call ends it and cuts it."""
    with local_stack(max_lifetime=100) as emulator:
        session_id = new_session_id()
        slow = {"prompt": "hi", "words": 50, "delay": 0.05}
        connection, response = open_call(emulator, payload=slow, session_id=session_id)
        assert response.status == 200
        assert response.read(14) == b'data: "Turn"\n\n'

        emulator.advance_clock(101)
        assert not emulator.session_stats(session_id)["active"]
        assert emulator.stats()["sessions_ended"] == {}
        assert response.read(12) == b'data: " 1"\n\n'

        assert call(emulator, payload=PAYLOAD, session_id=session_id).status == 200
        assert emulator.stats()["sessions_ended"] == {"lifetime": 1}
        with pytest.raises(http.client.IncompleteRead):
            response.read()
        connection.close()


def test_a_cold_start_over_the_init_timeout_fails_with_424() -> None:
    with local_stack(cold_start=30, init_timeout=0.1) as emulator:
        session_id = new_session_id()
        answer = call(emulator, payload=PAYLOAD, session_id=session_id)
        assert (answer.status, answer.error_type) == (424, "RuntimeClientError")
        assert "initialization" in answer.message
        assert not emulator.session_stats(session_id)["active"]


def test_cold_start_can_be_changed_at_run_time() -> None:
    with local_stack() as emulator:
        emulator.configure(cold_start=0.2)
        _, elapsed = timed_call(emulator, payload=PAYLOAD, session_id=new_session_id())
        assert elapsed >= 0.2


# Quotas.


def test_calls_over_the_rate_limit_are_throttled_with_429() -> None:
    # One call per 100 s: the second call in a row is always over the quota.
    with local_stack(rate_limit=0.01) as emulator:
        assert call(emulator, payload=PAYLOAD).status == 200
        answer = call(emulator, payload=PAYLOAD)
        assert (answer.status, answer.error_type) == (429, "ThrottlingException")
        assert emulator.stats()["throttled"] == 1

        emulator.advance_clock(100)
        assert call(emulator, payload=PAYLOAD).status == 200


def test_the_rate_limit_counts_each_endpoint_separately() -> None:
    with local_stack(rate_limit=0.01) as emulator:
        assert call(emulator, payload=PAYLOAD).status == 200
        other = call(emulator, payload=PAYLOAD, query={"qualifier": "beta"})
        assert other.status == 200


def test_new_sessions_over_the_active_session_quota_get_402() -> None:
    with local_stack(max_sessions=1, idle_timeout=60) as emulator:
        first = new_session_id()
        assert call(emulator, payload=PAYLOAD, session_id=first).status == 200
        answer = call(emulator, payload=PAYLOAD, session_id=new_session_id())
        assert (answer.status, answer.error_type) == (
            402,
            "ServiceQuotaExceededException",
        )
        # The warm session still works, and an idle one frees its slot.
        assert call(emulator, payload=PAYLOAD, session_id=first).status == 200
        emulator.advance_clock(61)
        assert (
            call(emulator, payload=PAYLOAD, session_id=new_session_id()).status == 200
        )


# Injected faults.


def test_an_error_fault_fires_on_the_nth_call_only() -> None:
    with local_stack() as emulator:
        emulator.add_fault(
            "error", nth=2, status=503, error_type="InternalServerException"
        )
        statuses = [call(emulator, payload=PAYLOAD).status for _ in range(3)]
        assert statuses == [200, 503, 200]
        answer = emulator.stats()["log"][1]
        assert (answer["status"], answer["error_type"]) == (
            503,
            "InternalServerException",
        )
        assert emulator.stats()["faults_fired"] == 1


def test_an_error_fault_can_repeat_and_target_one_session() -> None:
    with local_stack() as emulator:
        target = new_session_id()
        emulator.add_fault(
            "error",
            repeat=0,
            session_id=target,
            status=409,
            error_type="RetryableConflictException",
        )
        for _ in range(2):
            answer = call(emulator, payload=PAYLOAD, session_id=target)
            assert (answer.status, answer.error_type) == (
                409,
                "RetryableConflictException",
            )
        assert (
            call(emulator, payload=PAYLOAD, session_id=new_session_id()).status == 200
        )


def test_faults_given_at_start_apply() -> None:
    fault = Fault("error", status=500, error_type="InternalServerException")
    with local_stack(faults=[fault]) as emulator:
        assert call(emulator, payload=PAYLOAD).status == 500
        assert call(emulator, payload=PAYLOAD).status == 200


def test_a_fault_on_stop_applies_to_stop_only() -> None:
    with local_stack() as emulator:
        session_id = new_session_id()
        emulator.add_fault("error", operation="stop", status=500)
        assert call(emulator, payload=PAYLOAD, session_id=session_id).status == 200
        assert stop(emulator, session_id).status == 500
        assert stop(emulator, session_id).status == 200


def test_a_drop_fault_closes_the_connection_without_an_answer() -> None:
    with local_stack() as emulator:
        emulator.add_fault("drop")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            call(emulator, payload=PAYLOAD)
        assert call(emulator, payload=PAYLOAD).status == 200
        assert emulator.stats()["log"][0]["outcome"] == "dropped"


def test_a_reset_fault_cuts_the_stream_after_k_events() -> None:
    with local_stack() as emulator:
        emulator.add_fault("reset", after_events=2)
        connection, response = open_call(emulator, payload=STREAM)
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert cut.value.partial == b'data: "Turn"\n\ndata: " 1"\n\n'
        connection.close()


def test_a_reset_fault_cuts_the_stream_after_k_bytes() -> None:
    with local_stack() as emulator:
        emulator.add_fault("reset", after_bytes=10)
        connection, response = open_call(emulator, payload=STREAM)
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert cut.value.partial == b'data: "Tur'
        connection.close()


def test_a_reset_fault_with_zero_events_sends_headers_only() -> None:
    with local_stack() as emulator:
        emulator.add_fault("reset", after_events=0)
        connection, response = open_call(emulator, payload=STREAM)
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert cut.value.partial == b""
        connection.close()


def test_a_slow_first_byte_fault_delays_the_answer() -> None:
    with local_stack() as emulator:
        emulator.add_fault("slow_first_byte", seconds=0.3)
        answer, elapsed = timed_call(emulator, payload=PAYLOAD)
        assert answer.status == 200
        assert elapsed >= 0.3


def test_clearing_faults_stops_them() -> None:
    with local_stack() as emulator:
        emulator.add_fault("error", repeat=0, status=500)
        assert call(emulator, payload=PAYLOAD).status == 500
        emulator.clear_faults()
        assert emulator.faults() == []
        assert call(emulator, payload=PAYLOAD).status == 200
        assert emulator.stats()["faults_fired"] == 1


def test_reset_forgets_sessions_and_counters() -> None:
    with local_stack() as emulator:
        session_id = new_session_id()
        call(emulator, payload=PAYLOAD, session_id=session_id)
        emulator.reset()
        stats = emulator.stats()
        assert stats["sessions"] == {}
        assert stats["requests"] == {}
        call(emulator, payload=PAYLOAD, session_id=session_id)
        assert emulator.session_stats(session_id)["cold_starts"] == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "explode"},
        {"kind": "error", "nth": 0},
        {"kind": "error", "status": 99},
        {"kind": "close", "operation": "invoke"},
        {"kind": "reset", "after_events": -1},
        {"kind": "error", "colour": "red"},
        {"kind": "error", "status": 200},
        {"kind": "error", "status": "500"},
        {"kind": "error", "nth": True},
        {"kind": "error", "error_type": 5},
        {"kind": "error", "error_type": "Bad\r\nX-Injected: 1"},
        {"kind": "error", "message": ["not", "text"]},
        {"kind": "error", "session_id": 5},
        {"kind": "slow_first_byte", "seconds": float("inf")},
        {"kind": "reset", "after_bytes": 1.5},
        {"kind": "close", "operation": "ws", "code": "1011"},
        {"kind": "close", "operation": "ws", "code": 1005},
        {"kind": "close", "operation": "ws", "code": 70000},
        {"kind": "close", "operation": "ws", "reason": "x" * 124},
    ],
)
def test_a_malformed_fault_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Fault.from_json(fields)


def test_logs_name_sessions_by_fingerprint_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Session ids are secrets: the emulator and the demo agent log neither."""
    caplog.set_level(logging.INFO, logger="agentcore_bridge")
    with local_stack() as emulator:
        session_id = new_session_id()
        assert call(emulator, payload=PAYLOAD, session_id=session_id).status == 200
        assert stop(emulator, session_id).status == 200

    messages = [record.getMessage() for record in caplog.records]
    fingerprint = session_fingerprint(session_id)
    assert any(f"session {fingerprint}: cold start" in m for m in messages)
    assert any(f"session {fingerprint} ended (stopped)" in m for m in messages)
    assert any(f"turn 1 of session {fingerprint}" in m for m in messages)
    assert session_id not in caplog.text
