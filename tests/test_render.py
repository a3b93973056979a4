"""The renderer on small hand-written templates: where each message's content is, and the traps."""

from __future__ import annotations

import pytest

from axolotl_multiturn.engine.conversation import Conversation, Message
from axolotl_multiturn.engine.render import ChatRenderer
from axolotl_multiturn.engine.spans import Kind, Span, TemplateRejected, UnlabelableError

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CONV = (Message("user", "Hi"), Message("assistant", "Yo"))


def render(template: str, messages=CONV, stops=("<|im_end|>",), renderer=None):
    renderer = renderer or ChatRenderer(template, {}, stops)
    return renderer.render(renderer.plan(Conversation(tuple(messages))))


def spans(template: str, messages=CONV, stops=("<|im_end|>",)):
    """The rendered conversation and its spans as (text, kind, message), adjacent template text merged."""
    rendered = render(template, messages, stops)
    parts: list[tuple[str, Kind, int]] = []
    for s in rendered.spans:
        text = rendered.text[s.start:s.end]
        if parts and s.kind is Kind.TEMPLATE and parts[-1][1] is Kind.TEMPLATE:
            text = parts.pop()[0] + text
        parts.append((text, s.kind, s.message))
    return rendered, parts


def test_chatml_spans_cover_the_text_in_order() -> None:
    rendered, parts = spans(CHATML)
    assert parts == [
        ("<|im_start|>user\n", Kind.TEMPLATE, -1), ("Hi", Kind.CONTENT, 0), ("<|im_end|>\n<|im_start|>assistant\n", Kind.TEMPLATE, -1),
        ("Yo", Kind.CONTENT, 1), ("<|im_end|>", Kind.CLOSING, 1), ("\n", Kind.TEMPLATE, -1),
    ]
    assert "".join(p[0] for p in parts) == rendered.text


def test_two_token_closer_is_one_closing_span() -> None:
    template = "{% for m in messages %}<T>{{ m.content }}{% if m.role == 'assistant' %}<|END_RESPONSE|><|END_OF_TURN|>{% endif %}{% endfor %}"
    _, parts = spans(template, stops=("<|END_OF_TURN|>",))
    assert ("<|END_RESPONSE|><|END_OF_TURN|>", Kind.CLOSING, 1) in parts


def test_without_stop_strings_a_turn_closes_where_its_own_render_ends() -> None:
    """The generation runs through what the template writes to end the turn, less the whitespace between
    messages, whether or not a stop string is known (it used to stop at the last text, masking the end)."""
    _, parts = spans(CHATML, stops=())
    assert [p for p in parts if p[1] is Kind.CLOSING] == [("<|im_end|>", Kind.CLOSING, 1)]


def test_injected_default_system_prompt_is_template_text() -> None:
    template = "{% if messages[0].role != 'system' %}<sys>You are helpful.</sys>{% endif %}" + CHATML
    _, parts = spans(template)
    assert parts[0] == ("<sys>You are helpful.</sys><|im_start|>user\n", Kind.TEMPLATE, -1)


def test_trimmed_content_is_found() -> None:
    template = "{% for m in messages %}[{{ m.content | trim }}]{% endfor %}"
    _, parts = spans(template, (Message("user", "  Hi \n"), Message("assistant", "Yo")))
    assert ("Hi", Kind.CONTENT, 0) in parts


def test_identical_contents_and_role_name_contents_are_told_apart() -> None:
    messages = (Message("user", "user"), Message("assistant", "user"), Message("user", "user"),
                Message("assistant", "user"))
    rendered, parts = spans(CHATML, messages)
    assert [(s.start, s.message) for s in rendered.spans if s.kind is Kind.CONTENT] == [
        (17, 0), (54, 1), (86, 2), (123, 3)]


def test_system_folded_into_the_first_user_turn() -> None:
    template = ("{% set sys = messages[0].content if messages[0].role == 'system' else '' %}"
                "{% for m in messages if m.role != 'system' %}{% if m.role == 'user' %}[INST] "
                "{% if loop.first and sys %}{{ sys }}\n\n{% endif %}{{ m.content }} [/INST]"
                "{% else %} {{ m.content }}</s>{% endif %}{% endfor %}")
    messages = (Message("system", "Sys"), *CONV)
    _, parts = spans(template, messages, stops=("</s>",))
    # No generation prompt: the answer's leading space is text the model writes (its generation).
    assert [p for p in parts if p[1] is not Kind.TEMPLATE] == [
        ("Sys", Kind.CONTENT, 0), ("Hi", Kind.CONTENT, 1), (" ", Kind.MARKUP, 2), ("Yo", Kind.CONTENT, 2),
        ("</s>", Kind.CLOSING, 2)]


def test_glue_whitespace_is_split_off_next_to_content() -> None:
    rendered = render("{% for m in messages %} [X] {{ m.content }}{% endfor %}{% if add_generation_prompt %} [X] {% endif %}",
                      stops=())
    assert [(rendered.text[s.start:s.end], s.glue) for s in rendered.spans] == [
        (" [X]", False), (" ", True), ("Hi", False), (" ", True), ("[X]", False), (" ", True), ("Yo", False)]


def test_dropped_message_is_reported() -> None:
    template = "{% for m in messages if m.role != 'system' %}{{ m.content }}{% endfor %}"
    rendered = render(template, (Message("system", "Sys"), *CONV), stops=())
    assert rendered.dropped == (0,)


@pytest.mark.parametrize(("template", "match"), [
    ("{% for m in messages %}{{ m.content | upper }}{% endfor %}", "changes the text of message 0 \\(user\\)"),
    ("{% for m in messages %}{{ m.content }}{{ m.content }}{% endfor %}", "more than once"),
    ("{% for m in messages %}{% if 'Y' in m.content %}!{% endif %}{{ m.content }}{% endfor %}",
     "text of message 1 .* or adds text that depends on it"),
])
def test_templates_that_cannot_be_labelled_exactly(template: str, match: str) -> None:
    with pytest.raises(UnlabelableError, match=match):
        render(template, stops=())


def test_template_exception_is_a_rejection() -> None:
    template = "{{ raise_exception('System role not supported') }}"
    with pytest.raises(TemplateRejected, match="System role not supported"):
        render(template, stops=())


def test_renderer_pickles_and_renders_after() -> None:
    import pickle

    renderer = pickle.loads(pickle.dumps(ChatRenderer(CHATML, {}, ("<|im_end|>",))))
    assert render(CHATML, renderer=renderer).spans[2] == Span(17, 19, Kind.CONTENT, 0)


def test_skeleton_store_is_bounded_and_evictions_are_harmless(monkeypatch) -> None:
    """Agent data can have a skeleton per row: the store keeps the most recent, and a plan whose skeleton
    was evicted still renders (each call puts its own skeleton back first)."""
    from axolotl_multiturn.engine import render as module

    monkeypatch.setattr(module, "SKELETONS", 2)
    renderer = ChatRenderer(CHATML, {}, ("<|im_end|>",))
    plans = [renderer.plan(Conversation(tuple(Message("user" if i % 2 == 0 else "assistant", f"m{i}")
                                              for i in range(n)))) for n in range(2, 7)]
    assert len(renderer._skeletons) == 2
    for plan in plans:
        assert renderer.render(plan).text == renderer.render_text(plan.conversation)
        assert renderer.served(plan, len(plan.conversation))
