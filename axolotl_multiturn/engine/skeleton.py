"""The skeleton of a conversation: every free text (contents, reasoning, string argument values, call ids)
replaced by a numbered sentinel. Its key is everything else (roles, function names, argument keys and
non-string values, tools), so the renders of one key are computed once; a sentinel's place in a skeleton
render (`Slot`) says where its text goes in the real render.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any, NamedTuple

from axolotl_multiturn.engine.conversation import Content, Conversation, Image, Message, ToolCall

# A sentinel as written, or as Python's `repr` prints it inside an object a template prints with `{{ }}`
# (`{'city': '\\ue0000\\ue001'}`: private-use characters are escaped; Phi-4-mini prints arguments so).
SENTINEL_RE = re.compile(r"(?:\ue000|\\ue000)(\d+)(?:\ue002|\\ue002)*(?:\ue001|\\ue001)")


class Leaf(IntEnum):
    """What kind of free text a sentinel stands for."""

    CONTENT = 0
    REASONING = 1
    ARGUMENT = 2  # a string value inside a tool call's arguments
    ID = 3  # a tool call id, or a tool message's tool_call_id


class Text(NamedTuple):
    """A free text of the conversation (what a sentinel stands for): its message, kind and text."""

    message: int
    kind: Leaf
    text: str


class Slot(NamedTuple):
    """Where a sentinel sits in a skeleton render: characters [start, end), its leaf (text) number, and
    the message that owns it."""

    start: int
    end: int
    leaf: int
    message: int


@dataclass(frozen=True, slots=True)
class Skeleton:
    """The conversation with its texts as sentinels, and who owns each sentinel."""

    conversation: Conversation  # every free text a sentinel
    owners: tuple[tuple[int, ...], ...]  # per sentinel: its message (a call id: then the tool message)
    kinds: tuple[Leaf, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """A conversation, the texts that fill its skeleton's slots, the key the skeleton's renders are cached
    by, and the skeleton itself."""

    conversation: Conversation
    leaves: tuple[Text, ...]  # per sentinel number
    key: tuple[Any, ...]
    skeleton: Skeleton


IMAGE = Image("")  # an image in a skeleton: templates print markup for it, never its URL


@lru_cache(maxsize=65536)
def sentinel(n: int, length: int | None = None) -> str:
    """Sentinel n; padded to `length` characters where a template checks a text's length (call ids).
    Memoised: every row of a shape asks for the same ones."""
    core = f"\ue000{n}"
    return core + "\ue002" * max(0, (length or 0) - len(core) - 1) + "\ue001"


def structure(value: Any) -> Any:
    """The hashable shape of a JSON value: strings become slots, everything else stays."""
    if isinstance(value, str):
        return str
    if isinstance(value, Mapping):
        return tuple((k, structure(v)) for k, v in value.items())
    if isinstance(value, list):
        return ("[", *(structure(v) for v in value))
    return ("=", json.dumps(value))


def plan_of(conversation: Conversation, string_arguments: bool, known: Mapping[tuple[Any, ...], Skeleton]) -> Plan:
    """The conversation's texts and skeleton key; its skeleton is `known`'s for the key when there is one
    (built once per key). `string_arguments`: a call's arguments are one text, the string as written."""
    leaves: list[Text] = []
    skeleton: list[Message] = []
    shape: list[Any] = []

    def slot(message: int, kind: Leaf, text: str, length: int | None = None) -> str:
        leaves.append(Text(message, kind, text))
        return sentinel(len(leaves) - 1, length)

    def arguments(message: int, value: Any) -> Any:
        if isinstance(value, str):
            return slot(message, Leaf.ARGUMENT, value)
        if isinstance(value, Mapping):
            return {k: arguments(message, v) for k, v in value.items()}
        if isinstance(value, list):
            return [arguments(message, v) for v in value]
        return value

    ids: dict[str, tuple[str, int]] = {}  # an id's sentinel and leaf: a tool message answering a call
    answering: dict[int, int] = {}  # leaf of an id -> the tool message that repeats it

    def call_id(message: int, text: str) -> tuple[str, Any]:
        """An id's sentinel is padded to its length (templates check it); the tool message answering a
        call gets the call's own sentinel (templates match them); an id too short to pad stays literal."""
        if text in ids:
            answering[ids[text][1]] = message
            return ids[text][0], ("=", ids[text][1])
        if len(text) >= len(sentinel(len(leaves))):
            ids[text] = (slot(message, Leaf.ID, text, len(text)), len(leaves) - 1)
            return ids[text][0], len(text)
        return text, text

    def content_of(i: int, content: Content | None) -> tuple[Content | None, Any]:
        """The content's skeleton and shape: a text is a slot; parts keep their images, texts slots."""
        if isinstance(content, tuple):
            parts = tuple(IMAGE if isinstance(part, Image) else slot(i, Leaf.CONTENT, part) for part in content)
            return parts, tuple(isinstance(part, Image) for part in content)
        return (slot(i, Leaf.CONTENT, content), False) if content is not None else (None, None)

    for i, m in enumerate(conversation.messages):
        content, content_shape = content_of(i, m.content)
        reasoning = slot(i, Leaf.REASONING, m.reasoning) if m.reasoning is not None else None
        calls, call_shapes = [], []
        for c in m.tool_calls:
            ident, ident_shape = call_id(i, c.id)
            if string_arguments:  # the arguments string as written, one text
                calls.append(ToolCall(ident, c.name, {}, slot(i, Leaf.ARGUMENT, c.written())))
                call_shapes.append((c.name, str, ident_shape))
                continue
            calls.append(ToolCall(ident, c.name, arguments(i, c.arguments)))
            call_shapes.append((c.name, structure(c.arguments), ident_shape))
        answer, answer_shape = call_id(i, m.tool_call_id) if m.tool_call_id is not None else (None, None)
        skeleton.append(Message(m.role, content, None, tuple(calls), answer, reasoning))
        shape.append((m.role, content_shape, reasoning is None, tuple(call_shapes), answer_shape))
    tools = json.dumps(conversation.tools, sort_keys=True) if conversation.tools is not None else None
    key = (tuple(shape), tools)
    found = known.get(key)
    if found is None:
        owners = tuple(
            (leaf.message, answering[n]) if n in answering else (leaf.message,) for n, leaf in enumerate(leaves)
        )
        found = Skeleton(Conversation(tuple(skeleton), conversation.tools), owners, tuple(leaf.kind for leaf in leaves))
    return Plan(conversation, tuple(leaves), key, found)


def slots(text: str, skeleton: Skeleton) -> list[Slot]:
    """Every sentinel in a skeleton render; a call id's later occurrences belong to the tool message
    that answers the call."""
    owners = skeleton.owners
    seen: dict[int, int] = {}
    out = []
    for m in SENTINEL_RE.finditer(text):
        leaf = int(m.group(1))
        seen[leaf] = seen.get(leaf, -1) + 1
        out.append(Slot(m.start(), m.end(), leaf, owners[leaf][min(seen[leaf], len(owners[leaf]) - 1)]))
    return out
