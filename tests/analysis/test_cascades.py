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
    # one row per cascade: its operating point, with the held-out figures (issue 24)
    assert rows["strategy"].tolist() == ["route@t=0.8"]
    assert rows["fallback_share"].tolist() == pytest.approx([0.75])
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


def _with(cfg, models=None, decision=None):
    data = yaml.safe_load(cfg.read_text())
    for name, extra in (models or {}).items():
        data["models"][name]["price"].update(extra)
    data["decision"] = {**data.get("decision", {}), **(decision or {})}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def test_cost_by_volume_crossovers_and_payback_match_a_hand_computation(make_config, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        cfg = _with(_config(make_config, server.base_url, [0.5, 0.8]),
                    models={"fake": {"hosting_per_month": 50}},
                    decision={"engineering_hours": 10, "hourly_rate": 100,
                              "monthly_volume": 1_000_000})
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    data = json.loads((tmp_path / "run" / "summary.json").read_text())
    cost = data["cost_by_volume"]
    assert cost["reference"] == "big" and cost["engineering_cost_usd"] == 1000
    arms = {a["name"]: a for a in cost["arms"]}
    # route@t=0.8: $0.00076 a query (0.75 of queries also pay big's $0.001), hosting $50 (small's)
    route = arms["route@t=0.8"]
    assert route["per_query"] == pytest.approx(0.00076)
    assert route["hosting_per_month"] == 50 and route["up_front"] == 1000
    i = cost["volumes"].index(1e6)
    assert route["monthly"][i] == pytest.approx(760 + 50)
    assert arms["big"]["monthly"][i] == pytest.approx(1000)
    cross = {(c["a"], c["b"]): c for c in cost["crossovers"]}
    # route = big where 0.00076 V + 50 = 0.001 V: V = 50 / 0.00024 = 208,333
    assert cross[("big", "route@t=0.8")]["volume"] == pytest.approx(50 / 0.00024)
    assert cross[("big", "route@t=0.8")]["cheaper_above"] == "route@t=0.8"
    # at 1M a month it saves 1000 - 810 = $190 a month: $1,000 pays back in 1000 / 190 months
    # the saving with the accuracy it gives up beside it (issue 24)
    assert ("At 1M queries/month route@t=0.8 saves $190/month over big (held-out accuracy "
            "1.000, +0.0 points against big alone, Holm p = 1); it pays back its $1,000 up "
            "front in 5.3 months.") in cost["sentences"]
    assert "At 10K queries/month route@t=0.8 costs $47.60/month more than big." in cost["sentences"]
    assert cost["at_volume"]["volume"] == 1e6
    assert cost["at_volume"]["sentences"][0] in data["recommendation"]["reasons"]
    html = (tmp_path / "run" / "report.html").read_text()
    assert 'id="cost-by-volume"' in html and "pays back its $1,000 up front" in html


def test_zero_prices_compare_tokens_and_latency_and_never_say_saves_nothing(
        make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        cfg = make_config(server.base_url, n_eval=3, strategies=[
            {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
            {"name": "tuned", "type": "fine_tuned", "model": "fake",
             "fine_tuned_model": {"name": "ft:small-model:x", "training_cost_usd": 0}}])
        data = yaml.safe_load(cfg.read_text())
        data["models"]["fake"]["price"] = {"input": 0, "output": 0,
                                           "fine_tuned": {"input": 0, "output": 0}}
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    cost = summary["cost_by_volume"]
    assert cost["unpriced"] and cost["sentences"][0].startswith("Every price is zero")
    assert "tokens" in cost["sentences"][0] and " s" in cost["sentences"][0]
    text = json.dumps(summary) + (run / "report.html").read_text()
    assert "saves nothing" not in text
    assert "priced at $0 per query" in summary["evidence"]["fine_tune"]["break_even_text"]


def test_the_operating_point_is_scored_on_the_half_that_did_not_choose_it():
    import numpy as np

    from harness.analysis.cascades import Arms, choose, cross_fit, folds

    ids = np.array([f"e{i}" for i in range(40)], dtype=object)
    a, b = folds(ids, 0)
    conf = np.full(40, 0.9)
    conf[a[:10]] = conf[b[:10]] = 0.5
    primary = np.ones(40, dtype=bool)
    primary[a[:10]] = False  # unsure and wrong in half A only
    ones, zeros = np.ones(40), np.zeros(40)
    arms = Arms("p", "f", ids, conf, (primary, np.ones(40, dtype=bool)), (zeros, ones),
                (zeros, ones), (zeros, ones), (np.ones(40, dtype=bool),) * 2)
    ts = (0.0, 0.6, 1.0)
    # half A needs routing (10 of 20 wrong unrouted: McNemar p = 2/1024); half B does not
    assert choose(arms, ts, a, 0.05) == 0.6 and choose(arms, ts, b, 0.05) == 0.0
    chosen, held = cross_fit(arms, ts, 0, 0.05)
    assert chosen == [0.6, 0.0]
    # half B answered at t=0.6 (all right, its 10 unsure routed); half A at t=0.0 (10 wrong)
    assert held["correct"][b].all() and held["routed"][b].sum() == 10
    assert held["correct"][a].sum() == 10 and not held["routed"][a].any()
    assert held["correct"].mean() == 0.75  # on all 40 the rule picks 0.6, at accuracy 1.0
    assert choose(arms, ts, np.arange(40), 0.05) == 0.6


@pytest.mark.parametrize(("decision", "want"), [
    ({"cascade_min_accuracy": 0.7}, 0.5),  # the cheapest at >= 0.7: t=0.5 (0.75, $0.26)
    ({"cascade_max_cost_per_1k": 0.6}, 0.5),  # the most accurate within $0.60: 0.5 and 0.65 tie
    ({"cascade_max_cost_per_1k": 0.8}, 0.8),  # within $0.80: t=0.8 reaches 1.0
    ({"cascade_min_accuracy": 0.9, "cascade_max_cost_per_1k": 0.5}, 0.8),  # none: the default
])
def test_an_accuracy_floor_or_a_cost_cap_chooses_the_point(make_config, tmp_path, monkeypatch,
                                                           decision, want):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        cfg = _with(_config(make_config, server.base_url, [0.5, 0.65, 0.8, 0.95]),
                    decision=decision)
        assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    c = json.loads((tmp_path / "run" / "summary.json").read_text())["cascades"][0]
    assert c["threshold"] == want
    if len(decision) == 1:
        assert ("at least" in c["rule"]) == ("cascade_min_accuracy" in decision)


def test_extraction_cascades_route_field_counts_too():
    import numpy as np

    from harness.analysis import stats
    from harness.analysis.cascades import Arms, outcome

    two = np.ones(2, dtype=bool)
    arms = Arms("p", "f", np.array(["e0", "e1"], dtype=object), np.array([0.9, 0.2]),
                (np.array([True, False]), two), (np.zeros(2), np.ones(2)), (np.zeros(2),) * 2,
                (np.zeros(2),) * 2, (two, two),
                (np.array([[2, 0, 0], [0, 1, 1]], float), np.array([[1, 0, 1], [2, 0, 0]], float)))
    # t=0: both primary -> tp 2, fp 1, fn 1 -> F1 = 4 / 6; t=0.5 routes e1 -> tp 4 -> F1 = 1
    assert stats.micro_f1(outcome(arms, 0.0)["counts"]) == pytest.approx(4 / 6)
    assert stats.micro_f1(outcome(arms, 0.5)["counts"]) == 1.0
