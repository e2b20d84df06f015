"""Each module's ``__all__`` is exactly its public surface.

Every name listed exists, and every public class and function a module
defines is listed, so ``from module import *`` and the docs agree with the
code.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "agentcore_bridge",
    "agentcore_bridge.agentcore",
    "agentcore_bridge.aio.agentcore",
    "agentcore_bridge.config",
    "agentcore_bridge.credentials",
    "agentcore_bridge.exceptions",
    "agentcore_bridge.local.agentcore",
    "agentcore_bridge.local.demo_agent",
    "agentcore_bridge.local.emulation",
    "agentcore_bridge.local.sigv4_verifier",
    "agentcore_bridge.sessions",
    "agentcore_bridge.sigv4",
    "agentcore_bridge.sse",
    "agentcore_bridge.sync.agentcore",
    "agentcore_bridge.sync.http",
]


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
