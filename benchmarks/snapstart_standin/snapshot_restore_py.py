"""A stand-in for Lambda's ``snapshot_restore_py``, for benchmarks off Lambda.

The module the Lambda Python runtime provides under SnapStart keeps two
lists of ``(function, args, kwargs)``; handlers add to them at import time
and the runtime calls them around the snapshot. This stand-in has the
same four functions, so code that registers hooks runs unchanged, and the
benchmark plays the runtime's part: before-snapshot hooks in reverse order
of registration, after-restore hooks in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_before_snapshot: list[Hook] = []
_after_restore: list[Hook] = []


def register_before_snapshot(
    func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` before the snapshot is taken."""
    _before_snapshot.append((func, args, kwargs))
    return func


def register_after_restore(
    func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` after each restore from the snapshot."""
    _after_restore.append((func, args, kwargs))
    return func


def get_before_snapshot() -> list[Hook]:
    return _before_snapshot


def get_after_restore() -> list[Hook]:
    return _after_restore
