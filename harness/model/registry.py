"""The registry of fine-tuned models: one small JSON file, name -> how to reach the model."""

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
    key: str = ""  # hash of data + base model + hyperparameters (idempotency)
    extra: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Load, look up and atomically update the registry file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or registry_path()

    def load(self) -> dict[str, FineTune]:
        """All entries by name (an absent file is an empty registry)."""
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {name: FineTune(**entry) for name, entry in data.get("models", {}).items()}
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise InputError(f"{self.path}: unreadable fine-tune registry ({exc})") from None

    def get(self, name: str) -> FineTune | None:
        """The entry called `name` (with or without the local-ft: prefix)."""
        entries = self.load()
        return entries.get(name) or entries.get(name.removeprefix(LOCAL_PREFIX))

    def find_key(self, key: str) -> FineTune | None:
        """The entry trained from exactly this data + base model + hyperparameters."""
        return next((e for e in self.load().values() if e.key == key), None)

    def put(self, entry: FineTune) -> None:
        """Add or replace an entry (an atomic write)."""
        entries = self.load()
        entries[entry.name] = entry
        write_json_atomic(self.path, {"models": {n: asdict(e) for n, e in sorted(entries.items())}})
