"""Registering Lambda SnapStart hooks, when the runtime offers them.

``snapshot_restore_py`` is part of Lambda's Python runtime (3.12 and
later), not of this library: where it cannot be imported nothing is
registered and nothing changes. Hooks must be registered while the
function's code is imported (the INIT phase), before the snapshot.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["register"]


def register(before: Callable[[], None], after: Callable[[], None]) -> bool:
    """Register ``before`` (snapshot) and ``after`` (restore); whether it could."""
    try:
        import snapshot_restore_py  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        return False
    snapshot_restore_py.register_before_snapshot(before)
    snapshot_restore_py.register_after_restore(after)
    return True
