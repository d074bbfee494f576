"""One git command, asked without ever failing the caller: what harness reads of a work tree
(the branch and commit a history entry records, analysis/history_git.py; the commit of
harness's own source a run folder names, running/plan.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 5.0


def git(directory: Path, *args: str) -> str | None:
    """git's output (stripped; "" when it printed nothing) in `directory`, or None when git
    fails, is missing or takes longer than GIT_TIMEOUT_S."""
    try:
        done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
