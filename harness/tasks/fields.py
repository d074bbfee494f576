"""Field paths of an extraction schema, the `task.match` rule of each, and set matching.

A property of the answer schema that is an object with `properties` is scored per leaf: its
leaves are `field.sub` (recursively, dotted); an array, or an object without properties, is a
leaf itself. A leaf's value is read by walking its path: a key missing, or a value on the way
that is not an object (null included), reads as null, so a null gold object has every leaf null.

A `task.match` key is a top-level field, an object path or a leaf path; a leaf takes the rule
of its own path, else of its nearest object above it, else `default`, else `normalized`.

Under `match: set` an array leaf earns partial credit: its elements are compared as sets
(strings normalised as the `normalized` rule does, numbers by value, objects and arrays by
canonical JSON) and count gold ∩ predicted as true positives, predicted \\ gold as false
positives and gold \\ predicted as misses; it is right only when the two sets are equal.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]
SET = "set"


def normalized_text(value: Any) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed, surrounding punctuation stripped."""
    text = unicodedata.normalize("NFKC", str(value)).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(text[end - 1]).startswith("P"):
        end -= 1
    return text[start:end].strip()


def path_name(path: Path) -> str:
    """A path's dotted name (`address.city`)."""
    return ".".join(path)


def _types(spec: Any) -> set[str] | None:
    """The JSON types a property spec allows; None when it does not say."""
    if not isinstance(spec, dict) or "type" not in spec:
        return None
    kind = spec["type"]
    return {str(k) for k in (kind if isinstance(kind, list) else [kind])}


def _children(spec: Any) -> dict[str, Any] | None:
    """An object spec's properties (non-empty), or None for a leaf."""
    if not isinstance(spec, dict):
        return None
    props = spec.get("properties")
    types = _types(spec)
    if not isinstance(props, dict) or not props or (types is not None and "object" not in types):
        return None
    return props


def may_be_array(spec: Any) -> bool:
    """Whether a leaf's spec allows an array (a spec that names no type may be one)."""
    types = _types(spec)
    if types is None:  # untyped: an array unless it describes an object only
        return not isinstance(spec, dict) or "properties" not in spec or "items" in spec
    return "array" in types


@dataclass(frozen=True)
class FieldPaths:
    """The leaf paths and object paths of an answer schema, in the schema's order."""

    leaves: tuple[Path, ...]
    paths: tuple[Path, ...]  # every leaf and every object scored per leaf, objects first
    specs: Mapping[Path, Any]  # each leaf's property spec

    @classmethod
    def of(cls, schema: Mapping[str, Any]) -> FieldPaths:
        """The paths of `schema` (an object schema with `properties`)."""
        leaves: list[Path] = []
        paths: list[Path] = []
        specs: dict[Path, Any] = {}

        def walk(props: Mapping[str, Any], above: Path) -> None:
            for key, spec in props.items():
                path = (*above, str(key))
                children = _children(spec)
                paths.append(path)
                if children is None:
                    leaves.append(path)
                    specs[path] = spec
                else:
                    walk(children, path)

        props = schema.get("properties")
        walk(props if isinstance(props, dict) else {}, ())
        return cls(tuple(leaves), tuple(paths), specs)

    @property
    def names(self) -> tuple[str, ...]:
        """Every leaf's dotted name."""
        return tuple(path_name(p) for p in self.leaves)

    def keys(self) -> tuple[str, ...]:
        """The names a `task.match` key may take (besides `default`), in the schema's order."""
        return tuple(path_name(p) for p in self.paths)


def rule_of(match: Mapping[str, str], path: Path) -> str:
    """A leaf's rule: its own, else its nearest object's, else `default`, else `normalized`."""
    for end in range(len(path), 0, -1):
        rule = match.get(path_name(path[:end]))
        if rule:
            return rule
    return match.get("default") or "normalized"


def value_at(obj: Any, path: Path) -> Any:
    """The value at `path` of an answer object (None where a key is missing or a value on the
    way is not an object)."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def element_key(value: Any) -> str:
    """An array element as `match: set` compares it: strings normalised, numbers by value,
    booleans and null as themselves, objects and arrays by canonical JSON."""
    if isinstance(value, str):
        return "s:" + normalized_text(value)
    if isinstance(value, bool) or value is None:
        return "c:" + json.dumps(value)
    if isinstance(value, int | float):
        whole = isinstance(value, float) and value.is_integer()
        return f"n:{int(value) if whole else value!r}"
    return "j:" + json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _elements(value: Any) -> set[str]:
    if value is None:
        return set()
    return {element_key(v) for v in (value if isinstance(value, list) else [value])}


def set_counts(gold: Any, pred: Any) -> tuple[int, int, int, bool]:
    """(true positives, false positives, misses, right) of one array leaf under `match: set`
    (a null array has no elements; right: both null, or the same set of elements)."""
    g, p = _elements(gold), _elements(pred)
    right = gold is None and pred is None if gold is None or pred is None else g == p
    return len(g & p), len(p - g), len(g - p), right


def match_problems(schema: Mapping[str, Any], match: Mapping[str, str]) -> list[str]:
    """What is wrong with `task.match`'s keys for `schema` (rules are checked elsewhere): a key
    that is no field or path, and `set` reaching a leaf that cannot be an array."""
    paths = FieldPaths.of(schema)
    known = set(paths.keys())
    out = [f"task.match.{name}: not a field or leaf path of task.output_schema "
           f"(paths: {', '.join(paths.keys())})"
           for name in match if name != "default" and name not in known]
    for path in paths.leaves:
        if rule_of(match, path) != SET or may_be_array(paths.specs[path]):
            continue
        source = next((path_name(path[:e]) for e in range(len(path), 0, -1)
                       if match.get(path_name(path[:e]))), "default")
        out.append(f"task.match.{source}: set applies to arrays only, and "
                   f"{path_name(path)} is not an array in task.output_schema")
    return list(dict.fromkeys(out))


__all__ = ["SET", "FieldPaths", "Path", "element_key", "match_problems", "may_be_array",
           "normalized_text", "path_name", "rule_of", "set_counts", "value_at"]
