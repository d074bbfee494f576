"""The prompt version `Arm.prompt_sha256`: a hash of the text sent, not of the template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.config import Prompts, TaskConfig, load_config
from harness.dataset import Example
from harness.running import plan
from harness.strategies import Arm
from harness.strategies.prompts import prompt_sha256, resolve_template
from harness.tasks import ClassificationTask

STRATEGIES: list[dict[str, Any]] = [
    {"name": "zs", "type": "zero_shot", "model": "m"},
    {"name": "fs", "type": "few_shot", "model": "m", "shots": [2], "draws": 2},
    {"name": "ft", "type": "fine_tuned", "model": "m", "fine_tuned_model": "ft:x:org:router:1"},
]


def arms(folder: Path, *, instructions: str = "Route it.", labels: tuple[str, ...] = ("billing", "shipping"),
         system: str | None = None, train_text: str = "train") -> list[Arm]:
    """The arms of a small project whose task is written with these values."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "eval.csv").write_text("text,category\n" + "".join(
        f"eval {i},{labels[i % 2]}\n" for i in range(4)))
    (folder / "train.csv").write_text("text,category\n" + "".join(
        f"{train_text} {i},{labels[i % 2]}\n" for i in range(6)))
    task: dict[str, Any] = {"type": "classification", "instructions": instructions,
                            "labels": list(labels)}
    if system is not None:
        task["prompts"] = {"system": system}
    cfg = {"name": "p", "task": task,
           "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text", "target": "category"},
           "models": {"m": {"provider": "openai", "model": "x", "api_key_env": "TEST_API_KEY"}},
           "strategies": STRATEGIES}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return [s.arm for s in plan(load_config(folder / "config.yaml")).strategies]


def test_instruction_text_changes_the_prompt_version_of_every_arm(tmp_path: Path) -> None:
    """The bug: three instructions, one template hash. The prompt version tells them apart."""
    runs = [arms(tmp_path / str(i), instructions=text)
            for i, text in enumerate(["Route it.", "Route the message.", "Pick the team."])]
    # the template hash cannot see the instructions filled in: this is why history saw one version
    assert len({a.template.sha256 for run in runs for a in run if a.strategy == "zs"}) == 1
    for i in range(len(runs[0])):
        assert len({run[i].prompt_sha256 for run in runs}) == 3, runs[0][i].key


def test_the_label_set_changes_the_prompt_version(tmp_path: Path) -> None:
    a = arms(tmp_path / "a", labels=("billing", "shipping"))
    b = arms(tmp_path / "b", labels=("billing", "delivery"))
    zs = next(x for x in a if x.strategy == "zs")
    assert zs.template.sha256 == next(x for x in b if x.strategy == "zs").template.sha256
    assert [x.prompt_sha256 for x in a if x.strategy != "ft"] != [
        x.prompt_sha256 for x in b if x.strategy != "ft"]


def test_the_same_text_is_the_same_version_however_it_is_written(tmp_path: Path) -> None:
    inline = arms(tmp_path / "inline", instructions="ignored here",
                  system="Route it.\n\nLabels: {labels}")
    variable = arms(tmp_path / "variable", instructions="Route it.",
                    system="{instructions}\n\nLabels: {labels}")
    again = arms(tmp_path / "again", instructions="Route it.",
                 system="{instructions}\n\nLabels: {labels}")
    pairs = [(x, y) for x, y in zip(inline, variable, strict=True) if x.strategy != "ft"]
    assert all(x.template.sha256 != y.template.sha256 for x, y in pairs)
    assert all(x.prompt_sha256 == y.prompt_sha256 for x, y in pairs)
    assert [a.prompt_sha256 for a in again] == [a.prompt_sha256 for a in variable]


def test_few_shot_versions_cover_the_shots(tmp_path: Path) -> None:
    base = arms(tmp_path / "a")
    edited = arms(tmp_path / "b", train_text="edited")  # same ids and labels, other shot text
    fs = [a for a in base if a.strategy == "fs"]
    assert len(fs) == 2 and fs[0].shots != fs[1].shots
    assert fs[0].prompt_sha256 != fs[1].prompt_sha256  # each draw shows other shots
    assert [a.prompt_sha256 for a in base if a.strategy == "fs"] != [
        a.prompt_sha256 for a in edited if a.strategy == "fs"]
    assert [a.prompt_sha256 for a in base if a.strategy != "fs"] == [
        a.prompt_sha256 for a in edited if a.strategy != "fs"]  # no shots: the pool is not sent
    assert all(len(a.prompt_sha256) == 16 and int(a.prompt_sha256, 16) >= 0 for a in base)


def test_prompt_sha256_hashes_the_messages_without_the_input() -> None:
    task_cfg = TaskConfig(type="classification", instructions="Route it.", labels=("a", "b"),
                          output_schema=None, prompts=Prompts())
    template = resolve_template(task_cfg, Prompts(), fine_tuned=False, where="strategies[0]")
    task = ClassificationTask(("a", "b"))
    shot = (Example("s1", "hello", "a"),)
    v = prompt_sha256(template, "Route it.", task, shot)
    assert v == prompt_sha256(template, "Route it.", task, (Example("s1", "hello", "a"),))
    assert v != prompt_sha256(template, "Route it.", task, (Example("s1", "hello", "b"),))
    assert v != prompt_sha256(template, "Route it.", task, ())
    terse = resolve_template(task_cfg, Prompts(user="Q: {input}"), fine_tuned=False, where="s")
    assert v != prompt_sha256(terse, "Route it.", task, shot)
    per = prompt_sha256(template, "Route it.", task, (), per_example="nearest|k=2|seed=0|pool=x")
    assert per != prompt_sha256(template, "Route it.", task, (), per_example="nearest|k=2|seed=0|pool=y")
