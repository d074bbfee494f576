"""harness: evidence for the prompt-or-fine-tune decision."""

__version__ = "0.1.0"
