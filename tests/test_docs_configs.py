"""Every config the docs show is checked (issue 28, item 5): `harness validate` on every file in
configs/ and on every ```yaml block of README.md and docs/. A block with `name:` and `task:` is
a whole config, read as if it lay in configs/ (its `../datasets/...` paths resolve there); any
other block is a fragment, merged onto configs/quickstart.yaml (mappings key by key, anything
else replaced) and validated as that config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```yaml[^\n]*\n(.*?)^```", re.M | re.S)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append((f"{page.relative_to(ROOT)}:{line}", m.group(1)))
    return out


def _merge(base: Any, fragment: Any) -> Any:
    if isinstance(base, dict) and isinstance(fragment, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in fragment.items()}}
    return fragment


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder laid out like the repo: configs/ beside a link to datasets/."""
    (tmp_path / "datasets").symlink_to(ROOT / "datasets")
    (tmp_path / "configs").mkdir()
    return tmp_path / "configs"


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_committed_config_validates(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "configs" / config)]) == 0, capsys.readouterr().err


BLOCKS = _blocks()


def test_the_docs_have_yaml_blocks() -> None:
    assert len(BLOCKS) >= 10  # control: the pattern finds them


@pytest.mark.parametrize(("where", "text"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_every_yaml_block_of_the_docs_validates(where: str, text: str, project: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"{where}: a ```yaml block that is not a mapping"
    if not ("name" in data and "task" in data):
        base = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
        data = _merge(base, data)
    path = project / "block.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code = main(["validate", str(path)])
    assert code == 0, f"{where}: {capsys.readouterr().err.strip()}"


def test_a_wrong_fragment_is_caught(project: Path) -> None:
    """Control: the same merge and validation refuse a fragment with a bad value."""
    base = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    path = project / "block.yaml"
    path.write_text(yaml.safe_dump(_merge(base, {"run": {"concurrency": "many"}})))
    assert main(["validate", str(path)]) == 2
