"""Acceptance tests driven by example files: each file's exact findings (line:column CODE), and the two
schema validators agreeing on every line of every example."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from axolotl_multiturn import schemas
from axolotl_multiturn.lint.checker import check_lines

EXAMPLES = Path(__file__).parent / "examples" / "lint"
EXPECTED = json.loads((EXAMPLES / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_file_findings(name: str) -> None:
    with open(EXAMPLES / name, "rb") as stream:
        found = [f"{f.line}:{f.column} {f.code}" for f in check_lines(name, stream)]
    assert found == EXPECTED[name]


def test_every_example_file_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.jsonl")) == sorted(EXPECTED)


def example_objects():
    for path in sorted(EXAMPLES.glob("*.jsonl")):
        for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
            try:
                yield f"{path.name}:{number}", orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue


@pytest.mark.parametrize(("where", "obj"), list(example_objects()))
def test_compiled_and_python_validators_agree(where: str, obj: object) -> None:
    fast = schemas.fast_validator(schemas.CONVERSATION).is_valid(obj)
    slow = not any(schemas.python_validator(schemas.CONVERSATION).iter_errors(obj))
    assert fast == slow, where


@pytest.mark.parametrize("name", [schemas.CONVERSATION, schemas.CONFIG])
def test_schemas_are_valid_draft_2020_12_with_an_id(name: str) -> None:
    import jsonschema

    schema = schemas.load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + name)
    jsonschema.Draft202012Validator.check_schema(schema)
