"""Do the run folders and files the docs name exist? Every `reports/...` path in README.md and
docs/ checked against the files git tracks (what a fresh clone holds, not what a run left in
this checkout), leaving out placeholders, what the docs themselves make, and the two files
harness writes on its own (the fine-tune registry and the history file)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from docgen.generated import markdown_files
from docgen.markdown import ROOT

REPORT_PATH = re.compile(r"(?:(?<=\.\./)|(?<![\w./-]))reports/[\w./-]*")
OUTPUT_PATH = [re.compile(r"--out[ =]+(reports/[\w./-]+)"),
               re.compile(r"run\([^)\n]*?[\"'](reports/[\w./-]+)[\"']")]
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]+")
# written by harness wherever it runs (harness.paths.registry_path, analysis.history's default)
WRITTEN_BY_HARNESS = frozenset({"reports/finetunes.json", "reports/history.jsonl"})


def tracked(root: Path) -> set[str] | None:
    """The paths git tracks under `root`, with every folder above them; None outside git."""
    try:
        done = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                              check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    files = [f for f in done.stdout.decode().split("\0") if f]
    return set(files) | {"/".join(f.split("/")[:i]) for f in files
                         for i in range(1, f.count("/") + 1)}


def missing_report_paths(root: Path = ROOT) -> list[str]:
    """`file:line: path` for every `reports/...` path named in README.md or docs/ that is not
    in the repository. Not counted: placeholders (`reports/NAME-TIMESTAMP`) and what the docs
    themselves make (a path given to `--out` or to `run(...)`, and everything under it)."""
    files = [(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8"))
             for p in markdown_files(root)]
    made = {m.group(1).rstrip("/.") for _, text in files for rx in OUTPUT_PATH
            for m in rx.finditer(text)}
    known = tracked(root)
    found = []
    for rel, text in files:
        for n, line in enumerate(text.split("\n"), 1):
            for m in REPORT_PATH.finditer(line):
                path = m.group(0).rstrip(".,:;")
                if PLACEHOLDER.search(path) or path in WRITTEN_BY_HARNESS or any(
                        path == d or path.startswith(f"{d}/") for d in made):
                    continue
                if not (path.rstrip("/") in known if known is not None
                        else (root / path).exists()):
                    found.append(f"{rel}:{n}: {path}")
    return found
