"""Labels by generation, checked against an independent prefix-diff oracle on real vocabularies.

For assistant turn i, `P_i = apply_chat_template(messages[:i], tools, add_generation_prompt=True)` and
`F_i = apply_chat_template(messages[:i+1], tools)`; its generation `G_i` is `F_i` after `P_i` through the
model's stop token (`corpus.oracle`: the stop set of the model whose eos the tokenizer has). Under
`instruction` masking every turn must be trained exactly once, in a row whose token ids are
`apply_chat_template` of a prefix of the conversation (tokenized apart only at a generation start a token
would straddle), whose text before the trained run is `P_i` and whose trained run is `G_i`. The oracle uses
only `apply_chat_template` and the tokenizer's offsets, never the engine. Turns whose `P_i` is not a prefix
of `F_i` have no such row (docs/templates.md); the engine must count them, and the oracle then checks the
row is `F_i` itself.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import corpus
import pytest
from axolotl.utils.chat_templates import get_chat_template
from chats import TRAPS, strategy
from corpus import CLOCK, WEATHER, as_template_reads, call, render
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vocabularies import tokenizer

from axolotl_multiturn.models.tiny import qwen_tokenizer

# Nine-character ids: Mistral's templates refuse others.
SHAPES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = {
    "single_call": ([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call("call00001", "get_weather", '{"city": "Paris"}')]},
        {"role": "tool", "tool_call_id": "call00001", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21 °C and clear in Paris."},
    ], [WEATHER]),
    "parallel_calls_with_content": ([
        {"role": "system", "content": "You check facts with tools."},
        {"role": "user", "content": "Weather in Oslo for 3 days, and the time?"},
        {"role": "assistant", "content": "Let me check both.",
         "tool_calls": [call("callA0001", "get_weather", {"city": "Oslo", "days": 3}),
                        call("callB0002", "get_time", {})]},
        {"role": "tool", "tool_call_id": "callA0001", "content": "<b>snow</b> & \"ice\""},
        {"role": "tool", "tool_call_id": "callB0002", "content": "12:00"},
        {"role": "assistant", "content": "Snow in Oslo; it is noon."},
    ], [WEATHER, CLOCK]),
    "several_queries": ([
        {"role": "user", "content": "Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call("callC0003", "get_weather", '{"city": "Paris"}')]},
        {"role": "tool", "tool_call_id": "callC0003", "content": "rain"},
        {"role": "assistant", "content": "Rain in Paris."},
        {"role": "user", "content": "And Zürich? 日本語 🎉"},
        {"role": "assistant", "content": None, "tool_calls": [call("callD0004", "get_weather", '{"city": "Zürich"}')]},
        {"role": "tool", "tool_call_id": "callD0004", "content": "sun ☀"},
        {"role": "assistant", "content": "Sun in Zürich ☀."},
    ], [WEATHER]),
    "plain": ([
        {"role": "user", "content": "Who walked?"}, {"role": "assistant", "content": "Anna"},
        {"role": "user", "content": "Where?"}, {"role": "assistant", "content": "to the river"},
    ], None),
    "reasoning": ([
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "Two and two make four."},
        {"role": "user", "content": "3+3?"},
        {"role": "assistant", "content": "6", "reasoning_content": "Three and three make six."},
    ], None),
}

TEMPLATE_SPECIALS = {
    "llama4": ("<|begin_of_text|>", "<|header_start|>", "<|header_end|>", "<|eot|>", "<|python_start|>",
               "<|python_end|>"),
    "deepseek_v3": ("<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>",
                    "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
                    "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
                    "<｜tool▁output▁end｜>", "<｜tool▁sep｜>"),
    "exaone4": ("[|user|]", "[|assistant|]", "[|system|]", "[|tool|]", "[|endofturn|]"),
    "gemma4": ("<bos>", "<eos>", "<|turn>", "<turn|>", "<|tool_call>", "<tool_call|>", "<|tool_response>",
               "<tool_response|>", "<|tool>", "<tool|>", "<|channel>", "<channel|>", "<|\"|>", "<|think|>"),
    "jamba": ("<|startoftext|>", "<|bom|>", "<|eom|>"),
    "phi_4": ("<|im_sep|>",),
}
TOKENS = {"llama4": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot|>"},
          "deepseek_v3": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
          "exaone4": {"eos_token": "[|endofturn|]"},
          "gemma4": {"bos_token": "<bos>", "eos_token": "<turn|>"},
          "jamba": {"bos_token": "<|startoftext|>", "eos_token": "<|eom|>"},
          "phi_4": {"eos_token": "<|im_end|>"}}


@cache
def template_tokenizer(name: str) -> Any:
    """A real vocabulary with the template's markers as special tokens (Tekken for Mistral)."""
    if name in ("qwen_25", "qwen3", "qwen3_5", "chatml", "command_a_tool_use", "mistral_v3_tekken"):
        base = {"command_a_tool_use": "command_a", "qwen3_5": "qwen3"}.get(name, name)
        if name == "mistral_v3_tekken":
            return tokenizer(name)
        tok = copy.deepcopy(tokenizer(base))
        tok.chat_template = get_chat_template(name)
        return tok
    return qwen_tokenizer(TEMPLATE_SPECIALS[name], get_chat_template(name), **TOKENS[name])


def oracle(tok: Any, messages: list[dict], tools: Any) -> dict[int, tuple[str, str]]:
    """The corpus oracle, with the stop set of the model whose eos the tokenizer has."""
    return corpus.oracle(tok, messages, tools, corpus.stops_for(tok))


def trained_runs(tok: Any, text: str, labels: list[int]) -> list[tuple[int, int]]:
    """Trained character runs of a row tokenized whole."""
    offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return corpus.trained_runs(offsets, labels)


#: Documented exceptions (docs/templates.md): shapes a template cannot render.
CANNOT = {
    ("mistral_v3_tekken", "reasoning"): "no reasoning field",
    ("deepseek_v3", "reasoning"): "no reasoning field",
}
TEMPLATES = ["qwen_25", "qwen3", "qwen3_5", "llama4", "mistral_v3_tekken", "deepseek_v3", "command_a_tool_use",
             "exaone4", "jamba", "gemma4", "phi_4"]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_turn_is_trained_once_as_its_generation(template: str, shape: str) -> None:
    assert_oracle(template, *SHAPES[shape])


@pytest.mark.parametrize("trap", list(TRAPS))
@pytest.mark.parametrize("template", ["qwen3", "qwen3_5"])
def test_traps_on_templates_that_render_history_differently(template: str, trap: str) -> None:
    assert_oracle(template, TRAPS[trap], None)


def assert_oracle(template: str, messages: list[dict], tools: Any) -> None:
    tok = template_tokenizer(template)
    row = {"messages": messages, **({"tools": tools} if tools else {})}
    expected = oracle(tok, messages, tools)
    spaced = {i: corpus.spaced_start(tok, messages, tools, i) for i, (_, gen) in expected.items() if not gen}
    rows = list(strategy(tok, "instruction").labelled({k: [v] for k, v in row.items()}, [0]))
    served: list[int] = []
    for labelled in rows:
        item = labelled.item
        count = len(item.messages)
        assert [m.content for m in item.messages] == [
            m["content"] if not isinstance(m["content"], list) else m["content"] for m in messages[:count]]
        text = render(tok, messages[:count], tools)
        cuts = corpus.cuts_of(tok, text, messages[:count], labelled)
        assert not isinstance(cuts, str), cuts
        ids, offsets = corpus.tokenize(tok, text, cuts)
        assert item.input_ids.tolist() == ids
        if not cuts:
            assert ids == tok.apply_chat_template(as_template_reads(tok, messages[:count]), tools=tools,
                                                  tokenize=True, return_dict=False)
        labels = labelled.labels.tolist()
        assert all(label in (-100, i) for i, label in zip(ids, labels))
        for start, end in corpus.trained_runs(offsets, labels):
            turn = next(i for i, (prompt, generation) in expected.items()
                        if (generation and text[:start] == prompt and text[start:end] == generation)
                        or (not generation and i not in served and corpus.undefined_run(
                            prompt, spaced[i], corpus.stops_for(tok), text, start, end, lambda: 0)))
            served.append(turn)
    assert sorted(served) == sorted(expected), (served, expected)
    assert rows[0].no_parity == sum(1 for _, generation in expected.values() if not generation)


QWEN3_PLAIN = SHAPES["plain"][0]
QWEN3_REASONING = SHAPES["reasoning"][0]


def runs_of(tok: Any, labelled: Any) -> list[str]:
    text = labelled.item.rendered.text
    return [text[a:b] for a, b in trained_runs(tok, text, labelled.labels.tolist())]


def test_parity_last_trains_only_the_last_turn_and_counts_the_rest() -> None:
    tok = template_tokenizer("qwen3")
    rows = list(strategy(tok, "instruction", parity="last").labelled({"messages": [QWEN3_PLAIN]}, [0]))
    assert len(rows) == 1 and rows[0].untrained == 1
    prompt, generation = oracle(tok, QWEN3_PLAIN, None)[3]
    assert runs_of(tok, rows[0]) == [generation] == ["</think>\n\nto the river<|im_end|>"]


def test_parity_off_keeps_the_whole_render_and_counts_turns_out_of_context() -> None:
    tok = template_tokenizer("qwen3")
    rows = list(strategy(tok, "instruction", parity="off").labelled({"messages": [QWEN3_PLAIN]}, [0]))
    assert len(rows) == 1 and rows[0].outside == 1
    assert runs_of(tok, rows[0]) == ["Anna<|im_end|>", "</think>\n\nto the river<|im_end|>"]


def test_reasoning_mask_keeps_the_trace_masked_inside_a_trained_generation() -> None:
    tok = template_tokenizer("qwen3")
    chat = [{"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "reasoning_content": "Two and two make four"}]
    masked = [runs_of(tok, row) for row in strategy(tok, "instruction", reasoning="mask").labelled(
        {"messages": [chat]}, [0])]
    assert masked == [["\n</think>\n\n4<|im_end|>"]]
    trained = [runs_of(tok, row) for row in strategy(tok, "instruction").labelled({"messages": [chat]}, [0])]
    assert trained == [["Two and two make four\n</think>\n\n4<|im_end|>"]]


def test_reasoning_mask_refuses_a_trace_merged_into_the_markup() -> None:
    """Qwen2's BPE makes `.\n` one token: half trace (masked), half markup (trained)."""
    from axolotl_multiturn.chat import RowError

    with pytest.raises(RowError, match=r"^test row 0: token \d+ \(id \d+\) merges message 3 \(assistant\) "
                                       r"reasoning and message 3 \(assistant\) markup"):
        list(strategy(template_tokenizer("qwen3"), "instruction", reasoning="mask").labelled(
            {"messages": [QWEN3_REASONING]}, [0]))


@st.composite
def agent_conversations(draw: Any) -> list[dict[str, Any]]:
    """Random valid rows: an optional system message, user turns answered directly or through tool
    calls (parallel or not), optional reasoning and weights; every text unique, so turns can be found."""
    counter = iter(range(10_000))
    text = lambda what: f"{what} {next(counter)} " + draw(st.sampled_from(["", "é", "日本", "<b>x</b>", "a b"]))
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": text("system")})
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": text("question")})
        for _ in range(draw(st.integers(0, 2))):
            calls = [call(f"call{next(counter):05d}", "get_weather", {"city": text("city")})
                     for _ in range(draw(st.integers(1, 2)))]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            messages += [{"role": "tool", "tool_call_id": c["id"], "content": text("result")} for c in calls]
        answer: dict[str, Any] = {"role": "assistant", "content": text("answer")}
        if draw(st.booleans()):
            answer["reasoning_content"] = text("thought")
        if draw(st.integers(0, 4)) == 0:
            answer["weight"] = draw(st.sampled_from([0, 1]))
        messages.append(answer)
    return messages


def as_dicts(messages: Any) -> list[dict[str, Any]]:
    """A row's messages back in the data format (to render the row with `apply_chat_template`)."""
    out = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [call(c.id, c.name, dict(c.arguments)) for c in m.tool_calls]
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        if m.reasoning is not None:
            d["reasoning_content"] = m.reasoning
        out.append(d)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agent_conversations(), st.sampled_from(["qwen3", "qwen_25", "llama4", "mistral_v3_tekken"]),
       st.sampled_from(["instruction", "boilerplate"]), st.sampled_from([96, 160, 4096]))
def test_every_trained_turn_is_served_once_in_its_inference_context(
        messages: list[dict], template: str, mode: str, limit: int) -> None:
    """Property: each assistant turn the mode trains is trained exactly once, as its generation after its
    prompt in the row it is trained in (the row's own `P_j`), or counted as lost or without parity; no
    row is longer than sequence_len."""
    from axolotl_multiturn.engine.masking import Mode, message_trained
    from axolotl_multiturn.engine.validate import parse_conversation

    tok = template_tokenizer(template)
    s = strategy(tok, mode, on_unlabelable="skip")
    s.sequence_len = limit
    rows = list(s.labelled({"messages": [messages], "tools": [[WEATHER]]}, [0]))
    if rows[0].status == "skipped":  # a token merging a content with template text: refused, counted
        return
    parsed = parse_conversation({"messages": messages, "tools": [WEATHER]})
    decisions = message_trained(parsed.messages, Mode(mode), False)
    wanted = {m["content"] for m, d in zip(messages, decisions) if m["role"] == "assistant" and d
              and m["content"]} | {m["tool_calls"][0]["id"] for m, d in zip(messages, decisions)
                                   if m["role"] == "assistant" and d and m.get("tool_calls")}
    seen: list[str] = []
    for row in rows:
        if row.item is None:
            continue
        assert len(row.item.input_ids) <= limit
        row_messages = as_dicts(row.item.messages)
        expected = oracle(tok, row_messages, [WEATHER])
        text = render(tok, row_messages, [WEATHER])
        runs = trained_runs(tok, text, row.labels.tolist())
        for j, (prompt, generation) in expected.items():
            m = row_messages[j]
            if not row.item.messages[j].weight and row.item.messages[j].weight is not None:
                continue
            if not generation or (m["content"] or m["tool_calls"][0]["id"]) not in wanted:
                continue
            start = len(prompt)
            if (start, start + len(generation)) in runs or any(a <= start and start + len(generation) <= b
                                                               for a, b in runs):
                seen.append(m["content"] or m["tool_calls"][0]["id"])
    served = sorted(seen)
    assert len(served) == len(set(served)), served  # never twice
    missing = wanted - set(served)
    assert len(missing) <= sum(r.lost + r.no_parity for r in rows), (missing, rows[0])
