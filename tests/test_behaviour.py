"""The end-to-end proof that labels matter: a tiny model trained on our labels answers and stops.

A random-weight tiny Llama (Qwen2's real vocabulary) is fully fine-tuned on a handful of chats under
`instruction` masking; greedy generation after the template's generation prompt must reproduce each
trained generation (the prefix-diff oracle's `G_i`) and end on the end-of-turn token by itself. The negative
control trains the same model on the same labels with the closing tokens masked (a test-only policy): it
learns the answers but never learns to stop. Two families: chatml, and qwen3, whose generation starts with
text the template writes (`</think>\\n\\n`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import torch
from chats import strategy
from test_generations import oracle, template_tokenizer

from axolotl_multiturn.engine.encode import span_trained
from axolotl_multiturn.engine.render import Kind

pytestmark = [pytest.mark.axolotl, pytest.mark.slow]
CHATS = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in (
    ("What colour is the kite?", "Blue."), ("Who has the apples?", "Ann has them."),
    ("Where did Tom go?", "To the river."), ("How many boats?", "Three boats."))]
MAX_NEW_TOKENS = 16


def labelled(tok: Any, mask_closing: bool) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per chat; with `mask_closing`, the closing spans' tokens are masked too."""
    s = strategy(tok, "instruction")
    out = []
    for row in s.labelled({"messages": CHATS}, range(len(CHATS))):
        decisions = span_trained(row.item.rendered.spans, row.item.messages, s.mode)
        if mask_closing:
            decisions &= [span.kind is not Kind.CLOSING for span in row.item.rendered.spans]
        out.append((row.item.input_ids.tolist(), row.item.labels(decisions).tolist()))
    return out


#: Full fine-tuning steps per family: qwen3's answers sit after four more template-written tokens.
STEPS = {"chatml": 120, "qwen3": 200}


@cache
def trained(template: str, mask_closing: bool) -> tuple[Any, float]:
    """The fine-tuned model and its last training loss (on the tokens its labels train)."""
    steps = STEPS[template]
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = template_tokenizer(template)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    rows = labelled(tok, mask_closing)
    pad = torch.nn.utils.rnn.pad_sequence
    ids = pad([torch.tensor(i) for i, _ in rows], batch_first=True, padding_value=tok.pad_token_id)
    labels = pad([torch.tensor(lab) for _, lab in rows], batch_first=True, padding_value=-100)
    mask = pad([torch.ones(len(i), dtype=torch.long) for i, _ in rows], batch_first=True, padding_value=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), loss.item()


def generate(template: str, model: Any, chat: list[dict]) -> tuple[str, bool]:
    """Greedy generation after the generation prompt: (text, whether it ended on the end-of-turn token)."""
    tok = template_tokenizer(template)
    prompt = tok.apply_chat_template(chat[:1], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    new = out[0, prompt["input_ids"].shape[1]:].tolist()
    return tok.decode(new), bool(new) and new[-1] == tok.eos_token_id


@pytest.mark.parametrize("template", ["chatml", "qwen3"])
def test_trained_model_answers_and_stops_by_itself(template: str) -> None:
    model, _ = trained(template, mask_closing=False)
    tok = template_tokenizer(template)
    for chat in CHATS:
        _, generation = oracle(tok, chat, None)[1]
        assert generate(template, model, chat) == (generation, True)


@pytest.mark.parametrize("template", ["chatml", "qwen3"])
def test_negative_control_without_closing_labels_never_stops(template: str) -> None:
    model, loss = trained(template, mask_closing=True)
    assert loss < 0.25  # from about 11.9: it learned what its labels train, the answers but not their end
    for chat in CHATS:
        text, stopped = generate(template, model, chat)
        assert not stopped, text
