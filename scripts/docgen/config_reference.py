"""What can a config say? docs/reference/config.md, made from the config's JSON Schema
(harness/config/schema.py: every property's type, allowed values and `description`) and the
defaults of its dataclasses (harness/config/types.py); and which properties lack a
description."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from docgen.markdown import DocsError, format_number, page, table

# what a key of a free-form mapping stands for in a path (models.NAME.provider)
PLACEHOLDERS = {"models": "NAME", "variants": "NAME", "match": "FIELD", "target_fields": "FIELD"}


@dataclass(frozen=True)
class Property:
    """One property of the config schema: its path (`run.sequential.look_every`)."""

    path: str
    schema: Mapping[str, Any]
    required: bool


def properties(schema: Mapping[str, Any], path: str = "") -> list[Property]:
    """Every property of `schema`, depth first in the schema's order: named properties, the
    entries of free-form mappings (`models.NAME`), list items (`strategies[].name`) and the
    object branches of a `oneOf` (`strategies[].fine_tuned_model.name`)."""
    out: list[Property] = []
    required = set(schema.get("required", ()))
    for name, sub in schema.get("properties", {}).items():
        child = f"{path}.{name}" if path else name
        out.append(Property(child, sub, name in required))
        out += _inside(sub, child)
    return out


def _inside(schema: Mapping[str, Any], path: str) -> list[Property]:
    """The properties under the property at `path` (whose schema is `schema`)."""
    out = properties(schema, path)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        key = f"{path}.{PLACEHOLDERS.get(path.rsplit('.', 1)[-1].removesuffix('[]'), 'KEY')}"
        out.append(Property(key, extra, False))
        out += _inside(extra, key)
    items = schema.get("items")
    if isinstance(items, Mapping) and ("properties" in items or "additionalProperties" in items):
        out += properties(items, f"{path}[]")
    for branch in [*schema.get("oneOf", ()), *schema.get("anyOf", ())]:
        if isinstance(branch, Mapping) and branch.get("type") == "object":
            out += _inside(branch, path)
    return out


def undescribed(schema: Mapping[str, Any]) -> list[str]:
    """The paths of the schema's properties that have no `description`."""
    return [p.path for p in properties(schema) if not str(p.schema.get("description", "")).strip()]


def _range(schema: Mapping[str, Any]) -> str:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    low = ("[", lo) if lo is not None else ("(", xlo) if xlo is not None else None
    high = ("]", hi) if hi is not None else (")", xhi) if xhi is not None else None
    if low and high:
        return f" in {low[0]}{format_number(low[1])}, {format_number(high[1])}{high[0]}"
    if low:
        return f" {'≥' if low[0] == '[' else '>'} {format_number(low[1])}"
    if high:
        return f" {'≤' if high[0] == ']' else '<'} {format_number(high[1])}"
    return ""


def _code(value: Any) -> str:
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


def type_text(schema: Mapping[str, Any]) -> str:
    """A schema's type in words: `integer ≥ 1 or list of integer ≥ 1`, `one of `a`, `b``."""
    if "enum" in schema:
        return "one of " + ", ".join(_code(v) for v in schema["enum"])
    if "const" in schema:
        return _code(schema["const"])
    branches = [*schema.get("oneOf", ()), *schema.get("anyOf", ())]
    if branches:
        return " or ".join(dict.fromkeys(type_text(b) for b in branches))
    kinds = schema.get("type")
    words = []
    for kind in kinds if isinstance(kinds, list) else [kinds] if kinds else []:
        if kind in ("number", "integer"):
            words.append(kind + _range(schema))
        elif kind == "array":
            items = schema.get("items")
            words.append("list" + (f" of {type_text(items)}" if isinstance(items, Mapping) else ""))
        elif kind == "object":
            words.append("mapping")
        elif kind == "string" and "pattern" in schema:
            words.append(f"string matching `{schema['pattern']}`")
        else:
            words.append(str(kind))
    if not words and "properties" in schema:
        words.append("mapping")
    return " or ".join(words) or "any"


def _dataclasses() -> dict[str, type]:
    """The typed config's dataclass of each schema path whose fields have defaults."""
    from harness.config import types as t

    return {"task": t.TaskConfig, "task.prompts": t.Prompts, "dataset": t.DatasetConfig,
            "models.NAME": t.ModelConfig, "strategies[]": t.StrategyConfig,
            "strategies[].prompts": t.Prompts, "strategies[].fine_tuned_model": t.StrategyConfig,
            "strategies[].variants.NAME": t.Variant, "run": t.RunConfig,
            "run.sequential": t.SequentialConfig, "decision": t.DecisionConfig,
            "finetune": t.FinetuneConfig, "gate": t.GateConfig}


def _nullable(schema: Mapping[str, Any]) -> bool:
    kinds = schema.get("type")
    return (kinds == "null" or (isinstance(kinds, list) and "null" in kinds)
            or any(_nullable(b) for b in [*schema.get("oneOf", ()), *schema.get("anyOf", ())]))


def default_text(prop: Property, classes: Mapping[str, type]) -> str:
    """The default of a property from its dataclass field (None: `null` where the key may be
    null, else "unset"), or '' where the dataclass gives none (a required key, a computed or
    collection default)."""
    parent, _, name = prop.path.rpartition(".")
    cls = classes.get(parent)
    if cls is None:
        return ""
    field = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if field is None or field.default is dataclasses.MISSING:
        return ""
    value = field.default
    if value is None:
        return "`null`" if _nullable(prop.schema) else "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{format_number(value)}`"
    if isinstance(value, str):
        return f"`{value}`"
    return ""


def config_page() -> str:
    """docs/reference/config.md: every key of the config schema."""
    from harness.config.schema import SCHEMA

    missing = undescribed(SCHEMA)
    if missing:
        raise DocsError("harness/config/schema.py: no description for " + ", ".join(missing))
    classes = _dataclasses()
    every = properties(SCHEMA)
    sections = []
    for top, schema in SCHEMA["properties"].items():
        inner = [p for p in every if p.path.startswith((f"{top}.", f"{top}["))]
        rows = [(f"`{p.path}`", type_text(p.schema) + (" (required)" if p.required else ""),
                 default_text(p, classes), p.schema["description"])
                for p in inner or [q for q in every if q.path == top]]
        needed = "required" if top in SCHEMA["required"] else "optional"
        lead = f"`{top}` ({type_text(schema)}, {needed}): {schema['description']}\n\n" if inner else ""
        sections.append(f"## {top}\n\n{lead}" + table(("key", "type", "default", "description"),
                                                     rows))
    intro = ("Generated from the config's JSON Schema (`harness/config/schema.py`: each key's "
             "type, allowed values and description) and the defaults of the typed config "
             "(`harness/config/types.py`). In a key's path `NAME` stands for a name you choose, "
             "`FIELD` for an answer field and `[]` for each entry of a list. A default left "
             "blank is required, computed from other keys, or said in the description. Every "
             "key is checked against the schema when a config loads: an unknown key gets a "
             "did-you-mean, and every problem is reported with its location "
             "(`strategies[1].shots: ...`). Relative paths resolve against the config file's "
             "folder.")
    return page("Config reference", intro, "\n\n".join(sections))
