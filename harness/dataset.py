"""Eval sets and training pools: CSV or JSONL, checked, sampled, and guarded against leakage."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.config import Config, DatasetConfig
from harness.errors import InputError


@dataclass(frozen=True)
class Example:
    """One labeled example."""

    id: str
    input: str
    target: str


@dataclass(frozen=True)
class Data:
    """Everything a run needs from the data files."""

    eval: tuple[Example, ...]
    train: tuple[Example, ...]  # the few-shot / fine-tuning pool, leakage removed
    labels: tuple[str, ...]
    leaked: int  # train examples dropped because their input is also in the eval set
    eval_total: int  # size of the eval file before `limit`
    sha256: str  # hash of the eval examples actually used


def normalise(text: str) -> str:
    """Whitespace- and case-insensitive form of an input, for leakage checks."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def _read_rows(path: Path, where: str) -> list[dict[str, object]]:
    if not path.exists():
        raise InputError(f"{where}: file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read {path}: {exc}") from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows: list[dict[str, object]] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{n}: each line must be a JSON object")
            rows.append(obj)
        return rows
    if path.suffix.lower() in (".csv", ".tsv"):
        delim = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delim))
        except csv.Error as exc:
            raise InputError(f"{path}: malformed CSV: {exc}") from None
    raise InputError(f"{where}: unsupported file type {path.suffix!r} (use .csv or .jsonl)")


def read_examples(path: Path, ds: DatasetConfig, where: str) -> list[Example]:
    """Read and check one data file: fields present, non-empty inputs, unique ids."""
    rows = _read_rows(path, where)
    if not rows:
        raise InputError(f"{where}: {path} holds no examples")
    fields = [ds.input, ds.target] + ([ds.id] if ds.id else [])
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        loc = f"{path}: row {i + 1}"
        for f in fields:
            if f not in row or row[f] is None:
                have = ", ".join(map(str, row)) or "none"
                raise InputError(f"{loc}: missing field {f!r} (fields: {have})")
        text = str(row[ds.input])
        if not text.strip():
            raise InputError(f"{loc}: empty input in field {ds.input!r}")
        target = str(row[ds.target]).strip()
        if not target:
            raise InputError(f"{loc}: empty target in field {ds.target!r}")
        ex_id = str(row[ds.id]) if ds.id else str(i)
        if ex_id in seen:
            raise InputError(f"{loc}: duplicate id {ex_id!r} (first at row {seen[ex_id] + 1})")
        seen[ex_id] = i
        examples.append(Example(ex_id, text, target))
    return examples


def _check_labels(examples: Sequence[Example], labels: Sequence[str], path: Path) -> None:
    allowed = set(labels)
    for i, ex in enumerate(examples):
        if ex.target not in allowed:
            import difflib

            guess = difflib.get_close_matches(ex.target, labels, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            raise InputError(
                f"{path}: example {ex.id!r} (row {i}): target {ex.target!r} is not in the label set{hint}"
            )


def stratified_sample(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """A seeded sample of n examples whose label mix follows the full set (largest remainder)."""
    if n >= len(examples):
        return list(examples)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.target].append(ex)
    total = len(examples)
    quotas = {lab: n * len(group) / total for lab, group in by_label.items()}
    counts = {lab: int(q) for lab, q in quotas.items()}
    rest = n - sum(counts.values())
    order = sorted(quotas, key=lambda lab: (-(quotas[lab] - counts[lab]), lab))
    for lab in order[:rest]:
        counts[lab] += 1
    rng = random.Random(seed)
    chosen: set[int] = set()
    index = {id(ex): i for i, ex in enumerate(examples)}
    for lab in sorted(by_label):
        for ex in rng.sample(by_label[lab], counts[lab]):
            chosen.add(index[id(ex)])
    return [examples[i] for i in sorted(chosen)]


def examples_sha256(examples: Sequence[Example]) -> str:
    """A stable hash of the examples' ids, inputs and targets."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.id, ex.input, ex.target]).encode("utf-8"))
    return h.hexdigest()


def load_data(cfg: Config) -> Data:
    """Load eval and train files as the config says, check them, apply `limit`, remove leakage."""
    ds = cfg.dataset
    eval_all = read_examples(ds.eval, ds, "dataset.eval")
    train_all = read_examples(ds.train, ds, "dataset.train") if ds.train else []
    if cfg.task.labels:
        labels = cfg.task.labels
        _check_labels(eval_all, labels, ds.eval)
        if ds.train:
            _check_labels(train_all, labels, ds.train)
    else:
        labels = tuple(sorted({ex.target for ex in eval_all} | {ex.target for ex in train_all}))
        if len(labels) < 2:
            raise InputError(f"dataset.eval: {ds.eval}: fewer than two distinct targets")
    eval_set = stratified_sample(eval_all, ds.limit, ds.seed) if ds.limit else eval_all
    seen = {normalise(ex.input) for ex in eval_all}
    pool = [ex for ex in train_all if normalise(ex.input) not in seen]
    return Data(
        eval=tuple(eval_set),
        train=tuple(pool),
        labels=tuple(labels),
        leaked=len(train_all) - len(pool),
        eval_total=len(eval_all),
        sha256=examples_sha256(eval_set),
    )
