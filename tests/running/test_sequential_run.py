"""Sequential evaluation end to end (issue 26) against the loopback server: rounds of
`look_every` per arm in a seeded order, arms stopped once their part of the decision is
settled, ordinary records, and `harness report` recomputing the same stop."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import FakeOpenAI, last_user_content

from harness.cli import main
from harness.running.sequential_order import SEQUENTIAL

FT = "ft:fake-model:seq"
STRATEGIES = [
    {"name": "zero-shot", "type": "zero_shot", "model": "fake"},
    {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": FT},
]


def _u(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16 ** 8


def responder(body: dict[str, Any]) -> str:
    """The fine-tuned model is right 95% of the time, the base model 60% (by a hash of the
    message, so every arm's answer to a message is fixed)."""
    text = last_user_content(body)
    label = text.splitlines()[0]
    right = _u(text) < (0.95 if body["model"] == FT else 0.6)
    return json.dumps({"label": label if right else ("billing" if label != "billing"
                                                     else "account")})


def _run(make_config: Any, tmp_path: Path, server: FakeOpenAI, sequential: dict[str, Any],
         out: str = "run", extra: list[str] | None = None) -> tuple[int, Path]:
    cfg = make_config(server.base_url, n_eval=150, strategies=STRATEGIES,
                      run={"sequential": sequential})
    code = main(["run", str(cfg), "--out", str(tmp_path / out), "--no-cache", *(extra or [])])
    return code, tmp_path / out


def _arms(run: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in (run / "results.jsonl").read_text().splitlines():
        arm = json.loads(line)["strategy"]
        counts[arm] = counts.get(arm, 0) + 1
    return counts


def test_a_clearly_better_fine_tune_settles_early(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        code, run = _run(make_config, tmp_path, server,
                         {"enabled": True, "look_every": 50, "min_examples": 50})
        requests = len(server.requests)
    assert code == 0
    counts = _arms(run)
    assert counts["ft"] == counts["zero-shot"] < 600  # stopped at the same look
    assert counts["ft"] % 50 == 0
    assert requests < 2 * 600 * 0.5
    data = json.loads((run / "summary.json").read_text())
    seq = data["sequential"]
    assert seq["settled"] is True
    fine = [c for c in seq["comparisons"] if c["kind"] == "fine_tune"]
    assert fine and fine[0]["state"] == "better" and fine[0]["low"] > 0
    arm = next(a for k, a in seq["arms"].items() if k.startswith("ft|"))
    assert arm["requested"] == counts["ft"] and arm["available"] == 600
    assert arm["stopped_at_look"] == counts["ft"] // 50 - 1
    order = json.loads((run / SEQUENTIAL).read_text())["order"]
    assert len(order) == 600 and len(set(order)) == 600


def test_report_recomputes_the_same_stop_and_resume_goes_on(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        code, run = _run(make_config, tmp_path, server,
                         {"enabled": True, "look_every": 50, "min_examples": 50})
        assert code == 0
        before = json.loads((run / "summary.json").read_text())["sequential"]
        assert main(["report", str(run)]) == 0
        after = json.loads((run / "summary.json").read_text())["sequential"]
        assert after == before
        n = len(server.requests)
        cfg = tmp_path / "config.yaml"
        assert main(["run", str(cfg), "--out", str(run), "--resume", "--no-cache"]) == 0
        assert len(server.requests) == n  # settled: nothing more to ask
        assert json.loads((run / "summary.json").read_text())["sequential"] == before


def test_a_changed_design_cannot_resume(make_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        code, run = _run(make_config, tmp_path, server,
                         {"enabled": True, "look_every": 50, "min_examples": 50})
        assert code == 0
        cfg = tmp_path / "config.yaml"
        data = yaml.safe_load(cfg.read_text())
        data["run"]["sequential"]["seed"] = 9
        cfg.write_text(yaml.safe_dump(data))
        assert main(["run", str(cfg), "--out", str(run), "--resume", "--no-cache"]) == 2
    assert "another sequential design" in capsys.readouterr().err


def test_without_sequential_nothing_changes(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        code, run = _run(make_config, tmp_path, server, {"enabled": False})
    assert code == 0 and _arms(run) == {"ft": 600, "zero-shot": 600}
    assert not (run / SEQUENTIAL).exists()
    assert "sequential" not in json.loads((run / "summary.json").read_text())
    import pandas as pd
    assert "requested" not in pd.read_csv(run / "summary.csv").columns


@pytest.mark.parametrize("bad", [{"look_every": 0}, {"max_examples": 0}, {"when": 1}])
def test_a_bad_design_is_one_error_line(make_config, tmp_path, monkeypatch, capsys, bad):
    monkeypatch.setenv("TEST_API_KEY", "x")
    cfg = make_config(strategies=STRATEGIES, run={"sequential": {"enabled": True, **bad}})
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "run.sequential" in err and len(err.splitlines()) == 1


def test_the_report_has_a_sequential_section(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        code, run = _run(make_config, tmp_path, server,
                         {"enabled": True, "look_every": 25, "min_examples": 50})
    assert code == 0
    page = (run / "report.html").read_text()
    assert 'id="sequential"' in page and 'id="sequential-chart"' in page
    assert "anytime-valid interval" in page
    import pandas as pd
    summary = pd.read_csv(run / "summary.csv").set_index("strategy")
    assert summary.loc["ft", "requested"] == summary.loc["ft", "n"] < 600
    comparisons = pd.read_csv(run / "comparisons.csv")
    assert set(comparisons["test"]) == {"confidence sequence"}


def test_plan_gives_the_expected_examples_beside_the_fixed_n(make_config, capsys):
    cfg = make_config(n_eval=150, strategies=STRATEGIES,
                      run={"sequential": {"enabled": True, "look_every": 50}})
    assert main(["plan", str(cfg), "--delta", "0.2"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("sequential ("))
    assert "of 600 examples per arm" in line and "simulated runs" in line


def test_a_clustered_run_is_requested_and_judged_cluster_by_cluster(make_config, tmp_path,
                                                                    monkeypatch):
    """With `dataset.cluster` (here the label, so a handful of clusters of 150 examples), the
    order holds each cluster's examples together and each comparison has one observation per
    cluster: far too few to settle, so every example is requested; the report replays it."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI(responder=responder) as server:
        dataset = {"eval": "eval.csv", "train": "train.csv", "input": "text",
                   "target": "category", "cluster": "category"}
        cfg = make_config(server.base_url, n_eval=150, strategies=STRATEGIES,
                          run={"sequential": {"enabled": True, "look_every": 50}},
                          extra={"dataset": dataset})
        run = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(run), "--no-cache"]) == 0
    design = json.loads((run / SEQUENTIAL).read_text())
    clusters = [design["clusters"][i] for i in design["order"]]
    blocks = 1 + sum(a != b for a, b in itertools.pairwise(clusters))
    assert blocks == len(set(clusters)) < 10
    seq = json.loads((run / "summary.json").read_text())["sequential"]
    fine = next(c for c in seq["comparisons"] if c["kind"] == "fine_tune")
    assert fine["n"] == len(set(clusters)) and fine["state"] == "open"
    assert _arms(run) == {"ft": 600, "zero-shot": 600}
    assert main(["report", str(run)]) == 0
    assert json.loads((run / "summary.json").read_text())["sequential"] == seq
