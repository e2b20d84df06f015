"""agentcore-bridge: client WebSockets to agents on Amazon Bedrock AgentCore Runtime."""

from .credentials import Credentials

__all__ = ["Credentials", "__version__"]

__version__ = "0.1.0"
