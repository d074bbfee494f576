"""`python -m harness` runs the CLI."""

from harness.cli import entry

entry()
