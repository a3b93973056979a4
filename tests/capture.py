"""A test plugin for `axolotl train`: writes each batch the trainer computes a loss on to the JSON Lines file
named by $CAPTURE_BATCHES (the ids and masks that reach the model), then lets the trainer go on."""

from __future__ import annotations

import json
import os
from typing import Any

from axolotl.integrations.base import BasePlugin

KEYS = ("input_ids", "attention_mask", "completion_mask")


class CapturePlugin(BasePlugin):
    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        compute_loss = trainer.compute_loss

        def capture(model: Any, inputs: dict, *args: Any, **kwargs: Any) -> Any:
            with open(os.environ["CAPTURE_BATCHES"], "a", encoding="utf-8") as out:
                out.write(json.dumps({k: inputs[k].tolist() for k in KEYS if k in inputs}) + "\n")
            return compute_loss(model, inputs, *args, **kwargs)

        trainer.compute_loss = capture
