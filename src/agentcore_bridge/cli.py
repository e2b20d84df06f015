"""The ``agentcore-bridge`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agentcore-bridge",
        description="Client WebSockets to agents on Amazon Bedrock AgentCore.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo", help="run the demo agent, the AgentCore emulator and the bridge"
    )
    args = parser.parse_args(argv)

    if args.command == "demo":
        sys.stderr.write(
            "agentcore-bridge demo will start the demo agent, the local AgentCore\n"
            "emulator and the bridge server, and serve a chat page in the browser.\n"
            "It is not available in this version yet.\n"
        )
        return 2
    return 0  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
