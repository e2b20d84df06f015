"""The demo page in a real headless Chromium: chat, stream, reload, resume.

Driven over the Chrome DevTools Protocol (``tests/cdp.py``). Needs Debian's
``chromium`` package: without it the test is skipped, except in CI
(``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from cdp import Page, chromium, find_chromium
from server_helpers import demo_process

pytestmark = pytest.mark.browser

PROMPT = "hello from a real browser, streamed word by word through the bridge"

LAST_ANSWER = "[...document.querySelectorAll('.message.agent')].pop()"

# Records every state the latest answer goes through, to see it stream.
WATCH_ANSWERS = (
    "window.__seen = [];"
    "new MutationObserver(() => {"
    f"  const answer = {LAST_ANSWER};"
    "  if (answer)"
    "    window.__seen.push([answer.dataset.state, answer.textContent.length]);"
    "}).observe(document.getElementById('transcript'),"
    "  {subtree: true, childList: true, characterData: true, attributes: true});"
    "true"
)


def require_chromium() -> str:
    """Chromium's path; skip without it, except in CI (``CI=true``): fail."""
    path = find_chromium()
    if path is None:
        message = (
            "the browser test needs Chromium: "
            "install it with `apt-get install chromium`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def chromium_path() -> str:
    return require_chromium()


def test_without_chromium_it_skips_saying_how_to_install_it_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "find_chromium", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        require_chromium()


async def chat(page: Page, text: str) -> dict[str, Any]:
    """Type ``text``, press Enter, wait for the whole answer; return what was seen."""
    await page.wait_until(
        "document.getElementById('status').dataset.state === 'connected'"
    )
    await page.evaluate(WATCH_ANSWERS)
    await page.evaluate("document.getElementById('prompt').focus(), true")
    await page.type_text(text)
    await page.press_enter()
    await page.wait_until(f"{LAST_ANSWER}?.dataset.state === 'done'")
    answer: dict[str, Any] = await page.evaluate(
        f"({{text: {LAST_ANSWER}.textContent, seen: window.__seen,"
        " session: document.getElementById('session').dataset.state})"
    )
    return answer


# A client of its own in the page, on a WebSocket that records the size and
# kind of every message: a 300,000-character chunk must come as parts no
# larger than the bridge's message limit, joined by the bundled client.
BIG_ANSWER = """
(async () => {
  const messages = [];
  class Recording extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener("message", (event) => messages.push(event.data));
    }
  }
  const url = new URL("/ws", location.href);
  url.protocol = "ws:";
  const client = new AgentCoreBridge.BridgeClient(url.toString(), {
    WebSocket: Recording, storage: null,
  });
  const chunks = [];
  await client.invoke({prompt: "big", size: 300000, chunk: 300000}, {
    onChunk(data) { chunks.push(data); },
  }).done;
  client.close();
  return {
    longest: Math.max(...chunks.map((c) => c.length)),
    tail: chunks[chunks.length - 1].slice(-64),
    largestMessage: Math.max(...messages.map((m) => new Blob([m]).size)),
    parts: messages.filter((m) => m.startsWith('{"type":"part"')).length,
  };
})()
"""


async def drop_connections(page: Page) -> int:
    """Close every open WebSocket of the page, as a network failure would."""
    prototype = await page.send(
        "Runtime.evaluate", expression="WebSocket.prototype", returnByValue=False
    )
    found = await page.send(
        "Runtime.queryObjects", prototypeObjectId=prototype["result"]["objectId"]
    )
    result = await page.send(
        "Runtime.callFunctionOn",
        objectId=found["objects"]["objectId"],
        functionDeclaration=(
            # Prototypes of WebSocket subclasses are found too; their
            # getters throw.
            "function () { const open = this.filter((s) => {"
            " try { return s.readyState === 1; } catch (_) { return false; } });"
            " for (const s of open) s.close(4000, 'dropped by the test');"
            " return open.length; }"
        ),
        returnByValue=True,
    )
    assert "exceptionDetails" not in result, result
    return int(result["result"]["value"])


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_demo_page_streams_answers_and_resumes_its_session_after_reload(
    chromium_path: str, tmp_path: Path
) -> None:
    with (
        demo_process("--port", "0", "--word-delay", "0.03") as demo,
        chromium(chromium_path, tmp_path / "profile") as devtools_url,
    ):

        async def scenario() -> tuple[Any, ...]:
            page = await Page.connect(devtools_url)
            try:
                await page.navigate(demo.url + "/")
                first = await chat(page, PROMPT)
                shots = [await page.screenshot(tmp_path / "turn-1.png")]
                await page.reload()
                second = await chat(page, "and again after a reload")
                shots.append(await page.screenshot(tmp_path / "turn-2.png"))
                big = await page.evaluate(BIG_ANSWER)
                dropped = await drop_connections(page)
                await page.wait_until(
                    "document.getElementById('status').dataset.state === 'reconnecting'"
                )
                third = await chat(page, "and after a lost connection")
                return first, second, third, big, dropped, shots
            finally:
                await page.close()

        first, second, third, big, dropped, shots = asyncio.run(scenario())

    assert first["text"] == f"Turn 1 of this session. You said: {PROMPT}"
    # The answer grew on screen while it streamed, before it was done.
    streaming = [length for state, length in first["seen"] if state == "streaming"]
    assert len({n for n in streaming if 0 < n < len(first["text"])}) >= 3
    assert first["session"] == "active"

    # The reloaded page resumed the same agent session: the agent counts on.
    assert (
        second["text"] == "Turn 2 of this session. You said: and again after a reload"
    )
    # Split frames, joined in the browser.
    assert big["longest"] == 300000
    # The demo agent's filler: lines of 63 "x", cut at 300,000 characters.
    assert big["tail"] == (("x" * 63 + "\n") * 4700)[:300000][-64:]
    assert big["parts"] >= 3
    assert big["largestMessage"] <= 131072
    # A dropped connection is reconnected, in the same session.
    assert dropped == 1
    assert third["text"] == (
        "Turn 3 of this session. You said: and after a lost connection"
    )
    for shot in shots:
        width, height = png_size(shot)
        assert width > 300
        assert height > 300
