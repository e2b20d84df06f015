"""The JavaScript client and batch frames, run under Node.js."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentcore_bridge.protocol import (
    encode_batch,
    encode_chunk,
    encode_end,
    encode_session,
    split_frame,
)
from test_client_js import SCRIPT, run_node

pytestmark = pytest.mark.usefixtures("node")

DECODER_JS = """
const { FrameDecoder } = require(process.argv[2]);
const messages = JSON.parse(require("fs").readFileSync(process.argv[3], "utf8"));
const decoder = new FrameDecoder();
const out = [];
for (const message of messages) {
  try {
    out.push(decoder.feed(message, 0));
  } catch (error) {
    out.push({ error: error.name, message: error.message });
  }
}
process.stdout.write(JSON.stringify(out));
"""


def decode_in_node(tmp_path: Path, messages: list[str]) -> list[object]:
    data = tmp_path / "messages.json"
    data.write_text(json.dumps(messages), encoding="utf-8")
    result: list[object] = run_node(tmp_path, DECODER_JS, str(SCRIPT), str(data))
    return result


def test_js_decoder_unpacks_batches_in_order(tmp_path: Path) -> None:
    frames = [encode_session("tok", 9), encode_chunk("q", 0, "é😀"), encode_end("q", 1)]
    big = [encode_chunk("r", n, "z" * 150) for n in range(4)]
    parts = split_frame(encode_batch(big), 300)
    result = decode_in_node(tmp_path, [encode_batch(frames), *parts])
    assert result[0] == [json.loads(frame) for frame in frames]
    assert result[1:-1] == [[]] * (len(parts) - 1)
    assert result[-1] == [json.loads(frame) for frame in big]


def test_js_decoder_refuses_bad_batches_and_reads_on(tmp_path: Path) -> None:
    bad = [
        '{"type":"batch","frames":[]}',
        '{"type":"batch","frames":[{"type":"batch","frames":[{"type":"pong"}]}]}',
        '{"type":"batch","frames":[{"type":"pong"},"x"]}',
    ]
    result = decode_in_node(tmp_path, [*bad, encode_end("q", 0)])
    for answer in result[:-1]:
        assert isinstance(answer, dict)
        assert answer["error"] == "ProtocolError"
        assert "batch" in answer["message"]
    assert result[-1] == [{"type": "end", "id": "q", "seq": 0}]


CLIENT_JS = """
const { BridgeClient } = require(process.argv[2]);
const batch = process.argv[3];
const sent = [];
class FakeSocket {
  constructor(url) {
    this.readyState = 0;
    setTimeout(() => { this.readyState = 1; this.onopen(); }, 0);
  }
  send(text) {
    const frame = JSON.parse(text);
    sent.push(frame);
    if (frame.type === "invoke" && frame.id === "a") {
      setTimeout(() => this.onmessage({ data: batch }), 0);
    }
  }
  close() {}
}
(async () => {
  const client = new BridgeClient("ws://fake", {
    WebSocket: FakeSocket, storage: null, keepAliveMs: 0,
  });
  const chunks = [];
  const onChunk = (d, s) => chunks.push([s, d]);
  const first = client.invoke({ p: 1 }, { id: "a", onChunk });
  const result = await first.done;
  const second = client.invoke({ p: 2 }, { id: "b" });
  await new Promise((resolve) => setTimeout(resolve, 0));
  second.cancel();
  client.close();
  await second.done.catch(() => {});
  const session = client.session;
  process.stdout.write(JSON.stringify({ result, chunks, session, sent }));
})().catch((error) => { process.stderr.write(String(error.stack)); process.exit(1); });
"""


def test_js_client_takes_a_batch_and_cancels_with_the_token(tmp_path: Path) -> None:
    """A batch's frames act one by one; cancel sends the invocation's token."""
    shutil.copy(SCRIPT, tmp_path / "bridge-client.js")
    batch = encode_batch(
        [
            encode_session("v1.tok.mac", 4102444800),
            encode_chunk("a", 1, "world"),
            encode_chunk("a", 0, "hello "),
            encode_end("a", 2),
        ]
    )
    out = run_node(tmp_path, CLIENT_JS, str(tmp_path / "bridge-client.js"), batch)
    assert out["result"] == {"id": "a", "chunks": 2}
    assert out["chunks"] == [[0, "hello "], [1, "world"]]
    assert out["session"] == {"session": "v1.tok.mac", "expires": 4102444800}
    invoke_b, cancel_b = out["sent"][1], out["sent"][2]
    assert invoke_b["session"] == "v1.tok.mac"
    assert cancel_b == {"type": "cancel", "id": "b", "session": "v1.tok.mac"}
