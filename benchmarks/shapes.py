"""Generated conversations of the shapes the benchmarks measure (no heavy imports)."""

from __future__ import annotations

import random

WORDS = (
    "the river boat story lantern mother quiet village winter morning library answer question garden "
    "painted window friend bridge letter market harbor old young small bright"
).split()


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def coqa_shaped(rng: random.Random, rows: int) -> list[dict]:
    """A ~250-word story in the system prompt, then 10-15 short question/answer turns."""
    out = []
    for _ in range(rows):
        story = " ".join(sentence(rng, rng.randint(8, 16)) for _ in range(20))
        messages = [
            {"role": "system", "content": f"Read the story and extract answers for the questions.\nStory: {story}"}
        ]
        for _ in range(rng.randint(10, 15)):
            messages += [
                {"role": "user", "content": sentence(rng, rng.randint(4, 9))[:-1] + "?"},
                {"role": "assistant", "content": sentence(rng, rng.randint(1, 5))},
            ]
        out.append({"messages": messages})
    return out


def long_chats(rng: random.Random, rows: int, turns: int) -> list[dict]:
    """`turns` user/assistant pairs of a few sentences each."""
    out = []
    for _ in range(rows):
        messages = []
        for _ in range(turns):
            messages += [
                {"role": "user", "content": sentence(rng, rng.randint(8, 20))},
                {"role": "assistant", "content": " ".join(sentence(rng, 12) for _ in range(2))},
            ]
        out.append({"messages": messages})
    return out


def reasoning_chats(rng: random.Random, rows: int, turns: int) -> list[dict]:
    """`turns` user/assistant pairs; each answer carries a reasoning trace (`reasoning_content`)."""
    out = []
    for _ in range(rows):
        messages = []
        for _ in range(turns):
            messages += [
                {"role": "user", "content": sentence(rng, rng.randint(6, 14))[:-1] + "?"},
                {
                    "role": "assistant",
                    "content": sentence(rng, rng.randint(4, 10)),
                    "reasoning_content": " ".join(sentence(rng, 10) for _ in range(rng.randint(2, 5))),
                },
            ]
        out.append({"messages": messages})
    return out
