"""The core promise, on real vocabularies and axolotl's real chat templates, for every masking mode:

1. `input_ids` equal `tokenizer.apply_chat_template(messages, tokenize=True)`, except that a generation
   prompt a token would straddle is tokenized on its own, as at inference (`corpus.inference_tokens`:
   the whitespace trap's answer starts with the newline chatml's prompt ends with);
2. every label is -100 or its input id;
3. the trained text is exactly what the mode promises: written out below per template family from the
   family's known shape (closing string, trimming, where the system message goes), not from the engine.
   These families are prefix-stable and their generation is content + closing; Qwen3, whose generation
   prompt and history rendering differ, is checked on the same traps by the prefix-diff oracle in
   `test_generations.py`.
   The one tolerance is the documented glue rule: template whitespace that the vocabulary merges into
   a content's first token is trained with it (`' [/INST] ' + 'Hello'` is the one token '▁Hello').
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from chats import TRAPS, label, strategy, trained_runs
from corpus import inference_tokens
from vocabularies import tokenizer


@dataclass(frozen=True)
class Family:
    closing: str  # what closes an assistant turn (trained with it)
    trim: bool = False  # the template strips each content
    system: str = "own"  # own turn | first_user: folded into the first user turn | dropped | rejected


FAMILIES = {
    "chatml": Family("<|im_end|>"),
    "qwen_25": Family("<|im_end|>"),  # injects "You are Qwen..." when there is no system message
    "llama3": Family("<|eot_id|>", trim=True),
    "command_a": Family("<|END_RESPONSE|><|END_OF_TURN_TOKEN|>"),  # two-token closer, default preamble
    "mistral_v7_tekken": Family("</s>"),  # injects a default system prompt
    "mistral_v3_tekken": Family("</s>", system="dropped"),  # system only rides on a final user turn
    "mistral_v1": Family("</s>", system="first_user"),  # ' [INST] ' + content; ' ' + answer
    "phi_3": Family("<|end|>"),
    "gemma": Family("<end_of_turn>", trim=True, system="rejected"),
    "gemma3": Family("<end_of_turn>", trim=True, system="first_user"),
}


def expected_runs(family: Family, messages: list[dict], mode: str) -> list[str]:
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    turns = messages[1:] if system is not None else messages
    pieces: list[tuple[str, str]] = [("system", system)] if system is not None and family.system == "own" else []
    for i, turn in enumerate(turns):
        if i == 0 and system is not None and family.system == "first_user":
            pieces.append(("system", system))
        pieces.append((turn["role"], turn["content"]))

    def text(role: str, content: str) -> str:
        body = content.strip() if family.trim else content
        return body + (family.closing if role == "assistant" else "")

    if mode == "instruction":
        return [text(role, c) for role, c in pieces if role == "assistant"]
    return [text(role, c) for role, c in pieces]


CASES = [(f, t) for f in FAMILIES for t in TRAPS
         if not (FAMILIES[f].system == "rejected" and TRAPS[t][0]["role"] == "system")]


@pytest.mark.parametrize("mode", ["instruction", "boilerplate", "none"])
@pytest.mark.parametrize(("family", "trap"), CASES)
def test_labels_are_exact(family: str, trap: str, mode: str) -> None:
    tok = tokenizer(family)
    messages = TRAPS[trap]
    ids, labels = label(strategy(tok, mode), messages)

    assert ids == inference_tokens(tok, messages)[1]
    assert all(lab in (-100, i) for i, lab in zip(ids, labels))
    runs = trained_runs(tok, messages, labels)
    if mode == "none":
        assert labels == ids
    else:
        assert_runs(runs, expected_runs(FAMILIES[family], messages, mode))


def assert_runs(runs: list[str], expected: list[str]) -> None:
    """Equal run by run, allowing only leading template whitespace glued to the first content token."""
    glued = [r if r == e or not (r.endswith(e) and r[: len(r) - len(e)].isspace()) else e
             for r, e in zip(runs, expected)]
    assert glued == expected and len(runs) == len(expected), (runs, expected)


def test_gemma_rejects_a_system_message_with_the_row_named() -> None:
    from axolotl_multiturn.chat import RowError

    with pytest.raises(RowError, match=r"test row 0: the chat template rejects this conversation: "
                                       r"System role not supported"):
        label(strategy(tokenizer("gemma"), "instruction"), TRAPS["basic"])


def test_truncation_or_padding_left_on_the_shared_tokenizer_changes_nothing() -> None:
    """The engine calls the Rust tokenizer the transformers tokenizer wraps; settings another caller left on
    it (axolotl tokenizes with truncation elsewhere) are cleared first, the special-token switch put back."""
    from chats import A, U, chat

    tok = tokenizer("chatml")
    messages = chat((U, "Tell me a long story about a river."), (A, "Once upon a time a river ran to the sea."))
    expected = tok.apply_chat_template(messages, tokenize=True, return_dict=False)
    tok.backend_tokenizer.enable_truncation(max_length=5)
    tok.backend_tokenizer.enable_padding(length=200)
    ids, labels = label(strategy(tok, "instruction"), messages)
    assert ids == expected and len(labels) == len(expected)
    assert tok.backend_tokenizer.encode_special_tokens is False
