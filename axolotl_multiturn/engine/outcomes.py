"""What became of a dataset's conversations, counted: the numbers the preprocessing log, the summary and
the preview share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from axolotl_multiturn.engine.vocabulary import Status


@dataclass(frozen=True)
class Outcomes:
    """What became of a dataset's conversations, counted from the bookkeeping of its training rows (one
    row per training row; a conversation that gives none has one empty row): the same numbers for the
    preprocessing log, the summary and the preview."""

    conversations: int  # non-blank rows of the source
    by_status: dict[str, int]  # conversations per status: fits, split, truncated, dropped, skipped
    windows: int  # training rows of split conversations (parity rows not included)
    lost: int  # trainable assistant turns that no row trains
    dropped_rows: tuple[int, ...]  # source indices of dropped conversations

    @classmethod
    def count(
        cls, sources: Sequence[int], statuses: Sequence[str], lost: Sequence[int], extra: Sequence[bool]
    ) -> Outcomes:
        by_source: dict[int, str] = {}
        for source, status in zip(sources, statuses):
            by_source.setdefault(source, status)
        by_status: dict[str, int] = {}
        for status in by_source.values():
            by_status[status] = by_status.get(status, 0) + 1
        by_status.pop(Status.BLANK, None)
        return cls(
            sum(by_status.values()),
            by_status,
            sum(1 for status, e in zip(statuses, extra) if status == Status.SPLIT and not e),
            sum(lost),
            tuple(sorted(s for s, status in by_source.items() if status == Status.DROPPED)),
        )

    def lines(self, sequence_len: int, policy: str) -> list[str]:
        """What happened to conversations that did not go through whole, as log lines (none if all did)."""
        count = self.by_status
        lines = []
        long = count.get(Status.SPLIT, 0) + count.get(Status.TRUNCATED, 0) + count.get(Status.DROPPED, 0)
        if long or self.lost:
            first = self.dropped_rows[:10]
            lines.append(
                f"{long} of {self.conversations} conversations longer than sequence_len={sequence_len} "
                f"(overflow: {policy}): {count.get(Status.SPLIT, 0)} split into {self.windows} windows, "
                f"{count.get(Status.TRUNCATED, 0)} truncated, {count.get(Status.DROPPED, 0)} dropped"
                + (
                    f" (rows {', '.join(map(str, first))}{', ...' if len(self.dropped_rows) > 10 else ''})"
                    if first
                    else ""
                )
                + f"; assistant turns lost: {self.lost}"
            )
        if count.get(Status.SKIPPED):
            lines.append(
                f"skipped {count[Status.SKIPPED]} of {self.conversations} rows that cannot be labelled "
                "exactly (on_unlabelable: skip; each is logged above with its row index)"
            )
        return lines
