"""Image parts of user messages: where each image comes from, and the checks the schema cannot state.

An image part is `{"type": "image_url", "image_url": {"url": ...}}` (the OpenAI / hosted-API shape). Its URL
is a base64 data URL (what the hosted API takes), an http(s) URL (checked for its form only: nothing is
fetched), or a file path, relative to the folder of the JSONL file that names it. The limits are the
schema's (`$defs/image_part/x-limits` in `schemas/conversation.schema.json`), read here, not restated.
No heavy imports: the linter uses this module.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from axolotl_multiturn import schemas

IMAGE_PART = "image_url"
_DATA_URL = re.compile(r"data:(?P<media>[^;,]*)(?P<base64>;base64)?,", re.IGNORECASE)


class Source(enum.Enum):
    DATA = "a data URL"
    WEB = "a web URL"
    FILE = "a file"


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    max_per_conversation: int
    media_types: tuple[str, ...]


@cache
def limits() -> Limits:
    """The image limits as the conversation schema states them."""
    stated = schemas.load(schemas.CONVERSATION)["$defs"]["image_part"]["x-limits"]
    return Limits(stated["max_bytes"], stated["max_per_conversation"], tuple(stated["media_types"]))


#: (code, message, JSON pointer) of one image problem (codes in `lint.rules`).
ImageProblem = tuple[str, str, str]


def source(url: str) -> Source | None:
    """Where a URL's image comes from; None for a scheme we do not read (ftp:, s3:, ...). A path has no
    scheme, or file:, or a one-letter one (a Windows drive)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "data":
        return Source.DATA
    if scheme in ("http", "https"):
        return Source.WEB
    return Source.FILE if scheme in ("", "file") or len(scheme) == 1 else None


def image_urls(messages: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, str, Any]]:
    """(JSON pointer, URL, the message's role) of every image part of the messages' list contents, in order."""
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            for k, part in enumerate(content):
                if isinstance(part, Mapping) and part.get("type") == IMAGE_PART:
                    yield f"/messages/{i}/content/{k}/image_url/url", part["image_url"]["url"], message.get("role")


def check_images(messages: Sequence[Mapping[str, Any]], folder: Path) -> Iterator[ImageProblem]:
    """The images of a schema-valid conversation against the roles and limits; files are looked for in `folder`
    (the JSONL file's)."""
    limit = limits()
    found = list(image_urls(messages))
    for where, url, role in found:
        kind = source(url)
        if role != "user":  # the hosted API's rule; a schema rule on every message cost the linter a third
            yield (
                "MT118",
                f"an image in {'an' if role == 'assistant' else 'a'} {role} message: only user messages hold images",
                where,
            )
        elif kind is None:
            scheme = urlsplit(url).scheme
            yield ("MT119", f"image URL scheme {scheme!r}: use a data URL, an http(s) URL or a path", where)
        elif kind is Source.DATA:
            yield from _data_url(url, where, limit)
        elif kind is Source.FILE:
            yield from _file(url, where, folder, limit)
    if len(found) > limit.max_per_conversation:
        yield ("MT122", f"{len(found)} images in one conversation; at most {limit.max_per_conversation}", "/messages")


def image_bytes(url: str, folder: Path) -> bytes:
    """An image's bytes, from its data URL or its file (relative to `folder`); a web URL is never fetched
    (download it, and name the file). Raises ValueError saying why it cannot be read."""
    kind = source(url)
    if kind is Source.DATA:
        match = _DATA_URL.match(url)
        return _decoded(url[match.end() :] if match else "")
    if kind is Source.FILE:
        path = _path(url, folder)
        if not path.is_file():
            raise ValueError(f"no image file {str(path)!r}")
        return path.read_bytes()
    raise ValueError(f"{url[:60]!r} is a web URL: training never fetches images; download it and give its path")


def _decoded(payload: str) -> bytes:
    """A data URL's base64 payload decoded; ValueError when it does not decode."""
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("data URL's base64 does not decode") from None


def _path(url: str, folder: Path) -> Path:
    path = Path(unquote(urlsplit(url).path)) if url.lower().startswith("file:") else Path(url)
    return path if path.is_absolute() else folder / path


def _data_url(url: str, where: str, limit: Limits) -> Iterator[ImageProblem]:
    match = _DATA_URL.match(url)
    media = match["media"].lower() if match else ""
    if not match or not match["base64"] or media not in limit.media_types:
        yield (
            "MT119",
            f"a data URL must be base64 of {', '.join(limit.media_types)} (data:image/png;base64,...), got "
            f"{url[:40]!r}",
            where,
        )
        return
    try:
        size = len(_decoded(url[match.end() :]))
    except ValueError as error:
        yield ("MT119", f"the {error}", where)
        return
    yield from _size(size, where, limit)


def _file(url: str, where: str, folder: Path, limit: Limits) -> Iterator[ImageProblem]:
    path = _path(url, folder)
    if not path.is_file():
        yield ("MT120", f"no image file {str(path)!r} (a path is relative to the JSONL file's folder)", where)
    else:
        yield from _size(path.stat().st_size, where, limit)


def _size(size: int, where: str, limit: Limits) -> Iterator[ImageProblem]:
    if size > limit.max_bytes:
        yield ("MT121", f"an image of {size / 2**20:.1f} MB; at most {limit.max_bytes / 2**20:g} MB", where)
