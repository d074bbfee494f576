"""The command line's progress lines: a bar for a run's requests, one for a fine-tune's steps
with the loss, and `log` for a line on stderr (part of the CLI: the only place that writes to
the terminal)."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


def log(message: str) -> None:
    """One line on stderr (what the library's `log=` callbacks say, and warnings)."""
    print(message, file=sys.stderr)


class ProgressBar:
    """A one-line progress bar on a terminal; occasional plain lines otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self._last_pct = -1
        self._last_t = 0.0

    def __call__(self, done: int, total: int, info: str) -> None:
        try:
            self._draw(done, total, info)
        except (BrokenPipeError, ValueError):
            self.stream = open(os.devnull, "w")  # noqa: SIM115 - the reader went away: the run goes on

    def _draw(self, done: int, total: int, info: str) -> None:
        pct = int(100 * done / total) if total else 100
        now = time.monotonic()
        if self.tty:
            if now - self._last_t < 0.1 and done < total:
                return
            width = 30
            fill = int(width * done / total) if total else width
            rate = done / max(now - self.start, 1e-9)
            self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total} "
                              f"{rate:5.1f}/s {info[:30]:<30}")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
        elif pct // 10 != self._last_pct // 10 or done >= total:
            skipped = f", {info}" if "not requested" in info else ""
            self.stream.write(f"{self.label}: {done}/{total} ({pct}%){skipped}\n")
            self.stream.flush()
        self._last_pct, self._last_t = pct, now


def loss_progress(step: int, total: int, loss: float) -> None:
    """Training progress with the loss: a live line on a terminal, every 10% otherwise."""
    width = 30
    fill = int(width * step / total) if total else width
    line = f"fine-tune [{'#' * fill}{'.' * (width - fill)}] step {step}/{total} loss {loss:.4f}"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if step >= total else ""))
    elif step == 1 or step >= total or (10 * step) // total != (10 * (step - 1)) // total:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
