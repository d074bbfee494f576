"""Benchmark figures as a record: printed, and with `--json FILE` written with the commit, the
date and the machine, so that figures can be compared from one change to the next.

`--json benchmarks/results/` (a folder) merges the record into `RESULTS/COMMIT.json`, one file
per measured commit, keyed by benchmark name; a file path writes that one record alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def add_json_flag(ap: argparse.ArgumentParser) -> None:
    """The `--json FILE` option every benchmark script takes."""
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as a "
                    "JSON record (commit, date, machine); a folder such as benchmarks/results/ "
                    "keeps one file per commit")


def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine() -> dict[str, Any]:
    """The machine the figures were measured on."""
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.machine()}


def emit(name: str, figures: dict[str, Any], target: Path | None) -> dict[str, Any]:
    """Print the figures; with `target`, write them as a record (see the module)."""
    print(json.dumps(figures, indent=2))
    record = {"benchmark": name, **_commit(),
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), "figures": figures}
    if target is None:
        return record
    if target.is_dir() or str(target).endswith("/"):
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{(record['commit'] or 'uncommitted')[:12]}.json"
        merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        merged[name] = record
        path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    else:
        target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
