"""Light modules stay light: importing them loads no heavy dependency.

The Lambda cold start and the pure core depend on this, so each check runs
in a fresh interpreter, where nothing else has imported anything yet.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Modules that must import without the dependencies below. Add a module
#: here when it joins the light import path.
LIGHT_MODULES = [
    "agentcore_bridge",
    "agentcore_bridge.sigv4",
    "agentcore_bridge.awslambda",
]

#: Packages whose import costs tens of milliseconds and megabytes, or which
#: only the aiohttp server needs.
HEAVY_PACKAGES = ["aiohttp", "boto3", "botocore", "multidict", "yarl"]

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
heavy = json.loads(sys.argv[2])
print(json.dumps(sorted(
    name for name in sys.modules
    if name.partition(".")[0] in heavy
)))
"""


def heavy_modules_loaded_by(module: str) -> list[str]:
    """The modules of HEAVY_PACKAGES that importing ``module`` afresh loads."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module, json.dumps(HEAVY_PACKAGES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_import_loads_no_heavy_dependency(module: str) -> None:
    """A fresh interpreter importing the module has none of HEAVY_PACKAGES."""
    assert heavy_modules_loaded_by(module) == []


def test_probe_sees_a_heavy_import() -> None:
    """The probe itself works: importing botocore.auth is reported."""
    assert "botocore.auth" in heavy_modules_loaded_by("botocore.auth")
