"""Prompts: the system message, few-shot turns, template overrides, the prompt hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import Config, Prompts, TaskConfig, load_config
from harness.dataset import Example, load_data
from harness.errors import InputError
from harness.running import Plan, plan
from harness.strategies.prompts import (
    DEFAULT_FINE_TUNED_SYSTEM,
    DEFAULT_SYSTEM,
    DEFAULT_USER,
    PromptTemplate,
    build_messages,
    render,
    resolve_template,
    system_prompt,
)
from harness.tasks import ClassificationTask, make_task
from harness.tasks.classification import OUTPUT_FORMAT

LABELS = ("billing", "shipping", "returns")
TASK = TaskConfig(type="classification", instructions="Route the support message.", labels=LABELS,
                  output_schema=None, prompts=Prompts())
CLS = ClassificationTask(LABELS)
INSTRUCTIONS = TASK.instructions
SHOTS = (Example("s1", "Refund the double charge", "billing"), Example("s2", "Parcel is late", "shipping"))


def template(task: TaskConfig = TASK, overrides: Prompts | None = None, *,
             fine_tuned: bool = False) -> PromptTemplate:
    return resolve_template(task, overrides or Prompts(), fine_tuned=fine_tuned, where="strategies[0]")


def test_system_message_has_instructions_label_set_and_output_format() -> None:
    messages = build_messages(template(), INSTRUCTIONS, CLS, (), "Where is my parcel?")
    system = messages[0]
    assert system["role"] == "system"
    assert "Route the support message." in system["content"]
    assert "billing, shipping, returns" in system["content"]
    assert OUTPUT_FORMAT in system["content"]
    assert messages[1:] == [{"role": "user", "content": "Where is my parcel?"}]


def test_few_shot_examples_are_user_and_assistant_turns() -> None:
    messages = build_messages(template(), INSTRUCTIONS, CLS, SHOTS, "Where is my parcel?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == "Refund the double charge"
    assert json.loads(messages[2]["content"]) == {"label": "billing"}
    assert messages[3]["content"] == "Parcel is late"
    assert messages[4]["content"] == CLS.render_target("shipping") == '{"label": "shipping"}'
    assert messages[-1]["content"] == "Where is my parcel?"


def test_render_target_keeps_non_ascii_labels() -> None:
    assert CLS.render_target("rückgabe") == '{"label": "rückgabe"}'


def test_inputs_with_braces_are_not_template_fields() -> None:
    text = "my {input} and {labels} and {0} and {"
    messages = build_messages(template(), INSTRUCTIONS, CLS, (Example("x", text, "billing"),), text)
    assert messages[1]["content"] == messages[-1]["content"] == text


def test_templates_come_from_task_then_strategy() -> None:
    prompts = Prompts(system="Task: {instructions}", user="Q: {input}")
    task = TaskConfig(**{**TASK.__dict__, "prompts": prompts})
    assert template(task).system == "Task: {instructions}"
    assert template(task).user == "Q: {input}"
    own = template(task, Prompts(user="Message:\n{input}"))
    assert own.system == "Task: {instructions}" and own.user == "Message:\n{input}"
    messages = build_messages(own, task.instructions, CLS, SHOTS[:1], "hi")
    assert messages[0]["content"] == "Task: Route the support message."
    assert messages[1]["content"] == "Message:\nRefund the double charge"
    assert messages[-1]["content"] == "Message:\nhi"


def test_defaults_and_the_fine_tuned_system_prompt() -> None:
    assert (template().system, template().user) == (DEFAULT_SYSTEM, DEFAULT_USER)
    ft = template(fine_tuned=True)
    system = build_messages(ft, INSTRUCTIONS, CLS, (), "x")[0]["content"]
    assert "Route the support message." in system and OUTPUT_FORMAT in system
    assert "billing, shipping" not in system  # a fine-tuned model learned the labels
    custom = template(overrides=Prompts(fine_tuned_system="FT {instructions}"), fine_tuned=True)
    assert custom.system == "FT {instructions}"


def test_prompt_hash_changes_with_the_template_only() -> None:
    base = template()
    assert base.sha256 == template().sha256
    assert len(base.sha256) == 16
    assert template(overrides=Prompts(user="Q: {input}")).sha256 != base.sha256
    assert template(overrides=Prompts(system=DEFAULT_SYSTEM + " Be brief.")).sha256 != base.sha256
    other_task = TaskConfig(**{**TASK.__dict__, "instructions": "Something else.", "labels": ("a", "b")})
    assert template(other_task).sha256 == base.sha256  # the filled-in values are not the template


@pytest.mark.parametrize("prompts, message", [
    (Prompts(user="Message: {text}"),
     "strategies[0].prompts.user: unknown placeholder {text} (allowed: {input}"),
    (Prompts(user="Message"), "strategies[0].prompts.user: the template must contain {input}"),
    (Prompts(system="{instructions} {input}"),
     "strategies[0].prompts.system: unknown placeholder {input} (allowed: {instructions}, {labels}, "
     "{output_format}"),
    (Prompts(system='Answer {"label": x}'),
     "strategies[0].prompts.system: unknown placeholder {\"label\"}"),
    (Prompts(system="Answer {"),
     "strategies[0].prompts.system: bad template (Single '{' encountered in format string); write {{"),
    (Prompts(user="{input.upper}"), "unknown placeholder {input.upper}"),
    (Prompts(user="{}"), "unknown placeholder {}"),
])
def test_bad_templates(prompts: Prompts, message: str) -> None:
    with pytest.raises(InputError) as info:
        template(overrides=prompts)
    assert message in str(info.value)


def test_a_bad_task_template_is_reported_at_task() -> None:
    task = TaskConfig(**{**TASK.__dict__, "prompts": Prompts(user="Message: {text}")})
    with pytest.raises(InputError, match=r"^task\.prompts\.user: unknown placeholder \{text\}"):
        template(task)
    # a strategy that overrides the bad template is fine
    assert template(task, Prompts(user="{input}")).user == "{input}"


def test_the_fine_tuned_system_template_has_its_own_placeholders() -> None:
    with pytest.raises(InputError, match=r"prompts\.fine_tuned_system: unknown placeholder \{labels\}"):
        template(overrides=Prompts(fine_tuned_system="{labels}"), fine_tuned=True)


def test_output_schema_default_and_from_the_config() -> None:
    schema = make_task(TASK, LABELS).output_schema()
    assert schema == {"type": "object", "properties": {"label": {"type": "string", "enum": list(LABELS)}},
                      "required": ["label"], "additionalProperties": False}
    custom = {"type": "object", "properties": {"label": {"type": "string"}, "why": {"type": "string"}}}
    with_custom = TaskConfig(**{**TASK.__dict__, "output_schema": custom})
    assert make_task(with_custom, LABELS).output_schema() == custom


def test_system_prompt_fills_the_task_fields() -> None:
    assert system_prompt(template(), INSTRUCTIONS, CLS) == DEFAULT_SYSTEM.format(
        instructions="Route the support message.", labels="billing, shipping, returns",
        output_format='{"label": "<label>"}')
    assert system_prompt(template(fine_tuned=True), INSTRUCTIONS, CLS) == (
        'Route the support message.\nAnswer with JSON only: {"label": "<label>"}')
    assert template(fine_tuned=True).system == DEFAULT_FINE_TUNED_SYSTEM


def test_render_is_a_readable_transcript() -> None:
    text = render(build_messages(template(), INSTRUCTIONS, CLS, SHOTS[:1], "hi"))
    assert text.startswith("[system]\nRoute the support message.")
    assert text.endswith('\n\n[user]\nRefund the double charge\n\n[assistant]\n{"label": "billing"}'
                         '\n\n[user]\nhi')


# --- through a config and a plan ----------------------------------------------------------------


def _config(folder: Path, strategies: list[dict[str, Any]], task_prompts: dict[str, str] | None = None,
            eval_rows: int = 4) -> Config:
    folder.mkdir(parents=True, exist_ok=True)
    labels = ["billing", "shipping"]
    (folder / "eval.csv").write_text("text,category\n" + "".join(
        f"eval {i},{labels[i % 2]}\n" for i in range(eval_rows)))
    (folder / "train.csv").write_text("text,category\n" + "".join(
        f"train {i},{labels[i % 2]}\n" for i in range(6)))
    task: dict[str, Any] = {"type": "classification", "instructions": "Route it.", "labels": labels}
    if task_prompts:
        task["prompts"] = task_prompts
    cfg = {"name": "p", "task": task,
           "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text", "target": "category"},
           "models": {"m": {"provider": "openai", "model": "x", "api_key_env": "TEST_API_KEY"}},
           "strategies": strategies}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return load_config(folder / "config.yaml")


def test_template_overrides_per_strategy_in_a_plan(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [
        {"name": "plain", "type": "zero_shot", "model": "m"},
        {"name": "terse", "type": "zero_shot", "model": "m", "prompts": {"user": "Msg: {input}"}},
        {"name": "fs", "type": "few_shot", "model": "m", "shots": 2},
    ], task_prompts={"system": "Do this: {instructions} ({labels})"})
    p = plan(cfg)
    arms = [st.arm for st in p.strategies]
    plain, terse, fs = arms
    assert plain.template.user == fs.template.user == "{input}"
    assert terse.template.user == "Msg: {input}"
    assert {a.template.system for a in arms} == {"Do this: {instructions} ({labels})"}
    assert plain.template.sha256 == fs.template.sha256 != terse.template.sha256
    messages = p.strategies[2].messages(Example("e", "hello", "billing"))
    assert messages[0]["content"] == "Do this: Route it. (billing, shipping)"
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert len(fs.shots) == 2
    assert messages[1:5] == [turn for ex in fs.shots for turn in (
        {"role": "user", "content": ex.input},
        {"role": "assistant", "content": p.task.render_target(ex.target)})]
    assert messages[-1] == {"role": "user", "content": "hello"}
    assert p.strategies[1].messages(Example("e", "hello", "billing"))[1:] == [
        {"role": "user", "content": "Msg: hello"}]


def test_a_bad_strategy_template_is_caught_by_the_plan_with_its_index(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [{"name": "a", "type": "zero_shot", "model": "m"},
                             {"name": "b", "type": "zero_shot", "model": "m", "prompts": {"user": "{msg}"}}])
    with pytest.raises(InputError, match=r"^strategies\[1\]\.prompts\.user: unknown placeholder \{msg\}"):
        plan(cfg)


def test_prompt_hash_does_not_change_when_the_data_does(tmp_path: Path) -> None:
    strategies = [{"name": "zs", "type": "zero_shot", "model": "m"},
                  {"name": "fs", "type": "few_shot", "model": "m", "shots": 2}]
    small = plan(_config(tmp_path / "a", strategies, eval_rows=4))
    large = plan(_config(tmp_path / "b", strategies, eval_rows=10))
    assert small.data.sha256 != large.data.sha256
    def hashes(p: Plan) -> list[str]:
        return [s.arm.template.sha256 for s in p.strategies]

    assert hashes(small) == hashes(large)
    assert load_data(small.cfg).eval != load_data(large.cfg).eval
