"""Answers to every assistant turn of held-out conversations, each in its multi-turn context with the gold
history (as CoQA's own evaluation does), greedy, scored with CoQA's metric.

A turn's context is the conversation before it as the data has it; the model writes after the chat
template's generation prompt until its end-of-turn token (the tokenizer's eos and the generation config's
stop ids) or `max_new_tokens`.

The questions of one conversation share most of their prompts (a CoQA story and the history before each
question): they are answered one after another over one key/value cache of what their prompts share, so
the story is read once a conversation, not once a question (SmolLM2 on the CoQA held-out stories: the
same answers, 155 -> 117 s untrained and 106 -> 93 s trained, on two cores). A question alone in its
conversation is batched with others, prompts left-padded so that a batch's answers all start at its end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
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
    """Greedy answers, in `asked`'s order; `progress(n)` after every n answered. `prompt` gives a question's
    prompt ids (default: the tokenizer's chat template with its generation prompt; a config's evaluation
    passes the template training used)."""
    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stops)
    prompt = prompt or (
        lambda q: tokenizer.apply_chat_template(
            list(q.context), add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )
    prompts = [prompt(q) for q in asked]
    conversations: dict[int, list[int]] = defaultdict(list)
    for k, question in enumerate(asked):
        conversations[question.conversation].append(k)
    answers: dict[int, Answer] = {}

    def keep(k: int, row: list[int]) -> None:
        end = next((i for i, t in enumerate(row) if t in stops), None)
        text = tokenizer.decode(row[:end] if end is not None else row, skip_special_tokens=True).strip()
        answers[k] = Answer(asked[k], text, end is not None, score(asked[k].golds, text))

    settings = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "eos_token_id": sorted(stops),
        "pad_token_id": pad,
    }
    for ks in (ks for ks in conversations.values() if len(ks) > 1):
        for k, row in zip(ks, _over_one_cache(model, [prompts[k] for k in ks], settings)):
            keep(k, row)
            if progress:
                progress(1)
    alone = sorted((ks[0] for ks in conversations.values() if len(ks) == 1), key=lambda k: len(prompts[k]))
    for start in range(0, len(alone), batch_size):
        batch = alone[start : start + batch_size]
        for k, row in zip(batch, _batched(model, [prompts[k] for k in batch], settings)):
            keep(k, row)
        if progress:
            progress(len(batch))
    return [answers[k] for k in range(len(asked))]


def _batched(model, prompts: Sequence[list[int]], settings: dict) -> list[list[int]]:
    """The tokens generated after each prompt, the prompts left-padded into one batch."""
    import torch

    width, pad = max(len(p) for p in prompts), settings["pad_token_id"]
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, **settings)
    return out[:, width:].tolist()


def _over_one_cache(model, prompts: Sequence[list[int]], settings: dict) -> Iterator[list[int]]:
    """The tokens generated after each prompt, in order, over one key/value cache of the prompts' shared
    start: each prompt's tokens are read once, extending the cache, and each generation runs on a copy of it
    (transformers' documented prompt-reuse pattern). A prompt that does not extend the one before it (a
    template that rewrites the history) starts the cache again."""
    import copy

    import torch
    from transformers import DynamicCache

    cache, cached = None, []
    for ids in prompts:
        known = len(ids) - 1  # generate reads at least the prompt's last token itself, for its first logits
        if cache is None or len(cached) > known or ids[: len(cached)] != cached:
            cache, cached = DynamicCache(config=model.config), []
        with torch.no_grad():
            if known > len(cached):
                model(input_ids=torch.tensor([ids[len(cached) : known]]), past_key_values=cache, use_cache=True)
                cached = ids[:known]
            out = model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                past_key_values=copy.deepcopy(cache),
                **settings,
            )
        yield out[0, len(ids) :].tolist()
