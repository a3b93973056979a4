"""The checks that make a JSON object a conversation, and the parse that makes it one.

The schema (`schemas/conversation.schema.json`) says what a message looks like; the turn-order rules
(optional system first; user turns answered by assistant turns; an assistant turn's tool calls answered by
one tool message each, then an assistant turn) live here because JSON Schema cannot say them readably.
Both the linter and the prompt strategy use `check_conversation`. No heavy imports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axolotl_multiturn import schemas
from axolotl_multiturn.engine.conversation import (
    ROLE_FIELDS,
    ROLES,
    Content,
    Conversation,
    Image,
    Message,
    ToolCall,
    arguments_object,
)
from axolotl_multiturn.engine.images import IMAGE_PART, check_images, image_urls
from axolotl_multiturn.pointers import pointer


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
        super().__init__(
            "; ".join(f"{p.code} {p.message}" + (f" at {p.pointer}" if p.pointer else "") for p in self.problems)
        )


def _content_problem(value: Any, where: str) -> Problem:
    """Why a content is none of: a non-blank string, a list of text and image parts, null."""
    if isinstance(value, str):
        return Problem("MT105", "content is empty or only whitespace", where)
    if isinstance(value, list):
        if not value:
            return Problem("MT105", "content is an empty list of parts", where)
        for k, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == IMAGE_PART and not _image_part(part):
                return Problem(
                    "MT109",
                    f'image part {k} is not {{"type": "image_url", "image_url": {{"url": "..."}}}} (an optional '
                    f"detail: auto, low or high): got {_short(part)}",
                    f"{where}/{k}",
                )
            if kind in ("image", "input_image", "file", "input_audio", "video"):
                return Problem(
                    "MT109",
                    f"{kind} content is not supported: text parts and image_url parts are",
                    f"{where}/{k}",
                )
            if kind != IMAGE_PART and (
                kind != "text" or not isinstance(part.get("text"), str) or set(part) != {"type", "text"}
            ):
                return Problem(
                    "MT109",
                    f'content part {k} is not a text part {{"type": "text", "text": "..."}}: got {_short(part)}',
                    f"{where}/{k}",
                )
    return Problem(
        "MT102", f"content must be a string or a list of text and image parts, got {_json_type(value)}", where
    )


def _image_part(part: Mapping[str, Any]) -> bool:
    """Whether an image_url part has the schema's shape (a non-blank url, an optional detail)."""
    url = part.get("image_url")
    return (
        set(part) == {"type", "image_url"}
        and isinstance(url, dict)
        and isinstance(url.get("url"), str)
        and bool(url["url"].strip())
        and set(url) <= {"url", "detail"}
        and url.get("detail", "auto") in ("auto", "low", "high")
    )


def _schema_problem(error: Any, obj: Any) -> Problem:
    """Turn one python-jsonschema error into a coded problem with a message a person can act on."""
    path = list(error.absolute_path)
    keyword = error.validator
    if keyword is None:  # a `false` subschema: a field this role may not have (the error names no key)
        message = _value_at(obj, path)
        path.append(
            next(
                k
                for k in ROLE_FIELDS
                if k in message and message[k] == error.instance and message.get("role") not in ROLE_FIELDS[k]
            )
        )
    where = pointer(path)
    field = path[-1] if path else None
    value = error.instance
    inside_calls = "tool_calls" in path[:-1]
    message = _value_at(obj, path[:2]) if path[:1] == ["messages"] else None
    role = message.get("role") if isinstance(message, dict) else None
    if keyword is None:
        return Problem("MT114", f"{field!r} is not allowed on a {role} message", where)
    if len(path) > 3 and path[2] == "content" and isinstance(message, dict):  # inside a part
        return _content_problem(message.get("content"), pointer(path[:3]))
    if field == "content" and isinstance(value, list):
        return _content_problem(value, where)
    if path[:1] == ["tools"]:
        return Problem("MT113", f"malformed tools entry: {error.message}", where)
    if keyword == "required":
        missing = error.message.split("'")[1]
        if missing == "tool_call_id":
            return Problem("MT205", "tool message has no tool_call_id; name the call it answers", where)
        if missing == "content" and role == "assistant":
            return Problem("MT115", "assistant message has neither content nor tool_calls", where)
        if inside_calls:
            return Problem("MT112", f"malformed tool call: missing {missing!r}", where)
        return Problem("MT101", f"missing required field {missing!r}", where)
    if keyword == "not" and field == "content":
        if role == "assistant":
            return Problem("MT115", "assistant message has neither content nor tool_calls", where)
        return Problem("MT101", f"content is required on a {role} message, got null", where)
    if keyword == "not":
        return Problem("MT116", "both 'reasoning' and 'reasoning_content'; keep one", where)
    if keyword == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed))
        noun = "tool call field" if inside_calls or field == "tool_calls" else "message field"
        return Problem(
            "MT112" if noun == "tool call field" else "MT107",
            f"unknown {noun} {', '.join(repr(e) for e in extra)}; allowed: {', '.join(allowed)}",
            where,
        )
    if field == "role" and keyword == "enum":
        if isinstance(value, str) and value.lower() in ROLES:
            return Problem("MT104", f"role {value!r} must be lower case: {value.lower()!r}", where)
        return Problem("MT103", f"unknown role {value!r}; expected 'system', 'user', 'assistant' or 'tool'", where)
    if field == "content":
        return _content_problem(value, where)
    if field in ("reasoning", "reasoning_content") and keyword == "pattern":
        return Problem("MT117", f"{field} is empty or only whitespace; leave it out instead", where)
    if field == "tool_calls" and keyword == "minItems":
        return Problem("MT110", "tool_calls is an empty list; leave it out when the turn calls nothing", where)
    if field == "arguments":
        return Problem(
            "MT111", f"arguments must be a JSON object or a string holding one, got {_json_type(value)}", where
        )
    if inside_calls:
        return Problem("MT112", f"malformed tool call: {field} {error.message}", where)
    if field == "weight":
        return Problem("MT106", f"weight must be 0 or 1, got {_short(value)}", where)
    if field == "messages" and keyword == "minItems":
        return Problem("MT108", "messages is empty", where)
    return Problem("MT102", f"{field or 'line'} must be {_expected_type(error)}, got {_json_type(value)}", where)


def _value_at(obj: Any, path: Sequence[Any]) -> Any:
    """The value at `path` in obj, or None."""
    for part in path:
        try:
            obj = obj[part]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def _expected_type(error: Any) -> str:
    expected = error.validator_value if error.validator == "type" else error.schema.get("type", "valid")
    return " or ".join(expected) if isinstance(expected, list) else f"{_article(expected)} {expected}"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _json_type(value: Any) -> str:
    for python_type, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
        (type(None), "null"),
    ):
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _short(value: Any) -> str:
    """The value as JSON writes it, cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def schema_problems(obj: Any) -> list[Problem]:
    """Problems against the conversation schema, from the python validator (the slow path); one per
    pointer and code, so an error the schema reaches two ways is reported once."""
    errors = schemas.python_validator(schemas.CONVERSATION).iter_errors(obj)
    problems = [_schema_problem(e, obj) for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))]
    return list({(p.pointer, p.code): p for p in problems}.values())


#: Role sequences with nothing to report (s system, u user, a assistant, c assistant calling tools,
#: t tool): optional system, then user turns each answered, optionally a final user turn. Most rows
#: match, and this one regex spares them the per-turn walk (rows with tool calls are always walked).
_GOOD_ORDER = re.compile(r"s?(?:ua)+u?")


def _letter(message: Mapping[str, Any]) -> str:
    return "c" if message["role"] == "assistant" and message.get("tool_calls") else message["role"][0]


def structure_problems(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None, calls: bool = True
) -> Iterator[Problem]:
    """Turn order, and with `calls` the tool-call pairing (which needs every call well formed)."""
    letters = "".join([m["role"][0] for m in messages])
    if not messages or (_GOOD_ORDER.fullmatch(letters) and "tool_calls" not in set().union(*messages)):
        return
    letters = "".join([_letter(m) for m in messages])
    yield from _order_problems(messages, letters)
    if calls:
        yield from _call_problems(messages, tools)
    if "a" not in letters and "c" not in letters:
        yield Problem("MT204", "no assistant message: nothing to train on", "/messages")


def _order_problems(messages: Sequence[Mapping[str, Any]], letters: str) -> Iterator[Problem]:
    """Who may speak after whom; whether each call is answered is `_call_problems`' business."""
    roles = [m["role"] for m in messages]
    if letters[0] == "t":
        yield Problem(
            "MT209",
            "a tool message must answer an assistant turn's tool call; the conversation starts with one",
            "/messages/0/role",
        )
    elif letters[0] not in "su":
        yield Problem(
            "MT201", f"first message is {roles[0]!r}; a conversation starts with 'system' or 'user'", "/messages/0/role"
        )
    previous = "s" if letters[0] == "t" else letters[0]  # a stray first tool result is reported once
    for i, letter in enumerate(letters[1:], start=1):
        where = f"/messages/{i}/role"
        if letter == "s":
            yield Problem("MT202", "a system message may only come first (and only once)", where)
            continue
        if letter == "t" and previous in "su":
            yield Problem(
                "MT209",
                f"tool message right after a {roles[i - 1]} message; tool results follow "
                "the assistant turn that calls the tool",
                where,
            )
        elif letter == "t" and previous == "a":
            yield Problem("MT205", "tool message after an assistant turn that calls no tool", where)
        elif letter in "ac" and previous in "as":
            after = "'assistant'" if previous == "a" else "the system message"
            yield Problem(
                "MT203",
                f"got 'assistant' after {after}, expected 'user' (after an optional system "
                "message, user turns and assistant answers alternate)",
                where,
            )
        elif letter == "u" and previous == "u":
            yield Problem(
                "MT203",
                "got 'user' after 'user', expected 'assistant' (after an optional system "
                "message, user turns and assistant answers alternate)",
                where,
            )
        elif letter == "u" and previous == "t":
            yield Problem(
                "MT203",
                "got 'user' after tool results, expected 'assistant': the assistant answers the tool results first",
                where,
            )
        previous = letter


def _call_problems(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
) -> Iterator[Problem]:
    """Each call answered by one tool message of its turn; ids unique; arguments objects; names offered."""
    offered = {t["function"]["name"] for t in tools} if tools is not None else None
    seen: set[str] = set()
    pending: dict[str, int] = {}  # call id -> index of the calling message, for the open turn
    opener = ""  # letter of the last message that is not a tool result

    def unanswered() -> Iterator[Problem]:
        for call_id, index in pending.items():
            yield Problem(
                "MT206",
                f"tool call {call_id!r} has no tool message answering it",
                _call_pointer(messages, index, call_id),
            )
        pending.clear()

    for i, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id in pending:
                del pending[call_id]
            elif call_id is not None and opener == "c":  # other openers are `_order_problems`' findings
                yield Problem(
                    "MT205",
                    f"tool_call_id {call_id!r} answers no call of the preceding assistant turn",
                    f"/messages/{i}/tool_call_id",
                )
            continue
        yield from unanswered()
        opener = _letter(message)
        for k, call in enumerate(message.get("tool_calls") or ()):
            where = f"/messages/{i}/tool_calls/{k}"
            if call["id"] in seen:
                yield Problem("MT207", f"duplicate tool call id {call['id']!r} in this conversation", f"{where}/id")
            seen.add(call["id"])
            pending[call["id"]] = i
            name = call["function"]["name"]
            if offered is not None and name not in offered:
                yield Problem(
                    "MT208",
                    f"calls {name!r}, which is not among the tools offered ({', '.join(sorted(offered)) or 'none'})",
                    f"{where}/function/name",
                )
            if arguments_object(call["function"]["arguments"]) is None:
                yield Problem(
                    "MT111", "arguments is not a JSON object (nor a string holding one)", f"{where}/function/arguments"
                )
    yield from unanswered()


def _call_pointer(messages: Sequence[Mapping[str, Any]], index: int, call_id: str) -> str:
    for k, call in enumerate(messages[index]["tool_calls"]):
        if call["id"] == call_id:
            return f"/messages/{index}/tool_calls/{k}/id"
    return f"/messages/{index}"


def check_conversation(obj: Any) -> list[Problem]:
    """Every schema and structure problem of one parsed JSONL line (or dataset row); turn order is
    checked once every message is valid, so one bad field is one problem, not a cascade."""
    if schemas.fast_validator(schemas.CONVERSATION).is_valid(obj):
        return list(structure_problems(obj["messages"], obj.get("tools")))
    problems = schema_problems(obj)
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if isinstance(messages, list) and all(isinstance(m, dict) and m.get("role") in ROLES for m in messages):
        problems.extend(structure_problems(messages, calls=False))
    return problems


def _message(raw: Mapping[str, Any]) -> Message:
    calls = (
        tuple(
            ToolCall(
                c["id"],
                c["function"]["name"],
                arguments_object(c["function"]["arguments"]) or {},
                c["function"]["arguments"] if isinstance(c["function"]["arguments"], str) else None,
            )
            for c in raw["tool_calls"]
        )
        if raw.get("tool_calls")
        else ()
    )
    content = raw.get("content")
    text: Content | None = content
    if isinstance(content, list):  # parts; text-only lists are joined with newlines (as vLLM does)
        if any(part["type"] == IMAGE_PART for part in content):
            text = tuple(
                Image(part["image_url"]["url"]) if part["type"] == IMAGE_PART else part["text"] for part in content
            )
        else:
            text = "\n".join(part["text"] for part in content)
    return Message(
        raw["role"],
        text,
        raw.get("weight"),
        calls,
        raw.get("tool_call_id"),
        raw.get("reasoning_content", raw.get("reasoning")),
    )


def parse_conversation(obj: Mapping[str, Any], open_calls: bool = False, images: Path | None = None) -> Conversation:
    """Validate one conversation and return it; raise InvalidConversation otherwise. With `open_calls`, the
    last message's tool calls may be unanswered (a preference pair's output: later turns answer them).
    `images`: the folder image paths are relative to, when the model takes images (a processor); without
    it a conversation with an image is refused (MT123), never trained as text."""
    problems = check_conversation(obj)
    if open_calls:
        last = f"/messages/{len(obj['messages']) - 1}/"
        problems = [p for p in problems if not (p.code == "MT206" and p.pointer.startswith(last))]
    if problems:
        raise InvalidConversation(problems)
    image = next(image_urls(obj["messages"]), None)
    if image is not None:
        found = (
            [Problem(code, message, where) for code, message, where in check_images(obj["messages"], images)]
            if images is not None
            else [
                Problem(
                    "MT123",
                    "an image, but the model takes text only (no image processor): train a vision-language "
                    "model (docs/images.md), or remove the image",
                    image[0],
                )
            ]
        )
        if found:
            raise InvalidConversation(found)
    tools = obj.get("tools")
    return Conversation(tuple(_message(m) for m in obj["messages"]), tuple(tools) if tools is not None else None)
