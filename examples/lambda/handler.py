"""Lambda entry point (``handler.handler``): the bridge's ready-made handler.

It takes every setting from the environment (AGENTCORE_RUNTIME_ARN,
AGENTCORE_QUALIFIER, BRIDGE_*; the table in docs/lambda.md), which main.tf and
template.yaml set. Importing it at init time is what SnapStart snapshots:
the adapter registers its own after-restore hook to renew what must not be
shared between restored environments (connections, random state).
"""

from __future__ import annotations

from agentcore_bridge.awslambda import handler

__all__ = ["handler"]
