"""A conversation as small value objects (`engine/validate.py` makes them from JSON, checked).

No heavy imports: the linter's base install has neither torch nor transformers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson

Role = Literal["system", "user", "assistant", "tool"]
ROLES = ("system", "user", "assistant", "tool")
#: Fields only some roles may have (the schema's `false` subschemas), and those roles.
ROLE_FIELDS = {
    "tool_calls": ("assistant",),
    "reasoning": ("assistant",),
    "reasoning_content": ("assistant",),
    "tool_call_id": ("tool",),
}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call of an assistant turn; `arguments` is the parsed JSON object, `text` the string
    the data gave for it, as written (None when the data gave an object)."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    text: str | None = None

    def written(self) -> str:
        """The arguments as a string: the data's own, or the object serialized (non-ASCII kept)."""
        return self.text if self.text is not None else json.dumps(self.arguments, ensure_ascii=False)


class Image(NamedTuple):
    """An image part of a user message: its URL as the data wrote it (a data URL, a web URL or a path)."""

    url: str


#: A message's content: its text, or (only when it holds an image) its parts in order, texts and images.
Content = str | tuple[str | Image, ...]


class Message(NamedTuple):
    """One message. `weight` is None unless the data sets it (0: never trained, 1: always trained).

    `content` is None only on an assistant turn that calls tools without text; it is a tuple of parts only
    when the message holds an image (text-only part lists are joined). `reasoning` is the trace
    the data gave as `reasoning_content` or `reasoning`. A named tuple, like `render.Span`: immutable,
    and made per message of every row, so cheap to build (a frozen dataclass costs twice as much).
    """

    role: Role
    content: Content | None
    weight: int | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """The messages, and the tools offered to the assistant (None when the row has none)."""

    messages: tuple[Message, ...]
    tools: tuple[Mapping[str, Any], ...] | None = None

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def images(self) -> tuple[Image, ...]:
        """The images of the conversation, in order."""
        return tuple(
            p for m in self.messages if isinstance(m.content, tuple) for p in m.content if isinstance(p, Image)
        )

    def replace(self, messages: Sequence[Message]) -> Conversation:
        """The same tools with other messages (a window, or a prefix of this conversation)."""
        return Conversation(tuple(messages), self.tools)


def without_nulls(value: Any, keep: str | None = None) -> Any:
    """`value` without the object keys whose value is null, at every depth (but `keep`'s at the top).

    A dataset row that came through Arrow (parquet, the Hub, `Dataset.from_list`, datasets' JSON loader)
    holds every key that any row, message or tool of its column holds: struct types are unified, and a key
    missing here is filled with null (`weight`, a tool's parameters gaining `"query": null` from another
    tool). Those nulls are the loader's, not the user's, and no template may see them. A null content is
    meaningful (an assistant turn that only calls tools), so messages keep it. What cannot be told apart: a
    literal null the user wrote inside an object (a tool schema's `"default": null`) is dropped too."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None or k == keep}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def arguments_object(value: Any) -> Mapping[str, Any] | None:
    """Arguments as the object they stand for: an object, or a string holding one; None otherwise."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None
