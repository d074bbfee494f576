"""Break-even with an unknown training cost: the verdict states the most training may cost instead
of dropping cost from the decision. Numbers are worked out by hand."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from harness.analysis.cost import break_even, max_training_cost
from harness.analysis.curves import CurveStep, PlateauResult
from harness.analysis.rules import ArmEvidence, decide, pays_back
from harness.analysis.stats import Interval
from harness.config import Price
from harness.running.records import RunMeta

PLATEAU = PlateauResult("plateaued", 8, None, (CurveStep(8, 16, Interval(0.0, -0.01, 0.01)),), "test")
SAME = Interval(0.0, -0.012, 0.012)  # 0.687 vs 0.687: as accurate, within the 2-point margin
# Best prompt: 2,000 prompt + 50 completion tokens at $0.15 / $0.60 per 1M = $0.000330 a query;
# fine-tuned: 200 + 50 at $0.30 / $1.20 = $0.000120. Saving $0.000210 a query, $0.21 per 1,000.
SAVING = 0.000330 - 0.000120


def _ev(volume: float | None, saving: float | None = SAVING, be: Any = None,
        delta: Interval = SAME) -> ArmEvidence:
    return ArmEvidence(delta, 1.0, be, volume, saving, 3.0)


def test_max_training_cost_by_hand() -> None:
    assert max_training_cost(0.000210, 5_000, 3.0) == pytest.approx(3.15)  # 0.00021 * 15,000
    assert max_training_cost(0.0015, 20_000, 12.0) == pytest.approx(360.0)
    assert max_training_cost(-0.001, 5_000, 3.0) == 0.0


def test_unknown_training_cost_with_a_volume_states_the_most_it_may_cost() -> None:
    """(Regression: a fine-tune as accurate and cheaper per query got 'keep prompting' /
    'prompting sufficient' only because its training cost was unknown.)"""
    v = decide(PLATEAU, _ev(5_000))
    assert v.recommendation == "fine_tune"
    assert v.sentence.startswith("Fine-tune if training costs less than $3.15: it is as accurate "
                                 "as the best prompt (+0.0 points, CI -1.2..+1.2, within the "
                                 "2-point margin) and saves $0.21 per 1,000 queries: $3.15 over "
                                 "3 months at the stated 5,000/month")
    assert any("training cost not known" in r for r in v.reasons)
    # The case: 16x cheaper ($0.0016 vs $0.0001 a query), 20,000 queries a month.
    big = decide(PLATEAU, _ev(20_000, saving=0.0016 - 0.0001))
    assert big.sentence.startswith("Fine-tune if training costs less than $90.00:")
    # The same rule as with a known cost: $3.00 < $3.15 pays back at 5,000/month, $3.50 does not.
    assert decide(PLATEAU, _ev(5_000, be=break_even(3.0, 0.000330, 0.000120))
                  ).recommendation == "fine_tune"
    assert decide(PLATEAU, _ev(5_000, be=break_even(3.5, 0.000330, 0.000120))
                  ).recommendation == "prompting_sufficient"


def test_unknown_training_cost_without_a_volume_pays_back_eventually() -> None:
    v = decide(PLATEAU, _ev(None))
    assert v.recommendation == "fine_tune"
    assert v.sentence.startswith("Fine-tune: it is as accurate as the best prompt")
    # 1 / 0.00021 = 4,761.9 queries per dollar of training
    assert ("saves $0.21 per 1,000 queries, so it pays back eventually whatever the training "
            "costs, after training cost / $0.00021 queries (4,762 per $1 of training") in v.sentence


def test_unknown_training_cost_that_cannot_pay_back() -> None:
    dearer = decide(PLATEAU, _ev(5_000, saving=-0.0001))
    assert dearer.recommendation == "prompting_sufficient"
    assert "never pays back: the fine-tuned model costs $0.0001 more per query" in dearer.sentence
    assert decide(PLATEAU, _ev(0.0)).recommendation == "prompting_sufficient"  # no queries
    assert decide(PLATEAU, _ev(5_000, saving=None)).recommendation == "prompting_sufficient"
    assert pays_back(_ev(5_000, saving=None))[1] == "no cost comparison was available"
    worse = _ev(5_000, delta=Interval(-0.03, -0.05, -0.01))  # not as accurate
    assert decide(PLATEAU, worse).recommendation == "prompting_sufficient"


# --------------------------------------------------------------------------- through a run


def _verdict(meta: RunMeta) -> tuple[Any, dict[str, Any], Any]:
    """The committed complete run analysed under `meta`: its verdict, the fine-tune evidence
    (as summary.json has it) and the summary."""
    from run_helpers import FIXTURE_RUNS

    from harness.analysis import analyse
    from harness.running.store import read_records

    a = analyse(read_records(FIXTURE_RUNS / "complete"), meta)
    return a.verdict, a.evidence.to_dict(), a.summary


def _meta(price: Price, fine_tuned: Price | None = None, *, training_cost: float | None = None,
          registry: float | None = None, volume: float | None = 10_000) -> RunMeta:
    """The committed complete run with a configured price (and fine-tuned price), a monthly
    volume and, where given, a `training_cost_usd` on the fine-tuned strategy (config) or in
    the registry entry."""
    from run_helpers import FIXTURE_RUNS

    from harness.running.store import read_meta

    meta = read_meta(FIXTURE_RUNS / "complete")
    raw = dict(meta.config_raw)
    if training_cost is not None:
        raw["strategies"] = [
            {**s, "fine_tuned_model": {"name": s["fine_tuned_model"], "training_cost_usd": training_cost}}
            if s["type"] == "fine_tuned" else s for s in raw["strategies"]]
    models = {n: dataclasses.replace(m, price=price, fine_tuned_price=fine_tuned)
              for n, m in meta.models.items()}
    fine_tunes = {"fine-tuned": {"training_cost_usd": registry}} if registry is not None else {}
    return dataclasses.replace(meta, config_raw=raw, models=models, fine_tunes=fine_tunes,
                               decision=dataclasses.replace(meta.decision, monthly_volume=volume))


BASE = Price(1.0, 1.0, 2.0, None)
FT = Price(0.5, 0.5, 1.0)
# Token sums of the committed run (results.jsonl): best prompt few-shot@k=1 pools 2 draws of
# 909 and 896 prompt tokens over 13 examples, fine-tuned 353; every arm 84 completion tokens
# per 13 answers (twelve of 5, one of 24).
PROMPT_COST = ((909 + 896) / 26 * 1.0 + 84 / 13 * 2.0) / 1e6
FT_COST = (353 / 13 * 0.5 + 84 / 13 * 1.0) / 1e6
RUN_SAVING = PROMPT_COST - FT_COST


def test_a_run_without_training_cost_gets_the_condition_on_it() -> None:
    v, ev, _ = _verdict(_meta(BASE, FT))
    cap = RUN_SAVING * 10_000 * 3
    assert ev["training_cost_usd"] is None and ev["break_even"] is None
    assert ev["saving_per_query_usd"] == pytest.approx(RUN_SAVING, rel=1e-9)
    assert ev["max_training_cost_usd"] == pytest.approx(cap, rel=1e-9)
    assert v.recommendation == "fine_tune"
    assert v.sentence.startswith(f"Fine-tune if training costs less than ${cap:,.2f}:")
    assert ev["break_even_text"].endswith(f"so it pays back if training costs less than "
                                          f"${cap:,.2f} (training cost not known)")


def test_configured_training_cost_comes_first_and_decides() -> None:
    # $5 to train: 5 / saving queries, 26,749/month over 3 months > 10,000/month
    v, ev, _ = _verdict(_meta(BASE, FT, training_cost=5.0, registry=0.5))
    assert ev["training_cost_usd"] == 5.0  # the config, not the registry's 0.5
    assert ev["break_even"]["queries"] == pytest.approx(5.0 / RUN_SAVING, rel=1e-9)
    assert v.recommendation == "prompting_sufficient"
    paid, ev0, _ = _verdict(_meta(BASE, FT, training_cost=0.0))  # already paid
    assert ev0["training_cost_usd"] == 0.0 and paid.recommendation == "fine_tune"
    _, ev_reg, _ = _verdict(_meta(BASE, FT, registry=0.5))
    assert ev_reg["training_cost_usd"] == 0.5


def test_a_configured_base_price_leaves_the_fine_tuned_arm_unpriced() -> None:
    """(Regression: the fine-tuned arm was priced at the base model's configured rate.)"""
    v, ev, summary = _verdict(_meta(BASE))
    ft = summary[summary["type"] == "fine_tuned"].iloc[0]
    assert ft["cost_per_1k"] != ft["cost_per_1k"]  # NaN: fake-model has no fine-tuned rate
    assert ev["saving_per_query_usd"] is None and ev["break_even_text"] == "no training cost known"
    assert v.recommendation == "prompting_sufficient"
