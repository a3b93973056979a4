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
from axolotl_multiturn.engine.spans import Kind

#: A test and its negative control share nothing, but both tests of a template share its tokenizer: one worker.
pytestmark = [pytest.mark.axolotl, pytest.mark.slow, pytest.mark.xdist_group("behaviour")]
CHATS = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in (
    ("What colour is the kite?", "Blue."), ("Who has the apples?", "Ann has them."),
    ("Where did Tom go?", "To the river."), ("How many boats?", "Three boats."))]
MAX_NEW_TOKENS = 16


def labelled(tok: Any, mask_closing: bool) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per chat; with `mask_closing`, the closing spans' tokens are masked too."""
    s = strategy(tok, "instruction")
    out = []
    for row in s.labelled({"messages": CHATS}, range(len(CHATS))):
        decisions = span_trained(row.item.rendered, row.item.messages, s.mode)
        if mask_closing:
            decisions &= [span.kind is not Kind.CLOSING for span in row.item.rendered.spans]
        out.append((row.item.input_ids.tolist(), row.item.labels(decisions).tolist()))
    return out


#: Full fine-tuning steps per family: qwen3's answers sit after four more template-written tokens. At 200 steps
#: qwen3 still answered "Ann has." on this machine (loss 0.19); at 300 the loss is 0.012, on both lanes.
STEPS = {"chatml": 120, "qwen3": 300}


@cache
def trained(template: str, mask_closing: bool) -> tuple[Any, float]:
    """The fine-tuned model and its last training loss (on the tokens its labels train)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from axolotl_multiturn.models.tiny import fine_tune

    tok = template_tokenizer(template)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    loss = fine_tune(model, labelled(tok, mask_closing), STEPS[template], 1e-2, tok.pad_token_id)
    return model, loss


def generate(template: str, model: Any, chat: list[dict]) -> tuple[str, bool]:
    """Greedy generation after the generation prompt: (text, whether it ended on the end-of-turn token)."""
    from axolotl_multiturn.models.tiny import answer

    return answer(model, template_tokenizer(template), chat[:1], MAX_NEW_TOKENS)


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


def test_compare_trains_once_per_mode_and_tabulates(tmp_path: Any, tiny_model: Any) -> None:
    """`axolotl-multiturn compare`: one row per mode; trained tokens as each mode's labels count them
    (none: every token), held-out loss finite, answers counted."""
    import json

    import yaml
    from conftest import ROOT
    from rich.console import Console

    from axolotl_multiturn.reports.compare import compare

    rows = [[{"role": "system", "content": "Answer from the story."}, *chat] for chat in CHATS] * 2
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    config = yaml.safe_load((ROOT / "tests" / "data" / "tiny-train.yml").read_text())
    config.update(base_model=str(tiny_model), output_dir=str(tmp_path / "out"))
    config["datasets"][0]["path"] = str(data)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    console = Console(file=open(tmp_path / "out.txt", "w"), width=200)
    results = compare(path, ["instruction", "boilerplate", "none"], steps=3, held_out=2, train_rows=4,
                      console=console)
    tok = template_tokenizer("chatml")
    tokens = sum(len(tok.apply_chat_template(r, tokenize=True, return_dict=False)) for r in rows[:4])
    answers = sum(len(tok(c[1]["content"] + "<|im_end|>", add_special_tokens=False)["input_ids"]) for c in CHATS)
    assert [(r.mode, r.tokens, r.asked) for r in results] == [("instruction", tokens, 2), ("boilerplate", tokens, 2),
                                                               ("none", tokens, 2)]
    assert results[0].trained_tokens == answers
    assert results[0].trained_tokens < results[1].trained_tokens < results[2].trained_tokens == tokens
    assert all(r.held_out_loss == r.held_out_loss and r.held_out_loss > 0 for r in results)
    assert "held-out answers exact" in (tmp_path / "out.txt").read_text()
