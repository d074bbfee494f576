"""The registry of fine-tuned models: one small JSON file of entries, each identified by what
determines its weights (base model, training data, weight-changing settings), not by name.

Several entries may share a name: two configs that train `spam-ft` on other data or settings
each get their own entry, and a run resolves the one whose key its own config produces
(`harness.training.identity`). The file's first format (version 1, one entry per name) is read
too, and rewritten in the current format on the next change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.files import write_json_atomic
from harness.paths import registry_path

LOCAL_PREFIX = "local-ft:"
RAW_ID_PREFIX = "ft:"  # OpenAI's fine-tuned ids (ft:BASE:org:suffix:id): they name an existing model
FORMAT = 2  # the registry file's format: {"version": 2, "entries": [...]}


def is_raw_model_id(name: str | None) -> bool:
    """Whether a `fine_tuned_model` is a provider model id rather than a registry name."""
    return name is not None and name.startswith(RAW_ID_PREFIX)


@dataclass(frozen=True)
class FineTune:
    """One fine-tuned model the harness produced (or attached to)."""

    name: str
    model_id: str
    provider: str  # local | openai
    base_model: str
    data_sha256: str
    hyperparameters: dict[str, Any]
    trained_tokens: int | None
    training_cost_usd: float | None
    created_at: str
    job_id: str | None = None
    adapter_path: str | None = None  # local LoRA adapter GGUF
    key: str = ""  # hash of data + provider + base model + weight-changing settings (identity)
    extra: dict[str, Any] = field(default_factory=dict)
    # the version of the rule that built the training conversations (training.data's
    # CONVERSATION_RULE); 1: entries written before the user template was applied in training
    rule: int = 1
    # hash of everything but the training examples (provider, base, settings, prompt frame):
    # how a distilled entry, whose labels no config reproduces, is matched
    recipe: str = ""

    @property
    def distilled(self) -> bool:
        """Trained on a teacher's labels (harness distill), not on a config's training pool."""
        return "distilled_from" in self.extra


class Registry:
    """Load, look up and atomically update the registry file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or registry_path()

    def entries(self, name: str | None = None) -> list[FineTune]:
        """Every entry (of one name, with or without the local-ft: prefix), oldest first."""
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if "entries" in data:
                out = [FineTune(**e) for e in data["entries"]]
            else:  # format 1: {"models": {name: entry}}
                out = [FineTune(**e) for e in data.get("models", {}).values()]
        except (OSError, json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise InputError(f"{self.path}: unreadable fine-tune registry ({exc})") from None
        if name is None:
            return out
        bare = name.removeprefix(LOCAL_PREFIX)
        return [e for e in out if e.name in (name, bare)]

    def load(self) -> dict[str, FineTune]:
        """The newest entry of each name."""
        return {e.name: e for e in self.entries()}

    def get(self, name: str) -> FineTune | None:
        """The newest entry called `name` (for inspection: a run resolves by key, `resolve`)."""
        found = self.entries(name)
        return found[-1] if found else None

    def find_key(self, key: str, name: str | None = None) -> FineTune | None:
        """The entry trained from exactly this identity (and, when given, under this name)."""
        return next((e for e in reversed(self.entries(name)) if e.key == key), None)

    def put(self, entry: FineTune) -> None:
        """Add an entry, replacing the one of the same name and key (an atomic write)."""
        kept = [e for e in self.entries() if (e.name, e.key) != (entry.name, entry.key)]
        write_json_atomic(self.path, {"version": FORMAT,
                                      "entries": [asdict(e) for e in (*kept, entry)]})
