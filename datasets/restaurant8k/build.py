"""Convert the Restaurant-8k slot-filling data (PolyAI, CC BY 4.0) into this folder's JSONL files.

Usage: ``python datasets/restaurant8k/build.py SOURCE_DIR [OUT_DIR]``

SOURCE_DIR holds the original ``test.json`` and ``train_0.json`` ... ``train_8.json``; OUT_DIR
defaults to the folder of this script. Standard library only; the output is byte-for-byte
reproducible from the same source files.

Choices (also written up in ``datasets/ATTRIBUTION.md``):

* ``train.jsonl`` is ``train_0.json`` alone. ``train_1.json`` ... ``train_8.json`` are the paper's
  few-shot subsets: each is exactly the first 1/2, 1/4, ... 1/256 of ``train_0.json``. The script
  checks that and fails if it ever stops being true, because concatenating them would repeat
  half of the training set.
* ``requested`` is ``context.requestedSlots`` with repeats dropped, in the fixed slot order
  people, date, time, first_name, last_name (names outside those five after them, in source
  order), joined with ","; "" when the assistant asked for nothing. The source lists the same
  request in several orders ("first_name,last_name" and "last_name,first_name") and sometimes
  repeats a slot, so the canonical order keeps one value per request.
* ``slots`` has exactly the five keys; each is ``text[start:end]`` verbatim (``startIndex``
  defaults to 0 when absent) or null. Labels for other slot names are dropped and counted; a slot
  labelled twice in one example keeps its first label and is counted. Any other shape (a label
  without ``valueSpan``, a span outside the text, a missing text) stops the build with the file
  and index, rather than guessing.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, NoReturn

SLOTS = ("people", "date", "time", "first_name", "last_name")
TRAIN_FILES = tuple(f"train_{i}.json" for i in range(9))
SEED = 11
QUICKSTART_TEST = 60
QUICKSTART_TRAIN = 200

Row = dict[str, Any]


@dataclass
class Stats:
    """What the conversion met in the source, for the report and the attribution file."""

    examples: Counter[str] = field(default_factory=Counter)
    other_slots: Counter[str] = field(default_factory=Counter)
    other_requested: Counter[str] = field(default_factory=Counter)
    duplicate_slot_examples: Counter[str] = field(default_factory=Counter)
    repeated_requests: Counter[str] = field(default_factory=Counter)
    padded_spans: Counter[str] = field(default_factory=Counter)
    overlapping_spans: Counter[str] = field(default_factory=Counter)


def normalise(text: str) -> str:
    """Whitespace- and case-insensitive form of a text (the same rule as ``harness.dataset``)."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def _fail(where: str, message: str) -> NoReturn:
    raise SystemExit(f"error: {where}: {message}")


def _requested(context: Any, where: str, split: str, stats: Stats) -> str:
    """The canonical ``requested`` string for one example's ``context`` (None when absent)."""
    if context is None:
        return ""
    if not isinstance(context, dict):
        _fail(where, f"context is {type(context).__name__}, not an object")
    names = context.get("requestedSlots", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        _fail(where, "context.requestedSlots is not a list of strings")
    if len(set(names)) != len(names):
        stats.repeated_requests[split] += 1
    known = [s for s in SLOTS if s in names]
    other = list(dict.fromkeys(n for n in names if n not in SLOTS))
    stats.other_requested.update(other)
    return ",".join(known + other)


def _slots(text: str, labels: Any, where: str, split: str, stats: Stats) -> dict[str, str | None]:
    """The five-key ``slots`` object for one example's ``labels``."""
    slots: dict[str, str | None] = dict.fromkeys(SLOTS)
    if not isinstance(labels, list):
        _fail(where, "labels is not a list")
    spans: list[tuple[int, int]] = []
    duplicate = False
    for j, label in enumerate(labels):
        at = f"{where} labels[{j}]"
        if not isinstance(label, dict) or not isinstance(label.get("slot"), str):
            _fail(at, "label is not an object with a string 'slot'")
        span = label.get("valueSpan")
        if not isinstance(span, dict):
            _fail(at, f"label for {label['slot']!r} has no valueSpan object")
        start, end = span.get("startIndex", 0), span.get("endIndex")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(text):
            _fail(at, f"span {start!r}..{end!r} is not inside the text ({len(text)} characters)")
        name = label["slot"]
        if name not in SLOTS:
            stats.other_slots[name] += 1
            continue
        if slots[name] is not None:
            duplicate = True
            continue
        slots[name] = text[start:end]
        spans.append((start, end))
        if text[start:end] != text[start:end].strip():
            stats.padded_spans[split] += 1
    if duplicate:
        stats.duplicate_slot_examples[split] += 1
    spans.sort()
    if any(b[0] < a[1] for a, b in pairwise(spans)):
        stats.overlapping_spans[split] += 1
    return slots


def convert(raw: Sequence[Any], split: str, source: str, stats: Stats) -> list[Row]:
    """Turn one source file's list of examples into output rows with ids ``{split}-{i}``."""
    rows: list[Row] = []
    for i, ex in enumerate(raw):
        where = f"{source}[{i}]"
        if not isinstance(ex, dict):
            _fail(where, "example is not an object")
        extra = set(ex) - {"userInput", "context", "labels"}
        if extra:
            _fail(where, f"unexpected keys {sorted(extra)}")
        user = ex.get("userInput")
        if not isinstance(user, dict) or not isinstance(user.get("text"), str) or not user["text"].strip():
            _fail(where, "userInput.text is missing or empty")
        text: str = user["text"]
        rows.append({
            "id": f"{split}-{i}",
            "text": text,
            "requested": _requested(ex.get("context"), where, split, stats),
            "slots": _slots(text, ex.get("labels", []), where, split, stats),
        })
    stats.examples[split] = len(rows)
    return rows


def schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for one answer object."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Restaurant-8k slots",
        "description": "Slot values copied verbatim from the user's message; null when not mentioned.",
        "type": "object",
        "properties": {name: {"type": ["string", "null"]} for name in SLOTS},
        "required": list(SLOTS),
        "additionalProperties": False,
    }


def valid(slots: Any) -> bool:
    """Hand-written check of ``slots`` against ``schema()`` (exact keys, string-or-null values)."""
    return (isinstance(slots, dict) and set(slots) == set(SLOTS)
            and all(v is None or isinstance(v, str) for v in slots.values()))


def pattern(row: Row) -> str:
    """The slots a row fills, in slot order, joined with "+"; "(none)" when it fills none."""
    return "+".join(s for s in SLOTS if row["slots"][s] is not None) or "(none)"


def _allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Split ``n`` over strata in proportion to ``sizes`` (largest remainder, ties by name)."""
    total = sum(sizes.values())
    quota = {k: n * v / total for k, v in sizes.items()}
    share = {k: int(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (share[k] - quota[k], k))[: n - sum(share.values())]:
        share[k] += 1
    return share


def quickstart(rows: Sequence[Row], n: int, rng: random.Random, avoid: set[str]) -> list[Row]:
    """A stratified sample of ``n`` rows by slot pattern, each text distinct and not in ``avoid``.

    Rows whose normalised text is in ``avoid`` (or repeats one already in the pool) never enter
    the pool, so the sample has no text twice and none of ``avoid``. Returned in source order.
    """
    pool: dict[str, list[int]] = {}
    seen = set(avoid)
    for i, row in enumerate(rows):
        key = normalise(row["text"])
        if key not in seen:
            seen.add(key)
            pool.setdefault(pattern(row), []).append(i)
    chosen: list[int] = []
    for name, k in sorted(_allocate({p: len(ix) for p, ix in pool.items()}, n).items()):
        members = pool[name][:]
        rng.shuffle(members)
        chosen.extend(members[:k])
    return [rows[i] for i in sorted(chosen)]


def _load(path: Path) -> list[Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        _fail(str(path), "top level is not a JSON list")
    return data


def _write_jsonl(path: Path, rows: Sequence[Row]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def build(src: Path, out: Path) -> Stats:
    """Read the source files in ``src`` and write every output file into ``out``."""
    stats = Stats()
    test = convert(_load(src / "test.json"), "test", "test.json", stats)
    full = _load(src / TRAIN_FILES[0])
    for name in TRAIN_FILES[1:]:
        subset = _load(src / name)
        if subset != full[: len(subset)]:
            _fail(name, f"is not a prefix of {TRAIN_FILES[0]}; train.jsonl would need a new rule")
    train = convert(full, "train", TRAIN_FILES[0], stats)
    for row in test + train:
        if not valid(row["slots"]):
            _fail(row["id"], "slots object does not match schema.json")
    rng = random.Random(SEED)
    quick_test = quickstart(test, QUICKSTART_TEST, rng, set())
    quick_train = quickstart(train, QUICKSTART_TRAIN, rng, {normalise(r["text"]) for r in quick_test})
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "test.jsonl", test)
    _write_jsonl(out / "train.jsonl", train)
    _write_jsonl(out / "quickstart_test.jsonl", quick_test)
    _write_jsonl(out / "quickstart_train.jsonl", quick_train)
    (out / "schema.json").write_text(json.dumps(schema(), indent=2) + "\n", encoding="utf-8")
    for name, rows in (("quickstart_test", quick_test), ("quickstart_train", quick_train)):
        stats.examples[name] = len(rows)
    return stats


def main(argv: Sequence[str]) -> int:
    """Command-line entry point: build, then print what the source held."""
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out = Path(argv[1]) if len(argv) == 2 else Path(__file__).resolve().parent
    stats = build(Path(argv[0]), out)
    for name, value in vars(stats).items():
        print(f"{name}: {dict(value)}")
    for name in ("test", "train", "quickstart_test", "quickstart_train"):
        rows = [json.loads(line) for line in (out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
        counts = Counter(pattern(r) for r in rows)
        print(f"{name}.jsonl: {len(rows)} rows, {(out / f'{name}.jsonl').stat().st_size} bytes")
        for key, count in counts.most_common():
            print(f"  {key:40s} {count:5d} {100 * count / len(rows):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
