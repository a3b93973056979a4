"""Masking policies and the `auto` rule, at and around every threshold."""

from __future__ import annotations

import pytest

from axolotl_multiturn import schemas
from axolotl_multiturn.engine.conversation import Message
from axolotl_multiturn.engine.masking import AutoThresholds, Mode, decide, decide_hosted, message_trained

CONV = (Message("system", "s"), Message("user", "u"), Message("assistant", "a"), Message("user", "u2"),
        Message("assistant", "a2"))


@pytest.mark.parametrize(("mode", "expected"), [
    (Mode.NONE, [True, True, True, True, True]),
    (Mode.INSTRUCTION, [False, False, True, False, True]),
    (Mode.BOILERPLATE, [True, True, True, True, True]),
])
def test_policy_table(mode: Mode, expected: list[bool]) -> None:
    assert message_trained(CONV, mode) == expected


def test_last_turn_only_keeps_non_assistant_decisions_of_the_mode() -> None:
    assert message_trained(CONV, Mode.BOILERPLATE, last_turn_only=True) == [True, True, False, True, True]


@pytest.mark.parametrize(("n", "non_assistant", "assistant", "mode", "rule"), [
    (1_000_000, 100, 100, Mode.BOILERPLATE, "R >= 1.0"),  # R = 1.0 exactly, any size
    (1_000_000, 99, 100, Mode.INSTRUCTION, "R < 1.0"),
    (15_000, 25, 100, Mode.BOILERPLATE, "N <= 15,000 and R >= 0.25"),  # both small-data limits exactly
    (15_001, 25, 100, Mode.INSTRUCTION, "R < 1.0"),
    (15_000, 24, 100, Mode.INSTRUCTION, "R < 1.0"),
    (500, 9, 100, Mode.INSTRUCTION, "R < 1.0"),  # LIMA-like, R = 0.09
    (10, 5, 0, Mode.BOILERPLATE, "R >= 1.0"),  # no assistant tokens at all
])
def test_auto_rule(n: int, non_assistant: int, assistant: int, mode: Mode, rule: str) -> None:
    decision = decide(n, non_assistant, assistant)
    assert decision.mode is mode
    assert decision.rule.startswith(rule)
    assert decision.conversations == n


def test_auto_thresholds_are_configurable() -> None:
    decision = decide(100, 50, 100, AutoThresholds(boilerplate_min_ratio=0.5))
    assert (decision.mode, decision.rule) == (Mode.BOILERPLATE, "R >= 0.5")


def test_describe_states_decision_and_numbers() -> None:
    assert decide(1234, 2310, 1000).describe() == (
        "masking auto -> boilerplate (N=1,234 conversations, R=2.310 non-assistant/assistant content tokens; "
        "R >= 1.0; decided from the data, unlike the hosted train_on_inputs=auto, which is masking: hosted_auto)")
    assert decide_hosted(12, weighted=False).describe() == (
        "masking hosted_auto -> instruction (N=12 conversations; conversational data: the hosted API masks inputs)")


def test_defaults_match_the_schema() -> None:
    defaults = schemas.load(schemas.CONFIG)["$defs"]["auto"]["properties"]
    assert AutoThresholds() == AutoThresholds(**{k: v["default"] for k, v in defaults.items()})
