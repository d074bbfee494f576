"""report.html from jinja2 templates (issue 24, item 7): a CSS rule for every verdict, data
escaped on output as html.escape does (only the charts and the arms table go in as Markup), the
environment made once, and the templates shipped beside the package."""

from __future__ import annotations

import dataclasses
import html
import re
from importlib import resources
from pathlib import Path

import pytest
from run_helpers import XSS, fixture_run

from harness.analysis import Analysis, analyse
from harness.kinds import VERDICTS
from harness.report import html as report_html
from harness.report.html import CSS, environment, label_html, page_context, render_html
from harness.running.records import RunMeta
from harness.running.store import read_meta, read_records

TEMPLATES = Path(report_html.__file__).parent / "templates"


def css_rules(css: str) -> dict[str, dict[str, str]]:
    """Selector -> its declarations, for every rule of `css` (comments dropped, @media blocks'
    rules read as plain ones)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    out: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = dict(tuple(x.strip() for x in d.split(":", 1)) for d in body.split(";") if ":" in d)
        for sel in selectors.split(","):
            out.setdefault(sel.strip(), {}).update(decls)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Analysis, RunMeta]:
    out = fixture_run("complete", tmp_path_factory.mktemp("templates"))
    meta = read_meta(out)
    return analyse(read_records(out), meta), meta


def test_every_verdict_has_its_own_css_rule() -> None:
    rules = css_rules(CSS)
    colours = {}
    for verdict in VERDICTS:
        rule = rules.get(f".{verdict}") or rules.get(f".verdict.{verdict}")
        assert rule, f"no CSS rule styles the verdict {verdict!r}"
        assert {"background", "border-color"} <= set(rule), (verdict, rule)
        colours[verdict] = (rule["background"], rule["border-color"])
    assert len(set(colours.values())) == len(VERDICTS), colours  # each verdict its own colours


@pytest.mark.parametrize("verdict", list(VERDICTS))
def test_the_verdict_box_takes_its_verdicts_class(run: tuple[Analysis, RunMeta], verdict: str) -> None:
    a, meta = run
    a = dataclasses.replace(a, verdict=dataclasses.replace(a.verdict, recommendation=verdict))
    page = render_html(a, meta)
    assert f'<section class="verdict {verdict}" id="verdict">' in page
    assert f'<div class="label">{verdict.replace("_", " ")}</div>' in page


def test_the_stylesheet_is_the_templates_file_in_the_page(run: tuple[Analysis, RunMeta]) -> None:
    page = render_html(*run)
    assert (TEMPLATES / "report.css").read_text(encoding="utf-8") == CSS
    style = page[page.index("<style>") + len("<style>"):page.index("</style>")]
    assert style.strip() == CSS.strip()
    assert page.index("<style>") < page.index("</head>")


def test_data_is_escaped_as_html_escape_does(run: tuple[Analysis, RunMeta]) -> None:
    a, meta = run
    name = "run <b>\"quoted\"</b> & 'single'"
    reason = XSS + " & 'x'"
    a = dataclasses.replace(a, verdict=dataclasses.replace(a.verdict, reasons=(reason,)))
    page = render_html(a, dataclasses.replace(meta, name=name))
    escaped = html.escape(name, quote=True)
    assert f"<title>harness report: {escaped}</title>" in page
    assert f"<h1>{escaped}: prompt or fine-tune?</h1>" in page
    assert f"<li>{html.escape(reason, quote=True)}</li>" in page
    assert "&#39;" not in page and "&#34;" not in page  # markupsafe's forms never appear
    assert "<b>" not in page and "<script>" not in page


def test_only_the_charts_and_the_arms_table_go_in_as_markup(run: tuple[Analysis, RunMeta]) -> None:
    def markup(value: object, path: str) -> list[str]:
        if hasattr(value, "__html__"):
            return [path]
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in markup(v, f"{path}.{k}")]
        if isinstance(value, list | tuple):
            return [p for i, v in enumerate(value) for p in markup(v, f"{path}[{i}]")]
        return []

    found = markup(page_context(*run), "page")
    assert sorted(found) == ["page.arms.table", "page.csp", "page.curve"]


def test_label_macro_wraps_after_separators() -> None:
    assert label_html("card_payment/x.y") == "card_<wbr>payment/<wbr>x.<wbr>y"
    assert label_html("<b>_&") == "&lt;b&gt;_<wbr>&amp;"
    assert label_html(None) == ""


def test_the_environment_is_made_once_strict_and_escaping() -> None:
    import jinja2

    env = environment()
    assert environment() is env
    assert env.get_template("report.html.j2") is env.get_template("report.html.j2")
    assert env.undefined is jinja2.StrictUndefined and env.autoescape is True
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("verdict.html.j2").render(incomplete=None)


def test_rendering_is_deterministic(run: tuple[Analysis, RunMeta]) -> None:
    assert render_html(*run) == render_html(*run)


def test_templates_are_package_data() -> None:
    shipped = {p.name for p in resources.files("harness.report").joinpath("templates").iterdir()}
    assert {"report.html.j2", "report.css", "macros.html.j2"} <= shipped
    included = set(re.findall(r'\{%\s*(?:include|import)\s+"([^"]+)"',
                              " ".join(p.read_text(encoding="utf-8") for p in TEMPLATES.iterdir())))
    assert included <= shipped, included - shipped
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"harness\.report"\s*=\s*\[[^\]]*"templates/\*', pyproject)
