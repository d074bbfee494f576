"""The extraction task: field comparison rules, scoring kinds and micro field F1, by hand."""

from __future__ import annotations

import pytest

from harness.tasks.extraction import ExtractionTask, normalized_text, values_equal

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": ["string", "null"]}, "people": {"type": ["integer", "null"]},
                   "tags": {"type": ["array", "null"], "items": {"type": "string"}}},
    "required": ["name", "people"],
    "additionalProperties": False,
}
TASK = ExtractionTask(SCHEMA, {"people": "number", "tags": "set"})


@pytest.mark.parametrize(("a", "b", "how", "same"), [
    ("Ann", "ann", "normalized", True),
    ("  Ann  Lee ", "ann lee.", "normalized", True),
    ("ﬁve", "five", "normalized", True),  # NFKC folds the ligature
    ("Ann", "Anna", "normalized", False),
    ("Ann", "ann", "exact", False),
    (4, "4", "number", True),
    (4, 4.0, "number", True),
    (4, "four", "number", False),
    (["a", "b"], ["B", "a"], "set", True),
    (["a", "b"], ["a"], "set", False),
    (None, None, "normalized", True),
    (None, "x", "normalized", False),
    ("x", None, "exact", False),
])
def test_values_equal(a: object, b: object, how: str, same: bool) -> None:
    assert values_equal(a, b, how) is same


def test_normalized_text_strips_only_surrounding_punctuation() -> None:
    assert normalized_text("¡Hola, Ann!") == "hola, ann"


def test_score_kinds() -> None:
    gold = {"name": "Ann", "people": 2}
    assert TASK.score('{"name": "ann", "people": 2}', "stop", gold).correct
    s = TASK.score('{"name": "Ann"}', "stop", gold)  # missing required key: schema
    assert (s.parse_ok, s.schema_valid, s.error_kind, s.prediction) == (True, False, "schema", None)
    s = TASK.score("Ann, two", "stop", gold)
    assert (s.parse_ok, s.error_kind) == (False, "invalid_json")
    s = TASK.score('{"name": "Ann", "people": 3}', "stop", gold)
    assert s.schema_valid and not s.correct and s.error_kind == "wrong_values" and "people" in s.error
    s = TASK.score('```json\n{"name": "Ann", "people": 2}\n```', "stop", gold)
    assert s.correct and s.lenient
    s = TASK.score('{"name": "Ann", "people": 2}', "length", gold)
    assert s.error_kind == "truncated" and not s.correct


def test_a_missing_optional_key_equals_null() -> None:
    assert TASK.score('{"name": null, "people": null}', "stop",
                      {"name": None, "people": None, "tags": None}).correct


def test_micro_field_scores_by_hand() -> None:
    expected = [{"name": "Ann", "people": 2}, {"name": None, "people": 5}, {"name": "Bo", "people": None}]
    predicted = [{"name": "Ann", "people": 3}, {"name": "Cy", "people": 5}, None]
    # tp: Ann, 5 -> 2; fp: 3 (wrong), Cy (gold null) -> 2; misses: 2 (wrong), Bo (no answer) -> 2
    m = TASK.micro(expected, predicted)
    assert m["precision"] == pytest.approx(2 / 4) and m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(0.5)
    per = TASK.breakdown(expected, predicted)
    assert per["name"]["accuracy"] == pytest.approx(1 / 3) and per["name"]["support"] == 2
    assert per["people"]["accuracy"] == pytest.approx(1 / 3)


def test_vote_per_field() -> None:
    votes = [{"name": "Ann", "people": 2}, {"name": "Ann", "people": 3}, {"name": "Bo", "people": 3}]
    assert TASK.vote(votes) == {"name": "Ann", "people": 3, "tags": None}
    assert TASK.vote([None, None]) is None


def test_gold_checks_and_strata() -> None:
    assert TASK.check_target({"name": "A", "people": 1}) is None
    problem = TASK.check_target({"name": "A", "people": "many"})
    assert problem is not None and "people" in problem and "properties/people/type" in problem
    assert TASK.parse_target('{"name": "A", "people": "3"}') == {"name": "A", "people": 3}
    with pytest.raises(ValueError, match="JSON object"):
        TASK.parse_target("[1]")
    assert TASK.stratum({"name": "A", "people": None}) == "name"
    assert TASK.render_target({"people": 2, "name": "A"}) == '{"name": "A", "people": 2, "tags": null}'
