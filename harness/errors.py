"""The errors the CLI prints as one clean line; anything else is a bug and surfaces with a traceback."""

from __future__ import annotations


class HarnessError(Exception):
    """Base class for errors that end a command with a clear one-line message."""

    exit_code = 1


class InputError(HarnessError):
    """Bad input from the user: config, data, arguments. Exit code 2, nothing written."""

    exit_code = 2


class RunError(HarnessError):
    """A run that could not complete (exit code 1)."""

    exit_code = 1


class FatalAPIError(RunError):
    """An endpoint answer that makes every further request pointless (bad key, no quota)."""
