"""Run folders written by older harness versions, brought to the current layout on read.

The one place that knows the older layouts: `RunMeta.from_dict` reads run.json through
`migrate_meta`, `Record.from_dict` each results.jsonl line through `migrate_record`, and the
column reader (store.read_columns) fills absent fields with `RECORD_DEFAULTS`, the same values
`migrate_record` gives. Each returns a new mapping in the current layout; `format_version`
keeps the version the folder was written in (a version-1 record's output may be cut, and
run.json rewritten on resume still says 1). A version newer than `FORMAT_VERSION`, or one that
is not a whole number, is refused (ValueError): this harness cannot know its layout.

Versions:

1. Folders written before records carried a version (no `format_version` key anywhere).
   results.jsonl: the model's `output` was cut at 2,000 characters (nothing to recover: it is
   read as it is, and re-scoring scores the cut text); `example_id` could be a number (read as
   text, as in every version). run.json: no `task_type` (every run was classification); a
   model's `price` used the keys `input`, `cached_input`, `output`, `training` (USD per 1M
   tokens; no `cached_input`: the input price) and had no `batch_share`; `fine_tunes` entries
   are registry entries of then (no `rule`, no `recipe`: read with the registry's defaults).
2. (current) `format_version: 2` on run.json and on every record; `task_type` in run.json;
   prices as `input_per_m`, `cached_input_per_m`, `output_per_m`, `training_per_m`,
   `batch_share`; `output` holds the model's full text. Fields added since without a new
   version (a record's `calls`, `lenient`, `replica`, `batch_id`, `shots`, `vote_share`,
   `sample_correct`, `confidence`, `logprobs`; run.json's `clusters`, `allow_missing`) are
   optional: absent, they read as their defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.kinds import CLASSIFICATION

FORMAT_VERSION = 2  # what this harness writes
READABLE_VERSIONS = frozenset(range(1, FORMAT_VERSION + 1))  # what it reads
# a results.jsonl line's fields where an older version has none (migrate_record gives the same)
RECORD_DEFAULTS: Mapping[str, Any] = {"format_version": 1}
_V1_PRICE_KEYS = {"input": "input_per_m", "cached_input": "cached_input_per_m",
                  "output": "output_per_m", "training": "training_per_m"}


def version_of(raw: Mapping[str, Any]) -> int:
    """The format version a stored run.json or record was written in (absent: 1); ValueError
    for one this harness cannot read."""
    version = raw.get("format_version", 1)
    if type(version) is not int:  # (a bool is no version)
        raise ValueError(f"field 'format_version' is {version!r}, not int")
    if version not in READABLE_VERSIONS:
        raise ValueError(f"format_version {version} is newer than this harness reads "
                         f"({FORMAT_VERSION}); upgrade harness" if version > FORMAT_VERSION else
                         f"format_version {version} is not a version (they start at 1)")
    return version


def migrate_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One results.jsonl line of any version in the current layout (see the module)."""
    version = version_of(raw)
    d = {**RECORD_DEFAULTS, **raw}
    for step in _RECORD_STEPS[version - 1:]:
        d = step(d)
    d["format_version"] = version
    return d


def migrate_meta(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A run.json of any version in the current layout (see the module)."""
    version = version_of(raw)
    d = dict(raw)
    for step in _META_STEPS[version - 1:]:
        d = step(d)
    d["format_version"] = version
    return d


def migrate_price(price: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 price mapping (input, cached_input, output, training) in the current keys;
    a current one as it is."""
    if "input_per_m" in price or not any(k in price for k in _V1_PRICE_KEYS):
        return dict(price)
    inp = float(price.get("input") or 0.0)
    cached, training = price.get("cached_input"), price.get("training")
    return {"input_per_m": inp, "cached_input_per_m": inp if cached is None else float(cached),
            "output_per_m": float(price.get("output") or 0.0),
            "training_per_m": None if training is None else float(training)}


def _record_1_to_2(d: dict[str, Any]) -> dict[str, Any]:
    """Version 1 records hold the same fields (their output possibly cut): nothing to change."""
    return d


def _meta_1_to_2(d: dict[str, Any]) -> dict[str, Any]:
    """Version 1 run.json: the task type it lacked, and its models' prices in today's keys."""
    d.setdefault("task_type", CLASSIFICATION)
    models = d.get("models")
    if isinstance(models, Mapping):
        d["models"] = {name: _model_1_to_2(m) for name, m in models.items()}
    return d


def _model_1_to_2(m: Any) -> Any:
    if not isinstance(m, Mapping) or not isinstance(m.get("price"), Mapping):
        return m
    return {**m, "price": migrate_price(m["price"])}


_Step = Callable[[dict[str, Any]], dict[str, Any]]
# step i brings version i + 1 to version i + 2
_RECORD_STEPS: tuple[_Step, ...] = (_record_1_to_2,)
_META_STEPS: tuple[_Step, ...] = (_meta_1_to_2,)
assert len(_RECORD_STEPS) == len(_META_STEPS) == FORMAT_VERSION - 1

__all__ = ["FORMAT_VERSION", "READABLE_VERSIONS", "RECORD_DEFAULTS", "migrate_meta",
           "migrate_price", "migrate_record", "version_of"]
