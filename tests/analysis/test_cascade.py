"""`type: cascade`: routing from recorded arms, checked against a frontier computed by hand on
a loopback server with known answers, confidences and prices."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml
from fake_openai import ChatReply, FakeOpenAI, last_user_content

from harness.cli import main

# the small model's confidence and correctness per label; the big model is always right
SMALL = {"billing": (0.9, True), "shipping": (0.6, True), "returns": (0.3, False),
         "account": (0.7, False)}


def responder(body):
    label = last_user_content(body).splitlines()[0]
    if body["model"] == "small-model":
        conf, right = SMALL[label]
        answer = label if right else ("billing" if label != "billing" else "shipping")
    else:
        conf, answer = 0.99, label
    text = json.dumps({"label": answer})
    head, tail = text.split(answer, 1)
    return ChatReply(content=text, completion_tokens=10,
                     logprobs=[(head, 0.0), (answer, math.log(conf)), (tail, 0.0)])


def _config(make_config, url, thresholds):
    cfg = make_config(url, n_eval=20, strategies=[
        {"name": "small", "type": "zero_shot", "model": "fake", "confidence": "logprob"},
        {"name": "big", "type": "zero_shot", "model": "big"},
        {"name": "route", "type": "cascade", "primary": "small", "fallback": "big",
         "thresholds": thresholds}])
    data = yaml.safe_load(cfg.read_text())
    fake = data["models"]["fake"]
    data["models"] = {
        "fake": {**fake, "model": "small-model", "price": {"input": 0, "output": 1.0}},
        "big": {**fake, "model": "big-model", "price": {"input": 0, "output": 100.0}}}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def test_the_frontier_and_the_chosen_point_match_a_hand_computation(make_config, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        cfg = _config(make_config, server.base_url, [0.5, 0.65, 0.8, 0.95])
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
        sent = server.attempts
        # the cascade sent nothing: 80 examples x 2 arms
        assert sent == 160
        assert main(["report", str(tmp_path / "run")]) == 0
        assert server.attempts == sent
    run = tmp_path / "run"
    frontier = pd.read_csv(run / "cascade.csv")
    # by hand (80 examples, 20 per label; small costs $10/1M per query... : 10 output tokens at
    # $1/M = $0.00001, big: 10 at $100/M = $0.001; per 1k: 0.01 and 1.0):
    # t=0.5 routes returns (conf 0.3): share 0.25, right = billing+shipping+returns = 0.75,
    #   cost 0.01 + 0.25 * 1.0 = 0.26
    # t=0.65 routes shipping+returns: share 0.5, acc 0.75, cost 0.51 (dominated by t=0.5)
    # t=0.8 routes shipping+returns+account: share 0.75, acc 1.0, cost 0.76
    # t=0.95 routes all: share 1, acc 1.0, cost 1.01 (dominated by t=0.8)
    want = {0.5: (0.25, 0.75, 0.26, True), 0.65: (0.5, 0.75, 0.51, False),
            0.8: (0.75, 1.0, 0.76, True), 0.95: (1.0, 1.0, 1.01, False)}
    for _, r in frontier.iterrows():
        share, acc, cost, on = want[r["threshold"]]
        assert (r["fallback_share"], r["accuracy"]) == pytest.approx((share, acc))
        assert r["cost_per_1k"] == pytest.approx(cost, rel=1e-6)
        assert bool(r["on_frontier"]) is on
    # chosen: the cheapest not significantly below big (acc 1.0): t=0.5 and 0.65 lose 20 of
    # 80 (McNemar p = 2 / 2^20), so t=0.8; each half chooses the same, so held out it holds
    assert frontier[frontier["chosen"]]["threshold"].tolist() == [0.8]
    summary = pd.read_csv(run / "summary.csv")
    rows = summary[summary["type"] == "cascade"]
    assert rows["strategy"].tolist() == ["route@t=0.5", "route@t=0.65", "route@t=0.8",
                                         "route@t=0.95"]
    assert rows["fallback_share"].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])
    data = json.loads((run / "summary.json").read_text())
    c = data["cascades"][0]
    assert c["threshold"] == 0.8 and c["fold_thresholds"] == [0.8, 0.8]
    assert c["held_out"]["accuracy"] == 1.0 and c["held_out"]["fallback_share"] == 0.75
    assert c["held_out"]["cost_per_1k"] == pytest.approx(0.76)
    vs = {r["arm_b"]: r for r in c["comparisons"]}
    assert vs["small"]["delta"] == pytest.approx(0.5) and vs["small"]["significant"]
    assert vs["big"]["delta"] == 0 and not vs["big"]["significant"]
    rec = data["recommendation"]
    assert rec["verdict"] == "hybrid"
    assert rec["sentence"].startswith("Route answers of small with confidence below 0.8 to big: "
                                      "75% of traffic, accuracy 1.000 vs 1.000 (big alone)")
    html = (run / "report.html").read_text()
    assert 'id="cascade"' in html and "route@t=0.8" in html


def test_auto_thresholds_are_the_primarys_confidence_deciles(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        cfg = _config(make_config, server.base_url, "auto")
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    frontier = pd.read_csv(tmp_path / "run" / "cascade.csv")
    confidences = [0.9] * 20 + [0.6] * 20 + [0.3] * 20 + [0.7] * 20
    cuts = pd.Series(confidences).quantile([i / 10 for i in range(1, 10)]).round(3)
    assert frontier["threshold"].tolist() == sorted({0.0, 1.0, *cuts.tolist()})


def test_a_cascade_naming_an_unknown_arm_is_one_error_line(make_config, capsys):
    cfg = make_config(strategies=[
        {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
        {"name": "route", "type": "cascade", "primary": "zero-shot", "fallback": "nope"}])
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "strategies[1].fallback: no strategy or arm named 'nope'" in err
    assert err.count("\n") == 1
