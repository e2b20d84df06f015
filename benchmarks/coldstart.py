"""Cold start of the Lambda handler, against a boto3 handler written as AWS samples do.

Every number is a median over fresh interpreters, ours and the reference
(``benchmarks/reference/handler.py``) alternating in one run:

1. import: importing the handler's module in a fresh interpreter (wall and
   CPU time, modules loaded, peak RSS of the process); and the library's
   own share, with the standard library modules it needs imported first.
2. first chunk: from starting a fresh ``python`` to the first
   ``@connections`` POST that carries agent output reaching the endpoint,
   for one ``$default`` message against the local AgentCore emulator and a
   loopback ``@connections`` endpoint.
3. the same with every Python given with ``--python`` (by default also
   3.12 and 3.13, the SnapStart runtimes, the newest of each installed in
   pyenv's ``versions`` folder (``$PYENV_ROOT``, or ``~/.pyenv``), each in
   a throwaway venv under /tmp).
4. SnapStart, simulated: import, before-snapshot hooks, every TCP
   connection shut down, then after-restore hooks and the message; the
   restored path is timed from the restore to the first chunk. A second
   variant primes the handler with one message before the snapshot, so
   that pooled connections are open when it is taken and dead after it.

Each interpreter's results end with the budgets (import and first chunk
at most a quarter of the reference's wall time and half its peak memory;
the library's own import under 15 ms), and with where the import's time
goes: ``python -X importtime``, summed per top-level module.

    .venv/bin/python benchmarks/coldstart.py [--rounds 15] [--chart docs/cold-start.png]
        [--save results.json] [--markdown]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from _chart import Bar, write_bar_chart
from _coldstart_child import RUNTIME_MODULES
from _stack import ConnectionsRecorder, Post, Stack, frames_of, servers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHILD = os.path.join(HERE, "_coldstart_child.py")
STAND_IN = os.path.join(HERE, "snapstart_standin")
REFERENCE_DIR = os.path.join(HERE, "reference")

#: The SnapStart runtimes, measured too when pyenv has them.
EXTRA_PYTHONS = ("3.12", "3.13")
#: Pinned as in requirements-dev.txt, for the throwaway venvs.
BOTO3_PINS = ("boto3==1.44.8", "botocore==1.44.8")


@dataclass(frozen=True)
class Side:
    """One handler under test: its name, ``module:function`` and task root."""

    name: str
    spec: str
    code_dir: str


OURS_HANDLER = "agentcore_bridge.awslambda:handler"


def sides(empty_dir: str, handler: str, code_dir: str | None) -> tuple[Side, Side]:
    ours = Side("ours", handler, code_dir or empty_dir)
    reference = Side("reference", "handler:handler", REFERENCE_DIR)
    return ours, reference


#: No ratio for these: the reference registers no SnapStart hooks, and
#: the interpreter's start and the harness are the same on both sides.
NO_RATIO = frozenset(
    {
        "before_snapshot_ms",
        "after_restore_ms",
        "prime_ms",
        "primed_connections_dropped",
        "interpreter_start_ms",
        "preamble_ms",
    }
)

#: What only a handler with SnapStart hooks has.
NO_HOOKS = frozenset({"before_snapshot_ms", "after_restore_ms"})

#: The cold-start budgets: (label, metric, what the bound applies to, bound).
#: A "ratio" bound is the least reference / ours; an "ours" bound is the
#: most our median may be, in its metric's unit.
BUDGETS = (
    ("import: at most 1/4 of the reference's wall time", "import_ms", "ratio", 4.0),
    (
        "import: at most 1/2 of the reference's peak memory",
        "import_peak_rss_mib",
        "ratio",
        2.0,
    ),
    (
        "first chunk: at most 1/4 of the reference's wall time",
        "first_chunk_ms",
        "ratio",
        4.0,
    ),
    (
        "first chunk: at most 1/2 of the reference's peak memory",
        "message_peak_rss_mib",
        "ratio",
        2.0,
    ),
    ("the library's own import under 15 ms", "own_import_ms", "ours", 15.0),
)


# Fresh interpreters.


@dataclass
class Child:
    """What one fresh interpreter reported, and when it started and ended."""

    report: dict[str, Any]
    peak_rss_mib: float
    started: float
    exited: float


def run_child(
    python: str, args: list[str], env: dict[str, str], on_start: Callable[[], None]
) -> Child:
    """Run ``_coldstart_child.py`` with ``args``; return its report and times."""
    on_start()
    started = time.monotonic()
    process = subprocess.Popen(
        [python, CHILD, *args],
        env=env,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    output, _ = process.communicate()
    exited = time.monotonic()
    if process.returncode != 0 or not output:
        raise RuntimeError(f"{' '.join(args[:2])} failed with {process.returncode}")
    report = json.loads(output)
    return Child(report, report["peak_rss_kib"] / 1024, started, exited)


def child_environment(stack: Stack, recorder: ConnectionsRecorder) -> dict[str, str]:
    """A Lambda-like environment: the emulators' endpoints, no AWS config files."""
    env = {
        name: os.environ[name]
        for name in ("PATH", "LANG", "LC_ALL", "TMPDIR")
        if name in os.environ
    }
    env.update(stack.environ())
    env.update(
        {
            "BRIDGE_CONNECTIONS_ENDPOINT_URL": recorder.url,
            # A production setting of the bridge (the reference ignores it).
            "BRIDGE_SESSION_SECRET": "coldstart-benchmark-session-secret-0123456789",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_LAMBDA_FUNCTION_NAME": "coldstart-benchmark",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python",
            "HOME": tempfile.gettempdir(),
        }
    )
    return env


def message_event(connection_id: str) -> dict[str, Any]:
    """A ``$default`` MESSAGE event with the keys of one captured from AWS."""
    body = {"type": "invoke", "id": "m1", "payload": {"prompt": "hello there"}}
    now_ms = int(time.time() * 1000)
    return {
        "requestContext": {
            "routeKey": "$default",
            "messageId": "Bench0messageId=",
            "eventType": "MESSAGE",
            "extendedRequestId": "Bench0requestId=",
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "messageDirection": "IN",
            "stage": "bench",
            "connectedAt": now_ms - 1000,
            "requestTimeEpoch": now_ms,
            "identity": {"sourceIp": "127.0.0.1"},
            "requestId": "Bench0requestId=",
            "domainName": "bench.execute-api.us-west-2.amazonaws.com",
            "connectionId": connection_id,
            "apiId": "bench",
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def carries_output(post: Post) -> bool:
    """Whether a post holds agent output.

    The reference posts each ``data:`` value as it is (any JSON, or text);
    the bridge posts protocol frames, alone or in a ``batch``, and only a
    ``chunk`` among them is agent output (not a ``session`` or a ``pong``).
    """
    try:
        frame = json.loads(post.data)
    except ValueError:
        return True
    if not (isinstance(frame, dict) and isinstance(frame.get("type"), str)):
        return True
    return any(f.get("type") == "chunk" for f in frames_of(post.data.decode()))


# The measurements, one fresh interpreter each.


class Runner:
    """Runs the four measurements for one interpreter and keeps the samples."""

    def __init__(
        self,
        python: str,
        env: dict[str, str],
        recorder: ConnectionsRecorder,
        workdir: str,
    ) -> None:
        self.python = python
        self.env = env
        self.recorder = recorder
        self.workdir = workdir
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.preload: dict[str, str] = {}
        self.details: dict[str, Any] = {}
        self._connections = 0

    def add(self, side: Side, metric: str, value: float) -> None:
        self.samples.setdefault(side.name, {}).setdefault(metric, []).append(value)

    def discover_stdlib(self, side: Side) -> None:
        """Note the standard library modules ``side`` imports, for the own share."""
        child = run_child(
            self.python, ["import", side.spec, side.code_dir], self.env, _nothing
        )
        stdlib = set(sys.stdlib_module_names)
        names = [
            name for name in child.report["loaded"] if name.split(".")[0] in stdlib
        ]
        path = os.path.join(self.workdir, f"preload-{side.name}.txt")
        with open(path, "w") as file:
            file.write("\n".join(names))
        self.preload[side.name] = path
        self.details[side.name] = {
            "modules_loaded": child.report["loaded"],
            "stdlib_modules": len(names),
        }

    def measure_import(self, side: Side) -> None:
        child = run_child(
            self.python, ["import", side.spec, side.code_dir], self.env, _nothing
        )
        self.add(side, "import_ms", child.report["wall_ms"])
        self.add(side, "import_cpu_ms", child.report["cpu_ms"])
        self.add(side, "import_modules", child.report["modules"])
        self.add(side, "import_peak_rss_mib", child.peak_rss_mib)
        self.add(side, "process_ms", (child.exited - child.started) * 1000)

        own = run_child(
            self.python,
            ["import", side.spec, side.code_dir, self.preload[side.name]],
            self.env,
            _nothing,
        )
        self.add(side, "own_import_ms", own.report["wall_ms"])
        self.add(side, "own_import_modules", own.report["modules"])

    def measure_interpreter(self) -> None:
        """The child script with the runtime's modules and no handler, for scale."""
        child = run_child(
            self.python, ["import", "os:getcwd", self.workdir], self.env, _nothing
        )
        self.add(Side("interpreter", "", ""), "import_peak_rss_mib", child.peak_rss_mib)
        self.add(
            Side("interpreter", "", ""),
            "process_ms",
            (child.exited - child.started) * 1000,
        )

    def measure_first_chunk(self, side: Side) -> None:
        event_file, connection_id = self._event_file()
        child = run_child(
            self.python,
            ["message", side.spec, side.code_dir, event_file],
            self.env,
            self.recorder.clear,
        )
        first = self._first_output(side, connection_id)
        report = child.report
        self.add(side, "first_chunk_ms", (first.at - child.started) * 1000)
        self.add(
            side, "interpreter_start_ms", (report["started_at"] - child.started) * 1000
        )
        self.add(
            side, "preamble_ms", (report["import_at"] - report["started_at"]) * 1000
        )
        self.add(
            side, "handler_to_first_chunk_ms", (first.at - report["imported_at"]) * 1000
        )
        self.add(side, "message_import_ms", child.report["import_ms"])
        self.add(side, "message_handler_ms", child.report["handler_ms"])
        self.add(side, "message_peak_rss_mib", child.peak_rss_mib)

    def measure_snapstart(self, side: Side) -> None:
        event_file, connection_id = self._event_file()
        child = run_child(
            self.python,
            ["snapstart", side.spec, side.code_dir, event_file, STAND_IN],
            self.env,
            self.recorder.clear,
        )
        first = self._first_output(side, connection_id)
        report = child.report
        self.add(side, "snap_import_ms", report["import_ms"])
        self.add(side, "before_snapshot_ms", report["before_snapshot_ms"])
        self.add(side, "after_restore_ms", report["after_restore_ms"])
        self.add(
            side, "restored_first_chunk_ms", (first.at - report["restored_at"]) * 1000
        )
        self.add(side, "snap_peak_rss_mib", child.peak_rss_mib)
        self.details.setdefault(side.name, {}).update(
            before_snapshot_hooks=report["before_snapshot_hooks"],
            after_restore_hooks=report["after_restore_hooks"],
            connections_dropped=report["connections_dropped"],
        )

    def measure_primed_snapstart(self, side: Side) -> None:
        """SnapStart after a priming message: the snapshot holds open sockets."""
        prime_file, _ = self._event_file("prime.json")
        event_file, connection_id = self._event_file()
        child = run_child(
            self.python,
            ["snapstart", side.spec, side.code_dir, event_file, STAND_IN, prime_file],
            self.env,
            self.recorder.clear,
        )
        first = self._first_output(side, connection_id)
        report = child.report
        self.add(side, "prime_ms", report["prime_ms"])
        self.add(side, "primed_connections_dropped", report["connections_dropped"])
        self.add(
            side,
            "primed_restored_first_chunk_ms",
            (first.at - report["restored_at"]) * 1000,
        )

    def _event_file(self, name: str = "event.json") -> tuple[str, str]:
        """A fresh connection's MESSAGE event in ``name``; its path and id."""
        self._connections += 1
        connection_id = f"Bench{self._connections:010d}c="
        path = os.path.join(self.workdir, name)
        with open(path, "w") as file:
            json.dump(message_event(connection_id), file)
        return path, connection_id

    def _first_output(self, side: Side, connection_id: str) -> Post:
        """The first post of agent output to ``connection_id``, once it arrived."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            posts = self.recorder.posts()
            for post in posts:
                if post.connection_id == connection_id and carries_output(post):
                    return post
            self.recorder.wait_for(len(posts) + 1, timeout=deadline - time.monotonic())
        raise RuntimeError(f"{side.name}: no agent output was posted")


def _nothing() -> None:
    pass


def measure(
    python: str,
    stack: Stack,
    recorder: ConnectionsRecorder,
    rounds: int,
    snapstart: bool,
    handler: str = OURS_HANDLER,
    code_dir: str | None = None,
) -> dict[str, Any]:
    """Every measurement for one interpreter; medians and ratios."""
    with tempfile.TemporaryDirectory(prefix="coldstart-") as workdir:
        empty = os.path.join(workdir, "task")
        os.mkdir(empty)
        ours, reference = sides(empty, handler, code_dir)
        runner = Runner(python, child_environment(stack, recorder), recorder, workdir)

        # One untimed pass: byte-code caches written, files in the page cache.
        for side in (ours, reference):
            runner.discover_stdlib(side)
            runner.measure_first_chunk(side)
        runner.samples.clear()

        for index in range(rounds):
            order = (ours, reference) if index % 2 == 0 else (reference, ours)
            runner.measure_interpreter()
            for side in order:
                runner.measure_import(side)
            for side in order:
                runner.measure_first_chunk(side)
            if snapstart:
                for side in order:
                    runner.measure_snapstart(side)
                for side in order:
                    runner.measure_primed_snapstart(side)
        breakdown = {
            side.name: import_breakdown(python, runner.env, side, rounds)
            for side in (ours, reference)
        }

    medians = {
        name: {metric: statistics.median(values) for metric, values in metrics.items()}
        for name, metrics in runner.samples.items()
    }
    ratios = {
        metric: medians["reference"][metric] / value
        for metric, value in medians["ours"].items()
        if metric in medians["reference"] and value and metric not in NO_RATIO
    }
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The same ratio taken within each round, where both sides ran within a
    # second of each other: steadier than the ratio of medians when the
    # machine's load changes during the run.
    paired = {
        metric: statistics.median(
            ref / own
            for ref, own in zip(
                runner.samples["reference"][metric], values, strict=True
            )
            if own
        )
        for metric, values in runner.samples["ours"].items()
        if metric in runner.samples["reference"]
        and all(values)
        and metric not in NO_RATIO
    }
    return {
        "python": python,
        "version": version,
        "rounds": rounds,
        "medians": medians,
        "reference_over_ours": ratios,
        "paired_ratio_median": paired,
        "budgets": budgets(medians["ours"], ratios, paired),
        "import_breakdown": breakdown,
        "samples": runner.samples,
        "details": runner.details,
    }


def budgets(
    ours: dict[str, float], ratios: dict[str, float], paired: dict[str, float]
) -> list[dict[str, Any]]:
    """Each budget with the measured value and whether it was met.

    A ratio budget is judged on the ratio of the medians; the paired ratio
    is reported next to it.
    """
    verdicts = []
    for label, metric, kind, bound in BUDGETS:
        if metric not in ours:
            continue
        if kind == "ratio":
            value = ratios.get(metric, 0.0)
            met = value >= bound
        else:
            value = ours[metric]
            met = value < bound
        verdicts.append(
            {
                "budget": label,
                "metric": metric,
                "kind": kind,
                "bound": bound,
                "value": value,
                "paired": paired.get(metric) if kind == "ratio" else None,
                "met": met,
            }
        )
    return verdicts


# Where the import's time goes.


def import_breakdown(
    python: str, env: dict[str, str], side: Side, rounds: int
) -> list[dict[str, Any]]:
    """The handler's import under ``-X importtime``, per top-level module.

    Each fresh interpreter imports what Lambda's runtime has loaded first
    (``RUNTIME_MODULES``), as the child does, then the handler's module;
    only what that second import loads is counted. Self times are summed
    per top-level name (``logging`` with ``logging.handlers``,
    ``agentcore_bridge`` with all its modules) and the medians over
    ``rounds`` runs are returned, largest first. ``-X importtime`` adds
    its own overhead, so the sum is a little above the import times
    measured without it.
    """
    module = side.spec.partition(":")[0]
    # __import__, not importlib.import_module: -X importtime reports only
    # imports that go through the import statement's machinery, and would
    # leave out the handler's module itself (for the reference: creating
    # its two boto3 clients, which its module does at import).
    script = (
        "import importlib, sys\n"
        f"for name in {RUNTIME_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"sys.path.insert(0, {side.code_dir!r})\n"
        "sys.stderr.write('--- handler ---\\n'); sys.stderr.flush()\n"
        f"__import__({module!r})\n"
    )
    totals: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for _ in range(max(rounds, 1)):
        done = subprocess.run(
            [python, "-X", "importtime", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        _, _, lines = done.stderr.partition("--- handler ---\n")
        run: dict[str, float] = {}
        modules: dict[str, int] = {}
        for line in lines.splitlines():
            # "import time:      self [us] |  cumulative | imported package"
            parts = line.split("|")
            if len(parts) != 3 or not line.startswith("import time:"):
                continue
            try:
                self_us = float(parts[0].rsplit(":", 1)[1])
            except ValueError:
                continue  # the header line
            top = parts[2].strip().split(".")[0]
            run[top] = run.get(top, 0.0) + self_us / 1000
            modules[top] = modules.get(top, 0) + 1
        for top, ms in run.items():
            totals.setdefault(top, []).append(ms)
        counts = modules
    rows = [
        {
            "module": top,
            "ms": statistics.median(values + [0.0] * (rounds - len(values))),
            "modules": counts.get(top, 0),
            "stdlib": top in sys.stdlib_module_names,
        }
        for top, values in totals.items()
    ]
    rows.sort(key=lambda row: row["ms"], reverse=True)
    return rows


# Interpreters.


def find_extra_pythons() -> list[str]:
    """The pyenv interpreters of the SnapStart runtimes that are installed."""
    found = []
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for version in EXTRA_PYTHONS:
        candidates = sorted(
            glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", "python3")),
            key=_version_key,
        )
        if candidates:
            found.append(candidates[-1])
    return found


def _version_key(path: str) -> tuple[int, ...]:
    """3.12.10 after 3.12.9: the numbers of the version folder in ``path``."""
    folder = path.split(os.sep)[-3]
    return tuple(int(part) if part.isdigit() else -1 for part in folder.split("."))


def venv_python(base: str) -> str | None:
    """A throwaway venv under /tmp with the package and boto3; None on failure."""
    version = subprocess.run(
        [base, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # One venv per checkout: its editable install points at ROOT, so a venv
    # made from another checkout would measure that checkout's code.
    checkout = hashlib.sha256(ROOT.encode()).hexdigest()[:8]
    venv = os.path.join(
        tempfile.gettempdir(), f"agentcore-bridge-coldstart-py{version}-{checkout}"
    )
    python = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".installed")
    if not os.path.exists(marker):
        shutil.rmtree(venv, ignore_errors=True)
        pip = [python, "-m", "pip", "install", "--quiet"]
        steps = [
            [base, "-m", "venv", venv],
            [*pip, "--disable-pip-version-check", "-e", ROOT, *BOTO3_PINS],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(
                    f"skipping Python {version}: {' '.join(step[:4])} failed",
                    done.stderr[-2000:],
                    sep="\n",
                    file=sys.stderr,
                )
                return None
        with open(marker, "w"):
            pass
    return python


# Output.


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


ROWS = (
    ("import: wall (ms)", "import_ms"),
    ("import: CPU (ms)", "import_cpu_ms"),
    ("import: modules loaded", "import_modules"),
    ("import: peak RSS (MiB)", "import_peak_rss_mib"),
    ("import: own share above stdlib (ms)", "own_import_ms"),
    ("process start to exit, import only (ms)", "process_ms"),
    ("first chunk: fresh process to POST (ms)", "first_chunk_ms"),
    ("  of which: interpreter start (ms)", "interpreter_start_ms"),
    ("  of which: runtime's imports and event (ms)", "preamble_ms"),
    ("  of which: import (ms)", "message_import_ms"),
    ("  of which: handler call to first POST (ms)", "handler_to_first_chunk_ms"),
    ("first chunk: handler call, to its return (ms)", "message_handler_ms"),
    ("first chunk: peak RSS (MiB)", "message_peak_rss_mib"),
    ("SnapStart: init import (ms)", "snap_import_ms"),
    ("SnapStart: before-snapshot hooks (ms)", "before_snapshot_ms"),
    ("SnapStart: after-restore hooks (ms)", "after_restore_ms"),
    ("SnapStart: restore to first chunk (ms)", "restored_first_chunk_ms"),
    ("SnapStart, primed: priming message (ms)", "prime_ms"),
    ("SnapStart, primed: sockets dropped", "primed_connections_dropped"),
    (
        "SnapStart, primed: restore to first chunk (ms)",
        "primed_restored_first_chunk_ms",
    ),
)

#: The rows of the table that puts every interpreter side by side.
COMPARISON_ROWS = (
    ("import: wall (ms)", "import_ms"),
    ("import: peak RSS (MiB)", "import_peak_rss_mib"),
    ("import: own share above stdlib (ms)", "own_import_ms"),
    ("first chunk: fresh process to POST (ms)", "first_chunk_ms"),
    ("first chunk: peak RSS (MiB)", "message_peak_rss_mib"),
    ("SnapStart: before-snapshot hooks (ms)", "before_snapshot_ms"),
    ("SnapStart: restore to first chunk (ms)", "restored_first_chunk_ms"),
    (
        "SnapStart, primed: restore to first chunk (ms)",
        "primed_restored_first_chunk_ms",
    ),
)

#: How many top-level modules the breakdown lists before "everything else".
BREAKDOWN_ROWS = 12


def _value(result: dict[str, Any], side: str, metric: str) -> str:
    """A median as the tables print it: "none" where the reference has no hooks."""
    value = result["medians"][side].get(metric)
    if value is None:
        return ""
    hooks = result["details"]["reference"].get("before_snapshot_hooks")
    if side == "reference" and metric in NO_HOOKS and not hooks:
        return "none"
    return f"{value:.1f}"


def _ratio(result: dict[str, Any], metric: str, paired: bool = False) -> str:
    key = "paired_ratio_median" if paired else "reference_over_ours"
    ratio = result[key].get(metric)
    return f"{ratio:.2f}x" if ratio else ""


def _verdict(budget: dict[str, Any]) -> str:
    if budget["kind"] == "ratio":
        shown = f"{budget['value']:.2f}x"
        if budget["paired"]:
            shown += f", paired {budget['paired']:.2f}x"
    else:
        shown = f"{budget['value']:.1f} ms"
    return f"{'met' if budget['met'] else 'NOT MET'} ({shown})"


def breakdown_rows(rows: list[dict[str, Any]]) -> list[tuple[str, int, float]]:
    """(module, modules, ms) for the largest entries, then the rest summed."""
    shown = [(r["module"], r["modules"], r["ms"]) for r in rows[:BREAKDOWN_ROWS]]
    rest = rows[BREAKDOWN_ROWS:]
    if rest:
        shown.append(
            (
                f"{len(rest)} others",
                sum(r["modules"] for r in rest),
                sum(r["ms"] for r in rest),
            )
        )
    return shown


def print_table(result: dict[str, Any]) -> None:
    medians = result["medians"]
    ours = medians["ours"]
    print(
        f"\nPython {result['version']} ({result['python']}), "
        f"medians of {result['rounds']} fresh processes each"
    )
    print(f"{'':50}{'ours':>9}{'reference':>11}{'ref/ours':>10}{'paired':>9}")
    for label, metric in ROWS:
        if metric not in ours:
            continue
        print(
            f"{label:50}{_value(result, 'ours', metric):>9}"
            f"{_value(result, 'reference', metric):>11}"
            f"{_ratio(result, metric):>10}{_ratio(result, metric, True):>9}"
        )
    interpreter = medians.get("interpreter", {})
    if interpreter:
        print(
            f"bare interpreter: {interpreter['process_ms']:.1f} ms start to exit, "
            f"{interpreter['import_peak_rss_mib']:.1f} MiB peak RSS"
        )
    if "restored_first_chunk_ms" in ours:
        plain = ours["first_chunk_ms"] / ours["restored_first_chunk_ms"]
        print(f"ours, plain cold start / restored: {plain:.2f}x")
    print("budgets:")
    for budget in result["budgets"]:
        print(f"  {budget['budget']:58}{_verdict(budget)}")
    for side in ("ours", "reference"):
        rows = result["import_breakdown"][side]
        total = sum(row["ms"] for row in rows)
        print(
            f"where the import goes, {side} (-X importtime, self ms, "
            f"{total:.1f} in all):{'modules':>14}{'ms':>9}"
        )
        for module, count, ms in breakdown_rows(rows):
            print(f"  {module:56}{count:7}{ms:9.1f}")


def print_markdown(result: dict[str, Any]) -> None:
    """The tables of docs/cold-start.md for one interpreter, as Markdown."""
    print(
        f"\nPython {result['version']}, medians of {result['rounds']} fresh "
        "processes per cell:\n"
    )
    print("| measurement | ours | boto3 reference | reference / ours | paired |")
    print("|---|---:|---:|---:|---:|")
    for label, metric in ROWS:
        if metric not in result["medians"]["ours"]:
            continue
        print(
            f"| {label.strip()} | {_value(result, 'ours', metric)} "
            f"| {_value(result, 'reference', metric)} "
            f"| {_ratio(result, metric)} | {_ratio(result, metric, True)} |"
        )
    interpreter = result["medians"].get("interpreter", {})
    if interpreter:
        print(
            f"\nA bare interpreter (the same child script, with the runtime's "
            f"modules and no handler) "
            f"peaks at {interpreter['import_peak_rss_mib']:.1f} MiB and runs "
            f"start to exit in {interpreter['process_ms']:.0f} ms."
        )

    print(f"\nBudgets, Python {result['version']}:\n")
    print("| budget | result |")
    print("|---|---|")
    for budget in result["budgets"]:
        print(f"| {budget['budget']} | {_verdict(budget)} |")

    for side, name in (("ours", "our handler"), ("reference", "the reference")):
        rows = result["import_breakdown"][side]
        total = sum(row["ms"] for row in rows)
        print(
            f"\nWhere the import of {name} goes, Python {result['version']} "
            f"(`-X importtime` self times after `json`, per top-level module, "
            f"medians of {result['rounds']} runs; {total:.1f} ms in all):\n"
        )
        print("| module | modules | ms |")
        print("|---|---:|---:|")
        for module, count, ms in breakdown_rows(rows):
            shown = module if " " in module else f"`{module}`"
            print(f"| {shown} | {count} | {ms:.1f} |")


def print_markdown_comparison(results: list[dict[str, Any]]) -> None:
    """Every interpreter side by side, and the budgets of each, as Markdown."""
    if len(results) < 2:
        return
    versions = [r["version"] for r in results]
    print(f"\nEvery interpreter, same run ({', '.join(versions)}):\n")
    header = "| measurement |"
    rule = "|---|"
    for version in versions:
        header += f" {version} ours | {version} reference | ratio |"
        rule += "---:|---:|---:|"
    print(header)
    print(rule)
    for label, metric in COMPARISON_ROWS:
        if not any(metric in r["medians"]["ours"] for r in results):
            continue
        cells = "".join(
            f" {_value(r, 'ours', metric)} | {_value(r, 'reference', metric)} "
            f"| {_ratio(r, metric)} |"
            for r in results
        )
        print(f"| {label} |{cells}")
    cells = "".join(f" | | {_ratio(r, 'first_chunk_ms', True)} |" for r in results)
    print(f"| first chunk, paired ratio |{cells}")

    print("\nBudgets, every interpreter:\n")
    print("| budget |" + "".join(f" {v} |" for v in versions))
    print("|---|" + "---|" * len(versions))
    for label, *_ in BUDGETS:
        cells = []
        for result in results:
            found = [b for b in result["budgets"] if b["budget"] == label]
            cells.append(_verdict(found[0]) if found else "")
        if any(cells):
            print(f"| {label} |" + "".join(f" {c} |" for c in cells))


def chart(results: list[dict[str, Any]], path: str) -> None:
    """Draw the main interpreter's comparison (and first chunk on the others)."""
    main = results[0]
    ours, reference = main["medians"]["ours"], main["medians"]["reference"]

    def bars(result: dict[str, Any], metric: str, unit: str) -> list[Bar]:
        o = result["medians"]["ours"][metric]
        r = result["medians"]["reference"][metric]
        ratio = result["reference_over_ours"][metric]
        return [
            ("ours", o, f"{o:.0f} {unit}"),
            ("boto3 reference", r, f"{r:.0f} {unit} ({ratio:.1f}x)"),
        ]

    groups = [
        (f"import (py{main['version']})", bars(main, "import_ms", "ms")),
        ("peak RSS of the import", bars(main, "import_peak_rss_mib", "MiB")),
        (f"first chunk (py{main['version']})", bars(main, "first_chunk_ms", "ms")),
    ]
    for other in results[1:]:
        groups.append(
            (f"first chunk (py{other['version']})", bars(other, "first_chunk_ms", "ms"))
        )
    if "restored_first_chunk_ms" in ours and "restored_first_chunk_ms" in reference:
        groups.append(
            ("restore to first chunk", bars(main, "restored_first_chunk_ms", "ms"))
        )
    if "primed_restored_first_chunk_ms" in ours:
        groups.append(
            (
                "restore, primed snapshot",
                bars(main, "primed_restored_first_chunk_ms", "ms"),
            )
        )
    write_bar_chart(
        path,
        "Lambda cold start: agentcore-bridge vs boto3 (medians, lower is better)",
        groups,
        note=(
            f"{os.cpu_count()} CPUs, {main['rounds']} fresh processes per bar; "
            "restore: simulated SnapStart, hooks run"
        ),
    )


@contextmanager
def recording() -> Iterator[ConnectionsRecorder]:
    recorder = ConnectionsRecorder()
    try:
        yield recorder
    finally:
        recorder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        help="another interpreter to measure, with the package and boto3 "
        "installed (repeatable)",
    )
    parser.add_argument(
        "--no-extra-pythons",
        action="store_true",
        help="do not look for Python 3.12 and 3.13 in ~/.pyenv",
    )
    parser.add_argument("--no-snapstart", action="store_true")
    parser.add_argument(
        "--handler",
        default=OURS_HANDLER,
        help=f"our side's handler as module:function (default {OURS_HANDLER})",
    )
    parser.add_argument("--code-dir", help="where --handler is imported from")
    parser.add_argument("--chart", metavar="PNG", help="write the chart here")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--save", metavar="FILE", help="also write the JSON here")
    parser.add_argument(
        "--from-json",
        metavar="FILE",
        help="measure nothing: print (and chart) what --save wrote",
    )
    args = parser.parse_args()

    if args.from_json:
        with open(args.from_json) as file:
            document = json.load(file)
        report(document, args)
        return

    pythons = [sys.executable, *args.python]
    if not args.no_extra_pythons:
        for base in find_extra_pythons():
            python = venv_python(base)
            if python:
                pythons.append(python)

    results = []
    with servers() as stack, recording() as recorder:
        for python in pythons:
            results.append(
                measure(
                    python,
                    stack,
                    recorder,
                    args.rounds,
                    not args.no_snapstart,
                    args.handler,
                    args.code_dir,
                )
            )

    document = {"machine": machine(), "results": results}
    if args.save:
        with open(args.save, "w") as file:
            json.dump(document, file, indent=2)
    report(document, args)


def report(document: dict[str, Any], args: argparse.Namespace) -> None:
    if args.chart:
        chart(document["results"], args.chart)
    if args.json:
        print(json.dumps(document, indent=2))
        return
    print(json.dumps(document["machine"]))
    for result in document["results"]:
        if args.markdown:
            print_markdown(result)
        else:
            print_table(result)
    if args.markdown:
        print_markdown_comparison(document["results"])


if __name__ == "__main__":
    main()
