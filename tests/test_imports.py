"""Light modules stay light: importing them loads no heavy dependency.

The Lambda cold start and the pure core depend on this, so each check runs
in a fresh interpreter, where nothing else has imported anything yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stack import Emulator, local_stack

#: Modules that must import without the dependencies below. Add a module
#: here when it joins the light import path.
LIGHT_MODULES = [
    "agentcore_bridge",
    "agentcore_bridge.sigv4",
    "agentcore_bridge.awslambda",
]

#: Packages whose import costs tens of milliseconds and megabytes, or which
#: only the aiohttp server needs.
HEAVY_PACKAGES = ["aiohttp", "boto3", "botocore", "multidict", "yarl"]

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
heavy = json.loads(sys.argv[2])
print(json.dumps(sorted(
    name for name in sys.modules
    if name.partition(".")[0] in heavy
)))
"""


def heavy_modules_loaded_by(module: str) -> list[str]:
    """The modules of HEAVY_PACKAGES that importing ``module`` afresh loads."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module, json.dumps(HEAVY_PACKAGES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_import_loads_no_heavy_dependency(module: str) -> None:
    """A fresh interpreter importing the module has none of HEAVY_PACKAGES."""
    assert heavy_modules_loaded_by(module) == []


def test_probe_sees_a_heavy_import() -> None:
    """The probe itself works: importing botocore.auth is reported."""
    assert "botocore.auth" in heavy_modules_loaded_by("botocore.auth")


# The Lambda handler does without typing: importing it costs about 2 ms of
# every cold start. Type checkers read the package's Protocols through
# ``if TYPE_CHECKING:`` imports; the Protocols load on first use.

TYPING_PROBE = """
import json, sys
import agentcore_bridge.awslambda
print(json.dumps(sorted(name for name in sys.modules if name in ("typing", "_typing"))))
"""


def typing_modules_after(script: str, env: dict[str, str] | None = None) -> Any:
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_the_lambda_handler_loads_no_typing() -> None:
    assert typing_modules_after(TYPING_PROBE) == []


def test_the_protocols_and_typing_load_when_asked_for() -> None:
    """The probe sees typing, and the lazily exported names are the real ones."""
    script = TYPING_PROBE.replace(
        "import agentcore_bridge.awslambda\n",
        "import agentcore_bridge.awslambda as adapter, typing\n"
        "from agentcore_bridge.credentials import CredentialSource\n"
        "assert typing.Protocol in CredentialSource.__mro__\n"
        "assert typing.Protocol in adapter.LambdaContext.__mro__\n"
        "assert adapter.Authorize.__args__[-1] == 'str | None'\n",
    )
    # Python 3.10's typing is pure Python; later ones load _typing with it.
    assert typing_modules_after(script) in (["typing"], ["_typing", "typing"])


DIR_PROBE = """
import json, sys
import agentcore_bridge.awslambda as adapter
import agentcore_bridge.credentials as credentials
listed = {
    "awslambda": sorted(set(adapter.__all__) - set(dir(adapter))),
    "credentials": sorted(set(credentials.__all__) - set(dir(credentials))),
}
typing = sorted(name for name in sys.modules if name in ("typing", "_typing"))
import pydoc
pages = [pydoc.render_doc(m, renderer=pydoc.plaintext) for m in (adapter, credentials)]
print(json.dumps({
    "unlisted": listed,
    "typing_before_help": typing,
    "in_help": [
        "class LambdaContext" in pages[0],
        "class CredentialSource" in pages[1],
        "class CredentialProvider" in pages[1],
    ],
}))
"""


def test_dir_and_help_show_the_lazily_loaded_names() -> None:
    """dir() lists them without loading typing; help() documents them."""
    result = typing_modules_after(DIR_PROBE)
    assert result["unlisted"] == {"awslambda": [], "credentials": []}
    assert result["typing_before_help"] == []
    assert result["in_help"] == [True, True, True]


class _Connections(BaseHTTPRequestHandler):
    """A loopback ``@connections`` API that accepts every post."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def connections() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Connections)
    server.daemon_threads = True
    server.posts = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stack() -> Iterator[Emulator]:
    with local_stack() as emulator:
        yield emulator


FIRST_MESSAGE = """
import json, sys
import agentcore_bridge.awslambda as adapter

class Context:
    aws_request_id = "r"
    invoked_function_arn = ""
    def get_remaining_time_in_millis(self):
        return 60000

event = {
    "requestContext": {
        "eventType": "MESSAGE", "routeKey": "$default", "connectionId": "c1=",
        "apiId": "abc123", "stage": "prod", "requestId": "q",
    },
    "body": json.dumps({"type": "invoke", "id": "m1", "payload": {"prompt": "hi"}}),
}
adapter.handler(event, Context())
print(json.dumps(sorted(name for name in sys.modules if name in ("typing", "_typing"))))
"""


def test_a_first_message_loads_no_typing(
    stack: Emulator, connections: ThreadingHTTPServer
) -> None:
    """Nothing on the way from the handler call to the agent's answer needs it."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AGENTCORE_RUNTIME_ARN": stack.runtime_arn,
        "AGENTCORE_ENDPOINT_URL": stack.url,
        "AWS_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": stack.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": stack.credentials.secret_access_key,
        "BRIDGE_SESSION_SECRET": "s" * 32,
        "BRIDGE_CONNECTIONS_ENDPOINT_URL": (
            f"http://127.0.0.1:{connections.server_address[1]}/prod"
        ),
    }
    assert typing_modules_after(FIRST_MESSAGE, env) == []
    assert connections.posts > 0  # type: ignore[attr-defined]
