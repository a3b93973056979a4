"""One rank of a multi-process axolotl run on the CPU, for `torchrun --nproc_per_node N tests/ranks.py CONFIG OUT`.

`axolotl train --launcher torchrun` cannot run on a machine without accelerators: axolotl's config
normalization gives each rank `device_map = {"": LOCAL_RANK}`, an accelerator index. This runs what
`axolotl train` runs (`axolotl.cli.train.do_train`: the config with the plugins' `register`, the dataset
entry point, then `axolotl.train.train`) with that setting cleared (and, on a CUDA build of torch with no
GPU, axolotl's NCCL peer-to-peer probe answered "no" instead of asking the driver), over gloo. Each rank
writes the digest of the rows it was given to OUT/rank-N.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def main(config: str, out: str) -> None:
    import torch
    from axolotl.cli.config import load_cfg
    from axolotl.common.datasets import load_datasets
    from axolotl.train import train
    from axolotl.utils import trainer as axolotl_trainer

    if not torch.cuda.is_available():  # a CUDA build of torch without a GPU (the Python 3.12 lane): axolotl's
        # NCCL peer-to-peer probe would ask the CUDA driver and fail; gloo has no use for its answer
        axolotl_trainer.check_cuda_p2p_ib_support = lambda: False
    cfg = load_cfg(config)
    cfg.device_map = None  # CPU ranks: see the module docstring
    meta = load_datasets(cfg=cfg)
    rows = meta.train_dataset.with_format(None)[:]
    digest = hashlib.sha256(json.dumps([rows["input_ids"], rows["labels"]]).encode()).hexdigest()
    _, _, trainer = train(cfg=cfg, dataset_meta=meta)
    rank = int(os.environ.get("RANK", 0))
    Path(out, f"rank-{rank}.json").write_text(json.dumps({
        "rows": len(rows["input_ids"]), "digest": digest,
        "sorted_rows": sorted([ids, labels] for ids, labels in zip(rows["input_ids"], rows["labels"])), "world_size": trainer.args.world_size,
        "steps": trainer.state.global_step, "backend": trainer.args.ddp_backend or "",
        "loss": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
