"""The label list in the system prompt: a reader recovers exactly the labels, whatever they hold."""

from __future__ import annotations

import json

import pytest

from harness.config import Prompts, TaskConfig
from harness.strategies.prompts import DEFAULT_SYSTEM, resolve_template, system_prompt
from harness.tasks import ClassificationTask
from harness.tasks.classification import label_list

SEP = ", "


def read_labels(system: str) -> list[str]:
    """A reader of the default system prompt's list (after 'Labels: ', up to the blank line):
    items separated by ', '; an item that starts with a quote is a JSON string, any other runs
    to the next comma."""
    start = system.index("Labels: ") + len("Labels: ")
    end = system.index("\n\nAnswer with JSON only")
    text, pos, out = system[start:end], 0, []
    while True:
        if text.startswith('"', pos):
            label, pos = json.JSONDecoder().raw_decode(text, pos)
        else:
            comma = text.find(",", pos)
            stop = len(text) if comma < 0 else comma
            label, pos = text[pos:stop], stop
        out.append(label)
        if pos == len(text):
            return out
        assert text.startswith(SEP, pos), (text, pos)
        pos += len(SEP)


def prompt_for(labels: tuple[str, ...]) -> str:
    task = TaskConfig(type="classification", instructions="Route it.", labels=labels,
                      output_schema=None, prompts=Prompts())
    template = resolve_template(task, Prompts(), fine_tuned=False, where="strategies[0]")
    assert template.system == DEFAULT_SYSTEM
    return system_prompt(template, task.instructions, ClassificationTask(labels))


def test_a_label_with_a_comma_is_not_split() -> None:
    system = prompt_for(("a, b", "c"))
    assert read_labels(system) == ["a, b", "c"]
    assert "Labels: a, b, c" not in system  # the old rendering, which reads as three labels


@pytest.mark.parametrize("labels", [
    ("a, b", "c"),
    ("a,b", "c,", ",", ", "),
    ('say "hi"', '"', "back\\slash", "two\nlines", "tab\there", "\n\nAnswer"),
    ("card arrived", "card_arrival", "Rückgabe", "返品", "a:b", "[x]"),
    (" padded", "padded ", "", '", "'),
])
def test_the_reader_recovers_exactly_the_labels(labels: tuple[str, ...]) -> None:
    assert read_labels(prompt_for(labels)) == list(labels)


def test_ordinary_labels_are_written_as_they_are() -> None:
    """No quotes where none are needed: the prompt (and its tokens) as before for such labels."""
    labels = ("card_arrival", "lost or stolen card", "Rückgabe", "a:b")
    assert label_list(labels) == "card_arrival, lost or stolen card, Rückgabe, a:b"
    assert label_list(("billing", "a, b")) == 'billing, "a, b"'
    assert label_list(('say "hi"', "x\ny")) == '"say \\"hi\\"", "x\\ny"'  # JSON, one line
    assert "\n" not in label_list(("two\nlines", "x"))
