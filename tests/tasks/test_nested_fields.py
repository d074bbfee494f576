"""Nested extraction fields (issue 27, item 4): object fields scored per leaf path, `task.match`
on leaf paths, arrays under `match: set` with partial credit, and flat schemas unchanged. Every
count below is worked out by hand in the comments."""

from __future__ import annotations

import random
from typing import Any

import pandas as pd
import pytest

from harness.analysis.arms import per_class_frame
from harness.config import Prompts, TaskConfig
from harness.report.files import CSV_FORMAT
from harness.tasks import task_problems
from harness.tasks.extraction import ExtractionTask, values_equal
from harness.tasks.fields import FieldPaths, element_key, rule_of, set_counts, value_at

NULL_STR = {"type": ["string", "null"]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": NULL_STR,
        "address": {"type": ["object", "null"], "properties": {
            "city": NULL_STR, "zip": NULL_STR,
            "geo": {"type": ["object", "null"], "properties": {"lat": {"type": ["number", "null"]}}},
        }},
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    },
}
MATCH = {"address.geo.lat": "number", "tags": "set"}
TASK = ExtractionTask(SCHEMA, MATCH)

GOLD: list[Any] = [
    {"name": "Ann", "address": {"city": "Paris", "zip": "75001", "geo": {"lat": 48.8}},
     "tags": ["a", "b", "c"]},
    {"name": "Bo", "address": None, "tags": None},
    {"name": None, "address": {"city": "Oslo", "zip": None, "geo": {"lat": 59.9}}, "tags": ["x"]},
]
PRED: list[Any] = [
    {"name": "ann", "address": {"city": " paris", "zip": "75002", "geo": {"lat": 48.80}},
     "tags": ["A", "b", "d"]},
    {"name": "Bo", "address": {"city": "Rome", "zip": None, "geo": None}, "tags": []},
    None,  # no usable answer
]
# (tp, fp, misses, right, total) per leaf, by hand:
# name:            Ann~ann tp; Bo tp; (no answer, gold null) nothing    -> 2 0 0, right 2
# address.city:    Paris~paris tp; gold null vs Rome fp; Oslo missed   -> 1 1 1, right 1
# address.zip:     75001 vs 75002 fp + miss; null/null right; null      -> 0 1 1, right 1
# address.geo.lat: 48.8 == 48.80 tp; null/null right; 59.9 missed       -> 1 0 1, right 2
# tags (set):      {a,b,c} vs {a,b,d}: tp 2 fp 1 miss 1; null vs []: 0 0 0, wrong (not equal);
#                  {x} unanswered: miss 1                               -> 2 1 2, right 0
HAND = {"name": (2, 0, 0, 2, 3), "address.city": (1, 1, 1, 1, 3), "address.zip": (0, 1, 1, 1, 3),
        "address.geo.lat": (1, 0, 1, 2, 3), "tags": (2, 1, 2, 0, 3)}


def test_leaf_paths_in_schema_order() -> None:
    paths = FieldPaths.of(SCHEMA)
    assert paths.names == ("name", "address.city", "address.zip", "address.geo.lat", "tags")
    assert TASK.leaves == paths.names
    assert TASK.fields == ("name", "address", "tags")  # prompts, rendering and votes: top level
    assert paths.keys() == ("name", "address", "address.city", "address.zip", "address.geo",
                            "address.geo.lat", "tags")
    # an object without properties, and an array of objects, are leaves themselves
    flat = FieldPaths.of({"type": "object", "properties": {
        "meta": {"type": "object"}, "items": {"type": "array", "items": {
            "type": "object", "properties": {"sku": {"type": "string"}}}}}})
    assert flat.names == ("meta", "items")


def test_null_on_the_way_reads_as_null() -> None:
    assert value_at({"address": None}, ("address", "city")) is None
    assert value_at({"address": {"geo": None}}, ("address", "geo", "lat")) is None
    assert value_at({}, ("address", "city")) is None
    assert value_at(None, ("name",)) is None
    assert value_at({"address": {"city": "Oslo"}}, ("address", "city")) == "Oslo"


def test_rules_inherit_from_the_nearest_object() -> None:
    match = {"address": "exact", "address.geo.lat": "number", "default": "normalized"}
    assert rule_of(match, ("address", "city")) == "exact"
    assert rule_of(match, ("address", "geo", "lat")) == "number"
    assert rule_of(match, ("name",)) == "normalized"
    assert rule_of({}, ("name",)) == "normalized"
    task = ExtractionTask(SCHEMA, {"address": "exact"})
    counts = task.field_counts([GOLD[0]], [PRED[0]])
    assert counts["address.city"] == (0, 1, 1, 0, 1)  # " paris" is not exactly "Paris"
    assert counts["address.geo.lat"] == (1, 0, 0, 1, 1)  # 48.8 == 48.80 exactly too


def test_nested_counts_by_hand() -> None:
    assert TASK.field_counts(GOLD, PRED) == HAND
    # micro over the leaves: tp 6, fp 3, misses 5
    m = TASK.micro(GOLD, PRED)
    assert m["precision"] == pytest.approx(6 / 9) and m["recall"] == pytest.approx(6 / 11)
    assert m["f1"] == pytest.approx(2 * 6 / (2 * 6 + 3 + 5))
    # per example, summed over the leaves (another engineer's per-example F1 reads these)
    assert [TASK.example_counts(g, p) for g, p in zip(GOLD, PRED, strict=True)] == [
        (5, 2, 2), (1, 1, 0), (0, 0, 3)]
    per = TASK.breakdown(GOLD, PRED)
    assert per["tags"]["support"] == 4  # gold elements: 3 + 0 + 1
    assert per["tags"]["precision"] == pytest.approx(2 / 3)
    assert per["tags"]["recall"] == pytest.approx(2 / 4)
    assert per["address.city"]["accuracy"] == pytest.approx(1 / 3)


def test_per_field_rows_are_leaf_paths() -> None:
    df = pd.DataFrame({"strategy": ["zs"] * 3, "k": [0] * 3, "endpoint_failed": [False] * 3,
                       "expected": GOLD, "prediction": PRED})
    frame = per_class_frame(df, TASK)
    assert frame["field"].tolist() == list(HAND)
    assert frame.to_csv(**CSV_FORMAT) == (
        "strategy,k,field,accuracy,precision,recall,f1,support\n"
        "zs,0,name,0.666667,1,1,1,2\n"
        "zs,0,address.city,0.333333,0.5,0.5,0.5,2\n"
        "zs,0,address.zip,0.333333,0,0,0,1\n"
        "zs,0,address.geo.lat,0.666667,1,0.5,0.666667,2\n"
        "zs,0,tags,0,0.666667,0.5,0.571429,4\n")


def test_exact_match_stays_whole_object() -> None:
    same = {"name": "Ann", "address": {"city": "Paris", "zip": "75001", "geo": {"lat": 48.8}},
            "tags": ["c", "a", "b"]}
    assert TASK.is_correct(same, GOLD[0])
    # every leaf right under its rule, but the address object is not the gold one as a whole
    near = {**same, "address": {"city": "paris", "zip": "75001", "geo": {"lat": 48.8}}}
    assert TASK.field_counts([GOLD[0]], [near])["address.city"] == (1, 0, 0, 1, 1)
    assert not TASK.is_correct(near, GOLD[0])
    assert TASK.field_results(GOLD[0], near) == {"name": True, "address": False, "tags": True}


def test_null_gold_object_has_null_leaves() -> None:
    gold = {"name": "Bo", "address": None, "tags": None}
    # predicting a null object: every leaf right, nothing counted
    counts = TASK.field_counts([gold], [{"name": "Bo", "address": None, "tags": None}])
    assert counts["address.city"] == counts["address.geo.lat"] == (0, 0, 0, 1, 1)
    # an object where gold has none: its non-null leaves are false positives, the null ones right
    counts = TASK.field_counts([gold], [{"name": "Bo", "address": {"city": "X", "zip": None,
                                                                   "geo": {"lat": 1}}}])
    assert counts["address.city"] == (0, 1, 0, 0, 1)
    assert counts["address.zip"] == (0, 0, 0, 1, 1)
    assert counts["address.geo.lat"] == (0, 1, 0, 0, 1)
    # a gold object whose leaves are all null equals a null one leaf by leaf
    counts = TASK.field_counts([{"address": {"city": None}}], [{"address": None}])
    assert counts["address.city"] == (0, 0, 0, 1, 1)


def test_set_partial_credit() -> None:
    assert set_counts(["a", "b", "c"], ["B", "c.", "d", "e"]) == (2, 2, 1, False)
    assert set_counts(["a", "a", "b"], ["b", "a"]) == (2, 0, 0, True)  # a set: duplicates once
    assert set_counts(None, None) == (0, 0, 0, True)
    assert set_counts(["a"], None) == (0, 0, 1, False)
    assert set_counts([], None) == (0, 0, 0, False)  # [] is not null, as for any other rule
    assert set_counts([4, {"b": 1, "a": "X"}], [4.0, {"a": "X", "b": 1}]) == (2, 0, 0, True)
    assert set_counts([{"a": "X"}], [{"a": "x"}]) == (0, 1, 1, False)  # objects: canonical JSON
    assert set_counts(["4"], [4]) == (0, 1, 1, False)  # a string is not a number
    assert element_key(True) != element_key(1)
    # an array of objects nested in an object, matched as a set through its path
    schema = {"type": "object", "properties": {"order": {"type": "object", "properties": {
        "lines": {"type": "array", "items": {"type": "object"}}, "id": {"type": "string"}}}}}
    task = ExtractionTask(schema, {"order.lines": "set"})
    gold = {"order": {"id": "7", "lines": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}}
    pred = {"order": {"id": "7", "lines": [{"sku": "b"}, {"sku": "a"}, {"sku": "z"}]}}
    assert task.field_counts([gold], [pred]) == {"order.lines": (2, 1, 1, 0, 1),
                                                 "order.id": (1, 0, 0, 1, 1)}
    assert task.example_counts(gold, pred) == (3, 1, 1)
    assert task.example_counts(gold, None) == (0, 0, 4)  # 3 gold elements and the id missed


def _config(match: dict[str, str], schema: dict[str, Any] = SCHEMA) -> TaskConfig:
    return TaskConfig("extraction", "Extract.", (), schema, Prompts(), match)


def test_match_keys_are_fields_or_leaf_paths() -> None:
    assert task_problems(_config({"address.city": "exact", "address": "normalized",
                                  "address.geo": "exact", "tags": "set",
                                  "default": "normalized"})) == []
    problems = task_problems(_config({"address.town": "exact"}))
    assert problems == ["task.match.address.town: not a field or leaf path of task.output_schema "
                        "(paths: name, address, address.city, address.zip, address.geo, "
                        "address.geo.lat, tags)"]


def test_set_on_a_non_array_is_rejected() -> None:
    assert task_problems(_config({"address.city": "set"})) == [
        "task.match.address.city: set applies to arrays only, and address.city is not an array "
        "in task.output_schema"]
    # on an object: it would reach its non-array leaves (one message per key)
    problems = task_problems(_config({"address": "set"}))
    assert problems == ["task.match.address: set applies to arrays only, and address.city is not "
                        "an array in task.output_schema",
                        "task.match.address: set applies to arrays only, and address.zip is not "
                        "an array in task.output_schema",
                        "task.match.address: set applies to arrays only, and address.geo.lat is "
                        "not an array in task.output_schema"]
    assert task_problems(_config({"default": "set", "name": "exact", "address": "exact"})) == []
    assert task_problems(_config({"default": "set"}))[0].startswith(
        "task.match.default: set applies to arrays only, and name is not an array")
    assert task_problems(_config({"tags": "fuzzy"})) == [
        "task.match.tags: unknown rule 'fuzzy' (one of exact, normalized, number, set)"]


# --- flat schemas: exactly the counts of the scoring before leaf paths -----------------------

FLAT = {"type": "object", "properties": {"name": NULL_STR, "people": {"type": ["integer", "null"]},
                                         "when": NULL_STR, "meta": {"type": ["object", "null"]}}}
FLAT_MATCH = {"people": "number", "when": "exact"}


def _old_field_counts(task: ExtractionTask, expected: list[Any], predicted: list[Any]
                      ) -> dict[str, tuple[int, int, int, int, int]]:
    """field_counts as it was before leaf paths (a copy), for flat schemas."""
    table = {k: [0, 0, 0, 0, 0] for k in task.fields}
    for gold_obj, pred_obj in zip(expected, predicted, strict=True):
        gold = gold_obj if isinstance(gold_obj, dict) else {}
        answered = isinstance(pred_obj, dict)
        pred = pred_obj if answered else {}
        for k in task.fields:
            g, p = gold.get(k), pred.get(k)
            row = table[k]
            if not answered:
                row[4] += 1
                row[2] += g is not None
                continue
            same = values_equal(g, p, task.rule(k))
            row[3] += same
            row[4] += 1
            if p is not None and same:
                row[0] += 1
            elif p is not None:
                row[1] += 1
                row[2] += g is not None
            elif g is not None:
                row[2] += 1
    return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in table.items()}


def test_flat_schemas_count_as_before() -> None:
    task = ExtractionTask(FLAT, FLAT_MATCH)
    assert task.leaves == task.fields
    rng = random.Random(7)
    pools: dict[str, list[Any]] = {"name": ["Ann", "ann", "Bo", None], "people": [2, 2.0, "2", 3, None],
                                   "when": ["Mon", "mon", None], "meta": [{"a": 1}, {"a": 2}, None]}

    def obj() -> dict[str, Any]:
        return {k: rng.choice(v) for k, v in pools.items() if rng.random() < 0.9}

    expected = [obj() for _ in range(200)]
    predicted = [obj() if rng.random() < 0.85 else None for _ in range(200)]
    assert task.field_counts(expected, predicted) == _old_field_counts(task, expected, predicted)
    for g, p in zip(expected, predicted, strict=True):
        old = _old_field_counts(task, [g], [p]).values()
        assert task.example_counts(g, p) == tuple(sum(t[i] for t in old) for i in range(3))


def test_flat_per_field_rows_by_hand() -> None:
    task = ExtractionTask(FLAT, FLAT_MATCH)
    gold = [{"name": "Ann", "people": 2, "when": "Mon"}, {"name": None, "people": 5, "when": "Tue"}]
    pred = [{"name": "ann", "people": "3", "when": "mon"}, None]
    # name: tp | (no answer, null) -> 1 0 0, right 1; people: 3 vs 2 fp + miss | 5 missed -> 0 1 2;
    # when: exact Mon vs mon fp + miss | Tue missed -> 0 1 2; meta: null, null -> right 1 of 2
    df = pd.DataFrame({"strategy": ["zs"] * 2, "k": [0] * 2, "endpoint_failed": [False] * 2,
                       "expected": gold, "prediction": pred})
    assert per_class_frame(df, task).to_csv(**CSV_FORMAT) == (
        "strategy,k,field,accuracy,precision,recall,f1,support\n"
        "zs,0,name,0.5,1,1,1,1\n"
        "zs,0,people,0,0,0,0,2\n"
        "zs,0,when,0,0,0,0,2\n"
        "zs,0,meta,0.5,0,0,0,0\n")


# --- the report's per-field table ------------------------------------------------------------

def _report_part(per_class: pd.DataFrame) -> str:
    from types import SimpleNamespace

    from harness.report.fields import nested_fields, per_field_rows
    from harness.report.html import environment

    a: Any = SimpleNamespace(per_class=per_class, summary=pd.DataFrame(
        {"strategy": ["zs"], "k": [0], "type": ["zero_shot"]}))
    extraction = {"per_field": per_field_rows(a), "nested": nested_fields(a), "compliance": [],
                  "noncompliant": None}
    return str(environment().get_template("extraction.html.j2").render(extraction=extraction))


def test_report_shows_leaf_paths() -> None:
    df = pd.DataFrame({"strategy": ["zs"] * 3, "k": [0] * 3, "endpoint_failed": [False] * 3,
                       "expected": GOLD, "prediction": PRED})
    page = _report_part(per_class_frame(df, TASK))
    assert '<td class="text">address.geo.lat</td><td>0.667</td><td>1.000</td><td>0.500</td>' in page
    assert "scored per leaf path" in page
    flat = pd.DataFrame({"strategy": ["zs"], "k": [0], "endpoint_failed": [False],
                         "expected": [{"name": "A"}], "prediction": [{"name": "a"}]})
    page = _report_part(per_class_frame(flat, ExtractionTask(FLAT, FLAT_MATCH)))
    assert '<td class="text">name</td>' in page and "scored per leaf path" not in page
