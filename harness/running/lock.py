"""One run per folder at a time: an exclusive `flock` on `.harness.lock` inside the run folder.

The lock is held from before the first request until the reports and the history entry are
written; the operating system releases it when the process ends, however it ends, so a killed
run never leaves a stale lock. The file names its holder (pid, host, start time, command), and a
second run into the same folder stops with that name instead of paying for the same requests.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from harness.errors import InputError

LOCK = ".harness.lock"


class RunLock:
    """Context manager: hold the run folder's lock, or raise InputError naming the holder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (creating the folder and the lock file as needed)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise InputError(f"--out: cannot write to {self.path.parent}: "
                             f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise InputError(f"--out: {self.path.parent} is in use by another harness run "
                             f"({holder}); wait for it to finish or choose another --out") from None
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        text = (f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}: "
                f"{' '.join(['harness', *sys.argv[1:]])[:300]}\n")
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (the file stays; an unlocked file means nobody holds it)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
