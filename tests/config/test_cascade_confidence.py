"""Issue 23, C10: a cascade whose primary records no confidence would route every answer to
the fallback at every threshold; the config is refused when it loads, in one error line naming
`confidence:`, before any request. Through the CLI (`harness validate`, `harness run`)."""

from __future__ import annotations

from typing import Any

import pytest
from fake_openai import FakeOpenAI

from harness.cli import main

BIG = {"name": "big", "type": "zero_shot", "model": "fake", "confidence": "logprob"}


def _cascade(primary: str) -> dict[str, Any]:
    return {"name": "route", "type": "cascade", "primary": primary, "fallback": "big"}


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("error: ")
    return line


def test_a_primary_without_confidence_is_refused_before_any_request(make_config, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.setenv("TEST_API_KEY", "x")
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, strategies=[
            {"name": "small", "type": "zero_shot", "model": "fake"}, BIG, _cascade("small")])
        assert main(["validate", str(cfg)]) == 2
        line = _error_line(capsys)
        assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 2
        assert _error_line(capsys) == line
        assert server.attempts == 0
    assert not (tmp_path / "run").exists()
    assert line == (f"error: {cfg}: strategies[2] (route).primary: small records no confidence, "
                    "so the cascade would send every answer to the fallback at every "
                    "threshold; set confidence: logprob on strategy small (or samples: 5 with "
                    "confidence: agreement)")


@pytest.mark.parametrize(("strategy", "primary"), [
    ({"name": "fs", "type": "few_shot", "model": "fake", "shots": [1, 2]}, "fs@k=2"),
    ({"name": "fs", "type": "few_shot", "model": "fake", "shots": [2]}, "fs"),
    ({"name": "zs", "type": "zero_shot", "model": "fake",
      "variants": {"terse": {"system": "{instructions} {labels} {output_format}"}}}, "zs:terse"),
])
def test_an_arm_of_a_strategy_without_confidence_is_refused(make_config, capsys,
                                                            strategy: dict[str, Any],
                                                            primary: str) -> None:
    cfg = make_config(strategies=[strategy, BIG, _cascade(primary)])
    assert main(["validate", str(cfg)]) == 2
    line = _error_line(capsys)
    assert f"strategies[2] (route).primary: {primary} records no confidence" in line, line
    assert f"set confidence: logprob on strategy {strategy['name']}" in line, line


@pytest.mark.parametrize("primary", [
    {"name": "small", "type": "zero_shot", "model": "fake", "confidence": "logprob"},
    {"name": "small", "type": "zero_shot", "model": "fake", "samples": 3, "temperature": 0.7,
     "confidence": "agreement"},
    # several samples record their vote share, which the cascade routes on, even unasked
    {"name": "small", "type": "zero_shot", "model": "fake", "samples": 3, "temperature": 0.7},
])
def test_a_primary_that_records_a_confidence_is_accepted(make_config, capsys, monkeypatch,
                                                         primary: dict[str, Any]) -> None:
    monkeypatch.setenv("TEST_API_KEY", "x")
    cfg = make_config(strategies=[primary, BIG, _cascade("small")])
    assert main(["validate", str(cfg)]) == 0, capsys.readouterr().err
