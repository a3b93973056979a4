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


#: Phi-4-mini's way: a call's arguments printed with Jinja's `{{ }}`, which is Python's `str()` of a dict
#: (`{'city': 'Paris'}`, quotes and escapes by `repr`).
REPR_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }} {{ c.function.arguments }}"
    "</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_arguments_printed_with_python_str_are_located_not_refused() -> None:
    """Before: the sentinels came out of `repr` escaped and the row was refused, blaming the user message."""
    import copy
    import json

    import corpus

    tok = copy.copy(template_tokenizer("qwen_25"))
    tok.chat_template = REPR_TEMPLATE
    chat = [{**m, "tool_calls": [{**c, "function": {**c["function"], "arguments": json.dumps(
        {"city": "Zürich", "note": "it's \"hot\"\n"})}} for c in m["tool_calls"]]} if m.get("tool_calls") else m
            for m in CHAT]
    expected = corpus.oracle(tok, chat, None, ("<|im_end|>",))
    assert "{'city': 'Zürich', 'note': 'it\\'s \"hot\"\\n'}" in expected[1][1]
    out = strategy(tok, "instruction").labelled({"messages": [chat]}, [0])
    rows = list(out)
    text = rows[0].item.rendered.text
    runs = [text[a:b] for a, b in corpus.trained_runs(rows[0].item.offsets.tolist(), rows[0].labels.tolist())]
    assert rows[0].item.input_ids.tolist() == tok.apply_chat_template(
        corpus.as_template_reads(tok, chat), tokenize=True, return_dict=False)
    assert runs == [expected[1][1], expected[3][1]]
