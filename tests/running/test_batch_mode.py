"""`run.mode: batch`: the OpenAI Batch API against a loopback implementation of /v1/files,
/v1/batches and the file content endpoint (tests/fake_batches.py).

Every test checks what the provider was asked: which lines were executed how often, and how many
batches were created, so that "never pay twice" is measured, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import FakeOpenAI, last_user_content

from harness.cli import main

LABELS = ["billing", "shipping"]
PRICE = {"input": 2.0, "output": 8.0}


def _answer(body: dict[str, Any]) -> str:
    text = last_user_content(body)
    return json.dumps({"label": "billing" if "bill" in text else "shipping"})


def _project(tmp: Path, base_url: str, *, n: int = 20, run: dict[str, Any] | None = None,
             mode_on_model: str | None = None) -> Path:
    rows = [{"text": f"{'bill' if i % 2 else 'ship'} question {i}",
             "label": "billing" if i % 2 else "shipping"} for i in range(n)]
    (tmp / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model: dict[str, Any] = {"provider": "openai", "model": "gpt-4o-mini", "base_url": base_url,
                             "api_key_env": None, "price": PRICE}
    if mode_on_model:
        model["mode"] = mode_on_model
    cfg = {"name": "batchy",
           "task": {"type": "classification", "instructions": "Route it.", "labels": LABELS},
           "dataset": {"eval": "eval.jsonl", "input": "text", "target": "label"},
           "models": {"m": model},
           "strategies": [{"name": "zero-shot", "type": "zero_shot", "model": "m"}],
           "run": {"mode": "batch", "batch_poll_seconds": 0.02, **(run or {})}}
    if mode_on_model:
        cfg["run"].pop("mode")
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "c.yaml"


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").open()]


def _run(cfg: Path, out: Path, *extra: str) -> int:
    return main(["run", str(cfg), "--out", str(out), "--no-cache", *extra])


@pytest.mark.parametrize("per_model", [False, True])
def test_a_batch_run_answers_every_example_once_at_batch_prices(tmp_path: Path,
                                                                per_model: bool) -> None:
    with FakeOpenAI(responder=_answer) as fake:
        cfg = _project(tmp_path, fake.base_url, mode_on_model="batch" if per_model else None)
        assert _run(cfg, tmp_path / "out") == 0
        assert fake.attempts == 0  # not one online chat completion
        assert fake.batches.creates == 1
        assert len(fake.batches.executed) == 20 and set(fake.batches.executed.values()) == {1}
        batch_id = next(iter(fake.batches.batches))
    records = _records(tmp_path / "out")
    assert len(records) == 20 and all(r["correct"] for r in records)
    assert {r["batch_id"] for r in records} == {batch_id}
    journal = json.loads((tmp_path / "out/batches.json").read_text())
    assert [b["id"] for b in journal["batches"]] == [batch_id]
    assert journal["batches"][0]["status"] == "completed"
    # half of the standard rates: $1 / $4 per 1M tokens for this price block
    import pandas as pd

    results = pd.read_csv(tmp_path / "out/results.csv")
    expected = (results["prompt_tokens"] * 1.0 + results["completion_tokens"] * 4.0) / 1e6
    assert results["cost_usd"].tolist() == pytest.approx(expected.tolist(), rel=1e-9)
    assert results["batch_id"].unique().tolist() == [batch_id]
    summary = pd.read_csv(tmp_path / "out/summary.csv")
    assert summary.loc[0, "accuracy"] == 1.0 and summary.loc[0, "n"] == 20


def test_batch_and_online_runs_write_the_same_record_fields(tmp_path: Path) -> None:
    with FakeOpenAI(responder=_answer) as fake:
        cfg = _project(tmp_path, fake.base_url, n=4)
        assert _run(cfg, tmp_path / "batch") == 0
        online = _project(tmp_path, fake.base_url, n=4, run={"mode": "online"})
        assert _run(online, tmp_path / "online") == 0
    b, o = _records(tmp_path / "batch"), _records(tmp_path / "online")
    assert set(b[0]) - set(o[0]) == {"batch_id"} and set(o[0]) <= set(b[0])
    assert {r["example_id"]: r["prediction"] for r in b} == \
        {r["example_id"]: r["prediction"] for r in o}
    for name in ("summary.csv", "report.html", "summary.json", "per_class.csv"):
        assert (tmp_path / "batch" / name).exists()


def test_lines_that_fail_transiently_go_again_in_a_follow_up_batch(tmp_path: Path) -> None:
    with FakeOpenAI(responder=_answer) as fake:
        failing: set[str] = set()

        def status(cid: str, body: dict[str, Any], nth: int) -> int:
            text = last_user_content(body)
            if nth == 1 and text.endswith((" 3", " 7")):
                failing.add(cid)
                return 500 if text.endswith(" 3") else 429
            return 400 if text.endswith(" 11") else 200

        fake.batches.line_status = status
        cfg = _project(tmp_path, fake.base_url)
        assert _run(cfg, tmp_path / "out") == 1  # incomplete: the 400 is an endpoint failure
        assert fake.batches.creates == 2  # the first batch, and one follow-up for two lines
        assert {cid: n for cid, n in fake.batches.executed.items() if n > 1} == \
            dict.fromkeys(failing, 2)
    by_input = {r["input"]: r for r in _records(tmp_path / "out")}
    assert by_input["bill question 3"]["correct"] and by_input["bill question 7"]["correct"]
    bad = by_input["bill question 11"]  # a 400 is not retried: a per-example failure
    assert bad["error_kind"] == "bad_request" and not bad["correct"]
    assert len(by_input) == 20


def test_an_expired_batch_sends_what_it_left_undone_again(tmp_path: Path) -> None:
    with FakeOpenAI(responder=_answer) as fake:
        fake.batches.outcome = ["expired", "completed"]
        cfg = _project(tmp_path, fake.base_url)
        assert _run(cfg, tmp_path / "out") == 0
        assert fake.batches.creates == 2
        assert set(fake.batches.executed.values()) == {1} and len(fake.batches.executed) == 20
    assert all(r["correct"] for r in _records(tmp_path / "out"))


def test_a_batch_that_fails_validation_is_a_per_example_failure(tmp_path: Path) -> None:
    with FakeOpenAI(responder=_answer) as fake:
        fake.batches.outcome = "failed"
        cfg = _project(tmp_path, fake.base_url, n=6)
        code = _run(cfg, tmp_path / "out")
        assert fake.batches.creates == 1 and not fake.batches.executed
    assert code != 0
    records = _records(tmp_path / "out")
    assert {r["error_kind"] for r in records} == {"batch_failed"}
    meta = json.loads((tmp_path / "out/run.json").read_text())
    assert meta["status"] == "incomplete"


def test_a_lost_create_response_does_not_create_a_second_batch(tmp_path: Path) -> None:
    with FakeOpenAI(responder=_answer) as fake:
        fake.batches.drop_creates = 1
        cfg = _project(tmp_path, fake.base_url, n=6)
        assert _run(cfg, tmp_path / "out") == 0
        assert len(fake.batches.batches) == 1 and set(fake.batches.executed.values()) == {1}


def test_cache_hits_skip_the_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    with FakeOpenAI(responder=_answer) as fake:
        cfg = _project(tmp_path, fake.base_url, n=6)
        assert main(["run", str(cfg), "--out", str(tmp_path / "one")]) == 0
        assert main(["run", str(cfg), "--out", str(tmp_path / "two")]) == 0
        assert fake.batches.creates == 1
    assert all(r["cached"] for r in _records(tmp_path / "two"))


def test_a_stopped_batch_run_re_attaches_instead_of_paying_again(tmp_path: Path) -> None:
    """A real process is stopped (SIGTERM) while its batch is in progress; the same command
    again re-attaches to the recorded batch and collects its answers."""
    with FakeOpenAI(responder=_answer) as fake:
        fake.batches.steps = 10 ** 9  # in progress until the test says otherwise
        cfg = _project(tmp_path, fake.base_url, n=10)
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "harness", "run", str(cfg), "--out", str(out), "--no-cache"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        journal = out / "batches.json"
        while time.monotonic() < deadline:
            if journal.exists() and json.loads(journal.read_text())["batches"][0].get("id") \
                    and any(b["status"] == "in_progress" for b in fake.batches.batches.values()):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 143, output
        assert fake.batches.creates == 1 and not fake.batches.executed
        fake.batches.steps = 1
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "re-attached" in again.stderr
        assert fake.batches.creates == 1  # the same batch, collected: not paid for again
        assert len(fake.batches.executed) == 10 and set(fake.batches.executed.values()) == {1}
    assert len(_records(out)) == 10


def test_batch_mode_on_the_local_model_is_one_clear_error(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    cfg = _project(tmp_path, "http://127.0.0.1:9/v1")
    data = yaml.safe_load(cfg.read_text())
    data["models"]["m"] = {"provider": "local"}
    cfg.write_text(yaml.safe_dump(data))
    assert _run(cfg, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {cfg}: run.mode: batch mode needs the OpenAI Batch API (provider "
                   f"openai); set models.m.mode: online for the local model"]
    assert not (tmp_path / "out").exists()


def test_two_batch_models_share_one_journal(tmp_path: Path) -> None:
    with FakeOpenAI(responder=_answer) as fake:
        cfg = _project(tmp_path, fake.base_url, n=6)
        data = yaml.safe_load(cfg.read_text())
        data["models"]["m2"] = {**data["models"]["m"], "model": "gpt-4o"}
        data["strategies"].append({"name": "other", "type": "zero_shot", "model": "m2"})
        cfg.write_text(yaml.safe_dump(data))
        assert _run(cfg, tmp_path / "out") == 0
        assert fake.batches.creates == 2
    journal = json.loads((tmp_path / "out/batches.json").read_text())
    assert sorted(b["model"] for b in journal["batches"]) == ["m", "m2"]
