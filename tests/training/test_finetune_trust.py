"""Fine-tuning you can trust: raw provider ids are never trained over or shadowed, a paid job
shows its estimate and asks first, and `train_if_missing` trains through the provider's API."""

from __future__ import annotations

import io
import sys

import pytest
from fake_openai import FakeOpenAI

from harness.api import finetune
from harness.cli import main
from harness.config import load_config
from harness.dataset import load_data
from harness.errors import RunError
from harness.model.registry import FineTune, Registry
from harness.running.plan import plan
from harness.training import build_training_data, save_pending

RAW = "ft:fake-model:acme:router:1"
SETTINGS = {"finetune": {"epochs": 2, "suffix": "support", "seed": 3, "poll_interval": 0.01}}
ZS = {"name": "zs", "type": "zero_shot", "model": "fake"}


def _ft(fine_tuned_model: object, name: str = "ft") -> dict[str, object]:
    return {"name": name, "type": "fine_tuned", "model": "fake", "fine_tuned_model": fine_tuned_model}


def _entry(name: str, model_id: str) -> FineTune:
    return FineTune(name=name, model_id=model_id, provider="openai", base_model="fake-model",
                    data_sha256="0" * 64, hyperparameters={}, trained_tokens=10,
                    training_cost_usd=None, created_at="2025-01-01T00:00:00+00:00", key="k" * 64)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Default folders (reports/NAME-finetune, reports/history.jsonl) go under tmp_path."""
    monkeypatch.chdir(tmp_path)


class _Terminal(io.StringIO):
    """A stdin that is a terminal, with the user's answer already typed."""

    def isatty(self) -> bool:
        return True


def _models(server: FakeOpenAI) -> set[str]:
    return {b["model"] for b in server.requests}


# --- a raw provider id names an existing model -------------------------------------------------


def test_finetune_refuses_a_raw_provider_id_and_leaves_the_registry_alone(
    make_config, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TEST_API_KEY", "k")
    Registry().put(_entry("other", "ft:fake-model:acme:other:9"))
    before = Registry().path.read_bytes()
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=[ZS, _ft(RAW)], extra=SETTINGS)
        code = main(["finetune", str(cfg_path), "--strategy", "ft", "--yes",
                     "--out", str(tmp_path / "ft")])
        assert server.job_creates == 0 and not server.files
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "strategies[1] (ft)" in err and RAW in err
    assert "fine_tuned_model: {name: NAME, train_if_missing: true}" in err
    assert Registry().path.read_bytes() == before


def test_finetune_without_strategy_picks_the_named_fine_tune_over_a_raw_id(
    make_config, tmp_path, monkeypatch
):
    monkeypatch.setenv("TEST_API_KEY", "k")
    strategies = [ZS, _ft(RAW, "existing"), _ft("support-ft", "new")]
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=strategies, extra=SETTINGS)
        assert main(["finetune", str(cfg_path), "--yes", "--out", str(tmp_path / "ft")]) == 0
        assert server.job_creates == 1
    assert Registry().get("support-ft") is not None and Registry().get(RAW) is None


def test_a_registry_entry_named_like_a_raw_id_never_shadows_it(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "k")
    Registry().put(_entry(RAW, "ft:fake-model:acme:impostor:2"))  # as the old bug registered it
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=[ZS, _ft(RAW)], n_eval=2)
        p = plan(load_config(cfg_path))
        assert "ft" not in p.fine_tunes
        assert main(["run", str(cfg_path), "--out", str(tmp_path / "run")]) == 0
        assert _models(server) == {"fake-model", RAW}


def test_train_if_missing_with_a_raw_id_is_refused(make_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, extra=SETTINGS,
                               strategies=[ZS, _ft({"name": RAW, "train_if_missing": True})])
        assert main(["run", str(cfg_path), "--out", str(tmp_path / "run")]) == 2
        assert server.job_creates == 0 and not server.requests
    assert "train_if_missing cannot train it" in capsys.readouterr().err


def test_a_raw_id_on_the_local_model_is_unavailable(make_config):
    cfg = load_config(make_config(strategies=[_ft(RAW)], extra={"models": {"fake": {"provider": "local"}}}))
    (s,) = plan(cfg).strategies
    assert s.arm.unavailable and "provider model id" in s.arm.unavailable


# --- a registry name on a paid provider ---------------------------------------------------------


def test_an_unregistered_name_is_unavailable_not_sent_as_a_model_id(
    make_config, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=[ZS, _ft("support-ft")], n_eval=2)
        main(["run", str(cfg_path), "--out", str(tmp_path / "run")])
        assert _models(server) == {"fake-model"}  # no 404 per example for 'support-ft'
        assert server.job_creates == 0
    err = capsys.readouterr().err
    assert "warning: ft: fine-tuned model 'support-ft' is not available; create it with: harness " \
           "finetune" in err


def test_run_trains_a_missing_openai_fine_tune_once_and_then_reuses_it(
    make_config, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TEST_API_KEY", "k")
    strategies = [ZS, _ft({"name": "support-ft", "train_if_missing": True})]
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=strategies, extra=SETTINGS, n_eval=2)
        # stdin is no terminal and there is no --yes: train_if_missing in the config is the consent
        assert main(["run", str(cfg_path), "--out", str(tmp_path / "run1")]) == 0
        assert server.job_creates == 1 and server.files
        entry = Registry().get("support-ft")
        assert entry is not None and entry.provider == "openai"
        assert entry.model_id.startswith("ft:fake-model:")
        assert _models(server) == {"fake-model", entry.model_id}
        server.requests.clear()
        assert main(["run", str(cfg_path), "--out", str(tmp_path / "run2"), "--no-cache"]) == 0
        assert server.job_creates == 1
        assert _models(server) == {"fake-model", entry.model_id}
    err = capsys.readouterr().err
    assert err.count("estimate for a fine-tuning job on fake-model") == 1
    assert err.count(f"registered support-ft -> {entry.model_id}") == 1


# --- a paid job shows its estimate and asks -----------------------------------------------------


def _priced(server: FakeOpenAI, training: float | None) -> dict[str, object]:
    fake: dict[str, object] = {"provider": "openai", "model": "fake-model", "base_url": server.base_url,
                               "api_key_env": "TEST_API_KEY"}
    if training is not None:
        fake["price"] = {"input": 1.0, "output": 2.0, "training": training}
    return {**SETTINGS, "models": {"fake": fake}}


def test_without_a_terminal_a_paid_job_needs_yes(make_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=[_ft("support-ft")], extra=_priced(server, 7.5))
        assert main(["finetune", str(cfg_path), "--out", str(tmp_path / "ft")]) == 2
        assert server.job_creates == 0 and not server.files
        err = capsys.readouterr().err
        assert "pass --yes to confirm non-interactively" in err.strip().splitlines()[-1]
        cfg = load_config(cfg_path)
        td = build_training_data(cfg, cfg.strategy("ft"), load_data(cfg))
        billed = td.total_tokens * 2  # two epochs
        assert (f"~{td.total_tokens:,} tokens x 2 epochs = ~{billed:,} trained tokens, "
                f"~${billed * 7.5 / 1e6:.2f} at $7.5 per 1M training tokens") in err
        assert Registry().get("support-ft") is None
        # --yes: trained; again without --yes: reused, nothing to pay, nothing asked
        assert main(["finetune", str(cfg_path), "--out", str(tmp_path / "ft"), "--yes"]) == 0
        assert main(["finetune", str(cfg_path), "--out", str(tmp_path / "ft")]) == 0
        assert server.job_creates == 1
    assert "reusing" in capsys.readouterr().err


@pytest.mark.parametrize("answer, code, jobs", [("y\n", 0, 1), ("yes\n", 0, 1), ("n\n", 1, 0), ("", 1, 0)])
def test_on_a_terminal_a_paid_job_is_asked_for(
    make_config, tmp_path, monkeypatch, capsys, answer, code, jobs
):
    monkeypatch.setenv("TEST_API_KEY", "k")
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=[_ft("support-ft")], extra=_priced(server, None))
        assert main(["finetune", str(cfg_path), "--out", str(tmp_path / "ft")]) == code
        assert server.job_creates == jobs and bool(server.files) == bool(jobs)
    err = capsys.readouterr().err
    assert "Start this fine-tuning job? [y/N]" in err
    assert "cost unknown: no training price for fake-model (set models.fake.price.training)" in err
    assert (Registry().get("support-ft") is not None) == bool(jobs)


def test_attaching_to_a_running_job_asks_nothing(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=[_ft("support-ft")], extra=SETTINGS)
        assert main(["finetune", str(cfg_path), "--out", str(tmp_path / "ft"), "--yes"]) == 0
        entry = Registry().get("support-ft")
        assert entry is not None
        Registry().path.unlink()
        save_pending({entry.key: str(entry.job_id)})
        assert main(["finetune", str(cfg_path), "--out", str(tmp_path / "ft")]) == 0  # no --yes
        assert server.job_creates == 1


def test_api_confirm_sees_the_estimate_and_can_refuse(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "k")
    seen: list[str] = []

    def refuse(estimate: str) -> bool:
        seen.append(estimate)
        return False

    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=[_ft("support-ft")], extra=SETTINGS)
        with pytest.raises(RunError, match="not confirmed"):
            finetune(cfg_path, out=tmp_path / "ft", confirm=refuse)
        assert server.job_creates == 0
    assert len(seen) == 1 and "x 2 epochs" in seen[0]
