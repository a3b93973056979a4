"""What a dataset trains, counted: tokens and trained tokens by role and by class, per conversation too.

Counted while preprocessing, from the labelled rows themselves (`count_rows`, written as a bookkeeping
column and summed by `from_columns`), so the numbers are those of training and cost no second pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from axolotl_multiturn.engine.encode import IGNORE_INDEX
from axolotl_multiturn.engine.masking import AutoDecision, Mode
from axolotl_multiturn.engine.outcomes import Outcomes
from axolotl_multiturn.engine.spans import Column, Kind
from axolotl_multiturn.engine.vocabulary import GONE, PARITY_COUNTS, Col, Overflow, Status
from axolotl_multiturn.files import written_whole

GROUPS = ("system", "user", "assistant", "tool", "template")  # by role; a whole generation is assistant
CLASSES = tuple(kind.name.lower() for kind in Kind)  # template, content, closing, reasoning, tool_call, markup


@dataclass
class Summary:
    source: str
    mode: Mode
    decision: AutoDecision | None
    outcomes: Outcomes | None = None  # what became of each conversation (the preprocessing log's numbers)
    sequence_len: int = 0
    overflow: str = Overflow.SPLIT.value
    by_role: dict[str, list[int]] = field(default_factory=dict)  # group -> [trained, tokens]
    by_class: dict[str, list[int]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    trained_fraction: list[float] = field(default_factory=list)
    parity: dict[str, int] = field(default_factory=dict)  # PARITY_COUNTS, and `affected` conversations
    extra_tokens: int = 0  # tokens in the rows added for parity

    @property
    def conversations(self) -> int:
        return self.outcomes.conversations if self.outcomes else 0

    @property
    def skipped(self) -> int:
        return self.outcomes.by_status.get(Status.SKIPPED, 0) if self.outcomes else 0

    @property
    def tokens(self) -> int:
        return sum(total for _, total in self.by_role.values())

    @property
    def trained(self) -> int:
        return sum(trained for trained, _ in self.by_role.values())

    def metrics(self) -> dict[str, float]:
        """Trained shares as scalars for the trainer's reporting integrations."""
        prefix = f"multiturn/{Path(self.source).stem}"
        out = {f"{prefix}/trained_share/{g}": counts[0] / counts[1] for g, counts in self.by_role.items() if counts[1]}
        out[f"{prefix}/trained_share/all"] = self.trained / max(self.tokens, 1)
        out[f"{prefix}/conversations"] = float(self.conversations)
        return out

    def lines(self) -> list[str]:
        """The summary as log lines."""
        out = [
            f"{self.source}: {self.conversations:,} conversations, {self.tokens:,} tokens, "
            f"{self.trained:,} trained ({percent(self.trained, self.tokens)}), masking {self.mode.value}"
        ]
        if self.decision:
            out.append(f"{self.source}: {self.decision.describe()}")
        out.append(
            f"{self.source}: trained by role: "
            + ", ".join(f"{g} {percent(*self.by_role[g])}" for g in GROUPS if self.by_role.get(g, [0, 0])[1])
        )
        if self.outcomes:
            out.extend(f"{self.source}: {line}" for line in self.outcomes.lines(self.sequence_len, self.overflow))
        calls = self.by_class.get("tool_call", [0, 0])[0]
        if calls:
            out.append(f"{self.source}: tool-call text is {percent(calls, self.trained)} of trained tokens")
        out.extend(f"{self.source}: {line}" for line in self.parity_lines())
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_json(cls, data: bytes) -> Summary:
        fields = orjson.loads(data)
        decision, outcomes = fields.pop("decision"), fields.pop("outcomes")
        return cls(
            **{**fields, "mode": Mode(fields["mode"])},
            decision=(AutoDecision(**{**decision, "mode": Mode(decision["mode"])}) if decision else None),
            outcomes=Outcomes(**{**outcomes, "dropped_rows": tuple(outcomes["dropped_rows"])}) if outcomes else None,
        )

    def parity_lines(self) -> list[str]:
        """What train/inference parity cost or left, if anything."""
        p = self.parity
        out = []
        if p.get("extra"):
            out.append(
                f"parity: {p['affected']:,} conversations train some turns in rows of their own "
                f"(their template renders history differently): {p['extra']:,} rows added, "
                f"{self.extra_tokens:,} extra tokens"
            )
        if p.get("untrained"):
            out.append(
                f"parity last: {p['untrained']:,} assistant turns left untrained in {p['affected']:,} conversations"
            )
        if p.get("outside"):
            out.append(f"parity off: {p['outside']:,} assistant turns trained outside their inference context")
        if p.get("no_parity"):
            out.append(
                f"parity: {p['no_parity']:,} assistant turns have no row in their inference context "
                "(the template's generation prompt or history differs from its render); trained as "
                "the template renders them"
            )
        return out


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


#: Per training row, `Col.COUNTS` holds its [masked, trained] token counts per role group, then per class.
CATEGORIES = (*GROUPS, *CLASSES)
_GROUP_OF_ROLE = {role: k for k, role in enumerate(GROUPS)}


def count_rows(items: Sequence[Any]) -> np.ndarray:
    """(rows, CATEGORIES, 2) token counts [masked, trained] of labelled rows (`Encoded`, labels) or None
    for a row with no tokens; one bincount for the whole batch."""
    width = len(CATEGORIES) * 2
    indices = []
    for row, entry in enumerate(items):
        if entry is None:
            continue
        item, labels = entry
        table = item.rendered.table
        roles = np.array([*(_GROUP_OF_ROLE[m.role] for m in item.messages), len(GROUPS) - 1])
        kinds = table[item.first, Column.KIND]
        groups = np.where(kinds == Kind.TEMPLATE, len(GROUPS) - 1, roles[table[item.first, Column.MESSAGE]])
        trained = (labels != IGNORE_INDEX).astype(np.int64)
        base = row * width + trained
        indices += [base + 2 * groups, base + 2 * (len(GROUPS) + kinds)]
    flat = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    return np.bincount(flat, minlength=len(items) * width).reshape(len(items), len(CATEGORIES), 2)


def from_columns(
    columns: Mapping[Col, np.ndarray],
    source: str,
    mode: Mode,
    decision: AutoDecision | None,
    sequence_len: int,
    overflow: Overflow,
) -> Summary:
    """The summary of dataset `source` labelled by `mode` from the bookkeeping columns preprocessing wrote
    (`vocabulary.STATS` and `Col.COUNTS`, one row per training row and per conversation that gave none):
    no tokenizing."""
    statuses = columns[Col.STATUS]
    outcomes = Outcomes.count(
        columns[Col.SOURCE].tolist(), statuses.tolist(), columns[Col.LOST].tolist(), columns[Col.EXTRA].tolist()
    )
    kept = ~np.isin(statuses, GONE)
    counts = columns[Col.COUNTS][kept]
    extra = columns[Col.EXTRA][kept].astype(bool)
    parity = {p: int(columns[Col(f"mt_{p}")][kept].sum()) for p in PARITY_COUNTS}
    touched = extra | (columns[Col.UNTRAINED][kept] > 0)
    parity["affected"] = len(np.unique(columns[Col.SOURCE][kept][touched]))
    tokens = counts[:, : len(GROUPS)].sum(axis=(1, 2))
    summary = Summary(
        source,
        mode,
        decision,
        outcomes,
        sequence_len,
        overflow.value,
        parity=parity,
        extra_tokens=int(tokens[extra].sum()),
    )
    if len(counts):
        totals = counts.sum(axis=0)  # (CATEGORIES, [masked, trained])
        for k, name in enumerate(GROUPS):
            summary.by_role[name] = [int(totals[k, 1]), int(totals[k].sum())]
        for k, name in enumerate(CLASSES):
            summary.by_class[name] = [int(totals[len(GROUPS) + k, 1]), int(totals[len(GROUPS) + k].sum())]
        trained = counts[:, : len(GROUPS), 1].sum(axis=1)
        summary.lengths = tokens.tolist()
        summary.trained_fraction = (trained / np.maximum(tokens, 1)).tolist()
    return summary


#: Summaries counted in this process, by the key of their dataset (see `entry.summary_key`).
_COUNTED: dict[str, Summary] = {}


def remember(key: str, summary: Summary, directory: Path | None) -> None:
    """Keep a dataset's summary for training start: in this process, and as a file in `directory` beside
    the prepared datasets, for a run that loads them prepared (written whole or not at all)."""
    _COUNTED[key] = summary
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    with written_whole(_saved(key, directory)) as stream:
        stream.write(summary.to_json())


def recall(key: str, directory: Path | None) -> Summary | None:
    """The summary preprocessing counted for a dataset, if any."""
    if key in _COUNTED:
        return _COUNTED[key]
    path = _saved(key, directory) if directory is not None else None
    return Summary.from_json(path.read_bytes()) if path is not None and path.is_file() else None


def _saved(key: str, directory: Path) -> Path:
    return directory / f"axolotl_multiturn-{key}.summary.json"
