"""Module attributes imported on first use, for names off the import path.

The Protocols and type aliases of the public modules live in modules of
their own (``_interfaces``) because defining them imports ``typing``,
which the Lambda handler's import path does without. A public module
serves them through a module ``__getattr__`` and ``__dir__`` (PEP 562)
made here: the first read imports the defining module and keeps the
value, so later reads are plain attribute lookups, and ``dir()`` (with
``help()``, which relies on it) lists the names before they are read.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_attributes(
    module: str, source: str, names: frozenset[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``module``, serving ``names``.

    The ``__getattr__`` reads ``names`` from ``source``; any other name
    raises :class:`AttributeError`, as a module without the hook would.
    The ``__dir__`` lists the module's attributes and ``names``, without
    importing ``source``.
    """

    def module_getattr(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        setattr(sys.modules[module], name, value)
        return value

    def module_dir() -> list[str]:
        return sorted({*vars(sys.modules[module]), *names})

    return module_getattr, module_dir
