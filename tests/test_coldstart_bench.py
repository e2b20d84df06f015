"""The cold-start benchmarks run end to end (one small round each).

These check what the scripts report and that they report it, never how
fast anything was: the numbers themselves belong to docs/cold-start.md.
"""

from __future__ import annotations

import json
import os
import platform
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmark(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_coldstart_benchmark_measures_both_handlers_and_draws_the_chart(
    tmp_path: Path,
) -> None:
    """One round: import, first chunk and SnapStart rows for both sides, a PNG."""
    chart = tmp_path / "chart.png"
    document = run_benchmark(
        "coldstart.py", "--rounds", "1", "--no-extra-pythons", "--chart", str(chart)
    )

    assert document["machine"]["nproc"] == os.cpu_count()
    (result,) = document["results"]
    assert result["version"] == platform.python_version()
    for side in ("ours", "reference"):
        medians = result["medians"][side]
        for metric in (
            "import_ms",
            "import_cpu_ms",
            "import_modules",
            "import_peak_rss_mib",
            "own_import_ms",
            "first_chunk_ms",
            "message_peak_rss_mib",
            "before_snapshot_ms",
            "after_restore_ms",
            "restored_first_chunk_ms",
        ):
            assert isinstance(medians[metric], (int, float)), metric
        assert len(result["samples"][side]["first_chunk_ms"]) == 1
    assert set(result["reference_over_ours"]) >= {"import_ms", "first_chunk_ms"}

    # The layering the numbers depend on: no botocore on our side, and our
    # SnapStart hooks found by the stand-in snapshot_restore_py.
    ours = result["details"]["ours"]
    assert not any(name.startswith("botocore") for name in ours["modules_loaded"])
    assert ours["before_snapshot_hooks"] >= 1
    assert ours["after_restore_hooks"] >= 1
    assert result["details"]["reference"]["before_snapshot_hooks"] == 0

    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 0
    assert height > 0


def test_warmpool_benchmark_reports_environments_and_cold_starts() -> None:
    """One round per scenario: warm environments and cold starts, counted."""
    document = run_benchmark(
        "warmpool.py", "--concurrency", "2", "--rounds", "1", "--word-delay", "0.02"
    )

    assert document["concurrency"] == 2
    assert len(document["summary"]) == 2
    for rounds in document["rounds"].values():
        (row,) = rounds
        assert 1 <= row["warm_environments"] <= 2
        assert 0 <= row["cold_starts"] <= 2
        assert len(row["first_chunk_ms"]) == 2


def test_warmup_benchmark_compares_connections_with_and_without_warm_up() -> None:
    """One connection each way, against an agent with a short cold start."""
    document = run_benchmark(
        "warmup.py", "--cold-start", "0.3", "--delay", "0.1", "--rounds", "1"
    )

    assert set(document["medians"]) == {"without warm-up", "warm-up on $connect"}
    for row in document["medians"].values():
        assert set(row) == {
            "handshake_ms",
            "connect_to_first_chunk_ms",
            "message_to_first_chunk_ms",
        }
    # Every connection started one agent session, cold.
    assert document["agent_cold_starts"] == {
        "without warm-up": 1,
        "warm-up on $connect": 1,
    }
    assert isinstance(document["hidden_ms"], float)
