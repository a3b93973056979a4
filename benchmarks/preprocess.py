"""Preprocessing speed: axolotl_multiturn.chat against axolotl's built-in `chat_template` (assistant only).

Both strategies run in this process, one after the other, on the same generated data and the same
tokenizer (Qwen2's real vocabulary with the chatml template), through `datasets.map` as axolotl drives
them, single process, caching off. Prints tokens/s for each and the ratio; then time per token of our
strategy alone from 4 to 80 turns (flat means no per-turn re-tokenization).

    python benchmarks/preprocess.py [--rows N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")

import datasets  # noqa: E402
from axolotl.datasets import TokenizedPromptDataset  # noqa: E402
from axolotl.prompt_strategies.chat_template import load as axolotl_chat_template  # noqa: E402
from axolotl.utils.chat_templates import get_chat_template  # noqa: E402
from axolotl.utils.dict import DictDefault  # noqa: E402
from shapes import coqa_shaped, long_chats, reasoning_chats  # noqa: E402

from axolotl_multiturn.chat import load as multiturn_load  # noqa: E402
from axolotl_multiturn.tiny import qwen_tokenizer  # noqa: E402


def ours(tokenizer, sequence_len: int = 1_000_000, parity: str = "expand"):
    cfg = DictDefault({"sequence_len": sequence_len, "multiturn": {"masking": "instruction", "parity": parity}})
    strategy = multiturn_load(tokenizer, cfg, DictDefault({"path": "bench"})).strategy
    return lambda data: TokenizedPromptDataset(strategy, data)


def axolotl_builtin(tokenizer):
    cfg = DictDefault({"sequence_len": 1_000_000, "train_on_inputs": False})
    strategy = axolotl_chat_template(tokenizer, cfg, {"roles_to_train": ["assistant"], "train_on_eos": "turn"})
    return lambda data: TokenizedPromptDataset(strategy, data)


def timed(run, data: datasets.Dataset) -> tuple[float, int]:
    start = time.perf_counter()
    out = run(data)
    seconds = time.perf_counter() - start
    return seconds, sum(len(ids) for ids in out["input_ids"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="CoQA-shaped conversations (default 1000)")
    args = parser.parse_args(argv)
    datasets.disable_caching()
    datasets.logging.disable_progress_bar()
    tokenizer = qwen_tokenizer(chat_template=get_chat_template("chatml"))
    rng = random.Random(0)
    shapes = {"coqa-shaped": coqa_shaped(rng, args.rows), "40-turn": long_chats(rng, max(args.rows // 4, 10), 40)}
    print(f"{'shape':<12} {'strategy':<22} {'rows':>6} {'tokens':>10} {'seconds':>8} {'tokens/s':>10}")
    ratios = {}
    for shape, rows in shapes.items():
        data = datasets.Dataset.from_list(rows)
        speeds = {}
        for name, build in (("axolotl chat_template", axolotl_builtin), ("axolotl_multiturn", ours)):
            seconds, tokens = timed(build(tokenizer), data)
            speeds[name] = tokens / seconds
            print(f"{shape:<12} {name:<22} {len(rows):>6} {tokens:>10,} {seconds:>8.2f} {speeds[name]:>10,.0f}")
        ratios[shape] = speeds["axolotl_multiturn"] / speeds["axolotl chat_template"]
    for shape, ratio in ratios.items():
        print(f"ratio {shape}: axolotl_multiturn is {ratio:.1f}x axolotl chat_template (target >= 3x)")

    print(f"\n{'turns':>5} {'tokens':>10} {'us/token':>9}  (axolotl_multiturn.tokenize_prompt alone, by length)")
    strategy = multiturn_load(tokenizer, DictDefault({"sequence_len": 1_000_000, "multiturn": {"masking": "instruction"}}),
                              DictDefault({"path": "bench"})).strategy
    per_token = {}
    for turns in (4, 10, 20, 40, 80):
        batch = {"messages": [r["messages"] for r in long_chats(random.Random(turns), 4800 // turns, turns)]}
        start = time.perf_counter()
        tokens = sum(len(ids) for ids in strategy.tokenize_prompt(batch)["input_ids"])
        per_token[turns] = (time.perf_counter() - start) / tokens * 1e6
        print(f"{turns:>5} {tokens:>10,} {per_token[turns]:>9.2f}")
    print(f"80 turns vs 4 turns, time per token: {per_token[80] / per_token[4]:.2f}x (flat = 1.0)")

    data = datasets.Dataset.from_list(shapes["coqa-shaped"])
    fitting = sorted(len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False))
                     for r in shapes["coqa-shaped"])
    limit = fitting[len(fitting) * 2 // 3]
    seconds, tokens = timed(ours(tokenizer, limit), data)
    print(f"\noverflow split, sequence_len={limit} (a third of the CoQA-shaped conversations longer): "
          f"{tokens:,} tokens in windows, {tokens / seconds:,.0f} tokens/s")

    qwen3 = qwen_tokenizer(chat_template=get_chat_template("qwen3"))
    data = datasets.Dataset.from_list(reasoning_chats(random.Random(3), max(args.rows // 4, 10), 6))
    print(f"\nQwen3 reasoning shape ({len(data)} conversations, 6 turns, a trace on every answer), parity:")
    print(f"{'parity':<8} {'rows':>6} {'tokens':>10} {'seconds':>8} {'tokens/s':>10}")
    measured = {}
    for parity in ("off", "expand"):
        start = time.perf_counter()
        out = ours(qwen3, parity=parity)(data)
        seconds = time.perf_counter() - start
        measured[parity] = (len(out), sum(len(ids) for ids in out["input_ids"]))
        print(f"{parity:<8} {measured[parity][0]:>6} {measured[parity][1]:>10,} {seconds:>8.2f} "
              f"{measured[parity][1] / seconds:>10,.0f}")
    print(f"expand adds {measured['expand'][0] - measured['off'][0]:,} rows and "
          f"{measured['expand'][1] - measured['off'][1]:,} tokens "
          f"({measured['expand'][1] / measured['off'][1]:.2f}x the tokens of off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
