"""`axolotl-multiturn compare CONFIG --modes instruction,boilerplate,none`: masking modes side by side.

The config's model is fine-tuned once per mode (full fine-tuning, a plain PyTorch loop, same seed, same
rows) on the first `train_rows` conversations of its first dataset; then, per mode: trained tokens, the loss
on the assistant generations of the held-out conversations, and how many of their first questions it answers
exactly. On a random tiny model this shows the mechanics (what each mode trains, what that does to the
loss), not which mode is better for a real model. The last `held_out` conversations are never trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

IGNORE = -100


@dataclass(frozen=True)
class Result:
    mode: str
    trained_tokens: int
    tokens: int
    held_out_loss: float
    exact: int
    asked: int


def labelled_rows(strategy: Any, raw: Any, indices: list[int]) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) of the rows `strategy` makes of the conversations at `indices`."""
    return [
        (row.item.input_ids.tolist(), row.labels.tolist())
        for row in strategy.labelled(raw.select(indices)[:], indices)
        if row.item is not None
    ]


def strategy_for(tokenizer: Any, cfg: Any, ds_cfg: Any, trained: Any, mode: str) -> Any:
    """Our strategy for the dataset entry with masking `mode`; `auto` decides on the `trained` rows, as
    preprocessing does. A dataset key beats the options the plugin carried."""
    from axolotl_multiturn.chat import load as load_strategy

    wrapper = load_strategy(tokenizer, cfg, {**ds_cfg, "masking": mode})
    if wrapper.strategy.mode is None:
        wrapper.prepare(trained)
    return wrapper.strategy


def _first_question(strategy: Any, raw: Any, index: int) -> tuple[list[dict], str]:
    """(the conversation through its first user turn, the assistant answer that follows)."""
    messages = strategy.conversations(raw.select([index])[:], [index])[0].messages
    first = next(i for i, m in enumerate(messages) if m.role == "user")
    return [{"role": m.role, "content": m.content} for m in messages[: first + 1]], messages[first + 1].content or ""


def _loss(model: Any, rows: list[tuple[list[int], list[int]]]) -> float:
    """Mean loss over the trained tokens of `rows`."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in rows:
            n = sum(1 for label in labels[1:] if label != IGNORE)
            total += float(model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss) * n
            count += n
    return total / count if count else math.nan


def compare(
    config: str | Path,
    modes: list[str],
    steps: int = 30,
    held_out: int = 2,
    learning_rate: float = 1e-2,
    train_rows: int = 4,
    console: Console | None = None,
) -> list[Result]:
    import torch
    from transformers import AutoModelForCausalLM

    from axolotl_multiturn.models.tiny import answer, fine_tune
    from axolotl_multiturn.reports.preview import load_config

    console = console or Console(highlight=False)
    cfg, tokenizer, ds_cfg, raw = load_config(config)
    if len(raw) <= held_out:
        raise SystemExit(f"{config}: {len(raw)} conversations; compare needs more than --held-out {held_out}")
    train = list(range(min(train_rows, len(raw) - held_out)))
    test = list(range(len(raw) - held_out, len(raw)))

    def strategy(mode: str) -> Any:
        return strategy_for(tokenizer, cfg, ds_cfg, raw.select(train), mode)

    reference = strategy("instruction")
    test_rows = labelled_rows(reference, raw, test)
    questions = [_first_question(reference, raw, i) for i in test]
    results = []
    for mode in modes:
        chosen = strategy(mode)
        rows = labelled_rows(chosen, raw, train)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(cfg["base_model"])
        fine_tune(model, rows, steps, learning_rate, tokenizer.pad_token_id)
        exact = 0
        for context, expected in questions:
            text, ended = answer(model, tokenizer, context)
            exact += ended and text.removesuffix(tokenizer.eos_token).strip() == expected.strip()
        name = mode if mode == chosen.mode.value else f"{mode} ({chosen.mode.value})"
        results.append(
            Result(
                name,
                sum(sum(1 for label in labels if label != IGNORE) for _, labels in rows),
                sum(len(ids) for ids, _ in rows),
                _loss(model, test_rows),
                exact,
                len(questions),
            )
        )
    table = Table(
        "mode",
        "trained tokens",
        "held-out assistant loss",
        "held-out answers exact",
        title=f"{config}: masking modes side by side ({steps} steps each, full fine-tuning)",
    )
    for r in results:
        table.add_row(r.mode, f"{r.trained_tokens:,} of {r.tokens:,}", f"{r.held_out_loss:.3f}", f"{r.exact}/{r.asked}")
    console.print(table)
    console.print("On a random tiny model this shows the mechanics, not which mode is better for a real model.")
    return results
