"""One arm identity (issue 24): ArmId writes `s`, `s:v`, `s@k=4`, `s:v@k=4` and `c@t=0.5`, and
parses them back; the code that names arms goes through it."""

from __future__ import annotations

import pytest

from harness.kinds import ArmId
from harness.strategies import arm_name


@pytest.mark.parametrize(("arm", "name"), [
    (ArmId("zero-shot"), "zero-shot"),
    (ArmId("few-shot", k=4), "few-shot@k=4"),
    (ArmId("few-shot", "terse"), "few-shot:terse"),
    (ArmId("few-shot", "terse", 8), "few-shot:terse@k=8"),
    (ArmId("route", threshold=0.5), "route@t=0.5"),
    (ArmId("route", threshold=0.611), "route@t=0.611"),
    (ArmId("v1.2_ft"), "v1.2_ft"),
])
def test_names_are_written_and_parsed_back(arm: ArmId, name: str) -> None:
    assert str(arm) == name
    assert ArmId.parse(name) == arm


@pytest.mark.parametrize("bad", ["", "@k=4", "a@k=x", "a:b:c", "a@k=1@t=2", "a b", "a@t="])
def test_what_is_not_an_arm_name_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an arm name"):
        ArmId.parse(bad)


def test_a_shot_count_and_a_threshold_do_not_mix() -> None:
    with pytest.raises(ValueError):
        ArmId("a", k=2, threshold=0.5)


def test_the_display_name_of_a_summary_row_is_the_arm_id() -> None:
    assert arm_name("few-shot:terse", 4, "few_shot") == "few-shot:terse@k=4"
    assert arm_name("zero-shot", 0, "zero_shot") == "zero-shot"
    assert arm_name("route@t=0.8", 0, "cascade") == "route@t=0.8"
    assert ArmId.of("few-shot:terse", 2) == ArmId("few-shot", "terse", 2)
