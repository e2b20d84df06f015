"""The ``agentcore-bridge`` command.

Each subcommand lives in the module that implements it, as a
``main(argv) -> int`` function; this file only dispatches, so that running
one subcommand imports nothing the others need.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["COMMANDS", "INTERRUPTED_EXIT", "main"]

#: subcommand -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-agent": (
        "agentcore_bridge.local.demo_agent:main",
        "run a demo agent that follows the AgentCore container contract",
    ),
    "local-agentcore": (
        "agentcore_bridge.local.agentcore:main",
        "run a local emulator of the AgentCore Runtime data plane",
    ),
    "demo": (
        "agentcore_bridge.local.demo:main",
        "run the demo agent, the AgentCore emulator and the bridge with a chat page",
    ),
    "local-apigw": (
        "agentcore_bridge.local.apigw:main",
        "run a Lambda handler behind a local API Gateway WebSocket API emulator",
    ),
    "serve": (
        "agentcore_bridge.server.cli:main",
        "run the bridge WebSocket server (settings from flags and the environment)",
    ),
}

#: The exit code after Ctrl-C that no command handled: 128 + SIGINT, as
#: shells report a process that SIGINT ended.
INTERRUPTED_EXIT: Final = 130

_USAGE = "usage: agentcore-bridge COMMAND [options]   (COMMAND --help for more)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named by the first argument; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        lines = [_USAGE, "", "commands:"]
        lines += [f"  {name:<16} {text}" for name, (_, text) in COMMANDS.items()]
        print("\n".join(lines))  # noqa: T201
        return 0 if args else 2
    entry = COMMANDS.get(args[0])
    if entry is None:
        sys.stderr.write(f"agentcore-bridge: unknown command {args[0]!r}\n{_USAGE}\n")
        return 2
    module_name, _, function_name = entry[0].partition(":")
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        # Ctrl-C while the command loads (aiohttp takes a moment): the
        # user changed their mind, which needs no traceback.
        return INTERRUPTED_EXIT
    except ModuleNotFoundError as exc:
        # Every command runs aiohttp servers, and a plain
        # ``pip install agentcore-bridge`` does not bring aiohttp.
        if exc.name != "aiohttp":
            raise
        sys.stderr.write(
            f"agentcore-bridge {args[0]}: needs aiohttp, which the server extra "
            "installs: pip install 'agentcore-bridge[server]'\n"
        )
        return 1
    function: Callable[[list[str]], int] = getattr(module, function_name)
    return function(args[1:])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
