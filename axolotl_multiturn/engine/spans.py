"""What a character of a render is: the spans that cover a rendered conversation, and the errors of a
render that cannot be labelled exactly. The words every other room reads (encode, label, reports)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np


class Kind(IntEnum):
    """What a character of a render is. In a generation: CONTENT, REASONING, TOOL_CALL (calls and their
    arguments), MARKUP (other text the model writes, e.g. `</think>`), CLOSING (after the last text
    through the stop token). Outside: CONTENT of a system, user or tool message, TEMPLATE, or IMAGE (the
    markup a template writes for an image, which the processor expands into image tokens: never trained)."""

    TEMPLATE = 0
    CONTENT = 1
    CLOSING = 2
    REASONING = 3
    TOOL_CALL = 4
    MARKUP = 5
    IMAGE = 6


class Span(NamedTuple):
    """Characters [start, end) of the rendered text; `message` owns them (-1 for template text).

    A named tuple rather than a dataclass: a conversation has dozens of spans and they are made per row.
    """

    start: int
    end: int
    kind: Kind
    message: int = -1
    glue: bool = False  # whitespace template text touching a content span (see `_glue`)


class Column(IntEnum):
    """The columns of `Rendered.table`, one per `Span` field."""

    START = 0
    END = 1
    KIND = 2
    MESSAGE = 3
    GLUE = 4


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered conversation and a gap-free, ordered cover of its text by spans.

    `table` holds the spans as rows (columns: `Column`): rows are made per conversation and consumed by
    array work (labels, counts); `spans` is the same as `Span` tuples. `dropped` lists the messages the
    template does not render at all (Mistral v3 drops the system message unless the conversation ends
    with a user turn).
    """

    text: str
    table: np.ndarray
    dropped: tuple[int, ...] = ()

    @property
    def spans(self) -> tuple[Span, ...]:
        return tuple(
            Span(start, end, Kind(kind), message, bool(glue)) for start, end, kind, message, glue in self.table.tolist()
        )


class UnlabelableError(ValueError):
    """The engine cannot say exactly which tokens belong to which message for this row."""


class TemplateRejected(UnlabelableError):
    """The chat template itself raised for this conversation (e.g. Gemma: system role not supported)."""
