"""The demo page in a real headless Chromium: chat, stream, reload, resume.

Driven over the Chrome DevTools Protocol (``tests/cdp.py``). Needs Debian's
``chromium`` package: without it the test is skipped, except in CI
(``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import struct
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


@pytest.fixture
def chromium_path() -> str:
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

        async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[Path]]:
            page = await Page.connect(devtools_url)
            try:
                await page.navigate(demo.url + "/")
                first = await chat(page, PROMPT)
                shots = [await page.screenshot(tmp_path / "turn-1.png")]
                await page.reload()
                second = await chat(page, "and again after a reload")
                shots.append(await page.screenshot(tmp_path / "turn-2.png"))
                return first, second, shots
            finally:
                await page.close()

        first, second, shots = asyncio.run(scenario())

    assert first["text"] == f"Turn 1 of this session. You said: {PROMPT}"
    # The answer grew on screen while it streamed, before it was done.
    streaming = [length for state, length in first["seen"] if state == "streaming"]
    assert len({n for n in streaming if 0 < n < len(first["text"])}) >= 3
    assert first["session"] == "active"

    assert (
        second["text"] == "Turn 2 of this session. You said: and again after a reload"
    )
    for shot in shots:
        width, height = png_size(shot)
        assert width > 300
        assert height > 300
