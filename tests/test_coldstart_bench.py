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


def run_script(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def run_benchmark(script: str, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_script(script, *args, "--json"))
    return result


def coldstart_module() -> Any:
    """benchmarks/coldstart.py, imported (it imports its neighbours by name)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import coldstart
    finally:
        sys.path.remove(str(BENCHMARKS))
    return coldstart


def test_coldstart_benchmark_measures_both_handlers_and_draws_the_chart(
    tmp_path: Path,
) -> None:
    """One round: import, first chunk and SnapStart rows for both sides, a PNG."""
    chart = tmp_path / "chart.png"
    saved = tmp_path / "results.json"
    document = run_benchmark(
        "coldstart.py",
        "--rounds",
        "1",
        "--no-extra-pythons",
        "--chart",
        str(chart),
        "--save",
        str(saved),
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
            "prime_ms",
            "primed_restored_first_chunk_ms",
        ):
            assert isinstance(medians[metric], (int, float)), metric
        assert len(result["samples"][side]["first_chunk_ms"]) == 1
        # The primed snapshot held pooled connections, which the simulated
        # restore broke; the restored message still reached the client.
        assert medians["primed_connections_dropped"] >= 1
    assert set(result["reference_over_ours"]) >= {
        "import_ms",
        "import_peak_rss_mib",
        "first_chunk_ms",
        "message_peak_rss_mib",
        "restored_first_chunk_ms",
    }

    # Every budget of the cold-start page is judged, on the measured values.
    budgets = {b["metric"]: b for b in result["budgets"]}
    assert set(budgets) == {
        "import_ms",
        "import_peak_rss_mib",
        "first_chunk_ms",
        "message_peak_rss_mib",
        "own_import_ms",
    }
    ratios = result["reference_over_ours"]
    for metric in ("import_ms", "first_chunk_ms"):
        assert budgets[metric]["met"] == (ratios[metric] >= 4)
    for metric in ("import_peak_rss_mib", "message_peak_rss_mib"):
        assert budgets[metric]["met"] == (ratios[metric] >= 2)
    own = result["medians"]["ours"]["own_import_ms"]
    assert budgets["own_import_ms"]["met"] == (own < 15)

    # Where the import goes: our modules and no botocore on our side,
    # botocore and the module that makes the clients on the reference's.
    breakdown = result["import_breakdown"]
    ours_modules = {row["module"] for row in breakdown["ours"]}
    assert "agentcore_bridge" in ours_modules
    assert "botocore" not in ours_modules
    assert {"botocore", "handler"} <= {row["module"] for row in breakdown["reference"]}

    # The layering the numbers depend on: no botocore on our side, and our
    # SnapStart hooks found by the stand-in snapshot_restore_py.
    ours = result["details"]["ours"]
    assert not any(name.startswith("botocore") for name in ours["modules_loaded"])
    # The runtime's own modules were loaded before either import began.
    for side in ("ours", "reference"):
        loaded = set(result["details"][side]["modules_loaded"])
        assert not loaded & set(coldstart_module().RUNTIME_MODULES), side
    assert ours["before_snapshot_hooks"] >= 1
    assert ours["after_restore_hooks"] >= 1
    assert result["details"]["reference"]["before_snapshot_hooks"] == 0

    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 0
    assert height > 0

    # The saved run prints the page's tables without measuring again.
    markdown = run_script("coldstart.py", "--from-json", str(saved), "--markdown")
    for heading in (
        "| measurement | ours | boto3 reference | reference / ours | paired |",
        "| budget | result |",
        "| module | modules | ms |",
        "| SnapStart, primed: restore to first chunk (ms) |",
        "| the library's own import under 15 ms |",
    ):
        assert heading in markdown, heading


def test_the_runtime_modules_are_standard_library_modules() -> None:
    """What the child imports first, as Lambda's runtime has, is all stdlib."""
    names = coldstart_module().RUNTIME_MODULES
    assert {"importlib", "json", "logging"} <= set(names)
    assert all(name.split(".")[0] in sys.stdlib_module_names for name in names)


def test_only_a_post_with_a_chunk_counts_as_the_first_chunk() -> None:
    """A bridge post of a session token alone is not agent output."""
    coldstart = coldstart_module()

    def post(data: object) -> Any:
        return coldstart.Post(0.0, "c", json.dumps(data).encode())

    session = {"type": "session", "session": "v1.x.y", "expires": 1}
    chunk = {"type": "chunk", "id": "m1", "seq": 0, "data": "Turn"}
    assert not coldstart.carries_output(post(session))
    assert not coldstart.carries_output(post({"type": "batch", "frames": [session]}))
    assert coldstart.carries_output(post({"type": "batch", "frames": [session, chunk]}))
    assert coldstart.carries_output(post(chunk))
    # The reference posts the agent's data: values as they are.
    assert coldstart.carries_output(post("Turn"))
    assert coldstart.carries_output(post({"text": "Turn"}))


def test_warmpool_benchmark_reports_environments_and_cold_starts() -> None:
    """One round per scenario: warm environments and cold starts, counted."""
    document = run_benchmark(
        "warmpool.py", "--concurrency", "2", "--rounds", "1", "--word-delay", "0.02"
    )

    assert document["concurrency"] == 2
    rounds = document["rounds"]
    assert set(rounds) == {"warmer ping, concurrency 2", "plain scheduled ping"}
    (warmer,) = rounds["warmer ping, concurrency 2"]
    (plain,) = rounds["plain scheduled ping"]
    # The ping for 2 left two environments, and both first messages found
    # one of them warm; the plain ping left one.
    assert warmer["ping_answer"] == {"warmed": 2, "failed": 0}
    assert warmer["warm_environments"] == 2
    assert warmer["cold_starts"] == 0
    assert plain["ping_answer"] == {"warmed": 1, "failed": 0}
    assert plain["warm_environments"] == 1
    assert 0 <= plain["cold_starts"] <= 1
    for row in (warmer, plain):
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
