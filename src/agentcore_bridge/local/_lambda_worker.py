"""One Lambda execution environment, run as a child process of the emulator.

The local API Gateway emulator (:mod:`agentcore_bridge.local.apigw`) starts
this file as a script, ``python -u _lambda_worker.py``, once per execution
environment. Like the Lambda runtime it imports the handler once (the INIT
phase, a cold start), then runs one event at a time for as long as it lives,
so module globals persist between the invocations of one environment.

It imports nothing beyond the standard library modules below (not even
``agentcore_bridge``), so that a cold start costs what the handler's own
imports cost and little more.

Channel to the emulator: JSON lines on the original stdin and stdout, which
the worker moves to private descriptors before the handler is imported. The
handler's stdin then reads nothing and its stdout goes to stderr, which the
emulator prints prefixed with the environment id, so a ``print`` in a
handler can never corrupt the channel.

Worker to emulator, first line::

    {"type": "ready", "init_ms": 12.3}
    {"type": "init_error", "error": {"errorMessage": ..., "errorType": ...}}

Emulator to worker, one line per invocation::

    {"id": "<aws_request_id>", "event": ..., "deadline_ms": <unix ms>,
     "invoked_function_arn": "arn:aws:lambda:..."}

Worker to emulator, one line per invocation::

    {"type": "result", "id": ..., "result": <the handler's return value>}
    {"type": "error", "id": ..., "error": {"errorMessage": ..., "errorType":
     ..., "requestId": ..., "stackTrace": [...]}}

The worker exits when its stdin reaches end of file (the emulator stops the
environment), or when the handler exits the interpreter.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any

Handler = Callable[[Any, "LambdaContext"], Any]

#: Lambda's limit on a synchronous invocation's response, in bytes.
RESPONSE_LIMIT = 6 * 1024 * 1024


class LambdaContext:
    """The context object handed to a handler, with the Lambda runtime's fields.

    As in the Python runtime, ``function_version`` and
    ``memory_limit_in_mb`` are strings, read from the environment.
    """

    def __init__(
        self, aws_request_id: str, deadline_ms: int, invoked_function_arn: str
    ) -> None:
        self.aws_request_id = aws_request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity: object = None
        self.client_context: object = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function timeout ends this invocation."""
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, "
            f"function_name={self.function_name!r})"
        )


def main() -> int:
    """Run the environment until the emulator closes stdin; return the exit code."""
    channel_in, channel_out = _take_channel()

    # Ctrl-C in a terminal reaches every process of the foreground group:
    # the emulator stops its environments itself, so the worker ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # Lambda puts the function's code directory (LAMBDA_TASK_ROOT) first on
    # the path; this script's own directory must not be there at all.
    if sys.path and os.path.abspath(sys.path[0]) == _own_directory():
        del sys.path[0]
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root:
        sys.path.insert(0, task_root)

    started = time.perf_counter()
    try:
        handler = _load_handler(os.environ.get("_HANDLER", ""))
    except _InitError as exc:
        _send(channel_out, {"type": "init_error", "error": exc.body})
        return 1
    init_ms = (time.perf_counter() - started) * 1000
    _send(channel_out, {"type": "ready", "init_ms": round(init_ms, 3)})

    for line in channel_in:
        channel_out.write(_invoke(handler, json.loads(line)))
        channel_out.flush()
    return 0


def _own_directory() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def _take_channel() -> tuple[IO[bytes], IO[bytes]]:
    # Duplicate the pipes to private descriptors, then point descriptor 0 at
    # /dev/null and descriptor 1 at stderr for whatever the handler does.
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return channel_in, channel_out


def _send(channel: IO[bytes], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    channel.flush()


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.body = {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": "",
            "stackTrace": [],
        }


def _load_handler(spec: str) -> Handler:
    # "package.module:function", or Lambda's own "package.module.function".
    if ":" in spec:
        module_name, _, function_name = spec.partition(":")
    else:
        module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise _InitError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{spec}': expected module:function",
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        _print_traceback(exc)
        raise _InitError(
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {exc}",
        ) from exc
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise _InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler  # type: ignore[no-any-return]


def _invoke(handler: Handler, request: dict[str, Any]) -> bytes:
    # Returns the whole line for the emulator, the result serialised once.
    request_id = request["id"]
    context = LambdaContext(
        request_id, request["deadline_ms"], request["invoked_function_arn"]
    )
    try:
        result = handler(request["event"], context)
    except Exception as exc:  # noqa: BLE001 - any handler error is a result
        return _error_line(request_id, _error_body(exc, request_id))

    # The runtime serialises the result itself: a value JSON cannot carry,
    # or a response above Lambda's 6 MB, fails the invocation.
    try:
        payload = json.dumps(result, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        return _error_line(
            request_id,
            _runtime_error(
                "Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id
            ),
        )
    if len(payload) > RESPONSE_LIMIT:
        return _error_line(request_id, _too_large(len(payload), request_id))
    head = json.dumps({"type": "result", "id": request_id})[:-1]
    return head.encode() + b', "result": ' + payload + b"}\n"


def _error_line(request_id: str, error: dict[str, Any]) -> bytes:
    payload = json.dumps(error)
    if len(payload) > RESPONSE_LIMIT:
        # An error document is the invocation's response too, and one
        # longer than the emulator reads as a line would leave its rest in
        # the channel, where the next invocation would take it as its own.
        payload = json.dumps(_too_large(len(payload), request_id))
    line = json.dumps({"type": "error", "id": request_id})[:-1]
    return line.encode() + b', "error": ' + payload.encode() + b"}\n"


def _too_large(size: int, request_id: str) -> dict[str, Any]:
    return _runtime_error(
        "Function.ResponseSizeTooLarge",
        f"Response payload size ({size} bytes) exceeded maximum "
        f"allowed payload size ({RESPONSE_LIMIT} bytes).",
        request_id,
    )


def _runtime_error(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": [],
    }


def _error_body(exc: BaseException, request_id: str) -> dict[str, Any]:
    # Imported on the error path only: it would add ~10 ms to every cold start.
    import traceback  # noqa: PLC0415

    # Lambda logs the failure as "[ERROR] Type: message" with the traceback.
    frames = traceback.format_tb(exc.__traceback__)
    sys.stderr.write(f"[ERROR] {type(exc).__name__}: {exc}\n")
    sys.stderr.write("".join(traceback.format_exception(exc)))
    sys.stderr.flush()
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": frames,
    }


def _print_traceback(exc: BaseException) -> None:
    import traceback  # noqa: PLC0415

    sys.stderr.write("".join(traceback.format_exception(exc)))
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
