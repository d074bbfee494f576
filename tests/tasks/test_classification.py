"""Classification: scoring one answer, the majority vote, per-class figures and macro-F1."""

from __future__ import annotations

from typing import Any

import pytest

from harness.config import Prompts, TaskConfig
from harness.tasks import ClassificationTask, Score, make_task, task_from_meta, task_problems
from harness.tasks.classification import OUTPUT_FORMAT, default_schema, per_class

LABELS = ("billing", "shipping", "returns", "account")
TASK = ClassificationTask(LABELS)
ENUM = "['billing', 'shipping', 'returns', 'account']"


def ok(prediction: str, correct: bool) -> Score:
    return Score(prediction, correct, True, True, None, None)


# --- one answer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("output, finish_reason, expected", [
    # valid and right / valid and wrong
    ('{"label": "billing"}', "stop", ok("billing", True)),
    ('  {"label": "billing"}\n', "stop", ok("billing", True)),
    ('{"label": "shipping"}', "stop", ok("shipping", False)),
    # fenced JSON is parsed (with or without a language tag)
    # one surrounding fence is tolerated, and counted as a lenient parse
    ('```json\n{"label": "billing"}\n```', "stop",
     Score("billing", True, True, True, None, None, lenient=True)),
    ('```\n{"label": "returns"}\n```', "stop",
     Score("returns", False, True, True, None, None, lenient=True)),
    # not JSON
    ("billing", "stop", Score(None, False, False, False, "invalid_json", "not JSON (Expecting value)")),
    ('```json\n{"label": "billing"}', "stop",
     Score(None, False, False, False, "invalid_json", "not JSON (Expecting value)")),
    # cut at max_tokens: unparsable, or parsable but never counted as right
    ('{"label": "bil', "length", Score(None, False, False, False, "truncated", "output cut at max_tokens")),
    ('{"label": "billing"}', "length",
     Score("billing", False, True, False, "truncated", "output cut at max_tokens")),
    # parsable but against the schema
    ('{"label": "refunds"}', "stop",
     Score("refunds", False, True, False, "schema", f"'refunds' is not one of {ENUM}")),
    ('{"label": "billing", "why": "charged twice"}', "stop",
     Score("billing", False, True, False, "schema",
           "Additional properties are not allowed ('why' was unexpected)")),
    ('["billing"]', "stop", Score(None, False, True, False, "schema", "['billing'] is not of type 'object'")),
    ('{"label": 3}', "stop", Score(None, False, True, False, "schema", "3 is not of type 'string'")),
    ("{}", "stop", Score(None, False, True, False, "schema", "'label' is a required property")),
])
def test_score_one_answer(output: str | None, finish_reason: str | None, expected: Score) -> None:
    assert TASK.score(output, finish_reason, "billing") == expected


@pytest.mark.parametrize("output", [None, "", "   \n\t"])
def test_an_empty_answer(output: str | None) -> None:
    assert TASK.score(output, "stop", "billing") == Score(None, False, False, False, "empty",
                                                          "the answer was empty")


def test_a_configured_schema_is_what_answers_are_checked_against() -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}, "why": {"type": "string"}},
              "required": ["label", "why"]}
    task = ClassificationTask(LABELS, schema)
    assert task.output_schema() == schema
    answer = '{"label": "billing", "why": "double charge"}'
    assert task.score(answer, "stop", "billing") == ok("billing", True)
    assert task.score('{"label": "billing"}', "stop", "billing") == Score(
        "billing", False, True, False, "schema", "'why' is a required property")


def test_render_target_round_trips_through_score_as_correct() -> None:
    labels = (*LABELS, "rückgabe", 'say "hi"')
    task = ClassificationTask(labels)
    for label in labels:
        text = task.render_target(label)
        assert task.score(text, "stop", label) == ok(label, True)
        for other in labels:
            if other != label:
                assert task.score(text, "stop", other) == ok(label, False)
    assert task.render_target("rückgabe") == '{"label": "rückgabe"}'


def test_output_schema_and_prompt_fields() -> None:
    schema = TASK.output_schema()
    assert schema == default_schema(LABELS) == {
        "type": "object", "properties": {"label": {"type": "string", "enum": list(LABELS)}},
        "required": ["label"], "additionalProperties": False}
    schema["properties"] = {}  # a copy: the task's schema does not change
    assert TASK.output_schema() == default_schema(LABELS)
    assert dict(TASK.prompt_fields()) == {"labels": "billing, shipping, returns, account",
                                          "output_format": OUTPUT_FORMAT}
    assert OUTPUT_FORMAT == '{"label": "<label>"}'
    assert TASK.name == "classification"


# --- vote ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("predictions, expected", [
    (["shipping", "billing", "shipping"], "shipping"),
    (["returns"], "returns"),
    (["shipping", None, None, None], "shipping"),  # no answer is not a vote
    ([None, None], None),
    ([], None),
    # ties go to the label listed first, whatever order the votes came in
    (["shipping", "billing"], "billing"),
    (["billing", "shipping"], "billing"),
    (["account", "returns", "account", "returns"], "returns"),
    (["account", "returns", "shipping", "billing", "account", "shipping"], "shipping"),
    # a label outside the set loses a tie to any listed label; two such: alphabetical
    (["refunds", "account"], "account"),
    (["zz", "aa"], "aa"),
    (["refunds", "refunds", "account"], "refunds"),
])
def test_vote(predictions: list[Any], expected: Any) -> None:
    assert TASK.vote(predictions) == expected


def test_vote_tie_follows_the_task_label_order() -> None:
    assert ClassificationTask(("b", "a")).vote(["a", "b"]) == "b"
    assert ClassificationTask(("a", "b")).vote(["b", "a"]) == "a"


# --- per class and macro-F1 ---------------------------------------------------------------------


EXPECTED = ["billing", "billing", "billing", "shipping", "shipping", "returns"]
PREDICTED = ["billing", "billing", "shipping", "shipping", None, "billing"]


def test_breakdown_against_hand_computed_values() -> None:
    # billing: tp 2, fp 1 (a returns), fn 1; shipping: tp 1, fp 1, fn 1 (no answer); returns: fn 1
    table = TASK.breakdown(EXPECTED, PREDICTED)
    assert list(table) == ["billing", "shipping", "returns"]  # label order; account never occurs
    assert table["billing"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert table["shipping"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert table["returns"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert table == per_class(EXPECTED, PREDICTED, LABELS)
    assert TASK.quality(EXPECTED, PREDICTED) == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)  # 7/18


def test_a_label_only_predicted_counts_in_macro_f1() -> None:
    task = ClassificationTask(("a", "b", "c"))
    table = task.breakdown(["a", "a"], ["a", "b"])
    assert list(table) == ["a", "b"]
    assert table["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert table["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert task.quality(["a", "a"], ["a", "b"]) == pytest.approx(1 / 3)


def test_a_prediction_outside_the_labels_is_a_miss_but_not_a_class() -> None:
    table = TASK.breakdown(["billing", "billing"], ["refunds", "billing"])
    assert list(table) == ["billing"]
    assert table["billing"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert TASK.quality(["billing", "billing"], ["refunds", "billing"]) == pytest.approx(2 / 3)


def test_perfect_empty_and_mismatched_inputs() -> None:
    assert TASK.quality(EXPECTED, EXPECTED) == 1.0
    assert TASK.quality([], []) == 0.0
    assert TASK.breakdown([], []) == {}
    with pytest.raises(ValueError):
        TASK.breakdown(["billing"], [])


# --- from a config and from a run's metadata ----------------------------------------------------


def test_make_task_task_from_meta_and_task_problems() -> None:
    cfg = TaskConfig("classification", "Route it.", LABELS, None, Prompts())
    assert make_task(cfg, ("x", "y")) == ClassificationTask(("x", "y"))  # the data's labels
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    assert task_from_meta("classification", LABELS, schema) == ClassificationTask(LABELS, schema)
    assert task_problems(cfg) == []
    assert task_problems(TaskConfig("classification", "", LABELS, schema, Prompts())) == []
    for bad in ({"type": "object", "properties": {"category": {"type": "string"}}},
                {"type": "object"}, {"type": "object", "properties": ["label"]}):
        assert task_problems(TaskConfig("classification", "", LABELS, bad, Prompts())) == [
            "task.output_schema: a classification schema needs a 'label' property"]
