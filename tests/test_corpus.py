"""Every chat template the installed axolotl and TRL ship, judged by the prefix-diff oracle
(`corpus.judge`) on plain, reasoning and tool conversations; and the capability page generated from
those verdicts (`docs/templates.md`) agrees with them."""

from __future__ import annotations

import pytest
from corpus import SHAPES, Template, cell, key, read_page, templates


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("template", templates(), ids=lambda t: f"{t.source}-{t.name}")
def test_every_turn_is_exact_or_counted(template: Template, shape: str) -> None:
    verdict = cell(template, shape)
    assert verdict.startswith(("exact", "not rendered:")), verdict


def test_the_capability_page_is_what_the_corpus_gives() -> None:
    page = read_page()
    stale = {key(t): {s: cell(t, s) for s in SHAPES} for t in templates()}
    stale = {k: row for k, row in stale.items() if page.get(k) != row}
    assert not stale, f"docs/templates.md is stale; run `python tests/corpus.py`: {stale}"


def test_the_corpus_covers_both_packages() -> None:
    sources = [t.source for t in templates()]
    assert sources.count("axolotl") >= 35 and sources.count("trl") >= 25
