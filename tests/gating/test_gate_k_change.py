"""The gate follows a strategy through a k change (issue 27, item 2): `shots: 8` -> `2` is one
arm whose accuracy fell, not a missing arm and a new one; gate.md says what changed since the
baseline; the first baseline reads as a new baseline; `--match exact` keeps the old rule."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_openai import last_user_content
from run_helpers import make_run

from harness.cli import main
from harness.errors import InputError
from harness.gating import ArmData, pair_arms, run_gate


def responder(wrong_at_k2: set[int]) -> Callable[[dict[str, Any]], str]:
    """Zero-shot and 8-shot prompts are right; a 2-shot prompt (6 messages) is wrong on the
    messages numbered in `wrong_at_k2`."""

    def reply(body: dict[str, Any]) -> str:
        text = last_user_content(body)
        label = text.splitlines()[0]
        i = int(re.search(r"message (\d+) about", text).group(1))  # type: ignore[union-attr]
        if len(body["messages"]) == 2 + 2 * 2 and i in wrong_at_k2:
            return json.dumps({"label": "account" if label != "account" else "billing"})
        return json.dumps({"label": label})

    return reply


def _strategies(shots: int) -> list[dict[str, Any]]:
    return [{"name": "zero-shot", "type": "zero_shot", "model": "fake"},
            {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [shots],
             "draws": 1}]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kgate")
    task = {"type": "classification", "instructions": "Route the support message, briefly.",
            "labels": "labels.json"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HISTORY", str(root / "history.jsonl"))
        return {
            "k8": make_run(root, responder=responder(set()), strategies=_strategies(8),
                           n_eval=5, xss=False, out_name="k8"),
            # k=2 is wrong on messages 0-3: 16 of 20 examples; and the instructions changed
            "k2": make_run(root, responder=responder({0, 1, 2, 3}), strategies=_strategies(2),
                           n_eval=5, xss=False, out_name="k2", extra={"task": task}),
        }


def test_a_k_change_is_gated_against_the_nearest_k(runs: dict[str, Path], tmp_path: Path) -> None:
    baseline = tmp_path / "routing.json"
    first = run_gate(runs["k8"], baseline, update=True)
    assert first.baseline_source is None
    md = (runs["k8"] / "gate.md").read_text()
    assert "new baseline" in md and "`none`" not in md
    result = run_gate(runs["k2"], baseline)
    assert result.exit_code == 1
    row = next(r for r in result.rows if r.arm == "few-shot@k=2" and r.metric == "accuracy")
    assert row.baseline_arm == "few-shot@k=8" and row.k_change == "k=8 -> k=2"
    assert row.baseline == 1.0 and row.now == pytest.approx(0.2)
    assert row.change is not None and row.change.estimate == pytest.approx(-0.8)
    assert row.failures and "regression" in row.status
    assert not any("missing" in r.status or "new" in r.status for r in result.rows)
    md = (runs["k2"] / "gate.md").read_text()
    assert "few-shot: k=8 -> k=2, -80.0 points, significant" in md
    assert "What changed since the baseline:" in md
    assert "few-shot@k=8 -> few-shot@k=2: k=8 -> k=2, prompt " in md
    assert "config strategies[few-shot].shots: [8] -> [2]" in md
    assert "config task.instructions: \"Route the support message.\" -> " in md
    assert "| few-shot@k=2 (baseline few-shot@k=8) | accuracy |" in md


def test_match_exact_keeps_the_old_rule(runs: dict[str, Path], tmp_path: Path) -> None:
    baseline = tmp_path / "routing.json"
    run_gate(runs["k8"], baseline, update=True)
    result = run_gate(runs["k2"], baseline, match="exact")
    statuses = {(r.arm, r.metric): r.status for r in result.rows}
    assert statuses[("few-shot@k=8", "accuracy")].startswith("missing from this run")
    assert statuses[("few-shot@k=2", "accuracy")] == "new (no baseline)"
    assert all(r.baseline_arm is None for r in result.rows)


def test_cli_match_flag(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
                        ) -> None:
    baseline = tmp_path / "routing.json"
    assert main(["gate", str(runs["k8"]), "--baseline", str(baseline), "--update-baseline"]) == 0
    assert main(["gate", str(runs["k2"]), "--baseline", str(baseline)]) == 1
    assert "k=8 -> k=2" in capsys.readouterr().out
    assert main(["gate", str(runs["k2"]), "--baseline", str(baseline), "--match", "exact"]) == 1
    assert "missing from this run" in capsys.readouterr().out


def _arm(name: str, k: int, strategy: str = "few-shot") -> ArmData:
    return ArmData(name, strategy, "few_shot", k, 10, 1, {"accuracy": 1.0})


@pytest.mark.parametrize(("base", "now", "expected"), [
    ([8], [2], {2: 8}),
    ([1, 2, 8], [1, 2, 4], {1: 1, 2: 2, 4: 8}),  # same names first, then the nearest left
    ([2, 8], [5], {5: 8}),  # closest first
    ([2, 6], [4], {4: 6}),  # a tie (|4-2| = |4-6|): the larger k then
    ([1, 8], [2, 16], {2: 1, 16: 8}),
    ([8], [2, 4], {4: 8}),  # one baseline arm: the nearest current arm takes it
])
def test_pair_arms_nearest(base: list[int], now: list[int], expected: dict[int, int]) -> None:
    b = {f"few-shot@k={k}": _arm(f"few-shot@k={k}", k) for k in base}
    c = {f"few-shot@k={k}": _arm(f"few-shot@k={k}", k) for k in now}
    pairs = pair_arms(b, c)
    assert {int(n.split("=")[1]): int(w.split("=")[1]) for n, w in pairs.items()} == expected


def test_pair_arms_never_crosses_strategies() -> None:
    b = {"a@k=8": _arm("a@k=8", 8, "a")}
    c = {"b@k=2": _arm("b@k=2", 2, "b")}
    assert pair_arms(b, c) == {}
    assert pair_arms(b, {"a@k=2": _arm("a@k=2", 2, "a")}, match="exact") == {}


def test_hash_ids_keeps_no_id_and_still_pairs(runs: dict[str, Path], tmp_path: Path) -> None:
    """--hash-ids: the baseline file holds hashes, not ids, and gating against it still pairs
    example by example (the same paired test, the same verdict as with plain ids)."""
    plain, hashed = tmp_path / "plain.json", tmp_path / "hashed.json"
    run_gate(runs["k8"], plain, update=True)
    run_gate(runs["k8"], hashed, update=True, hash_ids=True)
    doc = json.loads(hashed.read_text())
    ids = json.loads((runs["k8"] / "run.json").read_text())["examples"]
    assert doc["example_ids"] == "sha256-16" and not set(ids) & set(doc["examples"])
    assert all(re.fullmatch(r"[0-9a-f]{16}", e) for e in doc["examples"])
    assert not any(str(i) in hashed.read_text() for i in ids if len(str(i)) > 3)
    a, b = run_gate(runs["k2"], plain), run_gate(runs["k2"], hashed)
    assert [(r.arm, r.metric, r.test, r.status) for r in a.rows] == \
        [(r.arm, r.metric, r.test, r.status) for r in b.rows]
    assert {r.test for r in b.rows if r.test} == {"McNemar"}
    again = run_gate(runs["k8"], hashed, update=True)  # stays hashed without the flag
    assert again.exit_code == 0 and json.loads(hashed.read_text())["example_ids"] == "sha256-16"
    with pytest.raises(InputError, match="--hash-ids"):
        run_gate(runs["k8"], plain, hash_ids=True)
