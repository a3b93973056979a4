"""JSON pointers (RFC 6901), the one way findings name a place inside a line: `/messages/3/content`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def escape(token: Any) -> str:
    """One reference token: `~` as `~0`, `/` as `~1`."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(path: Iterable[Any]) -> str:
    """The pointer of a path of keys and indices (`''` for the whole document)."""
    return "".join(f"/{escape(part)}" for part in path)


def tokens(value: str) -> list[str]:
    """A pointer's reference tokens, unescaped."""
    return [p.replace("~1", "/").replace("~0", "~") for p in value.split("/")[1:]] if value else []
