"""`confidence: logprob`: an answer's probability from its tokens' log-probabilities, checked
by hand, and end to end through the loopback server."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from fake_openai import ChatReply, FakeOpenAI, last_user_content

from harness.cli import main
from harness.tasks.confidence import answer_confidence, answer_fields


def test_the_label_probability_is_the_product_of_its_tokens():
    output = '{"label": "billing"}'
    pairs = [('{"', -0.1), ("label", 0.0), ('":', -0.01), (' "', -0.02), ("bill", -0.2),
             ("ing", -0.3), ('"}', -0.5)]
    assert answer_confidence(output, pairs, ["label"]) == pytest.approx(math.exp(-0.5))


def test_extraction_confidence_is_the_mean_over_non_null_fields():
    output = '{"people": 4, "date": null, "time": "7 pm"}'
    pairs = [("{", 0.0), ('"people"', 0.0), (": ", 0.0), ("4", -1.0), (", ", 0.0),
             ('"date": null', -3.0), (", ", 0.0), ('"time": "', -0.7), ("7", -0.1), (" pm", -0.2),
             ('"}', -0.4)]
    # people: exp(-1); date is null (not counted); time: the tokens of `7 pm` -> exp(-0.3)
    want = (math.exp(-1.0) + math.exp(-0.3)) / 2
    assert answer_confidence(output, pairs, ["people", "date", "time"]) == pytest.approx(want)


def test_no_confidence_without_logprobs_or_when_tokens_do_not_spell_the_output():
    assert answer_confidence('{"label": "a"}', None, ["label"]) is None
    assert answer_confidence('{"label": "a"}', [("something else", 0.0)], ["label"]) is None
    assert answer_confidence('{"other": "a"}', [('{"other": "a"}', 0.0)], ["label"]) is None


def test_answer_fields_leave_out_the_reasoning_string():
    schema = {"properties": {"reasoning": {}, "label": {}}}
    assert answer_fields(schema) == ("label",)


def test_a_logprob_arm_records_each_answers_probability(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")

    def responder(body):
        label = last_user_content(body).splitlines()[0]
        text = json.dumps({"label": label})
        # the label's own token carries log(0.9) for billing, log(0.4) for the others
        lp = math.log(0.9) if label == "billing" else math.log(0.4)
        head, tail = text.split(label)
        return ChatReply(content=text, logprobs=[(head, -0.05), (label, lp), (tail, -0.5)])

    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=[
            {"name": "zero-shot", "type": "zero_shot", "model": "fake", "confidence": "logprob"},
            {"name": "plain", "type": "zero_shot", "model": "fake"}])
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
        asked = [(b.get("logprobs"), b.get("top_logprobs")) for b in server.requests]
    assert asked.count((True, 0)) == 8 and asked.count((None, None)) == 8
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    mine = results[results["strategy"] == "zero-shot"]
    want = [0.9 if e == "billing" else 0.4 for e in mine["expected"]]
    assert mine["confidence"].tolist() == pytest.approx(want, rel=1e-5)
    assert results[results["strategy"] == "plain"]["confidence"].isna().all()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["calibration"] and summary["calibration"][0]["strategy"] == "zero-shot"
    # re-scoring recomputes it from the stored tokens, without a request
    assert main(["report", str(tmp_path / "run"), "--rescore"]) == 0
    again = pd.read_csv(tmp_path / "run" / "results.csv")
    assert again[again["strategy"] == "zero-shot"]["confidence"].tolist() == pytest.approx(
        want, rel=1e-5)


def test_logprob_with_several_samples_is_one_error_line(make_config, capsys):
    cfg = make_config(strategies=[{"name": "z", "type": "zero_shot", "model": "fake",
                                   "confidence": "logprob", "samples": 3, "temperature": 0.7}])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "confidence: logprob is the probability of one answer" in err and err.count("\n") == 1
