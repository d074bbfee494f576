"""Issue 24: harness.kinds is the one definition of the task kinds, strategy kinds, selections
and verdicts; the config's JSON Schema enums and the registries must equal it (no drift)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness import kinds
from harness.config.cascade import is_cascade
from harness.config.schema import SCHEMA
from harness.config.types import StrategyConfig
from harness.strategies import SELECTORS, STRATEGIES
from harness.strategies.base import FINE_TUNED_TYPES, PROMPTING_TYPES, SWEEP_TYPES
from harness.tasks import CONFIG_CHECKS, TASKS

ALL: dict[str, Mapping[str, str]] = {
    "TASK_KINDS": kinds.TASK_KINDS,
    "STRATEGY_KINDS": kinds.STRATEGY_KINDS,
    "SELECTIONS": kinds.SELECTIONS,
    "VERDICTS": kinds.VERDICTS,
}


def test_the_verdicts_are_exactly_these_in_order() -> None:
    assert list(kinds.VERDICTS) == ["keep_prompting", "prompting_sufficient", "fine_tune",
                                    "hybrid", "withheld"]
    constants = (kinds.KEEP_PROMPTING, kinds.PROMPTING_SUFFICIENT, kinds.FINE_TUNE, kinds.HYBRID,
                 kinds.WITHHELD)
    assert tuple(kinds.VERDICTS) == constants


@pytest.mark.parametrize("name", ALL)
def test_each_value_has_a_constant_and_a_one_line_meaning(name: str) -> None:
    mapping = ALL[name]
    assert mapping, name
    for value, meaning in mapping.items():
        assert getattr(kinds, value.upper()) == value, f"kinds.{value.upper()}"
        assert value.upper() in kinds.__all__
        assert isinstance(meaning, str) and meaning.strip() and "\n" not in meaning, value
    assert name in kinds.__all__


@pytest.mark.parametrize("name", ALL)
def test_the_mappings_are_read_only(name: str) -> None:
    with pytest.raises(TypeError):
        ALL[name]["new"] = "x"  # type: ignore[index]


def test_no_value_names_two_kinds_within_one_mapping_or_clashes_across() -> None:
    values = [v for m in ALL.values() for v in m]
    assert len(values) == len(set(values))


def test_kinds_imports_nothing_from_harness() -> None:
    tree = ast.parse(Path(kinds.__file__).read_text(encoding="utf-8"))
    found = [ast.unparse(n) for n in ast.walk(tree)
             if (isinstance(n, ast.Import) and any(a.name.startswith("harness") for a in n.names))
             or (isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("harness")))]
    assert found == []


# --------------------------------------------------------------------------- registries


def test_the_task_registries_cover_exactly_the_task_kinds() -> None:
    assert list(TASKS) == list(kinds.TASK_KINDS)
    assert list(CONFIG_CHECKS) == list(kinds.TASK_KINDS)


def test_the_strategy_registry_covers_exactly_the_strategy_kinds() -> None:
    # a cascade expands into no arm: it is computed from its two arms' records (config.cascade)
    assert set(STRATEGIES) | {kinds.CASCADE} == set(kinds.STRATEGY_KINDS)
    assert kinds.CASCADE not in STRATEGIES
    assert is_cascade({"type": kinds.CASCADE})
    assert set(STRATEGIES) >= PROMPTING_TYPES | SWEEP_TYPES | FINE_TUNED_TYPES


def test_the_selector_registry_covers_exactly_the_selections() -> None:
    assert set(SELECTORS) == set(kinds.SELECTIONS)
    assert StrategyConfig("s", kinds.FEW_SHOT, "m").selection in kinds.SELECTIONS


# --------------------------------------------------------------------------- schema enums


def _enums(node: Any, where: str = "") -> Iterator[tuple[str, list[Any]]]:
    """(location, values) of every `enum` in a JSON Schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enum" and isinstance(value, list):
                yield where, value
            else:
                yield from _enums(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _enums(value, f"{where}[{i}]")


def _at(*path: str) -> Any:
    node: Any = SCHEMA
    for key in path:
        node = node[key]
    return node


def test_the_config_schema_enums_are_the_kinds() -> None:
    assert _at("properties", "task", "properties", "type", "enum") == list(kinds.TASK_KINDS)
    strategy = _at("properties", "strategies", "items", "properties")
    assert strategy["type"]["enum"] == list(kinds.STRATEGY_KINDS)
    assert strategy["selection"]["enum"] == list(kinds.SELECTIONS)


def test_no_schema_enum_repeats_part_of_a_kinds_list() -> None:
    # an enum holding any value of a kinds mapping must be that mapping, whole and in order
    for where, values in _enums(SCHEMA):
        for name, mapping in ALL.items():
            if set(values) & set(mapping):
                assert values == list(mapping), f"{where}: {values} is not kinds.{name}"


def test_the_schema_conditions_name_kinds() -> None:
    # the per-type requirements (`if type is ...`) use strategy kinds
    conditions = _at("properties", "strategies", "items", "allOf")
    consts = [c["if"]["properties"]["type"] for c in conditions]
    named = [t.get("const", t.get("not", {}).get("const")) for t in consts]
    assert named and set(named) <= set(kinds.STRATEGY_KINDS)
