"""Every chat template the installed axolotl and TRL ship, judged by the prefix-diff oracle
(`corpus.judge`) on plain, reasoning and tool conversations; and the capability page generated from
those verdicts (`docs/templates.md`) agrees with them."""

from __future__ import annotations

import pytest
from corpus import PAIRS, SHAPES, Template, cell, image_cell, pair, read_page, rows, templates

#: The page check reads every cell the other tests computed (cached in the process): one worker runs them all.
pytestmark = pytest.mark.xdist_group("corpus")


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("template", templates(), ids=lambda t: f"{t.source}-{t.name}")
def test_every_turn_is_exact_or_counted(template: Template, shape: str) -> None:
    verdict = cell(template, shape)
    assert verdict.startswith(("exact", "not rendered:")), verdict


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("template", templates(), ids=lambda t: f"{t.source}-{t.name}")
def test_every_pair_is_exact_or_refused_with_why(template: Template, kind: str) -> None:
    verdict = pair(template, kind)
    assert verdict.startswith(("exact", "refused:", "not rendered:")), verdict


@pytest.mark.parametrize("template", templates(), ids=lambda t: f"{t.source}-{t.name}")
def test_every_template_with_images_is_exact_or_says_why(template: Template) -> None:
    verdict = image_cell(template)
    assert verdict.startswith(("exact", "not rendered:", "not judged:")), verdict


def test_the_vlm_templates_label_images_exactly() -> None:
    """The families axolotl trains as vision-language models, among others (docs/images.md)."""
    exact = {t.name for t in templates() if t.source == "axolotl" and image_cell(t) == "exact"}
    assert {"gemma3", "gemma3n", "llama3_2_vision", "llama4", "llava", "mistral_v7_tekken", "pixtral",
            "qwen2_vl"} <= exact


def test_the_capability_page_is_what_the_corpus_gives() -> None:
    page = read_page()
    stale = {k: row for k, row in rows().items() if page.get(k) != row}
    assert not stale, f"docs/templates.md is stale; run `python tests/corpus.py`: {stale}"


def test_the_corpus_covers_both_packages() -> None:
    sources = [t.source for t in templates()]
    assert sources.count("axolotl") >= 35 and sources.count("trl") >= 25


#: DeepSeek R1's tool template writes whitespace after a tool result that its generation prompt does not
#: have, or the other way round. Chatml-shaped here, on Qwen2's vocabulary, where `\n` + `\n` is one token.
_GAP = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{GAP}"
        "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }} "
        "{{ c.function.arguments | tojson }}</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{PROMPT}{% endif %}")
AFTER_TOOL = "{% if m.role == 'assistant' and not loop.first and loop.previtem.role == 'tool' %}{{ '\\n' }}{% endif %}"
PROMPT_AFTER_TOOL = "{% if messages[-1].role == 'tool' %}{{ '\\n' }}{% endif %}"


@pytest.mark.parametrize(("gap", "prompt", "verdict"), [
    # the history has the extra newline: before, the merged `\n\n` refused the whole row
    (AFTER_TOOL, "", "exact"),
    # the generation prompt has it: the answers after tool results have no inference context; counted
    ("", PROMPT_AFTER_TOOL,
     "exact; 2 of 4 turns undefined (the generation prompt differs from the turn's render)"),
])
def test_whitespace_after_a_tool_result_costs_no_defined_turn(gap: str, prompt: str, verdict: str) -> None:
    text = _GAP.replace("{GAP}", gap).replace("{PROMPT}", prompt)
    assert cell(Template("test", "chatml_tool_gap", text, None), "tools") == verdict
