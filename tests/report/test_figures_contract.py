"""The contract of `summary.json → recommendation.figures` (issue 24) over every committed run
folder: each figure is `{arm, metric, value, low, high}`, names an arm of summary.csv and a
summary.csv column, and equals that arm's value there; the verdict is one of the documented
values. The folders are rebuilt from their records (`harness report`) in a copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from run_helpers import FIXTURE_RUNS, check_figures

from harness.cli import main

REPO = FIXTURE_RUNS.parents[2]
FOLDERS = sorted([*(p for p in (REPO / "reports").iterdir() if (p / "run.json").is_file()),
                  *(p for p in FIXTURE_RUNS.iterdir() if (p / "run.json").is_file())])


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_figure_is_its_arms_summary_value(folder: Path, tmp_path: Path) -> None:
    run = tmp_path / folder.name
    shutil.copytree(folder, run)
    assert main(["report", str(run)]) == 0
    check_figures(run)
    rec = json.loads((run / "summary.json").read_text())["recommendation"]
    if rec is not None:  # a withheld verdict has no recommendation
        assert rec["figures"], "a verdict quotes the numbers it rests on"


def test_the_committed_folders_are_all_checked() -> None:
    names = {p.name for p in FOLDERS}
    assert {"example", "cascade", "restaurant8k", "complete", "version1"} <= names
