"""report.html, read as a person would: labels that wrap between words, a failure sample of
distinct inputs, a page-wide chart whose legend covers nothing, model ids, counts and costs that
say what they are."""

from __future__ import annotations

import dataclasses
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from run_helpers import FT_MODEL, fixture_run

from harness.analysis import Analysis, analyse
from harness.report.chart import curve_svg
from harness.report.failures import failure_sample
from harness.report.html import CSS, arm_counts, arms_table, label_html, price_notes, render_html
from harness.running.store import read_meta, read_records

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    """The committed complete run: zero-shot, few-shot k=1,2,4 (2 draws), fine-tuned; no prices."""
    run = fixture_run("complete", tmp_path_factory.mktemp("layout"))
    return analyse(read_records(run), read_meta(run))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    run = fixture_run("complete", tmp_path_factory.mktemp("layout-page"))
    return (run / "report.html").read_text(encoding="utf-8")


# --- confusion tables: labels wrap between words ---------------------------------------------


def css_rule(selector: str) -> dict[str, str]:
    """The declarations of the CSS rule whose selector list contains `selector`."""
    for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", CSS):
        if selector in [s.strip() for s in sel.split(",")]:
            return dict(tuple(x.strip() for x in d.split(":", 1)) for d in body.split(";") if d.strip())
    raise AssertionError(f"no CSS rule for {selector}")


def test_confusion_tables_never_break_a_label_inside_a_word(page: str) -> None:
    confusions = page[page.index('id="confusions"'):page.index("<h2>Sample of failures")]
    tables = re.findall(r"<table[^>]*>", confusions)
    assert tables and all(t == '<table class="labels">' for t in tables)  # auto layout, not fixed
    assert confusions.count('<div class="scroll"><table class="labels">') == len(tables)
    rule = css_rule("table.labels td")
    assert rule == {"word-break": "normal", "overflow-wrap": "normal", "hyphens": "none"}
    assert "anywhere" not in str(css_rule(".grid>div")) and css_rule(".grid>div") == {"min-width": "0"}


@pytest.mark.parametrize("label", ["card_payment_wrong_exchange_rate", "a__b", "v1.2/x", "plain",
                                   "lost or stolen card", "<b>_&"])
def test_labels_may_wrap_only_after_separators(label: str) -> None:
    out = label_html(label)
    parts = out.split("<wbr>")
    assert "".join(parts) == label_html_plain(label)  # the same escaped text
    assert all(p[-1] in "_/." for p in parts[:-1])  # a break only right after a separator
    assert not out.endswith("<wbr>")


def label_html_plain(label: str) -> str:
    return label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the failure sample: distinct inputs first ------------------------------------------------


def failures_frame(fails: dict[str, list[str]], arms: list[str]) -> pd.DataFrame:
    """Results of `arms` on examples x, e0..e9: wrong where `fails[arm]` lists the example."""
    rows = [{"strategy": arm, "k": 0, "example_id": ex, "correct": ex not in fails.get(arm, [])}
            for arm in arms for ex in ["x", *(f"e{i}" for i in range(10))]]
    return pd.DataFrame(rows)


def test_one_input_failed_by_seven_arms_is_shown_once_until_every_failure_is_shown() -> None:
    arms = [f"arm{i}" for i in range(7)]
    fails = {arm: ["x"] for arm in arms}
    fails["arm3"] = ["x", "e1", "e2"]
    fails["arm5"] = ["x", "e7"]
    sample = failure_sample(failures_frame(fails, arms), limit=20)
    ids = list(sample["example_id"])
    assert ids[:4] == ["x", "e1", "e7", "e2"]  # arms take turns; each failed example once
    assert len(ids) == 10  # then the other pairs fill the room: every failed pair here
    every_pair = sorted((a, e) for a, es in fails.items() for e in es)
    assert sorted(zip(sample["strategy"], ids, strict=True)) == every_pair
    capped = failure_sample(failures_frame(fails, arms), limit=3)
    assert list(capped["example_id"]) == ["x", "e1", "e7"]  # the cap holds, inputs distinct


def test_failure_sample_is_one_row_per_arm_and_example_and_takes_turns() -> None:
    df = failures_frame({"a": ["x", "e1"], "b": ["x", "e2"]}, ["a", "b"])
    df = pd.concat([df, df.assign(correct=False)])  # a second draw, failing everything
    sample = failure_sample(df, limit=50)
    assert not sample.duplicated(["strategy", "k", "example_id"]).any()
    assert list(sample["strategy"])[:4] == ["a", "b", "a", "b"]
    assert sample["example_id"].nunique() == 11
    # a fails x, e1 first, b fails x, e2: a shows x, b e2 (x is shown), a e1, then the rest
    assert list(sample["example_id"])[:11] == ["x", "e2", "e1", "e0", "e3", "e4", "e5", "e6", "e7",
                                               "e8", "e9"]


def test_the_report_shows_every_failed_example_before_repeating_one(page: str) -> None:
    failures = page[page.index('id="failures"'):page.index("<h2>Prompts")]
    ids = re.findall(r'<tr><td class="text">[^<]+</td><td class="text">([^<]+)</td>', failures)
    assert sorted(ids[:3]) == ["10", "12", "2"]  # the run's three failed examples, once each
    assert len(ids) == 10  # then the other arms' failures on them (10 failed pairs in all)
    assert "showing 3 of the 3 failed examples" in page


# --- the learning curve: page wide, legend outside the plot ------------------------------------


def ys(element: ET.Element) -> list[float]:
    """Every y coordinate drawn in `element` (paths, texts, markers), skipping <defs>."""
    out: list[float] = []

    def walk(e: ET.Element) -> None:
        if e.tag == SVG + "defs":
            return
        if e.tag == SVG + "path" and e.get("d"):
            nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", str(e.get("d")))]
            out.extend(nums[1::2])
        if e.tag in (SVG + "text", SVG + "use") and e.get("y"):
            out.append(float(str(e.get("y"))))
        for child in e:
            walk(child)

    walk(element)
    return out


def chart_boxes(svg: str) -> tuple[tuple[float, float], tuple[float, float], float]:
    """(plot area y-range, legend y-range, figure height) in SVG units."""
    root = ET.fromstring(svg)
    plot = root.find(f".//{SVG}g[@id='plot-area']")
    legend = root.find(f".//{SVG}g[@id='legend']")
    assert plot is not None and legend is not None
    py, ly = ys(plot), ys(legend)
    font = 9 * 1.25  # legend text at 9 pt: its glyphs reach this far above the baseline
    height = float(str(root.get("viewBox")).split()[3])
    return (min(py), max(py)), (min(ly) - font, max(ly)), height


@pytest.mark.parametrize("accuracy", [None, 0.02, 0.5, 0.98])
def test_legend_sits_below_the_plot_at_any_accuracy(analysis: Analysis, accuracy: float | None) -> None:
    a = analysis
    if accuracy is not None:
        c = a.curve.copy()
        c["accuracy"] = accuracy
        c["ci_low"], c["ci_high"] = max(0.0, accuracy - 0.02), min(1.0, accuracy + 0.02)
        a = dataclasses.replace(a, curve=c)
    (p_top, p_bottom), (l_top, l_bottom), height = chart_boxes(curve_svg(a))
    assert p_bottom < l_top < l_bottom <= height  # below the plot area, inside the figure
    assert p_bottom - p_top > 0.6 * height  # the plot keeps most of the height


def test_chart_is_as_wide_as_the_page(analysis: Analysis) -> None:
    svg = curve_svg(analysis)
    head = svg[:svg.index(">")]
    attrs = dict(re.findall(r'\s([\w:]+)="([^"]*)"', head))
    assert attrs["width"] == "100%" and "height" not in attrs  # no fixed size in pt
    assert re.fullmatch(r"0 0 [\d.]+ [\d.]+", attrs["viewBox"])  # the aspect ratio, kept
    assert css_rule("svg#learning-curve") == {"display": "block", "width": "100%", "height": "auto"}


# --- the arms table: model ids, counts, coverage, costs ----------------------------------------


def test_arm_counts_read_old_and_new_summaries() -> None:
    assert arm_counts({"n": 26, "draws": 2}) == (13, 2, 26)  # n was answers
    assert arm_counts({"n": 25, "draws": 2}) == (13, 2, 25)  # a partial run, old style
    assert arm_counts({"n": 13, "draws": 2, "answers": 25}) == (13, 2, 25)  # n is examples
    assert arm_counts({"n": 13, "draws": 1, "answers": math.nan}) == (13, 1, 13)
    assert arm_counts({"n": 0, "draws": 1, "answers": 0}) == (0, 1, 0)


def table_rows(table: str) -> list[list[str]]:
    heads = re.findall(r'<th [^>]*class="col_heading[^"]*" >([^<]*)</th>', table)
    body = table[table.index("<tbody>"):]
    rows = [re.findall(r"<td [^>]*>([^<]*)</td>", r) for r in body.split("</tr>") if "<td" in r]
    return [heads, *rows]


def test_coverage_is_shown_when_answers_are_missing(analysis: Analysis) -> None:
    s = analysis.summary.copy()
    s["coverage"] = [1.0, 0.5, 1.0, 1.0, 1.0]
    s.loc[1, "answers"] = 13
    heads, *rows = table_rows(arms_table(dataclasses.replace(analysis, summary=s)))
    at = heads.index("coverage")
    assert heads[:6] == ["arm", "model id", "n", "draws", "answers", "coverage"]
    assert [r[at] for r in rows] == ["100.0%", "50.0%", "100.0%", "100.0%", "100.0%"]
    assert rows[1][2:5] == ["13", "2", "13"]
    old = analysis.summary.drop(columns=[c for c in ("coverage", "answers") if c in s.columns])
    old["n"] = old["n"] * old["draws"]  # the summary before n counted examples
    heads, *rows = table_rows(arms_table(dataclasses.replace(analysis, summary=old)))
    assert "coverage" not in heads and [r[2:5] for r in rows][1] == ["13", "2", "26"]


def test_unknown_cost_says_which_price_to_add(analysis: Analysis, page: str) -> None:
    heads, *rows = table_rows(arms_table(analysis))
    cost = heads.index("USD / 1k queries")
    assert [r[cost] for r in rows] == ["unknown*"] * 5  # the fixture's model has no price
    note = page[page.index('id="price-notes"'):]
    note = note[:note.index("</p>")]
    assert "no price is known for fake-model: add <code>price:</code> to <code>models.fake</code>" in note
    assert (f"no price is known for {FT_MODEL}: add <code>price.fine_tuned:</code> to "
            "<code>models.fake</code>") in note
    priced = analysis.summary.assign(cost_per_1k=0.0123)
    heads, *rows = table_rows(arms_table(dataclasses.replace(analysis, summary=priced)))
    assert [r[cost] for r in rows] == ["0.0123"] * 5 and price_notes(priced) == ""
    unmeasured = analysis.summary.assign(mean_prompt_tokens=math.nan)  # no tokens: not a price gap
    assert price_notes(unmeasured) == ""


def test_model_ids_are_in_the_page(analysis: Analysis, tmp_path: Path) -> None:
    meta = read_meta(fixture_run("complete", tmp_path))
    page = render_html(analysis, meta)
    table = page[page.index('<table id="T_arms"'):page.index("</table>")]
    assert table.count(">fake-model<") == 4 and table.count(f">{FT_MODEL}<") == 1
