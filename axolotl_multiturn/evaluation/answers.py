"""Answers to every assistant turn of held-out conversations, each in its multi-turn context with the gold
history (as CoQA's own evaluation does), greedy and batched, scored with CoQA's metric.

A turn's context is the conversation before it as the data has it; the model writes after the chat
template's generation prompt until its end-of-turn token (the tokenizer's eos and the generation config's
stop ids) or `max_new_tokens`. Prompts are left-padded so that a batch's answers all start at its end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from axolotl_multiturn.evaluation.metric import Score, score


@dataclass(frozen=True)
class Question:
    """An assistant turn to answer: where it is (conversation and message index), its context, its gold."""

    conversation: int
    message: int
    context: tuple[dict, ...]
    golds: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    question: Question
    text: str
    stopped: bool  # ended on an end-of-turn token by itself, not at the token limit
    score: Score

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class Result:
    answers: tuple[Answer, ...]

    @property
    def f1(self) -> float:
        return sum(a.score.f1 for a in self.answers) / max(1, len(self.answers))

    @property
    def exact(self) -> float:
        return sum(a.score.exact for a in self.answers) / max(1, len(self.answers))

    @property
    def stopped(self) -> float:
        return sum(a.stopped for a in self.answers) / max(1, len(self.answers))

    @property
    def words(self) -> float:
        return sum(a.words for a in self.answers) / max(1, len(self.answers))


def questions(conversations: Sequence[Sequence[dict]]) -> list[Question]:
    """Every assistant turn with text content (tool calls and empty turns have nothing to score)."""
    out = []
    for c, messages in enumerate(conversations):
        for i, message in enumerate(messages):
            if message.get("role") == "assistant" and isinstance(message.get("content"), str) and i:
                if message["content"].strip():
                    out.append(Question(c, i, tuple(messages[:i]), (message["content"],)))
    return out


def stop_ids(model, tokenizer) -> set[int]:
    """The tokenizer's eos and the generation config's eos ids."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def generate(
    model,
    tokenizer,
    asked: Sequence[Question],
    batch_size: int = 8,
    max_new_tokens: int = 48,
    progress: Callable[[int], object] | None = None,
    prompt: Callable[[Question], list[int]] | None = None,
) -> list[Answer]:
    """Greedy answers, in `asked`'s order; batches of similar prompt length; `progress(n)` after each batch.
    `prompt` gives a question's prompt ids (default: the tokenizer's chat template with its generation
    prompt; a config's evaluation passes the template training used)."""
    import torch

    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stops)
    prompt = prompt or (
        lambda q: tokenizer.apply_chat_template(
            list(q.context), add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )
    prompts = [prompt(q) for q in asked]
    order = sorted(range(len(asked)), key=lambda k: len(prompts[k]))
    answers: dict[int, Answer] = {}
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(prompts[k]) for k in batch)
        ids = torch.tensor([[pad] * (width - len(prompts[k])) + prompts[k] for k in batch])
        mask = torch.tensor([[0] * (width - len(prompts[k])) + [1] * len(prompts[k]) for k in batch])
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=sorted(stops),
                pad_token_id=pad,
            )
        for k, row in zip(batch, out[:, width:].tolist()):
            end = next((i for i, t in enumerate(row) if t in stops), None)
            text = tokenizer.decode(row[:end] if end is not None else row, skip_special_tokens=True).strip()
            answers[k] = Answer(asked[k], text, end is not None, score(asked[k].golds, text))
        if progress:
            progress(len(batch))
    return [answers[k] for k in range(len(asked))]
