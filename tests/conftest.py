"""Settings shared by the whole test suite."""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

# The test machines are shared and small: a property test's examples may be
# slowed down by a neighbour at any time, so hypothesis must not turn a slow
# example (no deadline) or slow data generation (the too_slow health check)
# into a failure. What a test checks is behaviour, never speed.
settings.register_profile(
    "agentcore-bridge",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("agentcore-bridge")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a property test whose own settings bring timing back.

    ``@settings(...)`` on a test starts from the profile above, but an
    explicit ``deadline=`` or ``suppress_health_check=`` replaces its value.
    """
    offenders = []
    for item in items:
        function = getattr(item, "function", None)
        chosen = getattr(function, "_hypothesis_internal_use_settings", None)
        if chosen is None:
            continue
        if chosen.deadline is not None or (
            HealthCheck.too_slow not in chosen.suppress_health_check
        ):
            offenders.append(item.nodeid)
    if offenders:
        raise pytest.UsageError(
            "property tests must run without a deadline and without the "
            "too_slow health check (see tests/conftest.py): " + ", ".join(offenders)
        )


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable that the JavaScript client's tests run on.

    Without it those tests are skipped on a developer's machine, but they
    fail in CI (``CI=true``), where ``.ci/run`` installs Node.js: the
    bundled client must never go untested there.
    """
    path = shutil.which("node")
    if path is None:
        message = (
            "the JavaScript client's tests need Node.js: "
            "install it with `apt-get install nodejs` (20.10 or later for "
            "the WebSocket scenarios)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
