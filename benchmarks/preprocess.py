"""Preprocessing speed: axolotl_multiturn.chat against axolotl's built-in `chat_template` (assistant only)
and against the floor, the work no exact strategy can skip.

All run in this process, one after the other, on the same generated data and the same tokenizer (Qwen2's
real vocabulary with the chatml template), through `datasets.map` as axolotl drives them (ours through
`wrap_dataset`, axolotl's through its `TokenizedPromptDataset`), caching off. The floor is
`apply_chat_template(tokenize=False)` per conversation plus one batched fast-tokenizer call with offsets,
through the same `datasets.map`. Then: `dataset_num_proc` 2 against 1 (and the default, in-process), peak
memory (RSS) of preprocessing 10k and 100k conversations read from a JSONL file (each in a process of its
own), time per token from 4 to 80 turns, overflow split, and the rows and tokens `parity: expand` adds on a
Qwen3 reasoning shape.

    python benchmarks/preprocess.py [--rows N] [--rss-rows N ...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
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
from axolotl_multiturn.models.tiny import qwen_tokenizer  # noqa: E402

TARGET_AXOLOTL, TARGET_FLOOR, TARGET_PROC = 6.0, 0.6, 1.7


def ours(tokenizer, sequence_len: int = 1_000_000, parity: str = "expand", num_proc: int | None = None):
    cfg = DictDefault({"sequence_len": sequence_len, "multiturn": {"masking": "instruction", "parity": parity}})
    wrapper = multiturn_load(tokenizer, cfg, DictDefault({"path": "bench"}))
    return lambda data: wrapper.wrap_dataset(data, process_count=num_proc)


def axolotl_builtin(tokenizer):
    cfg = DictDefault({"sequence_len": 1_000_000, "train_on_inputs": False})
    strategy = axolotl_chat_template(tokenizer, cfg, {"roles_to_train": ["assistant"], "train_on_eos": "turn"})
    return lambda data: TokenizedPromptDataset(strategy, data)


def floor(tokenizer):
    """Render each conversation, tokenize the batch once with offsets: what any exact strategy must do."""

    def render_and_tokenize(batch):
        texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in batch["messages"]]
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": encoded["input_ids"],
        }

    return lambda data: data.map(render_and_tokenize, batched=True, batch_size=1000, remove_columns=data.column_names)


def timed(run, data: datasets.Dataset) -> tuple[float, int]:
    start = time.perf_counter()
    out = run(data)
    seconds = time.perf_counter() - start
    return seconds, sum(len(ids) for ids in out["input_ids"])


RSS_CHILD = """
import sys, threading, time, datasets
from axolotl.utils.dict import DictDefault
from axolotl_multiturn.chat import load
from axolotl_multiturn.models.tiny import qwen_tokenizer
from axolotl.utils.chat_templates import get_chat_template

def rss():
    \"\"\"(anonymous, file-backed) resident memory in MiB: a memory-mapped Arrow file's pages count as file-backed
    once read, and the kernel takes them back under pressure.\"\"\"
    with open("/proc/self/status") as stream:
        fields = dict(line.split(":", 1) for line in stream)
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile"))

peak = [0.0, 0.0]
def sample():
    while True:
        peak[:] = [max(p, now) for p, now in zip(peak, rss())]
        time.sleep(0.02)

datasets.disable_caching(); datasets.logging.disable_progress_bar()
tokenizer = qwen_tokenizer(chat_template=get_chat_template("chatml"))
wrapper = load(tokenizer, DictDefault({"sequence_len": 1_000_000, "multiturn": {"masking": "instruction"}}),
               DictDefault({"path": sys.argv[1]}))
raw = datasets.load_dataset("text", data_files=sys.argv[1], split="train")
before = rss()
threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
out = wrapper.wrap_dataset(raw)
sample_now = rss()
print(len(out), time.perf_counter() - start, before[0], max(peak[0], sample_now[0]), max(peak[1], sample_now[1]))
"""


def peak_rss(rows: int, tmp: Path) -> tuple[int, float, float, float, float]:
    """(training rows, seconds, anonymous RSS before and at its peak during preprocessing, and the peak of
    file-backed RSS, in MiB) of `rows` CoQA-shaped conversations read from a JSONL file, in a fresh process
    (sampled every 20 ms)."""
    path = tmp / f"coqa-{rows}.jsonl"
    rng = random.Random(rows)
    with open(path, "w", encoding="utf-8") as stream:
        for start in range(0, rows, 1000):
            stream.writelines(json.dumps(r) + "\n" for r in coqa_shaped(rng, min(1000, rows - start)))
    result = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(path)], capture_output=True, text=True, cwd=tmp, check=False
    )
    if result.returncode:
        raise SystemExit(f"RSS run failed: {result.stderr[-3000:]}")
    count, seconds, before, peak, mapped = result.stdout.split()[-5:]
    path.unlink()
    return int(count), float(seconds), float(before), float(peak), float(mapped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="CoQA-shaped conversations (default 2000)")
    parser.add_argument(
        "--rss-rows",
        type=int,
        nargs="*",
        default=[10_000, 100_000],
        help="conversation counts whose peak memory is measured (default 10000 100000)",
    )
    args = parser.parse_args(argv)
    datasets.disable_caching()
    datasets.logging.disable_progress_bar()
    tokenizer = qwen_tokenizer(chat_template=get_chat_template("chatml"))
    rng = random.Random(0)
    shapes = {"coqa-shaped": coqa_shaped(rng, args.rows), "40-turn": long_chats(rng, max(args.rows // 10, 10), 40)}
    print(f"{'shape':<12} {'run':<22} {'rows':>6} {'tokens':>10} {'seconds':>8} {'tokens/s':>10}")
    results = {}
    for shape, rows in shapes.items():
        data = datasets.Dataset.from_list(rows)
        speeds = {}
        for name, build in (("axolotl chat_template", axolotl_builtin), ("axolotl_multiturn", ours), ("floor", floor)):
            seconds, tokens = timed(build(tokenizer), data)
            speeds[name] = tokens / seconds
            print(f"{shape:<12} {name:<22} {len(rows):>6} {tokens:>10,} {seconds:>8.2f} {speeds[name]:>10,.0f}")
        results[shape] = speeds
    print("\n| shape | axolotl chat_template | ours | ratio | floor | ours / floor |\n|---|---|---|---|---|---|")
    met = True
    for shape, speed in results.items():
        base, mine, best = speed["axolotl chat_template"], speed["axolotl_multiturn"], speed["floor"]
        met &= mine / base >= TARGET_AXOLOTL and mine / best >= TARGET_FLOOR
        print(
            f"| {shape} | {base / 1e3:,.0f}k tok/s | {mine / 1e3:,.0f}k tok/s | {mine / base:.1f}x | "
            f"{best / 1e3:,.0f}k tok/s | {mine / best:.2f} |"
        )
    print(
        f"targets (>= {TARGET_AXOLOTL:.0f}x axolotl and >= {TARGET_FLOOR} of the floor on both shapes): "
        f"{'met' if met else 'NOT met'}"
    )

    data = datasets.Dataset.from_list(coqa_shaped(random.Random(1), 4 * args.rows))
    default, _ = timed(ours(tokenizer), data)
    one, _ = timed(ours(tokenizer, num_proc=1), data)
    two, _ = timed(ours(tokenizer, num_proc=2), data)
    print(
        f"\ndataset_num_proc on {len(data):,} coqa-shaped conversations ({os.cpu_count()} cores): 1 worker "
        f"{one:.2f} s, 2 workers {two:.2f} s: {one / two:.2f}x (target >= {TARGET_PROC}x: "
        f"{'met' if one / two >= TARGET_PROC else 'NOT met'}); the default in-process map {default:.2f} s "
        f"({default / two:.2f}x): there the Rust tokenizer's own threads use the second core, which datasets "
        "turns off in its workers"
    )
    with tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for rows in args.rss_rows:
            count, seconds, before, peaks[rows], mapped = peak_rss(rows, Path(tmp))
            print(
                f"RSS: {rows:,} coqa-shaped conversations from JSONL: anonymous {before:,.0f} MiB before, peak "
                f"{peaks[rows]:,.0f} MiB while preprocessing; file-backed (memory-mapped Arrow) peak "
                f"{mapped:,.0f} MiB ({count:,} rows in {seconds:.0f} s)"
            )
        if len(peaks) > 1:
            small, large = min(peaks), max(peaks)
            print(
                f"peak anonymous RSS {large:,} vs {small:,} conversations: {peaks[large] / peaks[small]:.2f}x "
                "(flat = 1.0)"
            )

    print(f"\n{'turns':>5} {'tokens':>10} {'us/token':>9}  (axolotl_multiturn.tokenize_prompt alone, by length)")
    strategy = multiturn_load(
        tokenizer,
        DictDefault({"sequence_len": 1_000_000, "multiturn": {"masking": "instruction"}}),
        DictDefault({"path": "bench"}),
    ).strategy
    per_token = {}
    for turns in (4, 10, 20, 40, 80):
        batch = {"messages": [r["messages"] for r in long_chats(random.Random(turns), 4800 // turns, turns)]}
        start = time.perf_counter()
        tokens = sum(len(ids) for ids in strategy.tokenize_prompt(batch)["input_ids"])
        per_token[turns] = (time.perf_counter() - start) / tokens * 1e6
        print(f"{turns:>5} {tokens:>10,} {per_token[turns]:>9.2f}")
    print(f"80 turns vs 4 turns, time per token: {per_token[80] / per_token[4]:.2f}x (flat = 1.0)")

    data = datasets.Dataset.from_list(shapes["coqa-shaped"])
    fitting = sorted(
        len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False))
        for r in shapes["coqa-shaped"]
    )
    limit = fitting[len(fitting) * 2 // 3]
    seconds, tokens = timed(ours(tokenizer, limit), data)
    print(
        f"\noverflow split, sequence_len={limit} (a third of the CoQA-shaped conversations longer): "
        f"{tokens:,} tokens in windows, {tokens / seconds:,.0f} tokens/s"
    )

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
        print(
            f"{parity:<8} {measured[parity][0]:>6} {measured[parity][1]:>10,} {seconds:>8.2f} "
            f"{measured[parity][1] / seconds:>10,.0f}"
        )
    print(
        f"expand adds {measured['expand'][0] - measured['off'][0]:,} rows and "
        f"{measured['expand'][1] - measured['off'][1]:,} tokens "
        f"({measured['expand'][1] / measured['off'][1]:.2f}x the tokens of off)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
