"""The examples' code runs: the Lambda package and the container's command.

- The Lambda package that ``examples/lambda/build.py`` builds is loaded by
  the local API Gateway emulator exactly as Lambda loads it (``handler.handler``
  from the package folder, the SAM template's environment variables), in
  front of the local AgentCore emulator, and answers a real WebSocket client.
- The Dockerfile's ``CMD`` runs as a plain subprocess with the Dockerfile's
  ``ENV`` and the AgentCore emulator's address, and streams an answer; its
  ``HEALTHCHECK`` probe and its ``STOPSIGNAL`` are exercised against it.

Docker itself cannot run here (there is no daemon on the test machines), so
the image build is not tested: what runs is the same command with the same
environment, from the package installed in the test environment.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from websockets.asyncio.client import connect

from agentcore_bridge.client import FrameDecoder
from agentcore_bridge.protocol import encode_invoke
from apigw_stack import local_apigw
from examples_files import (
    LAMBDA,
    ROOT,
    dockerfile_env,
    exec_form,
    healthcheck_command,
    load_dockerfile,
    load_sam,
    sam_environment,
)
from stack import Emulator, local_stack


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_build", LAMBDA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_script = _load_build_script()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Lambda package folder, as build.py writes it."""
    out = tmp_path_factory.mktemp("lambda-build")
    build_script.build(out)
    return out / "package"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with local_stack() as running:
        yield running


async def _converse(url: str, prompt: str) -> list[dict[str, Any]]:
    """Send one invoke; return the frames answering it, through its end or error."""
    decoder = FrameDecoder()
    frames: list[dict[str, Any]] = []
    async with connect(url) as websocket:
        await websocket.send(encode_invoke("q1", {"prompt": prompt}))
        while not frames or frames[-1]["type"] not in {"end", "error"}:
            message = await asyncio.wait_for(websocket.recv(), timeout=60)
            for frame in decoder.feed(message, time.monotonic()):
                if frame.get("id") == "q1":
                    frames.append(frame)
    return frames


def _assert_streamed_answer(frames: list[dict[str, Any]]) -> None:
    *chunks, end = frames
    assert end["type"] == "end", end
    assert chunks, "no chunk before the end"
    assert [c["type"] for c in chunks] == ["chunk"] * len(chunks)
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert end["seq"] == len(chunks)
    assert "".join(str(c["data"]) for c in chunks).strip()


# ---------------------------------------------------------------- the Lambda package


def test_build_writes_the_handler_and_the_library_without_server_parts(
    package: Path,
) -> None:
    archive = package.parent / "bridge.zip"
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
    assert "handler.py" in names
    assert "agentcore_bridge/awslambda/__init__.py" in names
    assert "agentcore_bridge/sync/http.py" in names
    for left_out in ("aio", "server", "local", "static"):
        assert not [n for n in names if n.startswith(f"agentcore_bridge/{left_out}/")]


def _release_wheel(folder: Path) -> Path:
    """A wheel of this checkout, as a release on PyPI would hold it."""
    version = "0.1.0"
    dist_info = f"agentcore_bridge-{version}.dist-info"
    files = {
        f"agentcore_bridge/{path.relative_to(build_script.REPO_SOURCE).as_posix()}": (
            path.read_bytes()
        )
        for path in sorted(build_script.REPO_SOURCE.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: agentcore-bridge\nVersion: {version}\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    # pip writes the command-line script into --target's bin/.
    files[f"{dist_info}/entry_points.txt"] = (
        b"[console_scripts]\nagentcore-bridge = agentcore_bridge.cli:main\n"
    )
    record = [
        f"{name},sha256={_record_hash(data)},{len(data)}"
        for name, data in files.items()
    ]
    files[f"{dist_info}/RECORD"] = (
        "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    ).encode()
    wheel = folder / f"agentcore_bridge-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_build_from_a_release_leaves_out_the_same_parts(
    package: Path, tmp_path: Path
) -> None:
    """``build.py --pip`` ships the modules a checkout build ships, no more."""
    archive = build_script.build(
        tmp_path / "out", requirement=str(_release_wheel(tmp_path))
    )
    with zipfile.ZipFile(archive) as zf:
        from_release = {n for n in zf.namelist() if n.startswith("agentcore_bridge/")}
    with zipfile.ZipFile(package.parent / "bridge.zip") as zf:
        from_checkout = {n for n in zf.namelist() if n.startswith("agentcore_bridge/")}
    assert from_release == from_checkout
    assert not (tmp_path / "out" / "package" / "bin").exists()


def test_build_ships_unchecked_bytecode_for_every_module(package: Path) -> None:
    """Each module has its .pyc for the building Python, hash-based, unchecked."""
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(package.parent / "bridge.zip") as zf:
        names = set(zf.namelist())
        sources = sorted(n for n in names if n.endswith(".py"))
        compiled = sorted(n for n in names if n.endswith(".pyc"))
        expected = []
        for source in sources:
            folder, _, file = source.rpartition("/")
            prefix = f"{folder}/" if folder else ""
            expected.append(f"{prefix}__pycache__/{file[:-3]}.{tag}.pyc")
        assert compiled == sorted(expected)
        for name in compiled:
            header = zf.read(name)[:16]
            assert header[:4] == importlib.util.MAGIC_NUMBER, name
            # PEP 552 flags: bit 0 hash-based, bit 1 check the source: 0b01.
            assert int.from_bytes(header[4:8], "little") == 1, name


def test_the_package_runs_its_bytecode_without_compiling(
    package: Path, tmp_path: Path
) -> None:
    """With every source broken after the build, the package still imports.

    Unchecked bytecode is used without looking at the source, so on Lambda,
    where the code folder is read-only, no module is compiled at start.
    """
    copy = tmp_path / "package"
    shutil.copytree(package, copy)
    for source in copy.rglob("*.py"):
        source.write_text("raise RuntimeError('the source was compiled')\n")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import handler; "
        "import agentcore_bridge.awslambda.bridge; "
        "assert callable(handler.handler)"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-B", "-c", probe, str(copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_build_is_reproducible(package: Path, tmp_path: Path) -> None:
    """The same sources give the same zip, so Terraform publishes no new version."""
    again = build_script.build(tmp_path)
    assert again.read_bytes() == (package.parent / "bridge.zip").read_bytes()


def test_package_imports_with_the_standard_library_alone(package: Path) -> None:
    """No site-packages (-S): only the zip's content and Python's own modules."""
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import handler; "
        "import agentcore_bridge; "
        "assert agentcore_bridge.__file__.startswith(sys.argv[1]), "
        "agentcore_bridge.__file__; "
        "assert callable(handler.handler); "
        "heavy = {'aiohttp', 'botocore', 'boto3', 'yarl', 'multidict'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", probe, str(package)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _gateway_settings(package: Path, emulator: Emulator) -> dict[str, Any]:
    """local_apigw settings that mirror the SAM template's function."""
    template = load_sam()
    function = template["Resources"]["BridgeFunction"]["Properties"]
    parameters = template["Parameters"]
    environment = sam_environment(template, AgentCoreRuntimeArn=emulator.runtime_arn)
    # The one addition: where "AWS" is. Everything else is the template's.
    environment["AGENTCORE_ENDPOINT_URL"] = emulator.url
    module, function_name = function["Handler"].split(".")
    return {
        "handler": f"{module}:{function_name}",
        "code_dir": str(package),
        "env": environment,
        "credentials": emulator.credentials,
        "region": emulator.region,
        "memory_size": parameters["MemorySize"]["Default"],
        "function_timeout": float(parameters["TimeoutSeconds"]["Default"]),
    }


def test_example_handler_answers_a_websocket_client(
    package: Path, emulator: Emulator
) -> None:
    settings = _gateway_settings(package, emulator)
    handler = settings.pop("handler")
    before = emulator.stats()["requests"].get("invoke", 0)
    with local_apigw(handler, **settings) as gateway:
        frames = asyncio.run(_converse(gateway.ws_url, "hello from the example"))
    _assert_streamed_answer(frames)
    assert emulator.stats()["requests"].get("invoke", 0) > before


def test_warmer_input_of_the_template_warms_n_environments(
    package: Path, emulator: Emulator
) -> None:
    """The schedule's Input, with N = 3, is what the handler reads as a warmer ping."""
    template = load_sam()
    target = template["Resources"]["WarmerSchedule"]["Properties"]["Target"]
    event = json.loads(target["Input"]["Fn::Sub"].replace("${WarmerConcurrency}", "3"))
    settings = _gateway_settings(package, emulator)
    handler = settings.pop("handler")
    with local_apigw(handler, **settings) as gateway:
        answer = gateway.client("lambda").invoke(
            FunctionName=gateway.function_name, Payload=json.dumps(event).encode()
        )
        result = json.loads(answer["Payload"].read())
        stats = gateway.stats()
    assert "FunctionError" not in answer, result
    assert result["warmed"] == 3, result
    assert stats["environments_alive"] >= 3


# ---------------------------------------------------------------- the container


def _container_environment(emulator: Emulator) -> dict[str, str]:
    """The Dockerfile's ENV, plus what a task gets, pointed at the emulator."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **dockerfile_env(load_dockerfile()[-1]),
        "AGENTCORE_RUNTIME_ARN": emulator.runtime_arn,
        "AGENTCORE_ENDPOINT_URL": emulator.url,
        "AWS_REGION": emulator.region,
        "AWS_ACCESS_KEY_ID": emulator.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": emulator.credentials.secret_access_key,
        # Loopback and a free port here; the image listens on 0.0.0.0:8080.
        "BRIDGE_HOST": "127.0.0.1",
        "BRIDGE_PORT": "0",
    }
    return environment


def _probe(command: list[str], port: int) -> int:
    """Run the HEALTHCHECK command (its ``python`` is this interpreter)."""
    assert command[0] == "python"
    result = subprocess.run(
        [sys.executable, *command[1:]],
        env={"BRIDGE_PORT": str(port), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        check=False,
        timeout=30,
    )
    return result.returncode


def test_container_command_streams_an_answer_and_stops_on_its_stop_signal(
    emulator: Emulator,
) -> None:
    final = load_dockerfile()[-1]
    (cmd,) = [i for i in final if i.keyword == "CMD"]
    command = exec_form(cmd.arguments)
    (stop,) = [i for i in final if i.keyword == "STOPSIGNAL"]
    executable = Path(sys.executable).with_name(command[0])
    assert executable.exists(), (
        f"{command[0]} is not installed next to {sys.executable}"
    )

    process = subprocess.Popen(
        [str(executable), *command[1:]],
        env=_container_environment(emulator),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in ready, ready + (
            process.stderr.read() if process.poll() is not None else ""
        )
        port = int(ready.rsplit(":", 1)[1])

        assert _probe(healthcheck_command(final), port) == 0
        frames = asyncio.run(_converse(f"ws://127.0.0.1:{port}/ws", "hello"))
        _assert_streamed_answer(frames)

        process.send_signal(getattr(signal, stop.arguments))
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # With the server gone, the same probe reports the container unhealthy.
    assert _probe(healthcheck_command(final), port) != 0


# ---------------------------------------------------------------- the image, locally


def _docker_runs(page: Path) -> list[list[str]]:
    """The ``docker run`` command lines of the page's shell samples."""
    text = page.read_text("utf-8")
    samples = re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
    runs = []
    for sample in samples:
        for line in sample.replace("\\\n", " ").splitlines():
            words = shlex.split(line)
            if words[:2] == ["docker", "run"]:
                runs.append(words[2:])
    return runs


def _parse_docker_run(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """The ``-e`` variables and the command after the image (empty: its CMD)."""
    environment: dict[str, str] = {}
    with_value = {"--name", "-p", "--network", "--add-host"}
    index = 0
    while words[index].startswith("-"):
        option = words[index]
        if option == "-e":
            key, _, value = words[index + 1].partition("=")
            environment[key] = value
            index += 2
        elif option in with_value:
            index += 2
        else:
            assert option in {"-d", "--rm"}, f"unexpected option {option}"
            index += 1
    return environment, words[index + 1 :]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"the command exited: {errors}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_the_local_try_of_the_image_streams_an_answer() -> None:
    """deploy-fargate.md's ``docker run`` pair, run as the containers would.

    No Docker here: each container's command runs as a process with the
    Dockerfile's ENV and the sample's ``-e`` variables. The containers share
    one network namespace, as the host's loopback stands in for here; the
    sample's ports are moved to free ones.
    """
    runs = [
        _parse_docker_run(r) for r in _docker_runs(ROOT / "docs" / "deploy-fargate.md")
    ]
    assert runs, "no docker run sample"
    # The last container is the bridge, running the image's own command.
    *helpers, (bridge_env, bridge_command) = runs
    assert bridge_command == []
    ports = {old: str(_free_port()) for old in ("8080", "8081", "9000")}

    def moved(text: str) -> str:
        return re.sub(r"\b(8080|8081|9000)\b", lambda m: ports[m.group(1)], text)

    bin_dir = str(Path(sys.executable).parent)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    final = load_dockerfile()[-1]
    (cmd,) = [i for i in final if i.keyword == "CMD"]
    image_env = {**dockerfile_env(final), "PATH": path}
    processes = []
    try:
        # The containers before it: here, the demo agent and the emulator.
        for environment, command in helpers:
            helper = subprocess.Popen(
                [moved(word) for word in command],
                env={**image_env, **environment},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            processes.append(helper)
            for old, new in ports.items():
                if old in " ".join(command):
                    _wait_for_port(int(new), helper)

        # The bridge, with the sample's variables.
        bridge = subprocess.Popen(
            exec_form(cmd.arguments),
            env={
                **image_env,
                **{key: moved(value) for key, value in bridge_env.items()},
                "BRIDGE_HOST": "127.0.0.1",
                "BRIDGE_PORT": ports["8080"],
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        processes.append(bridge)
        assert bridge.stdout is not None
        ready = bridge.stdout.readline()
        if "listening on" not in ready:
            # The server printed nothing: it stopped at start, saying why.
            bridge.wait(timeout=30)
            errors = bridge.stderr.read() if bridge.stderr else ""
            raise AssertionError(f"exit {bridge.returncode}: {errors}")
        url = f"ws://127.0.0.1:{ports['8080']}/ws"
        _assert_streamed_answer(asyncio.run(_converse(url, "hello from docker")))
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
