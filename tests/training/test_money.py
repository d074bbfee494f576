"""Issue 23, part A (money) and E17, through the CLI: distill asks before paid work, the
registry identifies a model by what determines it, a fine-tune estimate above its cap is
refused, Ctrl-C during a job says the job goes on, `finetune --cancel` cancels it, and the job
API calls are retried by the harness's one policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import yaml
from fake_openai import FakeOpenAI

from harness.cli import main
from harness.model.registry import FineTune, Registry
from harness.training import openai_job

SETTINGS: dict[str, Any] = {"finetune": {"epochs": 2, "seed": 3, "poll_interval": 0.01}}
FT = {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": "spam-ft"}
ZS = {"name": "zs", "type": "zero_shot", "model": "fake"}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEST_API_KEY", "k")


def _variant(path: Path, name: str, **finetune: Any) -> Path:
    """A copy of the config with other finetune settings."""
    cfg = yaml.safe_load(path.read_text())
    cfg["finetune"] = {**cfg.get("finetune", {}), **finetune}
    out = path.with_name(name)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def _errors(err: str) -> list[str]:
    assert "Traceback" not in err
    return [x for x in err.splitlines() if x.startswith("error:")]


# --------------------------------------------------------------- A1: distill asks first


def test_distill_without_yes_and_without_a_terminal_starts_nothing(make_config, tmp_path, capsys):
    strategies = [ZS, {**FT, "fine_tuned_model": "router"}]
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, strategies=strategies, extra=SETTINGS)
        code = main(["distill", str(cfg), "--teacher", "zs", "--student", "ft",
                     "--out", str(tmp_path / "d")])
        assert code == 2 and not server.requests and server.job_creates == 0
    err = capsys.readouterr().err
    assert "estimate for distillation: the teacher zs labels" in err
    assert _errors(err)[-1].endswith("pass --yes to confirm non-interactively")
    assert Registry().entries() == []


def test_distill_with_yes_labels_and_trains(make_config, tmp_path, capsys):
    strategies = [ZS, {**FT, "fine_tuned_model": "router"}]
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, strategies=strategies, extra=SETTINGS)
        assert main(["distill", str(cfg), "--teacher", "zs", "--student", "ft",
                     "--out", str(tmp_path / "d"), "--yes"]) == 0
        assert server.job_creates == 1
    assert Registry().get("router-distilled") is not None


@pytest.mark.parametrize("teacher, student_model, teacher_model", [
    ("ft", "router", None),  # the teacher is the student
    ("big", "router", "router"),  # the teacher's model is the student's own
    ("big", "router", "router-distilled"),  # ... or the student's distilled model
])
def test_a_teacher_that_is_the_student_is_refused(make_config, tmp_path, capsys, teacher,
                                                  student_model, teacher_model):
    strategies = [ZS, {**FT, "fine_tuned_model": student_model}]
    if teacher_model:
        strategies.append({"name": "big", "type": "fine_tuned", "model": "fake",
                           "fine_tuned_model": teacher_model})
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, strategies=strategies, extra=SETTINGS)
        code = main(["distill", str(cfg), "--teacher", teacher, "--student", "ft",
                     "--out", str(tmp_path / "d"), "--yes"])
        assert code == 2 and not server.requests and server.job_creates == 0
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "--teacher" in errors[0] and "student" in errors[0]


# ------------------------------------------------------------- A2: registry identity


def test_two_configs_of_one_name_keep_their_own_models(make_config, tmp_path, capsys):
    with FakeOpenAI() as server:
        ft = make_config(server.base_url, strategies=[ZS, FT], extra=SETTINGS, n_eval=2)
        ft4 = _variant(ft, "ft4.yaml", epochs=4)
        assert main(["finetune", str(ft), "--yes"]) == 0
        assert main(["finetune", str(ft4), "--yes"]) == 0
        assert server.job_creates == 2
        entries = Registry().entries("spam-ft")
        assert len(entries) == 2 and len({e.model_id for e in entries}) == 2
        by_epochs = {e.hyperparameters["n_epochs"]: e for e in entries}
        # run ft.yaml: its own model, never ft4's, and it says which entry
        server.requests.clear()
        assert main(["run", str(ft), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
        asked = {b["model"] for b in server.requests}
        assert by_epochs[2].model_id in asked and by_epochs[4].model_id not in asked
        # the same request again pays nothing
        assert main(["finetune", str(ft), "--yes"]) == 0
        assert server.job_creates == 2
    err = capsys.readouterr().err
    assert f"strategy ft evaluates spam-ft: entry {by_epochs[2].key[:12]} (trained" in err


def test_a_suffix_changes_no_weight_so_the_model_is_reused(make_config, tmp_path):
    with FakeOpenAI() as server:
        ft = make_config(server.base_url, strategies=[FT], extra=SETTINGS, n_eval=2)
        assert main(["finetune", str(ft), "--yes"]) == 0
        assert main(["finetune", str(_variant(ft, "other.yaml", suffix="v2")), "--yes"]) == 0
        assert server.job_creates == 1


def test_a_deleted_registry_reuses_the_providers_finished_job(make_config, tmp_path, capsys):
    with FakeOpenAI() as server:
        ft = make_config(server.base_url, strategies=[FT], extra=SETTINGS, n_eval=2)
        assert main(["finetune", str(ft), "--yes"]) == 0
        first = Registry().get("spam-ft")
        assert first is not None
        job = server.jobs[str(first.job_id)]
        assert job["metadata"]["harness_key"] == first.key
        Registry().path.unlink()
        assert main(["finetune", str(ft)]) == 0  # no --yes: nothing is paid, nothing asked
        assert server.job_creates == 1
    again = Registry().get("spam-ft")
    assert again is not None and again.model_id == first.model_id
    assert "found by its metadata" in capsys.readouterr().err


def test_an_entry_of_other_contents_is_never_evaluated(make_config, tmp_path, capsys):
    other = FineTune(name="spam-ft", model_id="ft:fake-model:org:other:1", provider="openai",
                     base_model="fake-model", data_sha256="f" * 64, hyperparameters={"n_epochs": 9},
                     trained_tokens=1, training_cost_usd=None, created_at="2026-01-01T00:00:00+00:00",
                     key="e" * 64, rule=2)
    Registry().put(other)
    with FakeOpenAI() as server:
        ft = make_config(server.base_url, strategies=[ZS, FT], extra=SETTINGS, n_eval=2)
        assert main(["run", str(ft), "--out", str(tmp_path / "run"), "--allow-missing"]) == 0
        assert other.model_id not in {b["model"] for b in server.requests}
    err = capsys.readouterr().err
    assert "trained on other data or settings than this config's" in err


def test_an_entry_trained_under_the_old_conversation_rule_is_named(make_config, tmp_path, capsys):
    old = FineTune(name="spam-ft", model_id="ft:fake-model:org:old:1", provider="openai",
                   base_model="fake-model", data_sha256="a" * 64, hyperparameters={},
                   trained_tokens=1, training_cost_usd=None, created_at="2025-01-01T00:00:00+00:00",
                   key="b" * 64)  # rule 1: written before the user template was trained on
    Registry().put(old)
    with FakeOpenAI() as server:
        ft = make_config(server.base_url, strategies=[ZS, FT], extra={
            **SETTINGS, "task": {"type": "classification", "instructions": "Route it.",
                                 "labels": "labels.json",
                                 "prompts": {"user": "Customer message: {input}"}}}, n_eval=2)
        assert main(["run", str(ft), "--out", str(tmp_path / "run"), "--allow-missing"]) == 0
        assert old.model_id not in {b["model"] for b in server.requests}
    assert "was trained before training conversations used the prompt templates" in \
        capsys.readouterr().err


def test_the_first_registry_format_is_still_read(tmp_path):
    path = tmp_path / "old.json"
    entry = {"name": "x", "model_id": "ft:m:o:s:1", "provider": "openai", "base_model": "m",
             "data_sha256": "0" * 64, "hyperparameters": {}, "trained_tokens": 1,
             "training_cost_usd": None, "created_at": "2025-01-01", "key": "k"}
    path.write_text(json.dumps({"models": {"x": entry}}))
    reg = Registry(path)
    assert reg.get("x") is not None and reg.get("x").rule == 1  # type: ignore[union-attr]
    reg.put(FineTune(**{**entry, "key": "k2"}))
    assert len(reg.entries("x")) == 2  # both contents kept under one name


# --------------------------------------------------- A3: the fine-tuning cost cap


def test_a_fine_tune_estimate_above_its_cap_is_refused(make_config, tmp_path, capsys):
    with FakeOpenAI() as server:
        extra = {"finetune": {**SETTINGS["finetune"], "max_cost_usd": 0.001},
                 "models": {"fake": {"provider": "openai", "model": "fake-model",
                                     "base_url": server.base_url, "api_key_env": "TEST_API_KEY",
                                     "price": {"input": 1, "output": 2, "training": 25}}}}
        cfg = make_config(server.base_url, strategies=[FT], extra=extra)
        assert main(["finetune", str(cfg), "--yes"]) == 2
        assert server.job_creates == 0 and not server.files
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "finetune.max_cost_usd" in errors[0] and "$0.001" in errors[0]


# ------------------------------------------------- A4: Ctrl-C and finetune --cancel


def test_ctrl_c_during_a_job_says_it_keeps_running_and_cancel_stops_it(
        make_config, tmp_path, capsys, monkeypatch):
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, strategies=[FT], extra=SETTINGS)
        monkeypatch.setattr(openai_job.time, "sleep", interrupt)
        assert main(["finetune", str(cfg), "--yes"]) == 130
        (job_id,) = server.jobs
        err = capsys.readouterr().err
        line = _errors(err)[-1]
        assert job_id in line and "keeps running (and billing)" in line
        assert f"harness finetune {cfg} --cancel" in line and "re-attach" in line
        assert main(["finetune", str(cfg), "--cancel"]) == 0
        assert server.jobs[job_id]["status"] == "cancelled"
        assert f"cancelled fine-tuning job {job_id}" in capsys.readouterr().out
        assert main(["finetune", str(cfg), "--cancel"]) == 0  # nothing left to cancel
        assert "no running fine-tuning job" in capsys.readouterr().out
        assert server.job_creates == 1


# ------------------------------------------------------- E17: one retry policy


def test_job_calls_have_no_sdk_retries_and_are_retried_by_the_harness(make_config, monkeypatch):
    from harness.config import load_config

    with FakeOpenAI() as server:
        cfg = load_config(make_config(server.base_url, strategies=[FT], extra=SETTINGS,
                                      run={"max_attempts": 3}))
        assert openai_job._client(cfg.models["fake"]).max_retries == 0
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise openai.APIConnectionError(request=httpx2.Request("GET", server.base_url))
        return "ok"

    monkeypatch.setattr("harness.model.endpoint.RetryPolicy.wait", lambda _self, _state: 0.0)
    assert openai_job._call(cfg, flaky) == "ok" and calls["n"] == 3

    def refused() -> str:
        calls["n"] += 1
        raise ValueError("not an API fault")

    calls["n"] = 0
    with pytest.raises(ValueError):
        openai_job._call(cfg, refused)
    assert calls["n"] == 1  # not retryable: asked once


def test_a_distillation_whose_training_could_pass_the_cap_requests_nothing(make_config, tmp_path,
                                                                           capsys):
    strategies = [ZS, {**FT, "fine_tuned_model": "router"}]
    with FakeOpenAI() as server:
        extra = {"finetune": {**SETTINGS["finetune"], "max_cost_usd": 0.0001},
                 "models": {"fake": {"provider": "openai", "model": "fake-model",
                                     "base_url": server.base_url, "api_key_env": "TEST_API_KEY",
                                     "price": {"input": 1, "output": 2, "training": 25}}}}
        cfg = make_config(server.base_url, strategies=strategies, extra=extra)
        assert main(["distill", str(cfg), "--teacher", "zs", "--student", "ft",
                     "--out", str(tmp_path / "d"), "--yes"]) == 2
        assert not server.requests and server.job_creates == 0
    assert "finetune.max_cost_usd" in _errors(capsys.readouterr().err)[-1]
