"""The verdict box quotes the right numbers (issue 24): each figure is the named arm's own
summary.csv value on the decision metric, the advice names only what the run lacks, a cascade
is weighed on its held-out figures with the accuracy it gives up, every reason appears once, and
the wording reads. Runs against the loopback server with answers worked out by hand."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest
from run_helpers import box_numbers, check_figures, run_summary, summary_row
from test_extraction_verdict import _gold, _index, _run

from harness.cli import main

# --------------------------------------------------------------------------- extraction run
# 30 examples. zero-shot-constrained (json_schema) is exactly right on i % 10 < 5 (50%) and
# gets the name alone otherwise (breaking the schema on i % 10 == 9); zero-shot
# (unconstrained) is exactly right on i % 10 < 2 (20%) and answers prose on i % 3 == 0;
# few-shot gets the name on every example and the people on i % 10 < 3, but answers prose on
# even examples (compliance 50%).


def _responder(body: dict[str, Any]) -> str:
    i = _index(body)
    gold = _gold(i)
    wrong = {"name": gold["name"], "people": 99}
    few = sum(m["role"] == "user" for m in body["messages"]) > 1
    if few:
        return "prose" if i % 2 == 0 else json.dumps(gold if i % 10 < 3 else wrong)
    if "response_format" in body:  # (people "many" breaks the schema: compliance 90%)
        return json.dumps(gold if i % 10 < 5 else {**wrong, "people": "many"} if i % 10 == 9
                          else wrong)
    if i % 3 == 0:
        return f"The booking is for {gold['name']}"
    return json.dumps(gold if i % 10 < 2 else wrong)


STRATEGIES = [
    {"name": "zero-shot-constrained", "type": "zero_shot", "model": "fake"},
    {"name": "zero-shot", "type": "zero_shot", "model": "fake", "structured_output": "none"},
    {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1, 2],
     "structured_output": "none"},
]


@pytest.fixture(scope="module")
def extraction_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("box"), "box", 30, STRATEGIES, _responder,
                {"metric": "field_f1"})


@pytest.fixture(scope="module")
def floor_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same arms under a 99% compliance floor none of them reaches."""
    return _run(tmp_path_factory.mktemp("floor"), "floor", 30, STRATEGIES, _responder,
                {"metric": "accuracy", "min_schema_compliance": 0.99})


def test_1_each_zero_shot_figure_is_its_own_arms(extraction_run: Path) -> None:
    data, csv = run_summary(extraction_run)
    assert csv.loc["zero-shot-constrained", "field_f1"] != csv.loc["zero-shot", "field_f1"]
    figures = {(f["arm"], f["metric"]): f for f in data["recommendation"]["figures"]}
    for arm in ("zero-shot-constrained", "zero-shot"):
        assert figures[(arm, "field_f1")]["value"] == pytest.approx(csv.loc[arm, "field_f1"])
    box = box_numbers(extraction_run)
    shown = [k for k in box if "zero-shot" in k]
    # labelled with the arm's own name, never a bare "zero-shot" holding another arm's number
    assert "zero-shot (zero-shot-constrained)" in shown or "best prompt (zero-shot-constrained)" \
        in shown
    assert box["zero-shot"].startswith(f"field F1 (micro) {csv.loc['zero-shot', 'field_f1']:.3f}")
    check_figures(extraction_run)


def test_2_the_decision_metric_is_the_one_quoted(extraction_run: Path) -> None:
    data, _ = run_summary(extraction_run)
    best = data["recommendation"]["fine_tune"]["metric"]
    assert best == "field_f1"
    top = next(f for f in data["recommendation"]["figures"] if f["role"] == "best prompt")
    assert top["metric"] == "field_f1"
    assert top["value"] == pytest.approx(summary_row(extraction_run, top["arm"])["field_f1"])
    assert top["value"] != pytest.approx(summary_row(extraction_run, top["arm"])["accuracy"])
    label = f"best prompt ({top['arm']})"
    assert box_numbers(extraction_run)[label].startswith(f"field F1 (micro) {top['value']:.3f}")
    # the arms table's headers are the task's: exact match and micro field F1, no macro-F1
    page = (extraction_run / "report.html").read_text()
    arms = page[page.index('id="arms"'):page.index("</table>", page.index('id="arms"'))]
    assert "field F1 (micro)" in arms and "exact match" in arms and "macro-F1" not in arms


def test_3_the_advice_never_repeats_what_was_tried(floor_run: Path) -> None:
    data, _ = run_summary(floor_run)
    rec = data["recommendation"]
    assert rec["verdict"] == "keep_prompting"
    text = " ".join([rec["sentence"], *rec["reasons"]])
    assert "no arm reaches the 99% schema-compliance floor" in rec["sentence"]
    assert "structured_output: json_schema" not in text  # the run has a json_schema arm
    assert "constrained decoding was tried" in rec["sentence"]
    check_figures(floor_run)
    figures = {(f["arm"], f["metric"]) for f in rec["figures"]}
    assert ("zero-shot-constrained", "schema_compliance") in figures  # under a floor, shown


def test_7_the_wording_reads(tmp_path: Path) -> None:
    import shutil

    from run_helpers import FIXTURE_RUNS

    repo = FIXTURE_RUNS.parents[2]
    for source in (FIXTURE_RUNS / "complete", repo / "reports" / "cascade"):
        run = tmp_path / source.name
        shutil.copytree(source, run)
        assert main(["report", str(run)]) == 0
        page = html.unescape((run / "report.html").read_text())
        summary = (run / "summary.json").read_text()
        for text in (page, summary):
            assert "fine-tuned (fine-tuned)" not in text
            assert "has no money to pay back" not in text
            assert "the fine-tuned arm, fine-tuned," not in text
    # the embedded model's $0 prices: the break-even line says why money is not compared
    assert "break-even" in box_numbers(tmp_path / "cascade")
    assert box_numbers(tmp_path / "cascade")["break-even"].startswith("cannot be weighed in money")
