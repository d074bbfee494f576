"""Issue 28: the docs site. Every generated page and block is current (no figure in the docs or
the README is typed by hand), every run folder the docs name exists, every config key is
described, and the site builds under `mkdocs build --strict`.

The machinery (scripts/gen_docs.py and its package scripts/docgen/) is also tested on its own,
on a temporary copy of the site with stub pages, so that its tests do not depend on the
hand-written pages.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load_gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_docs", module)
    spec.loader.exec_module(module)
    return module


gen_docs = _load_gen_docs()  # the entry point; it puts scripts/ on sys.path for its package:
blocks = importlib.import_module("docgen.blocks")
changelog = importlib.import_module("docgen.changelog")
config_reference = importlib.import_module("docgen.config_reference")
generated = importlib.import_module("docgen.generated")
links = importlib.import_module("docgen.links")
markdown = importlib.import_module("docgen.markdown")
measurements = importlib.import_module("docgen.measurements")
runs = importlib.import_module("docgen.runs")
HAVE_MKDOCS = (importlib.util.find_spec("mkdocs") is not None
               and importlib.util.find_spec("material") is not None)
NO_MKDOCS = "mkdocs and mkdocs-material are not installed (pip install -e '.[docs]')"


def _nav_pages(nav: list[Any]) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        values = [entry] if isinstance(entry, str) else list(entry.values())
        for value in values:
            pages += [value] if isinstance(value, str) else _nav_pages(value)
    return pages


def _mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(site)], cwd=root, capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the repository's site machinery with a stub for every hand-written page:
    mkdocs.yml, docs/ci-example.yml, a placeholder CHANGELOG.md and README.md, and the
    committed run folders and benchmark records (linked, read only)."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copy(ROOT / "docs" / "ci-example.yml", root / "docs" / "ci-example.yml")
    (root / "reports").symlink_to(ROOT / "reports", target_is_directory=True)
    (root / "benchmarks").symlink_to(ROOT / "benchmarks", target_is_directory=True)
    (root / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n\n- The docs site; see "
                                       "[the quickstart](docs/tutorials/quickstart.md) and "
                                       "[the example run](reports/example/report.html).\n")
    (root / "README.md").write_text("# harness\n\n<!-- generated: measurements -->\n"
                                    "<!-- end generated -->\n")
    nav = yaml.safe_load((root / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    for name in _nav_pages(nav):
        if f"docs/{name}" not in generated.WHOLE_PAGES:
            page = root / "docs" / name
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(f"# {name}\n\nA stub; see [the config reference]"
                            f"({'../' * name.count('/')}reference/config.md#run).\n")
    return root


# --------------------------------------------------------------------------- the real site
# (these depend on the hand-written pages and CHANGELOG.md)


def test_generated_docs_are_current() -> None:
    stale = generated.stale(ROOT)
    assert stale == [], ("generated docs are stale; run python scripts/gen_docs.py: "
                         + ", ".join(stale))


def test_every_run_folder_the_docs_name_exists() -> None:
    missing = links.missing_report_paths(ROOT)
    assert missing == [], "the docs name run folders or files that are not in the repository:\n" \
        + "\n".join(missing)


@pytest.mark.skipif(not HAVE_MKDOCS, reason=NO_MKDOCS)
def test_site_builds_strict(tmp_path: Path) -> None:
    done = _mkdocs_build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stderr + done.stdout


# --------------------------------------------------------------------------- the config schema


def test_every_schema_property_has_a_description() -> None:
    from harness.config.schema import SCHEMA

    assert config_reference.undescribed(SCHEMA) == []


def test_a_property_without_a_description_is_found() -> None:
    schema = {"properties": {
        "run": {"description": "r", "type": "object", "properties": {
            "seed": {"type": "integer"},
            "sequential": {"description": "s", "properties": {"look_every": {"type": "integer"}}}}},
        "models": {"description": "m", "additionalProperties": {"properties": {
            "price": {"description": "p", "oneOf": [{"type": "string"}, {
                "type": "object", "properties": {"input": {"type": "number"}}}]}}}},
        "strategies": {"description": "st", "items": {"properties": {"name": {"type": "string"}}}},
    }}
    assert config_reference.undescribed(schema) == ["run.seed", "run.sequential.look_every", "models.NAME",
                                            "models.NAME.price.input", "strategies[].name"]


def test_the_config_reference_has_every_key_with_its_default() -> None:
    from harness.config.schema import SCHEMA
    from harness.config.types import SequentialConfig

    text = config_reference.config_page()
    for prop in config_reference.properties(SCHEMA):  # a row, or a section's lead (`task` (mapping, ...)
        assert f"| `{prop.path}` |" in text or f"\n`{prop.path}` (" in text, prop.path
    row = next(line for line in text.splitlines() if line.startswith("| `run.sequential.look_every`"))
    assert f"| `{SequentialConfig().look_every}` |" in row
    assert "one of `online`, `batch`" in text  # an enum's allowed values


# --------------------------------------------------------------------------- the machinery


def test_generator_writes_then_check_passes(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gen_docs.main(["--root", str(site)]) == 0
    for rel in generated.WHOLE_PAGES:
        assert (site / rel).read_text(encoding="utf-8").startswith(markdown.HEADER + "\n")
    assert gen_docs.main(["--check", "--root", str(site)]) == 0
    capsys.readouterr()
    page = site / generated.CLI_PAGE
    page.write_text(page.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    readme = site / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace("| `overhead` |", "| `x` |"),
                      encoding="utf-8")
    assert gen_docs.main(["--check", "--root", str(site)]) == 1
    out = capsys.readouterr().out
    assert "README.md" in out and generated.CLI_PAGE in out
    assert generated.stale(site) == ["README.md", generated.CLI_PAGE]


def test_output_is_deterministic(site: Path) -> None:
    first = generated.expected(site)
    assert generated.expected(site) == first
    assert "0x" not in first[generated.API_PAGE]  # no memory address of a default


@pytest.mark.skipif(not HAVE_MKDOCS, reason=NO_MKDOCS)
def test_generated_pages_build_strict(site: Path, tmp_path: Path) -> None:
    (site / "docs" / "examples.md").write_text(
        "# Example runs\n\n<!-- generated: arms reports/example -->\n<!-- end generated -->\n\n"
        "<!-- generated: side-by-side reports/banking77-fixed reports/banking77-sequential -->\n"
        "<!-- end generated -->\n")
    assert generated.write(site)[1] == []
    done = _mkdocs_build(site, tmp_path / "site")
    assert done.returncode == 0, done.stderr + done.stdout
    html = (tmp_path / "site" / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    assert "run.sequential.look_every" in html


def _summary_row(folder: str, strategy: str) -> dict[str, str]:
    with (ROOT / folder / "summary.csv").open(encoding="utf-8", newline="") as f:
        return next(r for r in csv.DictReader(f) if r["strategy"] == strategy)


def test_arms_block_over_the_example_run(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n<!-- generated: arms reports/example -->\nstale text\n"
                    "<!-- end generated -->\n\nAfter.\n")
    filled = blocks.fill_blocks(page.read_text(), "page.md", ROOT)
    row = _summary_row("reports/example", "zero-shot")
    acc = (f"{float(row['accuracy']):.3f} [{float(row['ci_low']):.3f}, "
           f"{float(row['ci_high']):.3f}]")
    assert f"| zero-shot | {row['n']} | {acc} |" in filled
    assert "| arm | n | accuracy [95% CI] | macro-F1 | schema compliance |" in filled
    assert "few-shot@k=4" in filled and "stale text" not in filled
    summary = json.loads((ROOT / "reports" / "example" / "summary.json").read_text())
    assert summary["recommendation"]["sentence"] in filled
    meta = json.loads((ROOT / "reports" / "example" / "run.json").read_text())
    commit = meta["versions"].get("harness_commit")
    made = f"commit {commit[:7]}" if commit else "commit not recorded"
    assert f"made by harness {meta['harness_version']} ({made})" in filled
    assert f"format version {meta.get('format_version', 1)}." in filled
    assert filled.endswith("<!-- end generated -->\n\nAfter.\n")
    assert blocks.fill_blocks(filled, "page.md", ROOT) == filled  # idempotent


def test_arms_block_of_extraction_and_sequential_runs() -> None:
    extraction = runs.arms_block(ROOT, "reports/restaurant8k")
    assert "| field F1 |" in extraction and "macro-F1" not in extraction
    sequential = runs.arms_block(ROOT, "reports/banking77-sequential")
    assert sequential.splitlines()[0].endswith("| requested |")


def test_side_by_side_block() -> None:
    text = runs.side_by_side_block(ROOT, "reports/banking77-fixed", "reports/banking77-sequential")
    meta = [json.loads((ROOT / f / "run.json").read_text())
            for f in ("reports/banking77-fixed", "reports/banking77-sequential")]
    made = [m["counts"]["requests"] + m["counts"]["cache_hits"] for m in meta]
    assert f"| requests made (cache hits included) | {made[0]:,} | {made[1]:,} |" in text
    assert f"{100 * made[1] / made[0]:.1f}% of the requests" in text
    assert "| `reports/banking77-fixed` | `reports/banking77-sequential` |" in text


@pytest.mark.parametrize(("text", "message"), [
    ("<!-- generated: plot reports/example -->\n<!-- end generated -->\n", "unknown kind 'plot'"),
    ("<!-- generated: arms reports/no-such-run -->\n<!-- end generated -->\n",
     "no run folder reports/no-such-run"),
    ("<!-- generated: arms reports/example -->\nno end\n", "without its <!-- end generated -->"),
    ("<!-- generated: arms -->\n<!-- end generated -->\n", "arms takes 1 argument, got 0"),
    ("<!-- end generated -->\n", "without a generated block before it"),
])
def test_block_errors_name_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(markdown.DocsError) as caught:
        blocks.fill_blocks("# Page\n\n" + text, "docs/page.md", ROOT)
    assert str(caught.value).startswith("docs/page.md:3: ")
    assert message in str(caught.value)


def test_markers_inside_code_fences_are_text() -> None:
    text = "```markdown\n<!-- generated: plot x -->\n```\n"
    assert blocks.fill_blocks(text, "page.md", ROOT) == text


def test_measurements_show_the_latest_record_first(site: Path) -> None:
    records = measurements.records(site)
    overhead = records["overhead"]
    assert len(overhead) > 1 and overhead[0].date > overhead[1].date
    text = measurements.measurements_page(site)
    latest = text.index(f"Latest record ({markdown.format_date(overhead[0].date)})")
    assert latest < text.index("Every record of `overhead`")
    assert f"`{overhead[1].commit[:7]}`" in text  # the history
    assert "2 cores, Python" in measurements.measurements_table(site)


def test_missing_report_paths(site: Path) -> None:
    (site / "docs" / "how-to" / "paths.md").write_text(
        "Open `reports/example/report.html` or reports/nowhere/report.html.\n"
        "Run `harness run c.yaml --out reports/mine`, then open reports/mine/report.html;\n"
        "the default folder is reports/NAME-TIMESTAMP.\n")
    assert links.missing_report_paths(site) == ["docs/how-to/paths.md:1: reports/nowhere/report.html"]


def test_changelog_links_work_from_the_site(site: Path) -> None:
    text = changelog.changelog_page(site)
    assert "[the quickstart](tutorials/quickstart.md)" in text
    assert "the example run (`reports/example/report.html`)" in text
