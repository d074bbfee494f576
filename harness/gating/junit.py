"""JUnit XML, the format CI systems (GitHub Actions test reporters, GitLab, Jenkins, Azure) show
natively: one <testcase> per check, a <failure> child when it failed.

Generic on purpose: the gate maps its rows to `Case`s; anything else with pass/fail checks can too.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.files import write_text_atomic
from harness.gating.compare import GateResult


@dataclass(frozen=True)
class Case:
    """One check: passed when `failure` is None."""

    classname: str
    name: str
    failure: str | None = None  # one-line message, shown as the failure's title
    details: str | None = None  # longer text, shown as the failure body or the case's output
    time_s: float = 0.0


def render(suite: str, cases: Sequence[Case], *, properties: Mapping[str, str] | None = None) -> str:
    """A <testsuites> document with one <testsuite> holding `cases` (UTF-8, with declaration)."""
    failures = sum(c.failure is not None for c in cases)
    total_time = f"{sum(c.time_s for c in cases):.3f}"
    root = ET.Element("testsuites", name=suite, tests=str(len(cases)), failures=str(failures),
                      errors="0", skipped="0", time=total_time)
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                       errors="0", skipped="0", time=total_time)
    if properties:
        props = ET.SubElement(ts, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", name=key, value=str(value))
    for c in cases:
        tc = ET.SubElement(ts, "testcase", classname=c.classname, name=c.name, time=f"{c.time_s:.3f}")
        if c.failure is not None:
            f = ET.SubElement(tc, "failure", message=c.failure, type="GateFailure")
            f.text = c.details or c.failure
        elif c.details:
            ET.SubElement(tc, "system-out").text = c.details
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(path: Path, suite: str, cases: Sequence[Case], *,
          properties: Mapping[str, str] | None = None) -> None:
    """Write the JUnit XML document atomically."""
    write_text_atomic(path, render(suite, cases, properties=properties))


def gate_cases(result: GateResult) -> list[Case]:
    """The gate as test cases: one for the run's completeness, one per arm and metric."""
    cls = f"harness.gate.{result.run_name or 'run'}"
    cases = [Case(cls, "run complete", "; ".join(result.problems) or None)]
    for r in result.rows:
        detail = (f"baseline {_pct(r.baseline)}, now {_pct(r.now)}, status {r.status}"
                  + (f", Holm p={r.p_adjusted:.3g} ({r.test})" if r.p_adjusted is not None else ""))
        cases.append(Case(cls, f"{r.arm} {r.metric}", "; ".join(r.failures) or None, detail))
    return cases


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
