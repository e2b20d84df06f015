"""Lifecycle log lines of the Lambda adapter: one line per event.

Every line is logged by ``agentcore_bridge.lambda`` with the event's name
and its fields: the connection id, the request ids, the fingerprint of the
agent session id (``sessions.session_fingerprint``: the id itself opens the
session, so it is never written) and counts. Payloads, tokens and
credentials are never among the fields.
The line is JSON (``BRIDGE_LOG_FORMAT=json``, the default) or
``name key=value ...`` text, rendered only when the level is enabled; the
same fields are on the record as ``record.bridge`` for a formatter of
one's own. ``docs/logging.md`` lists the events and their levels.
"""

from __future__ import annotations

import json
import logging

from ..sessions import session_fingerprint

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

logger = logging.getLogger("agentcore_bridge.lambda")


class _Line:
    """A log message rendered when (and only if) a handler formats it."""

    __slots__ = ("as_json", "fields")

    def __init__(self, fields: dict[str, Any], as_json: bool) -> None:
        self.fields = fields
        self.as_json = as_json

    def __str__(self) -> str:
        if self.as_json:
            return json.dumps(self.fields, separators=(",", ":"), default=str)
        name = self.fields.get("event", "")
        rest = " ".join(f"{k}={v}" for k, v in self.fields.items() if k != "event")
        return f"{name} {rest}" if rest else str(name)


class LifecycleLog:
    """Writes lifecycle lines in one format, with fields shared by a request."""

    def __init__(self, log_format: str = "json") -> None:
        self.as_json = log_format == "json"

    def write(self, level: int, event: str, **fields: Any) -> None:
        """Log ``event`` at ``level`` with the fields that are not ``None``."""
        if not logger.isEnabledFor(level):
            return
        line = {"event": event}
        line.update((k, v) for k, v in fields.items() if v is not None)
        logger.log(level, "%s", _Line(line, self.as_json), extra={"bridge": line})


def session_hash(session_id: str | None) -> str | None:
    """The ``session`` field of a line: the id's fingerprint, if there is an id."""
    if session_id is None:
        return None
    return session_fingerprint(session_id)
