"""One fresh interpreter of the cold-start benchmark (run by coldstart.py).

    python _coldstart_child.py import   SPEC CODE_DIR [PRELOAD]
    python _coldstart_child.py message  SPEC CODE_DIR EVENT
    python _coldstart_child.py snapstart SPEC CODE_DIR EVENT STAND_IN_DIR [PRIME]

``SPEC`` is the handler as ``module:function``, imported with ``CODE_DIR``
first on ``sys.path`` (Lambda's task root). The child prints one JSON line
with what it measured, including its peak resident memory, and exits.

- ``import``: imports the handler's module and reports the time that took
  (wall and CPU), the modules it loaded and their names. ``PRELOAD`` is a
  file of module names imported first, untimed: the standard library
  modules the handler needs, so that what remains is the library's own
  import.
- ``message``: imports the handler and calls it once with the event in the
  JSON file ``EVENT``; the parent times the whole process up to the first
  ``@connections`` post it receives.
- ``snapstart``: a simulated SnapStart restore. ``STAND_IN_DIR`` holds a
  stand-in ``snapshot_restore_py`` that records the hooks the handler's
  import registers. The child imports the handler (INIT), runs the
  before-snapshot hooks in reverse order of registration, as the runtime
  does before it takes the snapshot; then, from the moment it reports as
  ``restored_at``, it runs the after-restore hooks in order and handles the
  event. ``restored_at`` is on the ``time.monotonic`` clock, which on Linux
  is shared by every process, so the parent can compare it with the time
  the first post reached it (``message`` reports ``started_at`` and
  ``imported_at`` on that clock too). With ``PRIME``, a second event file,
  the handler first handles that event during INIT, as a function that
  primes itself in a before-snapshot hook does: its pooled connections
  are then open when the snapshot is taken, and dropped at the restore.

Before the handler, this script imports the standard library modules that
Lambda's Python runtime has loaded when it imports a handler
(``RUNTIME_MODULES``) and reads the event, so that the modules and the
time a handler's import adds are its own. The list is what the runtime
interface client of Lambda's Python runtimes imports before it calls
``importlib.import_module`` on the handler (``bootstrap.py`` of
aws-lambda-python-runtime-interface-client and the modules it imports:
``lambda_runtime_client``, ``lambda_runtime_log_utils``,
``lambda_runtime_marshaller``), leaving out its C extension and
``simplejson``, which are not in the standard library.
"""

import time

STARTED_AT = time.monotonic()

import importlib  # noqa: E402 - after the clock, to time the interpreter's start
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

#: What Lambda's Python runtime has imported before the handler's module.
RUNTIME_MODULES = (
    "importlib",
    "json",
    "logging",
    "os",
    "sys",
    "time",
    "traceback",
    "datetime",
    "enum",
    "decimal",
    "math",
    "concurrent.futures",
    "concurrent.futures.thread",
)
for _name in RUNTIME_MODULES:
    importlib.import_module(_name)


class Context:
    """The few fields of the Lambda context object that handlers read."""

    function_name = "coldstart-benchmark"
    function_version = "$LATEST"
    invoked_function_arn = (
        "arn:aws:lambda:us-west-2:123456789012:function:coldstart-benchmark"
    )
    memory_limit_in_mb = "1769"
    log_group_name = "/aws/lambda/coldstart-benchmark"
    log_stream_name = "benchmark"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    identity = None
    client_context = None

    def __init__(self) -> None:
        self._deadline = time.monotonic() + 30.0

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def load(spec: str, code_dir: str) -> object:
    module_name, _, function_name = spec.partition(":")
    sys.path.insert(0, code_dir)
    return getattr(importlib.import_module(module_name), function_name)


def measure_import(spec: str, code_dir: str, preload: str | None) -> dict:
    if preload:
        with open(preload) as names:
            for name in names.read().split():
                importlib.import_module(name)
    before = list(sys.modules)
    wall = time.perf_counter()
    cpu = time.process_time()
    load(spec, code_dir)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    known = set(before)
    loaded = [name for name in sys.modules if name not in known]
    return {
        "wall_ms": wall * 1000,
        "cpu_ms": cpu * 1000,
        "modules": len(loaded),
        "loaded": loaded,
        "modules_total": len(sys.modules),
    }


def handle_message(spec: str, code_dir: str, event_file: str) -> dict:
    with open(event_file) as file:
        event = json.load(file)
    import_at = time.monotonic()
    started = time.perf_counter()
    handler = load(spec, code_dir)
    imported = time.perf_counter()
    imported_at = time.monotonic()
    result = handler(event, Context())
    done = time.perf_counter()
    return {
        "import_ms": (imported - started) * 1000,
        "handler_ms": (done - imported) * 1000,
        "started_at": STARTED_AT,
        "import_at": import_at,
        "imported_at": imported_at,
        "result": result,
    }


def simulate_restore(
    spec: str, code_dir: str, event_file: str, stand_in: str, prime_file: str | None
) -> dict:
    sys.path.insert(0, stand_in)
    import snapshot_restore_py

    with open(event_file) as file:
        event = json.load(file)
    prime = None
    if prime_file:
        with open(prime_file) as file:
            prime = json.load(file)
    started = time.perf_counter()
    handler = load(spec, code_dir)
    imported = time.perf_counter()
    if prime is not None:
        handler(prime, Context())
    primed = time.perf_counter()
    before_hooks = snapshot_restore_py.get_before_snapshot()
    before_count = len(before_hooks)
    while before_hooks:
        function, args, kwargs = before_hooks.pop()
        function(*args, **kwargs)
    snapshotted = time.perf_counter()

    # Everything above is in the snapshot. Connections opened before it do
    # not survive a restore: the peer never saw the new microVM.
    dropped = drop_connections()

    # A restored environment starts here.
    restored_at = time.monotonic()
    restore_started = time.perf_counter()
    after_hooks = snapshot_restore_py.get_after_restore()
    for function, args, kwargs in after_hooks:
        function(*args, **kwargs)
    hooks_done = time.perf_counter()
    result = handler(event, Context())
    done = time.perf_counter()
    return {
        "import_ms": (imported - started) * 1000,
        "prime_ms": (primed - imported) * 1000,
        "before_snapshot_ms": (snapshotted - primed) * 1000,
        "after_restore_ms": (hooks_done - restore_started) * 1000,
        "handler_ms": (done - hooks_done) * 1000,
        "before_snapshot_hooks": before_count,
        "after_restore_hooks": len(after_hooks),
        "connections_dropped": dropped,
        "restored_at": restored_at,
        "result": result,
    }


def drop_connections() -> int:
    """Shut down every TCP socket of this process; return how many.

    A pooled connection then fails on its next use the way one restored
    from a snapshot does, so code that does not reconnect after a restore
    shows it here.
    """
    import socket
    import stat

    dropped = 0
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and (
                sock.type == socket.SOCK_STREAM
            ):
                sock.shutdown(socket.SHUT_RDWR)
                dropped += 1
        except OSError:
            pass
        finally:
            sock.close()
    return dropped


def peak_rss_kib() -> int:
    """The peak resident memory of this process since it started Python.

    ``VmHWM`` rather than ``ru_maxrss``: on Linux ``ru_maxrss`` also counts
    the memory of the process that spawned this one, as it was before
    ``exec`` (a 200 MB parent makes every child report 200 MB).
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    mode, spec, code_dir, *rest = sys.argv[1:]
    # The script's own directory is not part of a Lambda function's path.
    if os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    if mode == "import":
        answer = measure_import(spec, code_dir, rest[0] if rest else None)
    elif mode == "message":
        answer = handle_message(spec, code_dir, rest[0])
    elif mode == "snapstart":
        prime = rest[2] if len(rest) > 2 else None
        answer = simulate_restore(spec, code_dir, rest[0], rest[1], prime)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    answer["peak_rss_kib"] = peak_rss_kib()
    sys.stdout.write(json.dumps(answer, default=str) + "\n")
    sys.stdout.flush()
    # Lambda freezes the environment after the answer; nothing at exit counts.
    os._exit(0)


if __name__ == "__main__":
    main()
