"""SigV4 signing speed: agentcore_bridge.sigv4 against botocore, same run.

Signs the request a bridge sends for every client message (an AgentCore
InvokeAgentRuntime POST with a session token and a JSON body) with
:func:`agentcore_bridge.sigv4.sign_headers` and with botocore's
``SigV4Auth.add_auth``, and presigns the AgentCore WebSocket URL with
:func:`~agentcore_bridge.sigv4.presign_url` and ``SigV4QueryAuth.add_auth``.

Each round times ``--number`` signatures with ours, then the same number with
botocore (the order alternates between rounds so neither side always runs
on a warmer cache); the table shows the median over ``--rounds`` rounds in
microseconds per signature and botocore's time divided by ours.

Botocore's request objects are built before its timer starts, so its column
is ``add_auth`` alone. Both sides read the clock, as they do in use. Before
timing, both sign once at a frozen moment and must agree, so the numbers
compare the same work.

Run: ``.venv/bin/python benchmarks/sigv4.py [--rounds 15] [--number 2000] [--json]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, urlsplit

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.sigv4 import presign_url, sign_headers

REGION = "us-west-2"
SERVICE = "bedrock-agentcore"
ARN = f"arn:aws:bedrock-agentcore:{REGION}:123456789012:runtime/my_agent-AbCdE12345"
RUNTIME = (
    f"https://bedrock-agentcore.{REGION}.amazonaws.com/runtimes/{quote(ARN, safe='')}"
)
SESSION_ID = "7f3c9a1e-5b2d-4e8f-9a6c-1d2e3f4a5b6c-conversation-42"
INVOKE_URL = f"{RUNTIME}/invocations?qualifier=DEFAULT"
WS_URL = (
    RUNTIME.replace("https://", "wss://")
    + "/ws?qualifier=DEFAULT&X-Amzn-Bedrock-AgentCore-Runtime-Session-Id="
    + SESSION_ID
)
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "text/event-stream, application/json",
    "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": SESSION_ID,
    "User-Agent": "agentcore-bridge/0.1.0",
}
BODY = json.dumps(
    {"prompt": "Summarise the attached meeting notes in three bullet points."}
).encode()
# An STS session token is several hundred characters long.
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE" + "Ab1+/Cd2" * 100
ACCESS_KEY = "ASIAEXAMPLEEXAMPLE12"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
OURS = Credentials(ACCESS_KEY, SECRET, TOKEN)
THEIRS = BotoCredentials(ACCESS_KEY, SECRET, TOKEN)


def ours_sign(_: object) -> object:
    return sign_headers(
        "POST",
        INVOKE_URL,
        HEADERS,
        BODY,
        credentials=OURS,
        region=REGION,
        service=SERVICE,
    )


def ours_presign(_: object) -> object:
    return presign_url("GET", WS_URL, credentials=OURS, region=REGION, service=SERVICE)


def botocore_sign(request: AWSRequest) -> object:
    botocore.auth.SigV4Auth(THEIRS, SERVICE, REGION).add_auth(request)
    return request


def botocore_presign(request: AWSRequest) -> object:
    signer = botocore.auth.SigV4QueryAuth(THEIRS, SERVICE, REGION, expires=300)
    signer.add_auth(request)
    return request


def invoke_request() -> AWSRequest:
    return AWSRequest("POST", INVOKE_URL, HEADERS, BODY)


def ws_request() -> AWSRequest:
    return AWSRequest("GET", WS_URL)


def check_same_result() -> None:
    """Sign once with each at a frozen moment; stop if they disagree."""
    moment = datetime(2025, 11, 20, 8, 30, 5, tzinfo=timezone.utc)
    with mock.patch.object(
        botocore.auth, "get_current_datetime", lambda: moment.replace(tzinfo=None)
    ):
        signed = botocore_sign(invoke_request())
        presigned = botocore_presign(ws_request())
    ours = sign_headers(
        "POST",
        INVOKE_URL,
        HEADERS,
        BODY,
        credentials=OURS,
        region=REGION,
        service=SERVICE,
        now=moment,
    )
    ours_url = presign_url(
        "GET", WS_URL, credentials=OURS, region=REGION, service=SERVICE, now=moment
    )
    assert isinstance(signed, AWSRequest)
    assert isinstance(presigned, AWSRequest)
    for name, value in ours.items():
        assert signed.headers[name] == value, name
    assert sorted(parse_qsl(urlsplit(ours_url).query)) == sorted(
        parse_qsl(urlsplit(presigned.url).query)
    )


def time_per_call(
    sign: Callable[[Any], object], make: Callable[[], object] | None, number: int
) -> float:
    """Microseconds per call of ``sign`` over ``number`` calls, GC paused."""
    inputs = [make() for _ in range(number)] if make else [None] * number
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for item in inputs:
            sign(item)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed / number * 1e6


def measure(rounds: int, number: int) -> list[dict[str, Any]]:
    cases = [
        ("sign_headers / SigV4Auth", ours_sign, botocore_sign, invoke_request),
        ("presign_url / SigV4QueryAuth", ours_presign, botocore_presign, ws_request),
    ]
    rows = []
    for label, ours, theirs, make in cases:
        for warm_up in (ours, theirs):
            time_per_call(
                warm_up, make if warm_up is theirs else None, max(1, number // 10)
            )
        ours_times: list[float] = []
        theirs_times: list[float] = []
        for round_number in range(rounds):
            pair = [
                (ours_times, ours, None),
                (theirs_times, theirs, make),
            ]
            if round_number % 2:
                pair.reverse()
            for times, sign, maker in pair:
                times.append(time_per_call(sign, maker, number))
        ours_us = statistics.median(ours_times)
        theirs_us = statistics.median(theirs_times)
        rows.append(
            {
                "operation": label,
                "ours_us": round(ours_us, 2),
                "botocore_us": round(theirs_us, 2),
                "ratio": round(theirs_us / ours_us, 2),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=2000, help="signatures per round")
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.number < 1:
        parser.error("--rounds and --number must be at least 1")

    check_same_result()
    rows = measure(args.rounds, args.number)
    machine = {
        "python": platform.python_version(),
        "botocore": botocore.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "rounds": args.rounds,
        "number": args.number,
    }
    if args.json:
        print(json.dumps({"machine": machine, "results": rows}, indent=2))
        return 0

    print(
        f"SigV4, median of {args.rounds} rounds x {args.number} signatures, "
        f"Python {machine['python']}, botocore {machine['botocore']}, "
        f"{machine['cpus']} CPUs"
    )
    print()
    print("| operation | ours (µs) | botocore (µs) | botocore / ours |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['operation']} | {row['ours_us']:.1f} | "
            f"{row['botocore_us']:.1f} | {row['ratio']:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
