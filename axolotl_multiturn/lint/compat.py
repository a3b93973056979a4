"""`--compat hosted|openai`: what another service's documented checks would reject, beside our own rules.

Each rule names its source in the README table. `hosted` follows the hosted API's client-side checker
(`together.utils.files.check_file`: formats, roles, string contents, weights, same-role runs, extra
fields, minimum examples, file size) and its data-preparation docs; `openai` follows OpenAI's fine-tuning
format checks and its vision fine-tuning limits. What a service does with a field its checker does not
read is not documented: such findings are warnings that say so, not guesses.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

#: The hosted checker's dataset formats: the fields that mark each (a line holding two is rejected).
HOSTED_FORMATS = {"conversation": ("messages",), "instruction": ("prompt", "completion"), "general": ("text",),
                  "preference": ("input", "preferred_output", "non_preferred_output")}
HOSTED_ROLES = ("system", "user", "assistant")
HOSTED_MIN_EXAMPLES = 100  # together constants.MIN_SAMPLES
HOSTED_MAX_BYTES = int(4.9 * 2**30)  # together constants.MAX_FILE_SIZE_GB
OPENAI_MIN_EXAMPLES = 10
OPENAI_MESSAGE_KEYS = ("role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id")
OPENAI_MAX_IMAGES = 64
OPENAI_MAX_IMAGE_BYTES = 10 * 2**20
OPENAI_MAX_IMAGE_EXAMPLES = 50_000

Found = tuple[str, str, str]  # (code, message, JSON pointer)


class Profile:
    """One service's checks: per parsed line, then once for the whole file."""

    name = ""

    def __init__(self) -> None:
        self.examples = 0

    def owns(self, obj: dict[str, Any]) -> bool:
        """A line in a format only this service trains on: checked by the profile alone."""
        return False

    def line(self, obj: dict[str, Any]) -> Iterator[Found]:
        raise NotImplementedError

    def end(self, size: int) -> Iterator[Found]:
        raise NotImplementedError


def _hosted_format(obj: dict[str, Any]) -> tuple[list[str], str | None]:
    found = [name for name, fields in HOSTED_FORMATS.items() if all(f in obj for f in fields)]
    return found, found[0] if len(found) == 1 else None


class Hosted(Profile):
    name = "hosted"

    def __init__(self) -> None:
        super().__init__()
        self.first_format: str | None = None

    def owns(self, obj: dict[str, Any]) -> bool:
        return _hosted_format(obj)[1] == "preference"

    def line(self, obj: dict[str, Any]) -> Iterator[Found]:
        self.examples += 1
        found, kind = _hosted_format(obj)
        if len(found) > 1:
            yield "HS107", f"the line holds fields of several formats ({', '.join(found)}): rejected", ""
            return
        if kind is None:
            yield "HS107", "no format the hosted API knows (messages; prompt and completion; text; input and " \
                           "preferred_output and non_preferred_output)", ""
            return
        if self.first_format is None:
            self.first_format = kind
        elif kind != self.first_format:
            yield "HS107", f"{kind} format after {self.first_format} lines: all lines must share one format", ""
        for extra in (k for k in obj if k not in HOSTED_FORMATS[kind]):
            yield "HS101", f"field {extra!r} beside the {kind} format's fields: the hosted checker rejects it", \
                f"/{extra}"
        if kind == "conversation":
            yield from self._messages(obj.get("messages"), "/messages")
        elif kind == "preference":
            yield from self._preference(obj)

    def _messages(self, messages: Any, where: str) -> Iterator[Found]:
        if not isinstance(messages, list) or not messages:
            yield "HS108", "messages must be a non-empty list", where
            return
        previous = None
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                yield "HS108", "a message must be an object", f"{where}/{i}"
                continue
            role = message.get("role")
            if role not in HOSTED_ROLES:
                yield "HS102", f"role {role!r} is not accepted (system, user, assistant)", f"{where}/{i}/role"
            if not isinstance(message.get("content"), str):
                yield "HS103", "content must be a string (null and lists of parts are rejected)", \
                    f"{where}/{i}/content"
            if role == previous:
                yield "HS104", f"two {role} messages in a row: roles must alternate", f"{where}/{i}/role"
            previous = role
            for key in (k for k in ("tool_calls", "tool_call_id", "reasoning", "reasoning_content") if k in message):
                yield "HS105", f"{key!r}: the hosted checker does not read it; whether training uses it is not " \
                               "documented (unknown)", f"{where}/{i}/{key}"

    def _preference(self, obj: dict[str, Any]) -> Iterator[Found]:
        source = obj["input"]
        if not isinstance(source, dict) or "messages" not in source:
            yield "HS108", "input must be an object with a messages list", "/input"
        else:
            yield from self._messages(source["messages"], "/input/messages")
        for field in ("preferred_output", "non_preferred_output"):
            value = obj[field]
            if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict) \
                    or value[0].get("role") != "assistant":
                yield "HS108", f"{field} must be a list of exactly one assistant message", f"/{field}"
            else:
                yield from self._messages(value, f"/{field}")

    def end(self, size: int) -> Iterator[Found]:
        if self.examples < HOSTED_MIN_EXAMPLES:
            yield "HS106", f"{self.examples} examples; the hosted API needs at least {HOSTED_MIN_EXAMPLES}", ""
        if size > HOSTED_MAX_BYTES:
            yield "HS109", f"{size / 2**30:.2f} GiB; the hosted checker's limit is 4.9 GiB", ""


def _images(content: Any) -> list[str]:
    """The image URLs of a list content."""
    if not isinstance(content, list):
        return []
    return [part.get("image_url", {}).get("url", "") if isinstance(part.get("image_url"), dict) else ""
            for part in content if isinstance(part, dict) and part.get("type") == "image_url"]


def _data_url_bytes(url: str) -> int:
    """The decoded size of a base64 data URL (0 for a web URL, whose size is not known here)."""
    if not url.startswith("data:") or ";base64," not in url:
        return 0
    payload = url.split(";base64,", 1)[1]
    try:
        return len(base64.b64decode(payload, validate=False))
    except ValueError:
        return 0


class OpenAI(Profile):
    name = "openai"

    def __init__(self) -> None:
        super().__init__()
        self.with_images = 0

    def line(self, obj: dict[str, Any]) -> Iterator[Found]:
        self.examples += 1
        messages = obj.get("messages")
        if not isinstance(messages, list):
            return
        images = 0
        for i, message in enumerate(m for m in messages if isinstance(m, dict)):
            role = message.get("role")
            for key in (k for k in message if k not in OPENAI_MESSAGE_KEYS):
                yield "OA101", f"message key {key!r} is not in OpenAI's format", f"/messages/{i}/{key}"
            if "weight" in message and role != "assistant":
                yield "OA102", "weight is only read on assistant messages", f"/messages/{i}/weight"
            urls = _images(message.get("content"))
            images += len(urls)
            if urls and role != "user":
                yield "OA104", f"images in the {role} message; only user messages may hold images", \
                    f"/messages/{i}/content"
            for k, url in enumerate(urls):
                if _data_url_bytes(url) > OPENAI_MAX_IMAGE_BYTES:
                    yield "OA106", f"image {k} is {_data_url_bytes(url) / 2**20:.1f} MB; the limit is 10 MB", \
                        f"/messages/{i}/content"
        if images > OPENAI_MAX_IMAGES:
            yield "OA105", f"{images} images in one example; the limit is {OPENAI_MAX_IMAGES}", "/messages"
        self.with_images += images > 0

    def end(self, size: int) -> Iterator[Found]:
        if self.examples < OPENAI_MIN_EXAMPLES:
            yield "OA103", f"{self.examples} examples; OpenAI needs at least {OPENAI_MIN_EXAMPLES}", ""
        if self.with_images > OPENAI_MAX_IMAGE_EXAMPLES:
            yield "OA107", f"{self.with_images} examples with images; the limit is {OPENAI_MAX_IMAGE_EXAMPLES}", ""


PROFILES: dict[str, type[Profile]] = {"hosted": Hosted, "openai": OpenAI}
