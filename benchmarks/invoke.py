"""AgentCore invocation: our synchronous client against boto3, same run.

Starts the demo agent and the local AgentCore emulator in a separate
process (so the servers do not share the client's interpreter), then
measures, alternating the two clients round by round:

- time to first event and total time for the same streamed answer (200
  words, no delay between them), through ``AgentCoreClient.invoke`` and
  through boto3's ``invoke_agent_runtime`` with its ``response`` body read
  line by line, each ``data:`` line decoded from JSON, as AWS's samples do;
- import cost in a fresh interpreter: importing the module and building a
  client, wall time and peak RSS measured inside the child.

Prints medians and ratios (boto3 / ours). Run with::

    .venv/bin/python benchmarks/invoke.py [--rounds 30] [--import-rounds 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

# The emulator's defaults, written out so that this process imports nothing
# heavy before the import measurements: a child started with fork/exec
# inherits its parent's peak RSS in getrusage().
DEFAULT_RUNTIME_ARN = (
    "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/demo_agent-LocalEmu01"
)
LOCAL_ACCESS_KEY_ID = "AKIALOCALEMULATOR00"
LOCAL_SECRET_ACCESS_KEY = "LocalEmulatorSecretKeyNotASecret00000000"
REGION = "us-west-2"
PAYLOAD: dict[str, object] = {"prompt": "benchmark", "words": 200}
#: The paced scenario: an agent that writes a word every 10 ms, as a model
#: streaming tokens does.
PACED: dict[str, object] = {"prompt": "benchmark", "words": 40, "delay": 0.01}

# Runs in the server process: the demo agent and the emulator in one loop,
# then prints the emulator's URL and waits for stdin to close.
SERVERS = textwrap.dedent(
    """
    import asyncio, sys
    from aiohttp import web
    from agentcore_bridge.local.agentcore import EmulatorConfig, create_emulator_app
    from agentcore_bridge.local.demo_agent import create_demo_agent_app

    async def start(app):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def main():
        agent, agent_url = await start(create_demo_agent_app(word_delay=0.0))
        config = EmulatorConfig(agent_url=agent_url)
        emulator, url = await start(create_emulator_app(config))
        print(url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await emulator.cleanup()
        await agent.cleanup()

    asyncio.run(main())
    """
)

# Runs in a fresh interpreter per import measurement.
IMPORT_OURS = textwrap.dedent(
    f"""
    import json, resource, time
    start = time.perf_counter()
    from agentcore_bridge.sync.agentcore import AgentCoreClient
    from agentcore_bridge import Credentials
    client = AgentCoreClient(
        {DEFAULT_RUNTIME_ARN!r},
        credentials=Credentials({LOCAL_ACCESS_KEY_ID!r}, {LOCAL_SECRET_ACCESS_KEY!r}),
    )
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"seconds": seconds, "rss_kib": rss}}))
    """
)
IMPORT_BOTO3 = textwrap.dedent(
    f"""
    import json, resource, time
    start = time.perf_counter()
    import boto3
    client = boto3.client(
        "bedrock-agentcore",
        region_name={REGION!r},
        aws_access_key_id={LOCAL_ACCESS_KEY_ID!r},
        aws_secret_access_key={LOCAL_SECRET_ACCESS_KEY!r},
    )
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"seconds": seconds, "rss_kib": rss}}))
    """
)
IMPORT_NOTHING = textwrap.dedent(
    """
    import json, resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": 0.0, "rss_kib": rss}))
    """
)

#: One call: (time to first event, total time, client CPU time, events).
Invoke = Callable[[], tuple[float, float, float, int]]


def ours(url: str, payload: dict[str, object]) -> tuple[Invoke, Callable[[], None]]:
    from agentcore_bridge import Credentials
    from agentcore_bridge.agentcore import new_session_id
    from agentcore_bridge.sync.agentcore import AgentCoreClient

    client = AgentCoreClient(
        DEFAULT_RUNTIME_ARN,
        endpoint_url=url,
        credentials=Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY),
    )

    def invoke() -> tuple[float, float, float, int]:
        session_id = new_session_id()
        cpu = time.process_time()
        start = time.perf_counter()
        first = 0.0
        count = 0
        with client.invoke(payload, session_id=session_id) as stream:
            for _event in stream:
                if not count:
                    first = time.perf_counter() - start
                count += 1
        total = time.perf_counter() - start
        return first, total, time.process_time() - cpu, count

    return invoke, client.close


def boto3_client(
    url: str, payload: dict[str, object]
) -> tuple[Invoke, Callable[[], None]]:
    import boto3

    from agentcore_bridge.agentcore import new_session_id

    client = boto3.client(
        "bedrock-agentcore",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )
    body = json.dumps(payload).encode()

    def invoke() -> tuple[float, float, float, int]:
        session_id = new_session_id()
        cpu = time.process_time()
        start = time.perf_counter()
        first = 0.0
        count = 0
        response = client.invoke_agent_runtime(
            agentRuntimeArn=DEFAULT_RUNTIME_ARN,
            runtimeSessionId=session_id,
            payload=body,
            contentType="application/json",
            accept="text/event-stream, application/json",
        )
        for line in response["response"].iter_lines():
            if line.startswith(b"data: "):
                json.loads(line[6:])
                if not count:
                    first = time.perf_counter() - start
                count += 1
        total = time.perf_counter() - start
        return first, total, time.process_time() - cpu, count

    return invoke, client.close


def measure_invocations(
    url: str, payload: dict[str, object], rounds: int, warm_up: int = 3
) -> dict[str, dict[str, float]]:
    clients = {"ours": ours(url, payload), "boto3": boto3_client(url, payload)}
    results: dict[str, dict[str, list[float]]] = {
        name: {"first": [], "total": [], "cpu": []} for name in clients
    }
    counts = set()
    for invoke, _ in clients.values():
        for _ in range(warm_up):  # connections, caches, lazy imports
            counts.add(invoke()[3])
    for n in range(rounds):
        order = list(clients) if n % 2 == 0 else list(reversed(clients))
        for name in order:
            first, total, cpu, count = clients[name][0]()
            counts.add(count)
            results[name]["first"].append(first)
            results[name]["total"].append(total)
            results[name]["cpu"].append(cpu)
    for _, close in clients.values():
        close()
    if len(counts) != 1:
        raise SystemExit(f"the clients saw different event counts: {counts}")
    (events,) = counts
    return {
        name: {key: statistics.median(values) for key, values in series.items()}
        | {"events": events}
        for name, series in results.items()
    }


def measure_imports(rounds: int) -> dict[str, dict[str, float]]:
    scripts = {"ours": IMPORT_OURS, "boto3": IMPORT_BOTO3, "python": IMPORT_NOTHING}
    # Both sides load cached bytecode, as an installed package does: pip
    # compiles boto3's at install time, and the first (unmeasured) run here
    # writes ours even if the environment disables writing it.
    environ = dict(os.environ)
    environ.pop("PYTHONDONTWRITEBYTECODE", None)

    def child(name: str) -> dict[str, float]:
        output = subprocess.run(
            [sys.executable, "-c", scripts[name]],
            capture_output=True,
            text=True,
            check=True,
            env=environ,
        ).stdout
        result: dict[str, float] = json.loads(output)
        return result

    for name in scripts:
        child(name)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in scripts}
    for n in range(rounds):
        order = list(scripts) if n % 2 == 0 else list(reversed(scripts))
        for name in order:
            samples[name].append(child(name))
    return {
        name: {
            "seconds": statistics.median(s["seconds"] for s in runs),
            "rss_mib": statistics.median(s["rss_kib"] for s in runs) / 1024,
        }
        for name, runs in samples.items()
    }


def print_invocations(title: str, results: dict[str, dict[str, float]]) -> None:
    ours_i, boto_i = results["ours"], results["boto3"]
    print(
        f"AgentCore invocation, {int(ours_i['events'])} events ({title}); "
        "emulator and demo agent in another process\n"
    )
    print(f"{'':28} {'ours':>10} {'boto3':>10} {'boto3/ours':>11}")
    for key, label in (
        ("first", "time to first event (ms)"),
        ("total", "total time (ms)"),
        ("cpu", "client CPU per call (ms)"),
    ):
        a, b = ours_i[key] * 1000, boto_i[key] * 1000
        print(f"{label:28} {a:10.2f} {b:10.2f} {b / a:10.1f}x")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--paced-rounds", type=int, default=5)
    parser.add_argument("--import-rounds", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="print JSON, not tables")
    args = parser.parse_args()
    if min(args.rounds, args.paced_rounds, args.import_rounds) < 1:
        parser.error("every --*rounds value must be at least 1")

    # Imports first, while this process is still small (see above).
    imports = measure_imports(args.import_rounds)
    servers = subprocess.Popen(
        [sys.executable, "-c", SERVERS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert servers.stdout is not None
        url = servers.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit("the emulator did not start")
        invocations = measure_invocations(url, PAYLOAD, args.rounds)
        paced = measure_invocations(url, PACED, args.paced_rounds, warm_up=1)
    finally:
        assert servers.stdin is not None
        servers.stdin.close()
        servers.wait(timeout=10)

    if args.json:
        document = {
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "invocations": invocations,
            "paced": paced,
            "imports": imports,
        }
        print(json.dumps(document, indent=2))
        return

    print_invocations(
        f"{PAYLOAD['words']} words, no delay, medians of {args.rounds} rounds",
        invocations,
    )
    print_invocations(
        f"{PACED['words']} words, one every 10 ms, "
        f"medians of {args.paced_rounds} rounds",
        paced,
    )

    base = imports["python"]["rss_mib"]
    print(
        "Import and client construction in a fresh interpreter, "
        f"medians of {args.import_rounds} runs\n"
    )
    print(f"{'':28} {'ours':>10} {'boto3':>10} {'boto3/ours':>11}")
    a, b = imports["ours"]["seconds"] * 1000, imports["boto3"]["seconds"] * 1000
    print(f"{'wall time (ms)':28} {a:10.1f} {b:10.1f} {b / a:10.1f}x")
    a, b = imports["ours"]["rss_mib"], imports["boto3"]["rss_mib"]
    print(f"{'peak RSS (MiB)':28} {a:10.1f} {b:10.1f} {b / a:10.1f}x")
    a, b = a - base, b - base
    print(f"{'peak RSS above bare python':28} {a:10.1f} {b:10.1f} {b / a:10.1f}x")
    print(f"(bare interpreter: {base:.1f} MiB peak RSS)")


if __name__ == "__main__":
    main()
