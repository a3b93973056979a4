"""axolotl's DPO trainer, fed exact pairs: it keeps the pairs' token ids and trains exactly their marked
completion tokens.

TRL's `DPOTrainer._prepare_dataset` re-tokenizes the prompt and prompt + completion strings (and slices by
the prompt's length), and its `DataCollatorForPreference` trains every completion token. Here the dataset
already holds the ids (`rl.PairColumn`, from the plugin's `load_datasets`), so `_prepare_dataset` keeps
them, and the collator's `completion_mask` follows each pair's own mask (a masked reasoning trace stays out
of the log-probabilities). The plugin names this class through axolotl's `trainer_cls` (axolotl's RL builder
hands a plugin's `get_trainer_cls` no model arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from axolotl.core.trainers.dpo.trainer import AxolotlDPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from axolotl_multiturn.rl import PairColumn

COLUMNS = [c.value for c in PairColumn]


@dataclass
class ExactPairCollator(DataCollatorForPreference):
    """TRL's preference batch (chosen rows, then rejected rows: `input_ids`, `attention_mask`,
    `completion_mask`), with `completion_mask` set from the pairs' masks. The pairs fit `sequence_len`
    already (the loader counted and left out the rest), so nothing is truncated here."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        mask = torch.zeros_like(batch["completion_mask"])
        halves = ((PairColumn.CHOSEN_IDS, PairColumn.CHOSEN_MASK), (PairColumn.REJECTED_IDS, PairColumn.REJECTED_MASK))
        for half, (ids, own) in enumerate(halves):
            for row, example in enumerate(examples):
                start = len(example[PairColumn.PROMPT_IDS.value])
                if len(example[own.value]) != len(example[ids.value]):
                    raise ValueError(f"pair {example.get(PairColumn.SOURCE.value)}: {own.value} and {ids.value} differ")
                flags = torch.as_tensor(example[own.value], dtype=mask.dtype)
                mask[half * len(examples) + row, start : start + len(flags)] = flags
        batch["completion_mask"] = mask
        return batch


class ExactPairsDPOTrainer(AxolotlDPOTrainer):
    """`AxolotlDPOTrainer` on exact pairs: DPO and its loss types, IPO."""

    def __init__(self, *args: Any, data_collator: Any = None, **kwargs: Any):
        training_args = kwargs["args"]
        tokenizer = kwargs.get("processing_class") or kwargs.get("tokenizer")
        pad = training_args.pad_token or tokenizer.pad_token or tokenizer.eos_token
        collator = ExactPairCollator(
            pad_token_id=tokenizer.convert_tokens_to_ids(pad),
            max_length=None,
            pad_to_multiple_of=training_args.pad_to_multiple_of or getattr(data_collator, "pad_to_multiple_of", None),
        )
        super().__init__(*args, data_collator=collator, **kwargs)

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        missing = [c for c in COLUMNS if c not in (dataset.column_names or [])]
        if missing:
            raise ValueError(
                f"{dataset_name} dataset: no {', '.join(missing)} columns: {type(self).__name__} trains the exact "
                "pairs the axolotl_multiturn plugin loads (plugins: [axolotl_multiturn.MultiTurnPlugin] and "
                "datasets of type axolotl_multiturn.chat)"
            )
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(dict.fromkeys([*self._signature_columns, *COLUMNS]))
