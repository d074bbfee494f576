"""The generated parts of the docs: whole reference pages, and blocks inside hand-written pages.

    python scripts/gen_docs.py            # rewrite every generated page and block
    python scripts/gen_docs.py --check    # write nothing; exit 1 listing the stale files

The pages and blocks it makes, and how, are in the package next to it (scripts/docgen/; its
docstring lists them): this script parses the arguments, makes every part, and writes or checks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)  # scripts/, which holds the docgen package
if HERE not in sys.path:  # (run as a script it is there; loaded by path, as the tests do, not)
    sys.path.insert(0, HERE)

from docgen.generated import generate, stale_files, write_files  # noqa: E402
from docgen.markdown import ROOT  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0: written (or, with --check, all current); 1: --check found stale files; 2: a
    generated part cannot be made (the others are still written, or checked)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 listing the "
                    "stale files")
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    args = ap.parse_args(argv)
    made = generate(args.root)
    found = stale_files(args.root, made.files) if args.check else write_files(args.root, made)
    for rel in found:
        print(f"stale: {rel} (run python scripts/gen_docs.py)" if args.check else f"wrote {rel}")
    for error in made.errors:
        print(f"error: {error}", file=sys.stderr)
    return 2 if made.errors else 1 if args.check and found else 0


if __name__ == "__main__":
    raise SystemExit(main())
