"""Batches for a vision-language model: our rows (ids and labels, padded as axolotl pads text rows) with the
processor's outputs for their images (`engine.vision.pack`): per-token outputs (Gemma 3's `token_type_ids`)
padded like the ids, image outputs (pixel values, grids) concatenated in row order, as the processor batches
them. axolotl's own multimodal collator would re-render and re-mask the conversations by its rules; the
plugin hands axolotl this one instead (`get_collator_cls_and_kwargs`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from axolotl.utils.collators import DataCollatorForSeq2Seq

from axolotl_multiturn.engine.vision import TOKEN, unpack
from axolotl_multiturn.engine.vocabulary import VISION_COLUMN


class VisionCollator(DataCollatorForSeq2Seq):
    """axolotl's padding collator, plus the rows' image inputs."""

    def __call__(self, features: Sequence[Mapping[str, Any]], return_tensors: str | None = None) -> dict[str, Any]:
        packed = [unpack(f.get(VISION_COLUMN)) for f in features]
        batch = super().__call__([{k: v for k, v in f.items() if k != VISION_COLUMN} for f in features])
        width = batch["input_ids"].shape[1]
        left = self.tokenizer.padding_side == "left"
        for key in dict.fromkeys(k for row in packed for k in row if k.startswith(TOKEN)):
            padded = np.zeros((len(features), width), dtype=np.int64)
            for n, (row, feature) in enumerate(zip(packed, features)):
                values = row.get(key, np.zeros(len(feature["input_ids"]), dtype=np.int64))
                if left:
                    padded[n, width - len(values) :] = values
                else:
                    padded[n, : len(values)] = values
            batch[key.removeprefix(TOKEN)] = torch.from_numpy(padded)
        for key in dict.fromkeys(k for row in packed for k in row if not k.startswith(TOKEN)):
            batch[key] = torch.from_numpy(np.concatenate([row[key] for row in packed if key in row]))
        return batch
