"""What a long streamed answer costs in API Gateway messages, coalesced or not.

The whole local stack runs in this process: the demo agent, the AgentCore
emulator, and two API Gateway emulators whose Lambda environments run
``agentcore_bridge.awslambda.handler``, one with the default coalescing
window (``BRIDGE_COALESCE_WINDOW`` unset) and one with coalescing off
(``BRIDGE_COALESCE_WINDOW=0``, one post per frame, as the AWS samples do).
A WebSocket client asks each, in alternating rounds, for the same answer of
``--words`` words streamed at ``--delay`` seconds per word, and counts the
messages it receives. The ratio is the number to read; the time to the
first chunk shows that coalescing does not delay it.

    .venv/bin/python benchmarks/coalescing.py [--words 2000] [--delay 0.003]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import threading
import time

from aiohttp import web
from websockets.asyncio.client import connect

from agentcore_bridge.client import FrameDecoder, encode_invoke
from agentcore_bridge.local.agentcore import (
    DEFAULT_RUNTIME_ARN,
    LOCAL_CREDENTIALS,
    EmulatorConfig,
    create_emulator_app,
)
from agentcore_bridge.local.apigw import ApiGatewayConfig, LocalApiGateway
from agentcore_bridge.local.demo_agent import create_demo_agent_app

#: API Gateway meters messages in 32 KB steps.
METERING_STEP = 32 * 1024


class Stack:
    """Every server on one event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.runners: list[web.AppRunner] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def serve(self, app: web.Application) -> str:
        async def start() -> str:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.runners.append(runner)
            return f"http://127.0.0.1:{runner.addresses[0][1]}"

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result()

    def close(self) -> None:
        async def stop() -> None:
            for runner in reversed(self.runners):
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def gateway(stack: Stack, agentcore_url: str, **env: str) -> LocalApiGateway:
    config = ApiGatewayConfig(
        handler="agentcore_bridge.awslambda:handler",
        code_dir=os.path.dirname(os.path.abspath(__file__)),
        credentials=LOCAL_CREDENTIALS,
        function_timeout=300.0,
        env={
            "AGENTCORE_RUNTIME_ARN": DEFAULT_RUNTIME_ARN,
            "AGENTCORE_ENDPOINT_URL": agentcore_url,
            "BRIDGE_SESSION_SECRET": "benchmark-session-secret-0123456789",
            **env,
        },
        log_stream=open(os.devnull, "w"),  # noqa: SIM115 - lives as long as the run
    )
    emulator = LocalApiGateway(config)
    emulator.set_base_url(stack.serve(emulator.make_app()))
    return emulator


async def one_answer(url: str, words: int, delay: float) -> dict[str, float]:
    """Ask for one answer; count what arrives until its end."""
    decoder = FrameDecoder()
    messages = metered = chunks = 0
    first_chunk = math.nan
    async with connect(url, max_size=None) as ws:
        started = time.perf_counter()
        await ws.send(
            encode_invoke("b", {"prompt": "go", "words": words, "delay": delay})
        )
        ended = False
        while not ended:
            message = await ws.recv()
            assert isinstance(message, str)
            messages += 1
            metered += math.ceil(len(message.encode()) / METERING_STEP)
            for frame in decoder.feed(message, time.monotonic()):
                if frame["type"] == "chunk":
                    if chunks == 0:
                        first_chunk = time.perf_counter() - started
                    chunks += 1
                elif frame["type"] in {"end", "error"}:
                    assert frame["type"] == "end", frame
                    ended = True
        total = time.perf_counter() - started
    return {
        "messages": messages,
        "metered": metered,
        "chunks": chunks,
        "first_chunk_ms": first_chunk * 1000,
        "total_s": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=2000, help="filler words")
    parser.add_argument(
        "--delay", type=float, default=0.003, help="seconds between words"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()

    stack = Stack()
    try:
        agent_url = stack.serve(create_demo_agent_app(word_delay=0.0))
        agentcore_url = stack.serve(
            create_emulator_app(EmulatorConfig(agent_url=agent_url))
        )
        variants = {
            "coalesced (default window)": gateway(stack, agentcore_url),
            "one post per frame (window 0)": gateway(
                stack, agentcore_url, BRIDGE_COALESCE_WINDOW="0"
            ),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        # One answer each first, so that every environment is warm.
        for emulator in variants.values():
            asyncio.run(one_answer(emulator.websocket_url, 5, 0.0))
        for round_number in range(args.rounds):
            order = list(variants.items())
            if round_number % 2:
                order.reverse()
            for name, emulator in order:
                answer = one_answer(emulator.websocket_url, args.words, args.delay)
                results[name].append(asyncio.run(answer))
    finally:
        stack.close()

    summary = {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    coalesced, plain = (summary[name] for name in variants)
    ratio = plain["messages"] / coalesced["messages"]
    if args.json:
        print(json.dumps({"args": vars(args), "results": summary, "ratio": ratio}))
        return
    print(
        f"{args.words} words at {args.delay * 1000:g} ms per word, "
        f"median of {args.rounds} rounds\n"
    )
    print(
        f"{'':<32}{'chunks':>8}{'messages':>10}{'metered':>9}"
        f"{'first chunk':>13}{'total':>9}"
    )
    for name, row in summary.items():
        print(
            f"{name:<32}{row['chunks']:>8.0f}{row['messages']:>10.0f}"
            f"{row['metered']:>9.0f}{row['first_chunk_ms']:>10.1f} ms"
            f"{row['total_s']:>7.2f} s"
        )
    print(f"\nmessages without coalescing / with: {ratio:.1f}x")


if __name__ == "__main__":
    main()
