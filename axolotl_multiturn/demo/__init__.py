"""`make demo`: the CoQA workflow end to end, offline, on the CPU (`demo/real.py`, SmolLM2-135M-Instruct scored
on held-out stories before and after); `make demo-tiny`: the same workflow on the embedded random tiny model
(`demo/tiny.py`). What both use to run a step lives here."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

SAMPLE = Path("example_configs/data/coqa-sample.json")
HELD_OUT_SAMPLE = Path("example_configs/data/coqa-heldout.json")
console = Console(highlight=False)


def step(text: str) -> None:
    console.print(f"\n[bold cyan]== {text}[/]")


def convert_and_lint(sample: Path, out: Path) -> bool:
    """`axolotl-multiturn convert coqa SAMPLE --to OUT` (the project's system prompt), then
    `check-chat-jsonl OUT`, as a dataset repo's pre-commit hook would; False when either fails."""
    from axolotl_multiturn.cli.convert import convert, report
    from axolotl_multiturn.cli.lint import main as lint
    from axolotl_multiturn.converters import registry
    from axolotl_multiturn.converters.builtin import COQA_SYSTEM_PROMPT

    step(f"convert {sample} -> {out}, then check-chat-jsonl {out}")
    arguments = argparse.Namespace(split="train", system_prompt=COQA_SYSTEM_PROMPT)
    if report(convert(registry()["coqa"], str(sample), arguments, out), out, skip_invalid=False):
        return False
    return not lint([str(out)])
