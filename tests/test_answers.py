"""Held-out answers: every assistant turn in its gold-history context, batched greedy generation that gives
what one-at-a-time generation gives, stop detection and scores."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.axolotl
CHATS = [
    [{"role": "system", "content": "Answer from the story."}, {"role": "user", "content": "Story: Ann has a kite."},
     {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "What does Ann have?"},
     {"role": "assistant", "content": "A kite."}],
    [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Tom."},
     {"role": "assistant", "content": ""}],
]


def test_every_assistant_turn_with_text_is_asked_in_its_gold_context() -> None:
    from axolotl_multiturn.evaluation.answers import questions

    asked = questions(CHATS)
    assert [(q.conversation, q.message, len(q.context), q.golds) for q in asked] == [
        (0, 2, 2, ("Yes.",)), (0, 4, 4, ("A kite.",)), (1, 1, 1, ("Tom.",))]
    assert asked[1].context[2] == {"role": "assistant", "content": "Yes."}  # the gold history, not the model's


def test_batched_answers_are_the_one_at_a_time_answers(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_multiturn.evaluation.answers import generate, questions
    from axolotl_multiturn.models.tiny import answer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    asked = questions(CHATS)
    seen = []
    batched = generate(model, tok, asked, batch_size=3, max_new_tokens=6, progress=seen.append)
    assert seen == [3]
    for got in batched:
        text, stopped = answer(model, tok, got.question.context, 6)
        assert (got.text, got.stopped) == (tok.decode(tok(text, add_special_tokens=False)["input_ids"],
                                                      skip_special_tokens=True).strip(), stopped)
        assert got.score.f1 == 0.0 or got.text  # a random model's words rarely match
