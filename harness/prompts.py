"""Prompt templates and the task's output schema: chat messages built from examples."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.config import Prompts, TaskConfig
from harness.dataset import Example
from harness.errors import InputError

Message = dict[str, str]

DEFAULT_SYSTEM = (
    "{instructions}\n\n"
    "Labels: {labels}\n\n"
    "Answer with JSON only, exactly in the form {output_format} where the label is one of the "
    "labels above."
)
DEFAULT_FINE_TUNED_SYSTEM = "{instructions}\nAnswer with JSON only: {output_format}"
DEFAULT_USER = "{input}"
OUTPUT_FORMAT = '{"label": "<label>"}'

_FIELDS = {
    "system": {"instructions", "labels", "output_format"},
    "fine_tuned_system": {"instructions", "output_format"},
    "user": {"input"},
}


@dataclass(frozen=True)
class PromptTemplate:
    """The resolved templates one arm uses; its hash identifies the prompt version."""

    system: str
    user: str

    @property
    def sha256(self) -> str:
        """Hash of the template text (not of the data filled in)."""
        blob = json.dumps({"system": self.system, "user": self.user}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _check_template(name: str, text: str, where: str) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise InputError(
            f"{where}.prompts.{name}: bad template ({exc}); write {{{{ and }}}} for literal braces"
        ) from None
    unknown = fields - _FIELDS[name]
    if unknown:
        allowed = ", ".join("{" + f + "}" for f in sorted(_FIELDS[name]))
        raise InputError(
            f"{where}.prompts.{name}: unknown placeholder {{{sorted(unknown)[0]}}} (allowed: {allowed}; "
            f"write {{{{ and }}}} for literal braces)"
        )
    if name == "user" and "input" not in fields:
        raise InputError(f"{where}.prompts.user: the template must contain {{input}}")


def resolve_template(task: TaskConfig, overrides: Prompts, *, fine_tuned: bool, where: str) -> PromptTemplate:
    """The template an arm uses: task defaults, then the strategy's overrides.

    A bad template is reported where it was written: `where` (the strategy) for an override,
    `task` for a template of the task.
    """
    key = "fine_tuned_system" if fine_tuned else "system"
    default = DEFAULT_FINE_TUNED_SYSTEM if fine_tuned else DEFAULT_SYSTEM
    system, system_at = _pick(key, overrides, task.prompts, where, default)
    user, user_at = _pick("user", overrides, task.prompts, where, DEFAULT_USER)
    _check_template(key, system, system_at)
    _check_template("user", user, user_at)
    return PromptTemplate(system=system, user=user)


def _pick(name: str, overrides: Prompts, task: Prompts, where: str, default: str) -> tuple[str, str]:
    """(template, where it was written) for one template name."""
    own, inherited = getattr(overrides, name), getattr(task, name)
    if own:
        return own, where
    if inherited:
        return inherited, "task"
    return default, where


def output_schema(task: TaskConfig, labels: Sequence[str]) -> dict[str, Any]:
    """The JSON Schema every answer must match (the config's, or `{"label": <one of labels>}`)."""
    if task.output_schema is not None:
        return task.output_schema
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def answer(label: str) -> str:
    """The exact assistant output for a label (used for few-shot turns and fine-tuning data)."""
    return json.dumps({"label": label}, ensure_ascii=False)


def build_messages(
    template: PromptTemplate,
    task: TaskConfig,
    labels: Sequence[str],
    shots: Sequence[Example],
    text: str,
) -> list[Message]:
    """Chat messages: system instructions, few-shot turns, then the input."""
    system = template.system.format(
        instructions=task.instructions, labels=", ".join(labels), output_format=OUTPUT_FORMAT
    )
    messages: list[Message] = [{"role": "system", "content": system}]
    for ex in shots:
        messages.append({"role": "user", "content": template.user.format(input=ex.input)})
        messages.append({"role": "assistant", "content": answer(ex.target)})
    messages.append({"role": "user", "content": template.user.format(input=text)})
    return messages


def render(messages: Sequence[Message]) -> str:
    """A readable transcript of a prompt, for reports."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
