"""The axolotl plugin: adds the top-level `multiturn:` block and keeps per-dataset options alive.

axolotl validates its config with pydantic and silently drops dataset keys it does not know. The plugin
sees the raw YAML first (`register`), rejects misspelt keys in our block and in dataset entries of our
type, and moves each entry's options into the carrier field (see `options.CARRIER_KEY`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from axolotl.integrations.base import BasePlugin
from axolotl.utils.logging import get_logger
from axolotl.utils.schemas.datasets import SFTDataset
from pydantic import BaseModel, field_validator
from transformers import TrainerCallback

from axolotl_multiturn import DATASET_TYPE
from axolotl_multiturn.engine.encode import IGNORE_INDEX
from axolotl_multiturn.engine.pairs import Shape, shape_of
from axolotl_multiturn.integration import rl
from axolotl_multiturn.integration.entry import DEFAULT_PREPARED, summary_directory, summary_key
from axolotl_multiturn.integration.options import ConfigError, carry, option_keys, resolve, suggest, validate_block
from axolotl_multiturn.lint.parallel import check_file
from axolotl_multiturn.reports.summary import percent, recall

DATASET_SECTIONS = ("datasets", "test_datasets")
LOG = get_logger("axolotl_multiturn.integration.plugin")


class MultiTurnArgs(BaseModel):
    """The `multiturn:` block; its shape is `schemas/multiturn-config.schema.json`."""

    multiturn: dict[str, Any] | None = None

    @field_validator("multiturn")
    @classmethod
    def _valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        validate_block(value, "multiturn")
        return value


def check_dataset_keys(entry: dict[str, Any], where: str) -> None:
    """A dataset entry of our type may hold axolotl's dataset keys and ours, nothing else."""
    known = set(SFTDataset.model_fields) | set(option_keys())
    for key in entry:
        if key not in known:
            raise ConfigError(
                f"{where}.{key}: unknown key for type {DATASET_TYPE}{suggest(key, known)} "
                f"(our keys: {', '.join(option_keys())})"
            )


def prepare_config(cfg: dict[str, Any]) -> None:
    """Validate our block and carry each dataset entry's options; lint local JSONL files and have axolotl
    read them as text lines; with `rl:`, name the trainer that takes exact pairs. Mutates the raw config in
    place."""
    block = validate_block(cfg.get("multiturn"), "multiturn")
    pairs = rl.check_config(cfg, DATASET_SECTIONS)
    if pairs:
        cfg["trainer_cls"] = rl.TRAINERS[rl.method(cfg)]
    for section in DATASET_SECTIONS:
        for i, entry in enumerate(cfg.get(section) or []):
            if isinstance(entry, dict) and entry.get("type") == DATASET_TYPE:
                where = f"{section}[{i}]"
                check_dataset_keys(entry, where)
                carry(entry, block, where)
                local_jsonl(entry, resolve(cfg, entry, where).preflight, pairs)


#: Findings a preflight error shows before it says how many more there are.
PREFLIGHT_SHOWN = 10


def local_jsonl(entry: dict[str, Any], preflight: bool, pairs: bool = False) -> None:
    """A local JSONL file of our type: lint it (with `preflight`), then have axolotl load it as text lines.
    A file of preference pairs in a config that trains conversations (no `rl:`) is refused at once: its
    lines are valid, and each row would fail alone.

    datasets' JSON loader infers one type per column; where a field's type varies across rows (a content
    that is a string here and a list of parts there, arguments as strings and objects) it decodes strings
    that look like JSON (`"2"` becomes 2). Read as text, each line is parsed by the strategy as written,
    and errors name its line."""
    path = Path(str(entry.get("path") or ""))
    if entry.get("ds_type") or entry.get("data_files") or path.suffix != ".jsonl" or not path.is_file():
        return
    if not path.stat().st_size:  # datasets cannot load it at all, preflight or not
        raise ConfigError(f"{path}: the dataset file is empty (MT005); add conversations, one JSON object a line")
    if not pairs and (first := first_pair(path)):
        number, shape = first
        raise ConfigError(
            f"{path}:{number}: this file holds preference pairs ({shape.value} shape), but the config trains "
            "conversations: pairs are trained with `rl: dpo` (or ipo, orpo, simpo) at the top of the config; "
            "or point this entry at a file of conversations"
        )
    if preflight:
        errors = [f for f in check_file(str(path)) if f.severity == "error"]
        if errors:
            shown = "\n".join(
                f"  {f.path}:{f.line}:{f.column or 1}: {f.code} {f.message}" for f in errors[:PREFLIGHT_SHOWN]
            )
            more = f"\n  ... and {len(errors) - PREFLIGHT_SHOWN} more" if len(errors) > PREFLIGHT_SHOWN else ""
            raise ConfigError(
                f"{path}: {len(errors)} error{'s' if len(errors) > 1 else ''} in the dataset "
                f"(run `check-chat-jsonl {path}` for all; multiturn.preflight: false skips this "
                f"check):\n{shown}{more}"
            )
    entry["ds_type"] = "text"


def first_pair(path: Path) -> tuple[int, Shape] | None:
    """(line number, shape) of the file's first object line if it is a preference pair (a file holds one
    kind of line: MT406); None for conversations, or a first line the lint will report."""
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                return None
            shape = shape_of(obj) if isinstance(obj, dict) else None
            return (number, shape) if shape else None
    return None


class MultiTurnPlugin(BasePlugin):
    """`plugins: [axolotl_multiturn.MultiTurnPlugin]`."""

    def get_input_args(self) -> str:
        return "axolotl_multiturn.integration.plugin.MultiTurnArgs"

    def __init__(self) -> None:
        super().__init__()
        self.pair_summaries: list[rl.PairSummary] = []
        # With `rl:`, axolotl validates dataset entries as its DPO entries, which drops every key but path,
        # split, type, data_files, revision and field_*: our options and `ds_type: text` among them. The
        # raw entries (after `prepare_config`) are kept here for `load_datasets`.
        self.raw_entries: dict[str, list[dict[str, Any]]] = {}

    def register(self, cfg: dict[str, Any]) -> None:
        prepare_config(cfg)
        wandb_from_environment(cfg)
        self.raw_entries = {section: [dict(e) for e in cfg.get(section) or []] for section in DATASET_SECTIONS}

    def load_datasets(self, cfg: Any, preprocess: bool = False) -> Any:
        """With `rl:` (dpo, ipo, orpo, simpo) on datasets of our type: the exact pairs (`rl.py`), merged as
        axolotl merges its own preference datasets (`shuffle_merged_datasets`, ... with `seed`), in its
        `TrainDatasetMeta`; None otherwise (axolotl loads the datasets, and our strategy labels SFT rows).
        Each dataset's pairs are kept in `dataset_prepared_path` and read back by later runs."""
        if not rl.check_config(cfg, DATASET_SECTIONS):
            return None
        from axolotl.common.datasets import TrainDatasetMeta
        from axolotl.loaders import load_tokenizer
        from axolotl.utils.data.shared import create_train_validation_split, merge_datasets

        tokenizer = load_tokenizer(cfg)
        entries = {section: self.entries(cfg, section) for section in DATASET_SECTIONS}
        seen: set[bytes] = set()  # the training pairs, for dataset_exact_deduplication across the splits
        prepared = Path(str(cfg.get("dataset_prepared_path") or DEFAULT_PREPARED))
        parts, self.pair_summaries = rl.load_split(cfg, tokenizer, entries["datasets"], seen, prepared)
        train, evaluation = merge_datasets(parts, cfg), None
        if entries["test_datasets"]:
            parts, summaries = rl.load_split(cfg, tokenizer, entries["test_datasets"], seen, prepared)
            evaluation = merge_datasets(parts, cfg)
            self.pair_summaries += summaries
        elif cfg.get("val_set_size"):
            train, evaluation = create_train_validation_split(train, cfg, cfg["val_set_size"])
        return TrainDatasetMeta(train, evaluation, rl.total_steps(cfg, len(train)))

    def get_collator_cls_and_kwargs(self, cfg: Any, is_eval: bool = False) -> tuple[type, dict[str, Any]] | None:
        """A vision-language model trained on our rows: our collator (their pixel values with them); None
        otherwise (axolotl's own)."""
        ours = any(e.get("type") == DATASET_TYPE for section in DATASET_SECTIONS for e in cfg.get(section) or [])
        if not (ours and cfg.get("is_multimodal")) or cfg.get("rl"):
            return None
        if cfg.get("sample_packing"):
            raise ConfigError(
                "sample_packing with a vision-language model: packed rows would mix their images; set "
                "sample_packing: false"
            )
        from axolotl_multiturn.integration.collator import VisionCollator

        return VisionCollator, {}

    def entries(self, cfg: Any, section: str) -> list[Any]:
        """A section's dataset entries as this plugin registered them (raw: with our options and `ds_type`),
        or the validated ones where it has not seen the config."""
        from axolotl.utils.dict import DictDefault

        return [DictDefault(e) for e in self.raw_entries.get(section) or cfg.get(section) or []]

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[TrainerCallback]:
        """Log what trains, per dataset of our type, to axolotl's log and to the trainer's reporting
        integrations (W&B, TensorBoard, ...) when training begins: the summaries preprocessing counted
        (never a second pass over the data)."""
        if self.pair_summaries:
            metrics: dict[str, float] = {}
            for summary in self.pair_summaries:
                for key, value in summary.metrics().items():
                    metrics[key] = metrics.get(key, 0.0) + value
            return [SummaryCallback(trainer, metrics)]
        metrics: dict[str, float] = {}
        missing = []
        for ds_cfg in cfg.get("datasets") or []:
            if ds_cfg.get("type") == DATASET_TYPE and resolve(cfg, ds_cfg, str(ds_cfg.get("path"))).log_summary:
                key = summary_key(trainer.processing_class, cfg, ds_cfg)
                summary = recall(key, summary_directory(cfg, ds_cfg))
                if summary is None:
                    missing.append(str(ds_cfg.get("path")))
                    continue
                for line in summary.lines():
                    LOG.info("axolotl_multiturn: %s", line)
                metrics |= summary.metrics()
        if missing:
            LOG.info("axolotl_multiturn: %s", prepared_line(trainer.train_dataset, missing))
        return [SummaryCallback(trainer, metrics)] if metrics else []


def prepared_line(dataset: Any, missing: list[str]) -> str:
    """What the prepared training set trains, from its label column, for datasets whose summary was not
    saved with it (prepared by an older version, or elsewhere)."""
    labels = dataset.with_format("arrow")[:]["labels"] if dataset is not None else None
    flat = labels.combine_chunks().flatten().to_numpy() if labels is not None else np.zeros(0, dtype=np.int64)
    trained = int((flat != IGNORE_INDEX).sum())
    return (
        f"no summary was saved with the prepared dataset of {', '.join(missing)} (prepared by another "
        f"version; delete the prepared dataset to count it again). The training set as prepared: "
        f"{len(labels) if labels is not None else 0:,} rows, {len(flat):,} tokens, {trained:,} trained "
        f"({percent(trained, len(flat))})"
    )


class SummaryCallback(TrainerCallback):
    """Sends the summary's numbers through `trainer.log` once, as training begins."""

    def __init__(self, trainer: Any, metrics: dict[str, float]):
        self.trainer = trainer
        self.metrics = metrics

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer.log(dict(self.metrics))


def raw_entries(cfg: Any, section: str = "datasets") -> list[Any]:
    """A section's dataset entries as axolotl's registered plugin kept them (`MultiTurnPlugin.entries`)."""
    from axolotl.integrations.base import PluginManager

    plugins = PluginManager.get_instance().plugins.values()
    plugin = next((p for p in plugins if isinstance(p, MultiTurnPlugin)), None) or MultiTurnPlugin()
    return plugin.entries(cfg, section)


def wandb_from_environment(cfg: dict[str, Any]) -> None:
    """The hosted API's `wandb_api_key`: log to W&B when WANDB_PROJECT and WANDB_API_KEY are set in the
    environment and the config names no project (axolotl turns W&B on by `wandb_project`)."""
    if not cfg.get("wandb_project") and os.environ.get("WANDB_PROJECT") and os.environ.get("WANDB_API_KEY"):
        cfg["wandb_project"] = os.environ["WANDB_PROJECT"]
