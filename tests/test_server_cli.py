"""The ``serve`` and ``demo`` commands: settings checked at start, clear
messages, a busy port reported, clean stops."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from agentcore_bridge.cli import main as cli_main
from server_helpers import ProtocolClient, demo_process, serve_process
from stack import local_stack

ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/demo_agent-LocalEmu01"


def serve(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENTCORE_", "BRIDGE_"))
    }
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agentcore_bridge.cli", "serve", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_lists_serve_and_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "serve" in out
    assert "demo" in out


def test_serve_without_a_runtime_names_the_variable() -> None:
    result = serve()
    assert result.returncode == 2
    assert "AGENTCORE_RUNTIME_ARN" in result.stderr
    assert "must be set" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--port", "70000"], {}, "BRIDGE_PORT (--port)"),
        (["--max-connections", "0"], {}, "BRIDGE_MAX_CONNECTIONS (--max-connections)"),
        ([], {"BRIDGE_INVOCATION_RATE": "fast"}, "BRIDGE_INVOCATION_RATE"),
        ([], {"BRIDGE_AUTH_TOKENS": "short"}, "BRIDGE_AUTH_TOKENS"),
        ([], {"BRIDGE_SLOW_CLIENT_TIMEOUT": "0"}, "BRIDGE_SLOW_CLIENT_TIMEOUT"),
        (["--log-level", "LOUD"], {}, "BRIDGE_LOG_LEVEL (--log-level)"),
        (["--runtime-arn", "arn:nope"], {}, "AGENTCORE_RUNTIME_ARN (--runtime-arn)"),
    ],
)
def test_serve_names_the_bad_setting_and_exits_2(
    args: list[str], env: dict[str, str], named: str
) -> None:
    result = serve(*args, env={"AGENTCORE_RUNTIME_ARN": ARN, **env})
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_reports_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = serve(
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env={"AGENTCORE_RUNTIME_ARN": ARN, "BRIDGE_LOG_LEVEL": "ERROR"},
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert "already in use" in result.stderr


def test_demo_serves_the_page_and_chats_through_the_bridge_then_stops_on_ctrl_c() -> (
    None
):
    with demo_process("--port", "0", "--word-delay", "0") as (process, url):
        with urllib.request.urlopen(url + "/", timeout=5) as response:
            page = response.read().decode()
        with urllib.request.urlopen(url + "/static/bridge-client.js", timeout=5) as r:
            script_status = r.status

        async def chat() -> str:
            client = await ProtocolClient.connect(url.replace("http", "ws", 1) + "/ws")
            await client.run("d", {"prompt": "hello demo"})
            await client.close()
            return client.text_of("d")

        text = asyncio.run(chat())
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        out, err = process.communicate(timeout=10)
    assert "bridge-client.js" in page
    assert script_status == 200
    assert text == "Turn 1 of this session. You said: hello demo"
    assert "stopping" in out
    assert "Traceback" not in err


def test_demo_says_clearly_when_its_port_is_busy() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "agentcore_bridge.cli", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert f"--port {port + 1}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_access_log_leaves_out_the_query_string() -> None:
    with (
        local_stack() as emulator,
        serve_process(emulator, "--access-log") as (
            process,
            url,
        ),
    ):
        ws = (
            url.replace("http", "ws", 1)
            + "/ws?session=secret-session&access_token=tok-9f8e7d"
        )

        async def scenario() -> None:
            client = await ProtocolClient.connect(ws)
            await client.close()

        asyncio.run(scenario())
        urllib.request.urlopen(url + "/healthz?x=hidden", timeout=5).close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        _, err = process.communicate(timeout=10)
    assert '"GET /healthz" 200' in err
    assert '"GET /ws" 101' in err
    for secret in ("secret-session", "tok-9f8e7d", "hidden"):
        assert secret not in err
