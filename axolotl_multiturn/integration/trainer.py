"""axolotl's preference trainers, fed exact pairs: they keep the pairs' token ids and train exactly their
marked completion tokens.

The dataset already holds the ids (`rl.PairColumn`, from the plugin's `load_datasets`). TRL's
`DPOTrainer._prepare_dataset` would re-tokenize the prompt and prompt + completion strings (and slice by the
prompt's length), and its `DataCollatorForPreference` trains every completion token: here `_prepare_dataset`
keeps the ids, and the collator's `completion_mask` follows each pair's own mask (a masked reasoning trace
stays out of the log-probabilities). TRL's ORPO and CPO (SimPO) trainers tokenize each row in `tokenize_row`
(prompt and answer strings, a BOS and an EOS added where missing, answers cut to `max_length`): here
`tokenize_row` writes the same layout from the ids, the labels -100 outside the trained tokens. The plugin
names these classes through axolotl's `trainer_cls` (axolotl's RL builder hands a plugin's `get_trainer_cls`
no model arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from axolotl.core.trainers.dpo.trainer import AxolotlDPOTrainer
from axolotl.core.trainers.trl import AxolotlCPOTrainer, AxolotlORPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from axolotl_multiturn.engine.encode import IGNORE_INDEX
from axolotl_multiturn.integration.rl import HALVES, PairColumn

COLUMNS = [c.value for c in PairColumn]


def require_pairs(columns: list[str] | None, trainer: str, dataset_name: str) -> None:
    missing = [c for c in COLUMNS if c not in (columns or [])]
    if missing:
        raise ValueError(
            f"{dataset_name} dataset: no {', '.join(missing)} columns: {trainer} trains the exact pairs the "
            "axolotl_multiturn plugin loads (plugins: [axolotl_multiturn.MultiTurnPlugin] and datasets of type "
            "axolotl_multiturn.chat)"
        )


def require_decoder_only(trainer: Any) -> None:
    """Exact pairs are prompt + completion in one sequence; TRL's ORPO and CPO trainers have a layout of
    their own for an encoder-decoder model, which reads the prompt apart (TRL's DPO trainer has none)."""
    if getattr(trainer, "is_encoder_decoder", False):
        raise ValueError(
            f"{type(trainer).__name__}: exact pairs train decoder-only models (prompt and completion in one "
            "sequence); this model is an encoder-decoder"
        )


def tokenized_row(feature: dict[str, Any]) -> dict[str, list[int]]:
    """An exact pair in the layout of TRL's ORPO and CPO `tokenize_row`: prompt, and prompt + each answer
    with labels (-100 on the prompt and on masked answer tokens)."""
    prompt = list(feature[PairColumn.PROMPT_IDS.value])
    out = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for half, ids, mask in HALVES:
        answer = list(feature[ids.value])
        out[f"{half}_input_ids"] = prompt + answer
        out[f"{half}_attention_mask"] = [1] * (len(prompt) + len(answer))
        out[f"{half}_labels"] = [IGNORE_INDEX] * len(prompt) + [
            token if trained else IGNORE_INDEX for token, trained in zip(answer, feature[mask.value])
        ]
    return out


@dataclass
class ExactPairCollator(DataCollatorForPreference):
    """TRL's preference batch (chosen rows, then rejected rows: `input_ids`, `attention_mask`,
    `completion_mask`), with `completion_mask` set from the pairs' masks. The pairs fit `sequence_len`
    already (the loader counted and left out the rest), so nothing is truncated here."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        mask = torch.zeros_like(batch["completion_mask"])
        for half, (_, ids, own) in enumerate(HALVES):
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
        require_pairs(dataset.column_names, type(self).__name__, dataset_name)
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(dict.fromkeys([*self._signature_columns, *COLUMNS]))


class ExactRows:
    """`tokenize_row` of TRL's ORPO and CPO trainers, for exact pairs (mixed in before the trainer)."""

    def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, list[int]]:
        require_pairs(list(feature), type(self).__name__, "a")
        require_decoder_only(self)
        return tokenized_row(feature)


class ExactPairsORPOTrainer(ExactRows, AxolotlORPOTrainer):
    """`AxolotlORPOTrainer` on exact pairs: ORPO's odds-ratio loss and its NLL on the chosen labels."""


class ExactPairsCPOTrainer(ExactRows, AxolotlCPOTrainer):
    """`AxolotlCPOTrainer` on exact pairs: SimPO (axolotl's `rl: simpo`), with CPO's NLL by `cpo_alpha`."""
