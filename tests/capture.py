"""A test plugin for `axolotl train`: writes each batch the trainer computes a loss on to the JSON Lines file
named by $CAPTURE_BATCHES (every tensor of it: the ids, masks and labels that reach the model), then lets the
trainer go on. With $CAPTURE_ONLY set, the loss is a zero that trains nothing: for tests about what reaches
the model, not what it learns (a DPO step on Qwen2's 151k-word vocabulary spends seconds on logits that such a
test never reads; the behaviour tests compute every loss)."""

from __future__ import annotations

import json
import os
from typing import Any

from axolotl.integrations.base import BasePlugin


class CapturePlugin(BasePlugin):
    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        compute_loss = trainer.compute_loss

        def capture(model: Any, inputs: dict, *args: Any, **kwargs: Any) -> Any:
            with open(os.environ["CAPTURE_BATCHES"], "a", encoding="utf-8") as out:
                out.write(json.dumps({k: v.tolist() for k, v in inputs.items() if hasattr(v, "tolist")}) + "\n")
            if os.environ.get("CAPTURE_ONLY"):
                import torch

                return torch.zeros((), requires_grad=True)
            return compute_loss(model, inputs, *args, **kwargs)

        trainer.compute_loss = capture
