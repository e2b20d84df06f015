"""Speed of the client protocol's hot paths, next to plain json in the same run.

Each line times one operation of ours and a reference doing the least any
implementation must do (one json.dumps, one json.loads, one HMAC), as the
median over several rounds, and prints the ratio ours / reference.

    .venv/bin/python benchmarks/protocol.py
"""

from __future__ import annotations

import hmac
import json
import statistics
import timeit
from collections.abc import Callable

from agentcore_bridge.protocol import (
    Reassembler,
    encode_chunk,
    parse_client_frame,
    split_frame,
)
from agentcore_bridge.sessions import SessionTokens, new_session_id

ROUNDS = 7


def per_call(function: Callable[[], object], number: int) -> float:
    times = timeit.repeat(function, number=number, repeat=ROUNDS)
    return statistics.median(times) / number


def report(name: str, ours: float, reference: float, unit: str = "us") -> None:
    scale = 1e6 if unit == "us" else 1e3
    print(
        f"{name:<38} ours {ours * scale:9.2f} {unit}   "
        f"reference {reference * scale:9.2f} {unit}   ratio {ours / reference:5.2f}"
    )


def main() -> None:
    data = {"delta": "The quick brown fox jumps over the lazy dog. "}
    report(
        "encode_chunk (small)",
        per_call(lambda: encode_chunk("q-1", 17, data), 20000),
        per_call(
            lambda: json.dumps(
                {"type": "chunk", "id": "q-1", "seq": 17, "data": data},
                separators=(",", ":"),
                ensure_ascii=False,
            ),
            20000,
        ),
    )

    invoke = json.dumps(
        {"type": "invoke", "id": "q-1", "payload": {"prompt": "Hello " * 20}}
    )
    report(
        "parse_client_frame (invoke)",
        per_call(lambda: parse_client_frame(invoke), 20000),
        per_call(lambda: json.loads(invoke), 20000),
    )

    # One MiB of mixed text: ASCII, quotes, newlines, accents, CJK, emoji.
    text = ('Line "one"\n\tcafé 中文 😀 \\ ' * 40000)[: 1 << 20]
    frame = encode_chunk("q-1", 0, text)

    def split_and_join() -> object:
        reassembler = Reassembler()
        joined = None
        for part in split_frame(frame, message_id="m"):
            joined = reassembler.feed(json.loads(part), 0.0)
        return joined

    assert split_and_join() == frame
    report(
        "split_frame 1 MiB at 128 KiB",
        per_call(lambda: split_frame(frame, message_id="m"), 5),
        per_call(lambda: json.dumps(frame, ensure_ascii=False).encode(), 5),
        unit="ms",
    )
    report(
        "split + parse + reassemble 1 MiB",
        per_call(split_and_join, 5),
        per_call(lambda: json.loads(json.dumps(frame, ensure_ascii=False)), 5),
        unit="ms",
    )

    tokens = SessionTokens(b"k" * 32)
    token, _ = tokens.issue(new_session_id(), "alice", 1_700_000_000.0)
    key = b"k" * 32
    report(
        "SessionTokens.verify",
        per_call(lambda: tokens.verify(token, "alice", 1_700_000_001.0), 20000),
        per_call(lambda: hmac.digest(key, token.encode(), "sha256"), 20000),
    )


if __name__ == "__main__":
    main()
