"""axolotl's preference path (`rl: dpo`, `ipo`, `orpo`, `simpo`) for datasets of type `axolotl_multiturn.chat`:
the exact pairs of `engine/preference.py` as the token ids the trainer consumes.

axolotl's own RL loader turns each line into prompt/chosen/rejected strings, filters them by lengths it
re-tokenizes and truncates answers by decoding their tokens alone; TRL's DPO trainer then tokenizes the
strings again and trains every token after the prompt's length. The plugin's `load_datasets` hook hands the
trainer this module's dataset instead: per pair, the prompt's ids, each completion's ids and which of them
train (`PairColumn`), each pair checked against `sequence_len` and counted, never cut
(the trainers of `trainer.py` keep the ids and train exactly the marked tokens).
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from axolotl.utils.logging import get_logger
from datasets import Dataset, Features, Sequence, Value
from transformers import PreTrainedTokenizerBase

from axolotl_multiturn import DATASET_TYPE, engine
from axolotl_multiturn.engine.conversation import without_nulls
from axolotl_multiturn.engine.encode import IGNORE_INDEX
from axolotl_multiturn.engine.label import Labeller, Settings
from axolotl_multiturn.engine.masking import Mode
from axolotl_multiturn.engine.pairs import Pair, shape_of, split
from axolotl_multiturn.engine.preference import LabelledPair, label_pair
from axolotl_multiturn.engine.spans import UnlabelableError
from axolotl_multiturn.engine.vocabulary import Overflow
from axolotl_multiturn.integration.dataset import RowError, parse_line
from axolotl_multiturn.integration.entry import summary_key
from axolotl_multiturn.integration.options import ConfigError, Options, resolve

LOG = get_logger("axolotl_multiturn.integration.rl")

#: The `rl:` methods of axolotl that train prompt/chosen/rejected rows, and the trainer (axolotl's own,
#: `trainer.py`) that takes them as exact pairs.
TRAINERS = {
    "dpo": "axolotl_multiturn.integration.trainer.ExactPairsDPOTrainer",  # DPO and its loss types
    "ipo": "axolotl_multiturn.integration.trainer.ExactPairsDPOTrainer",
    "orpo": "axolotl_multiturn.integration.trainer.ExactPairsORPOTrainer",
    "simpo": "axolotl_multiturn.integration.trainer.ExactPairsCPOTrainer",
}


class PairColumn(str, Enum):
    """The columns of the dataset handed to the trainer: TRL's names for the ids, ours for the masks."""

    PROMPT_IDS = "prompt_ids"
    CHOSEN_IDS = "chosen_ids"
    REJECTED_IDS = "rejected_ids"
    CHOSEN_MASK = "chosen_mask"  # 1 where a chosen token is trained (0: a masked reasoning trace)
    REJECTED_MASK = "rejected_mask"
    SOURCE = "source"  # the pair's row in its dataset (a JSONL file's line - 1)


#: Each completion of a pair: its name (a `LabelledPair` field, TRL's prefix) and its two columns.
HALVES = (
    ("chosen", PairColumn.CHOSEN_IDS, PairColumn.CHOSEN_MASK),
    ("rejected", PairColumn.REJECTED_IDS, PairColumn.REJECTED_MASK),
)

#: What makes two pairs the same to the trainer (`deduplicate`).
DIGESTED = tuple(c for c in PairColumn if c is not PairColumn.SOURCE)
#: A prepared copy of one entry's pairs (`labelled_pairs`): its folder's prefix, and its summary's file.
PREPARED_PREFIX = "multiturn-pairs-"
PREPARED_SUMMARY = "multiturn-summary.json"

FEATURES = Features(
    {
        **{c.value: Sequence(Value("int32")) for c in PairColumn if c.name.endswith("_IDS")},
        **{c.value: Sequence(Value("int8")) for c in PairColumn if c.name.endswith("_MASK")},
        PairColumn.SOURCE.value: Value("int64"),
    }
)


class PairOutcome(str, Enum):
    """What became of a line of a preference dataset."""

    KEPT = "kept"
    TOO_LONG = "too long"  # longer than sequence_len, dropped (overflow: drop or split)
    SKIPPED = "skipped"  # cannot be labelled exactly (on_unlabelable: skip)
    DUPLICATE = "duplicate"  # the same ids and masks as a pair before it (dataset_exact_deduplication)
    BLANK = "blank"  # an empty line


#: `overflow:` for a pair longer than sequence_len: a pair has no turn boundary to split at, and cutting a
#: completion would train an answer without its stop token, so it is dropped (counted) or stops preprocessing.
PAIR_OVERFLOW = {
    Overflow.SPLIT: Overflow.DROP,
    Overflow.DROP: Overflow.DROP,
    Overflow.ERROR: Overflow.ERROR,
    Overflow.TRUNCATE: None,
}


@dataclass
class PairSummary:
    """What a preference dataset trains: pairs by outcome, and tokens."""

    source: str
    sequence_len: int
    text_lines: bool = False  # the rows are a JSONL file's lines, read as text (named `line N`, else `row N`)
    outcomes: dict[PairOutcome, int] = field(default_factory=lambda: dict.fromkeys(PairOutcome, 0))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    trained_tokens: int = 0
    notes: list[str] = field(default_factory=list)  # the first skipped pairs, with why

    def row(self, index: int) -> str:
        """A row by its index, as errors and the preview name it."""
        return f"line {index + 1}" if self.text_lines else f"row {index}"

    def lines(self) -> list[str]:
        o = self.outcomes
        out = [
            f"{self.source}: {o[PairOutcome.KEPT]:,} pairs kept of {sum(o.values()) - o[PairOutcome.BLANK]:,}; "
            f"{self.prompt_tokens:,} prompt tokens, {self.completion_tokens:,} completion tokens, "
            f"{self.trained_tokens:,} trained"
        ]
        if o[PairOutcome.TOO_LONG]:
            out.append(
                f"{self.source}: {o[PairOutcome.TOO_LONG]:,} pairs longer than sequence_len ({self.sequence_len}) "
                "dropped (the prompt and each completion must fit; overflow: error stops on the first instead)"
            )
        if o[PairOutcome.DUPLICATE]:
            out.append(
                f"{self.source}: {o[PairOutcome.DUPLICATE]:,} pairs left out as duplicates of pairs before them "
                "(dataset_exact_deduplication: the same prompt and completions, token for token)"
            )
        if o[PairOutcome.SKIPPED]:
            out.append(
                f"{self.source}: {o[PairOutcome.SKIPPED]:,} pairs skipped (on_unlabelable: skip), e.g. "
                + "; ".join(self.notes)
            )
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self) | {"outcomes": {k.value: v for k, v in self.outcomes.items()}})

    @classmethod
    def from_json(cls, data: bytes) -> PairSummary:
        fields = orjson.loads(data)
        return cls(**fields | {"outcomes": {PairOutcome(k): v for k, v in fields["outcomes"].items()}})

    def metrics(self) -> dict[str, float]:
        """Numbers for the trainer's integrations (W&B, TensorBoard); datasets' are summed."""
        return {
            **{f"multiturn/pairs/{k.name.lower()}": float(v) for k, v in self.outcomes.items()},
            "multiturn/pairs/trained_tokens": float(self.trained_tokens),
        }


def ours(entry: Mapping[str, Any]) -> bool:
    return isinstance(entry, Mapping) and entry.get("type") == DATASET_TYPE


def method(cfg: Mapping[str, Any]) -> str:
    """The config's `rl:` method ('' for none), raw or validated (axolotl's holds an RLType)."""
    value = cfg.get("rl") or ""
    return str(getattr(value, "value", value)).lower()


def check_config(cfg: Mapping[str, Any], sections: tuple[str, ...]) -> bool:
    """Whether the config (raw or validated) preference-tunes on datasets of our type (then the plugin
    loads them and names the trainer); raises ConfigError for what cannot be trained exactly."""
    rl = method(cfg)
    entries = [(s, i, e) for s in sections for i, e in enumerate(cfg.get(s) or [])]
    mine = [(s, i) for s, i, e in entries if ours(e)]
    if not rl or not mine:
        return False
    if rl not in TRAINERS:
        raise ConfigError(
            f"rl: {rl}: type {DATASET_TYPE} trains prompt/chosen/rejected pairs, with rl: {', '.join(TRAINERS)}; "
            f"{rl} does not train such pairs"
        )
    if rl == "simpo" and cfg.get("simpo_gamma") is None:
        raise ConfigError(
            "rl: simpo: set simpo_gamma (SimPO's target reward margin, e.g. 0.5): without it axolotl hands TRL's "
            "CPO trainer none, and it fails at the first step"
        )
    others = [f"{s}[{i}]" for s, i, e in entries if not ours(e)]
    if others:
        raise ConfigError(
            f"{', '.join(others)}: with rl: {rl}, every dataset must be of type {DATASET_TYPE} "
            "when one is (the plugin loads them all as exact pairs); convert the others with "
            "`axolotl-multiturn convert preference`"
        )
    if cfg.get("trainer_cls") not in (None, TRAINERS[rl]):
        raise ConfigError(
            f"trainer_cls: {cfg['trainer_cls']}: exact pairs with rl: {rl} need {TRAINERS[rl]} (it keeps the "
            "pairs' ids and trains exactly their completion tokens); subclass it, or remove trainer_cls"
        )
    return True


def pair_options(cfg: Mapping[str, Any], ds_cfg: Mapping[str, Any], where: str) -> Options:
    options = resolve(cfg, ds_cfg, where)
    if options.masking in (Mode.NONE, Mode.BOILERPLATE):
        raise ConfigError(
            f"{where}: masking: {options.masking.value} trains prompt text, but a preference loss compares "
            "the completions only; remove masking for rl datasets (reasoning: mask masks a trace)"
        )
    if PAIR_OVERFLOW[options.overflow] is None:
        raise ConfigError(
            f"{where}: overflow: {options.overflow.value} would cut a completion before its stop token; use "
            "drop (the default for pairs: counted) or error"
        )
    return options


def _rows(raw: Dataset, summary: PairSummary) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(row index, parsed line) for each row: a JSONL file read as text lines is parsed as written; an
    Arrow row (Hub, parquet, datasets' JSON loader) loses the nulls Arrow filled in."""
    if summary.text_lines:
        for index, text in enumerate(raw["text"]):
            yield index, parse_line(text, f"{summary.source} {summary.row(index)}", summary.source)
        return
    for index, row in enumerate(raw):
        yield index, _arrow_clean(row)


def _arrow_clean(value: Any) -> Any:
    """Arrow's null-filled keys removed; a message keeps its null content (an assistant turn of calls)."""
    if isinstance(value, Mapping):
        if "role" in value:
            return without_nulls(value, keep="content")
        return {k: _arrow_clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_arrow_clean(v) for v in value]
    return value


def label_dataset(
    tokenizer: PreTrainedTokenizerBase, cfg: Mapping[str, Any], ds_cfg: Mapping[str, Any], raw: Dataset
) -> tuple[Dataset, PairSummary]:
    """Every row of one dataset as an exact pair, with its summary; errors name the row and what to do."""
    from axolotl_multiturn.chat import build_encoder

    where = str(ds_cfg.get("path") or "dataset")
    options = pair_options(cfg, ds_cfg, where)
    sequence_len = int(cfg.get("sequence_len") or 2048)
    labeller = Labeller(
        build_encoder(tokenizer, cfg, ds_cfg, options),
        Settings(sequence_len, options.overflow, options.parity, True, options.reasoning == "train"),
    )
    summary = PairSummary(where, sequence_len, raw.column_names == ["text"])
    columns: dict[str, list] = {c.value: [] for c in PairColumn}
    for index, obj in _rows(raw, summary):
        name = f"{where} {summary.row(index)}"
        if obj is None:
            summary.outcomes[PairOutcome.BLANK] += 1
            continue
        pair = _pair(obj, name)
        try:
            labelled = label_pair(labeller, pair)
        except UnlabelableError as error:
            if options.on_unlabelable != "skip":
                raise RowError(
                    f"{name}: {error}. Change the pair or the chat_template, or set "
                    "multiturn.on_unlabelable: skip to skip such pairs (they are counted)"
                ) from None
            summary.outcomes[PairOutcome.SKIPPED] += 1
            if len(summary.notes) < 3:
                summary.notes.append(f"{name}: {error}")
            continue
        longest = len(labelled.prompt_ids) + max(len(labelled.chosen.ids), len(labelled.rejected.ids))
        if longest > sequence_len:
            if PAIR_OVERFLOW[options.overflow] is Overflow.ERROR:
                raise RowError(
                    f"{name}: the prompt and its longer completion are {longest} tokens, over sequence_len "
                    f"({sequence_len}); raise sequence_len, or set overflow: drop to leave such pairs out (counted)"
                )
            summary.outcomes[PairOutcome.TOO_LONG] += 1
            continue
        _append(columns, labelled, index)
        summary.outcomes[PairOutcome.KEPT] += 1
        summary.prompt_tokens += len(labelled.prompt_ids)
        for completion in (labelled.chosen, labelled.rejected):
            summary.completion_tokens += len(completion.ids)
            summary.trained_tokens += int((completion.labels != IGNORE_INDEX).sum())
    if not columns[PairColumn.SOURCE.value]:
        raise RowError(f"{where}: no pairs left to train on ({'; '.join(summary.lines()[1:]) or 'it is empty'})")
    return Dataset.from_dict(columns, features=FEATURES), summary


def _pair(obj: Any, name: str) -> Pair:
    """The line's pair, or a RowError with its first problem and how to see them all."""
    shape = shape_of(obj) if isinstance(obj, Mapping) else None
    if shape is None:
        raise RowError(
            f"{name}: not a preference pair (with rl: set, each line holds a prompt and chosen and rejected "
            "outputs: docs/preference.md lists the shapes)"
        )
    pair, problems = split(obj, shape)
    if problems:
        first = problems[0]
        raise RowError(
            f"{name}{':' + first.pointer if first.pointer else ''}: {first.code} {first.message}. "
            "Run `check-chat-jsonl FILE` for every problem with its line"
        )
    return pair


def _append(columns: dict[str, list], labelled: LabelledPair, index: int) -> None:
    columns[PairColumn.PROMPT_IDS.value].append(labelled.prompt_ids)
    for half, ids, mask in HALVES:
        completion = getattr(labelled, half)
        columns[ids.value].append(completion.ids)
        columns[mask.value].append((completion.labels != IGNORE_INDEX).astype(np.int8))
    columns[PairColumn.SOURCE.value].append(index)


def deduplicate(dataset: Dataset, summary: PairSummary, seen: set[bytes]) -> tuple[Dataset, PairSummary]:
    """`dataset_exact_deduplication`: the pairs whose prompt and completions (ids and masks) are in `seen`, or
    repeat a pair before them, left out and counted; the kept pairs' digests added to `seen`. (axolotl's own
    deduplication hashes whole rows, and the `source` column makes every row unique.)"""
    counted = replace(summary, outcomes=dict(summary.outcomes))
    keep = []
    for index, row in enumerate(dataset.select_columns([c.value for c in DIGESTED])):
        digest = hashlib.blake2b(digest_size=16)
        for column in DIGESTED:
            values = np.asarray(row[column.value], dtype=np.int64)
            digest.update(len(values).to_bytes(8, "little") + values.tobytes())
        key = digest.digest()
        if key not in seen:
            seen.add(key)
            keep.append(index)
            continue
        counted.outcomes[PairOutcome.KEPT] -= 1
        counted.outcomes[PairOutcome.DUPLICATE] += 1
        counted.prompt_tokens -= len(row[PairColumn.PROMPT_IDS.value])
        for _, ids, mask in HALVES:
            counted.completion_tokens -= len(row[ids.value])
            counted.trained_tokens -= sum(row[mask.value])
    return (dataset if len(keep) == len(dataset) else dataset.select(keep)), counted


#: The source that decides a pair's labels: the engine and this module.
LABELLING_SOURCES = (Path(engine.__file__).parent, Path(__file__))


def labelling_digest() -> str:
    """A digest of `LABELLING_SOURCES`' Python files: a prepared copy is read back only by the code that
    labelled it (the package version stays the same across engine changes between releases)."""
    digest = hashlib.sha256()
    for source in LABELLING_SOURCES:
        for path in sorted(source.glob("*.py")) if source.is_dir() else [source]:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def labelled_pairs(
    cfg: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase, ds_cfg: Mapping[str, Any], prepared: Path | None
) -> tuple[Dataset, PairSummary]:
    """One dataset entry's exact pairs and summary: read back from its prepared copy in `prepared` (a folder
    per entry, named by what its pairs depend on: the entry and its file, our options, the template, the
    tokenizer, sequence_len, the labelling code's source), or loaded by axolotl's dataset loader (local files, the
    Hub, parquet, `data_files`, `split`), labelled, and saved there. As axolotl does for its own prepared
    datasets, `axolotl preprocess` labels again and `skip_prepare_dataset` neither reads nor saves."""
    from axolotl.utils.data.shared import load_dataset_with_config

    skip = bool(cfg.get("skip_prepare_dataset"))
    folder = None
    if prepared is not None and not skip:
        key = hashlib.sha256(f"{summary_key(tokenizer, cfg, ds_cfg)} {labelling_digest()}".encode()).hexdigest()[:32]
        folder = prepared / f"{PREPARED_PREFIX}{key}"
    if folder is not None and (folder / PREPARED_SUMMARY).is_file() and not cfg.get("is_preprocess"):
        LOG.info("axolotl_multiturn: %s: pairs read back from %s", ds_cfg.get("path"), folder)
        return Dataset.load_from_disk(str(folder)), PairSummary.from_json((folder / PREPARED_SUMMARY).read_bytes())
    raw = load_dataset_with_config(ds_cfg, cfg.get("hf_use_auth_token") or False, streaming=False)
    dataset, summary = label_dataset(tokenizer, cfg, ds_cfg, raw)
    if folder is not None:
        _save(dataset, summary, folder, replace=bool(cfg.get("is_preprocess")))
    return dataset, summary


def _save(dataset: Dataset, summary: PairSummary, folder: Path, replace: bool) -> None:
    """Written beside the folder, then renamed into place: a reader finds a whole copy or none. A copy there
    already stays (another rank saved the same pairs first), unless `replace` (`axolotl preprocess`)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".partial-") as partial:
        staged = Path(partial) / "pairs"
        dataset.save_to_disk(str(staged))
        (staged / PREPARED_SUMMARY).write_bytes(summary.to_json())
        if replace and folder.exists():
            shutil.rmtree(folder)
        try:
            staged.rename(folder)
        except OSError:
            if not (folder / PREPARED_SUMMARY).is_file():
                raise


def load_split(
    cfg: Mapping[str, Any],
    tokenizer: PreTrainedTokenizerBase,
    entries: list[Mapping[str, Any]],
    seen: set[bytes] | None = None,
    prepared: Path | None = None,
) -> tuple[list[Dataset], list[PairSummary]]:
    """The exact pairs of a config section's dataset entries (`datasets`, `test_datasets`: raw entries), in
    order (`labelled_pairs`, with prepared copies in `prepared`). With dataset_exact_deduplication, pairs
    seen before (in this section, or in `seen`: the training section's, for the test section) are left out
    and counted."""
    if cfg.get("dataset_exact_deduplication"):
        seen = set() if seen is None else seen
    else:
        seen = None
    parts, summaries = [], []
    for ds_cfg in entries:
        dataset, summary = labelled_pairs(cfg, tokenizer, ds_cfg, prepared)
        if seen is not None:
            dataset, summary = deduplicate(dataset, summary, seen)
        for line in summary.lines():
            LOG.info("axolotl_multiturn: %s", line)
        parts.append(dataset)
        summaries.append(summary)
    return parts, summaries


def total_steps(cfg: Mapping[str, Any], rows: int) -> int:
    """axolotl's own count for preference datasets (`load_preference_datasets`)."""
    return int(math.ceil(rows * (cfg.get("num_epochs") or 1) / (cfg.get("batch_size") or 1)))
