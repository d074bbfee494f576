"""The README's first command from a fresh clone: install, train the quickstart's LoRA, run it.

A clone of this repository's HEAD in a temporary folder, a new virtual environment that sees
the installed packages (`--system-site-packages`: pip's cache and this machine's builds warm,
as for a user's second project), an empty response cache, an empty fine-tune registry; then the
README's command, `pip install -e '.[local,finetune]' && harness run configs/quickstart.yaml
--out reports/quickstart`, timed end to end, with the install, the fine-tune and the requests
apart (the run's own figures: run.json's started_at/finished_at and the registry's trained
model).

    python benchmarks/bench_quickstart.py [--json benchmarks/results/]

The goal (issue 25): under 3 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from record import add_json_flag, emit

ROOT = Path(__file__).resolve().parents[1]


def _seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def main() -> int:
    """Clone, install, run; print and record the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_flag(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clone, venv = Path(tmp) / "clone", Path(tmp) / "venv"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                       check=True)
        env = {**os.environ, "HARNESS_CACHE_DIR": str(Path(tmp) / "cache"),
               "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
               "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        env.pop("HARNESS_REGISTRY", None)
        env.pop("HARNESS_HISTORY", None)
        start = time.monotonic()
        subprocess.run(["pip", "install", "-q", "-e", ".[local,finetune]"], cwd=clone, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        installed = time.monotonic()
        done = subprocess.run(["harness", "run", "configs/quickstart.yaml", "--out",
                               "reports/quickstart"], cwd=clone, env=env, capture_output=True,
                              text=True, check=False)
        end = time.monotonic()
        meta = json.loads((clone / "reports" / "quickstart" / "run.json").read_text())
        summary = json.loads((clone / "reports" / "quickstart" / "summary.json").read_text())
    figures = {
        "wall_s": round(end - start, 1), "install_s": round(installed - start, 1),
        "run_command_s": round(end - installed, 1),
        "requests_s": round(_seconds(meta["started_at"], meta["finished_at"]), 1),
        "requests": meta["counts"]["requests"], "exit_code": done.returncode,
        "verdict": summary["recommendation"]["verdict"] if summary["recommendation"] else None,
        "target": "< 180 s from a fresh clone, pip's cache warm, empty response cache",
    }
    emit("quickstart", figures, args.json)
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
