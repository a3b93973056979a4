"""`--compat openai|hosted`: what another service's checks would reject.

Each rule names its source in the rules table (docs/lint-rules.md). `openai` follows OpenAI's fine-tuning
format checks and its vision fine-tuning limits, beside our own rules; `hosted` (`lint.hosted`) is the
hosted API's own clients' checks alone (an exclusive profile: it reads the raw lines itself).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

OPENAI_MIN_EXAMPLES = 10
OPENAI_MESSAGE_KEYS = ("role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id")
OPENAI_MAX_IMAGES = 64
OPENAI_MAX_IMAGE_BYTES = 10 * 2**20
OPENAI_MAX_IMAGE_EXAMPLES = 50_000

Found = tuple[str, str, str]  # (code, message, JSON pointer)


class Profile:
    """One service's checks: per parsed line, then once for the whole file. An `exclusive` profile reads
    each raw line itself (`raw_line`) and reports its own findings alone."""

    name = ""
    exclusive = False

    def __init__(self) -> None:
        self.examples = 0

    def line(self, obj: dict[str, Any]) -> Iterator[Found]:
        raise NotImplementedError

    def raw_line(self, raw: bytes) -> Iterator[tuple[str, str, str, int | None]]:
        """An exclusive profile's findings of one raw line: (code, message, pointer, column or None)."""
        raise NotImplementedError

    def end(self, path: str, size: int) -> Iterator[Found]:
        raise NotImplementedError


def _images(content: Any) -> list[str]:
    """The image URLs of a list content."""
    if not isinstance(content, list):
        return []
    return [
        part.get("image_url", {}).get("url", "") if isinstance(part.get("image_url"), dict) else ""
        for part in content
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


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
                yield (
                    "OA104",
                    f"images in the {role} message; only user messages may hold images",
                    f"/messages/{i}/content",
                )
            for k, url in enumerate(urls):
                if _data_url_bytes(url) > OPENAI_MAX_IMAGE_BYTES:
                    yield (
                        "OA106",
                        f"image {k} is {_data_url_bytes(url) / 2**20:.1f} MB; the limit is 10 MB",
                        f"/messages/{i}/content",
                    )
        if images > OPENAI_MAX_IMAGES:
            yield "OA105", f"{images} images in one example; the limit is {OPENAI_MAX_IMAGES}", "/messages"
        self.with_images += images > 0

    def end(self, path: str, size: int) -> Iterator[Found]:
        if self.examples < OPENAI_MIN_EXAMPLES:
            yield "OA103", f"{self.examples} examples; OpenAI needs at least {OPENAI_MIN_EXAMPLES}", ""
        if self.with_images > OPENAI_MAX_IMAGE_EXAMPLES:
            yield "OA107", f"{self.with_images} examples with images; the limit is {OPENAI_MAX_IMAGE_EXAMPLES}", ""
