"""File helpers used everywhere: one atomic write (with fsync) and one checked text read."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from harness.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[TextIO]:
    """A text file that replaces `path` only once the block has written it completely: a temp
    file in the same folder, fsynced, then renamed over `path` (removed if the block fails).

    Without the fsync a crash soon after the rename can leave an empty file behind on some
    file systems, instead of the old or the new contents. The file gets the permissions a
    plain `open()` would give it (0666 less the umask), not mkstemp's 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to `path` atomically (see atomic_writer)."""
    with atomic_writer(path) as f:
        f.write(text)


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (indented, UTF-8) written with write_text_atomic."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_text_checked(path: Path, where: str, what: str, *, encoding: str = "utf-8-sig") -> str:
    """The text of a user's file, or an InputError saying `where: cannot read WHAT PATH: why`."""
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise InputError(f"{where}: cannot read {what} {path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{where}: cannot read {what} {path}: is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: cannot read {what} {path}: not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start})") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot read {what} {path}: {exc.strerror or exc}") from None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (a GGUF is hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
