"""Two ranks on the CPU (torchrun, gloo): what a user who outgrows one GPU runs, minus the GPUs.

`axolotl train CONFIG --launcher torchrun -- --nproc_per_node 2` cannot start on a machine without
accelerators (axolotl gives each rank an accelerator index as its device map), so `tests/ranks.py` runs what
`axolotl train` runs on each rank with that setting cleared (see its docstring). Asserted: preprocessing
happens once, both ranks train on the same rows (the strategy's own, in one process), real DDP steps run,
the training-start summary is logged once, and bad data ends every rank with the one clear error within a
minute, with no rank left waiting at a barrier.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from test_end_to_end import write_config

#: Two ranks a test, on the machine's cores: one such test at a time.
pytestmark = [pytest.mark.axolotl, pytest.mark.slow, pytest.mark.xdist_group("ranks")]
ROWS = [[{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]
        for i in range(16)]
#: The first frame of a progress bar of our one labelling pass (datasets' map, in the process doing it).
PASS_STARTS = re.compile(r"axolotl_multiturn: tokenizing[^:]*:\s+0%")


def torchrun(config: Path, out: Path, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "AXOLOTL_DO_NOT_TRACK": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "ACCELERATE_USE_CPU": "true"}  # DDP over gloo: the Trainer's process group on CPU ranks
    out.mkdir()
    start = time.monotonic()
    run = subprocess.run([str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node", "2", str(ROOT / "tests" / "ranks.py"),
                          str(config), str(out)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return run, time.monotonic() - start


def test_two_ranks_preprocess_once_and_train_the_same_rows(tmp_path: Path, tiny_model: Path) -> None:
    from axolotl.utils.dict import DictDefault
    from datasets import Dataset
    from transformers import AutoTokenizer

    from axolotl_multiturn.chat import load

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in ROWS))
    config = write_config(tmp_path, tiny_model, data, max_steps=2, micro_batch_size=2,
                          multiturn={"masking": "instruction"})
    run, _ = torchrun(config, tmp_path / "ranks", tmp_path)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]

    assert len(PASS_STARTS.findall(log)) == 1  # rank 0 labels; rank 1 loads the prepared dataset
    assert log.count(f"axolotl_multiturn: {data}: 16 conversations, ") == 1  # the summary, on the main rank
    ranks = [json.loads((tmp_path / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert [(r["world_size"], r["steps"]) for r in ranks] == [(2, 2), (2, 2)]
    assert ranks[0]["loss"] == ranks[1]["loss"]  # one DDP run, not two single-process ones
    expected = load(AutoTokenizer.from_pretrained(tiny_model), DictDefault({"multiturn": {"masking": "instruction"}}),
                    DictDefault({"path": str(data)})).wrap_dataset(Dataset.from_list([{"messages": r} for r in ROWS]))
    assert ranks[0]["rows"] == len(expected) == len(ROWS)
    assert ranks[0]["sorted_rows"] == sorted([ids, labels] for ids, labels in zip(expected["input_ids"],
                                                                                   expected["labels"]))


@pytest.mark.parametrize("failure", ["preflight", "row"])
def test_bad_data_ends_every_rank_with_the_one_error(tmp_path: Path, tiny_model: Path, failure: str) -> None:
    """`preflight`: the plugin's lint fails at config load, on every rank before any barrier. `row`: the
    lint is off and rank 0 meets the bad row while labelling, with rank 1 waiting at axolotl's barrier
    for the prepared dataset: torchrun must end it, not leave it waiting."""
    data = tmp_path / "train.jsonl"
    bad = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "again"}]})
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in ROWS[:3]) + bad + "\n")
    config = write_config(tmp_path, tiny_model, data, max_steps=2,
                          multiturn={"masking": "instruction", "preflight": failure == "preflight"})
    run, seconds = torchrun(config, tmp_path / "ranks", tmp_path)
    log = run.stdout + run.stderr
    # Ended, not left waiting: a rank held at the barrier waits for the process group's timeout (30 min; the
    # run is killed at 300 s). Two ranks' start-up is about 40 s here, 76 s on a loaded machine (session 10).
    assert run.returncode != 0 and seconds < 180, (seconds, log[-3000:])
    if failure == "preflight":
        assert f"{data}: 2 errors in the dataset (run `check-chat-jsonl {data}` for all" in log
        assert f"{data}:4:" in log and "MT203" in log and "MT204" in log
    else:
        assert f"{data} line 4: MT203 got 'user' after 'user'" in log
    assert not list((tmp_path / "ranks").iterdir())  # no rank got as far as training
