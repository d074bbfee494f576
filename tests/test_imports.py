"""Issue 25, item 1 (in part): commands that compute no statistics import neither pandas,
matplotlib nor scipy. Each runs in a fresh interpreter; `sys.modules` is read at its end, so
the check is deterministic (no timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "matplotlib", "scipy")
PROBE = """
import json, sys
from harness.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("argv", [
    ["validate", "configs/quickstart.yaml"],
    ["history", "configs/quickstart.yaml", "--history", "{tmp}/none.jsonl"],
    ["cache", "info"],
    ["--help"],
    ["run", "--help"],
])
def test_light_commands_import_no_statistics_stack(argv, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{' '.join(argv)} imported {loaded}"
