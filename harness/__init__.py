"""harness: evidence for the prompt-or-fine-tune decision.

The public API (see `harness.api`); importing `harness` is cheap, each function loads what it
needs when first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.version import __version__

__all__ = ["RunResult", "__version__", "analyse", "finetune", "gate", "load_config", "read_run", "run",
           "write_reports"]

if TYPE_CHECKING:
    from harness.api import RunResult, analyse, finetune, gate, load_config, read_run, run, write_reports


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
