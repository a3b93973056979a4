"""Generations end where the model stops: through the token that ends the turn or the call, never short of it.

Two closings the engine used to cut short, rebuilt as small templates on Qwen2's real vocabulary with the
families' markers as special tokens:

- a Llama-4-style pythonic call closed by `)<|eom|>`, where `<|eom|>` is neither the eos nor a known end
  marker: the labels stopped after the last argument and masked `)<|eom|>`;
- a turn closed by a generic end marker and then the model's real stop token (`<|im_end|><|endofturn|>`,
  calls `<|im_end|><|stop|>`): the labels stopped at `<|im_end|>`.

The oracle is the prefix diff of `apply_chat_template`: turn i's generation is `F_i` after `P_i`, less the
whitespace the template writes after it (these templates write nothing else there); never the engine.
"""

from __future__ import annotations

from typing import Any

import pytest
from chats import strategy, trained_runs

from axolotl_multiturn.models.tiny import qwen_tokenizer

PYTHONIC = (
    "{%- for m in messages -%}"
    "<|header_start|>{{ m.role }}<|header_end|>\n"
    "{%- if m.tool_calls -%}"
    "{%- for c in m.tool_calls -%}{{ c.function.name }}("
    "{%- for k, v in c.function.arguments.items() -%}{{ k }}={{ v }}{%- endfor -%})"
    "{%- endfor -%}<|eom|>"
    "{%- else -%}{{ m.content }}<|eot|>{%- endif -%}\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|header_start|>assistant<|header_end|>\n{%- endif -%}")
DOUBLE_STOP = (
    "{%- for m in messages -%}"
    "<|im_start|>{{ m.role }}\n"
    "{%- if m.tool_calls -%}"
    "{%- for c in m.tool_calls -%}<tool_call>{{ c.function.name }} {{ c.function.arguments | tojson }}</tool_call>"
    "{%- endfor -%}<|im_end|><|stop|>"
    "{%- elif m.role == 'assistant' -%}{{ m.content }}<|im_end|><|endofturn|>"
    "{%- else -%}{{ m.content }}<|im_end|>{%- endif -%}\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}")
TEMPLATES = {
    "pythonic_eom": (PYTHONIC, ("<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>"), "<|eot|>"),
    "double_stop": (DOUBLE_STOP, ("<|endofturn|>", "<|stop|>"), "<|endofturn|>"),
}
CHAT = [{"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call00001", "type": "function", "function": {"name": "get_weather",
                                                                 "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "call00001", "content": "sunny"},
        {"role": "assistant", "content": "Sunny in Paris."}]


def template_tokenizer(name: str) -> Any:
    template, specials, eos = TEMPLATES[name]
    return qwen_tokenizer(specials, template, eos_token=eos)


def generations(tok: Any, messages: list[dict]) -> list[str]:
    """The oracle: each assistant turn's `F_i` after `P_i`, less trailing whitespace."""
    out = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        shown = [{**x, "content": x["content"] or ""} for x in messages]
        prompt = tok.apply_chat_template(shown[:i], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(shown[:i + 1], tokenize=False)
        assert full.startswith(prompt)
        out.append(full[len(prompt):].rstrip())
    return out


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_each_turn_trains_through_the_token_that_ends_it(name: str) -> None:
    tok = template_tokenizer(name)
    expected = generations(tok, CHAT)
    assert expected == {"pythonic_eom": ["get_weather(city=Paris)<|eom|>", "Sunny in Paris.<|eot|>"],
                        "double_stop": ['<tool_call>get_weather {"city": "Paris"}</tool_call><|im_end|><|stop|>',
                                        "Sunny in Paris.<|im_end|><|endofturn|>"]}[name]
    out = strategy(tok, "instruction").tokenize_prompt({"messages": [CHAT]})
    [ids], [labels] = out["input_ids"], out["labels"]
    shown = [{**x, "content": x["content"] or ""} for x in CHAT]
    assert ids == tok.apply_chat_template(shown, tokenize=True, return_dict=False)
    assert trained_runs(tok, shown, labels) == expected
