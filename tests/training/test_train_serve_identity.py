"""Train/serve identity: a fine-tune's training rows are, turn for turn, what its evaluation sends.

For every template a config can set for a fine-tuned arm (task `prompts.user` and
`prompts.fine_tuned_system`, the same on the fine_tuned strategy, and the defaults), the system
and user turns of each training row built by `build_training_data` must equal the messages the
real strategy object of the plan sends to `generate` for the same example; the row adds only
the assistant's answer. And the leakage check compares raw inputs, not templated user turns.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from strategies.fake_generate import FakeGenerate  # tests/strategies: tests/ is on sys.path

from harness.config import load_config
from harness.dataset import Example, normalise
from harness.errors import InputError
from harness.running import Plan, plan
from harness.strategies import FineTunedCall, Strategy, is_fine_tuned
from harness.strategies.prompts import DEFAULT_FINE_TUNED_SYSTEM, fine_tuned_messages
from harness.training.data import CONVERSATION_RULE, build_training_data, validate_training_data

LABELS = ["billing", "shipping", "returns"]
FT_ID = "ft:model-x:org:route:1"
CUSTOMER = "Customer message: {input}"

# (task.prompts, the fine_tuned strategy's prompts, what the user turn of "X" must be)
CASES: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    "defaults": ({}, {}, "X"),
    "task user": ({"user": CUSTOMER}, {}, "Customer message: X"),
    "task fine_tuned_system": ({"fine_tuned_system": "Task FT: {instructions} {output_format}"},
                               {}, "X"),
    "task system only": ({"system": "Prompted: {instructions} ({labels})"}, {}, "X"),
    "strategy user": ({}, {"user": "Q: {input}"}, "Q: X"),
    "strategy fine_tuned_system": ({}, {"fine_tuned_system": "Own FT: {instructions}"}, "X"),
    "strategy over task": (
        {"user": CUSTOMER, "fine_tuned_system": "Task FT: {instructions}"},
        {"user": "<<{input}>>", "fine_tuned_system": "Own FT: {instructions} {output_format}"},
        "<<X>>"),
    "task user, strategy system": ({"user": CUSTOMER}, {"fine_tuned_system": "Own: {instructions}"},
                                   "Customer message: X"),
}


def _classification(tmp: Path, task_prompts: dict[str, str], ft_prompts: dict[str, str]) -> Path:
    (tmp / "eval.csv").write_text("text,category\n" + "".join(
        f"Should eval message {i} be {LABELS[i % 3]}?,{LABELS[i % 3]}\n" for i in range(6)))
    (tmp / "train.csv").write_text("text,category\n" + "".join(
        f"Should my cash withdrawal {i} still be pending?,{LABELS[i % 3]}\n" for i in range(24)))
    task: dict[str, Any] = {"type": "classification", "instructions": "Route it.", "labels": LABELS}
    return _write(tmp, task, task_prompts, ft_prompts, "csv", "category")


def _extraction(tmp: Path, task_prompts: dict[str, str], ft_prompts: dict[str, str]) -> Path:
    schema = {"type": "object", "properties": {"name": {"type": ["string", "null"]}},
              "required": ["name"], "additionalProperties": False}
    (tmp / "schema.json").write_text(json.dumps(schema))
    for split, n in (("eval", 4), ("train", 12)):
        with open(tmp / f"{split}.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"text": f"{split} booking {i} for Pat",
                                    "slots": {"name": "Pat" if i % 2 else None}}) + "\n")
    task: dict[str, Any] = {"type": "extraction", "instructions": "Extract the booking.",
                            "output_schema": "schema.json"}
    return _write(tmp, task, task_prompts, ft_prompts, "jsonl", "slots")


def _write(tmp: Path, task: dict[str, Any], task_prompts: dict[str, str],
           ft_prompts: dict[str, str], ext: str, target: str) -> Path:
    if task_prompts:
        task["prompts"] = task_prompts
    ft: dict[str, Any] = {"name": "ft", "type": "fine_tuned", "model": "m", "fine_tuned_model": FT_ID}
    if ft_prompts:
        ft["prompts"] = ft_prompts
    cfg = {"name": "identity", "task": task,
           "dataset": {"eval": f"eval.{ext}", "train": f"train.{ext}", "input": "text",
                       "target": target},
           "models": {"m": {"provider": "openai", "model": "model-x", "api_key_env": "TEST_API_KEY"}},
           "strategies": [{"name": "zs", "type": "zero_shot", "model": "m"}, ft],
           "finetune": {"seed": 3}}
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tmp / "config.yaml"


def _fine_tuned_arm(p: Plan) -> Strategy:
    (ft,) = [s for s in p.strategies if is_fine_tuned(s.arm.type)]
    assert ft.arm.model_id == FT_ID and ft.arm.unavailable is None
    return ft


def _sent(strategy: Strategy, example: Example, answer: str) -> list[dict[str, str]]:
    """The messages the evaluation sends for `example`, captured from a scripted model."""
    fake = FakeGenerate()
    fake.enqueue(answer, finish_reason="stop")
    attempt = asyncio.run(strategy.answer(example, fake))
    (call,) = fake.calls
    assert call.model_id == FT_ID and attempt.final.completion.content == answer
    return call.messages


def _assert_identity(p: Plan) -> None:
    cfg = p.cfg
    ft = _fine_tuned_arm(p)
    by_input = {ex.input: ex for ex in p.data.train}
    for td in (build_training_data(cfg, cfg.strategy("ft"), p.data, p.task),
               build_training_data(cfg, cfg.strategy("ft"), p.data)):  # distill's and finetune's
        rows = td.train + td.validation
        assert len(rows) == len(td.inputs) == len(p.data.train)
        for row, raw in zip(rows, td.inputs, strict=True):
            example = by_input[raw]
            *prompt, answer = row["messages"]
            assert answer == {"role": "assistant", "content": p.task.render_target(example.target)}
            assert prompt == _sent(ft, example, answer["content"])
            assert prompt == ft.messages(example)  # what the report shows, too


@pytest.mark.parametrize("case", list(CASES))
def test_training_rows_are_what_the_fine_tuned_arm_is_sent(tmp_path: Path, case: str) -> None:
    task_prompts, ft_prompts, user_of_x = CASES[case]
    p = plan(load_config(_classification(tmp_path, task_prompts, ft_prompts)))
    _assert_identity(p)
    ft = _fine_tuned_arm(p)
    x = Example("x", "X", "billing")
    system, user = ft.messages(x)
    assert user == {"role": "user", "content": user_of_x}
    expected_system = ft_prompts.get("fine_tuned_system") or task_prompts.get(
        "fine_tuned_system") or DEFAULT_FINE_TUNED_SYSTEM
    assert ft.arm.template.system == expected_system
    assert system["content"] == expected_system.format(
        instructions="Route it.", output_format='{"label": "<label>"}')
    # the prompted arm keeps its own system prompt: `system` never reaches the fine-tuned arm
    zs = next(s for s in p.strategies if s.arm.type == "zero_shot")
    assert zs.messages(x)[0] != system


@pytest.mark.parametrize("case", ["defaults", "task user", "strategy over task"])
def test_training_rows_are_what_the_fine_tuned_arm_is_sent_extraction(tmp_path: Path,
                                                                      case: str) -> None:
    task_prompts, ft_prompts, user_of_x = CASES[case]
    p = plan(load_config(_extraction(tmp_path, task_prompts, ft_prompts)))
    _assert_identity(p)
    assert _fine_tuned_arm(p).messages(Example("x", "X", {"name": None}))[1]["content"] == user_of_x


def test_the_customer_message_example_of_the_issue(tmp_path: Path) -> None:
    p = plan(load_config(_classification(tmp_path, {"user": CUSTOMER}, {})))
    td = build_training_data(p.cfg, p.cfg.strategy("ft"), p.data, p.task)
    users = [r["messages"][1]["content"] for r in td.train + td.validation]
    assert "Customer message: Should my cash withdrawal 0 still be pending?" in users
    assert all(u.startswith("Customer message: Should my cash withdrawal ") for u in users)
    assert CONVERSATION_RULE == 2  # rule 1 sent the raw input as the user turn


def test_one_function_builds_the_fine_tuned_conversation(tmp_path: Path) -> None:
    p = plan(load_config(_classification(tmp_path, {"user": CUSTOMER}, {})))
    ft = _fine_tuned_arm(p)
    assert isinstance(ft, FineTunedCall)
    x = Example("x", "hello", "billing")
    assert ft.messages(x) == fine_tuned_messages(ft.arm.template, "Route it.", p.task, "hello")
    with pytest.raises(ValueError, match="no few-shot examples"):
        ft.messages(x, (p.data.train[0],))


def test_leakage_is_found_by_raw_input_under_a_user_template(tmp_path: Path) -> None:
    p = plan(load_config(_classification(tmp_path, {"user": CUSTOMER}, {})))
    evals = {normalise(ex.input) for ex in p.data.eval}
    td = build_training_data(p.cfg, p.cfg.strategy("ft"), p.data, p.task)
    validate_training_data(td, p.data.labels, evals, p.task)  # clean: no false alarm
    # a train pool holding an eval input (as a teacher's labels may): the templated user turn
    # is not the input, but the input is still leaked
    leaked = replace(p.data.eval[0], input="  " + p.data.eval[0].input.upper() + " ")
    data = replace(p.data, train=(*p.data.train, leaked))
    td = build_training_data(p.cfg, p.cfg.strategy("ft"), data, p.task)
    assert not any(normalise(r["messages"][1]["content"]) in evals
                   for r in td.train + td.validation)
    with pytest.raises(InputError, match=r"example \d+ also appears in the eval set"):
        validate_training_data(td, p.data.labels, evals, p.task)


def test_a_templated_user_turn_equal_to_an_eval_input_is_not_leakage(tmp_path: Path) -> None:
    """Only the raw inputs count: an eval input that happens to read like a templated turn of
    another input is a different example."""
    p = plan(load_config(_classification(tmp_path, {"user": CUSTOMER}, {})))
    td = build_training_data(p.cfg, p.cfg.strategy("ft"), p.data, p.task)
    evals = {normalise(td.train[0]["messages"][1]["content"])}
    validate_training_data(td, p.data.labels, evals, p.task)
