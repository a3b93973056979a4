"""What a dataset trains, counted: tokens and trained tokens by role and by class, per conversation too.

Counted with a batched `datasets.map` (multi-process like preprocessing) through the strategy's own
labelling, so the numbers are those of training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axolotl_multiturn.engine.encode import IGNORE_INDEX
from axolotl_multiturn.engine.masking import AutoDecision, Mode
from axolotl_multiturn.engine.render import Kind
from axolotl_multiturn.engine.windows import GONE, Outcomes

GROUPS = ("system", "user", "assistant", "tool", "template")  # by role; a whole generation is assistant
CLASSES = tuple(kind.name.lower() for kind in Kind)  # template, content, closing, reasoning, tool_call, markup
PARITY = ("extra", "no_parity", "outside", "untrained")  # per conversation, from `Labelled`


@dataclass
class Summary:
    source: str
    mode: Mode
    decision: AutoDecision | None
    outcomes: Outcomes | None = None  # what became of each conversation (the preprocessing log's numbers)
    sequence_len: int = 0
    overflow: str = "split"
    by_role: dict[str, list[int]] = field(default_factory=dict)  # group -> [trained, tokens]
    by_class: dict[str, list[int]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    trained_fraction: list[float] = field(default_factory=list)
    parity: dict[str, int] = field(default_factory=dict)  # PARITY counts, and `affected` conversations
    extra_tokens: int = 0  # tokens in the rows added for parity

    @property
    def conversations(self) -> int:
        return self.outcomes.conversations if self.outcomes else 0

    @property
    def skipped(self) -> int:
        return self.outcomes.by_status.get("skipped", 0) if self.outcomes else 0

    @property
    def tokens(self) -> int:
        return sum(total for _, total in self.by_role.values())

    @property
    def trained(self) -> int:
        return sum(trained for trained, _ in self.by_role.values())

    def metrics(self) -> dict[str, float]:
        """Trained shares as scalars for the trainer's reporting integrations."""
        prefix = f"multiturn/{Path(self.source).stem}"
        out = {f"{prefix}/trained_share/{g}": counts[0] / counts[1]
               for g, counts in self.by_role.items() if counts[1]}
        out[f"{prefix}/trained_share/all"] = self.trained / max(self.tokens, 1)
        out[f"{prefix}/conversations"] = float(self.conversations)
        return out

    def lines(self) -> list[str]:
        """The summary as log lines."""
        out = [f"{self.source}: {self.conversations:,} conversations, {self.tokens:,} tokens, "
               f"{self.trained:,} trained ({percent(self.trained, self.tokens)}), masking {self.mode.value}"]
        if self.decision:
            out.append(f"{self.source}: {self.decision.describe()}")
        out.append(f"{self.source}: trained by role: " + ", ".join(
            f"{g} {percent(*self.by_role[g])}" for g in GROUPS if self.by_role.get(g, [0, 0])[1]))
        if self.outcomes:
            out.extend(f"{self.source}: {line}" for line in self.outcomes.lines(self.sequence_len, self.overflow))
        calls = self.by_class.get("tool_call", [0, 0])[0]
        if calls:
            out.append(f"{self.source}: tool-call text is {percent(calls, self.trained)} of trained tokens")
        out.extend(f"{self.source}: {line}" for line in self.parity_lines())
        return out

    def parity_lines(self) -> list[str]:
        """What train/inference parity cost or left, if anything."""
        p = self.parity
        out = []
        if p.get("extra"):
            out.append(f"parity: {p['affected']:,} conversations train some turns in rows of their own "
                       f"(their template renders history differently): {p['extra']:,} rows added, "
                       f"{self.extra_tokens:,} extra tokens")
        if p.get("untrained"):
            out.append(f"parity last: {p['untrained']:,} assistant turns left untrained in {p['affected']:,} "
                       "conversations")
        if p.get("outside"):
            out.append(f"parity off: {p['outside']:,} assistant turns trained outside their inference context")
        if p.get("no_parity"):
            out.append(f"parity: {p['no_parity']:,} assistant turns have no row in their inference context "
                       "(the template's generation prompt or history differs from its render); trained as "
                       "the template renders them")
        return out


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def row_counts(strategy: Any, batch: Mapping[str, Sequence[Any]], indices: Sequence[int]) -> dict[str, list]:
    """Per labelled row: [trained, tokens] for each role group and each class (a batched map function)."""
    out: dict[str, list] = ({f"role_{g}": [] for g in GROUPS} | {f"class_{c}": [] for c in CLASSES}
                            | {"source": [], "status": [], "lost": [], "tokens": []} | {p: [] for p in PARITY})
    for row in strategy.labelled(batch, indices):
        item, labels = row.item, row.labels
        for column in ("source", "status", "lost", *PARITY):
            out[column].append(getattr(row, "index" if column == "source" else column))
        out["tokens"].append(len(item.input_ids) if item is not None else 0)
        if item is None:
            for column in out:
                if column.startswith(("role_", "class_")):
                    out[column].append([0, 0])
            continue
        spans = item.rendered.spans
        kinds = np.fromiter((spans[k].kind for k in item.first), dtype=np.int64, count=len(item.first))
        owners = np.fromiter((spans[k].message for k in item.first), dtype=np.int64, count=len(item.first))
        roles = np.array([*(m.role for m in item.messages), "template"])
        groups = np.where(kinds == Kind.TEMPLATE, "template", roles[owners])
        trained = labels != IGNORE_INDEX
        for g in GROUPS:
            mask = groups == g
            out[f"role_{g}"].append([int(trained[mask].sum()), int(mask.sum())])
        for kind in Kind:
            mask = kinds == kind
            out[f"class_{kind.name.lower()}"].append([int(trained[mask].sum()), int(mask.sum())])
    return out


def summarize(strategy: Any, dataset: Any, num_proc: int | None = None) -> Summary:
    """Count what `strategy` trains in `dataset` (a datasets.Dataset), deciding `auto` first if needed."""
    if strategy.mode is None:
        strategy.decide_auto(dataset, num_proc)
    counts = dataset.map(lambda batch, indices: row_counts(strategy, batch, indices), with_indices=True,
                         batched=True, batch_size=1000, num_proc=num_proc, remove_columns=dataset.column_names,
                         desc="axolotl_multiturn: summary")
    outcomes = Outcomes.count(counts["source"], counts["status"], counts["lost"], counts["extra"])
    counts = counts.filter(lambda status: status not in GONE, input_columns="status")
    extra = np.asarray(counts["extra"], dtype=bool)
    parity = {p: int(np.sum(counts[p])) for p in PARITY}
    touched = extra | (np.asarray(counts["untrained"]) > 0)
    parity["affected"] = len(set(np.asarray(counts["source"])[touched].tolist()))
    summary = Summary(strategy.source, strategy.mode, strategy.decision, outcomes, strategy.sequence_len,
                      strategy.options.overflow, parity=parity,
                      extra_tokens=int(np.asarray(counts["tokens"])[extra].sum()) if len(extra) else 0)
    if len(counts):
        for g in GROUPS:
            summary.by_role[g] = np.asarray(counts[f"role_{g}"]).sum(axis=0).tolist()
        for c in CLASSES:
            summary.by_class[c] = np.asarray(counts[f"class_{c}"]).sum(axis=0).tolist()
        per_row = np.stack([np.asarray(counts[f"role_{g}"]) for g in GROUPS]).sum(axis=0)
        summary.lengths = per_row[:, 1].tolist()
        summary.trained_fraction = (per_row[:, 0] / np.maximum(per_row[:, 1], 1)).tolist()
    return summary
