"""Issue 25's record (the contract): every benchmark script takes `--json FILE`, and
`benchmarks/compare.py` compares records and flags a figure that worsened by more than 10%."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_benchmark_script_takes_json(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=60, cwd=BENCHMARKS)
    assert done.returncode == 0, done.stderr
    assert "--json FILE" in done.stdout


def _record(folder: Path, commit: str, date: str, figures: dict[str, float]) -> None:
    record = {"benchmark": "throughput", "commit": commit, "date": date, "figures": figures}
    (folder / f"{commit[:12]}.json").write_text(json.dumps({"throughput": record}))


def test_compare_flags_a_figure_worse_by_more_than_ten_percent(tmp_path: Path) -> None:
    _record(tmp_path, "a" * 40, "2026-12-01T00:00:00+00:00",
            {"harness_cpu_ms_per_request": 2.0, "fraction_of_ideal": 0.9, "requests": 1600})
    _record(tmp_path, "b" * 40, "2026-12-02T00:00:00+00:00",
            {"harness_cpu_ms_per_request": 2.5, "fraction_of_ideal": 0.91, "requests": 1600})
    done = subprocess.run([sys.executable, str(BENCHMARKS / "compare.py"), "--results",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert "WORSE by 25%" in lines["harness_cpu_ms_per_request"]
    assert "WORSE" not in lines["fraction_of_ideal"] and "not judged" in lines["requests"]


def test_compare_judges_only_records_of_the_same_work(tmp_path: Path) -> None:
    _record(tmp_path, "a" * 40, "2026-12-01T00:00:00+00:00",
            {"harness_cpu_ms_per_request": 2.0, "requests": 1600})
    _record(tmp_path, "b" * 40, "2026-12-02T00:00:00+00:00",
            {"harness_cpu_ms_per_request": 2.0, "requests": 800})
    _record(tmp_path, "c" * 40, "2026-12-03T00:00:00+00:00",
            {"harness_cpu_ms_per_request": 3.0, "requests": 800})
    done = subprocess.run([sys.executable, str(BENCHMARKS / "compare.py"), "--results",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"against {'b' * 12}" in done.stdout, done.stdout
    _record(tmp_path, "d" * 40, "2026-12-04T00:00:00+00:00",
            {"harness_cpu_ms_per_request": 9.0, "requests": 5})
    done = subprocess.run([sys.executable, str(BENCHMARKS / "compare.py"), "--results",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "at the same inputs (requests 5)" in done.stdout, done.stdout


def test_compare_passes_when_nothing_worsened(tmp_path: Path) -> None:
    _record(tmp_path, "a" * 40, "2026-12-01T00:00:00+00:00", {"harness_cpu_ms_per_request": 2.0})
    _record(tmp_path, "b" * 40, "2026-12-02T00:00:00+00:00", {"harness_cpu_ms_per_request": 1.9})
    done = subprocess.run([sys.executable, str(BENCHMARKS / "compare.py"), "--results",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
