"""The dataset pass of `axolotl_multiturn.chat`: every row labelled in one pass (deciding `auto` in it), the
summary counted from the bookkeeping columns, then those columns removed, with dropped rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
from axolotl.prompt_tokenizers import DatasetWrappingStrategy
from axolotl.utils.logging import get_logger
from datasets import Dataset, IterableDataset

from axolotl_multiturn.engine.masking import AutoDecision, Mode
from axolotl_multiturn.engine.outcomes import Outcomes
from axolotl_multiturn.engine.vocabulary import CANDIDATE_COLUMNS, GONE, STATS, Col, Status
from axolotl_multiturn.integration.options import ConfigError, Options
from axolotl_multiturn.reports.summary import CATEGORIES, Summary, from_columns, remember

LOG = get_logger("axolotl_multiturn.chat")


class LabellingStrategy(Protocol):
    """What the dataset pass needs of `chat.MultiTurnStrategy` (named here so that this module does not import
    the one that imports it): the rows of a batch, `auto`'s decision, and what errors and counts name."""

    source: str
    sequence_len: int
    options: Options
    mode: Mode | None
    decision: AutoDecision | None
    tokenize_rows: Callable[..., dict[str, list]]

    def decide(self, scan: np.ndarray) -> AutoDecision: ...


class RowError(ValueError):
    """A dataset row that cannot be used, named by its index."""


def parse_line(text: str, where: str, source: str) -> Any:
    """A line of a JSONL file read as text (how the plugin has axolotl load local JSONL, so that every string
    reaches us as written), parsed as written; None for a blank line. `where` names the line in errors."""
    if not text.strip():
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise RowError(
            f"{where}: MT002 invalid JSON ({error.msg}). Run `check-chat-jsonl {source}` to see every problem"
        ) from None


class ChatDatasetWrapper(DatasetWrappingStrategy):
    """Labels every row in one pass (deciding `auto` in it), counts the summary there and keeps it for
    training start; names rows in errors, counts skips."""

    def __init__(self, strategy: LabellingStrategy, key: str | None = None, directory: Path | None = None):
        self.strategy = strategy
        self.key = key  # the dataset's summary key (`summary_key`), under which `wrap_dataset` keeps it
        self.directory = directory  # where the summary is saved beside the prepared dataset (None: not saved)
        self.summary: Summary | None = None  # counted by the last `wrap_dataset`

    def wrap_dataset(
        self,
        dataset: Dataset | IterableDataset,
        process_count: int | None = None,
        keep_in_memory: bool | None = False,
        **kwargs: Any,
    ) -> Dataset | IterableDataset:
        strategy = self.strategy
        if isinstance(dataset, IterableDataset):
            if strategy.mode is None:
                raise ConfigError(
                    f"{strategy.source}: masking {strategy.options.masking.value} needs the whole "
                    "dataset to decide; "
                    "with a streaming dataset set masking to instruction or boilerplate"
                )
            return dataset.map(
                strategy.tokenize_rows, with_indices=True, batched=True, remove_columns=list(dataset.column_names or [])
            )
        mapped, summary = self.prepare(dataset, process_count, keep_in_memory)
        self.summary = summary
        if self.key:
            remember(self.key, summary, self.directory)
        for line in summary.outcomes.lines(strategy.sequence_len, strategy.options.overflow.value):
            LOG.warning("axolotl_multiturn: %s: %s", strategy.source, line)
        if not summary.by_role:
            raise RowError(f"{strategy.source}: no rows left to train on: {nothing_left(summary.outcomes)}")
        if len(summary.lengths) != len(mapped):  # bookkeeping rows of conversations that give no row
            mapped = mapped.filter(
                lambda status: status not in GONE,
                input_columns=Col.STATUS.value,
                num_proc=process_count,
                desc="axolotl_multiturn: leaving out dropped rows",
            )
        return mapped.remove_columns([c.value for c in (*STATS, Col.COUNTS)])

    def prepare(
        self, dataset: Dataset, process_count: int | None = None, keep_in_memory: bool | None = False
    ) -> tuple[Dataset, Summary]:
        """Label every row in one pass, keeping the bookkeeping columns, and the summary counted from them.
        An undecided `auto` labels every row by each candidate mode in that pass, decides from the scan
        columns, and keeps the chosen mode's rows (raising for a row it cannot label)."""
        strategy = self.strategy
        deciding = strategy.mode is None
        mapped = dataset.map(
            strategy.tokenize_rows,
            with_indices=True,
            batched=True,
            batch_size=1000,
            num_proc=process_count,
            keep_in_memory=bool(keep_in_memory),
            fn_kwargs={"stats": True},
            remove_columns=dataset.column_names,
            desc="axolotl_multiturn: tokenizing",
        )
        names = [*STATS, *((Col.MODE, Col.NOTE) if deciding else ())]
        kept = [*names, Col.COUNTS, *((Col.SCAN,) if deciding else ())]
        table = mapped.select_columns([c.value for c in kept]).with_format("arrow")[:]
        columns = {name: table.column(name.value).to_numpy(zero_copy_only=False) for name in names}
        columns[Col.COUNTS] = _matrix(table.column(Col.COUNTS.value)).reshape(len(table), len(CATEGORIES), 2)
        if deciding:
            decision = strategy.decide(_matrix(table.column(Col.SCAN.value)))
            LOG.info("axolotl_multiturn: %s: %s", strategy.source, decision.describe())
            chosen = columns[Col.MODE] == decision.mode.value
            mapped = mapped.select(np.flatnonzero(chosen)).remove_columns([c.value for c in CANDIDATE_COLUMNS])
            columns = {name: values[chosen] for name, values in columns.items()}
            for status, message in zip(columns[Col.STATUS], columns[Col.NOTE]):
                if status == Status.ERROR:
                    raise RowError(message)
                if status == Status.SKIPPED:
                    LOG.warning("%s", message)
        return mapped, from_columns(
            columns, strategy.source, strategy.mode, strategy.decision, strategy.sequence_len, strategy.options.overflow
        )


def summarize(strategy: LabellingStrategy, dataset: Dataset, num_proc: int | None = None) -> Summary:
    """Count what `strategy` trains in `dataset`: the preprocessing pass itself, deciding `auto` first if
    needed."""
    return ChatDatasetWrapper(strategy).prepare(dataset, num_proc)[1]


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A column of fixed-size int lists as a (rows, width) array."""
    array = column.combine_chunks()
    return array.flatten().to_numpy().reshape(len(array), -1)


def nothing_left(outcomes: Outcomes) -> str:
    """Why a dataset gives no training row, and what to do."""
    if not outcomes.conversations:
        return "the dataset has no conversations (an empty file, or only blank lines)"
    why = ", ".join(f"{n} {status}" for status, n in outcomes.by_status.items())
    return (
        f"{outcomes.conversations} conversations, {why}. Raise sequence_len or set multiturn.overflow: split "
        "for dropped ones; fix the rows logged as skipped"
    )
