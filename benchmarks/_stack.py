"""Local servers for the cold-start benchmarks, run in a process of their own.

The benchmarks time fresh interpreters and WebSocket clients; the servers
they talk to (the demo agent, the AgentCore emulator and, when asked, the
API Gateway emulator with its Lambda execution environments) run in a
separate process so that their event loop never competes with the timing
code for the GIL. ``ConnectionsRecorder`` is the exception: a plain
``http.server`` in the benchmark's own process that answers the
``@connections`` API and notes when each post arrived.

    with servers(cold_start=3.0, apigw_handler="...") as stack:
        stack.agentcore_url, stack.ws_url, stack.apigw_stats() ...

Run as a script, this file is that server process (``serve`` subcommand):
it prints one JSON line with the URLs, then serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass
class Stack:
    """What the server process serves, and its control endpoints."""

    agentcore_url: str
    runtime_arn: str
    region: str
    credentials: dict[str, str]
    apigw_url: str | None = None
    ws_url: str | None = None
    connections_url: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def environ(self) -> dict[str, str]:
        """Variables that point the bridge and boto3 at the emulators."""
        return {
            "AGENTCORE_RUNTIME_ARN": self.runtime_arn,
            "AGENTCORE_ENDPOINT_URL": self.agentcore_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.credentials["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["secret_access_key"],
        }

    def agentcore_stats(self) -> dict[str, Any]:
        return _get_json(f"{self.agentcore_url}/_emulator/stats")

    def configure_agentcore(self, **settings: Any) -> None:
        _post_json(f"{self.agentcore_url}/_emulator/config", settings)

    def reset_agentcore(self) -> None:
        _post_json(f"{self.agentcore_url}/_emulator/reset", {})

    def apigw_stats(self) -> dict[str, Any]:
        return _get_json(f"{self.apigw_url}/_emulator/stats")

    def retire_environments(self) -> None:
        request = urllib.request.Request(
            f"{self.apigw_url}/_emulator/environments", method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


@contextmanager
def servers(
    *,
    cold_start: float = 0.0,
    word_delay: float = 0.0,
    apigw_handler: str | None = None,
    apigw_code_dir: str | None = None,
    apigw_env: Mapping[str, str] | None = None,
    max_concurrency: int = 10,
) -> Iterator[Stack]:
    """Start the server process; yield its ``Stack``; stop it on exit."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "serve",
        f"--cold-start={cold_start}",
        f"--word-delay={word_delay}",
        f"--max-concurrency={max_concurrency}",
    ]
    if apigw_handler:
        command.append(f"--apigw-handler={apigw_handler}")
        command.append(f"--apigw-code-dir={apigw_code_dir or '.'}")
        for key, value in (apigw_env or {}).items():
            command.append(f"--apigw-env={key}={value}")
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise RuntimeError("the benchmark's server process did not start")
    stack = Stack(**json.loads(line), process=process)
    try:
        yield stack
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        data: dict[str, Any] = json.load(response)
    return data


def _post_json(url: str, body: Any) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


# The @connections recorder, in the benchmark's own process.


@dataclass(frozen=True)
class Post:
    """One ``@connections`` POST: when it arrived (``time.monotonic``), what.

    ``connection_id`` is decoded from the URL's last segment, in which the
    caller percent-encoded it.
    """

    at: float
    connection_id: str
    data: bytes


class ConnectionsRecorder:
    """A minimal ``@connections`` endpoint that records every POST.

    It answers 200 to any POST without checking the signature (both the
    bridge and boto3 sign; checking would cost both sides the same), so
    the time it records is the moment the post reached the API. The
    endpoint URL (``url``) ends with the stage, as API Gateway's does.
    """

    def __init__(self) -> None:
        recorder = self
        self._posts: list[Post] = []
        self._changed = threading.Condition()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                arrived = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                connection_id = unquote(self.path.rsplit("/", 1)[-1])
                recorder._record(Post(arrived, connection_id, data))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/bench"

    def _record(self, post: Post) -> None:
        with self._changed:
            self._posts.append(post)
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._posts.clear()

    def posts(self) -> list[Post]:
        with self._changed:
            return list(self._posts)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Post]:
        """Wait until ``count`` posts arrived; return them (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return list(self._posts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# WebSocket clients of the API Gateway emulator.


@dataclass
class Answer:
    """One client's invocation, timed on ``time.monotonic``.

    ``connecting`` is when the client started to connect, ``connected``
    when the handshake finished, ``sent`` when the ``invoke`` left, and
    ``first_chunk`` and ``end`` when those frames arrived.
    """

    connecting: float
    connected: float = 0.0
    sent: float = 0.0
    first_chunk: float = 0.0
    end: float = 0.0
    chunks: int = 0
    error: str | None = None


def frames_of(text: str) -> list[dict[str, Any]]:
    """The protocol frames in one message: a batch's frames, or the frame."""
    frame = json.loads(text)
    if isinstance(frame, dict) and frame.get("type") == "batch":
        return [f for f in frame.get("frames", []) if isinstance(f, dict)]
    return [frame] if isinstance(frame, dict) else []


async def read_answer(ws: Any, answer: Answer, invocation_id: str) -> Answer:
    """Read frames until the invocation's ``end`` or ``error``; note the times."""
    from aiohttp import WSMsgType

    async for message in ws:
        if message.type != WSMsgType.TEXT:
            answer.error = f"unexpected {message.type.name} message"
            break
        now = time.monotonic()
        for frame in frames_of(message.data):
            if frame.get("id") != invocation_id:
                continue
            if frame.get("type") == "chunk":
                answer.chunks += 1
                if not answer.first_chunk:
                    answer.first_chunk = now
            elif frame.get("type") in {"end", "error"}:
                answer.end = now
                if frame["type"] == "error":
                    answer.error = str(frame.get("code"))
                return answer
    if answer.error is None:
        answer.error = "the connection closed before the answer ended"
    return answer


def invoke_frame(invocation_id: str, prompt: str) -> str:
    return json.dumps(
        {"type": "invoke", "id": invocation_id, "payload": {"prompt": prompt}}
    )


# The server process.


def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from agentcore_bridge.local.agentcore import (
        DEFAULT_RUNTIME_ARN,
        LOCAL_CREDENTIALS,
        EmulatorConfig,
        create_emulator_app,
    )
    from agentcore_bridge.local.demo_agent import create_demo_agent_app

    async def start(app: web.Application) -> tuple[web.AppRunner, str]:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def main() -> None:
        runners = []
        runner, agent_url = await start(
            create_demo_agent_app(word_delay=args.word_delay)
        )
        runners.append(runner)
        emulator = EmulatorConfig(agent_url=agent_url, cold_start=args.cold_start)
        runner, agentcore_url = await start(create_emulator_app(emulator))
        runners.append(runner)
        answer: dict[str, Any] = {
            "agentcore_url": agentcore_url,
            "runtime_arn": DEFAULT_RUNTIME_ARN,
            "region": emulator.region,
            "credentials": {
                "access_key_id": LOCAL_CREDENTIALS.access_key_id,
                "secret_access_key": LOCAL_CREDENTIALS.secret_access_key,
            },
        }
        if args.apigw_handler:
            answer.update(await start_apigw(answer, runners))

        print(json.dumps(answer), flush=True)
        # Serve until the benchmark closes our stdin (or dies).
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.buffer.read)
        for runner in reversed(runners):
            await runner.cleanup()

    async def start_apigw(
        answer: dict[str, Any], runners: list[web.AppRunner]
    ) -> dict[str, Any]:
        from agentcore_bridge.local.apigw import ApiGatewayConfig, LocalApiGateway

        env = {
            "AGENTCORE_RUNTIME_ARN": answer["runtime_arn"],
            "AGENTCORE_ENDPOINT_URL": answer["agentcore_url"],
        }
        for item in args.apigw_env:
            key, _, value = item.partition("=")
            env[key] = value
        # The workers get the gateway's key pair and sign every call with it
        # (AgentCore, @connections, Lambda Invoke): one pair for both
        # emulators, as one IAM role serves all three on AWS.
        config = ApiGatewayConfig(
            handler=args.apigw_handler,
            code_dir=args.apigw_code_dir,
            region=answer["region"],
            credentials=LOCAL_CREDENTIALS,
            max_concurrency=args.max_concurrency,
            env=env,
            # The handler's log lines and the REPORT lines are not results.
            log_stream=open(os.devnull, "w"),  # noqa: SIM115 - lives as long as the process
        )
        gateway = LocalApiGateway(config)
        runner, url = await start(gateway.make_app())
        gateway.set_base_url(url)
        runners.append(runner)
        return {
            "apigw_url": url,
            "ws_url": gateway.websocket_url,
            "connections_url": gateway.connections_url,
        }

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("--cold-start", type=float, default=0.0)
    serve.add_argument("--word-delay", type=float, default=0.0)
    serve.add_argument("--max-concurrency", type=int, default=10)
    serve.add_argument("--apigw-handler")
    serve.add_argument("--apigw-code-dir", default=".")
    serve.add_argument("--apigw-env", action="append", default=[])
    _serve(parser.parse_args())


if __name__ == "__main__":
    main()
