"""Tool-call arguments reach a template as the user wrote them.

The transformers convention passes arguments as objects, which a template serializes its own way; a
template that cannot take objects (DeepSeek V3 concatenates them as strings) must get the data's string
itself, not a re-serialization of it (`{"query":"x","city":"Z\\u00fcrich"}` used to be trained as
`{"query": "x", "city": "Zürich"}`). The oracle is `apply_chat_template` with that string.
"""

from __future__ import annotations

from chats import strategy, trained_runs
from test_generations import template_tokenizer

WRITTEN = '{"query":"x","city":"Z\\u00fcrich"}'
CHAT = [{"role": "user", "content": "Weather in Zürich?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": WRITTEN}}]},
        {"role": "tool", "tool_call_id": "call00001", "content": "sunny"},
        {"role": "assistant", "content": "Sunny in Zürich."}]


def test_a_string_template_gets_the_arguments_as_written() -> None:
    tok = template_tokenizer("deepseek_v3")
    shown = [{**m, "content": m["content"] or ""} for m in CHAT]
    expected = tok.apply_chat_template(shown, tokenize=True, return_dict=False)
    out = strategy(tok, "instruction").tokenize_prompt({"messages": [CHAT]})
    assert out["input_ids"] == [expected]
    text = tok.decode(expected)
    assert WRITTEN in text and "Zürich" not in text.split("<｜tool▁outputs▁begin｜>")[0].split("<｜Assistant｜>")[1]
    runs = trained_runs(tok, shown, out["labels"][0])
    assert any(WRITTEN in run for run in runs), runs
