"""The SigV4 and invocation benchmarks run end to end (one small round each).

These check that the scripts run and report every figure the performance
page quotes, never how fast anything was: the numbers belong to
docs/performance.md, measured on a quiet machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmark(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_sigv4_benchmark_reports_both_signers_and_their_ratio() -> None:
    document = run_benchmark("sigv4.py", "--rounds", "1", "--number", "3")

    rows = {row["operation"]: row for row in document["results"]}
    assert set(rows) == {"sign_headers / SigV4Auth", "presign_url / SigV4QueryAuth"}
    for row in rows.values():
        assert row["ours_us"] > 0
        assert row["botocore_us"] > 0
        # Both times are rounded to 0.01 µs in the report, the ratio is not.
        ratio = row["botocore_us"] / row["ours_us"]
        assert row["ratio"] == pytest.approx(ratio, rel=0.01, abs=0.01)


def test_sigv4_benchmark_refuses_empty_rounds() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "sigv4.py"), "--number", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--number must be at least 1" in done.stderr


def test_invoke_benchmark_reports_both_clients_and_import_costs() -> None:
    document = run_benchmark(
        "invoke.py", "--rounds", "1", "--paced-rounds", "1", "--import-rounds", "1"
    )

    for scenario in ("invocations", "paced"):
        ours, boto3 = document[scenario]["ours"], document[scenario]["boto3"]
        # The same answer through both clients: the same number of events.
        assert ours["events"] == boto3["events"] > 0
        for side in (ours, boto3):
            assert 0 < side["first"] <= side["total"]
            assert side["cpu"] >= 0
    for side in ("ours", "boto3", "python"):
        assert document["imports"][side]["rss_mib"] > 0
    assert document["imports"]["ours"]["seconds"] > 0
    assert document["imports"]["boto3"]["seconds"] > 0
