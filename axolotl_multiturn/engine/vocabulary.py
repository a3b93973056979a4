"""The words the rooms share: the row-shaping options, what became of a conversation, and the bookkeeping
columns that carry it. No heavy imports (the config hook reads the options).

Named once here and imported where they are written (the labelling pipeline, the axolotl adapter) and
where they are read (the summary, the preview), so that a status or a column cannot be misspelt apart.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What became of one conversation (a `str` so that Arrow columns hold the plain word)."""

    FITS = "fits"  # one row, whole
    SPLIT = "split"  # windows at turn boundaries (overflow: split)
    TRUNCATED = "truncated"  # cut after the last turn that fits (overflow: truncate)
    DROPPED = "dropped"  # too long (overflow: drop), or nothing left to train
    SKIPPED = "skipped"  # cannot be labelled exactly (on_unlabelable: skip)
    BLANK = "blank"  # a blank line of a JSONL file
    ERROR = "error"  # a candidate mode of an undecided `auto` cannot label it


class Overflow(str, Enum):
    """`overflow:` what to do with a conversation longer than `sequence_len`."""

    SPLIT = "split"
    TRUNCATE = "truncate"
    DROP = "drop"
    ERROR = "error"


class Parity(str, Enum):
    """`parity:` turns the whole render shows outside their inference context."""

    EXPAND = "expand"  # the fewest rows that serve every trained turn once
    LAST = "last"  # only the last trained turn, where some turn is not served (the hosted behaviour)
    OFF = "off"  # the whole render, counted


#: Statuses of a conversation that gives no training row (its bookkeeping row is empty).
GONE = (Status.DROPPED.value, Status.SKIPPED.value, Status.BLANK.value)


#: Per conversation, on its first row: rows added for parity, turns with no row in their inference
#: context, turns trained outside it (`off`), turns left untrained (`last`).
PARITY_COUNTS = ("extra", "no_parity", "outside", "untrained")


class Col(str, Enum):
    """The bookkeeping columns preprocessing writes beside input_ids and labels, then removes."""

    SOURCE = "mt_source"  # the source row
    STATUS = "mt_status"  # `Status`
    LOST = "mt_lost"  # trainable assistant turns no row trains (overflow)
    EXTRA = "mt_extra"  # a row added so that a turn is trained in its inference context
    NO_PARITY = "mt_no_parity"
    OUTSIDE = "mt_outside"
    UNTRAINED = "mt_untrained"
    COUNTS = "mt_counts"  # token counts by role and class, [masked, trained] (`reports.summary.count_rows`)
    MODE = "mt_mode"  # while `auto` is undecided: the candidate mode that labelled the row
    NOTE = "mt_error"  # ... why that mode could not label it
    SCAN = "mt_scan"  # ... and the scan statistics of its conversation, on its first row


#: A vision-language model's rows: the processor's outputs for the row's images (pixel values, per-token
#: types; `engine.vision.pack`), in the column the model's forward names, so that the trainer keeps it
#: for the collator (`integration/collator.py`), which unpacks it. Empty for a row without images.
VISION_COLUMN = "pixel_values"


#: The columns every preprocessed row carries until the summary is counted.
STATS = (Col.SOURCE, Col.STATUS, Col.LOST, Col.EXTRA, Col.NO_PARITY, Col.OUTSIDE, Col.UNTRAINED)
#: The columns of an undecided `auto`'s candidates.
CANDIDATE_COLUMNS = (Col.MODE, Col.NOTE, Col.SCAN)
