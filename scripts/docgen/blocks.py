"""Where are the generated blocks inside a hand-written page, and what do they hold? The
markers

    <!-- generated: KIND ARGS -->
    <!-- end generated -->

parsed and the text between them rendered afresh: `arms RUN_DIR` and `side-by-side RUN_A RUN_B`
(docgen.runs), `measurements` (docgen.measurements). Markers inside fenced code blocks are
text, not markers."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from docgen.markdown import DocsError
from docgen.measurements import measurements_table
from docgen.runs import arms_block, side_by_side_block

END = "<!-- end generated -->"
START = re.compile(r"^<!-- generated: (?P<kind>[A-Za-z][A-Za-z0-9_-]*)(?P<args>(?: +\S+)*) *-->$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")

KINDS: dict[str, tuple[int, Callable[..., str]]] = {
    "arms": (1, arms_block),
    "side-by-side": (2, side_by_side_block),
    "measurements": (0, measurements_table),
}


def render_block(root: Path, kind: str, args: Sequence[str]) -> str:
    """The Markdown of one block (DocsError: an unknown kind, wrong arguments, no run folder)."""
    if kind not in KINDS:
        raise DocsError(f"unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    count, make = KINDS[kind]
    if len(args) != count:
        raise DocsError(f"{kind} takes {count} argument{'s' if count != 1 else ''}, got "
                        f"{len(args)}")
    return make(root, *args)


def fill_blocks(text: str, where: str, root: Path) -> str:
    """`text` with every generated block rendered afresh (`where` names the file in errors)."""
    lines = text.split("\n")
    out: list[str] = []
    fence: re.Pattern[str] | None = None  # the closing line of the fenced code block we are in
    i = 0
    while i < len(lines):
        line = lines[i]
        opened = FENCE.match(line)
        if fence is not None or opened:
            if fence is not None and fence.match(line):
                fence = None
            elif fence is None and opened:
                mark = opened.group(1)
                fence = re.compile(rf"^ {{0,3}}{re.escape(mark[0])}{{{len(mark)},}}\s*$")
            out.append(line)
            i += 1
            continue
        stripped = line.strip()
        if stripped == END:
            raise DocsError(f"{where}:{i + 1}: {END} without a generated block before it")
        if not stripped.startswith("<!-- generated:"):
            out.append(line)
            i += 1
            continue
        start = START.match(stripped)
        if start is None:
            raise DocsError(f"{where}:{i + 1}: malformed marker {stripped!r} (write "
                            "<!-- generated: KIND ARGS -->)")
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == END
                    or lines[j].strip().startswith("<!-- generated:")), None)
        if end is None or lines[end].strip() != END:
            raise DocsError(f"{where}:{i + 1}: generated block without its {END}")
        try:
            body = render_block(root, start.group("kind"), start.group("args").split())
        except DocsError as exc:
            raise DocsError(f"{where}:{i + 1}: {exc}") from None
        out += [line, "", body, "", lines[end]]
        i = end + 1
    return "\n".join(out)
