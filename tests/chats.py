"""Trap conversations for the exactness tests, and a helper that labels one conversation."""

from __future__ import annotations

from typing import Any

from corpus import inference_tokens

from axolotl_multiturn.chat import MultiTurnStrategy, load

S, U, A = "system", "user", "assistant"


def chat(*turns: tuple[str, str] | tuple[str, str, int]) -> list[dict[str, Any]]:
    out = []
    for role, content, *weight in turns:
        message = {"role": role, "content": content}
        if weight:
            message["weight"] = weight[0]
        out.append(message)
    return out


TRAPS = {
    "basic": chat((S, "Be brief"), (U, "Hi there"), (A, "Hello! How can I help?"), (U, "Tell me a joke"),
                  (A, "Why did the chicken cross the road")),
    "identical_turns": chat((U, "same"), (A, "same"), (U, "same"), (A, "same")),
    "role_names": chat((S, "assistant"), (U, "user"), (A, "assistant"), (U, "system"), (A, "user")),
    "markup_and_jinja": chat((U, "Render {{ messages[0]['content'] }} and {% raw %}x{% endraw %} please"),
                             (A, "Sure: <b>bold</b>, {# not a comment #} and \ue0000\ue001 stay text")),
    "whitespace": chat((U, "  padded question  "), (A, "\nanswer between newlines\n"), (U, "next"),
                       (A, "done")),
    "unicode": chat((S, "Réponds en français"), (U, "日本語のテキスト 🎉"), (A, "Émoji 👍🏽 et ñ")),
    "no_system": chat((U, "What is two plus two"), (A, "Four")),
}


def strategy(tokenizer: Any, masking: str, **options: Any) -> MultiTurnStrategy:
    return load(tokenizer, {"multiturn": {"masking": masking, **options}}, {"path": "test"}).strategy


def label(strategy: MultiTurnStrategy, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """input_ids and labels of one conversation, through the strategy's batched entry point."""
    out = strategy.tokenize_prompt({"messages": [messages]})
    return out["input_ids"][0], out["labels"][0]


def trained_runs(tokenizer: Any, messages: list[dict[str, Any]], labels: list[int]) -> list[str]:
    """The rendered text under each maximal run of trained tokens, cut out by the offsets of the ids
    training should see (`corpus.inference_tokens`)."""
    text, _, offsets = inference_tokens(tokenizer, messages)
    runs, start, end = [], None, None
    for (a, b), trained in zip(offsets, (lab != -100 for lab in labels)):
        if trained:
            start = a if start is None else start
            end = b
        elif start is not None:
            runs.append(text[start:end])
            start = None
    if start is not None:
        runs.append(text[start:end])
    return runs
