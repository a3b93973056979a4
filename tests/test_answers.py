"""Held-out answers: every assistant turn in its gold-history context, greedy generation over one cache of a
conversation's shared prompt, conversations batched, that gives what one-at-a-time generation gives, stop
detection and scores."""

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


def test_batched_and_cached_answers_are_the_one_at_a_time_answers(tiny_model: Path) -> None:
    """Conversation 0's two questions share one key/value cache of their prompts; its first question and
    conversation 1's one question are answered in one batch, their caches (of different lengths) stacked:
    every answer is what one-at-a-time generation gives."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_multiturn.evaluation.answers import generate, questions
    from axolotl_multiturn.models.tiny import answer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    asked = questions(CHATS)
    seen = []
    answered = generate(model, tok, asked, batch_size=3, max_new_tokens=6, progress=seen.append)
    assert seen == [2, 1]  # a round of the two conversations' first questions, then conversation 0's second
    for got in answered:
        text, stopped = answer(model, tok, got.question.context, 6)
        assert (got.text, got.stopped) == (tok.decode(tok(text, add_special_tokens=False)["input_ids"],
                                                      skip_special_tokens=True).strip(), stopped)
        assert got.score.f1 == 0.0 or got.text  # a random model's words rarely match


def test_a_conversations_shared_prompt_is_read_once(tiny_model: Path) -> None:
    """Five questions after one long story: the model reads the story once (prompt tokens counted at every
    forward call), and the answers are those of generation from scratch."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_multiturn.evaluation.answers import generate, questions

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    story = "Story: " + " ".join(f"Ann saw kite number {n} over the hill." for n in range(40))
    chat = [{"role": "system", "content": story}]
    for n in range(5):
        chat += [{"role": "user", "content": f"Question {n}?"}, {"role": "assistant", "content": f"Answer {n}."}]
    asked = questions([chat])
    prompts = [tok.apply_chat_template(list(q.context), add_generation_prompt=True, tokenize=True, return_dict=False)
               for q in asked]
    read = []
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: read.append(kwargs["input_ids"].shape[1]),
                                           with_kwargs=True)
    try:
        answered = generate(model, tok, asked, max_new_tokens=4)
    finally:
        hook.remove()
    # the last prompt once, plus at most one prompt token and four generated tokens a question
    assert sum(read) <= len(prompts[-1]) + 5 * len(asked) < sum(len(p) for p in prompts) / 3
    for got, ids in zip(answered, prompts):
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)[0, len(ids):].tolist()
        end = out.index(tok.eos_token_id) if tok.eos_token_id in out else None
        assert got.text == tok.decode(out[:end], skip_special_tokens=True).strip()
        assert got.stopped == (end is not None)


def test_conversations_of_different_lengths_batched_in_groups_answer_as_one_at_a_time(tiny_model: Path) -> None:
    """Four conversations with 1 to 4 questions and stories of different lengths, three a batch: the rows'
    caches are left-padded to the longest, rows leave the batch as their conversations end, and every answer
    (its tokens, through the stop) is what generation from the whole prompt alone gives."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_multiturn.evaluation.answers import generate, questions

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    chats = []
    for c, length in enumerate((3, 40, 11, 25)):
        chat = [{"role": "user", "content": " ".join(f"Ben kept bird {n}." for n in range(length))},
                {"role": "assistant", "content": "Yes."}]
        for n in range(c):
            chat += [{"role": "user", "content": f"And bird {n}?"}, {"role": "assistant", "content": f"Bird {n}."}]
        chats.append(chat)
    asked = questions(chats)
    assert len(asked) == 10
    seen: list[int] = []
    answered = generate(model, tok, asked, batch_size=3, max_new_tokens=5, progress=seen.append)
    # the first group: conversations 3, 2, 1 (most questions first) for 4 rounds, then conversation 0
    assert seen == [3, 3, 2, 1, 1]
    for got in answered:
        ids = tok.apply_chat_template(list(got.question.context), add_generation_prompt=True, tokenize=True,
                                      return_dict=False)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)[0, len(ids):].tolist()
        end = out.index(tok.eos_token_id) if tok.eos_token_id in out else None
        assert (got.text, got.stopped) == (tok.decode(out[:end], skip_special_tokens=True).strip(), end is not None)
