"""report.html: self-contained, escaped, deterministic, with every section the decision needs."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from run_helpers import FIXTURE_RUNS, XSS, fixture_run

from harness.analysis import analyse
from harness.report.html import CSP, render_html
from harness.running.store import read_meta, read_records


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed run with zero-shot, a few-shot sweep (2 draws) and a fine-tuned arm, reports
    built by `harness report`."""
    return fixture_run("complete", tmp_path_factory.mktemp("html"))


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


def _render(run_dir: Path, **meta_changes: Any) -> str:
    meta = dataclasses.replace(read_meta(run_dir), **meta_changes)
    records = read_records(run_dir)
    return render_html(analyse(records, meta), meta)


def test_self_contained_no_script_no_network(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert f'content="{CSP}"' in page and "default-src 'none'" in CSP
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert all(r.startswith(("#", "data:")) for r in refs), refs
    assert "url(http" not in page and "@import" not in page


def test_untrusted_text_is_escaped(page: str) -> None:
    assert "<script>window.__pwned" not in page and "<img src=x" not in page
    assert html.escape(XSS, quote=True) in page  # the input, shown as text
    assert page.count("&lt;script&gt;window.__pwned=1") >= 2  # in failures and in outputs


def test_verdict_with_the_numbers_behind_it(run_dir: Path, page: str) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    sentence = summary["recommendation"]["sentence"]
    top = page.index('id="verdict"')
    assert html.escape(sentence, quote=True) in page[top:top + 3000]
    assert page.index('id="verdict"') < page.index("<h2>Arms</h2>")
    assert summary["recommendation"]["verdict"] == "prompting_sufficient"
    assert sentence.startswith("Prompting is sufficient: accuracy plateaus at k=1; the fine-tuned "
                               "model is no better (+7.7 points")
    numbers = page[page.index('<dl class="numbers">'):page.index("</dl>")]
    pairs = dict(re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", numbers))
    # each figure labelled with its arm's own name and its metric's (issue 24)
    assert pairs == {
        "best prompt (few-shot@k=1)": "accuracy 0.846 [0.615, 1.000]",
        "zero-shot": "accuracy 0.769 [0.497, 0.918]",
        "fine-tuned": "accuracy 0.923 [0.667, 0.986]",
        "fine-tuned \u2212 few-shot@k=1": "accuracy +7.7 points [+0.0, +23.1], Holm p = 1",
        "few-shot curve": "plateaued at k=1",
        "break-even": "no training cost known",
        "decision rule": "alpha 0.05, min gain 0.02, equivalence margin 0.02, monthly volume not given",
    }


def test_arms_table_has_every_column_and_arm(page: str) -> None:
    table = page[page.index('<table id="T_arms"'):]
    table = table[:table.index("</table>")]
    for head in ("accuracy", "95% CI", "macro-F1", "schema ok", "parse fail", "errors",
                 "tokens/query", "USD / 1k queries", "p50 ms", "p95 ms"):
        assert head in table, head
    heads = re.findall(r'<th [^>]*class="col_heading[^"]*" >([^<]*)</th>', table)
    assert heads[:5] == ["arm", "model id", "n", "draws", "answers"]
    assert "coverage" not in heads  # every planned answer is there
    rows = [re.findall(r"<td [^>]*>([^<]*)</td>", row)[:11]
            for row in table[table.index("<tbody>"):].split("</tr>") if "<td" in row]
    # arm, model id, n (examples), draws, answers, accuracy, CI, macro-F1, schema ok, parse fail, errors
    ids = ["fake-model"] * 4 + ["ft:fake-model:acme:router:1"]
    assert [r[:5] for r in rows] == [
        ["zero-shot", ids[0], "13", "1", "13"], ["few-shot@k=1", ids[1], "13", "2", "26"],
        ["few-shot@k=2", ids[2], "13", "2", "26"], ["few-shot@k=4", ids[3], "13", "2", "26"],
        ["fine-tuned", ids[4], "13", "1", "13"]]
    assert [r[5:] for r in rows] == [
        ["0.769", "0.497\u20130.918", "0.777", "92.3%", "0.0%", "0"],
        ["0.846", "0.615\u20131.000", "0.879", "92.3%", "0.0%", "0"],
        ["0.846", "0.615\u20131.000", "0.879", "92.3%", "0.0%", "0"],
        ["0.846", "0.615\u20131.000", "0.879", "92.3%", "0.0%", "0"],
        ["0.923", "0.667\u20130.986", rows[4][7], "92.3%", "0.0%", "0"],
    ]


def test_learning_curve_is_inline_svg_with_reference_lines(page: str) -> None:
    start = page.index('<svg id="learning-curve"')
    svg = page[start:page.index("</svg>", start) + 6]
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag.endswith("svg")
    text = " ".join(t for t in root.itertext())
    for label in ("zero-shot", "fine-tuned", "plateau (k=", "95% CI", "accuracy"):
        assert label in text, label
    assert "<metadata>" not in svg  # no date or creator: rebuilt reports are identical


def test_confusions_failures_prompts_and_metadata(page: str) -> None:
    confusions = page[page.index('id="confusions"'):page.index("<h2>Sample of failures")]
    confusions = confusions.replace("<wbr>", "")  # break opportunities in labels, no text
    zero_shot = confusions[confusions.index("<h3>zero-shot</h3>"):confusions.index("<h3>few-shot@k=1</h3>")]
    cells = re.findall(r"<tr><td class=\"text\">([^<]*)</td><td class=\"text\">([^<]*)</td><td>(\d+)</td>",
                       zero_shot)
    assert cells == [("returns", "shipping", "2"), ("billing", html.escape(XSS, quote=True), "1")]
    failures = page[page.index('id="failures"'):page.index("<h2>Prompts")]
    arms = re.findall(r'<tr><td class="text">([^<]+)</td>', failures)
    assert len(set(arms)) >= 4  # round-robin over arms, not one arm's failures only
    prompts = page[page.index('id="prompts"'):page.index("<h2>Run")]
    assert prompts.count("<details>") == 5 and "<details open" not in prompts
    assert "Route the support message." in prompts
    for key in ("config sha256", "dataset sha256", "eval set", "versions", "counts"):
        assert f">{key}<" in page, key


def test_print_css_opens_collapsed_sections(page: str) -> None:
    css = page[page.index("@media print"):]
    assert "details::details-content" in css and "content-visibility:visible" in css
    assert "break-inside:avoid" in css


def test_rendering_is_deterministic(run_dir: Path, page: str) -> None:
    assert _render(run_dir) == _render(run_dir) == page


def test_incomplete_run_banner(run_dir: Path, page: str) -> None:
    assert 'id="incomplete"' not in page
    out = _render(run_dir, status="interrupted", message="stopped by Ctrl-C")
    banner = out[out.index('id="incomplete"'):]
    assert "Incomplete run" in banner[:400] and "interrupted" in banner[:400]
    assert out.index('id="incomplete"') < out.index('id="verdict"')


def test_zero_shot_only_run_renders_without_a_curve(run_dir: Path) -> None:
    full = read_meta(run_dir)
    meta = dataclasses.replace(full, arms=tuple(a for a in full.arms if a.type == "zero_shot"))
    records = [r for r in read_records(run_dir) if r.type == "zero_shot"]
    a = analyse(records, meta)
    page = render_html(a, meta)
    assert "No few-shot sweep in this run." in page and "<svg" not in page
    assert 'id="incomplete"' not in page and a.complete
    assert a.plateau is None and a.verdict.recommendation == "keep_prompting"
    assert "no fine-tuned arm was evaluated" in a.verdict.reasons


def test_partial_run_renders_with_the_banner(run_dir: Path) -> None:
    meta = dataclasses.replace(read_meta(run_dir), status="failed", message="the endpoint went away")
    records = [r for r in read_records(run_dir) if int(r.example_id) < 12]
    page = render_html(analyse(records, meta), meta)
    assert "Incomplete run" in page and "the endpoint went away" in page
    assert len(records) == 96 and "96 of 104 results recorded" in page
    assert 'id="learning-curve"' in page


def test_partial_run_with_an_unstarted_arm_renders(run_dir: Path) -> None:
    meta = dataclasses.replace(read_meta(run_dir), status="interrupted")
    records = [r for r in read_records(run_dir) if r.type == "zero_shot"]
    page = render_html(analyse(records, meta), meta)
    assert 'id="incomplete"' in page and "\u2013\u2013" not in page
    assert "(status: interrupted): 13 of 104 results recorded" in page


def test_interrupted_fixture_renders_with_the_banner(tmp_path: Path) -> None:
    run = fixture_run("interrupted", tmp_path)
    page = (run / "report.html").read_text(encoding="utf-8")
    banner = page[page.index('id="incomplete"'):]
    assert banner.index("Incomplete run") < 200
    assert "(status: interrupted): 19 of 104 results recorded" in banner[:400]
    assert "stopped by Ctrl-C" in banner[:600]
    assert page.index('id="incomplete"') < page.index('id="verdict"')
    assert (FIXTURE_RUNS / "interrupted" / "run.json").read_bytes() == (run / "run.json").read_bytes()
