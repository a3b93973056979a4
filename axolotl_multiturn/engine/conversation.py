"""A conversation as small value objects, and the checks that make a JSON object one.

The schema (`schemas/conversation.schema.json`) says what a message looks like; the turn-order rules
(optional system first, then strict user/assistant alternation) live here because JSON Schema cannot
say them readably. Both the linter and the prompt strategy use `check_conversation`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from axolotl_multiturn import schemas

Role = Literal["system", "user", "assistant"]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Message:
    """One message. `weight` is None unless the data sets it (0: never trained, 1: always trained)."""

    role: Role
    content: str
    weight: int | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One error in a conversation (codes in `lint.rules`); `pointer` is a JSON pointer into the object."""

    code: str
    message: str
    pointer: str = ""


class InvalidConversation(ValueError):
    """A row that is not a valid conversation; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.code} {p.message}" + (f" at {p.pointer}" if p.pointer else "")
                                   for p in self.problems))


def _pointer(path: Sequence[Any]) -> str:
    return "".join(f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in path)


def _schema_problem(error: Any) -> Problem:
    """Turn one python-jsonschema error into a coded problem with a message a person can act on."""
    path = list(error.absolute_path)
    where = _pointer(path)
    keyword = error.validator
    field = path[-1] if path else None
    value = error.instance
    if keyword == "required":
        missing = error.message.split("'")[1]
        return Problem("MT101", f"missing required field '{missing}'", where)
    if keyword == "additionalProperties":
        extra = sorted(set(value) - set(error.schema.get("properties", {})))
        return Problem("MT107", f"unknown message field {', '.join(repr(e) for e in extra)}; "
                                "allowed: role, content, weight", where)
    if field == "role" and keyword == "enum":
        if isinstance(value, str) and value.lower() in ROLES:
            return Problem("MT104", f"role {value!r} must be lower case: {value.lower()!r}", where)
        return Problem("MT103", f"unknown role {value!r}; expected 'system', 'user' or 'assistant'", where)
    if field == "content" and keyword == "pattern":
        return Problem("MT105", "content is empty or only whitespace", where)
    if field == "weight":
        return Problem("MT106", f"weight must be 0 or 1, got {_short(value)}", where)
    if field == "messages" and keyword == "minItems":
        return Problem("MT108", "messages is empty", where)
    return Problem("MT102", f"{field or 'line'} must be {_expected_type(error)}, got {_json_type(value)}",
                   where)


def _expected_type(error: Any) -> str:
    expected = error.validator_value if error.validator == "type" else error.schema.get("type", "valid")
    return " or ".join(expected) if isinstance(expected, list) else f"{_article(expected)} {expected}"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _json_type(value: Any) -> str:
    for python_type, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                              (list, "array"), (dict, "object"), (type(None), "null")):
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _short(value: Any) -> str:
    """The value as JSON writes it, cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def schema_problems(obj: Any) -> list[Problem]:
    """Problems against the conversation schema, from the python validator (the slow path)."""
    errors = schemas.python_validator(schemas.CONVERSATION).iter_errors(obj)
    return [_schema_problem(e) for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))]


#: Role sequences with nothing to report (by first letter): optional system, then user/assistant pairs,
#: optionally a final user turn. Most rows match, and this one regex spares them the per-turn walk.
_GOOD_ORDER = re.compile(r"s?(?:ua)+u?")


def structure_problems(messages: Sequence[Mapping[str, Any]]) -> Iterator[Problem]:
    """Turn order: an optional system message first, then user/assistant alternation from a user turn."""
    if not messages or _GOOD_ORDER.fullmatch("".join([m["role"][0] for m in messages])):
        return
    roles = [m["role"] for m in messages]
    if roles[0] not in ("system", "user"):
        yield Problem("MT201", f"first message is {roles[0]!r}; a conversation starts with "
                               "'system' or 'user'", "/messages/0/role")
    for i, role in enumerate(roles[1:], start=1):
        if role == "system":
            yield Problem("MT202", "a system message may only come first (and only once)",
                          f"/messages/{i}/role")
    turns = [(i, r) for i, r in enumerate(roles) if r in ("user", "assistant")]
    previous = None
    for i, role in turns:
        expected = "assistant" if previous == "user" else "user"
        if role != expected and i > 0:  # a conversation opening with an assistant turn is MT201
            after = f"after {previous!r}" if previous else "as the first turn"
            yield Problem("MT203", f"got {role!r} {after}, expected {expected!r} (after an optional system "
                                   "message, user and assistant alternate)", f"/messages/{i}/role")
        previous = role
    if "assistant" not in roles:
        yield Problem("MT204", "no assistant message: nothing to train on", "/messages")


def check_conversation(obj: Any) -> list[Problem]:
    """Every schema and structure problem of one parsed JSONL line (or dataset row); turn order is
    checked once every role is valid, so one bad role is one problem, not a cascade."""
    if schemas.fast_validator(schemas.CONVERSATION).is_valid(obj):
        return list(structure_problems(obj["messages"]))
    problems = schema_problems(obj)
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if isinstance(messages, list) and all(isinstance(m, dict) and m.get("role") in ROLES for m in messages):
        problems.extend(structure_problems(messages))
    return problems


def without_nulls(message: Mapping[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None: Arrow fills a key missing from some rows (like `weight`) with null."""
    return {k: v for k, v in message.items() if v is not None}


def parse_conversation(obj: Mapping[str, Any]) -> tuple[Message, ...]:
    """Validate one conversation and return its messages; raise InvalidConversation otherwise."""
    problems = check_conversation(obj)
    if problems:
        raise InvalidConversation(problems)
    return tuple(Message(m["role"], m["content"], m.get("weight")) for m in obj["messages"])
