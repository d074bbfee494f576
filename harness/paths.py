"""Where the harness keeps things outside a run folder: the user cache and the fine-tune registry."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/harness, else ~/.cache/harness."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "harness"


def registry_path() -> Path:
    """$HARNESS_REGISTRY, else reports/finetunes.json under the working directory."""
    env = os.environ.get("HARNESS_REGISTRY")
    return Path(env).expanduser() if env else Path("reports") / "finetunes.json"
