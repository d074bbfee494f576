"""Bad input through the real CLI: one clear line on stderr, exit code 2, no traceback, nothing written.

Each folder under ``tests/bad_inputs/`` is one case:

* ``config.yaml`` (plus the small data files it names, by relative path). A case with no
  ``config.yaml`` passes a path that does not exist; a case whose ``config.yaml`` is a folder
  passes a folder.
* ``expected.txt``: every non-empty line is a substring the error line must contain.
* ``args.txt`` (optional): extra command-line arguments for ``harness run``.

The calls of the selected tests run in parallel (each is a ~1 s Python start-up) from a module
fixture, so the isolation of ``conftest.isolated_env`` (own cache and registry, no ``OPENAI_*``
settings) is spelled out in their environment. Every case runs with ``HARNESS_BAD_INPUT_KEY`` set
(so a config that names it gets past the API-key check, e.g. to reach the unreachable-endpoint
probe) and ``HARNESS_BAD_INPUT_UNSET_KEY`` unset. The endpoint in every config is
``http://127.0.0.1:9/v1``: the discard port, where nothing listens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

CASES_DIR = Path(__file__).parent / "bad_inputs"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "expected.txt").is_file())
REPO = Path(__file__).resolve().parent.parent
SET_KEY = "HARNESS_BAD_INPUT_KEY"
UNSET_KEY = "HARNESS_BAD_INPUT_UNSET_KEY"
SECRET = "sk-test-not-a-real-key"


@dataclass(frozen=True)
class Outcome:
    """One finished CLI call on a copy of a case folder."""

    proc: subprocess.CompletedProcess[str]
    root: Path  # the call's working directory; the case copy is root/case
    work: Path
    before: dict[str, bytes]  # the case copy's files before the call
    out: Path  # the --out folder given to `harness run`


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content (to prove nothing was written there)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _env(home: Path) -> dict[str, str]:
    """The environment of every call: the isolation of conftest.isolated_env, plus the case keys."""
    env = dict(os.environ)
    env["HARNESS_CACHE_DIR"] = str(home / "cache")
    env["HARNESS_REGISTRY"] = str(home / "finetunes.json")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", UNSET_KEY):
        env.pop(var, None)
    env[SET_KEY] = SECRET
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _call(command: str, name: str, root: Path) -> Outcome:
    """Copy case `name` under root and run `python -m harness COMMAND` on it, as a user would."""
    work = root / "case"
    shutil.copytree(CASES_DIR / name, work)
    before = _files(work)
    out = root / "out"
    args = [command, str(work / "config.yaml")]
    if command == "run":
        args_file = work / "args.txt"
        extra = args_file.read_text(encoding="utf-8").split() if args_file.is_file() else []
        args += ["--out", str(out), *extra]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=root, env=_env(root / "home"),
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    return Outcome(proc, root, work, before, out)


Outcomes = dict[tuple[str, str], "Future[Outcome]"]

# `validate` runs the same checks minus the endpoint; a few cases show it (each call costs ~1 s).
# unreachable_endpoint is the good config (validate calls no model).
VALIDATE_CASES = ["unknown_key", "k_larger_than_pool", "missing_config_file", "unreachable_endpoint"]


def _jobs_of(item: pytest.Item) -> list[tuple[str, str]]:
    """The CLI calls (command, case) that one collected test of this module looks at."""
    name = getattr(item, "callspec", None) and item.callspec.params.get("name")
    return {
        "test_bad_input_run_fails_cleanly": [("run", str(name))],
        "test_bad_input_validate_fails_cleanly": [("validate", str(name))],
        "test_api_key_pasted_into_config_is_not_echoed": [("run", "api_key_in_config")],
        "test_the_shared_base_config_is_valid": [("validate", "unreachable_endpoint")],
    }.get(getattr(item, "originalname", item.name), [])


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcomes]:
    """Every CLI call the selected tests of this module need, started together."""
    module = request.module.__name__
    jobs = dict.fromkeys(job for item in request.session.items if item.module.__name__ == module
                         for job in _jobs_of(item))
    with ThreadPoolExecutor(max_workers=max(2, min(16, os.cpu_count() or 2))) as pool:
        yield {
            (command, name): pool.submit(_call, command, name, tmp_path_factory.mktemp(f"{command}-{name}"))
            for command, name in jobs
        }


def _expected(case: Path) -> list[str]:
    lines = (case / "expected.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _assert_one_clean_error(outcome: Outcome) -> str:
    """Exit 2, exactly one stderr line `error: ...` holding every expected text, no traceback."""
    proc = outcome.proc
    report = f"exit {proc.returncode}\n--- stderr ---\n{proc.stderr}--- stdout ---\n{proc.stdout}"
    assert "Traceback" not in proc.stderr + proc.stdout, report
    assert proc.returncode == 2, report
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"stderr must be exactly one line\n{report}"
    line = lines[0]
    assert line.startswith("error: "), report
    for text in _expected(outcome.work):
        assert text in line, f"{text!r} not in the error line\n{report}"
    assert SECRET not in proc.stderr + proc.stdout
    return line


def test_there_is_a_case_for_every_line_of_the_requirement() -> None:
    required = {
        "malformed_yaml", "unknown_key", "missing_config_file", "missing_eval_file",
        "unreadable_eval_file", "missing_config_field", "missing_data_field", "empty_eval_set",
        "target_outside_labels", "invalid_json_schema", "k_larger_than_pool",
        "unknown_model_in_strategy", "unknown_provider", "unset_api_key", "unreachable_endpoint",
        "duplicate_ids", "empty_input_text", "labels_file_not_a_list", "bad_template_placeholder",
        "few_shot_without_shots", "negative_limit", "jsonl_line_not_json", "config_is_directory",
    }
    assert required <= set(CASES), sorted(required - set(CASES))


@pytest.mark.parametrize("name", CASES)
def test_bad_input_run_fails_cleanly(name: str, outcomes: Outcomes) -> None:
    o = outcomes["run", name].result()
    _assert_one_clean_error(o)
    # nothing half-written: no run folder (or an empty one), case files untouched, no reports/
    assert not o.out.exists() or not any(o.out.iterdir()), sorted(map(str, o.out.rglob("*")))
    assert _files(o.work) == o.before
    assert not (o.root / "reports").exists()


@pytest.mark.parametrize("name", [n for n in VALIDATE_CASES if n != "unreachable_endpoint"])
def test_bad_input_validate_fails_cleanly(name: str, outcomes: Outcomes) -> None:
    o = outcomes["validate", name].result()
    _assert_one_clean_error(o)
    assert o.proc.stdout == ""
    assert _files(o.work) == o.before
    assert sorted(p.name for p in o.root.iterdir() if p.name != "home") == ["case"]


def test_api_key_pasted_into_config_is_not_echoed(outcomes: Outcomes) -> None:
    line = _assert_one_clean_error(outcomes["run", "api_key_in_config"].result())
    assert "abc123DEF456" not in line


def test_the_shared_base_config_is_valid(outcomes: Outcomes) -> None:
    """The cases are bad for one reason each: the config they share passes `validate`."""
    proc = outcomes["validate", "unreachable_endpoint"].result().proc
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ")
