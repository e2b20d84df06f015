"""The documentation, checked against the code.

Code samples
------------
Every ```python block of README.md, docs/*.md and examples/*/README.md
runs as a script of its own, in a fresh interpreter (``sys.executable``)
whose working directory is an empty temporary one. Its environment is
what a reader has after following docs/quickstart.md, and nothing else:

- ``AGENTCORE_ENDPOINT_URL``, ``AGENTCORE_RUNTIME_ARN``, ``AWS_REGION``,
  ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``, as
  ``agentcore-bridge local-agentcore`` prints them, name a demo agent and
  an AgentCore emulator that this module starts on ephemeral ports;
- ``BRIDGE_URL`` is the ``ws://.../ws`` address of a bridge server
  (``create_app``) in front of them. Samples that talk to a bridge read it
  with ``os.environ.get("BRIDGE_URL", "ws://127.0.0.1:8000/ws")``, whose
  default is a local ``agentcore-bridge serve``; the bridge itself never
  reads this variable;
- ``PYTHONPATH`` holds tests/, for the samples that show the test helpers,
  and benchmarks/snapstart_standin/, whose ``snapshot_restore_py`` has the
  functions of Lambda's, for the samples that register SnapStart hooks;
- ``PATH`` and the locale come from the caller; ``HOME`` is the temporary
  directory, so no ``~/.aws`` file of the machine is read.

A block under ``<!-- serves until interrupted -->`` is a server on port
8000: it runs on a free port instead, must answer ``GET /healthz``, and
must exit with status 0 after Ctrl-C (SIGINT). A block is left out only
when the line above it is ``<!-- not run: REASON -->``. Each one left out
shows as a skipped test with its reason in pytest's summary; a marker
without a reason fails.

Console transcripts
-------------------
Each ```console block of the pages above that ends in an
``agentcore-bridge`` command runs (the command on a free port, with what
the quick start has exported by then) and must print the lines the block
shows, in order and unbroken, but for the ports in addresses; ``...``
marks lines left out.

Other checks
------------
- Shell and text blocks, and inline code, name only ``agentcore-bridge``
  subcommands that exist (``cli.COMMANDS``) and ``make`` targets the
  Makefile has.
- docs/configuration.md lists every ``Settings`` variable with the default,
  and the adapter (Lambda, server or both), that the code has; nothing
  else; each rule in its table is tried with values on both sides of it;
  and every flag of the five commands. The settings tables of
  docs/lambda.md and docs/server.md list what their adapter reads, and the
  flag tables of docs/local.md and docs/local-apigw.md only real flags.
- docs/architecture.md puts every module of the package in a layer, and
  the core and the synchronous transport import nothing but the standard
  library.
- Relative links, and their anchors, point at files and headings that
  exist; so do repository paths written as inline code (from the page's
  own folder, for the examples' READMEs).
- Every ``BRIDGE_`` and ``AGENTCORE_`` name in the docs is a setting, and
  every ``test_...`` name a page cites is a test.
- The numbers README.md quotes appear on the page it cites for them.
- A page whose samples import a package that the bridge does not install
  (``websockets``, ``boto3``) says to ``pip install`` it.
- docs/local-apigw.md names every key of the emulator's ``/_emulator/stats``
  and every environment variable a worker gets.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets.sync.client

from agentcore_bridge.cli import COMMANDS
from agentcore_bridge.config import Settings
from agentcore_bridge.credentials import Credentials
from agentcore_bridge.exceptions import ValidationError
from agentcore_bridge.local.apigw import (
    _INHERITED_VARIABLES,
    ApiGatewayConfig,
    LocalApiGateway,
)
from apigw_stack import local_apigw
from server_helpers import bridge_stack

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
#: The benchmarks' stand-in for Lambda's snapshot_restore_py, for samples
#: that register SnapStart hooks.
SNAPSTART_STAND_IN = ROOT / "benchmarks" / "snapstart_standin"
PACKAGE = ROOT / "src" / "agentcore_bridge"
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("*/README.md")),
]

#: The variable samples read the bridge's address from; see the docstring.
SAMPLE_VARIABLES = {"BRIDGE_URL"}
#: Each sample must finish within this many seconds.
SAMPLE_TIMEOUT = 60

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_OPT_OUT = re.compile(r"^<!--\s*not run(?:\s*:\s*(?P<reason>.*?))?\s*-->$")
#: Above a sample that serves on port 8000 until it is interrupted.
_SERVES = "<!-- serves until interrupted -->"
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the opening fence, from 1
    lang: str
    text: str
    #: None without a marker above; the reason ("" when none) with one.
    opt_out: str | None
    #: Whether the sample is a server, run until it answers, then stopped.
    serves: bool = False

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        start, indent = index, match.group(1)
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index].removeprefix(indent))
            index += 1
        found.append(
            Block(
                page,
                start + 1,
                match.group(2),
                "\n".join(body) + "\n",
                _marker_above(lines, start),
                serves=start > 0 and lines[start - 1].strip() == _SERVES,
            )
        )
        index += 1
    return found


def _marker_above(lines: list[str], fence: int) -> str | None:
    above = fence - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above < 0:
        return None
    match = _OPT_OUT.match(lines[above].strip())
    if match is None:
        return None
    return match.group("reason") or ""


def prose(page: Path) -> str:
    """The page without its fenced code blocks."""
    kept: list[str] = []
    inside = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line) or (inside and line.strip() == "```"):
            inside = not inside
            continue
        if not inside:
            kept.append(line)
    return "\n".join(kept)


def inline_code(page: Path) -> list[str]:
    return _INLINE_CODE.findall(prose(page))


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.lang == "python"]


# Code samples.


@pytest.fixture(scope="module")
def sample_environment() -> Iterator[dict[str, str]]:
    """The environment of every sample (but HOME), with the servers it names."""
    with bridge_stack() as bridge:
        emulator = bridge.emulator
        environ = {
            name: os.environ[name]
            for name in ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT")
            if name in os.environ
        }
        environ.update(
            PYTHONPATH=os.pathsep.join([str(TESTS), str(SNAPSTART_STAND_IN)]),
            AGENTCORE_ENDPOINT_URL=emulator.url,
            AGENTCORE_RUNTIME_ARN=emulator.runtime_arn,
            AWS_REGION=emulator.region,
            AWS_ACCESS_KEY_ID=emulator.credentials.access_key_id,
            AWS_SECRET_ACCESS_KEY=emulator.credentials.secret_access_key,
            BRIDGE_URL=bridge.ws_url(),
        )
        yield environ


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: block.where)
def test_python_sample_runs(
    block: Block, sample_environment: dict[str, str], tmp_path: Path
) -> None:
    """The sample runs to its end, exit status 0, against the local stack."""
    if block.opt_out:  # a marker without a reason still runs, and fails below
        pytest.skip(f"{block.where} not run: {block.opt_out}")
    if block.serves:
        run_server_sample(
            block, {**sample_environment, "HOME": str(tmp_path)}, tmp_path
        )
        return
    script = tmp_path / "sample.py"
    script.write_text(block.text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**sample_environment, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=SAMPLE_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"the sample at {block.where} failed:\n{result.stdout}{result.stderr}"
    )


#: Top-level modules that ``pip install 'agentcore-bridge[server]'``, which
#: is all ``make demo`` installs, makes importable.
INSTALLED_WITH_THE_PACKAGE = {
    "agentcore_bridge",
    "aiohttp",
    "botocore",
    "typing_extensions",
    "yarl",
}


def sample_imports(block: Block) -> set[str]:
    """Top-level names of the modules a python sample imports."""
    names = set()
    for node in ast.walk(ast.parse(block.text)):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def test_pages_say_how_to_install_what_their_samples_import() -> None:
    """A sample that imports a package the bridge does not install, such as
    ``websockets`` or ``boto3``, sits on a page that says ``pip install``
    it: a reader who ran ``make demo`` has only the package and aiohttp."""
    helpers = {path.stem for path in TESTS.glob("*.py")} | {
        path.stem for path in SNAPSTART_STAND_IN.glob("*.py")
    }
    missing = set()
    for block in PYTHON_BLOCKS:
        text = block.page.read_text(encoding="utf-8")
        for name in sample_imports(block):
            if name in sys.stdlib_module_names or name in helpers:
                continue
            if name in INSTALLED_WITH_THE_PACKAGE:
                continue
            if not re.search(rf"pip install [^`\n]*\b{re.escape(name)}\b", text):
                missing.add((str(block.page.relative_to(ROOT)), name))
    assert missing == set()


def run_server_sample(block: Block, env: dict[str, str], tmp_path: Path) -> None:
    """Serve the sample on a free port, check ``/healthz``, stop it with Ctrl-C.

    The sample must exit with status 0 after the interrupt, as
    ``web.run_app`` does.
    """
    assert "port=8000" in block.text, f"{block.where} serves on another port"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = tmp_path / "server.py"
    script.write_text(block.text.replace("port=8000", f"port={port}"), "utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + SAMPLE_TIMEOUT
        while health is None and process.poll() is None:
            assert time.monotonic() < deadline, f"{block.where} never served"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=5
                ) as answer:
                    health = json.load(answer)
            except OSError:
                time.sleep(0.1)
        assert health is not None, f"{block.where} exited:\n{process.communicate()[0]}"
        assert health["status"] == "ok"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=SAMPLE_TIMEOUT)
        assert process.returncode == 0, f"{block.where} failed:\n{output}"
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_every_opt_out_has_a_reason() -> None:
    """``<!-- not run: REASON -->`` names a reason of a few words."""
    missing = [
        block.where
        for block in ALL_BLOCKS
        if block.opt_out is not None and len(block.opt_out.split()) < 3
    ]
    assert missing == []


def test_opt_out_markers_sit_above_python_blocks() -> None:
    """A marker above anything but a python block is a mistake."""
    stray = [
        block.where
        for block in ALL_BLOCKS
        if block.opt_out is not None and block.lang != "python"
    ]
    markers = sum(
        1
        for page in PAGES
        for line in page.read_text(encoding="utf-8").splitlines()
        if _OPT_OUT.match(line.strip())
    )
    assert stray == []
    assert markers == sum(1 for b in PYTHON_BLOCKS if b.opt_out is not None)


# Console transcripts.

#: Pages whose ```console transcripts of ``agentcore-bridge`` commands are
#: run and compared with what the command prints.
TRANSCRIPT_PAGES = PAGES
_ADDRESS = re.compile(r"(127\.0\.0\.1|0\.0\.0\.0|localhost):\d+")


@dataclass(frozen=True)
class Transcript:
    """A console block: the commands typed (``$ ...``) and the lines shown.

    ``output`` holds runs of lines that the command prints one after the
    other; a ``...`` line in the block ends a run (lines left out).
    """

    block: Block
    commands: list[str]
    output: list[list[str]]


def transcripts() -> list[Transcript]:
    """The console blocks of TRANSCRIPT_PAGES that end in a bridge command."""
    found = []
    for page in TRANSCRIPT_PAGES:
        for block in blocks(page):
            if block.lang != "console":
                continue
            commands: list[str] = []
            output: list[list[str]] = [[]]
            continued = False
            for line in block.text.splitlines():
                if continued:
                    commands[-1] += "\n" + line
                elif line.startswith("$ "):
                    commands.append(line[2:])
                elif line.strip() == "...":
                    output.append([])
                elif line.strip():
                    output[-1].append(line.rstrip())
                continued = line.endswith("\\")
            if commands and commands[-1].startswith("agentcore-bridge "):
                runs = [run for run in output if run]
                found.append(Transcript(block, commands, runs))
    return found


def on_a_free_port(command: str) -> str:
    """The command with ``--port 0``, unless it shows a refused port."""
    match = re.search(r"--port[ =](\d+)", command)
    if match is None:
        return f"{command} --port 0"
    if int(match.group(1)) > 65535:
        return command
    return command[: match.start()] + "--port 0" + command[match.end() :]


def _normalized(line: str) -> str:
    return _ADDRESS.sub(r"\1:PORT", line.rstrip())


def _runs_found(seen: list[str], runs: list[list[str]]) -> int:
    """How many of ``runs`` appear in ``seen``, in order, each one unbroken."""
    start = 0
    for found, run in enumerate(runs):
        for index in range(start, len(seen) - len(run) + 1):
            if seen[index : index + len(run)] == run:
                start = index + len(run)
                break
        else:
            return found
    return len(runs)


def _read_until(
    process: subprocess.Popen[str], runs: list[list[str]], timeout: float
) -> list[str]:
    """Lines the process prints (blank ones left out) until ``runs`` appeared."""
    seen: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while _runs_found(seen, runs) < len(runs):
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        if line is None:
            break
        if line.strip():
            seen.append(_normalized(line))
    return seen


@pytest.mark.parametrize("transcript", transcripts(), ids=lambda t: t.block.where)
def test_console_transcripts_show_what_the_command_prints(
    transcript: Transcript, tmp_path: Path
) -> None:
    """Run the block's commands (the last on any free port): the lines shown
    are what it prints, in order, ports of addresses aside; ``...`` stands
    for lines left out."""
    bin_dir = Path(sys.executable).parent
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        # What the earlier steps of the quick start leave exported.
        "AGENTCORE_RUNTIME_ARN": (
            "arn:aws:bedrock-agentcore:us-west-2:123456789012:"
            "runtime/demo_agent-LocalEmu01"
        ),
        "AGENTCORE_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "AKIALOCALEMULATOR00",
        "AWS_SECRET_ACCESS_KEY": "LocalEmulatorSecretKeyNotASecret00000000",
        "BRIDGE_SESSION_SECRET": "transcript-check-session-secret-0123456789",
    }
    *setup, command = transcript.commands
    script = "\n".join(["set -e", *setup, f"exec {on_a_free_port(command)}"])
    runs = [[_normalized(line) for line in run] for run in transcript.output]
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        seen = _read_until(process, runs, timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert _runs_found(seen, runs) == len(runs), (
        f"{transcript.block.where} shows:\n"
        + "\n...\n".join("\n".join(run) for run in runs)
        + "\nbut the command printed:\n"
        + "\n".join(seen)
    )


def test_the_transcript_check_sees_the_bridge_commands() -> None:
    """Each local command of the quick start has a transcript to check."""
    commands = {t.commands[-1].split()[1] for t in transcripts()}
    assert commands >= {"demo-agent", "local-agentcore", "serve", "local-apigw"}


# Commands in shell blocks and inline code.

_COMMAND = re.compile(r"(?:^|(?<=[\s$(/]))agentcore-bridge[ \t]+([a-z][a-z0-9-]*)")
_MAKE = re.compile(r"(?:^|(?<=[\s$;&|(]))make[ \t]+([A-Za-z_][\w-]*)")


def command_texts() -> Iterator[tuple[str, str]]:
    """(where, text) of every non-python block and every inline code span."""
    for block in ALL_BLOCKS:
        if block.lang != "python":
            yield block.where, block.text
    for page in PAGES:
        for code in inline_code(page):
            yield str(page.relative_to(ROOT)), code


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z_][\w-]*)\s*:(?!=)", text, flags=re.M))


def test_shell_samples_name_existing_subcommands() -> None:
    """Every ``agentcore-bridge X`` the docs show is a real subcommand."""
    unknown = [
        (where, name)
        for where, text in command_texts()
        for name in _COMMAND.findall(text)
        if name not in COMMANDS
    ]
    assert unknown == []


def test_shell_samples_name_existing_make_targets() -> None:
    """Every ``make X`` the docs show is a target of the Makefile."""
    targets = makefile_targets()
    unknown = [
        (where, name)
        for where, text in command_texts()
        for name in _MAKE.findall(text)
        if name not in targets
    ]
    assert unknown == []


def test_the_checks_see_commands_and_targets() -> None:
    """The two checks above find something to check."""
    texts = [text for _, text in command_texts()]
    assert any(_COMMAND.search(text) for text in texts)
    assert {"demo", "test"} <= {n for t in texts for n in _MAKE.findall(t)}


# docs/configuration.md.

CONFIGURATION = ROOT / "docs" / "configuration.md"


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the table whose header row starts with ``header``."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(header):
            rows = []
            for row in lines[index + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(
                    [cell.strip() for cell in row.strip().strip("|").split("|")]
                )
            return rows
    raise AssertionError(f"no table starting with {header!r}")


def settings_rows() -> dict[str, list[str]]:
    rows = table_rows(
        CONFIGURATION.read_text(encoding="utf-8"),
        "| variable | default | rule | meaning | applies to |",
    )
    return {row[0].strip("`"): row for row in rows}


def documented_default(value: object) -> str:
    """How the table writes a default: what the variable would be set to."""
    if value is None:
        return "unset"
    if value == ():
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def adapters_reading(field: str) -> str:
    """Which adapters' code reads ``settings.<field>``: Lambda, server or both."""

    def reads(folder: str) -> bool:
        pattern = re.compile(rf"settings\.{field}\b")
        if field == "runtime_arn":
            pattern = re.compile(r"settings\.(runtime_arn|require_runtime_arn)\b")
        return any(
            pattern.search(path.read_text(encoding="utf-8"))
            for path in (PACKAGE / folder).glob("*.py")
        )

    found = [
        name
        for name, folder in (("Lambda", "awslambda"), ("server", "server"))
        if reads(folder)
    ]
    return "both" if len(found) == 2 else found[0] if found else "neither"


def test_configuration_lists_every_setting_and_nothing_else() -> None:
    """The settings table has one row per ``Settings`` variable."""
    assert sorted(settings_rows()) == sorted(Settings.variables())


SPECS = Settings.specs()  # (field, variable, default, description)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec[0])
def test_configuration_shows_the_default_the_code_uses(
    spec: tuple[str, str, object, str],
) -> None:
    """The default column is the setting's default in the code."""
    _, variable, default, _ = spec
    row = settings_rows()[variable]
    assert row[1] == documented_default(default)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec[0])
def test_configuration_says_which_adapter_reads_each_setting(
    spec: tuple[str, str, object, str],
) -> None:
    """The "applies to" column matches the adapters whose code reads it."""
    field_name, variable, _, _ = spec
    row = settings_rows()[variable]
    assert row[4] == adapters_reading(field_name)


@pytest.mark.parametrize(
    ("page", "adapter"), [("lambda.md", "Lambda"), ("server.md", "server")]
)
def test_adapter_pages_list_their_settings_with_the_code_defaults(
    page: str, adapter: str
) -> None:
    """The settings table of lambda.md (server.md) has the variables that
    adapter reads, and a literal default there is the code's default."""
    text = section((ROOT / "docs" / page).read_text("utf-8"), "## Settings")
    rows = {
        row[0].strip("`"): row for row in table_rows(text, "| variable | default |")
    }
    defaults = {variable: default for _, variable, default, _ in SPECS}
    wanted = {
        variable
        for field_name, variable, _, _ in SPECS
        if adapters_reading(field_name) in (adapter, "both")
    }
    # Lambda sets AWS_REGION for every function; lambda.md says so in prose.
    assert set(rows) == wanted - {"AWS_REGION"}
    for name, row in rows.items():
        shown = row[1].strip("`")
        if re.fullmatch(r"[\w.]+", shown) and shown not in {"any", "unset"}:
            assert shown == documented_default(defaults[name]).strip("`"), name


def test_configuration_lists_the_aws_variables_the_library_reads() -> None:
    """Every AWS_ variable read in src/ is in the AWS table, which names no other."""
    read = set()
    for path in PACKAGE.rglob("*.py"):
        if "local" not in path.relative_to(PACKAGE).parts:
            read |= set(re.findall(r'"(AWS_[A-Z_]+)"', path.read_text("utf-8")))
    rows = table_rows(
        CONFIGURATION.read_text(encoding="utf-8"), "| AWS variable | read by |"
    )
    documented = {name for row in rows for name in re.findall(r"`(AWS_\w+)`", row[0])}
    credentials_page = (ROOT / "docs" / "credentials.md").read_text("utf-8")
    assert read - {"AWS_REGION"} <= documented
    assert all(name in read or name in credentials_page for name in documented)


_ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/demo_agent-AbC123"
_BOOLEANS = ["true", "false", "1", "0", "yes", "no", "on", "off", "TRUE"]

#: Each rule of the settings table, with values the code must accept and
#: values it must refuse. A rule written differently on the page has no
#: entry here, and the test below asks for one.
RULES: dict[str, tuple[list[str], list[str]]] = {
    "`arn:aws:bedrock-agentcore:REGION:ACCOUNT:runtime/ID`": (
        [_ARN],
        ["arn:aws:lambda:us-west-2:123456789012:function:f", "runtime/demo"],
    ),
    "1 to 100 of `A-Z a-z 0-9 _ -`, first a letter or digit": (
        ["a", "Prod_v-2", "9" * 100],
        ["a" * 101, "-prod", "_prod", "pro d", "prod.1"],
    ),
    "`https://` URL, or `http://` to a loopback host; no query string": (
        ["https://bedrock.example", "http://127.0.0.1:9000", "http://localhost:9"],
        ["http://bedrock.example", "https://x.example/?a=1", "ftp://x", "x.example"],
    ),
    "a region name such as `us-east-1`": (
        ["us-east-1", "eu-central-2"],
        ["us east 1", "us_east_1", "US-EAST-1", "\u00fcs-east-1"],
    ),
    "`http://` or `https://` URL, no query": (
        ["http://10.0.0.5:3001/local", "https://api.example/prod"],
        [
            "ftp://x.example",
            "x.example/prod",
            "http://",
            "https://api.example/prod?a=1",
            "https://api.example:99999/prod",
        ],
    ),
    "whole number, 1 or more": (["1", "250000"], ["0", "-3", "1.5", "many"]),
    "whole number, 1024 or more": (["1024", "131072"], ["1023", "0", "big"]),
    "seconds, 0 or more": (["0", "0.25", "900"], ["-0.1", "soon", "inf", "nan"]),
    "seconds, 0 or more (at most 10 are used)": (["0", "10", "60"], ["-1", "x"]),
    "0 (no pings), or 1 second or more": (
        ["0", "1", "25", "600.5"],
        ["0.5", "0.01", "-1", "inf", "often"],
    ),
    "seconds, more than 0": (["0.5", "3600"], ["0", "-1", "never"]),
    "32 characters or more": (["s" * 32], ["s" * 31]),
    "comma-separated origins, `scheme://host[:port]` without a path, or `*`": (
        ["https://app.example", "http://localhost:3000, https://a.example:8443", "*"],
        ["app.example", "https://app.example/chat", "https://app.example?x=1"],
    ),
    "`true`, `false` (also `1`/`0`, `yes`/`no`, `on`/`off`)": (
        _BOOLEANS,
        ["maybe", "2"],
    ),
    "`true` or `false`": (_BOOLEANS, ["maybe", "2"]),
    "JSON (RFC 8259: no `NaN`)": (
        ['{"prompt": "warm up"}', '"hello"', "3"],
        ["{", "warm up", "NaN"],
    ),
    "letters, digits, `_`": (["my_warmer_2"], ["my-warmer", "my.warmer", "ключ"]),
    "`json` or `text`": (["json", "text"], ["xml", "JSON"]),
    "an address or host name": (
        ["0.0.0.0", "::", "bridge.internal"],
        ["two words", "http://host/"],
    ),
    "0 to 65535": (["0", "8000", "65535"], ["65536", "-1", "http"]),
    "number more than 0": (["0.5", "5"], ["0", "-1", "inf", "fast"]),
    "comma-separated tokens, each 16 or more of `A-Z a-z 0-9 - . _ ~ + / =`": (
        ["a" * 16, f"{'a' * 16},{'B-._~+/=' * 3}"],
        ["short", f"{'a' * 15}!", f"{'a' * 16},{'b' * 15}"],
    ),
    "`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`": (
        ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        ["TRACE", "verbose"],
    ),
}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec[0])
def test_configuration_rules_are_the_rules_the_code_applies(
    spec: tuple[str, str, object, str],
) -> None:
    """Values on both sides of a row's rule are accepted and refused at start-up.

    A refusal is a ValidationError naming the variable; nothing else is
    raised for any value.
    """
    _, variable, _, _ = spec
    rule = settings_rows()[variable][2]
    assert rule in RULES, f"no probes for the rule {rule!r} of {variable}"
    accepted, refused = RULES[rule]
    for value in accepted:
        Settings.from_env({variable: value})
    for value in refused:
        with pytest.raises(ValidationError) as caught:
            Settings.from_env({variable: value})
        assert caught.value.field == variable, (variable, value)


def cli_options(command: str) -> set[str]:
    """The options of ``agentcore-bridge COMMAND``, from its own --help."""
    module_name, _, function_name = COMMANDS[command][0].partition(":")
    main = getattr(importlib.import_module(module_name), function_name)
    output = io.StringIO()
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit):
        main(["--help"])
    options = set()
    for line in output.getvalue().splitlines():
        if line.startswith("  -"):
            spec = re.split(r"\s{2,}", line.strip())[0]
            options |= set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", spec))
    return options - {"-h", "--help"}


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading)
    end = len(lines)
    for index in range(start + 1, len(lines)):
        match = re.match(r"^(#+)\s", lines[index])
        if match and len(match.group(1)) <= level:
            end = index
            break
    return "\n".join(lines[start + 1 : end])


def flags_in_tables(text: str) -> set[str]:
    """The flags named in the first column of the tables of ``text``."""
    flags = set()
    for line in text.splitlines():
        if line.startswith("| `-"):
            first = line.strip("|").split("|")[0]
            for code in _INLINE_CODE.findall(first):
                flags |= set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", code))
    return flags


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_configuration_lists_every_flag_of_each_command(command: str) -> None:
    """The command's table in docs/configuration.md has exactly its flags."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    documented = flags_in_tables(section(text, f"### `agentcore-bridge {command}`"))
    assert documented == cli_options(command)


@pytest.mark.parametrize(
    ("page", "heading", "command"),
    [
        ("local.md", "## The demo agent", "demo-agent"),
        ("local.md", "## The emulator", "local-agentcore"),
        ("local-apigw.md", "## Options", "local-apigw"),
    ],
)
def test_flag_tables_of_other_pages_name_real_flags(
    page: str, heading: str, command: str
) -> None:
    """The flag tables of the emulator pages name no flag the command lacks."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    documented = flags_in_tables(section(text, heading))
    assert documented
    assert documented <= cli_options(command) | {"-v"}


def test_every_bridge_variable_in_the_docs_is_a_setting() -> None:
    """No page names a BRIDGE_ or AGENTCORE_ variable the code does not read."""
    known = set(Settings.variables()) | SAMPLE_VARIABLES
    unknown = {
        (str(page.relative_to(ROOT)), name)
        for page in PAGES
        for name in re.findall(
            r"\b(?:BRIDGE|AGENTCORE)_[A-Z0-9_]*[A-Z0-9]\b",
            page.read_text(encoding="utf-8"),
        )
        if name not in known
    }
    assert unknown == set()


# docs/architecture.md.

ARCHITECTURE = ROOT / "docs" / "architecture.md"


def architecture_layers() -> dict[str, list[str]]:
    """Each layer of the table with the module names its second column gives."""
    rows = table_rows(
        ARCHITECTURE.read_text(encoding="utf-8"),
        "| layer | modules | does I/O? | imports |",
    )
    layers = {}
    for row in rows:
        # `name` and `name/` are modules and packages; `serve`, `demo` and
        # `agentcore-bridge` in the parentheses are not.
        outside = re.sub(r"\([^)]*\)", "", row[1])
        layers[row[0]] = _INLINE_CODE.findall(outside)
    return layers


def test_architecture_names_every_module_of_the_package() -> None:
    """Each public module and subpackage of agentcore_bridge is in one layer."""
    named = [
        name.removesuffix("/").removesuffix(".py")
        for names in architecture_layers().values()
        for name in names
    ]
    present = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if not path.name.startswith(("_", "."))
        and (path.suffix == ".py" or (path.is_dir() and path.name != "__pycache__"))
    }
    top_level = {name.split("/")[0] for name in named}
    assert top_level == present
    assert len(named) == len(set(named))
    for name in named:
        path = PACKAGE / name
        assert path.with_suffix(".py").is_file() or path.is_dir(), name


def test_core_and_sync_layers_import_only_the_standard_library() -> None:
    """A fresh interpreter importing them loads stdlib and our modules only."""
    layers = architecture_layers()
    modules = [
        "agentcore_bridge." + name.removesuffix(".py").replace("/", ".")
        for layer in ("core", "sync transport")
        for name in layers[layer]
    ]
    assert len(modules) > 10
    probe = (
        "import importlib, json, sys\n"
        "before = set(sys.modules)\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, *modules],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    foreign = [
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] != "agentcore_bridge"
    ]
    assert foreign == []


# Links.


def github_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``page``."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*$", prose(page), flags=re.M):
        base = "".join(c for c in heading.lower() if c.isalnum() or c in " -_").replace(
            " ", "-"
        )
        anchor, number = base, 0
        while anchor in anchors:
            number += 1
            anchor = f"{base}-{number}"
        anchors.add(anchor)
    return anchors


def relative_links() -> Iterator[tuple[Path, str]]:
    for page in PAGES:
        for target in _LINK.findall(prose(page)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                yield page, target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_and_headings(page: Path) -> None:
    """Each relative link's file exists, and its #anchor is one of its headings."""
    broken = []
    for source, target in relative_links():
        if source != page:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (
            anchor
            and resolved.suffix == ".md"
            and anchor not in github_anchors(resolved)
        ):
            broken.append(target)
    assert broken == []


def test_the_link_check_sees_links_and_anchors() -> None:
    """The check above has links with and without anchors to look at."""
    targets = [target for _, target in relative_links()]
    assert any("#" in t for t in targets)
    assert any("#" not in t for t in targets)


def test_repository_paths_in_inline_code_exist() -> None:
    """`docs/x.md`, `tests/x.py`, `agentcore_bridge/static/x.js` ... exist."""
    missing = []
    for page in PAGES:
        for code in inline_code(page):
            if not re.fullmatch(r"[\w.-]+(/[\w.-]+)+/?", code):
                continue
            first = code.split("/")[0]
            if page.parent.parent.name == "examples":
                if first == "build":
                    continue  # what build.py writes; examples/.gitignore has it
                candidates = [page.parent / code, ROOT / code]
            elif first in {"docs", "tests", "benchmarks", "examples", "src"}:
                candidates = [ROOT / code]
            elif first == "agentcore_bridge":
                candidates = [ROOT / "src" / code]
            else:
                continue
            if not any(path.exists() for path in candidates):
                missing.append((str(page.relative_to(ROOT)), code))
    assert missing == []


def test_every_docs_page_is_linked_from_the_readme_and_the_index() -> None:
    """README.md and docs/README.md each link to every page of docs/."""
    pages = {p.name for p in PAGES if p.parent.name == "docs"} - {"README.md"}
    readme = {
        Path(t.partition("#")[0]).name
        for s, t in relative_links()
        if s == ROOT / "README.md"
    }
    index = {
        Path(t.partition("#")[0]).name
        for s, t in relative_links()
        if s == ROOT / "docs" / "README.md"
    }
    assert pages - readme == set()
    assert pages - index == set()


def test_tests_the_docs_name_exist() -> None:
    """Every `test_...` name a page cites is a test function in tests/."""
    defined = {
        name
        for path in TESTS.glob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text("utf-8"), re.M)
    }
    cited = {
        (str(page.relative_to(ROOT)), name)
        for page in PAGES
        for code in inline_code(page)
        for name in re.findall(r"^(test_\w+)$", code)
    }
    assert cited
    assert {(where, name) for where, name in cited if name not in defined} == set()


# README numbers.


def test_readme_numbers_come_from_the_page_they_cite() -> None:
    """Each number of a README "Measured" item appears on the page it links."""
    readme = ROOT / "README.md"
    items = re.split(r"\n(?=- )", section(readme.read_text("utf-8"), "## Measured"))
    unsourced = []
    for item in items:
        cited = [t for t in _LINK.findall(item) if t.startswith("docs/")]
        if not cited:
            continue
        pages = "".join((ROOT / t.partition("#")[0]).read_text("utf-8") for t in cited)
        words = re.sub(r"\]\([^)]*\)", "]", item)  # not the link targets
        for number in re.findall(r"\d[\d,.]*\d|\d", words):
            if number not in pages:
                unsourced.append(number)
    assert sum(1 for item in items if "](docs/" in item) >= 3
    assert unsourced == []


# Figures cost.md derives from other pages and from its own prices.


def test_cost_page_quotes_the_coalescing_ratio_lambda_md_measures() -> None:
    """The "N times fewer messages" of cost.md is lambda.md's table's ratio."""
    table = section(
        (ROOT / "docs" / "lambda.md").read_text("utf-8"), "## Streaming an answer"
    )
    rows = {
        cells[0]: cells
        for line in table.splitlines()
        if line.startswith("| ")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    coalesced = int(rows["coalesced (100 ms window)"][2].replace(",", ""))
    alone = int(rows["one post per frame (window 0)"][2].replace(",", ""))
    ratio = round(alone / coalesced)
    cost = " ".join((ROOT / "docs" / "cost.md").read_text("utf-8").split())
    quoted = re.findall(r"measures (\d+) times fewer messages", cost)
    assert quoted == [str(ratio)]


def test_cost_page_free_tier_share_is_the_arithmetic_of_its_profile() -> None:
    """The share of the 100,000-message duration the free tier covers."""
    duration = 0.5 * 10 * 100_000  # GB x seconds per message x messages
    share = 400_000 / duration
    cost = " ".join((ROOT / "docs" / "cost.md").read_text("utf-8").split())
    words = {0.5: "half", 0.8: "four fifths", 1.0: "all"}[round(share, 2)]
    assert f"{words} of the second row's duration ({duration:,.0f} GB-s)" in cost


# docs/local-apigw.md.


def test_local_apigw_stats_table_names_every_key_the_emulator_answers() -> None:
    """The table of ``GET /_emulator/stats`` names every key of the answer,
    and every field of an environment, a connection and the counters."""
    text = (ROOT / "docs" / "local-apigw.md").read_text(encoding="utf-8")
    documented = set(
        _INLINE_CODE.findall(section(text, "## The emulator's own endpoints"))
    )
    with (
        local_apigw("echo:handler") as gateway,
        websockets.sync.client.connect(gateway.ws_url),
    ):
        stats = gateway.stats()
    answered = (
        set(stats)
        | set(stats["environments"][0])
        | set(stats["connections"][0])
        | set(stats["counters"])
    )
    assert answered - documented == set()


def test_local_apigw_lists_every_variable_a_worker_gets() -> None:
    """The handler's world names each variable the emulator sets for a worker
    (with a session token and a base URL) and each one it passes on."""
    text = (ROOT / "docs" / "local-apigw.md").read_text(encoding="utf-8")
    documented = set(_INLINE_CODE.findall(section(text, "## The handler's world")))
    credentials = Credentials("AKIDEXAMPLE", "secret", "token")
    gateway = LocalApiGateway(ApiGatewayConfig("app:handler", credentials=credentials))
    gateway.set_base_url("http://127.0.0.1:3001")
    named = set(gateway.worker_environment()) | set(_INHERITED_VARIABLES)
    assert named - documented == set()
