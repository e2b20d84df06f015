"""The ``serve`` and ``demo`` commands: settings checked at start, clear
messages, a busy port reported, clean stops."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator

import pytest

from agentcore_bridge.cli import main as cli_main
from agentcore_bridge.config import Settings
from agentcore_bridge.server import cli as serve_cli
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


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_without_aiohttp_a_command_says_which_extra_to_install(command: str) -> None:
    # A fresh interpreter in which importing aiohttp fails, as after a
    # plain ``pip install agentcore-bridge``.
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "from agentcore_bridge.cli import main\n"
        f"sys.exit(main([{command!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"agentcore-bridge {command}: needs aiohttp, which the server extra "
        "installs: pip install 'agentcore-bridge[server]'\n"
    )


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


#: A bad value for every setting ``serve`` reads (all of them: settings of
#: the Lambda adapter are checked too, so a shared environment file with a
#: typo fails everywhere).
BAD_VALUES = {
    "AGENTCORE_RUNTIME_ARN": "arn:aws:lambda:us-east-1:123456789012:function:f",
    "AGENTCORE_QUALIFIER": "not a qualifier!",
    "AGENTCORE_ENDPOINT_URL": "ftp://example.com",
    "AWS_REGION": "us east 1",
    "BRIDGE_CONNECTIONS_ENDPOINT_URL": "example.com/prod",
    "BRIDGE_MAX_FRAME_BYTES": "0",
    "BRIDGE_MESSAGE_LIMIT_BYTES": "1000",
    "BRIDGE_COALESCE_WINDOW": "-0.1",
    "BRIDGE_COALESCE_BYTES": "lots",
    "BRIDGE_SESSION_SECRET": "too-short",
    "BRIDGE_SESSION_TTL": "0",
    "BRIDGE_ALLOWED_ORIGINS": "app.example.com",
    "BRIDGE_STOP_SESSION_ON_DISCONNECT": "maybe",
    "BRIDGE_WARMUP_PAYLOAD": "{not json",
    "BRIDGE_INVOKE_TIMEOUT": "forever",
    "BRIDGE_LAMBDA_ENDPOINT_URL": "lambda",
    "BRIDGE_CONNECTION_CHECK_INTERVAL": "-1",
    "BRIDGE_WARMER_KEY": "warmer key",
    "BRIDGE_WARMER_HOLD": "inf",
    "BRIDGE_WARMER_MAX_CONCURRENCY": "-3",
    "BRIDGE_LOG_FORMAT": "xml",
    "BRIDGE_HOST": "two words",
    "BRIDGE_PORT": "http",
    "BRIDGE_MAX_CONNECTIONS": "0",
    "BRIDGE_MAX_INVOCATIONS": "1.5",
    "BRIDGE_INVOCATION_RATE": "0",
    "BRIDGE_INVOCATION_BURST": "none",
    "BRIDGE_AUTH_TOKENS": "short",
    "BRIDGE_AUTH_QUERY_PARAMETER": "sometimes",
    "BRIDGE_PING_INTERVAL": "-25",
    "BRIDGE_SHUTDOWN_TIMEOUT": "soon",
    "BRIDGE_SEND_BUFFER_BYTES": "0",
    "BRIDGE_SLOW_CLIENT_TIMEOUT": "nan",
    "BRIDGE_PASSTHROUGH": "2",
    "BRIDGE_PASSTHROUGH_MAX_FRAME_BYTES": "-1",
    "BRIDGE_PASSTHROUGH_PRESIGN": "presigned",
    "BRIDGE_WS_COMPRESSION": "deflate",
    "BRIDGE_LOG_LEVEL": "LOUD",
}


def test_every_setting_has_a_bad_value_below() -> None:
    assert set(BAD_VALUES) == set(Settings.variables())


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No bridge or AWS variables but the runtime ARN; logging restored after."""
    for name in list(os.environ):
        if name.startswith(("AGENTCORE_", "BRIDGE_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AGENTCORE_RUNTIME_ARN", ARN)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield monkeypatch
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("variable", sorted(BAD_VALUES))
def test_serve_refuses_a_bad_value_of_every_variable_naming_it(
    variable: str,
    clean_environ: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_environ.setenv(variable, BAD_VALUES[variable])
    assert serve_cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agentcore-bridge serve: {variable}")
    assert " must " in err
    if variable in ("BRIDGE_AUTH_TOKENS", "BRIDGE_SESSION_SECRET"):
        assert BAD_VALUES[variable] not in err


@pytest.mark.parametrize("flag", sorted(serve_cli._FLAGS))
def test_serve_refuses_a_bad_value_of_every_flag_naming_it(
    flag: str,
    clean_environ: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    variable = serve_cli._FLAGS[flag][0]
    assert serve_cli.main([flag, BAD_VALUES[variable]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agentcore-bridge serve: {variable} ({flag}) must ")


def test_a_flag_overrides_its_variable(
    clean_environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_environ.setenv("BRIDGE_PORT", "70000")
    clean_environ.setenv("BRIDGE_MAX_CONNECTIONS", "0")
    # The bad port is overridden; the next bad setting is the one reported.
    assert serve_cli.main(["--port", "8123"]) == 2
    assert "BRIDGE_MAX_CONNECTIONS (--max-connections)" in capsys.readouterr().err


def test_a_plain_http_endpoint_off_loopback_is_refused_at_start(
    clean_environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_environ.setenv("AGENTCORE_ENDPOINT_URL", "http://agentcore.example.com")
    assert serve_cli.main(["--port", "0", "--host", "127.0.0.1"]) == 2
    err = capsys.readouterr().err
    assert "AGENTCORE_ENDPOINT_URL (--endpoint-url)" in err


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


# Runs ``agentcore-bridge serve`` with one step of its start held up, after
# printing "starting", so that a test can signal it before it listens: the
# first argument names the step, the others are serve's own.
SLOW_START = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys, time

    step = sys.argv.pop(1)
    if step == "import":
        # While the command's modules load.
        class SlowImport(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "aiohttp":
                    print("starting", flush=True)
                    time.sleep(60)
                return None

        sys.meta_path.insert(0, SlowImport())
    elif step == "app":
        # Before the event loop runs.
        from aiohttp import web

        make_app = web.Application.__init__

        def slow_app(self, *args, **kwargs):
            print("starting", flush=True)
            time.sleep(60)
            make_app(self, *args, **kwargs)

        web.Application.__init__ = slow_app
    else:
        # In the event loop, before the socket listens.
        from aiohttp import web

        listen = web.TCPSite.start

        async def slow_listen(self):
            print("starting", flush=True)
            await asyncio.sleep(60)
            await listen(self)

        web.TCPSite.start = slow_listen

    from agentcore_bridge.cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))
    """
)


@pytest.mark.parametrize("step", ["import", "app", "listen"])
def test_ctrl_c_before_serve_listens_exits_130_without_a_traceback(
    step: str,
) -> None:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENTCORE_", "BRIDGE_"))
    }
    environ.update({"AGENTCORE_RUNTIME_ARN": ARN, "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_START, step, "--host", "127.0.0.1", "--port", "0"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "starting\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert "listening on" not in out


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("no-such-host.invalid", "is not an IP address or a host name that resolves"),
        # TEST-NET-1 (RFC 5737): never an address of this machine.
        ("192.0.2.1", "is not an address of this machine"),
    ],
)
def test_serve_says_which_setting_is_wrong_when_it_cannot_listen(
    host: str, said: str
) -> None:
    result = serve(
        "--host",
        host,
        "--port",
        "0",
        env={"AGENTCORE_RUNTIME_ARN": ARN, "BRIDGE_LOG_LEVEL": "ERROR"},
    )
    assert result.returncode == 1
    assert f"cannot listen on {host} port 0: BRIDGE_HOST (--host)" in result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_says_which_flag_is_wrong_when_it_cannot_listen() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentcore_bridge.cli", "demo", "--host", "192.0.2.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot listen on 192.0.2.1 port 8000: --host is not an address" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def children_of(pid: int) -> list[str]:
    """The ids of ``pid``'s child processes (Linux ``/proc``)."""
    path = f"/proc/{pid}/task/{pid}/children"
    if not os.path.exists(path):
        pytest.skip("needs Linux /proc to list child processes")
    with open(path) as file:
        return file.read().split()


def test_demo_serves_the_page_and_chats_through_the_bridge_then_stops_on_ctrl_c() -> (
    None
):
    with demo_process("--port", "0", "--word-delay", "0.05") as demo:
        process, url = demo.process, demo.url
        with urllib.request.urlopen(url + "/", timeout=5) as response:
            page = response.read().decode()
        with urllib.request.urlopen(url + "/static/bridge-client.js", timeout=5) as r:
            script_status = r.status
        assert all(port_open(port) for port in demo.ports())
        # One process runs the three servers: Ctrl-C has no children to stop.
        assert children_of(process.pid) == []

        async def chat() -> tuple[str, tuple[int | None, str]]:
            ws_url = url.replace("http", "ws", 1) + "/ws"
            client = await ProtocolClient.connect(ws_url)
            await client.run("d", {"prompt": "hello demo"})
            # The page's Stop button.
            await client.invoke("stopped", {"prompt": "x", "words": 100000})
            await client.next_frame()
            await client.cancel("stopped")
            assert (await client.until_terminal("stopped"))["code"] == "cancelled"
            # A long answer is streaming when Ctrl-C comes.
            await client.invoke("long", {"prompt": "x", "words": 100000})
            await client.next_frame()
            process.send_signal(signal.SIGINT)
            return client.text_of("d"), await client.closed(timeout=20)

        text, closed = asyncio.run(chat())
        assert process.wait(timeout=20) == 0
        out, err = process.communicate(timeout=10)
    assert "bridge-client.js" in page
    assert script_status == 200
    assert text == "Turn 1 of this session. You said: hello demo"
    assert closed[0] == 1001
    assert "stopping" in out
    # Nothing alarming for the user: a stopped answer is no error.
    assert "Traceback" not in err
    assert " ERROR " not in err
    # Every port the demo held is free again.
    assert not any(port_open(port) for port in demo.ports())


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
    assert f"make demo DEMO_PORT={port + 1}" in result.stderr
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
