"""Train/inference parity: which rows a conversation becomes so that each trained assistant turn is
trained in the context the model will generate it in.

A turn is served by a row when the row's render starts with the turn's own render `F_i` through the end
of its generation: then the row holds `P_i` followed by the generation `G_i`. On prefix-stable templates
the whole conversation serves every turn (one row, unchanged). Templates that render history differently
from the last turn (Qwen3 strips earlier turns' thinking) serve earlier turns only in rows that end with
them. The comparison is of skeleton renders (cached per conversation shape): no tokenization.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from axolotl_multiturn.engine.conversation import Conversation
from axolotl_multiturn.engine.render import ChatRenderer
from axolotl_multiturn.engine.skeleton import Plan
from axolotl_multiturn.engine.vocabulary import Parity


@dataclass(frozen=True)
class Rows:
    """The rows one conversation becomes (the conversation itself when it serves every trained turn),
    turns no row can serve in its inference context (with the reason), turns trained outside it
    (`off`), and turns left untrained (`last`)."""

    conversations: list[Conversation]
    no_parity: dict[int, str] = field(default_factory=dict)
    outside: int = 0
    untrained: int = 0
    notes: list[str] = field(default_factory=list)  # per row: why it is there (empty when unchanged)

    @property
    def unchanged(self) -> bool:
        return len(self.conversations) == 1 and self.untrained == 0 and not self.outside


def _freeze(conversation: Conversation, count: int, weights: Sequence[bool]) -> Conversation:
    """The first `count` messages with every decision written as a weight (a row's own decisions)."""
    return conversation.replace([m._replace(weight=int(w)) for m, w in zip(conversation.messages[:count], weights)])


def parity_rows(renderer: ChatRenderer, plan: Plan, trained: Sequence[bool], parity: Parity) -> Rows:
    """Rows for `plan`'s conversation whose messages are labelled `trained` (per message)."""
    conversation = plan.conversation
    messages = conversation.messages
    wanted = [i for i, m in enumerate(messages) if m.role == "assistant" and trained[i]]
    served = renderer.served(plan, len(messages))
    missing = [i for i in wanted if i not in served]
    no_parity = {i: turn.no_parity for i, turn in renderer.turns(plan, wanted).items() if turn.no_parity}
    first = "; ".join(
        f"turn {i} has no row in its inference context ({reason}): trained as the template renders it"
        for i, reason in no_parity.items()
    )
    if not missing:
        return Rows([conversation], no_parity, notes=[first])
    late = ", ".join(map(str, missing))
    if parity is Parity.OFF:
        return Rows(
            [conversation],
            no_parity,
            outside=len(missing),
            notes=[_join(first, f"parity off: turns {late} trained outside their inference context")],
        )
    assistant = [m.role == "assistant" for m in messages]
    if parity is Parity.LAST:
        last = wanted[-1]
        count = len(messages) if last in served else last + 1
        weights = [trained[i] and (not assistant[i] or i == last) for i in range(count)]
        return Rows(
            [_freeze(conversation, count, weights)],
            no_parity,
            untrained=len(wanted) - 1,
            notes=[
                _join(
                    first,
                    f"parity last: only turn {last} trained; turns {late} are not trained in their inference "
                    "context here",
                )
            ],
        )
    whole = [trained[i] and (not assistant[i] or i in served) for i in range(len(messages))]
    rows = [_freeze(conversation, len(messages), whole)] if any(whole) else []
    notes = [first] if rows else []
    remaining = set(missing)
    while remaining:
        end = max(remaining)
        got = renderer.served(plan, end + 1) & remaining
        rows.append(_freeze(conversation, end + 1, [i in got for i in range(end + 1)]))
        notes.append(
            _join(
                first if not notes else "",
                f"turn{'s' if len(got) > 1 else ''} "
                f"{', '.join(map(str, sorted(got)))} trained in a row of its own: the whole "
                "conversation renders it differently from its inference prompt (the template "
                "rewrites history, e.g. strips earlier thinking)",
            )
        )
        remaining -= got
    return Rows(rows, no_parity, notes=notes)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
