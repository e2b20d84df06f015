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
   3.12 and 3.13, the SnapStart runtimes, from ``~/.pyenv`` when installed,
   each in a throwaway venv under /tmp).
4. SnapStart, simulated: import, before-snapshot hooks, every TCP
   connection shut down, then after-restore hooks and the message; the
   restored path is timed from the restore to the first chunk.

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

from _chart import write_bar_chart
from _stack import ConnectionsRecorder, Post, Stack, servers

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


#: The reference registers no SnapStart hooks: nothing to compare.
NO_RATIO = frozenset({"before_snapshot_ms", "after_restore_ms"})


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
    """Whether a post holds agent output (not a session token or a pong)."""
    try:
        frame = json.loads(post.data)
    except ValueError:
        return True
    return not (isinstance(frame, dict) and frame.get("type") in {"session", "pong"})


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
        """The bare interpreter running the child script, for scale."""
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
        event_file = self._event_file()
        child = run_child(
            self.python,
            ["message", side.spec, side.code_dir, event_file],
            self.env,
            self.recorder.clear,
        )
        first = self._first_output(side)
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
        event_file = self._event_file()
        child = run_child(
            self.python,
            ["snapstart", side.spec, side.code_dir, event_file, STAND_IN],
            self.env,
            self.recorder.clear,
        )
        first = self._first_output(side)
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

    def _event_file(self) -> str:
        self._connections += 1
        path = os.path.join(self.workdir, "event.json")
        with open(path, "w") as file:
            json.dump(message_event(f"Bench{self._connections:010d}c="), file)
        return path

    def _first_output(self, side: Side) -> Post:
        for post in self.recorder.wait_for(1, timeout=5):
            if carries_output(post):
                return post
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
        "samples": runner.samples,
        "details": runner.details,
    }


# Interpreters.


def find_extra_pythons() -> list[str]:
    """The pyenv interpreters of the SnapStart runtimes that are installed."""
    found = []
    for version in EXTRA_PYTHONS:
        candidates = sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python3"))
        )
        if candidates:
            found.append(candidates[-1])
    return found


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
    ("  of which: harness, json import and event (ms)", "preamble_ms"),
    ("  of which: import (ms)", "message_import_ms"),
    ("  of which: handler call to first POST (ms)", "handler_to_first_chunk_ms"),
    ("first chunk: handler call, to its return (ms)", "message_handler_ms"),
    ("first chunk: peak RSS (MiB)", "message_peak_rss_mib"),
    ("SnapStart: init import (ms)", "snap_import_ms"),
    ("SnapStart: before-snapshot hooks (ms)", "before_snapshot_ms"),
    ("SnapStart: after-restore hooks (ms)", "after_restore_ms"),
    ("SnapStart: restore to first chunk (ms)", "restored_first_chunk_ms"),
)


def print_table(result: dict[str, Any]) -> None:
    medians = result["medians"]
    ours, reference = medians["ours"], medians["reference"]
    print(
        f"\nPython {result['version']} ({result['python']}), "
        f"medians of {result['rounds']} fresh processes each"
    )
    print(f"{'':46}{'ours':>9}{'reference':>11}{'ref/ours':>10}{'paired':>9}")
    for label, metric in ROWS:
        if metric not in ours:
            continue
        ratio = result["reference_over_ours"].get(metric)
        paired = result["paired_ratio_median"].get(metric)
        ratio_text = f"{ratio:9.2f}x" if ratio else f"{'':10}"
        paired_text = f"{paired:8.2f}x" if paired else ""
        print(
            f"{label:46}{ours[metric]:9.1f}{reference[metric]:11.1f}"
            f"{ratio_text}{paired_text}"
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


def print_markdown(result: dict[str, Any]) -> None:
    """The same table as Markdown, for docs/cold-start.md."""
    medians = result["medians"]
    ours, reference = medians["ours"], medians["reference"]
    print(
        f"\nPython {result['version']}, medians of {result['rounds']} fresh "
        "processes per cell:\n"
    )
    print("| measurement | ours | boto3 reference | reference / ours | paired |")
    print("|---|---:|---:|---:|---:|")
    for label, metric in ROWS:
        if metric not in ours:
            continue
        ratio = result["reference_over_ours"].get(metric)
        paired = result["paired_ratio_median"].get(metric)
        print(
            f"| {label.strip()} | {ours[metric]:.1f} | {reference[metric]:.1f} "
            f"| {f'{ratio:.2f}x' if ratio else ''} "
            f"| {f'{paired:.2f}x' if paired else ''} |"
        )


def chart(results: list[dict[str, Any]], path: str) -> None:
    """Draw the main interpreter's comparison (and first chunk on the others)."""
    main = results[0]
    ours, reference = main["medians"]["ours"], main["medians"]["reference"]

    def bars(metric: str, unit: str) -> list[tuple[str, float, str]]:
        ratio = main["reference_over_ours"][metric]
        return [
            ("ours", ours[metric], f"{ours[metric]:.0f} {unit}"),
            (
                "boto3 reference",
                reference[metric],
                f"{reference[metric]:.0f} {unit} ({ratio:.1f}x)",
            ),
        ]

    groups = [
        (f"import (py{main['version']})", bars("import_ms", "ms")),
        ("peak RSS of the import", bars("import_peak_rss_mib", "MiB")),
        (f"first chunk (py{main['version']})", bars("first_chunk_ms", "ms")),
    ]
    for other in results[1:]:
        o, r = other["medians"]["ours"], other["medians"]["reference"]
        ratio = other["reference_over_ours"]["first_chunk_ms"]
        groups.append(
            (
                f"first chunk (py{other['version']})",
                [
                    ("ours", o["first_chunk_ms"], f"{o['first_chunk_ms']:.0f} ms"),
                    (
                        "boto3 reference",
                        r["first_chunk_ms"],
                        f"{r['first_chunk_ms']:.0f} ms ({ratio:.1f}x)",
                    ),
                ],
            )
        )
    if "restored_first_chunk_ms" in ours:
        groups.append(("restore to first chunk", bars("restored_first_chunk_ms", "ms")))
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


if __name__ == "__main__":
    main()
