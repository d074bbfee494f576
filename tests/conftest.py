"""Test isolation: no user cache, registry, API keys or base URLs leak into tests."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # fake_openai, conftest helpers: from any folder

LABELS = ["billing", "shipping", "returns", "account"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own cache folder and registry, and no OpenAI settings from the user."""
    home = tmp_path_factory.mktemp("harness-home")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("HARNESS_REGISTRY", str(home / "finetunes.json"))
    monkeypatch.setenv("HARNESS_HISTORY", str(home / "history.jsonl"))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    yield


def write_csv(path: Path, rows: list[dict[str, str]], fields: list[str] | None = None) -> Path:
    """Write rows to a CSV file."""
    fields = fields or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def synthetic_rows(n_per_label: int, prefix: str) -> list[dict[str, str]]:
    """Messages whose first line is their label (the fake server's default responder echoes it)."""
    return [{"text": f"{lab}\n{prefix} message {i} about {lab}", "category": lab}
            for i in range(n_per_label) for lab in LABELS]


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a small project (data + config) pointing at an OpenAI-compatible base_url."""

    def make(base_url: str = "http://127.0.0.1:9/v1", *, n_eval: int = 5, n_train: int = 6,
             strategies: list[dict[str, Any]] | None = None, run: dict[str, Any] | None = None,
             extra: dict[str, Any] | None = None, name: str = "test") -> Path:
        write_csv(tmp_path / "eval.csv", synthetic_rows(n_eval, "eval"))
        write_csv(tmp_path / "train.csv", synthetic_rows(n_train, "train"))
        (tmp_path / "labels.json").write_text(json.dumps(LABELS))
        cfg: dict[str, Any] = {
            "name": name,
            "task": {"type": "classification", "instructions": "Route the support message.",
                     "labels": "labels.json"},
            "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text",
                        "target": "category"},
            "models": {"fake": {"provider": "openai", "model": "fake-model", "base_url": base_url,
                                "api_key_env": "TEST_API_KEY"}},
            "strategies": strategies or [
                {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
                {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1, 2],
                 "draws": 2},
            ],
            "run": {"concurrency": 4, "timeout": 5, "max_attempts": 4, **(run or {})},
        }
        cfg.update(extra or {})
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    return make
