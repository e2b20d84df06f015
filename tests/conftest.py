"""Settings shared by the whole test suite."""

from __future__ import annotations

from hypothesis import settings

# The test machines are shared and small: a property test's examples may be
# slowed down by a neighbour at any time, so hypothesis must not turn a slow
# example into a failure. What a test checks is behaviour, never speed.
settings.register_profile("agentcore-bridge", deadline=None)
settings.load_profile("agentcore-bridge")
