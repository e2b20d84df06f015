"""Warm pools: a warmer ping for N keeps N environments warm, a plain ping one.

Runs the bridge's Lambda handler behind the local API Gateway emulator,
whose execution environments are real worker processes and which answers
the Lambda Invoke API for the function it runs, so the warmer's fan-out
really reaches other environments. Each round of each scenario:

1. retires every environment, as a deployment does: nothing is warm;
2. invokes the function once through the Lambda Invoke API, as a schedule
   would, with either the warmer ping ``{"agentcore_bridge_warmer":
   {"concurrency": N}}`` or a plain scheduled event (the classic warmer,
   one environment);
3. counts the environments alive;
4. connects N clients one after the other, then sends their N first
   messages at the same moment, and counts the cold starts those messages
   caused (the emulator's ``cold_starts``) and the time each took to its
   first chunk.

The demo agent streams one word every ``--word-delay`` seconds, so the N
invocations overlap and each needs an environment of its own.

    .venv/bin/python benchmarks/warmpool.py [--concurrency 4] [--rounds 3]
        [--json | --markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from _stack import Answer, Stack, invoke_frame, read_answer, servers
from agentcore_bridge.credentials import Credentials
from agentcore_bridge.sync.lambda_api import LambdaClient

HANDLER = "agentcore_bridge.awslambda:handler"
PLAIN = "plain scheduled ping"
FUNCTION = "local-websocket-handler"
SECRET = "warm-pool-benchmark-session-secret-0123456789"


def warmer_event(concurrency: int | None) -> dict[str, Any]:
    """The warmer ping for ``concurrency``, or a plain scheduled event."""
    if concurrency is None:
        return {
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "detail": {},
        }
    return {"agentcore_bridge_warmer": {"concurrency": concurrency}}


def wait_for_no_environments(stack: Stack, timeout: float = 20.0) -> None:
    stack.retire_environments()
    deadline = time.monotonic() + timeout
    while stack.apigw_stats()["environments_alive"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the environments did not stop")
        time.sleep(0.05)


async def first_messages(stack: Stack, clients: int) -> tuple[list[Answer], int]:
    """Connect ``clients`` one by one, then send their first messages at once.

    Returns the answers and the cold starts they caused, counted once every
    environment is idle again and before the clients disconnect (a
    ``$disconnect`` arriving while the handlers still return would need an
    environment of its own).
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        sockets = []
        answers = []
        try:
            for _ in range(clients):
                answer = Answer(connecting=time.monotonic())
                sockets.append(await session.ws_connect(stack.ws_url or ""))
                answer.connected = time.monotonic()
                answers.append(answer)
            before = (await loop.run_in_executor(None, stack.apigw_stats))[
                "cold_starts"
            ]

            async def one(ws: Any, answer: Answer, index: int) -> Answer:
                answer.sent = time.monotonic()
                await ws.send_str(invoke_frame(f"m{index}", "warm or cold?"))
                return await read_answer(ws, answer, f"m{index}")

            pairs = enumerate(zip(sockets, answers, strict=True))
            await asyncio.gather(*(one(ws, a, i) for i, (ws, a) in pairs))
            while True:
                stats = await loop.run_in_executor(None, stack.apigw_stats)
                if not stats["environments_busy"]:
                    break
                await asyncio.sleep(0.02)
            return answers, stats["cold_starts"] - before
        finally:
            for ws in sockets:
                await ws.close()


def run_scenario(
    stack: Stack, lambda_client: LambdaClient, ping: int | None, clients: int
) -> dict[str, Any]:
    wait_for_no_environments(stack)
    pinged = time.monotonic()
    result = lambda_client.invoke(FUNCTION, warmer_event(ping))
    ping_ms = (time.monotonic() - pinged) * 1000
    warm = stack.apigw_stats()["environments_alive"]

    answers, cold = asyncio.run(first_messages(stack, clients))
    failed = [a.error for a in answers if a.error]
    if failed:
        raise RuntimeError(f"invocations failed: {failed}")
    first = sorted((a.first_chunk - a.sent) * 1000 for a in answers)
    return {
        "ping_answer": result.payload,
        "ping_ms": ping_ms,
        "warm_environments": warm,
        "cold_starts": cold,
        "first_chunk_ms": first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4, metavar="N")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--word-delay", type=float, default=0.05)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON only")
    output.add_argument(
        "--markdown", action="store_true", help="print the table of docs/cold-start.md"
    )
    args = parser.parse_args()
    n = args.concurrency

    scenarios = {f"warmer ping, concurrency {n}": n, PLAIN: None}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    with servers(
        word_delay=args.word_delay,
        apigw_handler=HANDLER,
        apigw_env={"BRIDGE_SESSION_SECRET": SECRET},
        max_concurrency=2 * n + 2,
    ) as stack:
        keys = stack.credentials
        lambda_client = LambdaClient(
            region=stack.region,
            endpoint_url=stack.apigw_url,
            credentials=Credentials(keys["access_key_id"], keys["secret_access_key"]),
        )
        for index in range(args.rounds):
            order = list(scenarios.items())
            if index % 2:
                order.reverse()
            for name, ping in order:
                results[name].append(run_scenario(stack, lambda_client, ping, n))
        lambda_client.close()

    summary = {
        name: {
            "warm_environments": [r["warm_environments"] for r in rounds],
            "cold_starts": [r["cold_starts"] for r in rounds],
            "first_chunk_median_ms": statistics.median(
                ms for r in rounds for ms in r["first_chunk_ms"]
            ),
            "first_chunk_max_ms": statistics.median(
                max(r["first_chunk_ms"]) for r in rounds
            ),
            "ping_ms": [r["ping_ms"] for r in rounds],
        }
        for name, rounds in results.items()
    }
    if args.json:
        document = {
            "nproc": os.cpu_count(),
            "concurrency": n,
            "rounds": results,
            "summary": summary,
        }
        print(json.dumps(document, indent=2))
        return
    if args.markdown:
        print_markdown(summary, n, args)
        return
    print(
        f"{n} clients send their first message at the same moment; "
        f"{args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    print(
        f"{'':28}{'warm envs':>10}{'cold starts':>13}"
        f"{'first chunk median':>20}{'slowest':>10}"
    )
    for name, row in summary.items():
        warm = "/".join(str(v) for v in row["warm_environments"])
        cold = "/".join(str(v) for v in row["cold_starts"])
        median, slowest = row["first_chunk_median_ms"], row["first_chunk_max_ms"]
        print(f"{name:28}{warm:>10}{cold:>13}{median:17.0f} ms{slowest:7.0f} ms")
    for name, row in summary.items():
        low, high = min(row["ping_ms"]), max(row["ping_ms"])
        print(f"{name}: the ping took {low:.0f} to {high:.0f} ms to answer")


def print_markdown(
    summary: dict[str, dict[str, Any]], n: int, args: argparse.Namespace
) -> None:
    """The warm-pool table of docs/cold-start.md."""
    print(
        f"{n} clients, their {n} first messages sent at the same moment; "
        f"{args.rounds} rounds per ping, {os.cpu_count()} CPUs, the demo agent "
        f"streaming a word every {args.word_delay * 1000:g} ms:\n"
    )
    print(
        f"| ping | warm environments after it | cold starts among the {n} "
        "first messages | first chunk, median | slowest | the ping answered in |"
    )
    print("|---|---|---|---:|---:|---:|")
    for name, row in summary.items():
        ping = (
            "a plain scheduled event (the classic warmer)"
            if name == PLAIN
            else f'`{{"agentcore_bridge_warmer": {{"concurrency": {n}}}}}`'
        )
        low, high = min(row["ping_ms"]), max(row["ping_ms"])
        print(
            f"| {ping} | {', '.join(str(v) for v in row['warm_environments'])} "
            f"| {', '.join(str(v) for v in row['cold_starts'])} "
            f"| {row['first_chunk_median_ms']:.0f} ms "
            f"| {row['first_chunk_max_ms']:.0f} ms | {low:.0f} to {high:.0f} ms |"
        )


if __name__ == "__main__":
    main()
