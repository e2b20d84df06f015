"""Run the local API Gateway emulator for a test, in a background thread.

    from apigw_stack import local_apigw

    with local_apigw("echo:handler", route_responses=["$default"]) as gateway:
        async with websockets.connect(gateway.ws_url) as ws: ...

The emulator listens on 127.0.0.1, on a free port, with its own event loop
in a thread of its own, so a test can drive it from plain synchronous code
or from ``asyncio.run``. Handler modules are imported from ``tests/handlers``
unless ``code_dir`` says otherwise (installed packages, such as
``agentcore_bridge.awslambda``, are importable too). Leaving the block
closes every client with 1001, stops every execution environment and waits
for the worker processes to exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agentcore_bridge.credentials import Credentials
from agentcore_bridge.local.apigw import ApiGatewayConfig, LocalApiGateway

HANDLERS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handlers")


@dataclass
class Gateway:
    """A running emulator: its URLs, its key pair, and a view of its state."""

    ws_url: str
    connections_url: str
    lambda_url: str
    base_url: str
    credentials: Credentials
    region: str
    function_name: str
    config: ApiGatewayConfig
    emulator: LocalApiGateway = field(repr=False)

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``: environments, cold starts, connections."""
        with urllib.request.urlopen(f"{self.base_url}/_emulator/stats") as response:
            data: dict[str, Any] = json.load(response)
        return data

    def retire_environments(self) -> int:
        """Stop every environment, so the next event starts cold."""
        request = urllib.request.Request(
            f"{self.base_url}/_emulator/environments", method="DELETE"
        )
        with urllib.request.urlopen(request) as response:
            data: dict[str, Any] = json.load(response)
        return int(data["retired"])

    def environ(self) -> dict[str, str]:
        """Variables that point AWS SDKs and the bridge at this emulator."""
        variables = {
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "BRIDGE_CONNECTIONS_ENDPOINT_URL": self.connections_url,
            "BRIDGE_LAMBDA_ENDPOINT_URL": self.lambda_url,
        }
        if self.credentials.session_token:
            variables["AWS_SESSION_TOKEN"] = self.credentials.session_token
        return variables

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        """A botocore client for ``apigatewaymanagementapi`` or ``lambda``.

        Retries are off, so every error reaches the test as it was answered.
        """
        import botocore.config
        import botocore.session

        keys = credentials or self.credentials
        endpoint = self.connections_url if service != "lambda" else self.lambda_url
        return botocore.session.get_session().create_client(
            service,
            region_name=self.region,
            endpoint_url=endpoint,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            aws_session_token=keys.session_token,
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )


@contextmanager
def local_apigw(handler: str, **config: Any) -> Iterator[Gateway]:
    """Run the emulator for ``handler`` with ``config`` (ApiGatewayConfig fields)."""
    config.setdefault("code_dir", HANDLERS_DIR)
    settings = ApiGatewayConfig(handler=handler, **config)
    emulator = LocalApiGateway(settings)
    server = _ServerThread(emulator)
    server.start()
    server.ready.wait(10)
    if server.error is not None:
        server.join()
        raise RuntimeError("the emulator did not start") from server.error
    base_url = emulator.base_url or ""
    try:
        yield Gateway(
            ws_url=emulator.websocket_url,
            connections_url=emulator.connections_url,
            lambda_url=base_url,
            base_url=base_url,
            credentials=settings.credentials,
            region=settings.region,
            function_name=settings.function_name,
            config=settings,
            emulator=emulator,
        )
    finally:
        server.stop()


class _ServerThread(threading.Thread):
    def __init__(self, emulator: LocalApiGateway) -> None:
        super().__init__(name="local-apigw", daemon=True)
        self.emulator = emulator
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        runner = web.AppRunner(self.emulator.make_app(), shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            self.emulator.set_base_url(f"http://127.0.0.1:{port}")
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self.ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(15)
        if self.error is not None:
            raise RuntimeError("the emulator failed") from self.error
