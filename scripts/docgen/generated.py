"""Which files does the generator own or fill, what should they read, and which are stale? The
whole pages (docs/reference/{config,cli,api}.md, docs/measurements.md, docs/changelog.md, each
starting with `HEADER`) and the blocks inside README.md and docs/**/*.md, made together; a part
that cannot be made is listed as an error and the others are still made."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from docgen.blocks import fill_blocks
from docgen.changelog import changelog_page
from docgen.code_reference import api_page, cli_page
from docgen.config_reference import config_page
from docgen.markdown import HEADER, ROOT, DocsError
from docgen.measurements import measurements_page

CONFIG_PAGE = "docs/reference/config.md"
CLI_PAGE = "docs/reference/cli.md"
API_PAGE = "docs/reference/api.md"
MEASUREMENTS_PAGE = "docs/measurements.md"
CHANGELOG_PAGE = "docs/changelog.md"
WHOLE_PAGES = (CONFIG_PAGE, CLI_PAGE, API_PAGE, MEASUREMENTS_PAGE, CHANGELOG_PAGE)


def _page_makers(root: Path) -> dict[str, Callable[[], str]]:
    return {CONFIG_PAGE: config_page, CLI_PAGE: cli_page, API_PAGE: api_page,
            MEASUREMENTS_PAGE: lambda: measurements_page(root),
            CHANGELOG_PAGE: lambda: changelog_page(root)}


def whole_pages(root: Path) -> dict[str, str]:
    """Every whole generated page: path relative to `root` -> content (DocsError: one cannot
    be made)."""
    return {rel: make() for rel, make in _page_makers(root).items()}


def markdown_files(root: Path) -> list[Path]:
    """README.md and every page under docs/, sorted."""
    readme = root / "README.md"
    return ([readme] if readme.is_file() else []) + sorted((root / "docs").rglob("*.md"))


@dataclass(frozen=True)
class Generated:
    """What the generator would write (path relative to the root -> content), and the parts
    it could not make (each message names its file)."""

    files: dict[str, str]
    errors: list[str]


def generate(root: Path) -> Generated:
    """Every file the generator owns or fills, as it should read; a file whose part cannot be
    made is left out and its error listed, the others are still made."""
    files: dict[str, str] = {}
    errors: list[str] = []
    for rel, make in _page_makers(root).items():
        try:
            files[rel] = make()
        except DocsError as exc:
            errors.append(f"{rel}: {exc}")
    for path in markdown_files(root):
        rel = path.relative_to(root).as_posix()
        if rel in WHOLE_PAGES:
            continue
        text = path.read_text(encoding="utf-8")
        if text.startswith(HEADER):  # a generated page no longer made: left alone
            continue
        try:
            filled = fill_blocks(text, rel, root)
        except DocsError as exc:
            errors.append(str(exc))
            continue
        if filled != text or "<!-- generated:" in text:
            files[rel] = filled
    return Generated(dict(sorted(files.items())), errors)


def expected(root: Path) -> dict[str, str]:
    """Every file the generator owns or fills: path relative to `root` -> its content
    (DocsError listing every part that cannot be made)."""
    made = generate(root)
    if made.errors:
        raise DocsError("; ".join(made.errors))
    return made.files


def stale_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """The paths of `files` that are missing under `root` or read otherwise."""
    return [rel for rel, text in files.items() if not (root / rel).is_file()
            or (root / rel).read_text(encoding="utf-8") != text]


def stale(root: Path = ROOT) -> list[str]:
    """The files whose generated parts are not what the generator would write (DocsError when
    a part cannot be made)."""
    return stale_files(root, expected(root))


def write(root: Path = ROOT) -> tuple[list[str], list[str]]:
    """Write every generated page and block that can be made: (the files changed, the
    errors of the parts that could not be made)."""
    made = generate(root)
    return write_files(root, made), made.errors


def write_files(root: Path, made: Generated) -> list[str]:
    """Write the files of `made` that are stale under `root`: the paths written."""
    changed = stale_files(root, made.files)
    for rel in changed:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(made.files[rel], encoding="utf-8")
    return changed
