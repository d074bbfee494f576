"""Self-consistency: `samples: n` majority votes, checked against hand-computed majorities."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import LABELS
from fake_openai import ChatReply, FakeOpenAI, last_user_content

from harness.cli import main
from harness.running.records import Record
from harness.running.store import read_records
from harness.tasks import ClassificationTask, ExtractionTask, Score, vote, vote_outputs

TASK = ClassificationTask(tuple(LABELS), None)


def _label(x: str | None) -> Score:
    """A sample's score: a label (right when 'billing'), or None for an unusable answer."""
    if x is None:
        return Score(None, False, False, False, "invalid_json", "not JSON")
    return Score(x, x == "billing", True, True, None, None)


@pytest.mark.parametrize(("samples", "winner", "share"), [
    (["returns", "billing", "returns"], "returns", 2 / 3),
    (["billing"] * 5, "billing", 1.0),
    # a tie between billing and shipping: the label listed first (billing) wins
    (["shipping", "billing", "shipping", "billing", "account"], "billing", 2 / 5),
    # a tie between returns and account: returns is listed before account
    (["account", "returns"], "returns", 1 / 2),
    # unusable samples are not votes, but the share is over all samples
    ([None, "account", None, "account", "billing"], "account", 2 / 5),
])
def test_the_vote_is_the_hand_computed_majority(samples, winner, share):
    v = vote(TASK, [_label(x) for x in samples], "billing")
    assert v.score.prediction == winner
    assert v.score.correct is (winner == "billing")
    assert v.share == pytest.approx(share)
    assert v.sample_correct == tuple(x == "billing" for x in samples)
    assert v.score.parse_ok and v.score.schema_valid


def test_no_usable_sample_keeps_the_first_failure():
    v = vote(TASK, [_label(None), _label(None)], "billing")
    assert v.share == 0 and v.score.prediction is None and v.score.error_kind == "invalid_json"


def test_extraction_votes_field_by_field_with_ties_to_the_first_seen():
    task = ExtractionTask({"type": "object", "properties": {
        "people": {"type": ["string", "null"]}, "date": {"type": ["string", "null"]}}}, {})
    outs = ['{"people": "2", "date": "friday"}', '{"people": "4", "date": null}',
            '{"people": "2", "date": null}', "not json", '{"people": "4", "date": "friday"}']
    score, share, correct, text = vote_outputs(
        task, [(o, "stop", None) for o in outs], {"people": "2", "date": "friday"})
    # people: "2" x2, "4" x2 -> tie, "2" seen first; date: "friday" x2, null x2 -> "friday" first
    assert score.prediction == {"people": "2", "date": "friday"}
    assert score.correct and share == pytest.approx(1 / 5)  # only the first sample equals it
    assert correct == (True, False, False, False, False)
    assert json.loads(text) == {"people": "2", "date": "friday"}


def _config(tmp_path: Path, base_url: str, strategies: list[dict], n_eval: int = 2) -> Path:
    import yaml
    from conftest import synthetic_rows, write_csv
    write_csv(tmp_path / "eval.csv", synthetic_rows(n_eval, "eval"))
    write_csv(tmp_path / "train.csv", synthetic_rows(3, "train"))
    cfg = {"name": "vote", "task": {"type": "classification", "instructions": "Route it.",
                                    "labels": LABELS},
           "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text",
                       "target": "category"},
           "models": {"fake": {"provider": "openai", "model": "fake-model", "base_url": base_url,
                               "api_key_env": "TEST_API_KEY", "price": {"input": 1, "output": 2}}},
           "strategies": strategies, "run": {"concurrency": 4, "timeout": 5}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Cycle:
    """For each input: the right label, a wrong one, the right one, ... (2 of 3 right)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.temperatures: list[float] = []

    def __call__(self, body: dict) -> ChatReply:
        text = last_user_content(body)
        right = text.splitlines()[0]
        with self.lock:
            i = self.seen[text]
            self.seen[text] += 1
            self.temperatures.append(body.get("temperature"))
        wrong = next(lab for lab in LABELS if lab != right)
        label = wrong if i % 3 == 1 else right
        return ChatReply(content=json.dumps({"label": label}), completion_tokens=5)


def test_a_vote_of_three_samples_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    responder = Cycle()
    with FakeOpenAI(responder=responder) as server:
        cfg = _config(tmp_path, server.base_url, [
            {"name": "single", "type": "zero_shot", "model": "fake"},
            {"name": "vote", "type": "zero_shot", "model": "fake", "samples": 3,
             "temperature": 0.7},
        ])
        assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
        # 8 inputs: 8 single requests + 3 samples each, every sample its own request
        assert server.attempts == 8 + 24
        assert sorted(Counter(responder.temperatures).items()) == [(0.0, 8), (0.7, 24)]
        # again in a new folder: every sample comes from the cache
        assert main(["run", str(cfg), "--out", str(tmp_path / "again")]) == 0
        assert server.attempts == 32
    summary = pd.read_csv(tmp_path / "run" / "summary.csv").set_index("strategy")
    v = summary.loc["vote"]
    assert v["accuracy"] == 1.0 and v["samples"] == 3
    assert v["single_sample_accuracy"] == pytest.approx(2 / 3)
    assert v["vote_gain"] == pytest.approx(1 / 3) and v["mean_vote_share"] == pytest.approx(2 / 3)
    assert summary.loc["single", "samples"] == 1 and pd.isna(summary.loc["single", "vote_gain"])
    # cost counts every sample: 3 x the tokens of one answer to the same prompt
    single = summary.loc["single"]
    assert v["mean_prompt_tokens"] == 3 * single["mean_prompt_tokens"] > 0
    assert v["mean_completion_tokens"] == 15 and v["cost_per_1k"] == pytest.approx(
        3 * single["cost_per_1k"])
    records = [r for r in read_records(tmp_path / "run") if r.strategy == "vote"]
    assert len(records) == 8 and all(len(r.calls) == 3 for r in records)
    assert all(r.vote_share == pytest.approx(2 / 3) and sorted(r.sample_correct or ())
               == [False, True, True] for r in records)
    # re-scoring from the stored samples gives the same vote (no model call)
    assert [r.rescored(TASK) for r in records] == records
    # the vote share is each answer's confidence: one bin, 2/3 confident and always right
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    conf = results[results["strategy"] == "vote"]["confidence"]
    assert conf.tolist() == pytest.approx([2 / 3] * 8)
    assert results[results["strategy"] == "single"]["confidence"].isna().all()
    cal = pd.read_csv(tmp_path / "run" / "calibration.csv")
    assert cal[["bin_low", "bin_high", "n"]].values.tolist() == [[0.6, 0.8, 8]]
    assert cal.loc[0, "accuracy"] == 1.0
    data = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert data["calibration"][0]["ece"] == pytest.approx(1 - 2 / 3)
    assert 'id="calibration"' in (tmp_path / "run" / "report.html").read_text()
    line = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[-1])
    assert Record.from_dict(line).vote_share is not None


def test_an_endpoint_failure_on_one_sample_fails_the_example_and_resume_pays_once(
        tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    calls: Counter[str] = Counter()
    lock = threading.Lock()
    broken = {"on": True}

    def responder(body: dict) -> ChatReply | str:
        text = last_user_content(body)
        with lock:
            calls[text] += 1
            n = calls[text]
        if broken["on"] and text.startswith("billing") and n == 2:
            return ChatReply(status=400, content=None)
        return json.dumps({"label": text.splitlines()[0]})

    with FakeOpenAI(responder=responder) as server:
        cfg = _config(tmp_path, server.base_url, [
            {"name": "vote", "type": "zero_shot", "model": "fake", "samples": 3,
             "temperature": 0.5}], n_eval=1)
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out)]) == 1  # 1 of 4 failed: incomplete
        rec = next(r for r in read_records(out) if r.input.startswith("billing"))
        assert rec.endpoint_failed and rec.vote_share is None
        broken["on"] = False
        before = server.attempts
        assert main(["run", str(cfg), "--out", str(out), "--resume"]) == 0
        assert server.attempts == before + 1  # only the failed sample is asked again
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "accuracy"] == 1.0 and summary.loc[0, "endpoint_failures"] == 0


def test_samples_at_temperature_zero_are_refused(tmp_path, capsys):
    cfg = _config(tmp_path, "http://127.0.0.1:9/v1", [
        {"name": "vote", "type": "zero_shot", "model": "fake", "samples": 5}])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "strategies[0].samples" in err and "temperature" in err and err.count("\n") == 1


def test_agreement_confidence_needs_samples_and_logprob_only_one(tmp_path, capsys):
    cfg = _config(tmp_path, "http://127.0.0.1:9/v1", [
        {"name": "a", "type": "zero_shot", "model": "fake", "confidence": "agreement"},
        {"name": "b", "type": "zero_shot", "model": "fake", "confidence": "logprob",
         "samples": 3, "temperature": 0.7}])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "strategies[0].confidence: agreement" in err and "strategies[1].confidence: logprob" in err


def test_calibration_bins_and_ece_by_hand():
    from harness.analysis.calibration import calibration_frame, expected_calibration_error
    df = pd.DataFrame({"strategy": ["v"] * 6, "k": [0] * 6,
                       "confidence": [0.2, 0.2, 0.6, 0.6, 1.0, 1.0],
                       "correct": [False, False, True, False, True, True],
                       "endpoint_failed": [False] * 6})
    t = calibration_frame(df)
    got = t[["bin_low", "n", "mean_confidence", "accuracy"]].to_numpy(dtype=float).ravel()
    assert got.tolist() == pytest.approx([0.2, 2, 0.2, 0.0, 0.6, 2, 0.6, 0.5, 0.8, 2, 1.0, 1.0])
    # ECE = 2/6 * 0.2 + 2/6 * 0.1 + 2/6 * 0 = 0.1
    assert expected_calibration_error(t)[("v", 0)] == pytest.approx(0.1)
