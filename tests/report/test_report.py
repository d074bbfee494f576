"""`harness report RUN_DIR` rebuilds every report file of a run byte-for-byte (timestamps aside).

Also home of `make_run`, the helper that makes a real run folder through the fake OpenAI server;
test_report_html.py, test_report_browser.py and test_gate.py import it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import FakeOpenAI, last_user_content

from harness.cli import main

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


TIMESTAMP = re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")


def _normalised(path: Path) -> bytes:
    return TIMESTAMP.sub(b"<timestamp>", path.read_bytes())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run with every arm type."""
    return make_run(tmp_path_factory.mktemp("report"))


def test_report_command_reproduces_every_file(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    made = {p.name for p in run_dir.iterdir()}
    for name in made - {"results.jsonl", "run.json"}:
        (copy / name).unlink()
    # a separate process with another hash seed, as a user would run it
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run([sys.executable, "-m", "harness", "report", str(copy)], env=env,
                          cwd=Path(__file__).parents[2], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in copy.iterdir()} == made
    for name in sorted(made):
        assert _normalised(copy / name) == _normalised(run_dir / name), f"{name} differs"


def test_report_in_process_is_identical_and_keeps_the_figures(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    assert main(["report", str(copy)]) == 0
    for name in ("report.html", "summary.json", "summary.csv", "results.csv", "comparisons.csv",
                 "per_class.csv"):
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name
    summary = json.loads((copy / "summary.json").read_text())
    assert [a["strategy"] for a in summary["arms"]] == ["zero-shot", "few-shot", "few-shot",
                                                       "few-shot", "fine-tuned"]


def test_report_on_a_folder_without_a_run_is_bad_input(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a run folder" in err[0]
