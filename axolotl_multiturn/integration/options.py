"""The options of one dataset: read from the config layers and checked against the config schema.

Layers, later wins: the top-level `multiturn:` block, the options the plugin carried for the dataset
entry (see `carry`), then keys set directly on the dataset entry (callers that drive axolotl's `load`
without the plugin's validation). Every layer is validated against `schemas/multiturn-config.schema.json`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from axolotl_multiturn import schemas
from axolotl_multiturn.engine.masking import AutoThresholds, Mode
from axolotl_multiturn.engine.vocabulary import Overflow, Parity

#: axolotl drops dataset keys it does not know, and hashes only a fixed list of dataset fields into the
#: prepared-dataset path. `conversation` is a free string that survives validation, is part of that hash,
#: and is unused by this dataset type: the plugin carries the dataset's resolved options in it.
CARRIER_KEY = "conversation"
CARRIER_PREFIX = "axolotl_multiturn:"


class ConfigError(ValueError):
    """A config mistake, worded as `where: what is wrong; what to do`."""


def option_keys() -> tuple[str, ...]:
    return tuple(schemas.load(schemas.CONFIG)["properties"])


def schema_defaults() -> dict[str, Any]:
    """Each option's `default` as the schema states it."""
    config = schemas.load(schemas.CONFIG)
    defaults = {key: config["$defs"][key]["default"] for key in option_keys() if key != "auto"}
    auto = config["$defs"]["auto"]["properties"]
    return {**defaults, "auto": {key: spec["default"] for key, spec in auto.items()}}


@dataclass(frozen=True, slots=True)
class Options:
    masking: Mode
    last_turn_only: bool
    stop_tokens: tuple[str, ...]
    on_unlabelable: str
    auto: AutoThresholds
    log_summary: bool
    content_special_tokens: str
    overflow: Overflow
    parity: Parity
    reasoning: str
    preflight: bool


def suggest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """`; did you mean 'x'?` for the closest choice, or '' (the one "did you mean" of the project)."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


def validate_block(block: Any, where: str) -> dict[str, Any]:
    """Check one layer against the schema; raise ConfigError naming the key and the fix."""
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: must be a mapping of options ({', '.join(option_keys())})")
    block = dict(block)
    for key in block:
        if key not in option_keys():
            raise ConfigError(
                f"{where}.{key}: unknown key{suggest(key, option_keys())} (allowed: {', '.join(option_keys())})"
            )
    validator = schemas.python_validator(schemas.CONFIG)
    for error in sorted(validator.iter_errors(block), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = list(error.schema.get("properties", {}))
            extra = sorted(set(error.instance) - set(allowed))[0]
            raise ConfigError(
                f"{where}.{path}.{extra}: unknown key{suggest(extra, allowed)} (allowed: {', '.join(allowed)})"
            )
        if error.validator == "enum":
            raise ConfigError(
                f"{where}.{path}: {error.instance!r} is not one of "
                f"{', '.join(map(str, error.validator_value))}"
                f"{suggest(str(error.instance), map(str, error.validator_value))}"
            )
        raise ConfigError(f"{where}.{path}: {error.message}")
    return block


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; the `auto` thresholds merge key by key."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key] = {**merged.get(key, {}), **value} if key == "auto" else value
    return merged


def carried(ds_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The options the plugin carried in the dataset entry, if any."""
    value = ds_cfg.get(CARRIER_KEY)
    if isinstance(value, str) and value.startswith(CARRIER_PREFIX):
        return json.loads(value[len(CARRIER_PREFIX) :])
    return {}


def carry(entry: dict[str, Any], block: Mapping[str, Any], where: str) -> None:
    """Move this dataset's option keys into the carrier field, merged over the top-level block."""
    value = entry.get(CARRIER_KEY)
    if value is not None and not (isinstance(value, str) and value.startswith(CARRIER_PREFIX)):
        raise ConfigError(f"{where}.{CARRIER_KEY}: not used by type axolotl_multiturn.chat; remove it")
    own = validate_block({k: entry.pop(k) for k in option_keys() if k in entry}, where)
    entry[CARRIER_KEY] = CARRIER_PREFIX + json.dumps(merge(block, carried(entry), own), sort_keys=True)


def resolve(cfg: Mapping[str, Any], ds_cfg: Mapping[str, Any] | None, where: str = "dataset") -> Options:
    """The effective options for one dataset."""
    ds_cfg = ds_cfg or {}
    layers = (
        validate_block(cfg.get("multiturn"), "multiturn"),
        validate_block(carried(ds_cfg), where),
        validate_block({k: ds_cfg[k] for k in option_keys() if ds_cfg.get(k) is not None}, where),
    )
    values = merge(schema_defaults(), *layers)
    return Options(
        masking=Mode(values["masking"]),
        last_turn_only=values["last_turn_only"],
        stop_tokens=tuple(values["stop_tokens"]),
        on_unlabelable=values["on_unlabelable"],
        auto=AutoThresholds(**values["auto"]),
        log_summary=values["log_summary"],
        content_special_tokens=values["content_special_tokens"],
        overflow=Overflow(values["overflow"]),
        parity=Parity(values["parity"]),
        reasoning=values["reasoning"],
        preflight=values["preflight"],
    )
