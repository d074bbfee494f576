"""The fine-tuning workflow: training data rules, and OpenAI jobs against a loopback server."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from fake_openai import FakeOpenAI

from harness.cli import main
from harness.config import load_config
from harness.dataset import load_data, normalise
from harness.errors import InputError
from harness.model.pricing import price_of
from harness.model.registry import Registry
from harness.running.plan import plan
from harness.tasks import make_task
from harness.training import build_training_data, ensure_fine_tunes, save_pending, validate_training_data

FT = [
    {"name": "zs", "type": "zero_shot", "model": "fake"},
    {"name": "ft", "type": "fine_tuned", "model": "fake", "fine_tuned_model": "support-ft"},
]
SETTINGS = {"finetune": {"epochs": 2, "suffix": "support", "seed": 3, "poll_interval": 0.01}}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Default folders (reports/NAME-finetune, reports/history.jsonl) go under tmp_path."""
    monkeypatch.chdir(tmp_path)


def _td(make_config, **kw):
    cfg = load_config(make_config(strategies=FT, extra=SETTINGS, **kw))
    data = load_data(cfg)
    return cfg, data, build_training_data(cfg, cfg.strategy("ft"), data)


def _task(cfg, data):
    return make_task(cfg.task, data.labels)


def test_training_data_is_openai_chat_format_from_train_only(make_config):
    cfg, data, td = _td(make_config)
    assert len(td.train) + len(td.validation) == len(data.train) == 24
    assert len(td.validation) == 2
    first = td.train[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert json.loads(first[2]["content"])["label"] in data.labels
    assert "Route the support message." in first[0]["content"]
    assert "billing, shipping" not in first[0]["content"]  # the short prompt: no label list
    evals = {normalise(ex.input) for ex in data.eval}
    assert not any(normalise(r["messages"][1]["content"]) in evals for r in td.train)
    validate_training_data(td, data.labels, evals, _task(cfg, data))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda td: replace(td, train=td.train[:9]), "at least 10"),
        (
            lambda td: replace(td, train=({"messages": [{"role": "robot", "content": "x"}]}, *td.train)),
            "unknown role",
        ),
        (
            lambda td: replace(
                td,
                train=(
                    {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]},
                    *td.train,
                ),
            ),
            "empty assistant",
        ),
        (
            lambda td: replace(
                td, train=tuple(r for r in td.train if "billing" not in r["messages"][2]["content"])
            ),
            "no training example for label 'billing'",
        ),
    ],
)
def test_each_validation_rule_fails(make_config, mutate, message):
    cfg, data, td = _td(make_config)
    with pytest.raises(InputError, match=message):
        validate_training_data(mutate(td), data.labels, set(), _task(cfg, data))


def test_overlap_with_eval_set_is_rejected(make_config):
    cfg, data, td = _td(make_config)
    leaked = normalise(td.train[0]["messages"][1]["content"])
    with pytest.raises(InputError, match="also appears in the eval set"):
        validate_training_data(td, data.labels, {leaked}, _task(cfg, data))


def _finetune(cfg_path, tmp_path):
    return main(["finetune", str(cfg_path), "--out", str(tmp_path / "ft"), "--yes"])


def test_openai_job_success_registers_model_and_uploads_exact_jsonl(
    make_config, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI(job_outcome="succeeded") as server:
        cfg_path = make_config(server.base_url, strategies=FT, extra=SETTINGS)
        assert _finetune(cfg_path, tmp_path) == 0
        uploaded = sorted(server.files.values(), key=len, reverse=True)
        job = next(iter(server.jobs.values()))
        # re-run with the same data and settings: reuse, no second job
        assert _finetune(cfg_path, tmp_path) == 0
        assert server.job_creates == 1
    _, _, td = _td(make_config, base_url=server.base_url)
    expected = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in td.train).encode()
    assert uploaded[0] == expected
    assert (tmp_path / "ft" / "train.jsonl").read_bytes() == expected
    assert job["method"] == {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}
        },
    }
    assert job["suffix"] == "support" and job["seed"] == 3 and job["validation_file"]
    entry = Registry().get("support-ft")
    assert entry is not None and entry.model_id.startswith("ft:fake-model:")
    assert entry.provider == "openai" and entry.trained_tokens
    assert "reusing" in capsys.readouterr().err


def test_registered_model_is_used_by_run(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=FT, extra=SETTINGS, n_eval=2)
        assert _finetune(cfg_path, tmp_path) == 0
        assert main(["run", str(cfg_path), "--out", str(tmp_path / "run")]) == 0
        models = {b["model"] for b in server.requests}
    entry = Registry().get("support-ft")
    assert entry is not None and entry.model_id.startswith("ft:fake-model:")
    assert models == {"fake-model", entry.model_id}  # zs on the base model, ft on the registered one


@pytest.mark.parametrize(
    "outcome, code, text",
    [
        ("failed", 1, "failed"),
        ("cancelled", 1, "cancelled"),
        ("invalid_file", 2, "not a valid fine-tuning file"),
    ],
)
def test_job_failures_end_with_message(make_config, tmp_path, monkeypatch, capsys, outcome, code, text):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI(job_outcome=outcome) as server:
        cfg_path = make_config(server.base_url, strategies=FT, extra=SETTINGS)
        assert _finetune(cfg_path, tmp_path) == code
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and text in err
    assert Registry().get("support-ft") is None


def test_rerun_attaches_to_a_pending_job(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI() as server:
        cfg_path = make_config(server.base_url, strategies=FT, extra=SETTINGS)
        assert _finetune(cfg_path, tmp_path) == 0
        entry = Registry().get("support-ft")
        assert entry is not None
        # forget the result but remember the job as pending: the next run must attach, not create
        Registry().path.unlink()
        save_pending({entry.key: entry.job_id})
        assert _finetune(cfg_path, tmp_path) == 0
        assert server.job_creates == 1
    assert Registry().get("support-ft").job_id == entry.job_id


def _priced(server, training=None, model="fake-model"):
    """A models block for the fake server, with a configured price (training per 1M) if given."""
    fake = {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": "TEST_API_KEY"}
    if training is not None:
        fake["price"] = {"input": 1.0, "output": 2.0, "training": training}
    return {"models": {"fake": fake}}


@pytest.mark.parametrize(
    "model, training, per_m",
    [
        ("fake-model", 7.5, 7.5),  # the configured price
        ("gpt-4o-mini", 7.5, 7.5),  # the configured price wins over the built-in table (3.00)
        ("gpt-4o-mini", None, 3.0),  # no price block: the built-in table
        ("fake-model", None, None),  # unknown model, no price: no cost figure
    ],
)
def test_openai_job_records_training_cost_at_the_configured_price(
    make_config, tmp_path, monkeypatch, model, training, per_m
):
    monkeypatch.setenv("TEST_API_KEY", "k")
    with FakeOpenAI() as server:
        extra = {**SETTINGS, **_priced(server, training, model)}
        cfg_path = make_config(server.base_url, strategies=FT, extra=extra)
        assert _finetune(cfg_path, tmp_path) == 0
        job = next(iter(server.jobs.values()))
    entry = Registry().get("support-ft")
    assert entry is not None and entry.trained_tokens == job["trained_tokens"] > 0
    cfg = load_config(cfg_path)
    price = price_of(cfg.models["fake"], model)  # the price the analysis uses for this model
    if per_m is None:
        assert price is None and entry.training_cost_usd is None
    else:
        assert price is not None and price.training_per_m == per_m
        assert entry.training_cost_usd == pytest.approx(job["trained_tokens"] * per_m / 1e6)


MISSING_FT = [
    {"name": "zs", "type": "zero_shot", "model": "fake"},
    {"name": "ft", "type": "fine_tuned", "model": "fake",
     "fine_tuned_model": {"name": "local-ft:support-ft", "train_if_missing": True}},
]


def _ft_arm(p):
    (arm,) = [s.arm for s in p.strategies if s.arm.strategy == "ft"]
    return arm


def test_ensure_fine_tunes_trains_what_is_missing(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "k")
    registry = Registry(tmp_path / "own-registry.json")
    messages: list[str] = []
    with FakeOpenAI() as server:
        cfg = load_config(make_config(server.base_url, strategies=MISSING_FT, extra=SETTINGS))
        before = plan(cfg, registry)
        assert "not available" in (_ft_arm(before).unavailable or "")
        after = ensure_fine_tunes(before, log=messages.append, registry=registry)
        assert server.job_creates == 1
        entry = registry.get("support-ft")
        assert entry is not None and entry.provider == "openai"
        assert after is not before
        arm = _ft_arm(after)
        assert arm.unavailable is None and arm.model_id == entry.model_id
        assert after.fine_tunes["ft"]["model_id"] == entry.model_id
        assert Registry().get("support-ft") is None  # the given registry, not the default one
        assert any("is missing: training it first" in m for m in messages)
        assert any(m == f"registered support-ft -> {entry.model_id}" for m in messages)
        # now nothing is missing: the same plan comes back, nothing is trained
        again = plan(cfg, registry)
        assert ensure_fine_tunes(again, registry=registry) is again
        assert server.job_creates == 1


def test_ensure_fine_tunes_leaves_a_plan_without_train_if_missing_alone(make_config, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "k")
    strategies = [MISSING_FT[0], {**MISSING_FT[1], "fine_tuned_model": "local-ft:support-ft"}]
    with FakeOpenAI() as server:
        cfg = load_config(make_config(server.base_url, strategies=strategies, extra=SETTINGS))
        p = plan(cfg)
        assert ensure_fine_tunes(p) is p
        assert _ft_arm(p).unavailable and server.job_creates == 0 and not server.files
    assert Registry().get("support-ft") is None
