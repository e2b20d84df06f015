"""Each module's ``__all__`` is exactly its public surface.

Every name listed exists, and every public class and function a module
defines is listed, so ``from module import *`` and the docs agree with the
code.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import agentcore_bridge

GROUPING_PACKAGES = {
    "agentcore_bridge.aio",
    "agentcore_bridge.local",
    "agentcore_bridge.sync",
}

# Every module whose name has no leading underscore, walked from the
# package, so a new module cannot be left out; bare subpackages that only
# group modules (``aio``, ``local``, ``sync``) define nothing to list.
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(agentcore_bridge.__path__, "agentcore_bridge.")
    if not any(part.startswith("_") for part in info.name.split("."))
    and info.name not in GROUPING_PACKAGES
)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    listed = set(module.__all__)

    assert len(listed) == len(module.__all__), "a name is listed twice"
    assert {n for n in listed if not hasattr(module, n)} == set()
    defined_here = {
        attribute
        for attribute, value in vars(module).items()
        if not attribute.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == name
    }
    assert defined_here - listed == set()
