"""Held-out pairwise accuracy of a preference config: on each held-out pair, does the model give its chosen
completion a higher log-probability than its rejected one?

The pairs are the exact ids the DPO trainer trains on (`rl.load_split`: the prompt as the template renders
it for generation, each completion through its stop token), so the score is of what training optimised;
a completion's log-probability sums its trained tokens, each predicted from the prompt and the tokens
before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axolotl_multiturn import DATASET_TYPE
from axolotl_multiturn.evaluation.cache import Prefix
from axolotl_multiturn.evaluation.heldout import EvalError, load_model


@dataclass(frozen=True)
class PairScores:
    pairs: int
    accuracy: float  # share of pairs whose chosen completion is more likely than the rejected one
    margin: float  # mean log-probability of chosen minus rejected, in nats


def completion_logprob(model: Any, prefix: Prefix, prompt: list[int], completion: list[int], mask: list[int]) -> float:
    """Sum of log p(token | everything before it) over the completion's trained tokens; the prompt read into
    `prefix` (a held-out story's pairs extend one another's prompts: each prompt token is read once)."""
    import copy

    import torch

    prefix.read(model, prompt)
    ids = torch.tensor([prompt[len(prefix.ids) :] + completion[:-1]])
    with torch.no_grad():
        logits = model(input_ids=ids, past_key_values=copy.deepcopy(prefix.cache), use_cache=True).logits[0].float()
    logprobs = torch.log_softmax(logits[-len(completion) :], dim=-1).gather(1, torch.tensor(completion)[:, None])[:, 0]
    return float((logprobs * torch.tensor(mask, dtype=logprobs.dtype)).sum())


def pairwise(config: str | Path, model: str | None = None, data: str | None = None, console: Any = None) -> PairScores:
    """The held-out pairs of an `rl:` config (`test_datasets`, or the pairs file `data`), scored with `model`
    (default its base)."""
    from axolotl.cli.config import load_cfg
    from axolotl.loaders import load_tokenizer
    from axolotl.utils.dict import DictDefault
    from rich.console import Console
    from rich.progress import track

    from axolotl_multiturn.integration.plugin import raw_entries
    from axolotl_multiturn.integration.rl import PairColumn, load_split

    console = console or Console(highlight=False, stderr=True)
    cfg = load_cfg(str(config))
    if not cfg.get("rl"):
        raise EvalError(f"{config}: pairwise accuracy needs a preference config (`rl: dpo` and pairs)")
    entries = [DictDefault(path=data, type=DATASET_TYPE)] if data else raw_entries(cfg, "test_datasets")
    if not entries:
        raise EvalError(
            f"{config}: no held-out pairs: pass --data PAIRS.jsonl or add a `test_datasets:` entry of pairs never "
            "trained on"
        )
    tokenizer = load_tokenizer(cfg)
    parts, _ = load_split(cfg, tokenizer, entries)
    loaded = load_model(cfg, model)
    wins, margins, prefix = 0, [], Prefix()
    rows = [row for part in parts for row in part]
    for row in track(rows, description=f"pairs ({model or cfg.base_model})", console=console):
        prompt = row[PairColumn.PROMPT_IDS.value]
        chosen, rejected = (
            completion_logprob(loaded, prefix, prompt, row[ids.value], row[mask.value])
            for ids, mask in (
                (PairColumn.CHOSEN_IDS, PairColumn.CHOSEN_MASK),
                (PairColumn.REJECTED_IDS, PairColumn.REJECTED_MASK),
            )
        )
        wins += chosen > rejected
        margins.append(chosen - rejected)
    return PairScores(len(rows), wins / max(1, len(rows)), sum(margins) / max(1, len(margins)))
