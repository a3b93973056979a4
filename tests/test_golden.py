"""Exact token ids and labels for small conversations on real vocabularies, checked by hand.

Qwen2 ids: <|im_start|>=151644, <|im_end|>=151645, 'user'=872, 'assistant'=77091, '\\n'=198,
'Hi'=13048, 'Hello'=9707, '!'=0. Mistral v1 SentencePiece: <s>=1, </s>=2, '▁Hi'=15359, '▁Hello'=22557.
"""

from __future__ import annotations

import pytest
from chats import A, S, U, chat, label, strategy
from vocabularies import tokenizer

M = -100
CHATML_IDS = [151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198, 9707, 0, 151645, 198]


@pytest.mark.parametrize(("mode", "labels"), [
    ("instruction", [M, M, M, M, M, M, M, M, M, 9707, 0, 151645, M]),
    ("boilerplate", [M, M, M, 13048, M, M, M, M, M, 9707, 0, 151645, M]),
    ("none", CHATML_IDS),
])
def test_chatml_on_qwen2(mode: str, labels: list[int]) -> None:
    assert label(strategy(tokenizer("chatml"), mode), chat((U, "Hi"), (A, "Hello!"))) == (CHATML_IDS, labels)


def test_mistral_v1_glues_the_separator_space_into_the_answer() -> None:
    # '<s>', '▁▁', '[', 'INST', ']', '▁Hi', '▁[', '/', 'INST', ']', '▁Hello', '</s>'
    ids = [1, 259, 28792, 16289, 28793, 15359, 733, 28748, 16289, 28793, 22557, 2]
    tok = tokenizer("mistral_v1")
    assert label(strategy(tok, "instruction"), chat((U, "Hi"), (A, "Hello"))) == (
        ids, [M] * 10 + [22557, 2])
    assert label(strategy(tok, "boilerplate"), chat((U, "Hi"), (A, "Hello"))) == (
        ids, [M] * 5 + [15359] + [M] * 4 + [22557, 2])


LLAMA3_IDS = [151851, 151852, 8948, 151853, 271, 3430, 9814, 151854, 151852, 872, 151853, 271, 13048, 151854,
              151852, 77091, 151853, 271, 64725, 151854]


def test_llama3_trims_content_and_trains_eot() -> None:
    messages = chat((S, "Be brief"), (U, " Hi "), (A, "Yo"))
    tok = tokenizer("llama3")
    assert label(strategy(tok, "instruction"), messages) == (LLAMA3_IDS, [M] * 18 + [64725, 151854])
    assert label(strategy(tok, "boilerplate"), messages) == (
        LLAMA3_IDS, [M] * 5 + [3430, 9814] + [M] * 5 + [13048] + [M] * 5 + [64725, 151854])


TWO_TURNS = chat((U, "Hi"), (A, "Hello!"), (U, "Hi"), (A, "Hello!"))
FIRST_ANSWER, SECOND_ANSWER = slice(9, 12), slice(22, 25)  # 'Hello', '!', '<|im_end|>' of each turn


def test_last_turn_only_masks_earlier_assistant_turns() -> None:
    ids, labels = label(strategy(tokenizer("chatml"), "instruction", last_turn_only=True), TWO_TURNS)
    assert labels[FIRST_ANSWER] == [M, M, M]
    assert labels[SECOND_ANSWER] == ids[SECOND_ANSWER] == [9707, 0, 151645]
    assert sum(lab != M for lab in labels) == 3


def test_weight_zero_masks_an_assistant_turn_and_its_closing() -> None:
    messages = chat((U, "Hi"), (A, "Hello!", 0), (U, "Hi"), (A, "Hello!"))
    ids, labels = label(strategy(tokenizer("chatml"), "none"), messages)
    assert labels[FIRST_ANSWER] == [M, M, M]
    assert [i for i, lab in enumerate(labels) if lab == M] == [9, 10, 11]


def test_weight_one_trains_a_user_turn_in_instruction_mode() -> None:
    messages = chat((U, "Hi", 1), (A, "Hello!"))
    ids, labels = label(strategy(tokenizer("chatml"), "instruction"), messages)
    assert labels == [M, M, M, 13048, M, M, M, M, M, 9707, 0, 151645, M]


def test_explicit_weight_beats_last_turn_only() -> None:
    messages = chat((U, "Hi"), (A, "Hello!", 1), (U, "Hi"), (A, "Hello!"))
    ids, labels = label(strategy(tokenizer("chatml"), "instruction", last_turn_only=True), messages)
    assert labels[FIRST_ANSWER] == labels[SECOND_ANSWER] == [9707, 0, 151645]
