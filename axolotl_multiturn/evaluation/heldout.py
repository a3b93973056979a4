"""The held-out conversations of a config and the model to score on them, loaded as axolotl trains.

The conversations are the config's `test_datasets` (or any chat JSONL given instead), read by axolotl's own
dataset loader and parsed by the strategy training uses, so that every loader and every row error behaves as
in training; each question's prompt is its gold history rendered with the chat template training used, with
its generation prompt. The model is the config's `base_model`, or a folder given instead: a trained LoRA
adapter (put on the base model and merged, as it serves) or a full model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axolotl_multiturn.evaluation.answers import Question, Result, generate, questions

#: The file that marks a folder as a PEFT adapter.
ADAPTER_CONFIG = "adapter_config.json"


class EvalError(RuntimeError):
    """The evaluation cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class HeldOut:
    sources: tuple[str, ...]
    asked: tuple[Question, ...]
    prompt: Callable[[Question], list[int]]


def held_out(config: str | Path, data: str | None = None) -> tuple[Any, Any, HeldOut]:
    """(axolotl config, tokenizer, the questions of the held-out conversations)."""
    from axolotl.cli.config import load_cfg
    from axolotl.loaders import load_tokenizer
    from axolotl.utils.data.shared import load_dataset_with_config

    from axolotl_multiturn.chat import load

    logging.disable(logging.INFO)  # axolotl logs the whole config at INFO
    try:
        cfg = load_cfg(str(config))
        entries = [{"path": data, "type": "axolotl_multiturn.chat"}] if data else list(cfg.test_datasets or [])
        if not entries:
            raise EvalError(
                f"{config}: no held-out data: add a `test_datasets:` entry (the conversations never trained on) "
                "or pass --data FILE.jsonl"
            )
        tokenizer = load_tokenizer(cfg)
        conversations, renderers = [], []
        for entry in entries:
            strategy = load(tokenizer, cfg, entry).strategy
            raw = load_dataset_with_config(entry, use_auth_token=False)
            for conversation in strategy.conversations(raw[:], list(range(len(raw)))):
                if conversation is not None:
                    conversations.append(conversation)
                    renderers.append(strategy.encoder.renderer)
    finally:
        logging.disable(logging.NOTSET)
    chats = [[renderer.template_message(m) for m in c.messages] for c, renderer in zip(conversations, renderers)]
    asked = questions(chats)
    if not asked:
        raise EvalError(f"{config}: the held-out conversations have no assistant turn with text to score")

    def prompt(question: Question) -> list[int]:
        conversation = conversations[question.conversation]
        text = renderers[question.conversation].render_text(
            conversation.replace(conversation.messages[: question.message]), generation_prompt=True
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return cfg, tokenizer, HeldOut(tuple(str(e["path"]) for e in entries), tuple(asked), prompt)


def load_model(cfg: Any, model: str | None = None) -> Any:
    """The config's base model, a LoRA adapter on the model it was trained on (merged), or another model
    folder; in eval mode."""
    import orjson
    from transformers import AutoModelForCausalLM

    if model and not Path(model).is_dir():
        raise EvalError(f"--model {model}: no such folder (a trained adapter or model: the config's output_dir)")
    if model and (Path(model) / ADAPTER_CONFIG).is_file():
        from peft import PeftModel

        trained_on = orjson.loads((Path(model) / ADAPTER_CONFIG).read_bytes()).get("base_model_name_or_path")
        # the folder it was trained on (a DPO adapter's base is the merged SFT model), where it is here
        base = AutoModelForCausalLM.from_pretrained(
            trained_on if trained_on and Path(trained_on).is_dir() else cfg.base_model
        )
        return PeftModel.from_pretrained(base, model).merge_and_unload().eval()
    return AutoModelForCausalLM.from_pretrained(model or cfg.base_model).eval()


def evaluate(
    config: str | Path,
    model: str | None = None,
    data: str | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 48,
    console: Any = None,
) -> Result:
    """Every held-out question answered greedily by `model` (default the config's base model), with a
    progress bar, scored."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(highlight=False, stderr=True)
    cfg, tokenizer, held = held_out(config, data)
    loaded = load_model(cfg, model)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=not console.is_terminal,
    ) as progress:
        task = progress.add_task(f"answering ({model or cfg.base_model})", total=len(held.asked))
        answers = generate(
            loaded,
            tokenizer,
            held.asked,
            batch_size,
            max_new_tokens,
            progress=lambda n: progress.advance(task, n),
            prompt=held.prompt,
        )
    return Result(tuple(answers))
