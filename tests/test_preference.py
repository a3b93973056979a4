"""Exact preference pairs (`engine/preference.py`) beyond the corpus oracle (`corpus.pair_cell`): reasoning
masked inside a completion, and the refusals, each with its reason."""

from __future__ import annotations

import pytest
from corpus import render, templates, tokenizer

from axolotl_multiturn.engine.encode import IGNORE_INDEX, Encoder
from axolotl_multiturn.engine.label import Labeller, Settings
from axolotl_multiturn.engine.pairs import Pair
from axolotl_multiturn.engine.preference import PairError, label_pair
from axolotl_multiturn.engine.render import ChatRenderer

PROMPT = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "It is 4."},
          {"role": "user", "content": "3+3?"}]
CHOSEN = {"role": "assistant", "content": "It is 6.", "reasoning_content": "Three and three make six"}
REJECTED = {"role": "assistant", "content": "It is 7.", "reasoning_content": "Three and three make seven"}


def labeller(name: str, reasoning: bool = True) -> tuple[object, Labeller]:
    template = next(t for t in templates() if t.source == "trl" and t.name == name)
    tok = tokenizer(template)
    return tok, Labeller(Encoder(tok, ChatRenderer.for_tokenizer(tok, tok.chat_template)),
                         Settings(sequence_len=4096, reasoning=reasoning))


def test_reasoning_mask_masks_exactly_the_trace_inside_each_completion() -> None:
    """(A trace ending with `.` would merge with the newline after it in Qwen2's BPE and be refused.)"""
    tok, lab = labeller("qwen3", reasoning=False)
    labelled = label_pair(lab, Pair(PROMPT, None, CHOSEN, REJECTED, {}))
    assert labelled.prompt == render(tok, PROMPT, None, True)
    for completion, output in ((labelled.chosen, CHOSEN), (labelled.rejected, REJECTED)):
        assert completion.text == f"<think>\n{output['reasoning_content']}\n</think>\n\n{output['content']}<|im_end|>"
        offsets = tok(completion.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        trace = (len("<think>\n"), len("<think>\n") + len(output["reasoning_content"]))
        masked = [completion.text[a:b] for (a, b), label in zip(offsets, completion.labels) if label == IGNORE_INDEX]
        inside = [completion.text[a:b] for a, b in offsets if trace[0] <= a and b <= trace[1]]
        assert masked == inside and "".join(masked) == output["reasoning_content"]


def test_a_weight_on_an_output_is_refused() -> None:
    _, lab = labeller("qwen3")
    with pytest.raises(PairError, match=r"an output has a `weight`: it means nothing in a pair"):
        label_pair(lab, Pair(PROMPT, None, {**CHOSEN, "weight": 1}, REJECTED, {}))


def test_an_output_the_template_renders_apart_from_its_prompt_is_refused_with_why() -> None:
    """Nemotron 3 renders a final answer without the prompt's `<think>\\n`: no exact pair exists."""
    _, lab = labeller("nemotron_3_nano")
    plain = {k: v for k, v in CHOSEN.items() if k != "reasoning_content"}
    with pytest.raises(PairError, match=r"does not render this output after the prompt's generation prompt"):
        label_pair(lab, Pair(PROMPT, None, plain, {**plain, "content": "It is 7."}, {}))
