"""Do the run folders and files the docs name exist? Every `reports/...` path in README.md and
docs/ checked against the repository, leaving out placeholders and what the docs themselves
make."""

from __future__ import annotations

import re
from pathlib import Path

from docgen.generated import markdown_files
from docgen.markdown import ROOT

REPORT_PATH = re.compile(r"(?:(?<=\.\./)|(?<![\w./-]))reports/[\w./-]*")
OUTPUT_PATH = [re.compile(r"--out[ =]+(reports/[\w./-]+)"),
               re.compile(r"run\([^)\n]*?[\"'](reports/[\w./-]+)[\"']")]
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]+")


def missing_report_paths(root: Path = ROOT) -> list[str]:
    """`file:line: path` for every `reports/...` path named in README.md or docs/ that is not
    in the repository. Not counted: placeholders (`reports/NAME-TIMESTAMP`) and what the docs
    themselves make (a path given to `--out` or to `run(...)`, and everything under it)."""
    files = [(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8"))
             for p in markdown_files(root)]
    made = {m.group(1).rstrip("/.") for _, text in files for rx in OUTPUT_PATH
            for m in rx.finditer(text)}
    found = []
    for rel, text in files:
        for n, line in enumerate(text.split("\n"), 1):
            for m in REPORT_PATH.finditer(line):
                path = m.group(0).rstrip(".,:;")
                if PLACEHOLDER.search(path) or any(path == d or path.startswith(f"{d}/")
                                                   for d in made):
                    continue
                if not (root / path).exists():
                    found.append(f"{rel}:{n}: {path}")
    return found
