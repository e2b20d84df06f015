"""The JavaScript client resumes its session on connect and offers subprotocols.

Run under Node.js, against the real bridge server (which announces a
session as soon as a client connects) and against a recording socket.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from server_helpers import bridge_stack
from test_client_js import SCRIPT, node_has_websocket, run_node

pytestmark = pytest.mark.usefixtures("node")

TOKEN = "bearer-token-for-the-js-client-0123"

RESUME_JS = """
const { BridgeClient } = require(process.argv[2]);
const url = process.argv[3];
const token = process.argv[4];
const saved = new Map();
const storage = {
  getItem: (k) => (saved.has(k) ? saved.get(k) : null),
  setItem: (k, v) => saved.set(k, String(v)),
  removeItem: (k) => saved.delete(k),
};
const opened = [];
const sockets = [];
class RecordingSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols);
    const offered = protocols === undefined ? null : protocols;
    opened.push({ url: address, protocols: offered });
    sockets.push(this);
  }
}
function makeClient(extra) {
  let announced = () => {};
  const client = new BridgeClient(url, Object.assign({
    WebSocket: RecordingSocket, storage, keepAliveMs: 0,
    backoff: { initialMs: 20, maxMs: 100 },
    protocols: () => ["agentcore-bridge", "bearer." + token],
    onSession: () => announced(),
  }, extra));
  // Resolves at the next session frame: what the bridge announces on
  // connect, which an invoke sent after it competes with.
  client.nextSession = () => new Promise((resolve) => { announced = resolve; });
  return client;
}

async function connected(client) {
  const announced = client.nextSession();
  client.connect();
  await announced;
}

async function ask(client, prompt) {
  let text = "";
  await client.invoke({ prompt }, { onChunk: (data) => { text += data; } }).done;
  return text;
}

(async () => {
  const first = makeClient({});
  await connected(first);
  const turns = [await ask(first, "one")];
  // The network drops; the client reconnects by itself.
  const announced = first.nextSession();
  sockets[sockets.length - 1].close();
  await announced;
  turns.push(await ask(first, "two"));
  first.close();

  // A page reload: a new client finds the token in storage.
  const second = makeClient({});
  await connected(second);
  turns.push(await ask(second, "three"));
  second.close();

  // With the token in invokes only, the session announced on connect
  // replaces the saved one before the invoke.
  const third = makeClient({ resume: "invoke" });
  await connected(third);
  turns.push(await ask(third, "four"));
  third.close();

  process.stdout.write(JSON.stringify({ turns, opened }));
})().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exit(1);
});
"""


def session_parameter(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("session")
    return values[0] if values else None


def test_js_client_resumes_its_session_on_reconnect_and_reload(tmp_path: Path) -> None:
    """Against the real server: the token goes in the URL of every connect."""
    if not node_has_websocket():
        pytest.skip("this node has no WebSocket client (needs Node.js 20.10 or later)")
    with bridge_stack(auth_tokens=(TOKEN,)) as bridge:
        result = run_node(
            tmp_path,
            RESUME_JS,
            str(SCRIPT),
            bridge.ws_url(),
            TOKEN,
            flags=("--experimental-websocket",),
        )

    assert result["turns"] == [
        "Turn 1 of this session. You said: one",
        "Turn 2 of this session. You said: two",
        "Turn 3 of this session. You said: three",
        "Turn 1 of this session. You said: four",
    ]
    opened = result["opened"]
    assert len(opened) == 4
    assert session_parameter(opened[0]["url"]) is None
    assert session_parameter(opened[1]["url"]) is not None
    assert session_parameter(opened[2]["url"]) is not None
    assert session_parameter(opened[3]["url"]) is None
    for socket in opened:
        assert socket["protocols"] == ["agentcore-bridge", f"bearer.{TOKEN}"]


OPTIONS_JS = """
const { BridgeClient } = require(process.argv[2]);
const opened = [];
class FakeSocket {
  constructor(url, protocols) {
    opened.push({ url, protocols: protocols === undefined ? "none" : protocols });
    this.readyState = 0;
  }
  send() {}
  close() {}
}
const saved = { session: "v1.AbC-_9.mac", expires: 4102444800 };
const storage = {
  getItem: () => JSON.stringify(saved),
  setItem: () => {},
  removeItem: () => {},
};
const open = (url, extra) => new BridgeClient(url, Object.assign({
  WebSocket: FakeSocket, storage, keepAliveMs: 0,
}, extra)).connect();

open("wss://bridge.example/prod?access_token=t&session=old", {});
open("wss://bridge.example/ws", { protocols: "agentcore-bridge" });
open("wss://bridge.example/ws", { resume: "invoke" });
open("wss://bridge.example/ws", { storage: null });
let refused = null;
try {
  open("wss://bridge.example/ws", { resume: "query" });
} catch (error) {
  refused = error.name;
}
process.stdout.write(JSON.stringify({ opened, refused }));
"""


def test_js_client_url_and_protocol_options(tmp_path: Path) -> None:
    shutil.copy(SCRIPT, tmp_path / "bridge-client.js")
    result: dict[str, Any] = run_node(
        tmp_path, OPTIONS_JS, str(tmp_path / "bridge-client.js")
    )
    first, second, third, fourth = result["opened"]
    # The saved token replaces a session parameter; other parameters stay.
    assert first == {
        "url": "wss://bridge.example/prod?access_token=t&session=v1.AbC-_9.mac",
        "protocols": "none",
    }
    assert second == {
        "url": "wss://bridge.example/ws?session=v1.AbC-_9.mac",
        "protocols": "agentcore-bridge",
    }
    assert third == {"url": "wss://bridge.example/ws", "protocols": "none"}
    assert fourth == {"url": "wss://bridge.example/ws", "protocols": "none"}
    assert result["refused"] == "TypeError"
