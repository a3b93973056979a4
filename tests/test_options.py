"""Option layers and the config errors a person sees."""

from __future__ import annotations

import json

import pytest

from axolotl_multiturn.engine.masking import AutoThresholds, Mode
from axolotl_multiturn.integration.options import CARRIER_PREFIX, ConfigError, Options, carry, resolve


def test_defaults_come_from_the_schema() -> None:
    assert resolve({}, {}) == Options(Mode.AUTO, False, (), "error", AutoThresholds(), log_summary=True,
                                      content_special_tokens="literal", overflow="split", parity="expand",
                                      reasoning="train", preflight=True)


def test_dataset_keys_beat_the_top_level_block() -> None:
    options = resolve({"multiturn": {"masking": "instruction", "auto": {"boilerplate_min_ratio": 2}}},
                      {"masking": "boilerplate", "auto": {"small_dataset_min_ratio": 0.5}})
    assert options.masking is Mode.BOILERPLATE
    assert options.auto == AutoThresholds(2, 15_000, 0.5)


def test_carried_options_are_read_back() -> None:
    entry = {"path": "x.jsonl", "type": "axolotl_multiturn.chat", "masking": "none", "last_turn_only": True}
    carry(entry, {"masking": "instruction", "stop_tokens": ["<x>"]}, "datasets[0]")
    assert "masking" not in entry and "last_turn_only" not in entry
    assert json.loads(entry["conversation"][len(CARRIER_PREFIX):]) == {
        "last_turn_only": True, "masking": "none", "stop_tokens": ["<x>"]}
    options = resolve({}, entry)
    assert (options.masking, options.last_turn_only, options.stop_tokens) == (Mode.NONE, True, ("<x>",))


def test_carry_is_idempotent() -> None:
    entry = {"type": "axolotl_multiturn.chat", "masking": "none"}
    carry(entry, {}, "datasets[0]")
    once = dict(entry)
    carry(entry, {}, "datasets[0]")
    assert entry == once


@pytest.mark.parametrize(("cfg", "ds_cfg", "message"), [
    ({"multiturn": {"maskng": "none"}}, {},
     "multiturn.maskng: unknown key; did you mean 'masking'? (allowed: masking, last_turn_only, stop_tokens, "
     "on_unlabelable, auto, log_summary, content_special_tokens, overflow, parity, reasoning, preflight)"),
    ({"multiturn": {"masking": "instrction"}}, {},
     "multiturn.masking: 'instrction' is not one of none, instruction, boilerplate, auto, hosted_auto; did you mean "
     "'instruction'?"),
    ({}, {"masking": "everything"}, "data.jsonl.masking: 'everything' is not one of none, instruction, "
                                    "boilerplate, auto"),
    ({"multiturn": {"auto": {"boilerplate_ratio": 1}}}, {},
     "multiturn.auto.boilerplate_ratio: unknown key; did you mean 'boilerplate_min_ratio'?"),
    ({"multiturn": {"last_turn_only": "yes"}}, {}, "multiturn.last_turn_only: 'yes' is not of type 'boolean'"),
    ({"multiturn": ["masking"]}, {}, "multiturn: must be a mapping of options"),
])
def test_config_errors_name_the_key_and_the_fix(cfg: dict, ds_cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve(cfg, ds_cfg, where="data.jsonl")
    assert str(error.value).startswith(message)


def test_carrier_field_set_by_the_user_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"datasets\[2\].conversation: not used by type"):
        carry({"conversation": "vicuna"}, {}, "datasets[2]")
