"""A tiny Chrome DevTools Protocol client, for driving headless Chromium in tests.

Just what the browser test needs, over the ``websockets`` package: start
Chromium with ``--remote-debugging-port=0``, read the port it chose from
``DevToolsActivePort`` in its profile directory, attach to the page target
and send commands (``Runtime.evaluate``, ``Page.navigate``, ``Page.reload``,
``Input.insertText``, ``Page.captureScreenshot`` ...), waiting for events
such as ``Page.loadEventFired``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import websockets

__all__ = ["CDPError", "Page", "chromium", "find_chromium"]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=900,700",
)


class CDPError(Exception):
    """A DevTools command failed, or the page threw."""


def find_chromium() -> str | None:
    """The Chromium executable (Debian's package), or ``None``."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@contextmanager
def chromium(executable: str, profile: Path, timeout: float = 30.0) -> Iterator[str]:
    """Run headless Chromium; yield the DevTools WebSocket URL of its page."""
    profile.mkdir(parents=True, exist_ok=True)
    log = (profile / "chromium.log").open("wb")
    process = subprocess.Popen(
        [
            executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        port = _devtools_port(profile / "DevToolsActivePort", process, timeout)
        yield _page_target(port, timeout)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _devtools_port(path: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    # Chromium writes the port it bound, then the browser target's path.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CDPError(f"Chromium exited with {process.returncode}")
        with contextlib.suppress(OSError, ValueError, IndexError):
            lines = path.read_text().splitlines()
            if len(lines) >= 2:
                return int(lines[0])
        time.sleep(0.05)
    raise CDPError("Chromium did not write DevToolsActivePort in time")


def _page_target(port: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/json/list", timeout=5
        ) as response:
            targets = json.loads(response.read())
        for target in targets:
            if target.get("type") == "page":
                return str(target["webSocketDebuggerUrl"])
        time.sleep(0.05)
    raise CDPError("Chromium has no page target")


class Page:
    """One page target: commands out, results and events in."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str) -> Page:
        page = cls(await websockets.connect(url, max_size=None))
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            for name, waiter in list(self._listeners):
                if name == data.get("method") and not waiter.done():
                    waiter.set_result(data.get("params", {}))
                    self._listeners.remove((name, waiter))

    async def send(self, method: str, timeout: float = 30.0, **params: Any) -> Any:
        """Run one command; return its result or raise :class:`CDPError`."""
        id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting[id] = future
        await self._ws.send(json.dumps({"id": id, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def expect(self, event: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next ``event``; make it before causing the event."""
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._listeners.append((event, future))
        return future

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get(
                "text"
            )
            raise CDPError(f"page threw: {text}")
        return result.get("result", {}).get("value")

    async def wait_until(
        self, expression: str, timeout: float = 20.0, interval: float = 0.02
    ) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for: {expression}")
            await asyncio.sleep(interval)

    async def navigate(self, url: str) -> None:
        loaded = self.expect("Page.loadEventFired")
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded, 30)

    async def reload(self) -> None:
        loaded = self.expect("Page.loadEventFired")
        await self.send("Page.reload", ignoreCache=True)
        await asyncio.wait_for(loaded, 30)

    async def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element, as a keyboard would."""
        await self.send("Input.insertText", text=text)

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                nativeVirtualKeyCode=13,
                **({"text": "\r"} if kind == "keyDown" else {}),
            )

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))
        return path
