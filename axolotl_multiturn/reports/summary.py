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

GROUPS = ("system", "user", "assistant", "template")  # by role; closing tokens count as assistant
CLASSES = tuple(kind.name.lower() for kind in Kind)  # template, content, closing


@dataclass
class Summary:
    source: str
    mode: Mode
    decision: AutoDecision | None
    conversations: int = 0
    skipped: int = 0
    by_role: dict[str, list[int]] = field(default_factory=dict)  # group -> [trained, tokens]
    by_class: dict[str, list[int]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    trained_fraction: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)  # conversations per status: fits, split, ...
    windows: int = 0  # training rows made from split conversations
    lost: int = 0  # trainable assistant turns no window trains

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
        long = {k: v for k, v in self.outcomes.items() if k in ("split", "truncated", "dropped")}
        if long:
            out.append(f"{self.source}: longer than sequence_len: " + ", ".join(f"{v} {k}" for k, v in long.items())
                       + (f" ({self.windows} windows)" if self.windows else "")
                       + f"; assistant turns lost: {self.lost}")
        if self.skipped:
            out.append(f"{self.source}: {self.skipped} rows skipped (cannot be labelled exactly)")
        return out


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def row_counts(strategy: Any, batch: Mapping[str, Sequence[Any]], indices: Sequence[int]) -> dict[str, list]:
    """Per labelled row: [trained, tokens] for each role group and each class (a batched map function)."""
    out: dict[str, list] = ({f"role_{g}": [] for g in GROUPS} | {f"class_{c}": [] for c in CLASSES}
                            | {"source": [], "status": [], "lost": []})
    for index, item, labels, status, lost in strategy.labelled(batch, indices):
        out["source"].append(index)
        out["status"].append(status)
        out["lost"].append(lost)
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
    statuses: dict[str, set[int]] = {}
    for source, status in zip(counts["source"], counts["status"]):
        statuses.setdefault(status, set()).add(source)
    outcomes = {status: len(sources) for status, sources in statuses.items()}
    counts = counts.filter(lambda status: status not in ("dropped", "skipped"), input_columns="status")
    summary = Summary(strategy.source, strategy.mode, strategy.decision, conversations=len(dataset),
                      skipped=outcomes.get("skipped", 0), outcomes=outcomes,
                      windows=sum(1 for status in counts["status"] if status == "split"), lost=sum(counts["lost"]))
    if len(counts):
        for g in GROUPS:
            summary.by_role[g] = np.asarray(counts[f"role_{g}"]).sum(axis=0).tolist()
        for c in CLASSES:
            summary.by_class[c] = np.asarray(counts[f"class_{c}"]).sum(axis=0).tolist()
        per_row = np.stack([np.asarray(counts[f"role_{g}"]) for g in GROUPS]).sum(axis=0)
        summary.lengths = per_row[:, 1].tolist()
        summary.trained_fraction = (per_row[:, 0] / np.maximum(per_row[:, 1], 1)).tolist()
    return summary
