"""What did the benchmarks measure? docs/measurements.md (per benchmark, the latest record and
the history of its figures) and the compact `measurements` block, made from the records in
benchmarks/results/*.json as benchmarks/compare.py reads and judges them."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from docgen.markdown import DASH, ROOT, DocsError, format_date, format_number, page, table


def _load_module(name: str, path: Path) -> ModuleType:
    """A module of this repository that is not in a package (benchmarks/compare.py)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DocsError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Record:
    """One benchmark's figures as measured at one commit (benchmarks/record.py)."""

    benchmark: str
    date: str
    commit: str
    dirty: bool
    machine: Mapping[str, Any]
    figures: Mapping[str, Any]


def _compare() -> ModuleType:
    return _load_module("harness_benchmarks_compare", ROOT / "benchmarks" / "compare.py")


def records(root: Path) -> dict[str, list[Record]]:
    """Every benchmark's records in benchmarks/results/, the newest first."""
    load = _compare().load
    found: dict[str, list[Record]] = {}
    for path in sorted((root / "benchmarks" / "results").glob("*.json")):
        for name, r in sorted(load(path).items()):
            found.setdefault(name, []).append(Record(
                name, str(r.get("date") or ""), str(r.get("commit") or ""), bool(r.get("dirty")),
                r.get("machine") or {}, r.get("figures") or {}))
    return {name: sorted(rs, key=lambda r: (r.date, r.commit), reverse=True)
            for name, rs in sorted(found.items())}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def flat_figures(figures: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(figure, value) with nested mappings flattened (`rounds.bare`); `target` first."""
    out: list[tuple[str, Any]] = []
    for key in sorted(figures, key=lambda k: (k != "target", k)):
        value = figures[key]
        if isinstance(value, dict) and value:
            out += flat_figures(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _commit(r: Record) -> str:
    return (f"`{r.commit[:7]}`" if r.commit else "uncommitted") + (" (dirty)" if r.dirty else "")


def _machine(m: Mapping[str, Any]) -> str:
    parts = [f"{m['cores']} cores" if m.get("cores") else "", f"Python {m['python']}"
             if m.get("python") else ""]
    return ", ".join(p for p in parts if p) or DASH


def _script(root: Path, name: str) -> str | None:
    """The benchmark script that records `name`: `emit("name"` in it, else the name quoted."""
    scripts = sorted((root / "benchmarks").glob("bench_*.py"))
    texts = {p: p.read_text(encoding="utf-8") for p in scripts}
    for test in (f'emit("{name}"', f'"{name}"'):
        hit = next((p for p in scripts if test in texts[p]), None)
        if hit is not None:
            return hit.relative_to(root).as_posix()
    return None


def _summary(path: Path) -> str:
    """The first sentence-paragraph of a script's docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split())


def headline(r: Record) -> str:
    """The judged figures of a record (benchmarks/compare.py: not inputs, not references)."""
    direction = _compare().direction
    shown = [f"{k} {_value(v)}" for k, v in sorted(r.figures.items())
             if isinstance(v, int | float) and not isinstance(v, bool) and direction(k)]
    return "; ".join(shown) or "see its table"


def measurements_table(root: Path) -> str:
    """The latest record of every benchmark, one row each (the `measurements` block)."""
    rows = []
    for name, rs in records(root).items():
        r = rs[0]
        rows.append((f"`{name}`", headline(r), _value(r.figures["target"]) if "target" in r.figures
                     else DASH, format_date(r.date), _commit(r), _machine(r.machine)))
    return table(("benchmark", "figures", "target", "date", "commit", "machine"), rows)


def _record_rows(r: Record) -> list[tuple[str, ...]]:
    return [(f"`{k}`", _value(v), format_date(r.date), _commit(r), _machine(r.machine))
            for k, v in flat_figures(r.figures)]


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def history_table(rs: Sequence[Record]) -> str:
    """One row per record, the newest first: the judged figures, and the inputs that differ
    between the records (the work measured: `examples`, `requests`)."""
    direction = _compare().direction
    names = sorted({k for r in rs for k, v in r.figures.items() if _scalar(v)})
    judged = [k for k in names if direction(k)]
    varying = [k for k in names if not direction(k)
               and len({json.dumps(r.figures.get(k)) for r in rs}) > 1]
    columns = varying + judged
    rows = [(format_date(r.date), _commit(r), _machine(r.machine),
             *[_value(r.figures[k]) if k in r.figures else DASH for k in columns]) for r in rs]
    return table(("date", "commit", "machine", *[f"`{k}`" for k in columns]), rows)


def measurements_page(root: Path) -> str:
    """docs/measurements.md: per benchmark, the latest record and the history of its figures."""
    every = records(root)
    header = ("figure", "value", "date", "commit", "machine")
    parts = ["## Latest\n\n" + measurements_table(root)]
    for name, rs in every.items():
        script = _script(root, name)
        about = f"Recorded by `python {script} --json benchmarks/results/`" if script else ""
        summary = _summary(root / script) if script else ""
        text = f"## {name}\n\n" + (f"{about}: {summary}\n\n" if summary else
                                    f"{about}.\n\n" if about else "")
        text += f"Latest record ({format_date(rs[0].date)}):\n\n" + table(header, _record_rows(rs[0]))
        if rs[1:]:
            text += (f"\n\nEvery record of `{name}`, the newest first (the figures "
                     "`benchmarks/compare.py` judges, and the others that differ between "
                     "records):\n\n" + history_table(rs))
        parts.append(text)
    intro = ("Generated from the benchmark records in `benchmarks/results/` (one file per "
             "measured commit, written by each script's `--json benchmarks/results/`; see "
             "`benchmarks/record.py`). `python benchmarks/compare.py` compares the newest "
             "record of each benchmark with the one before it. The figures are as recorded; "
             "the machines are shared, so treat timings as lower bounds and compare records of "
             "one machine.")
    return page("Measurements", intro, "\n\n".join(parts))
