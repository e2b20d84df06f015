"""The bridge server: its overhead, throughput and connection capacity.

Starts, each in its own process on loopback: the demo agent with the local
AgentCore emulator in front of it, ``agentcore-bridge serve`` pointed at
the emulator, and (for the memory reference) a bare aiohttp WebSocket
server. Then, from this process:

1. **Time to first chunk**, alternating sample by sample: the same short
   answer straight from the emulator with ``AsyncAgentCoreClient`` (warm
   connection pool), and through the bridge over one open WebSocket
   (``invoke`` frame to first ``chunk`` frame). Both clients are aiohttp.
   The difference of the two is what the bridge adds.
2. **Sustained invocations per second**: ``--concurrency`` invocations
   kept running back to back for ``--seconds``, through the bridge (one
   WebSocket each) and straight to the emulator, alternating over
   ``--rounds`` rounds; with the bridge's CPU time per invocation and the
   WebSocket messages its frames took (fewer than frames when batched).
3. **Idle connections**: ``--connections`` WebSockets opened in batches
   (raw asyncio streams, so the client stays small) and held for
   ``--hold`` seconds while the bridge pings them every 5 s and they
   answer; then every one must answer a protocol ``ping`` and the bridge's
   ``/healthz`` must count them all. The bridge's RSS before and after
   gives the memory per idle connection. The same ramp against a bare
   aiohttp WebSocket server (one text frame sent on connect, pings every
   5 s) is the reference.

Run with::

    .venv/bin/python benchmarks/server.py [--samples 600] [--connections 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import resource
import statistics
import struct
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections import deque
from typing import Any

import aiohttp

from agentcore_bridge import Credentials
from agentcore_bridge.aio.agentcore import AsyncAgentCoreClient
from agentcore_bridge.client import FrameDecoder
from agentcore_bridge.local.agentcore import (
    DEFAULT_RUNTIME_ARN,
    LOCAL_ACCESS_KEY_ID,
    LOCAL_SECRET_ACCESS_KEY,
)
from agentcore_bridge.sessions import new_session_id

PAYLOAD = {"prompt": "benchmark"}

# The demo agent (no pause between words) and the emulator, in one loop.
SERVERS = textwrap.dedent(
    """
    import asyncio, sys
    from aiohttp import web
    from agentcore_bridge.local.agentcore import EmulatorConfig, create_emulator_app
    from agentcore_bridge.local.demo_agent import create_demo_agent_app

    async def start(app):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
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

# The reference for memory per connection: the least an aiohttp WebSocket
# server holds per idle client with the same pings.
BARE = textwrap.dedent(
    """
    import asyncio, sys
    from aiohttp import WSMsgType, web

    async def ws(request):
        ws = web.WebSocketResponse(heartbeat=5.0, compress=False, max_msg_size=524288)
        await ws.prepare(request)
        await ws.send_str('{"type":"session"}')
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str('{"type":"pong","id":null}')
        return ws

    async def main():
        app = web.Application()
        app.router.add_get("/ws", ws)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=2048).start()
        print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())
    """
)


def start_process(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line:
        raise SystemExit(f"{command[:3]} did not start")
    return process, line.rsplit(" ", 1)[-1]


def stop_process(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None:
        process.stdin.close()
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


class FrameReader:
    """The frames of a bridge WebSocket one by one, as a client sees them.

    A message may carry several frames (a batch) or part of one; the count
    of messages shows how many WebSocket messages the frames took.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self.ws = ws
        self.decoder = FrameDecoder()
        self.messages = 0
        self._pending: deque[dict[str, Any]] = deque()

    async def next(self) -> dict[str, Any]:
        while not self._pending:
            message = await self.ws.receive()
            self.messages += 1
            self._pending.extend(self.decoder.feed(message.data, time.monotonic()))
        return self._pending.popleft()


# 1. Time to first chunk.


async def first_chunk_times(
    bridge_url: str, emulator_url: str, samples: int
) -> dict[str, list[float]]:
    credentials = Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY)
    direct = AsyncAgentCoreClient(
        DEFAULT_RUNTIME_ARN, endpoint_url=emulator_url, credentials=credentials
    )
    session_id = new_session_id()
    times: dict[str, list[float]] = {"direct": [], "bridge": []}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            bridge_url.replace("http", "ws", 1) + "/ws", max_msg_size=0
        ) as ws,
    ):
        frames = FrameReader(ws)
        await frames.next()  # the session frame

        async def through_bridge(n: int) -> float:
            id = f"b{n}"
            start = time.perf_counter()
            await ws.send_str(
                json.dumps({"type": "invoke", "id": id, "payload": PAYLOAD})
            )
            first = 0.0
            while True:
                frame = await frames.next()
                if frame["type"] == "chunk" and not first:
                    first = time.perf_counter() - start
                if frame["type"] in ("end", "error"):
                    assert frame["type"] == "end", frame
                    return first

        async def straight(n: int) -> float:
            start = time.perf_counter()
            first = 0.0
            async with direct.invoke(PAYLOAD, session_id=session_id) as stream:
                async for _ in stream:
                    if not first:
                        first = time.perf_counter() - start
            return first

        for n in range(20):  # warm both paths up
            await through_bridge(n)
            await straight(n)
        for n in range(samples):
            pair = [("bridge", through_bridge), ("direct", straight)]
            for name, measure in pair if n % 2 else reversed(pair):
                times[name].append(await measure(n))
    await direct.close()
    return times


# 2. Sustained invocations per second.


async def bridge_rate(
    url: str, concurrency: int, seconds: float
) -> tuple[float, float]:
    """Invocations per second, and WebSocket messages per invocation."""
    done = 0
    async with aiohttp.ClientSession() as http:
        sockets = [
            await http.ws_connect(url.replace("http", "ws", 1) + "/ws", max_msg_size=0)
            for _ in range(concurrency)
        ]
        readers = [FrameReader(ws) for ws in sockets]
        for reader in readers:
            await reader.next()
        messages_before = sum(reader.messages for reader in readers)
        deadline = time.perf_counter() + seconds

        async def worker(reader: FrameReader, w: int) -> None:
            nonlocal done
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                id = f"w{w}-{n}"
                await reader.ws.send_str(
                    json.dumps({"type": "invoke", "id": id, "payload": PAYLOAD})
                )
                while True:
                    frame = await reader.next()
                    if frame["type"] in ("end", "error") and frame["id"] == id:
                        assert frame["type"] == "end", frame
                        break
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(reader, w) for w, reader in enumerate(readers)))
        elapsed = time.perf_counter() - start
        messages = sum(reader.messages for reader in readers) - messages_before
        for ws in sockets:
            await ws.close()
    return done / elapsed, messages / done


async def direct_rate(url: str, concurrency: int, seconds: float) -> float:
    credentials = Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY)
    client = AsyncAgentCoreClient(
        DEFAULT_RUNTIME_ARN, endpoint_url=url, credentials=credentials
    )
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        session_id = new_session_id()
        while time.perf_counter() < deadline:
            async with client.invoke(PAYLOAD, session_id=session_id) as stream:
                async for _ in stream:
                    pass
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await client.close()
    return done / elapsed


# 3. Idle connections, on raw asyncio streams.


class RawWebSocket:
    """The smallest WebSocket client: answers pings, reads text frames."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.texts: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, host: str, port: int, path: str) -> RawWebSocket:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        socket = cls(reader, writer)
        await asyncio.wait_for(socket.texts.get(), 30)  # the first frame
        return socket

    async def _read(self) -> None:
        try:
            while True:
                first, second = await self.reader.readexactly(2)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack(">H", await self.reader.readexactly(2))
                elif length == 127:
                    (length,) = struct.unpack(">Q", await self.reader.readexactly(8))
                payload = await self.reader.readexactly(length)
                opcode = first & 0x0F
                if opcode == 0x9:
                    self.send(0xA, payload)
                elif opcode == 0x1:
                    self.texts.put_nowait(payload)
                elif opcode == 0x8:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.closed = True

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    async def ping(self) -> bool:
        self.send(0x1, b'{"type":"ping","id":"h"}')
        try:
            while b"pong" not in await asyncio.wait_for(self.texts.get(), 30):
                pass
        except asyncio.TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._task.cancel()
        self.writer.close()


async def hold_connections(
    url: str, pid: int, count: int, hold: float, batch: int
) -> dict[str, Any]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    sockets: list[RawWebSocket] = []
    failures = 0
    warm = [await RawWebSocket.open(host, int(port), "/ws") for _ in range(20)]
    for socket in warm:
        await socket.ping()
        socket.close()
    await asyncio.sleep(1.0)
    before = rss_kib(pid)
    start = time.perf_counter()
    while len(sockets) + failures < count:
        size = min(batch, count - len(sockets) - failures)
        opened = await asyncio.gather(
            *(RawWebSocket.open(host, int(port), "/ws") for _ in range(size)),
            return_exceptions=True,
        )
        for result in opened:
            if isinstance(result, RawWebSocket):
                sockets.append(result)
            else:
                failures += 1
    ramp = time.perf_counter() - start
    await asyncio.sleep(hold)
    after = rss_kib(pid)
    answered = await asyncio.gather(*(s.ping() for s in sockets))
    alive = sum(1 for ok in answered if ok)
    counted = None
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            counted = json.loads(response.read()).get("connections")
    except OSError:
        counted = None
    for socket in sockets:
        socket.close()
    await asyncio.sleep(0.5)
    return {
        "opened": len(sockets),
        "failed": failures,
        "alive_after_hold": alive,
        "counted_by_healthz": counted,
        "ramp_seconds": ramp,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / max(len(sockets), 1),
    }


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--hold", type=float, default=12.0)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    limit = raise_fd_limit()
    if limit < args.connections + 200:
        raise SystemExit(f"open file limit {limit} is too low for {args.connections}")

    servers, emulator_url = start_process([sys.executable, "-c", SERVERS])
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BRIDGE_"))
        },
        "AGENTCORE_RUNTIME_ARN": DEFAULT_RUNTIME_ARN,
        "AGENTCORE_ENDPOINT_URL": emulator_url,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        "BRIDGE_SESSION_SECRET": "benchmark-secret-" + "x" * 32,
        "BRIDGE_MAX_CONNECTIONS": str(args.connections + 100),
        "BRIDGE_MAX_INVOCATIONS": "64",
        "BRIDGE_INVOCATION_RATE": "100000",
        "BRIDGE_INVOCATION_BURST": "100000",
        "BRIDGE_PING_INTERVAL": "5",
        "BRIDGE_LOG_LEVEL": "WARNING",
        "BRIDGE_LOG_FORMAT": "text",
    }
    bridge, bridge_url = start_process(
        [
            sys.executable,
            "-m",
            "agentcore_bridge.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        env=env,
    )
    bare, bare_url = start_process([sys.executable, "-c", BARE])
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()} {platform.machine()}",
            "aiohttp": aiohttp.__version__,
            "load_average": os.getloadavg()[0],
        }
    }
    try:
        times = asyncio.run(first_chunk_times(bridge_url, emulator_url, args.samples))
        results["first_chunk_ms"] = {
            name: {
                "median": statistics.median(values) * 1000,
                "p99": percentile(values, 0.99) * 1000,
                "samples": len(values),
            }
            for name, values in times.items()
        }

        rates: dict[str, list[float]] = {"bridge": [], "direct": []}
        cpu: dict[str, list[float]] = {"bridge": [], "servers": []}
        messages: list[float] = []
        for n in range(args.rounds):
            order = ["bridge", "direct"] if n % 2 == 0 else ["direct", "bridge"]
            for name in order:
                if name == "direct":
                    rates[name].append(
                        asyncio.run(
                            direct_rate(emulator_url, args.concurrency, args.seconds)
                        )
                    )
                    continue
                before = cpu_seconds(bridge.pid), cpu_seconds(servers.pid)
                rate, per_invocation = asyncio.run(
                    bridge_rate(bridge_url, args.concurrency, args.seconds)
                )
                messages.append(per_invocation)
                count = rate * args.seconds
                cpu["bridge"].append((cpu_seconds(bridge.pid) - before[0]) / count)
                cpu["servers"].append((cpu_seconds(servers.pid) - before[1]) / count)
                rates[name].append(rate)
        results["invocations_per_second"] = {
            name: statistics.median(values) for name, values in rates.items()
        }
        results["cpu_us_per_invocation"] = {
            name: statistics.median(values) * 1e6 for name, values in cpu.items()
        }
        results["messages_per_invocation"] = statistics.median(messages)

        results["idle_connections"] = {
            "bridge": asyncio.run(
                hold_connections(
                    bridge_url, bridge.pid, args.connections, args.hold, args.batch
                )
            ),
            "bare_aiohttp": asyncio.run(
                hold_connections(
                    bare_url, bare.pid, args.connections, args.hold, args.batch
                )
            ),
        }
    finally:
        for process in (bridge, bare, servers):
            stop_process(process)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(results)


def report(results: dict[str, Any]) -> None:
    machine = results["machine"]
    print(
        f"machine: {machine['cpus']} CPUs, {machine['system']}, Python "
        f"{machine['python']}, aiohttp {machine['aiohttp']}, "
        f"load {machine['load_average']:.1f}"
    )
    first = results["first_chunk_ms"]
    print("\ntime to first chunk (ms)      median      p99")
    for name in ("direct", "bridge"):
        print(f"  {name:<26} {first[name]['median']:8.3f} {first[name]['p99']:8.3f}")
    print(
        f"  {'bridge - direct':<26} "
        f"{first['bridge']['median'] - first['direct']['median']:8.3f} "
        f"{first['bridge']['p99'] - first['direct']['p99']:8.3f}"
    )
    rates = results["invocations_per_second"]
    print("\nsustained invocations per second (median of rounds)")
    for name in ("direct", "bridge"):
        print(f"  {name:<26} {rates[name]:8.0f}")
    print(f"  {'bridge / direct':<26} {rates['bridge'] / rates['direct']:8.2f}")
    cpu = results["cpu_us_per_invocation"]
    print("\nCPU per invocation through the bridge (us)")
    print(f"  {'bridge process':<26} {cpu['bridge']:8.0f}")
    print(f"  {'agent + emulator process':<26} {cpu['servers']:8.0f}")
    print(
        f"  {'WebSocket messages':<26} {results['messages_per_invocation']:8.1f}"
        " per invocation"
    )
    print("\nidle connections              bridge   bare aiohttp")
    held = results["idle_connections"]
    for key in ("opened", "failed", "alive_after_hold", "counted_by_healthz"):
        print(
            f"  {key:<26} {held['bridge'][key]!s:>8} {held['bare_aiohttp'][key]!s:>14}"
        )
    print(
        f"  {'ramp (s)':<26} {held['bridge']['ramp_seconds']:8.1f} "
        f"{held['bare_aiohttp']['ramp_seconds']:14.1f}"
    )
    mib = {
        name: (held[name]["rss_before_kib"] / 1024, held[name]["rss_after_kib"] / 1024)
        for name in ("bridge", "bare_aiohttp")
    }
    print(
        f"  {'RSS before -> after (MiB)':<26} "
        f"{mib['bridge'][0]:3.0f} -> {mib['bridge'][1]:3.0f} "
        f"{mib['bare_aiohttp'][0]:7.0f} -> {mib['bare_aiohttp'][1]:3.0f}"
    )
    print(
        f"  {'KiB per connection':<26} {held['bridge']['kib_per_connection']:8.1f} "
        f"{held['bare_aiohttp']['kib_per_connection']:14.1f}"
    )


if __name__ == "__main__":
    main()
