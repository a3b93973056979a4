"""Templates whose Jinja tags do not trim (`{% ... %}`, not `{%- ... -%}`): indentation leaks into the render,
and a different amount of it in the history than in the generation prompt (issue #32, item 1).

The two templates here are written for these tests in the style of the DeepSeek R1 and V3.1 tool templates
that vLLM ships: a tool result whose closing marker is written only by the next turn (no generation prompt
after a tool result), and an assistant header indented one way in the history and another in the generation
prompt. transformers renders with `trim_blocks` and `lstrip_blocks`, so the spaces in front of `{{ ... }}`
stay. Such a turn has no inference context in any render (its `P_i` is not a prefix of `F_i`): it must be
counted as undefined and train only what the model writes (its text, call markup and closing through the
stop token), never the indentation or the markup in front of it that the generation prompt holds. A third
template renders an earlier turn with other indentation once a later message follows: the turn must get a
row of its own under `parity: expand`. Vocabulary: Qwen2's real BPE, the DeepSeek markers as special tokens.
"""

from __future__ import annotations

import copy
from typing import Any

import corpus
import pytest
from chats import strategy
from corpus import WEATHER, call
from test_generations import TEMPLATE_SPECIALS, TOKENS
from vocabularies import tokenizer

from axolotl_multiturn.models.tiny import qwen_tokenizer

#: Tool results closed by the turn after them: `<｜tool▁outputs▁end｜>` is written, indented by 12, in
#: front of the answer, while a render that ends on a tool result writes it indented by 4 and then a
#: newline, and no generation prompt follows.
OUTPUTS_CLOSED_LATE = """{% set ns = namespace(tool=false) %}
{{- bos_token }}
{%- for message in messages %}
    {%- if message['role'] == 'user' %}
        {%- set ns.tool = false -%}
        {{'<｜User｜>' + message['content'] + '<｜Assistant｜>'}}
    {%- elif message['role'] == 'assistant' and message['tool_calls'] %}
        {%- for call in message['tool_calls'] %}
            {{'<｜tool▁call▁begin｜>' + call['function']['name'] + '<｜tool▁sep｜>' + call['function']['arguments'] | tojson + '<｜tool▁call▁end｜>'}}
        {%- endfor %}
        {{'<｜end▁of▁sentence｜>'}}
    {%- elif message['role'] == 'assistant' %}
        {%- if ns.tool %}
            {{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}
            {%- set ns.tool = false %}
        {%- else %}
            {{- message['content'] + '<｜end▁of▁sentence｜>'}}
        {%- endif %}
    {%- elif message['role'] == 'tool' %}
        {%- if not ns.tool %}
            {{'<｜tool▁outputs▁begin｜>'}}
        {%- endif %}
        {%- set ns.tool = true %}
        {{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}
    {%- endif %}
{%- endfor -%}
{% if ns.tool %}
    {{'<｜tool▁outputs▁end｜>'}}
{% endif %}
{% if add_generation_prompt and not ns.tool and messages[-1]['role'] != 'user' %}
    {{- '<｜Assistant｜>'}}
{%- endif %}"""

#: The assistant header after a user turn: indented by 6 and glued to `</think>` in the history; indented
#: by 2, with `</think>` indented by 4, in the generation prompt.
HEADER_INDENTED_TWICE = """{{ bos_token }}
{%- set ns = namespace(user=false) %}
{%- for message in messages %}
  {%- if message['role'] == 'user' %}
    {%- set ns.user = true -%}
    {{'<｜User｜>' + message['content']}}
  {%- elif message['role'] == 'assistant' %}
    {%- if ns.user %}
      {{'<｜Assistant｜></think>'}}
    {%- endif %}
    {%- set ns.user = false -%}
    {%- if message['tool_calls'] %}
      {%- for call in message['tool_calls'] %}
        {{'<｜tool▁call▁begin｜>' + call['function']['name'] + '<｜tool▁sep｜>' + call['function']['arguments'] + '<｜tool▁call▁end｜>'}}
      {%- endfor %}
      {{'<｜end▁of▁sentence｜>'}}
    {%- else %}
      {{message['content'] + '<｜end▁of▁sentence｜>'}}
    {%- endif %}
  {%- elif message['role'] == 'tool' %}
    {%- set ns.user = false -%}
    {{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}
  {%- endif %}
{%- endfor -%}
{%- if add_generation_prompt and ns.user %}
  {{'<｜Assistant｜>'}}
  {%- if not thinking %}
    {{'</think>'}}
  {%- endif %}
{% endif %}"""

#: ChatML, but an assistant turn that a later message follows is indented by 4.
EARLIER_TURNS_INDENTED = """{%- for message in messages %}
{%- if message['role'] == 'assistant' and not loop.last %}
    {{'<|im_start|>assistant\n' + message['content'] + '<|im_end|>\n'}}
{%- else %}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n'}}
{%- endif %}"""

#: Two questions answered through a tool call each, then a plain one.
AGENT = [
    {"role": "user", "content": "Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [call("call00001", "get_weather", {"city": "Paris"})]},
    {"role": "tool", "tool_call_id": "call00001", "content": "rain"},
    {"role": "assistant", "content": "Rain in Paris."},
    {"role": "user", "content": "And Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [call("call00002", "get_weather", {"city": "Rome"})]},
    {"role": "tool", "tool_call_id": "call00002", "content": "sun"},
    {"role": "assistant", "content": "Sun in Rome."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You are welcome."},
]
EOS = "<｜end▁of▁sentence｜>"


def deepseek(template: str) -> Any:
    return qwen_tokenizer(TEMPLATE_SPECIALS["deepseek_v3"], template, **TOKENS["deepseek_v3"])


def runs(rows: list[Any]) -> list[list[str]]:
    """Per row, the text under each run of trained tokens, cut by the engine's own token offsets."""
    out = []
    for row in rows:
        text = row.item.rendered.text
        out.append([text[a:b] for a, b in corpus.trained_runs(row.item.offsets.tolist(), row.labels.tolist())])
    return out


def label(tok: Any, messages: list[dict], **options: Any) -> list[Any]:
    return list(strategy(tok, "instruction", **options).labelled({"messages": [messages], "tools": [[WEATHER]]}, [0]))


def test_an_answer_after_tool_results_trains_only_what_the_model_writes() -> None:
    """At inference the prompt ends `    <｜tool▁outputs▁end｜>\\n`; the history writes
    `            <｜tool▁outputs▁end｜>Rain in Paris.`: only the answer and its stop token are the model's."""
    tok = deepseek(OUTPUTS_CLOSED_LATE)
    prompt = corpus.render(tok, AGENT[:3], [WEATHER], True)
    assert prompt.endswith("<｜tool▁output▁end｜>    <｜tool▁outputs▁end｜>\n")
    assert "<｜tool▁output▁end｜>            <｜tool▁outputs▁end｜>Rain in Paris." in corpus.render(tok, AGENT, [WEATHER])
    rows = label(tok, AGENT)
    call = '            <｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{{"city": "{}"}}<｜tool▁call▁end｜>        ' + EOS
    assert runs(rows) == [[call.format("Paris"), "Rain in Paris." + EOS, call.format("Rome"), "Sun in Rome." + EOS,
                           "You are welcome." + EOS]]
    assert rows[0].no_parity == 2  # turns 3 and 7: no render shows them after their generation prompt


def test_a_turn_whose_header_is_indented_otherwise_trains_from_its_own_text() -> None:
    """At inference the prompt ends `  <｜Assistant｜>    </think>`; the history writes
    `      <｜Assistant｜></think>        <｜tool▁call▁begin｜>...`: the header, its indentation and the
    indentation in front of the call are not the model's."""
    tok = deepseek(HEADER_INDENTED_TWICE)
    assert corpus.render(tok, AGENT[:1], [WEATHER], True).endswith("Paris?  <｜Assistant｜>    </think>")
    assert "Paris?      <｜Assistant｜></think>        <｜tool▁call▁begin｜>" in corpus.render(tok, AGENT, [WEATHER])
    rows = label(tok, AGENT)
    call = '<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{{"city": "{}"}}<｜tool▁call▁end｜>      ' + EOS
    assert runs(rows) == [[call.format("Paris"), "      Rain in Paris." + EOS, call.format("Rome"),
                           "      Sun in Rome." + EOS, "You are welcome." + EOS]]
    assert rows[0].no_parity == 3  # turns 1, 5 and 9 follow a user turn


@pytest.mark.parametrize("template", [OUTPUTS_CLOSED_LATE, HEADER_INDENTED_TWICE], ids=["outputs_closed_late", "header_indented_twice"])
def test_both_templates_against_the_prefix_diff_oracle(template: str) -> None:
    """Every turn trained once: a defined turn as its generation after `P_i`, an undefined one as its
    generation after `P_i`'s characters and the whitespace after them (`corpus.spaced_start`)."""
    tok = deepseek(template)
    stops = (EOS,)
    expected = corpus.oracle(tok, AGENT, [WEATHER], stops)
    spaced = {i: corpus.spaced_start(tok, AGENT, [WEATHER], i) for i, (_, gen) in expected.items() if not gen}
    assert None not in spaced.values()  # whitespace-only differences, each of them
    (row,) = label(tok, AGENT)
    text = row.item.rendered.text
    assert text == corpus.render(tok, AGENT, [WEATHER])
    served = []
    for start, end in corpus.trained_runs(row.item.offsets.tolist(), row.labels.tolist()):
        served += [i for i, (prompt, gen) in expected.items()
                   if (gen and text[:start] == prompt and text[start:end] == gen)
                   or (not gen and corpus.undefined_run(prompt, spaced[i], stops, text, start, end, lambda: 0))]
    assert served == sorted(expected)
    assert row.no_parity == len(spaced)


CHAT = [{"role": "user", "content": "Who walked?"}, {"role": "assistant", "content": "Anna walked."},
        {"role": "user", "content": "Where?"}, {"role": "assistant", "content": "To the river."}]


@pytest.fixture(scope="module")
def indented() -> Any:
    tok = copy.deepcopy(tokenizer("chatml"))
    tok.chat_template = EARLIER_TURNS_INDENTED
    return tok


def test_an_earlier_turn_indented_in_the_history_gets_a_row_of_its_own(indented: Any) -> None:
    """The whole render holds `    <|im_start|>assistant\\nAnna walked.`, its own render `F_1` no indentation:
    the whole conversation serves turn 3 only; turn 1 is trained in the row that ends with it."""
    assert "<|im_end|>\n    <|im_start|>assistant\nAnna walked." in corpus.render(indented, CHAT, None)
    rows = list(strategy(indented, "instruction").labelled({"messages": [CHAT]}, [0]))
    assert [len(r.item.messages) for r in rows] == [4, 2]
    assert runs(rows) == [["To the river.<|im_end|>"], ["Anna walked.<|im_end|>"]]
    assert rows[0].item.rendered.text == corpus.render(indented, CHAT, None)
    assert rows[1].item.rendered.text == corpus.render(indented, CHAT[:2], None)


@pytest.mark.parametrize(("parity", "trained", "counts"), [
    ("last", [["To the river.<|im_end|>"]], {"untrained": 1, "outside": 0}),
    ("off", [["Anna walked.<|im_end|>", "To the river.<|im_end|>"]], {"untrained": 0, "outside": 1}),
])
def test_other_parity_settings_count_the_indented_turn(indented: Any, parity: str, trained: list, counts: dict) -> None:
    rows = list(strategy(indented, "instruction", parity=parity).labelled({"messages": [CHAT]}, [0]))
    assert runs(rows) == trained
    assert {"untrained": rows[0].untrained, "outside": rows[0].outside} == counts
