"""Render a conversation with its chat template and say which message each character belongs to.

The template is rendered twice per role sequence: once with every content replaced by a sentinel, which
shows where each message's content sits and what text the template adds around it (cached per role
sequence), and once with the real contents, which is exactly what `tokenizer.apply_chat_template` renders.
The real render is then parsed as skeleton pieces interleaved with the contents (or the contents as the
template trimmed them). A render that does not parse that way is never guessed at: `UnlabelableError`.

Every character gets a class: content of message i, closing text of assistant message i (from the end of
its content through its stop token), or template text (BOS, role headers, separators, default system
prompts the template injects).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any, NamedTuple

from jinja2 import TemplateError
from transformers.utils.chat_template_utils import _compile_jinja_template

from axolotl_multiturn.engine.conversation import Message

_SENTINEL = "\ue000{}\ue001"
_CONTENT_DEPENDENT = ("the chat template renders this conversation differently from its role sequence "
                      "(content-dependent template logic)")
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")


class Kind(IntEnum):
    TEMPLATE = 0
    CONTENT = 1
    CLOSING = 2


class Span(NamedTuple):
    """Characters [start, end) of the rendered text; `message` is -1 for template text.

    A named tuple rather than a dataclass: a conversation has dozens of spans and they are made per row.
    """

    start: int
    end: int
    kind: Kind
    message: int = -1
    glue: bool = False  # whitespace template text touching a content span (see `_mark_glue`)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered conversation and a gap-free, ordered cover of its text by spans.

    `dropped` lists the messages the template does not render at all (Mistral v3 drops the system
    message unless the conversation ends with a user turn).
    """

    text: str
    spans: tuple[Span, ...]
    dropped: tuple[int, ...] = ()


class UnlabelableError(ValueError):
    """The engine cannot say exactly which tokens belong to which message for this row."""


class TemplateRejected(UnlabelableError):
    """The chat template itself raised for this conversation (e.g. Gemma: system role not supported)."""


@dataclass(frozen=True, slots=True)
class _Skeleton:
    pieces: tuple[str, ...]  # template text before, between and after the contents
    order: tuple[int, ...]  # message index of each content slot, in render order


def _trim_variants(content: str) -> tuple[str, ...]:
    """What a template may turn a content into: itself, or trimmed (Jinja's `trim`, Python's strip)."""
    variants = (content, content.strip(), content.rstrip(), content.lstrip())
    return tuple(dict.fromkeys(variants))


class ChatRenderer:
    """Renders conversations with one chat template and classifies every character."""

    def __init__(self, chat_template: str, template_kwargs: Mapping[str, Any],
                 stop_strings: Sequence[str] = ()):
        self.chat_template = chat_template
        self.template_kwargs = dict(template_kwargs)
        self.stop_strings = tuple(dict.fromkeys(s for s in stop_strings if s))
        self._skeleton = lru_cache(maxsize=4096)(self._build_skeleton)

    def __getstate__(self) -> dict[str, Any]:
        # The compiled template and the cache do not pickle (datasets' multi-process map pickles us).
        return {k: v for k, v in self.__dict__.items() if k != "_skeleton"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._skeleton = lru_cache(maxsize=4096)(self._build_skeleton)

    def render_text(self, messages: Sequence[Message]) -> str:
        """Exactly what `apply_chat_template(messages, tokenize=False)` returns."""
        chat = [{"role": m.role, "content": m.content} for m in messages]
        try:
            return _compile_jinja_template(self.chat_template).render(
                messages=chat, tools=None, documents=None, add_generation_prompt=False, **self.template_kwargs)
        except TemplateError as error:
            raise TemplateRejected(f"the chat template rejects this conversation: {error}") from None

    def _build_skeleton(self, roles: tuple[str, ...]) -> _Skeleton:
        sentinel = [Message(role, _SENTINEL.format(i)) for i, role in enumerate(roles)]  # type: ignore[arg-type]
        parts = _SENTINEL_RE.split(self.render_text(sentinel))
        order = tuple(int(i) for i in parts[1::2])
        if len(set(order)) != len(order):
            raise UnlabelableError("the chat template renders a message's content more than once")
        return _Skeleton(tuple(parts[0::2]), order)

    def render(self, messages: Sequence[Message]) -> Rendered:
        skeleton = self._skeleton(tuple(m.role for m in messages))
        text = self.render_text(messages)
        spans: list[Span] = []
        pos = 0
        if not text.startswith(skeleton.pieces[0]):
            raise UnlabelableError(_CONTENT_DEPENDENT)
        for slot, index in enumerate(skeleton.order):
            head = skeleton.pieces[slot]
            spans.append(Span(pos, pos + len(head), Kind.TEMPLATE))
            pos += len(head)
            after = skeleton.pieces[slot + 1]
            for variant in _trim_variants(messages[index].content):
                end = pos + len(variant)
                if text.startswith(variant, pos) and text.startswith(after, end):
                    break
            else:
                raise UnlabelableError(
                    f"the chat template changes the text of message {index} ({messages[index].role}) beyond "
                    "trimming whitespace, or adds text that depends on it, so its tokens cannot be located")
            spans.append(Span(pos, end, Kind.CONTENT, index))
            pos = end
        tail = skeleton.pieces[-1]
        if text[pos:] != tail:
            raise UnlabelableError(_CONTENT_DEPENDENT)
        spans.append(Span(pos, len(text), Kind.TEMPLATE))
        dropped = tuple(sorted(set(range(len(messages))) - set(skeleton.order)))
        return Rendered(text, _mark_glue(text, self._mark_closings(text, spans, messages)), dropped)

    def _mark_closings(self, text: str, spans: list[Span], messages: Sequence[Message]) -> tuple[Span, ...]:
        """Split the template text after each assistant content at the end of its first stop string."""
        out: list[Span] = []
        owner = -1
        for span in spans:
            if span.kind is Kind.CONTENT:
                owner = span.message if messages[span.message].role == "assistant" else -1
                out.append(span)
                continue
            if owner >= 0:
                stop_end = self._first_stop_end(text, span.start, span.end)
                if stop_end > span.start:
                    out.append(Span(span.start, stop_end, Kind.CLOSING, owner))
                    span = Span(stop_end, span.end, Kind.TEMPLATE)
                owner = -1
            if span.end > span.start:
                out.append(span)
        return tuple(out)

    def _first_stop_end(self, text: str, start: int, end: int) -> int:
        ends = [i + len(s) for s in self.stop_strings if (i := text.find(s, start, end)) >= 0]
        return min(ends, default=start)


def _mark_glue(text: str, spans: Sequence[Span]) -> tuple[Span, ...]:
    """Split off the whitespace at the edges of template text that touch a content span.

    SentencePiece and BPE vocabularies merge a separator space into the next word (`' [/INST] ' + content`
    gives one token '▁Hello'). Such a token carries the content's first word: it takes the content's
    label. Glue characters never decide a label on their own (see `Encoded.labels`).
    """
    out: list[Span] = []
    for i, span in enumerate(spans):
        if span.kind is not Kind.TEMPLATE:
            out.append(span)
            continue
        lead = trail = 0
        if i > 0 and spans[i - 1].kind is Kind.CONTENT and text[span.start].isspace():
            lead = len(text[span.start:span.end]) - len(text[span.start:span.end].lstrip())
        if i + 1 < len(spans) and spans[i + 1].kind is Kind.CONTENT and text[span.end - 1].isspace():
            trail = len(text[span.start:span.end]) - len(text[span.start:span.end].rstrip())
        if not lead and not trail:
            out.append(span)
            continue
        if lead + trail >= span.end - span.start:
            out.append(Span(span.start, span.end, Kind.TEMPLATE, glue=True))
            continue
        cuts = [span.start, span.start + lead, span.end - trail, span.end]
        for (a, b), glue in zip(zip(cuts, cuts[1:]), (True, False, True)):
            if b > a:
                out.append(Span(a, b, Kind.TEMPLATE, glue=glue))
    return tuple(out)
