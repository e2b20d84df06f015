"""SnapStart hooks of the Lambda adapter, with a stand-in for the runtime's module.

``snapshot_restore_py`` exists only in Lambda's Python runtime; here a
small module of the same name on ``sys.path`` records what is registered,
and a fresh interpreter plays an environment that is snapshotted and then
restored. A loopback ``@connections`` server sees what the restored
environment does: which connection it posts on, and with which keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FAKE_MODULE = '''
"""Stand-in for Lambda's snapshot_restore_py: records the hooks."""
before_snapshot = []
after_restore = []

def register_before_snapshot(hook, *args, **kwargs):
    before_snapshot.append(hook)

def register_after_restore(hook, *args, **kwargs):
    after_restore.append(hook)
'''

ENVIRONMENT = """
import json, os, random, sys
import snapshot_restore_py as runtime
import agentcore_bridge.awslambda as adapter

class Context:
    aws_request_id = "r"
    invoked_function_arn = ""
    def get_remaining_time_in_millis(self):
        return 60000

def ping():
    event = {
        "requestContext": {
            "eventType": "MESSAGE", "routeKey": "$default", "connectionId": "c1=",
            "apiId": "abc123", "stage": "prod", "requestId": "q",
        },
        "body": '{"type":"ping","id":"p"}',
    }
    return adapter.handler(event, Context())

out = {
    "registered": adapter.SNAPSTART_HOOKS,
    "before": len(runtime.before_snapshot),
    "after": len(runtime.after_restore),
}
# INIT, then the snapshot: Lambda runs the before hooks in reverse order.
for hook in reversed(runtime.before_snapshot):
    hook()
ping()

# Restore: new credentials, and the random state every copy shares.
os.environ["AWS_ACCESS_KEY_ID"] = "AKIDAFTERRESTORE"
random.seed(1234)
for hook in runtime.after_restore:
    hook()
out["random_reseeded"] = random.random() != random.Random(1234).random()
ping()
print(json.dumps(out))
"""


class Recorder(ThreadingHTTPServer):
    """A loopback ``@connections`` API, and a container credential endpoint."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[int, str]] = []
        self.tokens: list[str | None] = []
        self.session_tokens: list[str | None] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def do_GET(self) -> None:
        # What Lambda's credential endpoint answers, once the token matches.
        self.server.tokens.append(self.headers.get("Authorization"))
        body = json.dumps(
            {
                "AccessKeyId": "ASIAFROMCONTAINER",
                "SecretAccessKey": "restored-secret",
                "Token": "restored-session-token",
                "Expiration": "2100-01-01T00:00:00Z",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        credential = self.headers.get("Authorization", "").split("Credential=")[1]
        self.server.seen.append((self.client_address[1], credential.split("/")[0]))
        self.server.session_tokens.append(self.headers.get("X-Amz-Security-Token"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run(tmp_path: Path, script: str, env: dict[str, str]) -> Any:
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_restore_drops_connections_reloads_credentials_and_reseeds(
    tmp_path: Path, recorder: Recorder
) -> None:
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_MODULE)
    env = {
        "AGENTCORE_RUNTIME_ARN": (
            "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/agent-AbC123"
        ),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDBEFORESNAPSHOT",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "BRIDGE_SESSION_SECRET": "s" * 32,
        "BRIDGE_CONNECTIONS_ENDPOINT_URL": (
            f"http://127.0.0.1:{recorder.server_address[1]}/prod"
        ),
    }
    out = run(tmp_path, ENVIRONMENT, env)

    assert out == {
        "registered": True,
        "before": 1,
        "after": 1,
        "random_reseeded": True,
    }
    (port_before, key_before), (port_after, key_after) = recorder.seen
    assert port_before != port_after
    assert (key_before, key_after) == ("AKIDBEFORESNAPSHOT", "AKIDAFTERRESTORE")


CONTAINER_RESTORE = """
import json, os, sys
import snapshot_restore_py as runtime
import agentcore_bridge.awslambda as adapter

class Context:
    aws_request_id = "r"
    invoked_function_arn = ""
    def get_remaining_time_in_millis(self):
        return 60000

for hook in reversed(runtime.before_snapshot):
    hook()

# Restored: the access keys of INIT are gone, the credential endpoint is set.
for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    del os.environ[name]
os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = os.environ.pop("CREDENTIALS_URL")
os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "restore-token"
for hook in runtime.after_restore:
    hook()

loaded = set(sys.modules)
event = {
    "requestContext": {
        "eventType": "MESSAGE", "routeKey": "$default", "connectionId": "c1=",
        "apiId": "abc123", "stage": "prod", "requestId": "q",
    },
    "body": '{"type":"ping","id":"p"}',
}
adapter.handler(event, Context())
print(json.dumps(sorted(set(sys.modules) - loaded)))
"""


def test_a_restored_environment_takes_the_container_credentials(
    tmp_path: Path, recorder: Recorder
) -> None:
    """After restore the keys of INIT are gone; the endpoint's are used.

    The snapshot holds every module the first message needs, so serving it
    imports nothing more.
    """
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_MODULE)
    port = recorder.server_address[1]
    env = {
        "AGENTCORE_RUNTIME_ARN": (
            "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/agent-AbC123"
        ),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDBEFORESNAPSHOT",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "BRIDGE_SESSION_SECRET": "s" * 32,
        "BRIDGE_CONNECTIONS_ENDPOINT_URL": f"http://127.0.0.1:{port}/prod",
        "CREDENTIALS_URL": f"http://127.0.0.1:{port}/2018-06-01/credentials",
    }
    imported_by_first_message = run(tmp_path, CONTAINER_RESTORE, env)

    assert recorder.tokens == ["restore-token"]
    assert [key for _, key in recorder.seen] == ["ASIAFROMCONTAINER"]
    assert recorder.session_tokens == ["restored-session-token"]
    assert imported_by_first_message == []


def test_without_the_runtime_module_nothing_is_registered(tmp_path: Path) -> None:
    script = (
        "import json, agentcore_bridge.awslambda as a\n"
        "print(json.dumps(a.SNAPSTART_HOOKS))"
    )
    assert run(tmp_path, script, {}) is False


def test_a_bridge_built_in_code_registers_its_own_hooks(tmp_path: Path) -> None:
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_MODULE)
    script = (
        "import json, snapshot_restore_py as runtime\n"
        "from agentcore_bridge.awslambda import LambdaBridge\n"
        "from agentcore_bridge.config import Settings\n"
        "before = len(runtime.after_restore)\n"
        "bridge = LambdaBridge(Settings.from_env())\n"
        "print(json.dumps([before, len(runtime.after_restore),\n"
        "    runtime.after_restore[-1] == bridge.after_restore]))"
    )
    arn = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/agent-AbC123"
    assert run(tmp_path, script, {"AGENTCORE_RUNTIME_ARN": arn}) == [1, 2, True]
