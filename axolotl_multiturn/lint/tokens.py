"""`check-chat-jsonl --tokenizer PATH_OR_NAME [--sequence-len N]`: the token budget before training.

Every valid row is rendered with the tokenizer's own chat template and labelled by the engine that trains
it (batched, streaming): the length distribution, the rows longer than `sequence_len` with what
`overflow: split` would do with them, and the share of tokens each masking mode trains. Needs the `tokens`
extra (transformers); the linter's base install never imports this module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson

from axolotl_multiturn.engine.conversation import Conversation
from axolotl_multiturn.engine.validate import InvalidConversation, parse_conversation
from axolotl_multiturn.lint.checker import Finding
from axolotl_multiturn.lint.rules import RULES

MODES = ("instruction", "boilerplate", "none")
BATCH = 512


@dataclass
class Budget:
    path: str
    lengths: list[int] = field(default_factory=list)
    trained: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODES, 0))
    long: list[int] = field(default_factory=list)  # line numbers of rows longer than sequence_len
    windows: int = 0  # what overflow: split makes of the long rows
    lost: dict[int, int] = field(default_factory=dict)  # line -> assistant turns overflow: split would lose
    unlabelable: list[tuple[int, str]] = field(default_factory=list)
    invalid: int = 0  # lines the linter reports; not counted here

    def findings(self, sequence_len: int | None) -> Iterator[Finding]:
        """MT306 for each conversation whose assistant turns `overflow: split` would lose."""
        for line, turns in self.lost.items():
            yield Finding(
                self.path,
                line,
                1,
                "MT306",
                RULES["MT306"].severity,
                f"{turns} assistant turn{'s' if turns > 1 else ''} longer than sequence_len="
                f"{sequence_len:,} even in a window of its own (with the turn it answers): overflow: "
                "split would leave it untrained; raise sequence_len, or shorten the turn",
            )

    def lines(self, sequence_len: int | None) -> list[str]:
        out = [f"token budget: {self.path}"]
        if not self.lengths:
            return [*out, "  no valid conversation to measure"]
        lengths = np.asarray(self.lengths)
        total = int(lengths.sum())
        out.append(
            f"  {len(lengths):,} conversations, {total:,} tokens; length min {lengths.min():,}, median "
            f"{int(np.median(lengths)):,}, p95 {int(np.percentile(lengths, 95)):,}, max {lengths.max():,}"
            + (f" ({self.invalid:,} invalid lines not measured)" if self.invalid else "")
        )
        if sequence_len:
            shown = ", ".join(map(str, self.long[:20])) + (", ..." if len(self.long) > 20 else "")
            out.append(
                f"  {len(self.long):,} longer than sequence_len={sequence_len:,}"
                + (
                    f" (lines {shown}); overflow: split would cut them into {self.windows:,} windows and "
                    f"lose {sum(self.lost.values()):,} assistant turns (a turn that cannot fit alone)"
                    if self.long
                    else ""
                )
            )
        out.append(
            "  trained tokens by masking mode: "
            + ", ".join(f"{mode} {100 * self.trained[mode] / total:.1f}%" for mode in MODES)
        )
        if self.unlabelable:
            out.append(
                f"  {len(self.unlabelable):,} rows cannot be labelled exactly with this template, e.g. line "
                f"{self.unlabelable[0][0]}: {self.unlabelable[0][1]}"
            )
        return out


def _rows(lines: Iterable[bytes]) -> Iterator[tuple[int, Conversation | None]]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield number, parse_conversation(orjson.loads(raw))
        except (orjson.JSONDecodeError, InvalidConversation, TypeError, AttributeError):
            yield number, None


def measure(path: str, lines: Iterable[bytes], tokenizer_name: str, sequence_len: int | None) -> Budget:
    from tqdm import tqdm
    from transformers import AutoTokenizer

    from axolotl_multiturn.engine.encode import IGNORE_INDEX, Encoder
    from axolotl_multiturn.engine.label import Labeller, Settings
    from axolotl_multiturn.engine.masking import Mode
    from axolotl_multiturn.engine.render import ChatRenderer
    from axolotl_multiturn.engine.spans import UnlabelableError
    from axolotl_multiturn.engine.vocabulary import Overflow

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    if not tokenizer.chat_template:
        raise SystemExit(f"{tokenizer_name}: the tokenizer has no chat template to render rows with")
    encoder = Encoder(tokenizer, ChatRenderer.for_tokenizer(tokenizer, tokenizer.chat_template))
    labeller = Labeller(encoder, Settings(sequence_len=sequence_len or 0, overflow=Overflow.SPLIT))
    budget = Budget(path)

    def measure_batch(batch: list[tuple[int, Conversation]]) -> None:
        for (line, _), item in zip(batch, encoder.encode([c for _, c in batch])):
            try:
                if isinstance(item, UnlabelableError):
                    raise item
                trained = {mode: int((labeller.labels(item, Mode(mode)) != IGNORE_INDEX).sum()) for mode in MODES}
                fitted = (
                    labeller.fit(item, Mode.INSTRUCTION)
                    if sequence_len and len(item.input_ids) > sequence_len
                    else None
                )
            except UnlabelableError as error:
                budget.unlabelable.append((line, str(error)))
                continue
            budget.lengths.append(len(item.input_ids))
            for mode, count in trained.items():
                budget.trained[mode] += count
            if fitted is not None:
                budget.long.append(line)
                budget.windows += len(fitted.windows)
                if fitted.lost:
                    budget.lost[line] = fitted.lost

    batch: list[tuple[int, Conversation]] = []
    for number, conversation in tqdm(
        _rows(lines), desc=f"token budget {path}", unit=" rows", disable=not sys.stderr.isatty()
    ):
        if conversation is None:
            budget.invalid += 1
            continue
        batch.append((number, conversation))
        if len(batch) == BATCH:
            measure_batch(batch)
            batch = []
    if batch:
        measure_batch(batch)
    return budget
