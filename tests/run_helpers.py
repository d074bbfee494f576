"""Shared helpers for tests that need a run folder.

`make_run` makes a real run folder with `harness run` through the fake OpenAI server (for tests
that exercise the runner or need several runs with chosen answers); `fixture_run` copies one of
the committed run folders under tests/fixtures/runs/ (results.jsonl and run.json only), for
tests that only need a finished run and no HTTP server.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fake_openai import FakeOpenAI, last_user_content

from harness.cli import main
from harness.kinds import VERDICTS
from harness.strategies import arm_name

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"
LABELS = ["billing", "shipping", "returns", "account"]
XSS = "<script>window.__pwned=1;document.title='PWNED'</script> <img src=x onerror=alert(1)>"
FT_MODEL = "ft:fake-model:acme:router:1"
STRATEGIES: list[dict[str, Any]] = [
    {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
    {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1, 2, 4], "draws": 2},
    {"name": "fine-tuned", "type": "fine_tuned", "model": "fake", "fine_tuned_model": FT_MODEL},
]
Responder = Callable[[dict[str, Any]], str]


def mixed_responder(body: dict[str, Any]) -> str:
    """Echo the first line of the message as the label, with arm-dependent mistakes.

    Zero-shot calls even-numbered 'returns' messages 'shipping'; few-shot only message 0; the
    fine-tuned model is always right. The XSS input is echoed (an invalid label).
    """
    text = last_user_content(body)
    label = text.splitlines()[0] if text else ""
    m = re.search(r"message (\d+) about", text)
    i = int(m.group(1)) if m else -1
    if body.get("model") != FT_MODEL and label == "returns":
        few_shot = len(body["messages"]) > 2
        if (few_shot and i == 0) or (not few_shot and i % 2 == 0):
            label = "shipping"
    return json.dumps({"label": label})


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "category"])
        w.writeheader()
        w.writerows(rows)


def make_run(root: Path, *, responder: Responder = mixed_responder, n_eval: int = 5,
             strategies: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None,
             xss: bool = True, out_name: str = "run", config_dir: Path | None = None) -> Path:
    """Make a real run folder with `harness run` against the fake server; return its path.

    Data and config go to `config_dir` (default: `root`), so several runs can share one config.
    Uses its own cache and registry under `root` and --no-cache, so it works from fixtures of
    any scope.
    """
    cdir = config_dir or root
    cdir.mkdir(parents=True, exist_ok=True)
    rows = [{"text": f"{lab}\neval message {i} about {lab}", "category": lab}
            for i in range(n_eval) for lab in LABELS]
    if xss:
        rows.append({"text": XSS, "category": "billing"})
    _write_csv(cdir / "eval.csv", rows)
    _write_csv(cdir / "train.csv", [{"text": f"{lab}\ntrain message {i} about {lab}", "category": lab}
                                    for i in range(6) for lab in LABELS])
    (cdir / "labels.json").write_text(json.dumps(LABELS))
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(responder=responder) as server:
        mp.setenv("TEST_API_KEY", "sk-test")
        mp.setenv("HARNESS_CACHE_DIR", str(root / "cache"))
        mp.setenv("HARNESS_REGISTRY", str(root / "finetunes.json"))
        mp.setenv("HARNESS_HISTORY", str(root / "history.jsonl"))
        cfg: dict[str, Any] = {
            "name": "routing",
            "task": {"type": "classification", "instructions": "Route the support message.",
                     "labels": "labels.json"},
            "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text", "target": "category"},
            "models": {"fake": {"provider": "openai", "model": "fake-model",
                                "base_url": server.base_url, "api_key_env": "TEST_API_KEY"}},
            "strategies": strategies or STRATEGIES,
            "run": {"concurrency": 4, "timeout": 5, "max_attempts": 2},
            **(extra or {}),
        }
        local = cdir / f"{out_name}.yaml"
        local.write_text(yaml.safe_dump(cfg, sort_keys=False))
        out = root / out_name
        assert main(["run", str(local), "--out", str(out), "--no-cache"]) == 0
    return out


def fixture_run(name: str, dest: Path) -> Path:
    """A copy of the committed run folder tests/fixtures/runs/NAME (run.json, results.jsonl) at
    DEST/NAME, with its reports built by `harness report`; return its path."""
    out = dest / name
    shutil.copytree(FIXTURE_RUNS / name, out)
    assert main(["report", str(out)]) == 0
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSONL file, parsed."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.endswith("\n")]


def run_summary(run: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """A run folder's summary.json and summary.csv (indexed by strategy)."""
    return (json.loads((run / "summary.json").read_text()),
            pd.read_csv(run / "summary.csv").set_index("strategy"))


def box_numbers(run: Path) -> dict[str, str]:
    """The verdict box's figures in report.html: label -> text."""
    page = (run / "report.html").read_text()
    numbers = page[page.index('<dl class="numbers">'):page.index("</dl>")]
    return {html.unescape(k): html.unescape(v)
            for k, v in re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", numbers)}


def summary_row(run: Path, arm: str) -> pd.Series:
    """The summary.csv row of an arm by its name (strategy, with @k=)."""
    table = pd.read_csv(run / "summary.csv")
    return next(r for _, r in table.iterrows()
                if arm_name(r["strategy"], int(r["k"]), r["type"]) == arm)


def check_figures(run: Path) -> None:
    """Every figure equals its arm's summary.csv value (and interval) on its metric."""
    data = json.loads((run / "summary.json").read_text())
    rec = data["recommendation"]
    if rec is None:
        return
    assert rec["verdict"] in VERDICTS
    table = pd.read_csv(run / "summary.csv")
    names = {arm_name(r["strategy"], int(r["k"]), r["type"]): r for _, r in table.iterrows()}
    intervals = {"accuracy": ("ci_low", "ci_high"),
                 "field_f1": ("field_f1_ci_low", "field_f1_ci_high"),
                 "schema_compliance": ("schema_ci_low", "schema_ci_high")}
    for f in rec["figures"]:
        assert set(f) >= {"arm", "metric", "value", "low", "high"}
        row = names[f["arm"]]
        assert f["metric"] in table.columns
        assert f["value"] == pytest.approx(row[f["metric"]], abs=5e-6), f
        lo, hi = intervals[f["metric"]]
        if f["low"] is not None:
            assert f["low"] == pytest.approx(row[lo], abs=5e-6) and f["high"] == pytest.approx(
                row[hi], abs=5e-6), f
