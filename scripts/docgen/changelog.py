"""How does CHANGELOG.md read on the site? docs/changelog.md: a copy of it, its links made to
work from docs/ (pages of the site relative, other files of the repository as their paths)."""

from __future__ import annotations

import re
from pathlib import Path

from docgen.markdown import HEADER, DocsError

LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")


def _site_link(match: re.Match[str]) -> str:
    """A CHANGELOG link as it works from docs/changelog.md: docs/ pages relative, a link to
    another file of the repository as its path in code (the site does not hold it)."""
    text, target = match.group("text"), match.group("target")
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        return match.group(0)
    if target.startswith("docs/"):
        return f"[{text}]({target.removeprefix('docs/')})"
    return f"{text} (`{target}`)"


def changelog_page(root: Path) -> str:
    """docs/changelog.md: CHANGELOG.md, its links made to work from the site."""
    source = root / "CHANGELOG.md"
    if not source.is_file():
        raise DocsError(f"{source}: not found (docs/changelog.md is a copy of it)")
    text = LINK.sub(_site_link, source.read_text(encoding="utf-8"))
    return f"{HEADER}\n\n{text.strip()}\n"
