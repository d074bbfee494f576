"""Eval sets and training pools: CSV or JSONL, checked, sampled, and guarded against leakage."""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import random
import re
import string
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import Config, DatasetConfig
from harness.errors import InputError


@dataclass(frozen=True)
class Example:
    """One labeled example: a label (classification) or a JSON object (extraction) as target."""

    id: str
    input: str
    target: Any
    stratum: str = field(default="", compare=False)  # the group stratified sampling keeps in
    # proportion: the label, or for extraction which fields are non-null
    cluster: str = field(default="", compare=False)  # `dataset.cluster`: its group ("" none)

    def __post_init__(self) -> None:
        if not self.stratum and isinstance(self.target, str):
            object.__setattr__(self, "stratum", self.target)


@dataclass(frozen=True)
class Targets:
    """How a task reads gold answers: parse a raw field, check it, name its stratum."""

    parse: Callable[[Any], Any]  # raises ValueError with a message
    check: Callable[[Any], str | None]
    stratum: Callable[[Any], str]


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


def _hint(name: str, have: Sequence[str]) -> str:
    """A did-you-mean for a missing field, else the fields there are."""
    lowered = {h.lower(): h for h in have}
    guess = lowered.get(name.lower()) or next(iter(difflib.get_close_matches(name, have, n=1)), None)
    if guess is not None:
        return f" (did you mean {guess!r}?)"
    return f" (fields: {', '.join(have) or 'none'})"


def _read_rows(path: Path, where: str, fields: Sequence[str]) -> list[tuple[int, dict[str, object]]]:
    """(line number, row) for every record of a CSV/TSV/JSONL file; checks the CSV header."""
    if not path.exists():
        raise InputError(f"{where}: file not found: {path}")
    if path.is_dir():
        raise InputError(f"{where}: {path} is a folder, not a data file")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv", ".tsv"):
        raise InputError(f"{where}: {path}: unsupported file type {suffix!r} (use .csv, .tsv or .jsonl)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise InputError(f"{where}: cannot read {path}: not UTF-8 text ({exc.reason} on line {line}); "
                         f"save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    rows: list[tuple[int, dict[str, object]]] = []
    if suffix in (".jsonl", ".ndjson"):
        # split on newlines only: str.splitlines() would also cut at U+2028 and friends, which
        # JSON allows unescaped inside strings
        for n, raw in enumerate(text.split("\n"), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{where}: {path}: line {n}: invalid JSON ({exc.msg}, column {exc.colno})"
                ) from None
            if not isinstance(obj, dict):
                raise InputError(f"{where}: {path}: line {n}: each line must be a JSON object, "
                                 f"not {type(obj).__name__}")
            rows.append((n, obj))
        return rows
    delim = "\t" if suffix == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = [str(h) for h in (reader.fieldnames or [])]
        if header:
            for f in fields:
                if f not in header:
                    raise InputError(f"{where}: {path} has no column {f!r}{_hint(f, header)}")
        line = reader.line_num
        for row in reader:
            start = line + 1  # the line the record starts on (a quoted field can span lines)
            if None in row:
                raise InputError(
                    f"{where}: {path}: line {start}: {len(header) + len(row[None])} values, but the header "
                    f"has {len(header)} columns (put text that contains {delim!r} "
                    f"in double quotes)"
                )
            rows.append((start, row))
            line = reader.line_num
    except csv.Error as exc:
        raise InputError(f"{where}: {path}: line {reader.line_num}: malformed CSV ({exc})") from None
    return rows


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def input_fields(template: str) -> list[str]:
    """The fields `dataset.input` reads: itself, or a template's {placeholders}."""
    if "{" not in template:
        return [template]
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise InputError(f"dataset.input: bad template ({exc}); write {{{{ and }}}} for literal "
                         "braces") from None
    bad = [n for n in names if not n or not n.isidentifier()]
    if bad or not names:
        raise InputError(f"dataset.input: template placeholders must be field names, like "
                         f"{{text}} (got {template!r})")
    return list(dict.fromkeys(names))


def _input_text(template: str, row: dict[str, object]) -> str:
    if "{" not in template:
        return str(row[template])
    return template.format(**{k: "" if v is None else str(v) for k, v in row.items()
                              if isinstance(k, str)})


def _target_fields(ds: DatasetConfig) -> list[str]:
    """The fields the gold answer is read from; none for unlabeled inputs (no target)."""
    if ds.target_fields:
        return list(ds.target_fields.values())
    return [ds.target] if ds.target else []


def _raw_target(ds: DatasetConfig, row: dict[str, object]) -> Any:
    if ds.target_fields:
        return {name: (None if row.get(col) in (None, "") else row[col])
                for name, col in ds.target_fields.items()}
    return row[ds.target]


def _read(path: Path, ds: DatasetConfig, where: str,
          targets: Targets | None = None) -> list[tuple[int, Example]]:
    """(line number, example) for every row of a data file, checked."""
    cluster = ds.cluster if ds.cluster and where == "dataset.eval" else None
    needed = (input_fields(ds.input) + _target_fields(ds) + ([ds.id] if ds.id else [])
              + ([cluster] if cluster else []))
    rows = _read_rows(path, where, needed)
    if not rows:
        raise InputError(f"{where}: {path} holds no examples")
    out: list[tuple[int, Example]] = []
    seen: dict[str, int] = {}
    optional = set(ds.target_fields.values()) if ds.target_fields else set()
    for i, (line, row) in enumerate(rows):
        loc = f"{where}: {path}: line {line}"
        for f in needed:
            if f in optional and f in row:
                continue  # an empty cell of a mapped field is a null value
            if row.get(f) is None:
                have = [str(k) for k in row if k is not None]
                raise InputError(f"{loc}: missing field {f!r}{_hint(f, have)}")
            if targets is not None and f in _target_fields(ds):
                continue  # an object or a JSON string: the task reads it
            if not _scalar(row[f]):
                raise InputError(f"{loc}: field {f!r} must be a string, not {type(row[f]).__name__}")
        text = _input_text(ds.input, row)
        if not text.strip():
            raise InputError(f"{loc}: empty input in field {ds.input!r}")
        unlabeled = not _target_fields(ds)  # harness distill's pool: inputs only
        if unlabeled:
            target, stratum = None, ""
        elif targets is not None:
            try:
                target = targets.parse(_raw_target(ds, row))
            except ValueError as exc:
                raise InputError(f"{loc}: field {ds.target!r}: {exc}") from None
            problem = targets.check(target)
            if problem:
                raise InputError(f"{loc}: {problem}")
            stratum = targets.stratum(target)
        else:
            target = str(row[ds.target]).strip()
            stratum = target
        if not unlabeled and (target is None or target == ""):
            raise InputError(f"{loc}: empty target in field {ds.target!r}")
        ex_id = str(row[ds.id]).strip() if ds.id else str(i)
        if not ex_id:
            raise InputError(f"{loc}: empty id in field {ds.id!r}")
        if ex_id in seen:
            raise InputError(f"{loc}: duplicate id {ex_id!r} (first on line {seen[ex_id]})")
        seen[ex_id] = line
        group = str(row[cluster]).strip() if cluster else ""
        if cluster and not group:
            raise InputError(f"{loc}: empty cluster in field {cluster!r}")
        out.append((line, Example(ex_id, text, target, stratum, group)))
    return out


def read_examples(path: Path, ds: DatasetConfig, where: str,
                  targets: Targets | None = None) -> list[Example]:
    """Read and check one data file: fields present, non-empty inputs, unique ids."""
    return [ex for _, ex in _read(path, ds, where, targets)]


def _check_labels(rows: Sequence[tuple[int, Example]], labels: Sequence[str], path: Path, where: str) -> None:
    allowed = set(labels)
    for line, ex in rows:
        if ex.target not in allowed:
            guess = difflib.get_close_matches(ex.target, labels, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else f" (labels: {', '.join(labels)})"
            raise InputError(
                f"{where}: {path}: line {line}: target {ex.target!r} is not in the label set{hint}"
            )


def stratified_sample(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """A seeded sample of n examples whose label mix follows the full set (largest remainder)."""
    if n >= len(examples):
        return list(examples)
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.stratum].append(ex)
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
        h.update(json.dumps([ex.id, ex.input, ex.target], sort_keys=True).encode("utf-8"))
    return h.hexdigest()


def load_data(cfg: Config, targets: Targets | None = None) -> Data:
    """Load eval and train files as the config says, check them, apply `limit`, remove leakage.

    `targets` says how the task reads gold answers (extraction: JSON objects, checked against
    the output schema); without it targets are labels, checked against `task.labels`.
    """
    ds = cfg.dataset
    eval_rows = _read(ds.eval, ds, "dataset.eval", targets)
    train_rows = _read(ds.train, ds, "dataset.train", targets) if ds.train else []
    eval_all = [ex for _, ex in eval_rows]
    train_all = [ex for _, ex in train_rows]
    if targets is not None:
        labels: tuple[str, ...] = ()
    elif cfg.task.labels:
        labels = cfg.task.labels
        _check_labels(eval_rows, labels, ds.eval, "dataset.eval")
        if ds.train:
            _check_labels(train_rows, labels, ds.train, "dataset.train")
    else:
        labels = tuple(sorted({ex.target for ex in eval_all} | {ex.target for ex in train_all}))
        if len(labels) < 2:
            raise InputError(f"dataset.eval: {ds.eval}: fewer than two distinct targets "
                             f"({', '.join(labels)}); a classification needs at least two labels")
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
