"""Answers to every assistant turn of held-out conversations, each in its multi-turn context with the gold
history (as CoQA's own evaluation does), greedy, scored with CoQA's metric.

A turn's context is the conversation before it as the data has it; the model writes after the chat
template's generation prompt until its end-of-turn token (the tokenizer's eos and the generation config's
stop ids) or `max_new_tokens`.

The questions of one conversation share most of their prompts (a CoQA story and the history before each
question): they are answered one after another over one key/value cache of what their prompts share
(`cache.Prefix`), so the story is read once a conversation, not once a question; and the conversations are
answered side by side, a batch of up to `batch_size` rows a round, their caches stacked, since on a CPU a
decoding step costs about the weights' memory traffic whatever the rows (SmolLM2 on the 149 CoQA held-out
questions, two cores: one at a time 155 s untrained and 106 s trained; one cache a conversation 120 and 72 s;
conversations batched 90 and 45 s; the same answers each time).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from axolotl_multiturn.evaluation.cache import Prefix, stacked
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
    # conversations with many questions first, so that a group's conversations run for about as many rounds
    ordered = sorted(conversations.values(), key=lambda ks: (-len(ks), len(prompts[ks[-1]])))
    for start in range(0, len(ordered), batch_size):
        group = ordered[start : start + batch_size]
        prefixes = [Prefix() for _ in group]
        for turn in range(len(group[0])):
            rows = [(prefix, ks[turn]) for prefix, ks in zip(prefixes, group) if turn < len(ks)]
            for prefix, k in rows:
                prefix.read(model, prompts[k])
            for (_, k), row in zip(rows, _answer(model, rows, prompts, settings)):
                keep(k, row)
            if progress:
                progress(len(rows))
    return [answers[k] for k in range(len(asked))]


def _answer(model, rows: Sequence[tuple[Prefix, int]], prompts: Sequence[list[int]], settings: dict) -> list[list[int]]:
    """The tokens generated after each row's prompt, the rows in one batch over their caches stacked: a
    decoding step then reads the weights once for all rows (on a CPU a step costs about the weights' memory
    traffic, nearly the same for 1 row as for 16). Caches that cannot be stacked are answered a row at a time."""
    import torch

    width = max(len(prompts[k]) for _, k in rows)
    cache = stacked(model, [prefix for prefix, _ in rows], width - 1)
    if cache is None:
        return [out for row in rows for out in _answer(model, [row], prompts, settings)]
    pad = settings["pad_token_id"]
    ids = torch.tensor([[pad] * (width - len(prompts[k])) + prompts[k] for _, k in rows])
    mask = torch.tensor([[0] * (width - len(prompts[k])) + [1] * len(prompts[k]) for _, k in rows])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, **settings)
    return out[:, width:].tolist()
