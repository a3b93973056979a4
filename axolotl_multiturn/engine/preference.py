"""Exact preference pairs on the one labelling pipeline.

A pair's prompt is `P = apply_chat_template(prompt, tools, add_generation_prompt=True)`: the multi-turn
history exactly as at inference. Each output is labelled as the last turn of `prompt + [output]`, so it is its
*generation* after `P` (reasoning and tool-call markup included, through its stop token and nothing after),
tokenized in context: the prompt's tokens are `P`'s own (the render is tokenized apart where a token would
straddle the generation prompt's end). A pair whose outputs do not follow `P` in their renders (the
template renders the last turn differently), or whose two prompts tokenize differently, is refused with why;
never shifted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from axolotl_multiturn.engine.conversation import Conversation
from axolotl_multiturn.engine.encode import IGNORE_INDEX
from axolotl_multiturn.engine.label import Labeller
from axolotl_multiturn.engine.masking import Mode
from axolotl_multiturn.engine.pairs import Pair
from axolotl_multiturn.engine.spans import Column, UnlabelableError
from axolotl_multiturn.engine.validate import InvalidConversation, parse_conversation


class PairError(UnlabelableError):
    """A pair that cannot be trained exactly, and why."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One output's generation: its token ids, its labels (-100 where masked: a reasoning trace under
    `reasoning: mask`), and its text."""

    ids: np.ndarray
    labels: np.ndarray
    text: str


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """A pair as the trainer should consume it: the prompt's ids and text, and both completions."""

    prompt_ids: np.ndarray
    prompt: str
    chosen: Completion
    rejected: Completion


def conversation_of(pair: Pair, output: dict) -> Conversation:
    """`prompt + [output]` with only the output trained (every prompt message weight 0)."""
    if output.get("weight") is not None:
        raise PairError("an output has a `weight`: it means nothing in a pair (both outputs are trained); remove it")
    row = {"messages": [*pair.prompt, output], **({"tools": pair.tools} if pair.tools is not None else {})}
    try:
        conversation = parse_conversation(row, open_calls=True)
    except InvalidConversation as error:
        raise PairError(f"not a valid prompt and output: {error}") from None
    last = len(conversation.messages) - 1
    return conversation.replace([m._replace(weight=int(i == last)) for i, m in enumerate(conversation.messages)])


def _completion(labeller: Labeller, conversation: Conversation, mode: Mode) -> tuple[np.ndarray, str, Completion]:
    """(prompt ids, prompt text, completion) of the conversation's last turn."""
    item = labeller.encode_one(conversation, last_only=True)
    last = len(conversation.messages) - 1
    undefined = labeller.encoder.renderer.turns(item.plan, [last])[last].no_parity
    if undefined:
        raise PairError(f"the template does not render this output after the prompt's generation prompt: {undefined}")
    labels = labeller.labels(item, mode)
    table = item.rendered.table
    own = table[table[:, Column.MESSAGE] == last]
    start, end = int(own[0, Column.START]), int(own[-1, Column.END])
    starts, ends = item.offsets[:, 0], item.offsets[:, 1]
    first = int(np.searchsorted(starts, start, side="left"))
    stop = int(np.searchsorted(starts, end, side="left"))
    # `stop` is the first token starting at or after `end`: only the tokens before it can straddle `end`
    if (first and ends[first - 1] > start) or ends[stop - 1] > end:
        raise PairError("no token boundary between the prompt and the output, or after the output's stop token")
    text = item.rendered.text
    return (
        item.input_ids[:first],
        text[:start],
        Completion(item.input_ids[first:stop], labels[first:stop], text[start:end]),
    )


def label_pair(labeller: Labeller, pair: Pair, mode: Mode = Mode.INSTRUCTION) -> LabelledPair:
    """The pair's prompt and completions, exact; raises `PairError` (or `UnlabelableError`) saying why not."""
    prompt_ids, prompt, chosen = _completion(labeller, conversation_of(pair, pair.chosen), mode)
    other_ids, other, rejected = _completion(labeller, conversation_of(pair, pair.rejected), mode)
    if prompt != other or not np.array_equal(prompt_ids, other_ids):
        raise PairError("the prompt renders or tokenizes differently before the two outputs")
    for completion in (chosen, rejected):
        if not (completion.labels != IGNORE_INDEX).any():
            raise PairError("an output has no trained token")
    return LabelledPair(prompt_ids, prompt, chosen, rejected)
