"""Strategies into arms: few-shot example selection (stratified, draws, seeds) and its limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import Config, StrategyConfig, load_config
from harness.dataset import Example, load_data
from harness.errors import InputError
from harness.strategies import Arm, expand, hash_seed, select_shots
from harness.tasks import make_task

REPO = Path(__file__).resolve().parents[2]


def pool_of(counts: dict[str, int]) -> list[Example]:
    """A training pool with `counts[label]` examples per label, in file order."""
    return [Example(f"{lab}-{i}", f"{lab} example {i}", lab) for lab, n in counts.items() for i in range(n)]


POOL = pool_of({"billing": 10, "shipping": 6, "returns": 3, "account": 1})


def no_fine_tunes(s: StrategyConfig) -> tuple[str | None, str | None]:
    return None, "not trained"


def config(folder: Path, strategies: list[dict[str, Any]], *, train: int | None = 5,
           eval_rows: int = 4, seed: int = 0, leak: int = 0) -> Config:
    """A project with 4 labels, `train` training examples per label (the first `leak` copy eval)."""
    labels = ["billing", "shipping", "returns", "account"]
    folder.mkdir(parents=True, exist_ok=True)
    eval_lines = [(f"eval {lab} {i}", lab) for i in range(eval_rows) for lab in labels]
    (folder / "eval.csv").write_text("text,category\n" + "".join(f"{t},{c}\n" for t, c in eval_lines))
    ds: dict[str, Any] = {"eval": "eval.csv", "input": "text", "target": "category", "seed": seed}
    if train is not None:
        lines = [(f"train {lab} {i}", lab) for i in range(train) for lab in labels]
        lines[:leak] = [(t.upper(), c) for t, c in eval_lines[:leak]]
        (folder / "train.csv").write_text("text,category\n" + "".join(f"{t},{c}\n" for t, c in lines))
        ds["train"] = "train.csv"
    cfg = {"name": "s", "task": {"type": "classification", "instructions": "Route it.", "labels": labels},
           "dataset": ds,
           "models": {"m": {"provider": "openai", "model": "model-x", "api_key_env": "TEST_API_KEY"}},
           "strategies": strategies}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return load_config(folder / "config.yaml")


def arms_of(cfg: Config) -> list[Arm]:
    data = load_data(cfg)
    return [s.arm for s in expand(cfg, data, make_task(cfg.task, data.labels), no_fine_tunes)]


# --- select_shots -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_stratified_selection_spreads_over_labels(seed: int) -> None:
    for k in (1, 2, 3, 4):
        shots = select_shots(POOL, k, "stratified", seed)
        assert len({ex.target for ex in shots}) == k  # k <= 4 labels: all different
    counts = Counter(ex.target for ex in select_shots(POOL, 8, "stratified", seed))
    assert counts["account"] == 1  # all there is
    assert counts["returns"] >= 2 and counts["shipping"] >= 2 and counts["billing"] >= 2
    assert max(counts.values()) - min(v for lab, v in counts.items() if lab != "account") <= 1


def test_stratified_selection_can_take_the_whole_pool() -> None:
    shots = select_shots(POOL, len(POOL), "stratified", 3)
    assert sorted(ex.id for ex in shots) == sorted(ex.id for ex in POOL)


def test_selection_has_no_duplicates_and_is_seeded() -> None:
    for selection in ("stratified", "random"):
        shots = select_shots(POOL, 6, selection, 42)
        assert len(set(shots)) == 6 and set(shots) <= set(POOL)
        assert select_shots(POOL, 6, selection, 42) == shots
        assert select_shots(list(POOL), 6, selection, 42) == shots
        assert any(select_shots(POOL, 6, selection, s) != shots for s in range(43, 48))


def test_stratified_shots_come_in_mixed_order() -> None:
    orders = {tuple(ex.target for ex in select_shots(POOL, 4, "stratified", s)) for s in range(20)}
    assert len(orders) > 5  # not always the same label first (the model would learn the position)


def test_selecting_more_than_the_pool_holds_is_an_error_not_a_hang() -> None:
    for selection in ("stratified", "random"):
        with pytest.raises(InputError, match="cannot select 21 examples from a pool of 20"):
            select_shots(POOL, 21, selection, 0)


def test_hash_seed_is_fixed_across_processes() -> None:
    """Python's hash() of a str is salted per process; the shots must not depend on it."""
    code = (
        "import json, sys\n"
        "from harness.dataset import Example\n"
        "from harness.strategies import hash_seed, select_shots\n"
        f"pool = [Example(*row) for row in {[(e.id, e.input, e.target) for e in POOL]!r}]\n"
        "out = {'seed': hash_seed(0, 4, 1),\n"
        "       'shots': [[e.id for e in select_shots(pool, k, sel, hash_seed(7, k, d))]\n"
        "                 for sel in ('stratified', 'random') for k in (1, 4, 9) for d in range(3)]}\n"
        "print(json.dumps(out))\n"
    )
    here = {"seed": hash_seed(0, 4, 1),
            "shots": [[e.id for e in select_shots(POOL, k, sel, hash_seed(7, k, d))]
                      for sel in ("stratified", "random") for k in (1, 4, 9) for d in range(3)]}
    for hash_salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_salt,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True, timeout=60)
        assert json.loads(proc.stdout) == here


def test_hash_seed_separates_its_parts() -> None:
    seeds = {hash_seed(s, k, d) for s in range(3) for k in range(1, 9) for d in range(4)}
    assert len(seeds) == 3 * 8 * 4
    assert all(0 <= s < 2**63 for s in seeds)


# --- expand -------------------------------------------------------------------------------------


def test_arms_in_strategy_then_k_then_draw_order(tmp_path: Path) -> None:
    cfg = config(tmp_path, [
        {"name": "zs", "type": "zero_shot", "model": "m"},
        {"name": "fs", "type": "few_shot", "model": "m", "shots": [4, 1], "draws": 2},
        {"name": "ft", "type": "fine_tuned", "model": "m", "fine_tuned_model": "local-ft:nope"},
    ])
    arms = arms_of(cfg)
    assert [a.key for a in arms] == ["zs|k=0|draw=0", "fs|k=1|draw=0", "fs|k=1|draw=1", "fs|k=4|draw=0",
                                     "fs|k=4|draw=1", "ft|k=0|draw=0"]
    assert [len(a.shots) for a in arms] == [0, 1, 1, 4, 4, 0]
    assert arms[0].model_id == "model-x" and arms[0].unavailable is None
    assert arms[-1].unavailable == "not trained" and arms[-1].model_id == "local-ft:nope"


def test_draws_use_different_examples(tmp_path: Path) -> None:
    cfg = config(tmp_path, [{"name": "fs", "type": "few_shot", "model": "m", "shots": [2, 4], "draws": 4}])
    arms = arms_of(cfg)
    for k in (2, 4):
        draws = [frozenset(a.shots) for a in arms if a.k == k]
        assert len(set(draws)) == 4, f"k={k}: draws repeat"
        for shots in draws:  # each draw is stratified
            assert len({ex.target for ex in shots}) == k


def test_shots_are_reproducible_and_follow_dataset_seed(tmp_path: Path) -> None:
    strategies = [{"name": "fs", "type": "few_shot", "model": "m", "shots": 3, "draws": 3}]
    first = [a.shots for a in arms_of(config(tmp_path / "a", strategies, seed=1))]
    again = [a.shots for a in arms_of(config(tmp_path / "b", strategies, seed=1))]
    other = [a.shots for a in arms_of(config(tmp_path / "c", strategies, seed=2))]
    assert first == again
    assert first != other


def test_few_shot_examples_never_come_from_the_eval_set(tmp_path: Path) -> None:
    cfg = config(tmp_path, [{"name": "fs", "type": "few_shot", "model": "m", "shots": 16}], leak=4)
    data = load_data(cfg)
    assert data.leaked == 4 and len(data.train) == 16
    evals = {ex.input.casefold() for ex in data.eval}
    assert not any(ex.input.casefold() in evals for a in arms_of(cfg) for ex in a.shots)


@pytest.mark.parametrize("kw, message", [
    ({"train": 2}, "strategies[0].shots: k=9 is more than the pool can give: the training pool holds "
                   "only 8 examples"),
    ({"train": 3, "leak": 4}, "the training pool holds only 8 examples (4 removed: also in the eval set)"),
])
def test_k_larger_than_the_pool_is_an_input_error(tmp_path: Path, kw: dict[str, Any], message: str) -> None:
    cfg = config(tmp_path, [{"name": "fs", "type": "few_shot", "model": "m", "shots": [2, 9]}], **kw)
    with pytest.raises(InputError) as info:
        arms_of(cfg)
    assert message in str(info.value)


def test_few_shot_without_a_training_file(tmp_path: Path) -> None:
    strategies = [{"name": "fs", "type": "few_shot", "model": "m", "shots": [2, 9]}]
    with pytest.raises(InputError, match=r"strategies\[0\]: type few_shot needs a training pool"):
        config(tmp_path / "a", strategies, train=None)
    cfg = config(tmp_path / "b", strategies)  # the same, built in code rather than from a file
    cfg = replace(cfg, dataset=replace(cfg.dataset, train=None))
    with pytest.raises(InputError, match=r"strategies\[0\]\.shots: k=2 is more than the pool can give: "
                                         r"there is no training pool \(set dataset\.train\)"):
        arms_of(cfg)


def test_k_equal_to_the_pool_is_fine(tmp_path: Path) -> None:
    cfg = config(tmp_path, [{"name": "fs", "type": "few_shot", "model": "m", "shots": 8}], train=2)
    (arm,) = arms_of(cfg)
    assert len(arm.shots) == 8
