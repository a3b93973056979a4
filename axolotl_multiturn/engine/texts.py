"""Where the texts of a conversation are in a render: as written or as the template changed them
(trimmed, JSON-escaped, `repr`-printed), where a generation prompt stops agreeing with a render, and the
whitespace a vocabulary glues to a content word.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from axolotl_multiturn.engine.skeleton import Leaf
from axolotl_multiturn.engine.spans import Kind


class Segment(NamedTuple):
    """A piece of a skeleton render: template text of one kind, or one text's slot."""

    text: str  # skeleton text (a sentinel for a slot)
    leaf: int  # leaf index of a slot, -1 for template text
    kind: Kind
    message: int


def common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def agreement(text: str, prompt: str) -> int:
    """How much of `prompt` (the text from the last earlier message to the generation prompt's end)
    `text` renders too: all of it, or their common prefix cut back to a line end or the end of a markup
    token (`<|im_start|>assistant\n<think>` and `...assistant\n<tool_call>` agree through the newline)."""
    common = common_prefix(text, prompt)
    if common == len(prompt):
        return common
    while common > 0 and not (prompt[common - 1].isspace() or prompt[common - 1] in ">]"):
        common -= 1
    return common


def trim_variants(text: str, kind: Leaf) -> tuple[str, ...]:
    """What a template may turn a text into: itself, trimmed (Jinja `trim`, Python strip, strip('\\n')),
    or JSON-escaped (`tojson` of a string, without its quotes)."""
    if kind is Leaf.ID:
        return (text,)
    escaped = json.dumps(text, ensure_ascii=False)[1:-1]
    if kind is Leaf.ARGUMENT:  # as written, JSON-escaped, or as `repr` prints it inside an object
        return tuple(dict.fromkeys((text, escaped, repr(text)[1:-1])))
    variants = (
        text,
        text.strip(),
        text.rstrip(),
        text.lstrip(),
        text.strip("\n"),
        text.lstrip("\n"),
        text.rstrip("\n"),
        escaped,
    )
    return tuple(dict.fromkeys(variants))


def locate(text: str, pos: int, real: str, kind: Leaf, after: str) -> int:
    """Where a leaf's text rendered at `pos` ends: the first variant of it (as written first) that is
    followed by the template text `after`; -1 if none is."""
    if text.startswith(real, pos) and text.startswith(after, pos + len(real)):
        return pos + len(real)
    for variant in trim_variants(real, kind)[1:]:
        if text.startswith(variant, pos) and text.startswith(after, pos + len(variant)):
            return pos + len(variant)
    return -1


def glue(segments: Sequence[Segment]) -> tuple[tuple[tuple[int, ...], ...], np.ndarray]:
    """Where each segment's spans start (relative to it), and each span's kind, message and glue flag:
    the whitespace at the edges of template text that touches a content slot is a span of its own, glue.

    SentencePiece and BPE vocabularies merge a separator space into the next word (`' [/INST] ' + content`
    gives one token '▁Hello'). Such a token carries the content's first word: it takes the content's
    label. Glue characters never decide a label on their own (see `Encoded.labels`). A layout is shared
    by every row of its shape, so this is decided once per shape.
    """
    starts: list[tuple[int, ...]] = []
    static: list[tuple[int, int, int]] = []
    for i, segment in enumerate(segments):
        text = segment.text
        lead = trail = 0
        if segment.leaf < 0 and segment.kind is Kind.TEMPLATE:
            if i > 0 and segments[i - 1].kind is Kind.CONTENT and text[0].isspace():
                lead = len(text) - len(text.lstrip())
            if i + 1 < len(segments) and segments[i + 1].kind is Kind.CONTENT and text[-1].isspace():
                trail = len(text) - len(text.rstrip())
        if lead + trail >= len(text) and (lead or trail):
            pieces = [(0, True)]
        else:
            pieces = [
                (a, glue)
                for a, b, glue in (
                    (0, lead, True),
                    (lead, len(text) - trail, False),
                    (len(text) - trail, len(text), True),
                )
                if b > a
            ]
        starts.append(tuple(a for a, _ in pieces) if segment.leaf < 0 else (0,))
        static += [(segment.kind, segment.message, glue) for _, glue in pieces]
    return tuple(starts), np.array(static, dtype=np.int64).reshape(-1, 3)
