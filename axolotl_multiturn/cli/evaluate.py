"""`axolotl-multiturn eval CONFIG [--model DIR]`: a model's CoQA score on held-out conversations."""

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
        "--model",
        metavar="DIR",
        help="a trained LoRA adapter (put on the config's base_model) or a model folder (default: base_model)",
    )
    sub.add_argument("--data", metavar="FILE.jsonl", help="any chat JSONL to score on (default: test_datasets)")
    sub.add_argument("--json", metavar="OUT.json", help="write the scores and every answer as JSON")
    sub.add_argument("--before", metavar="BEFORE.json", help="an earlier --json, shown beside (and in --png)")
    sub.add_argument("--png", metavar="OUT.png", help="draw the scores (beside --before's) as a PNG")
    sub.add_argument("--questions", type=int, metavar="N", help="rows of the per-question table (default all)")
    sub.add_argument("--batch-size", type=int, default=16, help="prompts generated together (default 16)")
    sub.add_argument("--max-new-tokens", type=int, default=48, help="answer length limit (default 48)")


def run(args: argparse.Namespace) -> int:
    if yaml.safe_load(Path(args.config).read_text()).get("rl"):
        return run_pairs(args)
    from axolotl_multiturn.evaluation.heldout import EvalError, evaluate
    from axolotl_multiturn.evaluation.report import (
        Scores,
        picture,
        question_table,
        scores_from_json,
        summary_table,
        to_json,
    )

    console = Console(highlight=False)
    before = None
    if args.before:
        try:
            before = scores_from_json(orjson.loads(Path(args.before).read_bytes()))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as error:
            print(f"error: --before {args.before}: not a JSON file written by eval --json ({error})", file=sys.stderr)
            return 2
    try:
        result = evaluate(args.config, args.model, args.data, args.batch_size, args.max_new_tokens)
    except EvalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = args.model or "base model"
    console.print(question_table(result, limit=args.questions))
    columns = {**({"before": before} if before else {}), name: Scores.of(result)}
    console.print(summary_table(columns, title=f"{args.config}: held-out {args.data or 'test_datasets'}"))
    if args.json:
        with written_whole(Path(args.json)) as stream:
            meta = {"config": str(args.config), "model": name, "data": args.data or "test_datasets"}
            stream.write(orjson.dumps(to_json(result, **meta), option=orjson.OPT_INDENT_2))
        console.print(f"wrote {args.json}")
    if args.png:
        console.print(f"wrote {picture(Path(args.png), columns, f'held-out score: {args.config}')}")
    return 0


def run_pairs(args: argparse.Namespace) -> int:
    """A preference config: pairwise accuracy on its held-out pairs."""
    from dataclasses import asdict

    from rich.table import Table

    from axolotl_multiturn.evaluation.heldout import EvalError
    from axolotl_multiturn.evaluation.pairs import pairwise

    try:
        scores = pairwise(args.config, args.model, args.data)
    except EvalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = args.model or "base model"
    table = Table("held-out pairs", name, title=f"{args.config}: held-out {args.data or 'test_datasets'}")
    table.add_row("chosen more likely than rejected", f"{scores.accuracy:.1%}")
    table.add_row("mean log-probability margin (nats)", f"{scores.margin:.2f}")
    table.add_row("pairs", str(scores.pairs))
    Console(highlight=False).print(table)
    if args.json:
        with written_whole(Path(args.json)) as stream:
            stream.write(orjson.dumps({"config": str(args.config), "model": name, **asdict(scores)}))
    return 0
