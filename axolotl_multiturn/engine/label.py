"""The labelling pipeline: one encoded conversation in, its labelled training rows and bookkeeping out.

label (the whole conversation must be exact before it is cut) -> fit (`sequence_len`: windows at turn
boundaries) -> parity (rows that train each turn in its inference context). Every caller uses this one
pipeline: the axolotl strategy (`chat.py`), the linter's token budget (`lint/tokens.py`), the preview
(through the strategy) and preference pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from axolotl_multiturn.engine.conversation import Conversation
from axolotl_multiturn.engine.encode import Encoded, Encoder, span_trained
from axolotl_multiturn.engine.masking import Mode, message_trained
from axolotl_multiturn.engine.rows import parity_rows
from axolotl_multiturn.engine.spans import UnlabelableError
from axolotl_multiturn.engine.vocabulary import Overflow, Parity, Status
from axolotl_multiturn.engine.windows import Fitted, fit


class Labelled(NamedTuple):
    """One training row from source row `index` (no item: the conversation was dropped or skipped);
    the counts are the conversation's, on its first row only: trainable assistant turns that no window
    trains (`lost`), turns no row trains in their inference context (`no_parity`), turns trained out of
    it (`outside`, parity off) and turns left untrained (`untrained`, parity last). `extra`: a row added
    so that a turn is trained in its inference context."""

    index: int
    item: Encoded | None
    labels: np.ndarray | None
    status: Status
    lost: int
    extra: bool = False
    no_parity: int = 0
    outside: int = 0
    untrained: int = 0
    note: str = ""  # why this row is there, when parity made or changed it; for a skipped one, why
    mode: Mode | None = None  # the masking mode that labelled it
    scan: tuple[int, ...] = (0, 0, 0, 0)  # the `auto` statistics of its conversation, on its first row


@dataclass(frozen=True, slots=True)
class Settings:
    """The options that shape rows (the masking mode comes per call: `auto` labels by each candidate)."""

    sequence_len: int = 2048
    overflow: Overflow = Overflow.SPLIT
    parity: Parity = Parity.EXPAND
    last_turn_only: bool = False
    reasoning: bool = True  # train reasoning traces (`reasoning: train`), or keep them masked


class Labeller:
    """The pipeline over one encoder (one template, one tokenizer)."""

    def __init__(self, encoder: Encoder, settings: Settings):
        self.encoder = encoder
        self.settings = settings

    def encode_one(self, conversation: Conversation, last_only: bool = False) -> Encoded:
        item = self.encoder.encode([conversation], last_only)[0]
        if isinstance(item, UnlabelableError):
            raise item
        return item

    def labels(self, item: Encoded, mode: Mode) -> np.ndarray:
        """Input ids where `mode` trains, -100 elsewhere; raises where no exact label exists."""
        s = self.settings
        return item.labels(span_trained(item.rendered, item.messages, mode, s.last_turn_only, s.reasoning))

    def fit(self, item: Encoded, mode: Mode) -> Fitted:
        """The conversation's windows under `sequence_len`."""
        trained = message_trained(item.messages, mode, self.settings.last_turn_only)
        return fit(item, trained, self.settings.sequence_len, self.settings.overflow, self.encode_one)

    def rows(self, index: int, item: Encoded, mode: Mode) -> list[Labelled]:
        """Conversation `index` as its labelled rows under `mode` (status dropped, no item, when none is
        left). Raises `UnlabelableError`, or `windows.TooLong` with `overflow: error`."""
        labels = self.labels(item, mode)  # the whole conversation must be exact before it is cut
        fitted = self.fit(item, mode)
        rows: list[tuple[Encoded, np.ndarray, bool, str]] = []
        no_parity = outside = untrained = lost = 0
        for window in fitted.windows:
            trained = message_trained(window.messages, mode, self.settings.last_turn_only)
            result = parity_rows(self.encoder.renderer, window.plan, trained, self.settings.parity)
            no_parity, outside, untrained = (
                no_parity + len(result.no_parity),
                outside + result.outside,
                untrained + result.untrained,
            )
            if result.conversations == [window.conversation]:
                rows.append((window, labels if window is item else self.labels(window, mode), False, result.notes[0]))
                continue
            for k, (conversation, note) in enumerate(zip(result.conversations, result.notes)):
                row = self.encode_one(conversation)
                if len(row.input_ids) > self.settings.sequence_len:
                    lost += sum(1 for m in conversation.messages if m.role == "assistant" and m.weight)
                    continue
                rows.append((row, self.labels(row, mode), k > 0, note))
        lost += fitted.lost
        counts = (no_parity, outside, untrained)
        if not rows:  # nothing fits, or nothing left to train: the conversation gives no row
            return [Labelled(index, None, None, Status.DROPPED, lost, False, *counts, mode=mode)]
        return [
            Labelled(
                index,
                row,
                row_labels,
                fitted.status,
                lost if k == 0 else 0,
                extra,
                *(counts if k == 0 else (0, 0, 0)),
                note,
                mode=mode,
            )
            for k, (row, row_labels, extra, note) in enumerate(rows)
        ]
