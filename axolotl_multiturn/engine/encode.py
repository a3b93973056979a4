"""Tokenize rendered conversations once, with offsets, and turn span decisions into exact labels.

Each token is mapped to the first and last span its characters touch. A token is trained when every
span it touches is trained and masked when none is; a token that touches both (a tokenizer merge across
a turn boundary whose two sides the policy treats differently) cannot be labelled exactly and raises
`UnlabelableError` rather than being guessed; the one exception is template whitespace merged into a
content word (glue, see `render._glue`), which follows the content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Protocol

import numpy as np
from transformers import PreTrainedTokenizerBase

from axolotl_multiturn.engine.conversation import Conversation, Message
from axolotl_multiturn.engine.masking import POLICIES, Mode, message_trained
from axolotl_multiturn.engine.render import ChatRenderer
from axolotl_multiturn.engine.skeleton import Plan
from axolotl_multiturn.engine.spans import Column, Kind, Rendered, UnlabelableError

IGNORE_INDEX = -100
_DATA = (Kind.CONTENT, Kind.REASONING)  # spans whose text comes from the data (tool-call texts are JSON)
_TEXT = (*_DATA, Kind.TOOL_CALL)  # a message's own text, for the `auto` statistics


@dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenized conversation: ids, and for every token the first and last span it touches."""

    input_ids: np.ndarray
    offsets: np.ndarray  # (tokens, 2) character offsets into rendered.text, as the tokenizer gives them
    rendered: Rendered
    plan: Plan
    first: np.ndarray
    last: np.ndarray
    # With images (a processor's row): which tokens are an image's (its tokens, its markup and the processor's
    # wrapping, no text: never trained), and the processor's other outputs (pixel values, per-token types).
    image: np.ndarray | None = None
    vision: Mapping[str, np.ndarray] | None = None

    @property
    def conversation(self) -> Conversation:
        return self.plan.conversation

    @property
    def messages(self) -> tuple[Message, ...]:
        return self.plan.conversation.messages

    @property
    def image_tokens(self) -> np.ndarray:
        """Which tokens are an image's (none in a text row)."""
        return self.image if self.image is not None else np.zeros(len(self.input_ids), dtype=bool)

    def content_tokens(self) -> tuple[int, int]:
        """Tokens of message texts (contents, reasoning, tool calls) outside and inside assistant turns,
        as the conversation is tokenized for training: the `auto` statistics."""
        table = self.rendered.table
        text = np.isin(table[self.first, Column.KIND], _TEXT)
        assistant = np.array([m.role == "assistant" for m in self.messages] + [False])[
            table[self.first, Column.MESSAGE]
        ]
        return int((text & ~assistant).sum()), int((text & assistant).sum())

    def labels(self, span_trained: np.ndarray) -> np.ndarray:
        """Input ids where trained, -100 where masked; raises on a token that is neither."""
        changes = np.concatenate(([0], np.cumsum(span_trained[1:] != span_trained[:-1])))
        trained = span_trained[self.first]
        mixed = changes[self.last] != changes[self.first]
        if self.image is not None:  # image tokens are never trained, and decide no other token
            trained &= ~self.image
            mixed &= ~self.image
        for token in np.flatnonzero(mixed):
            trained[token] = self._glued_decision(int(token), span_trained)
        return np.where(trained, self.input_ids, IGNORE_INDEX)

    def _glued_decision(self, token: int, span_trained: np.ndarray) -> bool:
        """A token across spans with different labels: decided by its non-glue spans, if they agree. An
        image's markup decides nothing either: a text the processor merged with the whitespace it wraps an
        image in (Gemma 3's `?\\n\\n`) follows the text, as template glue does."""
        spans = range(self.first[token], self.last[token] + 1)
        table = self.rendered.table
        decisions = {
            bool(span_trained[k]) for k in spans if not table[k, Column.GLUE] and table[k, Column.KIND] != Kind.IMAGE
        }
        if len(decisions) != 1:
            raise UnlabelableError(self._describe_mixed(token))
        return decisions.pop()

    def _describe_mixed(self, token: int) -> str:
        spans = self.rendered.spans[self.first[token] : self.last[token] + 1]
        parts = []
        for span in spans:
            owner = (
                f"message {span.message} ({self.messages[span.message].role}) {span.kind.name.lower()}"
                if span.kind is not Kind.TEMPLATE
                else "template text"
            )
            parts.append(owner)
        text = self.rendered.text[spans[0].start : spans[-1].end]
        return (
            f"token {token} (id {int(self.input_ids[token])}) merges {' and '.join(parts)}, which this "
            f"masking mode labels differently (near {text[-60:]!r}); no exact label exists for it"
        )


def span_trained(
    rendered: Rendered, messages: Sequence[Message], mode: Mode, last_turn_only: bool = False, reasoning: bool = True
) -> np.ndarray:
    """One bool per span: a message's spans (an assistant's whole generation) follow its decision,
    template spans the mode; with `reasoning` False a trace stays masked inside a trained generation."""
    per_message = np.array([*message_trained(messages, mode, last_turn_only), POLICIES[mode].template], dtype=bool)
    # template text is message -1: the mode's decision
    trained = per_message[rendered.table[:, Column.MESSAGE]]
    if not reasoning:
        trained &= rendered.table[:, Column.KIND] != Kind.REASONING
    return trained & (rendered.table[:, Column.KIND] != Kind.IMAGE)


def _span_ranges(offsets: np.ndarray, span_starts: np.ndarray, text_len: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last span index each token touches.

    A character no token's offsets cover (tokenizers that trim whitespace from offsets) is counted as
    touched by both neighbouring tokens, so it can only make a label stricter, never silently wrong.
    """
    starts, ends = offsets[:, 0], offsets[:, 1]
    previous_end = np.concatenate(([0], ends[:-1]))
    next_start = np.concatenate((starts[1:], [text_len]))
    lo = np.minimum(starts, previous_end)
    hi = np.maximum(np.maximum(ends, next_start), lo + 1)
    hi = np.minimum(hi, max(text_len, 1))
    first = np.searchsorted(span_starts, lo, side="right") - 1
    last = np.searchsorted(span_starts, hi - 1, side="right") - 1
    return np.maximum(first, 0), np.maximum(last, 0)


def _generation_starts(item: Rendered, messages: Sequence[Message], last_only: bool = False) -> np.ndarray:
    """Where each assistant turn's generation starts in the render (its first span); with `last_only`, the
    last message's only (a preference output: the prompt before it stays whole, as at inference)."""
    owner = item.table[:, Column.MESSAGE]
    wanted = [m.role == "assistant" and (not last_only or i == len(messages) - 1) for i, m in enumerate(messages)]
    assistant = np.array([*wanted, False])[owner]
    first = assistant & np.concatenate(([True], owner[1:] != owner[:-1]))
    return item.table[first, Column.START]


def _straddled(offsets: np.ndarray, positions: np.ndarray) -> list[int]:
    """The positions that fall strictly inside a token."""
    if not len(positions) or not len(offsets):
        return []
    token = np.searchsorted(offsets[:, 0], positions, side="right") - 1
    inside = (
        (token >= 0) & (offsets[np.maximum(token, 0), 0] < positions) & (positions < offsets[np.maximum(token, 0), 1])
    )
    return positions[inside].tolist()


def _cut(pieces: list[tuple[int, int, bool]], cuts: Sequence[int]) -> list[tuple[int, int, bool]]:
    """Pieces split at `cuts` as well."""
    out = []
    for start, end, literal in pieces:
        inner = [c for c in cuts if start < c < end]
        bounds = [start, *inner, end]
        out += [(a, b, literal) for a, b in zip(bounds, bounds[1:])]
    return out


class Expander(Protocol):
    """What makes a row with images a vision-language model's (`engine.vision.Vision`; named here so that
    the encoder does not import it back)."""

    folder: Path  # image paths are relative to it

    def expand(self, item: Encoded) -> Encoded: ...


class Encoder:
    """One template render per conversation and one tokenizer call per batch.

    With `literal_content` (the default), the text of a special token inside a message's content is
    tokenized as plain text, so data cannot forge turns: such a row is cut around those occurrences and
    they are tokenized with special tokens split. Rows without them are tokenized whole, exactly as
    `apply_chat_template` does.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        renderer: ChatRenderer,
        literal_content: bool = True,
        vision: Expander | None = None,
    ):
        if not tokenizer.is_fast:
            raise ValueError(
                "axolotl_multiturn needs a fast (Rust `tokenizers`) tokenizer: exact labels "
                "come from its character offsets"
            )
        self.tokenizer = tokenizer
        self.renderer = renderer
        specials = sorted(
            {t.content for t in tokenizer.added_tokens_decoder.values() if t.special and t.content},
            key=len,
            reverse=True,
        )
        self.forgeable = re.compile("|".join(map(re.escape, specials))) if literal_content and specials else None
        self.backend = tokenizer.backend_tokenizer  # the Rust tokenizer itself (public API), shared
        self.vision = vision  # a vision-language model's processor: rows with images are its

    def encode(
        self, conversations: Sequence[Conversation], last_only: bool = False
    ) -> list[Encoded | UnlabelableError]:
        """Encode a batch; a row that cannot be rendered exactly comes back as its error, in place. A row is
        tokenized apart where a token would straddle a generation's start (with `last_only`, the last
        message's only)."""
        plans = [self.renderer.plan(conversation) for conversation in conversations]
        rendered: list[Rendered | UnlabelableError] = []
        for plan in plans:
            try:
                rendered.append(self.renderer.render(plan))
            except UnlabelableError as error:
                rendered.append(error)
        good = [(plan, r) for plan, r in zip(plans, rendered) if isinstance(r, Rendered)]
        items = [r for _, r in good]
        tokenized = self._tokenize(items)
        cuts = {
            row: straddled
            for row, ((plan, item), (_, offsets)) in enumerate(zip(good, tokenized))
            if (straddled := _straddled(offsets, _generation_starts(item, plan.conversation.messages, last_only)))
        }
        if cuts:  # rare: a generation prompt that ends inside a token of the render (`<think>\n` + `\n`)
            for row, tokens in zip(cuts, self._tokenize([items[row] for row in cuts], list(cuts.values()))):
                tokenized[row] = tokens
        encoded = iter(tokenized)
        out: list[Encoded | UnlabelableError] = []
        for plan, item in zip(plans, rendered):
            if isinstance(item, UnlabelableError):
                out.append(item)
                continue
            ids, offsets = next(encoded)
            first, last = _span_ranges(offsets, item.table[:, Column.START], len(item.text))
            row = Encoded(ids, offsets, item, plan, first, last)
            if self.vision is not None and plan.conversation.images:
                try:
                    row = self.vision.expand(row)
                except UnlabelableError as error:
                    out.append(error)
                    continue
            out.append(row)
        return out

    def _forged(self, item: Rendered) -> list[tuple[int, int]]:
        """Where a special token's text occurs inside a content span."""
        if self.forgeable is None:
            return []
        data = item.table[np.isin(item.table[:, Column.KIND], _DATA)]
        return [
            m.span()
            for start, end in data[:, [Column.START, Column.END]].tolist()
            for m in self.forgeable.finditer(item.text, start, end)
        ]

    def _tokenize(
        self, items: Sequence[Rendered], cuts: Sequence[Sequence[int]] = ()
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ids, offsets) per rendered conversation: one tokenizer call for the whole pieces, one more
        (special tokens split) for forged occurrences when there are any. A row is also cut at its
        `cuts` (generation starts), each side tokenized apart."""
        rows: list[list[tuple[int, int, bool]]] = []  # per row: (start, end, literal), in text order
        for n, item in enumerate(items):
            pieces, position = [], 0
            for start, end in self._forged(item):
                if start > position:
                    pieces.append((position, start, False))
                pieces.append((start, end, True))
                position = end
            if position < len(item.text) or not pieces:
                pieces.append((position, len(item.text), False))
            if n < len(cuts):
                pieces = _cut(pieces, cuts[n])
            rows.append(pieces)
        results: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        backend, split = self.backend, self.backend.encode_special_tokens
        # What `tokenizer(texts, add_special_tokens=False)` runs, without its Python dicts. The backend is
        # shared: truncation or padding another caller left on it is cleared (transformers sets its own
        # before each call of its own), and the special-token switch is put back.
        if backend.truncation is not None:
            backend.no_truncation()
        if backend.padding is not None:
            backend.no_padding()
        try:
            for literal in (False, True):
                chosen = [
                    (row, start, end) for row, pieces in enumerate(rows) for start, end, lit in pieces if lit is literal
                ]
                if chosen:
                    backend.encode_special_tokens = literal
                    encodings = backend.encode_batch(
                        [items[row].text[a:b] for row, a, b in chosen], add_special_tokens=False
                    )
                    for (row, start, _), encoding in zip(chosen, encodings):
                        n = len(encoding.ids)
                        offsets = np.fromiter(chain.from_iterable(encoding.offsets), dtype=np.int64, count=2 * n)
                        results[row, start] = (np.array(encoding.ids, dtype=np.int64), offsets.reshape(n, 2) + start)
        finally:
            backend.encode_special_tokens = split
        out = []
        for row, pieces in enumerate(rows):
            parts = [results[row, start] for start, _, _ in pieces]
            out.append(
                parts[0]
                if len(parts) == 1
                else (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
            )
        return out
