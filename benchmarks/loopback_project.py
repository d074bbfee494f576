"""The small project the loopback benchmarks run: N zero-shot classification requests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

LABELS = ["billing", "shipping", "returns", "account"]


def write_project(folder: Path, base_url: str, n: int, concurrency: int) -> Path:
    """eval.csv with `n` messages and a config pointing at `base_url`; the config's path."""
    rows = ["text,category"] + [f"{LABELS[i % 4]} message number {i},{LABELS[i % 4]}"
                                for i in range(n)]
    (folder / "eval.csv").write_text("\n".join(rows) + "\n")
    cfg = {
        "name": "bench",
        "task": {"type": "classification", "instructions": "Route it.", "labels": LABELS},
        "dataset": {"eval": "eval.csv", "input": "text", "target": "category"},
        "models": {"m": {"provider": "openai", "model": "fake", "base_url": base_url,
                         "api_key_env": None}},
        "strategies": [{"name": "zs", "type": "zero_shot", "model": "m"}],
        "run": {"concurrency": concurrency},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "c.yaml"


@contextlib.contextmanager
def loopback_server(script: str) -> Iterator[str]:
    """Run `script` (a Python program that prints its base URL on one line, then serves until its
    stdin closes) in a child process; yield that URL, and close the server on the way out."""
    server = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.communicate("")
