"""A cascade in the verdict (issue 24): weighed on its held-out figures, with the accuracy it
gives up beside any saving, no saving advertised when it is significantly worse than its better
arm, and each reason once. The loopback server's answers are test_cascade's."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import FakeOpenAI
from run_helpers import box_numbers, check_figures, run_summary
from test_cascades import _config, responder

from harness.cli import main

# small (zero-shot, confidence by logprob) is right on billing and shipping (50%); big is always
# right and costs 100 times as much. decision.cascade_max_cost_per_1k: 0.3 forces t=0.5,
# which routes only returns (25%): held out 75%, significantly below big alone, yet cheaper.


def _cascade_run(make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 decision: dict[str, Any]) -> Path:
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        cfg = _config(make_config, server.base_url, [0.5, 0.8])
        data = yaml.safe_load(cfg.read_text())
        data["decision"] = decision
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out), "--no-cache"]) == 0
    return out


def test_4_a_cascade_worse_than_its_better_arm_advertises_no_saving(
        make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _cascade_run(make_config, tmp_path, monkeypatch,
                       {"cascade_max_cost_per_1k": 0.3, "monthly_volume": 1_000_000})
    data, csv = run_summary(out)
    c = data["cascades"][0]
    assert c["threshold"] == 0.5
    vs = {r["arm_b"]: r for r in c["comparisons"]}
    assert vs["big"]["significant"] and vs["big"]["delta"] < 0
    rec = data["recommendation"]
    everything = [*rec["reasons"], *data["cost_by_volume"]["sentences"]]
    assert not any("route@t=0.5 saves" in s for s in everything)
    routing = [r for r in rec["reasons"] if r.startswith("Routing is not recommended")]
    assert len(routing) == 1 and "route@t=0.5" in routing[0] and "big alone" in routing[0]
    # the arms table and summary.csv show the held-out operating point, not the in-sample one
    assert list(csv[csv["type"] == "cascade"].index) == ["route@t=0.5"]
    assert csv.loc["route@t=0.5", "accuracy"] == pytest.approx(c["held_out"]["accuracy"])
    figure = next(f for f in rec["figures"] if f["arm"] == "route@t=0.5")
    assert figure["value"] == pytest.approx(c["held_out"]["accuracy"])
    # 1: the figure of `small` is small's own, labelled with its name
    small = next(f for f in rec["figures"] if f["arm"] == "small")
    assert small["value"] == pytest.approx(csv.loc["small", "accuracy"])
    assert "zero-shot" not in box_numbers(out) and "zero-shot (small)" in box_numbers(out)
    check_figures(out)


def test_4_a_cascade_saving_states_its_accuracy_cost(
        make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _cascade_run(make_config, tmp_path, monkeypatch, {"monthly_volume": 1_000_000})
    data, _ = run_summary(out)
    saves = [s for s in data["cost_by_volume"]["sentences"] if "saves" in s]
    assert saves and all("held-out accuracy" in s and "against big alone" in s for s in saves)
    check_figures(out)


def test_5_every_reason_appears_once(make_config: Any, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # 1M a month is also one of the volumes the cost sentences are written at
    out = _cascade_run(make_config, tmp_path, monkeypatch, {"monthly_volume": 1_000_000})
    data, _ = run_summary(out)
    reasons = data["recommendation"]["reasons"]
    assert len(reasons) == len(set(reasons))
    sentences = data["cost_by_volume"]["sentences"]
    assert len(sentences) == len(set(sentences))
    at = data["cost_by_volume"]["at_volume"]["sentences"]
    assert len(at) == len(set(at)) and sum(r in reasons for r in at) == len(at)
    page = html.unescape((out / "report.html").read_text())
    box = page[page.index('id="verdict"'):page.index("</section>")]
    for r in reasons:
        assert box.count(r) == 1, r


