"""The bundled JavaScript client, run under Node.js.

The reassembler is checked against frames cut by the Python splitter and
against the Python Reassembler's verdicts; the whole client is checked
against a real WebSocket server on loopback that speaks protocol v1.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentcore_bridge.exceptions import ProtocolError
from agentcore_bridge.protocol import (
    Cancel,
    Invoke,
    Ping,
    Reassembler,
    encode_chunk,
    encode_end,
    encode_error,
    encode_pong,
    encode_session,
    parse_client_frame,
    split_frame,
    utf8_size,
)
from agentcore_bridge.sessions import SessionTokens, new_session_id

STATIC = Path(__file__).resolve().parent.parent / "src" / "agentcore_bridge" / "static"
SCRIPT = STATIC / "bridge-client.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.usefixtures("node")

TRICKY = ['"', "\\", "/", "\x7f", "\u2028", "\u2029", "é", "中", "\ufeff", "😀", "𝄞"]
TRICKY += [chr(code) for code in range(0x20)]


def run_node(
    tmp_path: Path, source: str, *args: str, flags: tuple[str, ...] = ()
) -> Any:
    """Run a Node.js script and return the JSON it prints."""
    assert NODE is not None
    script = tmp_path / "script.js"
    script.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [NODE, *flags, str(script), *args],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return json.loads(result.stdout.decode("utf-8"))


def random_text(rng: random.Random) -> str:
    length = rng.choice([0, 1, 10, 300, 1000, 5000])
    chars = []
    for _ in range(length):
        if rng.random() < 0.5:
            chars.append(rng.choice(TRICKY))
        else:
            code = rng.randrange(0x20, 0x110000)
            chars.append(chr(code) if not 0xD800 <= code <= 0xDFFF else "x")
    return "".join(chars)


def python_verdicts(
    steps: list[tuple[dict[str, object], float]], max_age: float
) -> list[list[object]]:
    reassembler = Reassembler(max_age=max_age, max_pending=2, max_parts=8)
    verdicts: list[list[object]] = []
    for part, now in steps:
        try:
            joined = reassembler.feed(part, now)
        except ProtocolError:
            verdicts.append(["error"])
        else:
            verdicts.append(["null"] if joined is None else ["text", joined])
    return verdicts


REASSEMBLE_JS = """
const fs = require("fs");
const { Reassembler } = require(process.argv[2]);
const cases = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const results = cases.map((messages) => {
  const reassembler = new Reassembler();
  const joined = [];
  for (const message of messages) {
    const part = JSON.parse(message);
    const text = reassembler.feed(part, 0);
    if (text !== null) joined.push(text);
  }
  return { joined, pending: reassembler.pending };
});
process.stdout.write(JSON.stringify(results));
"""


def test_js_reassembler_joins_what_python_split(tmp_path: Path) -> None:
    """Any content split by Python, two messages interleaved, joins back in Node."""
    rng = random.Random(20240611)
    cases: list[list[str]] = []
    expected: list[list[str]] = []
    for number in range(40):
        first, second = random_text(rng), random_text(rng) * 2
        limit = rng.randrange(256, 1500)
        queues = [
            split_frame(first, limit, message_id=f"a{number}"),
            split_frame(second, limit, message_id=f"b{number}"),
        ]
        queues = [queue for queue in queues if len(queue) > 1]
        for queue in queues:
            assert all(utf8_size(part) <= limit for part in queue)
        merged: list[str] = []
        finished: list[str] = []
        while any(queues):
            queue = rng.choice([queue for queue in queues if queue])
            merged.append(queue.pop(0))
            if not queue:
                finished.append(json.loads(merged[-1])["of"])
        cases.append(merged)
        by_id = {f"a{number}": first, f"b{number}": second}
        expected.append([by_id[of] for of in finished])
    data = tmp_path / "cases.json"
    data.write_text(json.dumps(cases), encoding="utf-8")

    results = run_node(tmp_path, REASSEMBLE_JS, str(SCRIPT), str(data))

    assert sum(len(case) for case in expected) > 25
    assert [result["joined"] for result in results] == expected
    assert all(result["pending"] == 0 for result in results)


VERDICTS_JS = """
const fs = require("fs");
const { Reassembler, ProtocolError } = require(process.argv[2]);
const { steps, maxAge } = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const reassembler = new Reassembler({
  maxAgeMs: maxAge * 1000, maxPending: 2, maxParts: 8,
});
const verdicts = steps.map(([part, now]) => {
  try {
    const text = reassembler.feed(part, now * 1000);
    return text === null ? ["null"] : ["text", text];
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return ["error"];
  }
});
process.stdout.write(JSON.stringify(verdicts));
"""


def part(of: object, n: object, total: object, text: object) -> dict[str, object]:
    return {"type": "part", "of": of, "n": n, "total": total, "text": text}


def test_js_reassembler_gives_the_python_verdicts(tmp_path: Path) -> None:
    """Out-of-order, repeated, missing, stale and malformed parts: same outcome."""
    steps: list[tuple[dict[str, object], float]] = [
        (part("ok", 0, 2, "a"), 0),
        (part("ok", 1, 2, "b"), 1),
        (part("late", 1, 2, "x"), 1),
        (part("late", 0, 2, "x"), 1),
        (part("rep", 0, 3, "a"), 2),
        (part("rep", 0, 3, "a"), 2),
        (part("rep", 1, 3, "b"), 2),
        (part("skip", 0, 3, "a"), 3),
        (part("skip", 2, 3, "c"), 3),
        (part("tot", 0, 3, "a"), 4),
        (part("tot", 1, 4, "b"), 4),
        (part("one", 0, 1, "whole"), 5),
        (part("p1", 0, 2, "a"), 6),
        (part("p2", 0, 2, "a"), 6),
        (part("p3", 0, 2, "a"), 6),
        (part("p1", 1, 2, "b"), 7),
        (part("big", 0, 9, "a"), 8),
        (part("stale", 0, 2, "s"), 100),
        (part("p2", 1, 2, "b"), 100),
        (part("stale", 1, 2, "t"), 200),
        (part("", 0, 2, "a"), 201),
        (part("m", True, 2, "a"), 201),
        (part("m", 2, 2, "a"), 201),
        (part("m", 0, 2, 5), 201),
        (part("m", 0.5, 2, "a"), 201),
    ]
    verdicts = python_verdicts(steps, max_age=50)
    data = tmp_path / "steps.json"
    data.write_text(json.dumps({"steps": steps, "maxAge": 50}), encoding="utf-8")

    assert run_node(tmp_path, VERDICTS_JS, str(SCRIPT), str(data)) == verdicts
    assert verdicts[:3] == [["null"], ["text", "ab"], ["error"]]
    assert ["text", "whole"] in verdicts


EXPORTS_JS = """
const cjs = require(process.argv[2]);
import(process.argv[3]).then((esm) => {
  const names = Object.keys(cjs).sort();
  process.stdout.write(JSON.stringify({
    names,
    same: names.every((name) => esm[name] === cjs[name]),
    defaultIsApi: esm.default === globalThis.AgentCoreBridge,
    global: Object.keys(globalThis.AgentCoreBridge).sort(),
  }));
});
"""


def test_js_file_works_as_script_module_and_commonjs(tmp_path: Path) -> None:
    """One implementation, reachable as a global, an ES module and require()."""
    # Node reads a .js file as CommonJS; browsers take the ES module as it is.
    shutil.copy(SCRIPT, tmp_path / "bridge-client.js")
    shutil.copy(STATIC / "bridge-client.module.js", tmp_path / "bridge-client.mjs")
    result = run_node(
        tmp_path,
        EXPORTS_JS,
        str(tmp_path / "bridge-client.js"),
        (tmp_path / "bridge-client.mjs").as_uri(),
    )
    expected = [
        "BridgeClient",
        "BridgeError",
        "FrameDecoder",
        "PROTOCOL_VERSION",
        "ProtocolError",
        "Reassembler",
    ]
    assert result == {
        "names": expected,
        "same": True,
        "defaultIsApi": True,
        "global": expected,
    }


# The whole client against a WebSocket server speaking protocol v1.

CLIENT_JS = """
const { BridgeClient } = require(process.argv[2]);
const url = process.argv[3];
const key = "agentcore-bridge.session";
const saved = new Map();
const storage = {
  getItem: (k) => (saved.has(k) ? saved.get(k) : null),
  setItem: (k, v) => saved.set(k, String(v)),
  removeItem: (k) => saved.delete(k),
};
const events = [];

function makeClient(extra) {
  return new BridgeClient(url, Object.assign({
    WebSocket, storage, keepAliveMs: 0, backoff: { initialMs: 20, maxMs: 100 },
  }, extra));
}

async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    const { name, code, retryable, id } = error;
    return { name, code, retryable, id };
  }
}

(async () => {
  let closed;
  const onceClosed = new Promise((resolve) => { closed = resolve; });
  const client = makeClient({
    onOpen: () => events.push("open"),
    onClose: (event) => {
      events.push(["close", event.code, event.willReconnect]);
      closed();
    },
    onSession: () => events.push("session"),
  });

  const chunks = [];
  const first = client.invoke({ action: "stream", close_after: true }, {
    id: "first", onChunk: (data, seq) => chunks.push([seq, data]),
  });
  const firstResult = await first.done;
  await onceClosed;

  // Sent once the client has reconnected, with the token it was given.
  const echo = [];
  await client.invoke({ action: "echo" }, { onChunk: (data) => echo.push(data) }).done;
  await client.ping();
  const hanging = client.invoke({ action: "hang" });
  hanging.cancel();
  const cancelled = await failure(hanging.done);
  const failed = await failure(client.invoke({ action: "fail" }, { id: "f" }).done);
  client.close();

  // A page reload: a new client finds the token in storage and sends it.
  const again = makeClient({});
  const echo2 = [];
  await again.invoke({ action: "echo" }, { onChunk: (data) => echo2.push(data) }).done;
  const refused = await failure(again.invoke({ action: "refuse_token" }).done);
  const afterRefusal = [again.session, storage.getItem(key)];
  again.close();

  process.stdout.write(JSON.stringify({
    firstResult, chunks, echo, cancelled, failed, refused, afterRefusal, echo2, events,
  }));
})().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exit(1);
});
"""


class ScriptedBridge:
    """A loopback WebSocket server that answers like the bridge would."""

    def __init__(self) -> None:
        self.tokens = SessionTokens(b"k" * 32, ttl=600)
        self.session_id = new_session_id()
        self.received: list[tuple[int, object]] = []
        self.connections = 0
        self.big_a = "«" + '"quotes" \\ back \n' * 40 + "😀" * 50 + "»"
        self.big_b = "中文" * 100

    async def handler(self, websocket: Any) -> None:
        self.connections += 1
        number = self.connections
        async for message in websocket:
            frame = parse_client_frame(message)
            self.received.append((number, frame))
            send: Callable[[str], Any] = websocket.send
            if isinstance(frame, Ping):
                await send(encode_pong(frame.id))
            elif isinstance(frame, Cancel):
                await send(
                    encode_error(frame.id, "cancelled", "cancelled by the client")
                )
            elif isinstance(frame, Invoke):
                await self.invoke(websocket, frame)

    async def invoke(self, websocket: Any, frame: Invoke) -> None:
        assert isinstance(frame.payload, dict)
        action = frame.payload["action"]
        send = websocket.send
        if action == "stream":
            token, expires = self.tokens.issue(self.session_id, None, time.time())
            await send(encode_session(token, expires))
            # Chunk 1 before chunk 0, and chunks 2 and 3 split with their
            # parts interleaved so that 3 completes first.
            await send(encode_chunk(frame.id, 1, "one"))
            await send(encode_chunk(frame.id, 0, {"n": 0}))
            parts_2 = split_frame(encode_chunk(frame.id, 2, self.big_a), 300)
            parts_3 = split_frame(encode_chunk(frame.id, 3, self.big_b), 300)
            assert len(parts_2) > len(parts_3) > 1
            for index in range(len(parts_2)):
                if index < len(parts_3):
                    await send(parts_3[index])
                await send(parts_2[index])
            await send(encode_end(frame.id, 4))
            if frame.payload.get("close_after"):
                await websocket.close(1001, "going away")
        elif action == "echo":
            resumed = None
            if frame.session is not None:
                resumed = self.tokens.verify(frame.session, None, time.time())
            data = {
                "sent": frame.session is not None,
                "same": resumed == self.session_id,
            }
            await send(encode_chunk(frame.id, 0, data))
            await send(encode_end(frame.id, 1))
        elif action == "fail":
            await send(encode_error(frame.id, "agent_unavailable", "try later"))
        elif action == "refuse_token":
            await send(encode_error(frame.id, "unauthorized", "session token expired"))
        # "hang": no answer until the client cancels.


async def run_client_scenario(tmp_path: Path) -> tuple[Any, ScriptedBridge]:
    from websockets.asyncio.server import serve

    bridge = ScriptedBridge()
    script = tmp_path / "client.js"
    script.write_text(CLIENT_JS, encoding="utf-8")
    async with serve(bridge.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        assert NODE is not None
        process = await asyncio.create_subprocess_exec(
            NODE,
            "--experimental-websocket",
            str(script),
            str(SCRIPT),
            f"ws://127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode(errors="replace")
    return json.loads(out.decode("utf-8")), bridge


def node_has_websocket() -> bool:
    assert NODE is not None
    probe = subprocess.run(
        [NODE, "--experimental-websocket", "-e", "process.exit(WebSocket ? 0 : 1)"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


def test_js_client_streams_resumes_and_cancels(tmp_path: Path) -> None:
    """Chunks in order across split parts, token kept over a reconnect and a reload."""
    if not node_has_websocket():
        pytest.skip("this node has no WebSocket client (needs Node.js 20.10 or later)")
    result, bridge = asyncio.run(run_client_scenario(tmp_path))

    assert result["firstResult"] == {"id": "first", "chunks": 4}
    assert result["chunks"] == [
        [0, {"n": 0}],
        [1, "one"],
        [2, bridge.big_a],
        [3, bridge.big_b],
    ]
    # The bridge closed the first connection; the client came back on its own.
    assert result["events"][:4] == ["open", "session", ["close", 1001, True], "open"]
    assert bridge.connections == 3

    invokes = [
        (number, frame)
        for number, frame in bridge.received
        if isinstance(frame, Invoke)
    ]
    assert invokes[0][0] == 1
    assert invokes[0][1].session is None
    assert all(frame.session is not None for number, frame in invokes[1:4])
    assert result["echo"] == [{"sent": True, "same": True}]

    assert any(isinstance(frame, Ping) for _, frame in bridge.received)
    assert result["cancelled"] == {
        "name": "BridgeError",
        "code": "cancelled",
        "retryable": False,
        "id": result["cancelled"]["id"],
    }
    assert result["failed"] == {
        "name": "BridgeError",
        "code": "agent_unavailable",
        "retryable": True,
        "id": "f",
    }
    # After a reload, the stored token goes out with the first invoke.
    assert result["echo2"] == [{"sent": True, "same": True}]
    # A refused token is forgotten so that the next invoke starts afresh.
    assert result["refused"]["code"] == "unauthorized"
    assert result["afterRefusal"] == [None, None]
