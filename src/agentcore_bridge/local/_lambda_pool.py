"""A pool of local Lambda execution environments, one worker process each.

Lambda runs a function in execution environments that each handle one event
at a time. An event goes to an idle environment when one exists (a warm
start: the module globals of the last invocation are still there); when all
are busy, a new environment starts and imports the handler first (a cold
start). Environments that stay idle for a while are stopped. This module
does the same with child processes running :mod:`._lambda_worker`, so code
that depends on warm reuse (caches, pooled connections, warmers that keep N
environments alive with N overlapping invocations) can be observed locally.

The pool is asyncio code; it never raises for a failing handler. Every
invocation ends in an :class:`InvocationResult`, whose ``error`` field holds
the error document Lambda would report (``errorMessage``, ``errorType``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

__all__ = ["EnvironmentPool", "InvocationResult", "PoolSettings"]

logger = logging.getLogger("agentcore_bridge.local.apigw")
#: What the functions print, and the REPORT lines, when no stream is given.
function_logger = logging.getLogger("agentcore_bridge.local.function")

WORKER_SCRIPT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "_lambda_worker.py"
)

# Lambda accepts responses of up to 6 MB; JSON lines from a worker can be that
# long, far beyond asyncio's default 64 KiB line limit.
_LINE_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class PoolSettings:
    """What the pool needs to start and run environments.

    ``environment`` returns the complete set of environment variables of a
    new worker, apart from the per-environment ``AWS_LAMBDA_LOG_STREAM_NAME``;
    it is called at each start, since the emulator's address may be known
    only once its server listens.
    ``log_stream`` receives the workers' output, each line prefixed with
    its environment's id; ``None`` logs each line on the
    ``agentcore_bridge.local.function`` logger instead (INFO, WARNING for
    a failed INIT), so that it goes wherever the application's logging
    sends it; with logging not configured, only the WARNING lines reach
    stderr (Python's last-resort handler).
    """

    python: str
    code_dir: str
    environment: Callable[[], Mapping[str, str]]
    function_timeout: float
    init_timeout: float
    max_concurrency: int
    idle_timeout: float
    log_stream: TextIO | None = None


@dataclass(frozen=True)
class InvocationResult:
    """How one invocation ended.

    ``result`` is the handler's return value when ``error`` is ``None``;
    otherwise ``error`` is Lambda's error document. ``environment_id`` names
    the environment that ran it (empty when none could start) and ``cold``
    tells whether that environment started for this invocation.
    """

    request_id: str
    result: Any = None
    error: dict[str, Any] | None = None
    environment_id: str = ""
    cold: bool = False
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the handler returned normally."""
        return self.error is None


class _Environment:
    """One worker process: starting, idle, busy, then stopped."""

    def __init__(self, number: int, settings: PoolSettings) -> None:
        self.id = f"env-{number}"
        self.settings = settings
        day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self.state = "starting"
        self.invocations = 0
        self.init_ms: float | None = None
        self.start_ms: float | None = None
        self.started_at = time.time()
        self.idle_since = time.monotonic()
        self.retire = False
        self._process: asyncio.subprocess.Process | None = None
        self._log_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        # A worker can also die while idle (killed from outside): the
        # process's return code tells.
        exited = self._process is not None and self._process.returncode is not None
        return self.state in {"starting", "idle", "busy"} and not exited

    async def start(self) -> dict[str, Any] | None:
        """Start the worker and wait for its INIT phase.

        Returns ``None`` when the handler is imported and ready, else the
        error document of a failed INIT (the environment is then stopped).
        """
        environment = dict(self.settings.environment())
        environment["AWS_LAMBDA_LOG_STREAM_NAME"] = self.log_stream_name
        spawned = time.perf_counter()
        try:
            self._process = await asyncio.create_subprocess_exec(
                self.settings.python,
                "-u",
                WORKER_SCRIPT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
                cwd=self.settings.code_dir,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            self.state = "stopped"
            return _runtime_error(
                "Runtime.StartError", f"Could not start the runtime: {exc}"
            )
        if self.state == "stopped":
            # The pool closed while the process was starting.
            _kill(self._process)
            await self._process.wait()
            return _runtime_error("Runtime.Stopped", "the emulator is stopping")
        assert self._process.stderr is not None
        self._log_task = asyncio.create_task(self._pump_logs(self._process.stderr))

        try:
            line = await self._read_line(self.settings.init_timeout)
        except asyncio.TimeoutError:
            await self.stop()
            return _runtime_error(
                "Runtime.InitTimeout",
                f"INIT did not finish within {self.settings.init_timeout:g} seconds",
            )
        if not line:
            code = await self._exit_code()
            return _runtime_error(
                "Runtime.ExitError", f"Runtime exited during INIT: exit status {code}"
            )
        message = json.loads(line)
        if message.get("type") != "ready":
            await self.stop()
            error: dict[str, Any] = message.get("error") or _runtime_error(
                "Runtime.Unknown", "INIT failed"
            )
            return error
        self.init_ms = float(message.get("init_ms", 0.0))
        self.start_ms = (time.perf_counter() - spawned) * 1000
        self.state = "busy"
        return None

    async def invoke(
        self, request_id: str, event: Any, invoked_function_arn: str
    ) -> tuple[Any, dict[str, Any] | None]:
        """Run one event; return (result, error document or ``None``).

        A timeout or a crash stops the environment, as Lambda does; the
        caller must not use it again.
        """
        process = self._process
        assert process is not None and process.stdin is not None
        self.invocations += 1
        timeout = self.settings.function_timeout
        deadline_ms = int((time.time() + timeout) * 1000)
        request = {
            "id": request_id,
            "event": event,
            "deadline_ms": deadline_ms,
            "invoked_function_arn": invoked_function_arn,
        }
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            await process.stdin.drain()
            line = await self._read_line(timeout)
        except asyncio.TimeoutError:
            # Lambda ends a timed-out environment at once.
            await self.stop(grace=0)
            return None, _runtime_error(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after "
                f"{timeout:.2f} seconds",
                request_id,
            )
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        if not line:
            code = await self._exit_code()
            return None, _runtime_error(
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: Runtime exited with error: "
                f"exit status {code}",
                request_id,
            )
        message = json.loads(line)
        if message.get("type") == "result":
            return message.get("result"), None
        return None, message.get("error") or _runtime_error(
            "Runtime.Unknown", "invocation failed", request_id
        )

    async def _read_line(self, timeout: float) -> bytes:
        assert self._process is not None and self._process.stdout is not None
        return await asyncio.wait_for(self._process.stdout.readline(), timeout)

    async def _exit_code(self) -> int | None:
        # The worker closed its channel: it exited or is about to.
        self.state = "stopped"
        assert self._process is not None
        try:
            return await asyncio.wait_for(self._process.wait(), 2.0)
        except asyncio.TimeoutError:
            _kill(self._process)
            return await self._process.wait()

    async def stop(self, grace: float = 1.0) -> None:
        """Stop the worker: end of input first, a kill after ``grace`` seconds."""
        self.state = "stopped"
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            if process.stdin is not None and not process.stdin.is_closing():
                process.stdin.close()
            try:
                if grace <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(process.wait(), grace)
            except asyncio.TimeoutError:
                _kill(process)
                await process.wait()
        if self._log_task is not None:
            # The pipe closes when the process exits; let the last lines out.
            try:
                await asyncio.wait_for(self._log_task, 1.0)
            except asyncio.TimeoutError:
                self._log_task.cancel()

    async def _pump_logs(self, stream: asyncio.StreamReader) -> None:
        pending = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                self.write_log([_text(line) for line in lines])
        if pending:
            self.write_log([_text(pending)])

    def write_log(self, lines: list[str], level: int = logging.INFO) -> None:
        """Pass on lines of this environment's output, with its id in front."""
        stream = self.settings.log_stream
        if stream is None:
            # One record per line, as Lambda sends one log event per line.
            for line in lines:
                function_logger.log(
                    level, "[%s] %s", self.id, line, extra={"environment": self.id}
                )
            return
        prefix = f"[{self.id}] "
        try:
            stream.write("".join(prefix + line + "\n" for line in lines))
            stream.flush()
        except (OSError, ValueError):
            # The log stream was closed (an interpreter shutting down, a
            # test's captured stream): the output is lost, nothing else.
            pass

    def describe(self) -> dict[str, Any]:
        idle = time.monotonic() - self.idle_since if self.state == "idle" else 0.0
        return {
            "id": self.id,
            "state": self.state,
            "pid": self.pid,
            "invocations": self.invocations,
            "init_ms": self.init_ms,
            "start_ms": None if self.start_ms is None else round(self.start_ms, 3),
            "started_at": self.started_at,
            "idle_seconds": round(idle, 3),
            "log_stream_name": self.log_stream_name,
        }


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\r")


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill ``process`` unless it has exited already.

    A process that exits just as a grace period runs out is reaped by
    asyncio while the timed-out wait is being cancelled; asyncio then
    refuses to signal it with :class:`ProcessLookupError`. It is gone, which
    is what the kill was for.
    """
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _runtime_error(
    error_type: str, message: str, request_id: str = ""
) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": [],
    }


class EnvironmentPool:
    """Execution environments for one function, started on demand.

    :meth:`invoke` runs an event on an idle environment, or starts a new one
    when none is idle and fewer than ``max_concurrency`` exist; beyond that
    the event waits for the first environment to free up. Call
    :meth:`start` once on the running loop and :meth:`close` at the end.
    """

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.cold_starts = 0
        self.started = 0
        self.invocations = 0
        self._environments: dict[str, _Environment] = {}
        self._idle: list[_Environment] = []
        self._waiters: deque[asyncio.Future[_Environment | None]] = deque()
        self._numbers = 0
        self._closed = False
        self._reaper: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start stopping idle environments in the background."""
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_idle())

    async def invoke(
        self,
        event: Any,
        *,
        invoked_function_arn: str,
        request_id: str | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> InvocationResult:
        """Run ``event`` on an environment and return how it ended.

        ``on_start`` is called with the environment id once the event has
        an environment (after INIT on a cold start).
        """
        request_id = request_id or str(uuid.uuid4())
        if self._closed:
            return InvocationResult(
                request_id,
                error=_runtime_error("Runtime.Stopped", "the emulator is stopping"),
            )
        environment, cold, init_error = await self._acquire()
        if environment is None:
            return InvocationResult(request_id, error=init_error, cold=True)
        self.started += 1
        if on_start is not None:
            on_start(environment.id)

        started = time.perf_counter()
        try:
            result, error = await environment.invoke(
                request_id, event, invoked_function_arn
            )
        finally:
            self._release(environment)
        duration_ms = (time.perf_counter() - started) * 1000
        self.invocations += 1
        self._report(environment, request_id, duration_ms, cold)
        return InvocationResult(
            request_id, result, error, environment.id, cold, duration_ms
        )

    async def _acquire(
        self,
    ) -> tuple[_Environment | None, bool, dict[str, Any] | None]:
        while True:
            while self._idle:
                # Most recently used first, as Lambda tends to do: the
                # fewer environments kept busy, the more of them go cold.
                environment = self._idle.pop()
                if environment.alive and not environment.retire:
                    environment.state = "busy"
                    return environment, False, None
                self._discard(environment)

            if len(self._environments) < self.settings.max_concurrency:
                return await self._start_environment()

            waiter: asyncio.Future[_Environment | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            handed = await waiter
            if handed is not None:
                handed.state = "busy"
                return handed, False, None
            # A slot was freed: go round and start an environment.

    async def _start_environment(
        self,
    ) -> tuple[_Environment | None, bool, dict[str, Any] | None]:
        self._numbers += 1
        environment = _Environment(self._numbers, self.settings)
        self._environments[environment.id] = environment
        self.cold_starts += 1
        try:
            error = await environment.start()
        except BaseException:
            self._discard(environment)
            raise
        if error is not None:
            environment.write_log(
                [f"INIT failed: {error.get('errorType')}: {error.get('errorMessage')}"],
                logging.WARNING,
            )
            self._discard(environment)
            return None, True, error
        logger.info(
            "environment %s started in %.1f ms (handler import %.1f ms)",
            environment.id,
            environment.start_ms,
            environment.init_ms,
        )
        return environment, True, None

    def _release(self, environment: _Environment) -> None:
        if not environment.alive or environment.retire or self._closed:
            self._discard(environment)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(environment)
                return
        environment.state = "idle"
        environment.idle_since = time.monotonic()
        self._idle.append(environment)

    def _discard(self, environment: _Environment) -> None:
        # Forget the environment, stop its process in the background and
        # give its slot to the first waiting event.
        if self._environments.pop(environment.id, None) is None:
            return
        if environment in self._idle:
            self._idle.remove(environment)
        task = asyncio.create_task(environment.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _report(
        self, environment: _Environment, request_id: str, duration_ms: float, cold: bool
    ) -> None:
        # The REPORT line Lambda writes after each invocation.
        # Lambda's Init Duration covers the runtime's start and the handler's
        # import: here, from spawning the worker to its "ready".
        init = f" Init Duration: {environment.start_ms:.2f} ms" if cold else ""
        environment.write_log(
            [f"REPORT RequestId: {request_id} Duration: {duration_ms:.2f} ms{init}"]
        )

    def retire_all(self) -> int:
        """Stop every environment: idle ones now, busy ones when they finish.

        The next events start cold, importing the handler's code anew, as
        after a deployment. Returns how many environments were retired.
        """
        environments = list(self._environments.values())
        for environment in environments:
            environment.retire = True
        for environment in list(self._idle):
            self._discard(environment)
        return len(environments)

    async def _reap_idle(self) -> None:
        period = min(max(self.settings.idle_timeout / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for environment in list(self._idle):
                if now - environment.idle_since >= self.settings.idle_timeout:
                    logger.info("environment %s stopped after idling", environment.id)
                    self._discard(environment)

    def describe(self) -> dict[str, Any]:
        """The pool's state, for the emulator's stats endpoint."""
        environments = [e.describe() for e in self._environments.values()]
        return {
            "environments_alive": len(environments),
            "environments_busy": sum(e["state"] == "busy" for e in environments),
            "environments_idle": len(self._idle),
            "cold_starts": self.cold_starts,
            "invocations_started": self.started,
            "invocations": self.invocations,
            "queued": sum(not w.done() for w in self._waiters),
            "max_concurrency": self.settings.max_concurrency,
            "environments": environments,
        }

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [e.pid for e in self._environments.values() if e.pid is not None]

    async def close(self) -> None:
        """Stop every environment and wait for the processes to exit."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        environments = list(self._environments.values())
        self._environments.clear()
        self._idle.clear()
        await asyncio.gather(
            *(e.stop(grace=0.5) for e in environments), *self._stopping
        )
