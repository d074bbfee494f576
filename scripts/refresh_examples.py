"""Rerun the committed example runs with the current code and rewrite their folders under
reports/: the quickstart (reports/example), the extraction quickstart, the cascade and its
distillation, a small design-space run, and Banking77 fixed-size and sequential.

    python scripts/refresh_examples.py            # every example, in order
    python scripts/refresh_examples.py example    # only some (by folder name)
    python scripts/refresh_examples.py --list

Each run goes to a new folder beside its target (reports/.refresh-NAME), with --no-cache so
that every answer comes from today's model call, and replaces the committed folder only once
it finished; a failed run leaves the committed folder as it was. run.json names the code that
made it (`versions.harness_commit`), so the tree must be clean (commit first), unless
--allow-dirty. Fine-tuned models are trained when missing (`train_if_missing`, or `harness
finetune` first for configs/banking77.yaml) and reused from the registry otherwise.

The full Restaurant-8k run (reports/restaurant8k) is not repeated here: it takes longer than a
session; its folder stays as the code of its own commit made it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Example:
    """One committed run folder and the command that makes it (OUT: the folder to write)."""

    folder: str
    argv: tuple[str, ...]
    before: tuple[tuple[str, ...], ...] = ()  # commands run first (e.g. a fine-tune)


EXAMPLES = (
    Example("example", ("run", "configs/quickstart.yaml", "--out", "OUT", "--no-cache")),
    Example("extraction-quickstart",
            ("run", "configs/extraction_quickstart.yaml", "--out", "OUT", "--no-cache")),
    Example("cascade", ("run", "configs/cascade.yaml", "--out", "OUT", "--no-cache")),
    Example("cascade-distill", ("distill", "configs/distill.yaml", "--teacher", "fine-tuned",
                                "--student", "student", "--out", "OUT")),
    Example("banking77-fixed",
            ("run", "configs/banking77.yaml", "--limit", "400", "--out", "OUT", "--no-cache"),
            (("finetune", "configs/banking77.yaml", "--strategy", "fine-tuned"),)),
    Example("banking77-sequential",
            ("run", "configs/banking77_sequential.yaml", "--limit", "400", "--out", "OUT",
             "--no-cache")),
    Example("banking77-space",
            ("run", "configs/banking77_space.yaml", "--out", "OUT", "--no-cache")),
)


def _dirty() -> bool:
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                           ":(exclude)reports"], cwd=ROOT, capture_output=True, text=True,
                          check=False)  # the code and configs; reports/ is what this rewrites
    return done.returncode != 0 or bool(done.stdout.strip())


def _harness(argv: list[str]) -> int:
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=ROOT, check=False).returncode


def refresh(example: Example) -> float:
    """Make one example's folder again; return the seconds it took. Raises SystemExit with the
    failing command's code when a command fails (the committed folder is then untouched)."""
    target = ROOT / "reports" / example.folder
    fresh = ROOT / "reports" / f".refresh-{example.folder}"
    shutil.rmtree(fresh, ignore_errors=True)
    start = time.monotonic()
    for first in example.before:
        if (code := _harness(list(first))) != 0:
            raise SystemExit(f"error: harness {' '.join(first)} exited {code}")
    argv = [str(fresh) if a == "OUT" else a for a in example.argv]
    if (code := _harness(argv)) != 0:
        raise SystemExit(f"error: harness {' '.join(argv)} exited {code}; "
                         f"{target} is unchanged, the partial run is in {fresh}")
    old = target.with_name(f".old-{example.folder}")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    for meta in sorted(target.rglob("run.json")):  # its reports, rebuilt in their new place
        _harness(["report", str(meta.parent)])
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", help="the examples to refresh (default: all)")
    parser.add_argument("--list", action="store_true", help="list the examples and exit")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="run from a tree with uncommitted changes (run.json says -dirty)")
    args = parser.parse_args(argv)
    if args.list:
        for e in EXAMPLES:
            print(f"reports/{e.folder}: harness {' '.join(e.argv)}")
        return 0
    known = {e.folder for e in EXAMPLES}
    if unknown := [f for f in args.folders if f not in known]:
        print(f"error: unknown example(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
              file=sys.stderr)
        return 2
    if _dirty() and not args.allow_dirty:
        print("error: the work tree has uncommitted changes: commit them first (run.json names "
              "the commit that made it), or pass --allow-dirty", file=sys.stderr)
        return 2
    for e in EXAMPLES:
        if not args.folders or e.folder in args.folders:
            print(f"reports/{e.folder}: {refresh(e):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
