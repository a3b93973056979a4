"""The axolotl dataset type `axolotl_multiturn.chat`: the adapter between axolotl and the engine's labelling
pipeline (`engine/label.py`): options, axolotl's calling conventions, row shapes, Arrow columns.

axolotl imports this module for `type: axolotl_multiturn.chat` and calls `load(tokenizer, cfg, ds_cfg)`.
`load` returns a dataset-wrapping strategy because `masking: auto` decides from the whole dataset (in the
same pass that labels it, by each candidate mode) and the summary is counted over it; the per-batch work is
`MultiTurnStrategy.tokenize_prompt`, a batched axolotl prompt-tokenizing strategy that also works on its own.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from axolotl.prompt_tokenizers import PromptTokenizingStrategy
from axolotl.utils.logging import get_logger
from transformers import PreTrainedTokenizerBase

from axolotl_multiturn import DATASET_TYPE
from axolotl_multiturn.engine.conversation import Conversation, Message, without_nulls
from axolotl_multiturn.engine.encode import Encoded, Encoder
from axolotl_multiturn.engine.label import Labelled, Labeller, Settings
from axolotl_multiturn.engine.masking import AutoDecision, Mode, decide, decide_hosted
from axolotl_multiturn.engine.render import ChatRenderer
from axolotl_multiturn.engine.spans import TemplateRejected, UnlabelableError
from axolotl_multiturn.engine.validate import InvalidConversation, parse_conversation
from axolotl_multiturn.engine.vision import Vision, pack
from axolotl_multiturn.engine.vocabulary import PARITY_COUNTS, STATS, VISION_COLUMN, Col, Status
from axolotl_multiturn.engine.windows import TooLong
from axolotl_multiturn.integration.dataset import ChatDatasetWrapper, RowError, parse_line
from axolotl_multiturn.integration.entry import (
    image_folder,
    load_processor,
    resolve_chat_template,
    sampling,
    summary_directory,
    summary_key,
    template_choice,
)
from axolotl_multiturn.integration.options import ConfigError, Options, resolve
from axolotl_multiturn.reports.summary import count_rows

LOG = get_logger("axolotl_multiturn.chat")
#: The modes a scanning mode chooses between. Every conversation is rendered and tokenized once and labelled
#: by each candidate in the same pass; the dataset's statistics then keep one candidate's rows.
CANDIDATES = {Mode.AUTO: (Mode.INSTRUCTION, Mode.BOILERPLATE), Mode.HOSTED_AUTO: (Mode.INSTRUCTION, Mode.NONE)}


def build_encoder(
    tokenizer: PreTrainedTokenizerBase,
    cfg: Mapping[str, Any],
    ds_cfg: Mapping[str, Any],
    options: Options,
    processor: Any = None,
) -> Encoder:
    renderer = ChatRenderer.for_tokenizer(
        tokenizer,
        resolve_chat_template(tokenizer, cfg, ds_cfg),
        [*options.stop_tokens, *(cfg.get("eot_tokens") or [])],
        cfg.get("chat_template_kwargs") or {},
    )
    where = ds_cfg.get("path") or "dataset"
    probe = Conversation((Message("user", "What is this?"), Message("assistant", "A probe of the template.")))
    try:
        renderer.render(renderer.plan(probe))  # a template no row can be labelled with is refused now, not per row
    except TemplateRejected as error:
        if "is undefined" in str(error):
            raise ConfigError(
                f"{where}: {error}: the tokenizer does not define it; "
                "add it under special_tokens, or choose another chat_template"
            ) from None
    except UnlabelableError as error:
        raise ConfigError(
            f"{where}: the chat template ({template_choice(cfg, ds_cfg)[0]}) cannot be labelled exactly even on "
            f"a plain two-message conversation: {error}; choose another chat_template"
        ) from None
    return Encoder(
        tokenizer,
        renderer,
        literal_content=options.content_special_tokens == "literal",
        vision=Vision(processor, image_folder(ds_cfg)) if processor is not None else None,
    )


class MultiTurnStrategy(PromptTokenizingStrategy):
    """Batched: one template render per conversation and one tokenizer call per batch."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        encoder: Encoder,
        options: Options,
        field_messages: str = "messages",
        sequence_len: int = 2048,
        source: str = "dataset",
        sampled: str = "",
    ):
        super().__init__(None, tokenizer, train_on_inputs=False, sequence_len=sequence_len)
        self.encoder = encoder
        self.options = options
        self.field_messages = field_messages
        self.source = source
        # axolotl's `shards` or `weight` (a fraction) shuffle and subsample the rows before we see them, so
        # that a row's index is no longer its line: `sampled` says which, for errors to say so.
        self.sampled = sampled
        # The mode that labels rows; for `auto` it is set by `decide` once the one pass has scanned the
        # dataset. It is part of this object's pickled state, hence of the datasets map fingerprint.
        self.mode: Mode | None = None if options.masking.scans else options.masking
        self.decision: AutoDecision | None = None
        self._warned: set[tuple[int, str]] = set()

    @property
    def images(self) -> Path | None:
        """The folder image paths are relative to, when the model takes images; None when it does not."""
        return self.encoder.vision.folder if self.encoder.vision is not None else None

    @property
    def supports_batched(self) -> bool:
        return True

    @property
    def labeller(self) -> Labeller:
        """The engine's labelling pipeline with this strategy's options (and its `sequence_len`, which
        callers may set after construction, as axolotl's strategies allow)."""
        o = self.options
        return Labeller(
            self.encoder, Settings(self.sequence_len, o.overflow, o.parity, o.last_turn_only, o.reasoning == "train")
        )

    def lines(self, batch: Mapping[str, Sequence[Any]]) -> bool:
        """Whether the rows are the lines of a JSONL file read as text (how the plugin has axolotl load local
        JSONL, so that every string reaches us as written): then a row's index is its line number - 1."""
        return self.field_messages not in batch and list(batch) == ["text"]

    def where(self, index: int, lines: bool) -> str:
        if lines and not self.sampled:
            return f"{self.source} line {index + 1}"
        sample = f" of the {self.sampled} sample (`check-chat-jsonl {self.source}` names lines)" if self.sampled else ""
        return f"{self.source} row {index}{sample}"

    def conversations(self, batch: Mapping[str, Sequence[Any]], indices: Sequence[int]) -> list[Conversation | None]:
        """Each row as a conversation; None for a blank line of a JSONL file."""
        lines = self.lines(batch)
        if self.field_messages not in batch and not lines:
            raise RowError(
                f"{self.source}: no column {self.field_messages!r} (columns: {', '.join(batch)}); "
                "set field_messages on the dataset entry"
            )
        out: list[Conversation | None] = []
        rows = (
            self._line_rows(batch["text"], indices)
            if lines
            else (
                {
                    "messages": [without_nulls(m, keep="content") for m in raw] if isinstance(raw, list) else raw,
                    **({"tools": without_nulls(offered)} if offered is not None else {}),
                }
                for raw, offered in zip(batch[self.field_messages], batch.get("tools") or [None] * len(indices))
            )
        )
        for index, row in zip(indices, rows):
            if row is None:
                out.append(None)
                continue
            try:
                out.append(parse_conversation(row, images=self.images))
            except InvalidConversation as error:
                raise RowError(
                    f"{self.where(index, lines)}: {error}. Fix the row; `check-chat-jsonl FILE` "
                    "lists every problem with its line"
                ) from None
        return out

    def _line_rows(self, texts: Sequence[str], indices: Sequence[int]) -> Iterator[dict[str, Any] | None]:
        """Parse JSONL lines exactly as written (None for a blank line)."""
        for index, text in zip(indices, texts):
            row = parse_line(text, self.where(index, True), self.source)
            if row is None:
                yield None
                continue
            if not isinstance(row, dict):
                raise RowError(f"{self.where(index, True)}: MT003 not a JSON object")
            messages = row.get(self.field_messages)
            yield {"messages": messages, **({"tools": row["tools"]} if "tools" in row else {})}

    def tokenize_prompt(self, prompt: Mapping[str, Sequence[Any]]) -> dict[str, list[list[int]]]:
        return self.tokenize_rows(prompt, range(len(next(iter(prompt.values()), []))))

    def tokenize_rows(
        self, batch: Mapping[str, Sequence[Any]], indices: Sequence[int], stats: bool = False
    ) -> dict[str, list] | pa.Table:
        """The tokenized rows (windows, for split conversations), as lists. With `stats` (the datasets
        path): an Arrow table, plus a row per dropped or skipped conversation (empty) and the bookkeeping
        columns `vocabulary.STATS`, for `ChatDatasetWrapper` to count and remove; while `auto` is undecided, every
        candidate's rows with CANDIDATE_COLUMNS."""
        if not stats:
            rows = [row for row in self.labelled(batch, indices) if row.item is not None]
            out = {
                "input_ids": [row.item.input_ids.tolist() for row in rows],
                "attention_mask": [[1] * len(row.item.input_ids) for row in rows],
                "labels": [row.labels.tolist() for row in rows],
            }
            if self.encoder.vision is not None:
                out[VISION_COLUMN] = [pack(row.item.vision) for row in rows]
            return out
        modes = CANDIDATES[self.options.masking] if self.mode is None else None
        rows = list(self.labelled(batch, indices, modes))
        empty = np.zeros(0, dtype=np.int64)
        ids = [row.item.input_ids if row.item is not None else empty for row in rows]
        offsets = pa.array(np.concatenate(([0], np.cumsum([len(x) for x in ids]))).astype(np.int32))
        flat_ids = np.concatenate([empty, *ids])
        flat_labels = np.concatenate([empty, *(row.labels for row in rows if row.labels is not None)])
        counts = count_rows([(row.item, row.labels) if row.item is not None else None for row in rows])
        out: dict[str, pa.Array] = {
            "input_ids": pa.ListArray.from_arrays(offsets, pa.array(flat_ids.astype(np.int32))),
            "attention_mask": pa.ListArray.from_arrays(offsets, pa.array(np.ones(len(flat_ids), dtype=np.int8))),
            "labels": pa.ListArray.from_arrays(offsets, pa.array(flat_labels)),
            Col.COUNTS.value: _fixed(counts.reshape(len(rows), -1)),
        }
        if self.encoder.vision is not None:
            out[VISION_COLUMN] = pa.array(
                [pack(row.item.vision) if row.item is not None else b"" for row in rows], pa.large_binary()
            )
        out[Col.SOURCE.value] = pa.array([row.index for row in rows])
        out[Col.STATUS.value] = pa.array([row.status.value for row in rows])
        for column, field in zip(STATS[2:], ("lost", *PARITY_COUNTS)):
            out[column.value] = pa.array([getattr(row, field) for row in rows])
        if modes:
            failed = (Status.ERROR, Status.SKIPPED)
            out |= {
                Col.MODE.value: pa.array([row.mode.value for row in rows]),
                Col.NOTE.value: pa.array([row.note if row.status in failed else "" for row in rows]),
                Col.SCAN.value: _fixed(np.array([row.scan for row in rows], dtype=np.int64).reshape(len(rows), -1)),
            }
        return pa.table(out)

    def labelled(
        self, batch: Mapping[str, Sequence[Any]], indices: Sequence[int], modes: Sequence[Mode] | None = None
    ) -> Iterator[Labelled]:
        """Every row as labelled training rows: one when it fits `sequence_len` and its template trains
        every turn in its inference context; windows (overflow) and parity rows otherwise. A row that
        cannot be labelled exactly raises a RowError naming it, or with `on_unlabelable: skip` comes back
        as status skipped; a dropped one as status dropped (no item).

        With `modes` (the candidates of an undecided `auto`), each conversation is encoded once and comes
        back labelled by every mode in turn, with its scan statistics on its first row; what a candidate
        cannot label comes back as status error (or skipped), for the decision to raise or log."""
        if modes is None and self.mode is None:
            raise ConfigError(
                f"{self.source}: masking is {self.options.masking.value}, but the dataset was "
                "not scanned; load it through axolotl (ChatDatasetWrapper.wrap_dataset) first"
            )
        deferred = modes is not None
        modes = modes or (self.mode,)
        conversations = self.conversations(batch, indices)
        lines = self.lines(batch)
        encoded = iter(self.encoder.encode([c for c in conversations if c is not None]))
        for index, conversation in zip(indices, conversations):
            if conversation is None:
                yield from (Labelled(index, None, None, Status.BLANK, 0, mode=mode) for mode in modes)
                continue
            item = next(encoded)
            if not isinstance(item, UnlabelableError):
                self._warn_dropped(item)
            scan = (
                (
                    1,
                    int(any(m.weight is not None for m in conversation.messages)),
                    *(item.content_tokens() if isinstance(item, Encoded) else (0, 0)),
                )
                if deferred
                else ()
            )
            for k, mode in enumerate(modes):
                try:
                    rows = self._rows(index, item, mode, lines)
                except RowError as error:
                    if not deferred:
                        raise
                    rows = [Labelled(index, None, None, Status.ERROR, 0, note=str(error), mode=mode)]
                for row in rows:
                    if row.status is Status.SKIPPED and not deferred:
                        LOG.warning("%s", row.note)
                    yield row._replace(scan=scan) if deferred and k == 0 and row is rows[0] else row

    def _rows(self, index: int, item: Encoded | UnlabelableError, mode: Mode, lines: bool) -> list[Labelled]:
        """One conversation's training rows under `mode` (see `labelled`), its errors named by its row."""
        try:
            if isinstance(item, UnlabelableError):
                raise item
            return self.labeller.rows(index, item, mode)
        except UnlabelableError as error:
            if self.options.on_unlabelable == "skip":
                return [
                    Labelled(
                        index,
                        None,
                        None,
                        Status.SKIPPED,
                        0,
                        note=f"{self.where(index, lines)} skipped: {error}",
                        mode=mode,
                    )
                ]
            advice = "Change the row or the chat_template" if isinstance(error, TemplateRejected) else "Fix the row"
            raise RowError(
                f"{self.where(index, lines)}: {error}. {advice}, or set "
                "multiturn.on_unlabelable: skip to skip such rows (they are counted)"
            ) from None
        except TooLong as error:
            raise RowError(f"{self.where(index, lines)}: {error}") from None

    def _warn_dropped(self, item: Encoded) -> None:
        """Say once per message role and position that the template leaves a message out entirely."""
        for index in item.rendered.dropped:
            key = (index, item.messages[index].role)
            if key not in self._warned:
                self._warned.add(key)
                LOG.warning(
                    "axolotl_multiturn: %s: the chat template does not render message %d (%s) of some "
                    "conversations at all (e.g. Mistral v3 keeps a system message only when the "
                    "conversation ends with a user turn); it is not in the training text",
                    self.source,
                    index,
                    key[1],
                )

    def label(self, item: Encoded, mode: Mode | None = None) -> np.ndarray:
        mode = mode or self.mode
        assert mode is not None
        return self.labeller.labels(item, mode)

    def decide(self, scan: np.ndarray) -> AutoDecision:
        """Decide a scanning mode from the per-conversation scan statistics (columns: conversation,
        weighted, non-assistant and assistant content tokens) and label by it from now on."""
        conversations, weighted, non_assistant, assistant = (int(v) for v in scan.sum(axis=0))
        if self.options.masking is Mode.HOSTED_AUTO:
            decision = decide_hosted(conversations, weighted > 0)
        else:
            decision = decide(conversations, non_assistant, assistant, self.options.auto)
        self.mode, self.decision = decision.mode, decision
        return decision


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    """A (rows, width) int array as one Arrow column of fixed-size lists."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1).astype(np.int64)), values.shape[1])


def load(
    tokenizer: PreTrainedTokenizerBase,
    cfg: Mapping[str, Any],
    ds_cfg: Mapping[str, Any] | None = None,
    processor: Any = None,
) -> ChatDatasetWrapper:
    """axolotl's entry point for `type: axolotl_multiturn.chat`. A vision-language model's processor comes
    from axolotl (`processor_type`), or is loaded here as axolotl would."""
    ds_cfg = ds_cfg or {}
    source = str(ds_cfg.get("path") or "dataset")
    options = resolve(cfg, ds_cfg, where=source)
    if processor is None and cfg.get("is_multimodal"):
        processor = load_processor(cfg, tokenizer)
    strategy = MultiTurnStrategy(
        tokenizer,
        build_encoder(tokenizer, cfg, ds_cfg, options, processor),
        options,
        field_messages=ds_cfg.get("field_messages") or "messages",
        sequence_len=cfg.get("sequence_len") or 2048,
        source=source,
        sampled=sampling(ds_cfg),
    )
    return ChatDatasetWrapper(strategy, summary_key(tokenizer, cfg, ds_cfg), summary_directory(cfg, ds_cfg))


class _DatasetTypeModule(types.ModuleType):
    """With `rl:` set, axolotl's RL loaders call the dataset type's module with the config; with the plugin
    listed they are never reached (the plugin loads the pairs). Without it, say what to add."""

    def __call__(self, cfg: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        value = cfg.get("rl")
        raise ConfigError(
            f"type {DATASET_TYPE} with rl: {getattr(value, 'value', value)} needs "
            "plugins: [axolotl_multiturn.MultiTurnPlugin] in the config: the plugin loads preference pairs as "
            "exact token ids (docs/preference.md)"
        )


sys.modules[__name__].__class__ = _DatasetTypeModule
