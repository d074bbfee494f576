"""`harness distill`: a teacher labels the unlabeled pool, the student is fine-tuned on those
labels (an OpenAI job on the loopback server) and evaluated beside the teacher."""

from __future__ import annotations

import json
import math

import pytest
from conftest import LABELS, write_csv
from fake_openai import ChatReply, FakeOpenAI, last_user_content

from harness.cli import main
from harness.model.registry import Registry

STRATEGIES = [
    {"name": "teacher", "type": "zero_shot", "model": "fake", "confidence": "logprob"},
    {"name": "student", "type": "fine_tuned", "model": "fake", "fine_tuned_model": "router"},
]
SETTINGS = {"finetune": {"epochs": 1, "poll_interval": 0.01}}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEST_API_KEY", "k")


def teacher(body):
    """The first line is the label; the teacher is unsure (0.3) of 'account' messages and
    calls them 'billing'."""
    label = last_user_content(body).splitlines()[0]
    conf = 0.95
    if label == "account":
        label, conf = "billing", 0.3
    text = json.dumps({"label": label})
    head, tail = text.split(label, 1)
    return ChatReply(content=text, logprobs=[(head, 0.0), (label, math.log(conf)), (tail, 0.0)])


def test_distill_labels_filters_trains_registers_and_evaluates(make_config, tmp_path, capsys):
    with FakeOpenAI(responder=teacher, job_outcome="succeeded") as server:
        cfg = make_config(server.base_url, strategies=STRATEGIES, extra=SETTINGS)
        # one unlabeled input is also an eval input: it must not be labelled
        eval_input = "billing\neval message 0 about billing"
        write_csv(tmp_path / "pool.csv", [{"text": eval_input}] + [
            {"text": f"{lab}\npool message {i} about {lab}"} for i in range(5) for lab in LABELS])
        assert main(["distill", str(cfg), "--teacher", "teacher", "--student", "student",
                     "--unlabeled", str(tmp_path / "pool.csv"), "--min-confidence", "0.5",
                     "--out", str(tmp_path / "d"), "--yes"]) == 0
        jobs = server.job_creates
        labelled = [b for b in server.requests if "pool message" in last_user_content(b)]
        uploaded = max(server.files.values(), key=len).decode()
        # again, without --yes: nothing new is labelled or trained, so nothing is asked
        assert main(["distill", str(cfg), "--teacher", "teacher", "--student", "student",
                     "--unlabeled", str(tmp_path / "pool.csv"), "--min-confidence", "0.5",
                     "--out", str(tmp_path / "d")]) == 0
        assert server.job_creates == jobs == 1
    out = capsys.readouterr()
    assert "1 removed as eval inputs (leakage)" in out.err
    assert len(labelled) == 20 and not any(eval_input == last_user_content(b) for b in labelled)
    rows = [json.loads(x) for x in (tmp_path / "d" / "distilled.jsonl").read_text().splitlines()]
    # the 5 'account' inputs were labelled at confidence 0.3: below the floor, left out
    assert len(rows) == 15 and {r["target"] for r in rows} == {"billing", "shipping", "returns"}
    assert all(r["confidence"] == pytest.approx(0.95) and r["teacher_arm"].startswith("teacher")
               and r["prompt_sha256"] for r in rows)
    assert uploaded.count("\n") + 1 >= 13  # the training split of those 15 (validation held out)
    entry = Registry().get("router-distilled")
    assert entry is not None and entry.extra["distilled_from"] == "teacher"
    assert entry.extra["labels"] == 15 and entry.extra["min_confidence"] == 0.5
    summary = json.loads((tmp_path / "d" / "distill.json").read_text())
    assert set(summary["arms"]) == {"teacher", "student-distilled"}
    assert summary["arms"]["teacher"]["teacher_agreement"] == 1.0
    assert 0 <= summary["arms"]["student-distilled"]["teacher_agreement"] <= 1
    assert (tmp_path / "d" / "eval" / "report.html").exists()
    assert "student-distilled" in out.out and "teacher agreement" in out.out


def test_a_confidence_floor_needs_a_teacher_with_confidence(make_config, capsys):
    plain = {k: v for k, v in STRATEGIES[0].items() if k != "confidence"}
    cfg = make_config(strategies=[plain, STRATEGIES[1]], extra=SETTINGS)
    assert main(["distill", str(cfg), "--teacher", "teacher", "--student", "student",
                 "--min-confidence", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --min-confidence: the teacher teacher records no confidence")
    assert main(["distill", str(cfg), "--teacher", "nobody", "--student", "student"]) == 2
    assert "--teacher: no strategy named 'nobody'" in capsys.readouterr().err
