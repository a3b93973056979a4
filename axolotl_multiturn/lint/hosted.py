"""`--compat hosted`: would the hosted fine-tuning API (Together) take this file? Its rules and nothing else.

One definition, from the service's own clients, each rule citing where it comes from:

- together 3.1.1 (`together.lib.utils.files.check_file`, the current client) checks syntax only: the file
  exists, is not empty and at most 50.1 GiB, its name ends in `.jsonl`, it is UTF-8, every non-blank line
  is a JSON object, and there is at least one. "Semantic checks run on the server after upload."
- together 2.14.0 (the same function; the last client that ran the semantic checks, the best public
  statement of what the server checks) adds: a blank line is an error, a line's format is found by its
  fields (conversation, instruction, general, preference) and must be the first line's, extra top-level
  fields are errors (`tools` beside `messages` is allowed), messages need a role from system, user,
  assistant, tool, a content (an assistant may have `tool_calls` instead) that is a string or a list of
  text and image parts, a weight that is the integer 0 or 1, and one assistant message at least; a
  preference line has an `input` object with messages that do not end with the assistant, and one
  assistant message (content or tool calls) in each output.

Both clients parse lines with Python's `json` (NaN and Infinity pass, a repeated key keeps the last value)
and split lines by universal newlines (a bare carriage return ends a line), so this profile does too. Our
own rules (MT codes) are not run: a file this profile passes is one both clients accept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from axolotl_multiturn.lint.compat import Profile
from axolotl_multiturn.pointers import escape

#: The formats the 2.14.0 client knows: the fields that mark each, and the fields each also allows.
FORMATS = {
    "general": ("text",),
    "conversation": ("messages",),
    "instruction": ("prompt", "completion"),
    "preference": ("input", "preferred_output", "non_preferred_output"),
}
EXTRA_FIELDS = {"conversation": ("tools",)}
ROLES = ("system", "user", "assistant", "tool")
MAX_BYTES = int(50.1 * 2**30)  # MAX_FILE_SIZE_GB = 50.1, NUM_BYTES_IN_GB = 2**30 (3.1.1 and 2.14.0)
MIN_SAMPLES = 1  # 3.1.1 and 2.14.0
MAX_IMAGES = 10  # MAX_IMAGES_PER_EXAMPLE (2.14.0), per message and per example
MAX_IMAGE_BYTES = 10 * 2**20  # MAX_IMAGE_BYTES (2.14.0)
MAX_IMAGE_URL = len("data:image/jpeg;base64,") + 4 * MAX_IMAGE_BYTES // 3  # MAX_BASE64_IMAGE_LENGTH
IMAGE_PREFIXES = tuple(f"data:image/{kind};base64," for kind in ("jpeg", "png", "webp"))
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")

#: (code, message, JSON pointer, column or None)
Found = tuple[str, str, str, int | None]


class Reject(Exception):
    """One line's first problem, as the client stops at it."""

    def __init__(self, code: str, message: str, pointer: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.pointer = code, message, pointer


class Hosted(Profile):
    name = "hosted"
    exclusive = True

    def __init__(self) -> None:
        super().__init__()
        self.first_format: str | None = None

    def raw_line(self, raw: bytes) -> Iterator[Found]:
        """The findings of one physical line (split at LF), read as the clients read it."""
        body = raw.removesuffix(b"\n").removesuffix(b"\r")
        offset = 0
        for part in _LINE_ENDS.split(body) if b"\r" in body else (body,):
            yield from self._text_line(part, offset)
            offset += len(part.decode("utf-8", "replace")) + 1

    def _text_line(self, raw: bytes, offset: int) -> Iterator[Found]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            yield (
                "HS111",
                f"invalid UTF-8 byte {raw[bad.start]:#04x}: the file is not UTF-8 (3.1.1, 2.14.0 `_check_utf8`)",
                "",
                offset + len(raw[: bad.start].decode("utf-8", "replace")) + 1,
            )
            return
        if not text.strip():
            yield ("HS114", "blank line: together 2.14.0 fails to parse it (3.1.1 skips it); remove it", "", offset + 1)
            return
        self.examples += 1  # a non-blank line: the clients' sample count, whatever it holds
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as error:
            yield "HS112", f"not JSON to Python's json module: {error.msg} (3.1.1, 2.14.0)", "", offset + error.colno
            return
        except RecursionError:
            yield "HS112", "nested too deep for Python's json module (3.1.1, 2.14.0)", "", offset + 1
            return
        if not isinstance(obj, dict):
            yield "HS113", f"each line must be a JSON object, got {type(obj).__name__} (3.1.1, 2.14.0)", "", offset + 1
            return
        try:
            self._semantic(obj)
        except Reject as problem:
            yield problem.code, problem.message, problem.pointer, None

    def _semantic(self, obj: dict[str, Any]) -> None:
        """together 2.14.0's `_check_jsonl` for purpose fine-tune: the format, then its fields."""
        found = [name for name, fields in FORMATS.items() if all(f in obj for f in fields)]
        if len(found) > 1:
            raise Reject("HS107", f"fields of several formats on one line ({', '.join(found)}) (2.14.0)")
        if not found:
            raise Reject(
                "HS107",
                "no format the hosted API knows: messages; prompt and completion; text; input, "
                "preferred_output and non_preferred_output (2.14.0)",
            )
        kind = found[0]
        for extra in (k for k in obj if k not in FORMATS[kind] + EXTRA_FIELDS.get(kind, ())):
            raise Reject(
                "HS101",
                f"field {extra!r} beside the {kind} format's fields (2.14.0: extra column)",
                f"/{escape(extra)}",
            )
        if kind == "conversation":
            _messages(obj["messages"], "/messages", require_assistant=True)
        elif kind == "preference":
            _preference(obj)
        else:
            for field in FORMATS[kind]:
                _content(obj[field], "assistant" if field == "completion" else "user", f"/{field}")
        if self.first_format is None:
            self.first_format = kind
        elif kind != self.first_format:
            raise Reject(
                "HS107",
                f"{kind} format after {self.first_format} lines: every line must share the "
                "first line's format (2.14.0)",
            )

    def end(self, path: str, size: int) -> Iterator[tuple[str, str, str]]:
        if path != "-" and not path.endswith(".jsonl"):
            yield "HS110", "the file name must end in .jsonl (3.1.1, 2.14.0: unknown extension)", ""
        if size > MAX_BYTES:
            yield "HS109", f"{size / 2**30:.2f} GiB; the limit is 50.1 GiB (3.1.1, 2.14.0)", ""
        if self.examples < MIN_SAMPLES:
            yield "HS106", "no sample in the file (3.1.1, 2.14.0: File is empty / minimum 1 sample)", ""


def _messages(messages: Any, where: str, require_assistant: bool) -> None:
    """2.14.0 `validate_messages`: shapes, roles, contents, weights, images, one assistant message."""
    if not isinstance(messages, list) or not messages:
        raise Reject("HS115", "messages must be a non-empty list of objects (2.14.0)", where)
    multimodal: bool | None = None
    images = 0
    for i, message in enumerate(messages):
        at = f"{where}/{i}"
        if not isinstance(message, dict):
            raise Reject("HS115", "a message must be an object (2.14.0)", at)
        if "role" not in message:
            raise Reject("HS115", "a message without role (2.14.0)", at)
        if message["role"] != "assistant" and "content" not in message:
            raise Reject(
                "HS115", "a message without content; only an assistant message may have tool_calls instead (2.14.0)", at
            )
        if "content" not in message and "tool_calls" not in message:
            raise Reject("HS115", "an assistant message with neither content nor tool_calls (2.14.0)", at)
    for i, message in enumerate(messages):
        at = f"{where}/{i}"
        weight = message.get("weight")
        if "weight" in message and (not isinstance(weight, int) or weight not in (0, 1)):
            raise Reject("HS116", f"weight {weight!r}: it must be the integer 0 or 1 (2.14.0)", f"{at}/weight")
        role = message["role"]
        if not isinstance(role, str) or role not in ROLES:
            raise Reject("HS102", f"role {role!r}: the hosted API knows {', '.join(ROLES)} (2.14.0)", f"{at}/role")
        if not message.get("content"):  # 2.14.0 checks no null, empty or absent content further
            continue
        is_parts, count = _content(message["content"], role, f"{at}/content")
        if count and weight:
            raise Reject("HS118", "a message with images must have weight 0 (2.14.0)", f"{at}/weight")
        if multimodal is None:
            multimodal = is_parts
        elif multimodal != is_parts:
            raise Reject(
                "HS103",
                "every content of a conversation is a string, or every one a list of parts, not both (2.14.0)",
                f"{at}/content",
            )
        images += count
    if images > MAX_IMAGES:
        raise Reject("HS118", f"{images} images in one example; at most {MAX_IMAGES} (2.14.0)", where)
    if require_assistant and not any(m["role"] == "assistant" for m in messages):
        raise Reject("HS117", "no assistant message (2.14.0)", where)


def _content(content: Any, role: str, at: str) -> tuple[bool, int]:
    """2.14.0 `_check_message_content`: (whether it is a list of parts, how many images it holds)."""
    if isinstance(content, str):
        return False, 0
    if not isinstance(content, list):
        raise Reject("HS103", f"content must be a string or a list of parts, got {type(content).__name__} (2.14.0)", at)
    images = 0
    for k, part in enumerate(content):
        where = f"{at}/{k}"
        if not isinstance(part, dict) or "type" not in part:
            raise Reject("HS103", "a content part must be an object with a type (2.14.0)", where)
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise Reject("HS103", "a text part needs a string text (2.14.0)", where)
        elif part["type"] == "image_url":
            _image(part, role, where)
            images += 1
        else:
            raise Reject("HS103", f"content part type {part['type']!r}: text or image_url (2.14.0)", where)
    if images > MAX_IMAGES:
        raise Reject("HS118", f"{images} images in one content; at most {MAX_IMAGES} (2.14.0)", at)
    return True, images


def _image(part: dict[str, Any], role: str, where: str) -> None:
    if role != "user":
        raise Reject("HS118", f"an image in a {role} message; only user messages may hold images (2.14.0)", where)
    url = part.get("image_url").get("url") if isinstance(part.get("image_url"), dict) else None
    if not url or not isinstance(url, str):
        raise Reject("HS118", "an image part needs image_url.url, a string (2.14.0)", where)
    if not url.startswith(IMAGE_PREFIXES):
        raise Reject("HS118", "an image must be a base64 data URL of a JPEG, PNG or WEBP image (2.14.0)", where)
    if len(url) > MAX_IMAGE_URL:
        raise Reject("HS118", f"an image of about {len(url) * 3 // 4:,} bytes; at most 10 MB (2.14.0)", where)


def _preference(obj: dict[str, Any]) -> None:
    """2.14.0 `validate_preference_openai`."""
    source = obj["input"]
    if not isinstance(source, dict) or "messages" not in source:
        raise Reject("HS108", "input must be an object with a messages list (2.14.0)", "/input")
    _messages(source["messages"], "/input/messages", require_assistant=False)
    if source["messages"][-1]["role"] == "assistant":
        raise Reject(
            "HS108",
            "the input's last message is from the assistant; the outputs answer it (2.14.0)",
            f"/input/messages/{len(source['messages']) - 1}",
        )
    for field in ("preferred_output", "non_preferred_output"):
        value = obj[field]
        if (
            not isinstance(value, list)
            or len(value) != 1
            or not isinstance(value[0], dict)
            or value[0].get("role") != "assistant"
        ):
            raise Reject("HS108", f"{field} must be a list of exactly one assistant message (2.14.0)", f"/{field}")
        if "content" not in value[0] and "tool_calls" not in value[0]:
            raise Reject("HS108", f"{field}'s message needs content or tool_calls (2.14.0)", f"/{field}/0")
        if "content" in value[0]:
            _content(value[0]["content"], "assistant", f"/{field}/0/content")
