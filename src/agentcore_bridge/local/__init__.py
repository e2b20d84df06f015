"""Local stand-ins for the AWS side, so everything runs on a laptop.

- :mod:`.demo_agent`: a small agent that follows the AgentCore Runtime
  container contract (``POST /invocations``, ``GET /ping``, ``/ws``).
- :mod:`.agentcore`: an emulator of the AgentCore Runtime data plane that
  checks SigV4 signatures, validates requests the way the service does,
  forwards to an agent and simulates cold starts, idle sessions, quotas
  and faults.
- :mod:`.emulation`: the emulator's state and decisions (sessions, quotas,
  faults, counters), behind the HTTP front of :mod:`.agentcore`.
- :mod:`.apigw`: an emulator of API Gateway WebSocket APIs that runs Lambda
  handlers in worker processes and serves the ``@connections`` and Lambda
  Invoke APIs.
- :mod:`.sigv4_verifier`: the signature check the emulators share (pure,
  no I/O).

The servers need aiohttp (the ``server`` extra); nothing here is imported
by the core or by the Lambda adapter.
"""
