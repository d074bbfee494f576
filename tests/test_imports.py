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
    ["plan", "configs/quickstart.yaml"],
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


RUN_PROBE = """
import json, sys
sys.path.insert(0, {tests!r})
from fake_openai import FakeOpenAI
from harness.cli import main

seen = []

def responder(body):
    if not seen:  # what harness had imported when it sent its first request
        seen.append(sorted(m for m in {heavy!r} if m in sys.modules))
    return json.dumps({{"label": "billing"}})

with FakeOpenAI(responder=responder) as server:
    cfg = sys.argv[1]
    text = open(cfg).read().replace("http://127.0.0.1:9/v1", server.base_url)
    open(cfg, "w").write(text)
    main(["run", cfg, "--out", sys.argv[2], "--no-cache"])
print(json.dumps(seen[0] if seen else None))
"""


def test_a_run_imports_no_statistics_stack_before_its_first_request(make_config, tmp_path):
    cfg = make_config(n_eval=2, strategies=[{"name": "zero-shot", "type": "zero_shot",
                                             "model": "fake"}])
    # numpy too: the run needs it only once its answers are scored for the reports
    probe = RUN_PROBE.format(tests=str(ROOT / "tests"), heavy=(*HEAVY, "numpy"))
    done = subprocess.run([sys.executable, "-c", probe, str(cfg), str(tmp_path / "run")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "TEST_API_KEY": "x",
                               "HARNESS_CACHE_DIR": str(tmp_path / "cache")})
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"harness run had imported {loaded} before its first request"


SEQUENTIAL_STRATEGIES = [{"name": "zero-shot", "type": "zero_shot", "model": "fake"},
                         {"name": "ft", "type": "fine_tuned", "model": "fake",
                          "fine_tuned_model": "ft:fake-model:x"}]


def test_plan_of_a_sequential_config_imports_no_statistics_stack(make_config, tmp_path):
    """The sequential design's expected examples are simulated with numpy alone."""
    cfg = make_config(n_eval=40, strategies=SEQUENTIAL_STRATEGIES,
                      run={"sequential": {"enabled": True, "look_every": 10}})
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "plan", str(cfg)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "sequential (" in done.stdout
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"plan imported {loaded}"


def test_a_sequential_run_imports_no_statistics_stack_before_its_first_request(make_config,
                                                                                tmp_path):
    """Its looks need numpy (the confidence sequence), and nothing heavier."""
    cfg = make_config(n_eval=20, strategies=SEQUENTIAL_STRATEGIES,
                      run={"sequential": {"enabled": True, "look_every": 10}})
    probe = RUN_PROBE.format(tests=str(ROOT / "tests"), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe, str(cfg), str(tmp_path / "run")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "TEST_API_KEY": "x",
                               "HARNESS_CACHE_DIR": str(tmp_path / "cache")})
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"a sequential run had imported {loaded} before its first request"
