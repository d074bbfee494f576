"""The README's screenshot: the quickstart's committed report (reports/example/report.html)
taken in headless Chromium as docs/img/quickstart-report.png.

    python scripts/screenshot.py [--report reports/example/report.html] [--out PNG]

Needs a Chromium binary (`apt-get install chromium`, or $HARNESS_CHROMIUM). The page is taken
at a laptop's width, its top part: the verdict, the arms table and the learning curve.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1280, 1500


def chromium() -> str | None:
    """$HARNESS_CHROMIUM, else the first Chromium or Chrome on PATH."""
    return os.environ.get("HARNESS_CHROMIUM") or next(
        (p for p in map(shutil.which, BROWSERS) if p), None)


def main(argv: list[str] | None = None) -> int:
    """Take the screenshot (see the module docstring); exit 2 with one line when it cannot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default=str(ROOT / "reports" / "example" / "report.html"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "quickstart-report.png"))
    args = parser.parse_args(argv)
    report, out = Path(args.report).resolve(), Path(args.out).resolve()
    binary = chromium()
    if binary is None:
        print("error: no Chromium found (apt-get install chromium, or set $HARNESS_CHROMIUM)",
              file=sys.stderr)
        return 2
    if not report.is_file():
        print(f"error: {report}: no such report", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
             f"--screenshot={out}", report.as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not out.is_file():
        print(f"error: Chromium exited {done.returncode}: {done.stderr.strip()[-300:]}",
              file=sys.stderr)
        return 2
    print(f"{out} ({out.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
