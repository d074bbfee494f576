"""The small project the loopback benchmarks run: N zero-shot classification requests."""

from __future__ import annotations

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
