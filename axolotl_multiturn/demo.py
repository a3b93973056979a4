"""`make demo`: the CoQA workflow end to end, offline, on the CPU, on the embedded tiny model.

1. build the tiny model (random-weight Llama, Qwen2's real vocabulary, chatml) into demo/tiny-model;
2. convert the shipped CoQA-format sample to demo/coqa-train.jsonl (linted, written atomically);
3. lint it again with check-chat-jsonl, as a dataset repo's pre-commit hook would;
4. `axolotl preprocess example_configs/coqa-tiny.yml`: prints the masking auto decision;
5. show one conversation's masking, through the same strategy as training;
6. `axolotl train example_configs/coqa-tiny.yml`: prints the loss per step, which must fall;
7. leaves the LoRA adapter in outputs/coqa-tiny.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

CONFIG = Path("example_configs/coqa-tiny.yml")
SAMPLE = Path("example_configs/data/coqa-sample.json")
MODEL = Path("demo/tiny-model")
DATA = Path("demo/coqa-train.jsonl")
OUTPUT = Path("outputs/coqa-tiny")
LOSS = re.compile(r"\{'loss': '([0-9.]+)'")

console = Console(highlight=False)


def step(text: str) -> None:
    console.print(f"\n[bold cyan]== {text}[/]")


def axolotl(command: str, config: Path) -> subprocess.CompletedProcess:
    """Run the axolotl CLI of this environment; its output streams to the terminal and is kept."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "AXOLOTL_DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    process = subprocess.Popen([str(Path(sys.executable).with_name("axolotl")), command, str(config)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if loss := LOSS.search(line):
            console.print(f"step {len(losses(''.join(lines))):>3}  loss {float(loss.group(1)):.3f}")
        elif "[axolotl_multiturn." in line and "examples/s" not in line:
            console.print(line.rstrip().split("] ", 3)[-1], markup=False)
    process.wait()
    output = "".join(lines)
    if process.returncode:
        console.print(output[-4000:], markup=False)
        raise SystemExit(f"axolotl {command} failed with exit code {process.returncode}")
    return subprocess.CompletedProcess(process.args, process.returncode, output, "")


def losses(output: str) -> list[float]:
    return [float(value) for value in LOSS.findall(output)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the tiny model even if it exists")
    args = parser.parse_args(argv)

    from axolotl.utils.chat_templates import get_chat_template

    from axolotl_multiturn.convert import convert, report
    from axolotl_multiturn.converters import registry
    from axolotl_multiturn.lint.cli import main as lint
    from axolotl_multiturn.reports.preview import preview
    from axolotl_multiturn.tiny import build_tiny_model

    step(f"1. tiny model -> {MODEL}")
    if args.rebuild or not (MODEL / "config.json").is_file():
        build_tiny_model(MODEL, get_chat_template("chatml"))
    console.print(f"random-weight Llama, Qwen2 vocabulary, chatml template, in {MODEL}")

    step(f"2. convert {SAMPLE} -> {DATA}")
    coqa = registry()["coqa"]
    convert_args = argparse.Namespace(split="train", system_prompt=coqa_prompt())
    if report(convert(coqa, str(SAMPLE), convert_args, DATA), DATA, skip_invalid=False):
        return 1

    step(f"3. check-chat-jsonl {DATA}")
    if lint([str(DATA)]):
        return 1

    step(f"4. axolotl preprocess {CONFIG}")
    axolotl("preprocess", CONFIG)

    step("5. what trains in the first conversation (the strategy training uses)")
    preview(CONFIG, rows=1, console=console, max_chars=900)

    step(f"6. axolotl train {CONFIG}")
    trained = losses(axolotl("train", CONFIG).stdout)
    console.print("loss per step: " + " ".join(f"{v:.2f}" for v in trained))
    if len(trained) < 2 or not trained[-1] < trained[0]:
        console.print("[bold red]the loss did not fall[/]")
        return 1
    console.print(f"[bold green]loss fell from {trained[0]:.3f} to {trained[-1]:.3f} over {len(trained)} steps[/]")

    step("7. result")
    adapter = OUTPUT / "adapter_model.safetensors"
    if not adapter.is_file():
        console.print(f"[bold red]no adapter at {adapter}[/]")
        return 1
    console.print(f"LoRA adapter: {adapter} ({adapter.stat().st_size / 1e6:.1f} MB)")
    return 0


def coqa_prompt() -> str:
    from axolotl_multiturn.converters.builtin import COQA_SYSTEM_PROMPT

    return COQA_SYSTEM_PROMPT


if __name__ == "__main__":
    sys.exit(main())
