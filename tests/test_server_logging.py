"""The server's log lines are the ones docs/logging.md lists, at its levels."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "src" / "agentcore_bridge" / "server"
LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "CRITICAL",
}
# A %-placeholder of a lazy logging call, as the docs write it.
_PLACEHOLDER = re.compile(r"%[-+ #0-9.]*[sdfrx]")
_ROW = re.compile(r"^\| `([A-Z]+)` \| `([^`]+)` \| ")


def logged_in_code() -> set[tuple[str, str]]:
    """(level, message with each placeholder as "…") of every call on ``logger``."""
    found = set()
    for path in sorted(SERVER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logger"
                and node.func.attr in LEVELS
            ):
                continue
            message = node.args[0]
            assert isinstance(message, ast.Constant), (
                f"{path.name}:{node.lineno}: log messages are literal strings"
            )
            text = _PLACEHOLDER.sub("…", message.value)
            found.add((LEVELS[node.func.attr], text))
    return found


def documented() -> set[tuple[str, str]]:
    text = (ROOT / "docs" / "logging.md").read_text(encoding="utf-8")
    server = text.split("\n## Server\n", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in server.splitlines():
        match = _ROW.match(line)
        if match:
            rows.add((match[1], match[2]))
    return rows


def test_every_log_call_of_the_server_is_documented_at_its_level() -> None:
    missing = logged_in_code() - documented()
    assert not missing, f"log lines missing from docs/logging.md: {sorted(missing)}"


def test_every_documented_server_log_line_exists() -> None:
    stale = documented() - logged_in_code()
    assert not stale, f"docs/logging.md lists lines the code no longer logs: {stale}"


def test_the_server_logs_under_one_logger_and_errors_only_for_bugs() -> None:
    for path in sorted(SERVER.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        names = set(re.findall(r"logging\.getLogger\(([^)]*)\)", source))
        if path.name == "cli.py":
            # The command configures the root logger and aiohttp's access log.
            names -= {"", '"aiohttp.access"'}
        assert names <= {'"agentcore_bridge.server"'}, (path.name, names)
    # Each ERROR line says the failure is inside the bridge (a bug).
    errors = [text for level, text in logged_in_code() if level == "ERROR"]
    assert errors
    for text in errors:
        assert (
            "inside the bridge" in text
            or "unexpected" in text
            or ("authenticator failed" in text)
        ), text
