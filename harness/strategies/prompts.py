"""Prompt templates: chat messages built from a template, the task and examples."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Sequence
from dataclasses import dataclass

from harness.config import Prompts, TaskConfig
from harness.dataset import Example
from harness.errors import InputError
from harness.tasks import Task

Message = dict[str, str]

DEFAULT_SYSTEM = (
    "{instructions}\n\n"
    "Labels: {labels}\n\n"
    "Answer with JSON only, exactly in the form {output_format} where the label is one of the "
    "labels above."
)
DEFAULT_FINE_TUNED_SYSTEM = "{instructions}\nAnswer with JSON only: {output_format}"
DEFAULT_USER = "{input}"
# the default system prompt per task type (classification: DEFAULT_SYSTEM)
DEFAULT_SYSTEMS = {
    "extraction": (
        "{instructions}\n\n"
        "Answer with one JSON object only, with exactly these keys: {output_format}. "
        "Use null for anything the message does not say."
    ),
}


def _fields(name: str, task_fields: frozenset[str]) -> set[str]:
    """The placeholders a template may use: the task's fields for the system prompt."""
    if name == "user":
        return {"input"}
    if name == "fine_tuned_system":
        return {"instructions"} | ({"output_format"} & task_fields)
    return {"instructions"} | task_fields


@dataclass(frozen=True)
class PromptTemplate:
    """The resolved templates one arm uses; its hash identifies the prompt version."""

    system: str
    user: str

    @property
    def sha256(self) -> str:
        """Hash of the template text (not of the data filled in). The prompt version of an arm,
        which covers what is filled in too, is `Arm.prompt_sha256` (see `prompt_sha256`)."""
        blob = json.dumps({"system": self.system, "user": self.user}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _check_template(name: str, text: str, where: str, task_fields: frozenset[str]) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise InputError(
            f"{where}.prompts.{name}: bad template ({exc}); write {{{{ and }}}} for literal braces"
        ) from None
    allowed_fields = _fields(name, task_fields)
    unknown = fields - allowed_fields
    if unknown:
        allowed = ", ".join("{" + f + "}" for f in sorted(allowed_fields))
        raise InputError(
            f"{where}.prompts.{name}: unknown placeholder {{{sorted(unknown)[0]}}} (allowed: {allowed}; "
            f"write {{{{ and }}}} for literal braces)"
        )
    if name == "user" and "input" not in fields:
        raise InputError(f"{where}.prompts.user: the template must contain {{input}}")


def resolve_template(task: TaskConfig, overrides: Prompts, *, fine_tuned: bool, where: str,
                     task_fields: frozenset[str] = frozenset({"labels", "output_format"})
                     ) -> PromptTemplate:
    """The template an arm uses: task defaults, then the strategy's overrides.

    A bad template is reported where it was written: `where` (the strategy) for an override,
    `task` for a template of the task.
    """
    key = "fine_tuned_system" if fine_tuned else "system"
    default = DEFAULT_FINE_TUNED_SYSTEM if fine_tuned else DEFAULT_SYSTEMS.get(task.type,
                                                                             DEFAULT_SYSTEM)
    system, system_at = _pick(key, overrides, task.prompts, where, default)
    user, user_at = _pick("user", overrides, task.prompts, where, DEFAULT_USER)
    _check_template(key, system, system_at, task_fields)
    _check_template("user", user, user_at, task_fields)
    return PromptTemplate(system=system, user=user)


def _pick(name: str, overrides: Prompts, task: Prompts, where: str, default: str) -> tuple[str, str]:
    """(template, where it was written) for one template name."""
    own, inherited = getattr(overrides, name), getattr(task, name)
    if own:
        return own, where
    if inherited:
        return inherited, "task"
    return default, where


def system_prompt(template: PromptTemplate, instructions: str, task: Task) -> str:
    """The system message: the template filled with the instructions and the task's fields."""
    return template.system.format(instructions=instructions, **task.prompt_fields())


def build_messages(
    template: PromptTemplate,
    instructions: str,
    task: Task,
    shots: Sequence[Example],
    text: str,
) -> list[Message]:
    """Chat messages: system instructions, few-shot turns, then the input."""
    messages: list[Message] = [{"role": "system", "content": system_prompt(template, instructions, task)}]
    for ex in shots:
        messages.append({"role": "user", "content": template.user.format(input=ex.input)})
        messages.append({"role": "assistant", "content": task.render_target(ex.target)})
    messages.append({"role": "user", "content": template.user.format(input=text)})
    return messages


def fine_tuned_messages(template: PromptTemplate, instructions: str, task: Task,
                        text: str) -> list[Message]:
    """A fine-tuned arm's conversation for one input: the system prompt, then the user turn.

    The one rule for both sides of a fine-tune: the evaluation sends exactly these messages to
    the fine-tuned model, and each training row (`training.data`) is these messages plus the
    assistant's answer. `template` is the arm's resolved fine-tuned template (its
    `fine_tuned_system` and `user`); the user turn is `template.user` filled with `text`.
    """
    return [{"role": "system", "content": system_prompt(template, instructions, task)},
            {"role": "user", "content": template.user.format(input=text)}]


def render(messages: Sequence[Message]) -> str:
    """A readable transcript of a prompt, for reports."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


# Stands in for the example's input when hashing a prompt: the user message becomes its template.
INPUT_MARK = "{input}"


def prompt_sha256(template: PromptTemplate, instructions: str, task: Task,
                  shots: Sequence[Example], *, per_example: str | None = None) -> str:
    """The prompt version: 16 hex digits of SHA-256 over the text sent apart from the example.

    That is the rendered system prompt (template, instructions, labels and any other task field
    filled in), the shots' user and assistant turns, and the user template. `per_example`
    identifies shots chosen per input (selector, k, seed, pool), used instead of `shots`.
    """
    messages = build_messages(template, instructions, task, shots, INPUT_MARK)
    blob = json.dumps({"messages": messages, "per_example": per_example}, sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
