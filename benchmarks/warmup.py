"""Agent warm-up on ``$connect``: how much of the agent's cold start it hides.

Runs the bridge's Lambda handler behind the local API Gateway emulator, in
front of the local AgentCore emulator whose sessions take ``--cold-start``
seconds to start (AgentCore's own cold start for a new session: a microVM
and the agent's initialisation). Every connection gets a new agent
session, so every first message meets that cold start, unless the bridge
started the session when the client connected (``BRIDGE_WARMUP_PAYLOAD``
set: ``$connect`` sends the payload to the agent from another execution
environment and answers at once).

A client connects, waits ``--delay`` seconds (a user typing), sends its
first message and waits for the first chunk. Measured from the start of
the connection: with the warm-up the cold start runs while the user types.
The Lambda environments are warmed by a warmer ping first, so the only
cold start measured is the agent's. The two setups run side by side (two
server processes) and alternate round by round.

    .venv/bin/python benchmarks/warmup.py [--cold-start 3] [--delay 1] [--rounds 3]
        [--json | --markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from contextlib import ExitStack

from _stack import Answer, Stack, invoke_frame, read_answer, servers
from agentcore_bridge.credentials import Credentials
from agentcore_bridge.sync.lambda_api import LambdaClient

HANDLER = "agentcore_bridge.awslambda:handler"
FUNCTION = "local-websocket-handler"
SECRET = "warm-up-benchmark-session-secret-0123456789ab"
WARMUP_PAYLOAD = json.dumps({"prompt": "warm up"})


async def one_client(stack: Stack, delay: float) -> Answer:
    """Connect, wait ``delay`` seconds, send one message, read its answer."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        answer = Answer(connecting=time.monotonic())
        async with session.ws_connect(stack.ws_url or "") as ws:
            answer.connected = time.monotonic()
            await asyncio.sleep(delay)
            answer.sent = time.monotonic()
            await ws.send_str(invoke_frame("first", "hello"))
            return await read_answer(ws, answer, "first")


def warm_environments(stack: Stack, count: int) -> None:
    """Start ``count`` Lambda environments with a warmer ping."""
    keys = stack.credentials
    client = LambdaClient(
        region=stack.region,
        endpoint_url=stack.apigw_url,
        credentials=Credentials(keys["access_key_id"], keys["secret_access_key"]),
    )
    try:
        client.invoke(FUNCTION, {"agentcore_bridge_warmer": {"concurrency": count}})
    finally:
        client.close()


def wait_until_idle(stack: Stack, timeout: float = 60.0) -> None:
    """Wait for every environment to finish (a warm-up may still run)."""
    deadline = time.monotonic() + timeout
    while stack.apigw_stats()["environments_busy"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the environments stayed busy")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-start", type=float, default=3.0, metavar="SECONDS")
    parser.add_argument("--delay", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--rounds", type=int, default=3)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON only")
    output.add_argument(
        "--markdown", action="store_true", help="print the table of docs/cold-start.md"
    )
    args = parser.parse_args()

    setups = {
        "without warm-up": {"BRIDGE_SESSION_SECRET": SECRET},
        "warm-up on $connect": {
            "BRIDGE_SESSION_SECRET": SECRET,
            "BRIDGE_WARMUP_PAYLOAD": WARMUP_PAYLOAD,
        },
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
    agent_cold_starts: dict[str, int] = {}
    with ExitStack() as running:
        stacks = {
            name: running.enter_context(
                servers(
                    cold_start=args.cold_start,
                    apigw_handler=HANDLER,
                    apigw_env=env,
                    max_concurrency=4,
                )
            )
            for name, env in setups.items()
        }
        for stack in stacks.values():
            warm_environments(stack, 3)
        lambda_cold_starts = {
            name: stack.apigw_stats()["cold_starts"] for name, stack in stacks.items()
        }

        for index in range(args.rounds):
            order = list(stacks.items())
            if index % 2:
                order.reverse()
            for name, stack in order:
                wait_until_idle(stack)
                answer = asyncio.run(one_client(stack, args.delay))
                if answer.error:
                    raise RuntimeError(f"{name}: the invocation failed: {answer.error}")
                samples[name].append(
                    {
                        "handshake_ms": (answer.connected - answer.connecting) * 1000,
                        "connect_to_first_chunk_ms": (
                            answer.first_chunk - answer.connecting
                        )
                        * 1000,
                        "message_to_first_chunk_ms": (answer.first_chunk - answer.sent)
                        * 1000,
                    }
                )
        for name, stack in stacks.items():
            wait_until_idle(stack)
            agent_cold_starts[name] = stack.agentcore_stats()["cold_starts"]
            lambda_cold_starts[name] = (
                stack.apigw_stats()["cold_starts"] - lambda_cold_starts[name]
            )

    medians = {
        name: {
            key: statistics.median(sample[key] for sample in rows) for key in rows[0]
        }
        for name, rows in samples.items()
    }
    without, with_warmup = medians["without warm-up"], medians["warm-up on $connect"]
    hidden_ms = (
        without["connect_to_first_chunk_ms"] - with_warmup["connect_to_first_chunk_ms"]
    )
    if args.json:
        document = {
            "nproc": os.cpu_count(),
            "cold_start_s": args.cold_start,
            "delay_s": args.delay,
            "samples": samples,
            "medians": medians,
            "agent_cold_starts": agent_cold_starts,
            "lambda_cold_starts_during_rounds": lambda_cold_starts,
            "hidden_ms": hidden_ms,
        }
        print(json.dumps(document, indent=2))
        return
    if args.markdown:
        print(
            f"Agent cold start {args.cold_start:g} s, first message "
            f"{args.delay:g} s after connecting; medians of {args.rounds} "
            f"connections each, alternating; {os.cpu_count()} CPUs:\n"
        )
        print("| | handshake | connect to first chunk | message to first chunk |")
        print("|---|---:|---:|---:|")
        for name, row in medians.items():
            print(
                f"| {name.replace('$connect', '`$connect`')} "
                f"| {row['handshake_ms']:,.1f} ms "
                f"| {row['connect_to_first_chunk_ms']:,.0f} ms "
                f"| {row['message_to_first_chunk_ms']:,.0f} ms |"
            )
        print(
            f"\nHidden from the user: {hidden_ms:,.0f} ms. Agent cold starts: "
            f"{agent_cold_starts}; Lambda cold starts during the rounds: "
            f"{lambda_cold_starts}."
        )
        return
    print(
        f"agent cold start {args.cold_start:g} s, first message {args.delay:g} s "
        f"after connecting; medians of {args.rounds} connections each"
    )
    print(f"{'':22}{'handshake':>12}{'connect to chunk':>18}{'message to chunk':>18}")
    for name, row in medians.items():
        print(
            f"{name:22}{row['handshake_ms']:9.0f} ms"
            f"{row['connect_to_first_chunk_ms']:15.0f} ms"
            f"{row['message_to_first_chunk_ms']:15.0f} ms"
        )
    print(
        f"agent cold start hidden from the user: {hidden_ms:.0f} ms "
        f"(agent cold starts: {agent_cold_starts}; Lambda cold starts during "
        f"the rounds: {lambda_cold_starts})"
    )


if __name__ == "__main__":
    main()
