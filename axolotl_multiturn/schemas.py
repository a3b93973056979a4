"""Loading the JSON Schemas in `schemas/`: the single source of truth for the data and config formats."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

CONVERSATION = "conversation.schema.json"
PREFERENCE = "preference.schema.json"  # refers to the conversation schema's messages and tools
CONFIG = "multiturn-config.schema.json"


def schema_dir() -> Path:
    """`axolotl_multiturn/_schemas` in a built wheel, the repository's `schemas/` in a checkout."""
    packaged = Path(__file__).with_name("_schemas")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "schemas"


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((schema_dir() / name).read_text(encoding="utf-8"))


@cache
def python_validator(name: str) -> Any:
    """The python validator: slower, but its errors carry the detail our messages need (imported on
    first use: the linter's fast path never needs it)."""
    import jsonschema
    from referencing import Registry, Resource

    schema = load(name)
    registry = Registry().with_resources((load(n)["$id"], Resource.from_contents(load(n))) for n in (CONVERSATION,))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER, registry=registry)


@cache
def fast_validator(name: str) -> Any:
    """The compiled validator for the fast path: is the instance valid at all?"""
    registry = jsonschema_rs.Registry([(load(CONVERSATION)["$id"], load(CONVERSATION))])
    return jsonschema_rs.validator_for(load(name), registry=registry)
