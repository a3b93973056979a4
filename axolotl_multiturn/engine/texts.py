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
    """Where a turn's own text starts in `text` (a render from the last earlier message to the turn's
    first text), given `prompt` (the generation prompt's tail from the same message).

    All of `prompt` when `text` renders it as it is (the turn's generation follows). When the two differ
    only in whitespace (templates whose Jinja tags do not trim indent the history and the generation
    prompt differently), after `prompt`'s other characters and the whitespace that follows them: that
    indentation belongs to the markup before the turn, which the model is given, never writes. Otherwise
    their common prefix cut back to a line end or the end of a markup token (`<|im_start|>assistant\\n<think>`
    and `...assistant\\n<tool_call>` agree through the newline)."""
    common = common_prefix(text, prompt)
    if common == len(prompt):
        return common
    spaced = _agreement_but_whitespace(text, prompt, common)
    if spaced is not None:
        return spaced
    while common > 0 and not (prompt[common - 1].isspace() or prompt[common - 1] in ">]"):
        common -= 1
    return common


def _agreement_but_whitespace(text: str, prompt: str, common: int) -> int | None:
    """The end of `prompt` in `text` where the two differ only in whitespace (runs of it added, removed or
    of another length), with the whitespace after it in `text`; None where other characters differ."""
    at = common
    for char in prompt[common:]:
        if char.isspace():
            continue
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text) or text[at] != char:
            return None
        at += 1
    while at < len(text) and text[at].isspace():
        at += 1
    return at


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
