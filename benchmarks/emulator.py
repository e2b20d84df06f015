"""What the AgentCore emulator adds to a call, against calling the agent directly.

Runs the demo agent and the emulator in front of it on loopback, then times
the same streamed invocation both ways with a keep-alive ``http.client``
connection: the time to the first event and to the end of the answer.
Through the emulator each call is also SigV4-signed and verified, so the
ratio is the whole cost of going through it. Prints medians over several
rounds and the ratios emulator / direct.

    .venv/bin/python benchmarks/emulator.py [--calls 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

from agentcore_bridge.agentcore import SESSION_ID_HEADER
from agentcore_bridge.local.agentcore import (
    DEFAULT_RUNTIME_ARN,
    LOCAL_CREDENTIALS,
    EmulatorConfig,
    create_emulator_app,
)
from agentcore_bridge.local.demo_agent import create_demo_agent_app
from agentcore_bridge.sigv4 import sign_headers

BODY = json.dumps({"prompt": "one two three four five"}).encode()
SESSION = "benchmark-session-000000000000000000000"


def serve_in_background(apps: list[web.Application]) -> list[int]:
    """Serve ``apps`` on one event loop in a daemon thread; return their ports."""
    loop = asyncio.new_event_loop()
    ports: list[int] = []
    ready = threading.Event()

    async def start() -> None:
        for app in apps:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            ports.append(runner.addresses[0][1])

    def run() -> None:
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    return ports


def timed_calls(
    port: int, path: str, headers: Callable[[], dict[str, str]], calls: int
) -> tuple[float, float]:
    """Median seconds to the first event and to the end, over ``calls`` calls."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    first, whole = [], []
    for _ in range(calls):
        started = time.perf_counter()
        connection.request("POST", path, body=BODY, headers=headers())
        response = connection.getresponse()
        response.readline()
        first.append(time.perf_counter() - started)
        response.read()
        whole.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(first), statistics.median(whole)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    agent = create_demo_agent_app(word_delay=0)
    agent_port = serve_in_background([agent])[0]
    emulator = create_emulator_app(
        EmulatorConfig(agent_url=f"http://127.0.0.1:{agent_port}")
    )
    emulator_port = serve_in_background([emulator])[0]

    emulator_path = f"/runtimes/{quote(DEFAULT_RUNTIME_ARN, safe='')}/invocations"
    emulator_url = f"http://127.0.0.1:{emulator_port}{emulator_path}"

    def direct_headers() -> dict[str, str]:
        return {"Content-Type": "application/json", SESSION_ID_HEADER: SESSION}

    def signed_headers() -> dict[str, str]:
        headers = direct_headers()
        headers.update(
            sign_headers(
                "POST",
                emulator_url,
                headers,
                BODY,
                credentials=LOCAL_CREDENTIALS,
                region="us-west-2",
                service="bedrock-agentcore",
            )
        )
        return headers

    # Warm both paths (connections, the emulator's session) before timing.
    timed_calls(agent_port, "/invocations", direct_headers, 20)
    timed_calls(emulator_port, emulator_path, signed_headers, 20)

    direct_first, direct_whole, via_first, via_whole = [], [], [], []
    for _ in range(args.rounds):
        first, whole = timed_calls(
            agent_port, "/invocations", direct_headers, args.calls
        )
        direct_first.append(first)
        direct_whole.append(whole)
        first, whole = timed_calls(
            emulator_port, emulator_path, signed_headers, args.calls
        )
        via_first.append(first)
        via_whole.append(whole)

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print(f"{args.rounds} rounds of {args.calls} streamed calls, medians")
    print(f"{'':24}{'direct':>10}{'emulator':>10}{'ratio':>8}")
    for label, direct, via in (
        ("first event (ms)", direct_first, via_first),
        ("whole answer (ms)", direct_whole, via_whole),
    ):
        ratio = ms(via) / ms(direct)
        print(f"{label:24}{ms(direct):10.3f}{ms(via):10.3f}{ratio:8.2f}")


if __name__ == "__main__":
    main()
