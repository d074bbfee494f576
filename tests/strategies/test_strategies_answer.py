"""Strategies answering examples: which calls they make, with which model and messages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_generate import FakeGenerate, GenerateCall

from harness.config import load_config
from harness.dataset import Example
from harness.model.completion import Completion
from harness.running import Plan, plan
from harness.strategies import Attempt, Call, Generate, SingleCall, Strategy, rendered_prompt
from harness.strategies.prompts import DEFAULT_FINE_TUNED_SYSTEM, DEFAULT_SYSTEM

LABELS = ["billing", "shipping", "returns"]
SYSTEM = DEFAULT_SYSTEM.format(instructions="Route it.", labels="billing, shipping, returns",
                               output_format='{"label": "<label>"}')
FT_SYSTEM = 'Route it.\nAnswer with JSON only: {"label": "<label>"}'
EXAMPLE = Example("e1", "Where is my parcel?", "shipping")


def make_plan(folder: Path, strategies: list[dict[str, Any]]) -> Plan:
    labels = LABELS
    (folder / "eval.csv").write_text("text,category\n" + "".join(
        f"eval {i},{labels[i % 3]}\n" for i in range(6)))
    (folder / "train.csv").write_text("text,category\n" + "".join(
        f"train {i},{labels[i % 3]}\n" for i in range(9)))
    cfg = {"name": "a", "task": {"type": "classification", "instructions": "Route it.", "labels": labels},
           "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text", "target": "category"},
           "models": {"m": {"provider": "openai", "model": "model-x", "api_key_env": "TEST_API_KEY"}},
           "strategies": strategies}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return plan(load_config(folder / "config.yaml"))


def answer(strategy: Strategy, example: Example, generate: Generate) -> Attempt:
    return asyncio.run(strategy.answer(example, generate))


def test_fake_generate_returns_in_order_and_records_calls() -> None:
    fake = FakeGenerate()
    first = fake.enqueue("one", finish_reason="stop", prompt_tokens=3)
    second = fake.enqueue(None, error_kind="timeout", error="slow")
    assert first == Completion(content="one", finish_reason="stop", prompt_tokens=3)
    messages = [{"role": "user", "content": "hi"}]
    assert asyncio.run(fake(messages, model_id="a")) is first
    assert asyncio.run(fake(messages, model_id="b", sample=2)) is second
    assert fake.calls == [GenerateCall(messages, "a", 0), GenerateCall(messages, "b", 2)]
    assert fake.pending == 0
    with pytest.raises(AssertionError, match="unexpected call #3 to c: nothing queued"):
        asyncio.run(fake(messages, model_id="c"))


def test_zero_shot_makes_one_call_with_the_arms_model_and_messages(tmp_path: Path) -> None:
    p = make_plan(tmp_path, [{"name": "zs", "type": "zero_shot", "model": "m"}])
    (strategy,) = p.strategies
    assert isinstance(strategy, SingleCall)
    fake = FakeGenerate()
    completion = fake.enqueue('{"label": "shipping"}', finish_reason="stop", prompt_tokens=40,
                              completion_tokens=6)
    attempt = answer(strategy, EXAMPLE, fake)
    expected_messages = [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": "Where is my parcel?"}]
    assert fake.calls == [GenerateCall(expected_messages, "model-x", 0)]
    assert strategy.messages(EXAMPLE) == expected_messages
    assert attempt == Attempt((Call("model-x", completion),))
    assert attempt.final.completion is completion
    assert p.task.score(attempt.final.completion.content, attempt.final.completion.finish_reason,
                        EXAMPLE.target).correct
    assert rendered_prompt(strategy, EXAMPLE) == f"[system]\n{SYSTEM}\n\n[user]\nWhere is my parcel?"


def test_a_failed_call_is_returned_as_it_came(tmp_path: Path) -> None:
    (strategy,) = make_plan(tmp_path, [{"name": "zs", "type": "zero_shot", "model": "m"}]).strategies
    fake = FakeGenerate()
    failure = fake.enqueue(None, error_kind="timeout", error="took too long", attempts=4)
    attempt = answer(strategy, EXAMPLE, fake)
    assert attempt.calls == (Call("model-x", failure),)
    assert len(fake.calls) == 1


def test_few_shot_arms_show_their_shots_as_turns(tmp_path: Path) -> None:
    p = make_plan(tmp_path, [{"name": "fs", "type": "few_shot", "model": "m", "shots": [1, 3], "draws": 2}])
    assert [s.arm.key for s in p.strategies] == ["fs|k=1|draw=0", "fs|k=1|draw=1", "fs|k=3|draw=0",
                                                 "fs|k=3|draw=1"]
    for strategy in p.strategies:
        arm = strategy.arm
        assert len(arm.shots) == arm.k
        fake = FakeGenerate()
        completion = fake.enqueue('{"label": "billing"}', finish_reason="stop")
        attempt = answer(strategy, EXAMPLE, fake)
        turns = [turn for ex in arm.shots for turn in (
            {"role": "user", "content": ex.input},
            {"role": "assistant", "content": p.task.render_target(ex.target)})]
        expected_messages = [{"role": "system", "content": SYSTEM}, *turns,
                             {"role": "user", "content": "Where is my parcel?"}]
        assert fake.calls == [GenerateCall(expected_messages, "model-x", arm.draw)]
        assert attempt == Attempt((Call("model-x", completion),))
        assert all(t["content"].startswith('{"label": "') for t in turns if t["role"] == "assistant")
    # the shots are the arm's: the same for every example
    other = Example("e2", "Refund me", "returns")
    s = p.strategies[2]
    assert s.messages(other)[1:-1] == s.messages(EXAMPLE)[1:-1]
    assert s.messages(other)[-1] == {"role": "user", "content": "Refund me"}


def test_the_fine_tuned_arm_uses_the_fine_tuned_system_template(tmp_path: Path) -> None:
    p = make_plan(tmp_path, [
        {"name": "ft", "type": "fine_tuned", "model": "m", "fine_tuned_model": "ft:model-x:org:route:1"},
        {"name": "ft-custom", "type": "fine_tuned", "model": "m", "fine_tuned_model": "ft:model-x:org:r:2",
         "prompts": {"fine_tuned_system": "FT: {instructions}", "user": "Q: {input}"}},
    ])
    ft, custom = p.strategies
    assert ft.arm.template.system == DEFAULT_FINE_TUNED_SYSTEM and ft.arm.unavailable is None
    fake = FakeGenerate()
    first = fake.enqueue('{"label": "shipping"}', finish_reason="stop")
    second = fake.enqueue('{"label": "billing"}', finish_reason="stop")
    assert answer(ft, EXAMPLE, fake) == Attempt((Call("ft:model-x:org:route:1", first),))
    assert answer(custom, EXAMPLE, fake) == Attempt((Call("ft:model-x:org:r:2", second),))
    assert fake.calls == [
        GenerateCall([{"role": "system", "content": FT_SYSTEM},
                      {"role": "user", "content": "Where is my parcel?"}], "ft:model-x:org:route:1", 0),
        GenerateCall([{"role": "system", "content": "FT: Route it."},
                      {"role": "user", "content": "Q: Where is my parcel?"}], "ft:model-x:org:r:2", 0),
    ]
    assert "billing, shipping" not in FT_SYSTEM  # a fine-tuned model learned the labels


def test_a_missing_local_fine_tune_is_an_unavailable_arm(tmp_path: Path) -> None:
    p = make_plan(tmp_path, [{"name": "ft", "type": "fine_tuned", "model": "m",
                              "fine_tuned_model": "local-ft:nope"}])
    (strategy,) = p.strategies
    assert strategy.arm.unavailable == ("fine-tuned model 'local-ft:nope' is not available; create it with: "
                                        f"harness finetune {p.cfg.path} --strategy ft")
    assert strategy.arm.model_id == "local-ft:nope"
    assert strategy.messages(EXAMPLE)[0] == {"role": "system", "content": FT_SYSTEM}


def test_attempt_final_is_the_last_call() -> None:
    a, b, c = (Completion(content=str(i)) for i in range(3))
    attempt = Attempt((Call("draft", a), Call("critic", b), Call("final", c)))
    assert attempt.final == Call("final", c)
    assert Attempt((Call("only", a),)).final.completion is a
    with pytest.raises(IndexError):
        _ = Attempt(()).final
