"""`axolotl-multiturn compare CONFIG`: masking modes side by side, on a real model's held-out score (a config
with `test_datasets`) or on a tiny model's loss."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
import yaml
from rich.console import Console

from axolotl_multiturn.files import written_whole


def add_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("config", metavar="CONFIG.yml")
    sub.add_argument(
        "--modes",
        default="instruction,boilerplate,none",
        help="comma-separated masking modes (default: instruction,boilerplate,none)",
    )
    sub.add_argument("--steps", type=int, default=30, help="full fine-tuning steps per mode (default 30)")
    sub.add_argument("--train-rows", type=int, default=4, help="conversations trained on (default the first 4)")
    sub.add_argument("--held-out", type=int, default=2, help="last conversations held out (default 2)")
    sub.add_argument("--learning-rate", type=float, default=1e-2, help="AdamW learning rate (default 0.01)")
    sub.add_argument("--seeds", default="0", help="with test_datasets: comma-separated seeds (default 0)")
    sub.add_argument("--json", metavar="OUT.json", help="with test_datasets: write every score as JSON")
    sub.add_argument("--markdown", metavar="OUT.md", help="with test_datasets: write the table as Markdown")


def run(args: argparse.Namespace) -> int:
    """The real-model comparison when the config holds held-out data, else the tiny model's loop."""
    from axolotl_multiturn.reports.compare import compare

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if yaml.safe_load(Path(args.config).read_text()).get("test_datasets"):
        from axolotl_multiturn.evaluation.heldout import EvalError
        from axolotl_multiturn.reports.compare_heldout import compare_heldout, markdown, table, to_dict

        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            print(f"error: --seeds {args.seeds}: comma-separated whole numbers, e.g. 0,1,2", file=sys.stderr)
            return 2
        try:
            before, results = compare_heldout(args.config, modes, seeds)
        except EvalError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        console = Console(highlight=False)
        console.print(table(before, results, f"{args.config}: masking modes on held-out data"))
        if args.markdown:
            with written_whole(Path(args.markdown)) as stream:
                stream.write(markdown(before, results).encode())
        if args.json:
            with written_whole(Path(args.json)) as stream:
                stream.write(orjson.dumps(to_dict(before, results, seeds), option=orjson.OPT_INDENT_2))
        return 0
    compare(args.config, modes, args.steps, args.held_out, args.learning_rate, args.train_rows)
    return 0
