"""Acceptance tests driven by example files: each file's exact findings (line:column CODE), and the two
schema validators agreeing on every line of every example."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import jsonschema_rs
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


def _without_shortcut(schema: dict) -> dict:
    """The conversation schema with the message's plain-message `if` taken out and its `else` (the full
    role rules) applied to every message."""
    schema = copy.deepcopy(schema)
    message = schema["$defs"]["message"]
    del message["if"]
    message.update(message.pop("else"))
    return schema


def test_plain_message_shortcut_changes_no_verdict_and_no_error() -> None:
    """The message's `if` lets plain messages skip the role rules (about 40% of the compiled validator's
    time on chat data); every message of these field combinations gets the same verdict from both
    validators and the same python errors, in the same order, with it and without it."""
    import jsonschema

    schema = schemas.load(schemas.CONVERSATION)
    assert set(schema["$defs"]["message"]) >= {"if", "else"} and "then" not in schema["$defs"]["message"]
    full = _without_shortcut(schema)
    rs = [jsonschema_rs.validator_for(s) for s in (schema, full)]
    py = [jsonschema.Draft202012Validator(s) for s in (schema, full)]
    absent = object()
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    axes = {"role": ["system", "user", "assistant", "tool", "User", absent],
            "content": [absent, None, "x", " ", [], 3], "tool_calls": [absent, [], [call]],
            "tool_call_id": [absent, "c1", ""], "reasoning": [absent, " "], "reasoning_content": [absent, "r"]}
    checked = valid = 0
    for values in itertools.product(*axes.values()):
        message = {k: v for k, v in zip(axes, values) if v is not absent}
        obj = {"messages": [{"role": "user", "content": "q"}, message]}
        verdicts = [v.is_valid(obj) for v in rs]
        errors = [[(list(e.absolute_path), e.validator, e.message) for e in v.iter_errors(obj)]
                  for v in py]
        assert verdicts[0] == verdicts[1] == (not errors[0]), message
        assert errors[0] == errors[1], message
        checked += 1
        valid += verdicts[0]
    # valid: a system, a user and a tool message (content "x", the tool one with tool_call_id "c1"), and 8
    # assistant ones (content "x" with or without the call, or no or null content with it; each with or
    # without reasoning_content)
    assert (checked, valid) == (6 * 6 * 3 * 3 * 2 * 2, 11)


def test_the_lint_page_lists_every_rule_with_its_severity() -> None:
    import re

    from axolotl_multiturn.lint.rules import RULES

    readme = (Path(__file__).parent.parent / "docs" / "lint.md").read_text()
    listed = dict(re.findall(r"^\| ([A-Z]{2}\d{3}) \| (error|warning) \|", readme, flags=re.M))
    assert listed == {code: rule.severity for code, rule in RULES.items()}


def test_preference_lines_the_linter_passes_are_valid_by_the_preference_schema() -> None:
    """The schema is the format's source of truth: no preference line passes the linter against it."""
    from axolotl_multiturn.engine.pairs import shape_of

    validator = schemas.fast_validator(schemas.PREFERENCE)
    checked = 0
    for where, obj in example_objects():
        if isinstance(obj, dict) and shape_of(obj) is not None:
            name, number = where.rsplit(":", 1)
            with open(EXAMPLES / name, "rb") as stream:
                errors = [f for f in check_lines(name, stream) if f.line == int(number) and f.severity == "error"]
            assert validator.is_valid(obj) or errors, where
            checked += not errors
    assert checked == 5  # good_preference.jsonl, one line per shape (hosted twice)
