"""Preference-pair labelling speed: the plugin's loader (`rl.label_dataset` on a JSONL file read as text lines,
every pair rendered and tokenized in context twice, once per output, and checked) against TRL's own DPO
tokenization of the same pairs (`DPOTrainer._prepare_dataset`, run as is: what `trl dpo`, and axolotl's DPO
trainer after its transform, run on conversational pairs).

Both in this process, one after the other, on the same generated CoQA-shaped pairs (a story and 2-12 earlier
question/answer turns as the prompt, two answers), with the same tokenizer (Qwen2's real vocabulary, chatml),
caching off; tokens counted the same way (prompt + chosen + rejected ids).

    python benchmarks/pairs.py [--pairs N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")

import datasets  # noqa: E402
from axolotl.utils.chat_templates import get_chat_template  # noqa: E402
from shapes import coqa_shaped, sentence  # noqa: E402

from axolotl_multiturn.integration.rl import PairColumn, label_dataset  # noqa: E402
from axolotl_multiturn.models.tiny import qwen_tokenizer  # noqa: E402

#: Ours renders and tokenizes each output in context (prompt + output, in full) and checks that both prompts
#: agree; TRL renders the prompt, then prompt + each output, and tokenizes all three. Measured at 0.95x to
#: 1.06x (2026-11-27): the target keeps ours within a fifth of TRL's speed.
TARGET_TRL = 0.8


def coqa_pairs(rng: random.Random, pairs: int) -> list[dict]:
    """Pairs in TRL's conversational shape: a CoQA-shaped history cut before an answer, that answer and
    another."""
    out = []
    for row in coqa_shaped(rng, pairs):
        messages = row["messages"]
        cut = 2 * rng.randint(1, (len(messages) - 1) // 2)  # before an assistant turn
        other = {"role": "assistant", "content": sentence(rng, rng.randint(1, 5))}
        out.append({"prompt": messages[:cut], "chosen": [messages[cut]], "rejected": [other]})
    return out


def ours(tokenizer, path: Path) -> tuple[float, int, datasets.Dataset]:
    start = time.perf_counter()
    raw = datasets.load_dataset("text", data_files=str(path), split="train")
    dataset, _ = label_dataset(tokenizer, {"sequence_len": 1 << 20}, {"path": str(path)}, raw)
    seconds = time.perf_counter() - start
    columns = (PairColumn.PROMPT_IDS, PairColumn.CHOSEN_IDS, PairColumn.REJECTED_IDS)
    return seconds, sum(len(ids) for c in columns for ids in dataset[c.value]), dataset


def read_back(dataset: datasets.Dataset, directory: Path) -> float:
    """Seconds to load a prepared copy of the labelled pairs (`save_to_disk`, then `load_from_disk` and every
    row read, as the trainer will): what a later run pays instead of labelling."""
    dataset.save_to_disk(str(directory))
    start = time.perf_counter()
    loaded = datasets.load_from_disk(str(directory))
    for _ in loaded.iter(batch_size=1000):
        pass
    return time.perf_counter() - start


def trl(tokenizer, rows: list[dict]) -> tuple[float, int]:
    from trl import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, max_length=None, report_to=[], bf16=False, use_cpu=True)
        start = time.perf_counter()
        data = datasets.Dataset.from_list(rows)
        dataset = DPOTrainer._prepare_dataset(
            types.SimpleNamespace(_tokenizer=tokenizer), data, tokenizer, args, "train"
        )
        seconds = time.perf_counter() - start
    columns = ("prompt_ids", "chosen_ids", "rejected_ids")
    return seconds, sum(len(ids) for c in columns for ids in dataset[c])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000, help="CoQA-shaped pairs (default 2000)")
    args = parser.parse_args(argv)
    datasets.disable_caching()
    datasets.logging.disable_progress_bar()
    tokenizer = qwen_tokenizer(chat_template=get_chat_template("chatml"))
    rows = coqa_pairs(random.Random(0), args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
        theirs, their_tokens = trl(tokenizer, rows)
        mine, my_tokens, dataset = ours(tokenizer, path)
        cached = read_back(dataset, Path(tmp) / "prepared")
    print(f"{'run':<34} {'pairs':>6} {'tokens':>10} {'seconds':>8} {'tokens/s':>10}")
    for name, seconds, tokens in (
        ("TRL DPOTrainer._prepare_dataset", theirs, their_tokens),
        ("axolotl_multiturn (rl.py)", mine, my_tokens),
    ):
        print(f"{name:<34} {len(rows):>6} {tokens:>10,} {seconds:>8.2f} {tokens / seconds:>10,.0f}")
    ratio = (my_tokens / mine) / (their_tokens / theirs)
    print(
        f"ours / TRL: {ratio:.2f}x the tokens/s (target >= {TARGET_TRL}: {'met' if ratio >= TARGET_TRL else 'NOT met'})"
    )
    print(
        f"a prepared copy of our pairs read back: {cached:.2f} s, against {mine:.2f} s to label them "
        "(the plugin saves one in dataset_prepared_path, and later runs read it back)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
