"""Conversations longer than `sequence_len`: split at turn boundaries, truncate, drop, or stop.

A conversation is an optional system message and *units*: a user turn and everything answering it
(assistant turns, tool calls and their results), or a final lone user turn. A window is the system message,
some units as masked context, then the units it trains. Every window is itself a conversation rendered with
the chat template, so its tokens are exact.

Inside a window every message gets an explicit weight frozen from the whole conversation's decisions
(context and a repeated system message 0), so `last_turn_only` and per-message weights mean the same in a
window as in the conversation. Window lengths are monotone in the units they hold, so the longest window
that fits is found by bisection, with one render and one tokenizer call per probe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from axolotl_multiturn.engine.conversation import Conversation, Message
from axolotl_multiturn.engine.encode import Encoded
from axolotl_multiturn.engine.vocabulary import Overflow, Status


class TooLong(ValueError):
    """`overflow: error` and a conversation longer than `sequence_len`."""


@dataclass(frozen=True)
class Fitted:
    """What became of one conversation: its windows (one, unchanged, when it fits), what was done, and
    how many trainable assistant turns no window trains."""

    windows: list[Encoded]
    status: Status  # fits | split | truncated | dropped
    lost: int = 0


Encode = Callable[[Conversation], Encoded]


def _units(messages: Sequence[Message]) -> tuple[list[int], list[list[int]]]:
    """(system message indices, units of message indices)."""
    head = [0] if messages and messages[0].role == "system" else []
    units: list[list[int]] = []
    for i in range(len(head), len(messages)):
        if messages[i].role == "user" or not units:
            units.append([i])
        else:
            units[-1].append(i)
    return head, units


def _last_fitting(low: int, high: int, fits: Callable[[int], bool]) -> int:
    """The largest n in [low, high] with fits(n), given fits is monotone decreasing; low - 1 if none."""
    best = low - 1
    while low <= high:
        middle = (low + high) // 2
        if fits(middle):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return best


def fit(item: Encoded, trained: Sequence[bool], limit: int, policy: Overflow, encode: Encode) -> Fitted:
    """Make `item` (its messages labelled `trained`, per message) fit in `limit` tokens."""
    if len(item.input_ids) <= limit:
        return Fitted([item], Status.FITS)
    messages = item.messages
    head, units = _units(messages)
    trainable = [any(trained[i] for i in unit) for unit in units]
    answers = [sum(1 for i in unit if trained[i] and messages[i].role == "assistant") for unit in units]  # per unit
    if policy is Overflow.ERROR:
        raise TooLong(
            f"{len(item.input_ids)} tokens, more than sequence_len={limit}; set multiturn.overflow "
            "to split (or truncate, or drop)"
        )
    if policy is Overflow.DROP:
        return Fitted([], Status.DROPPED, sum(answers))

    cache: dict[tuple[int, int, int, bool], Encoded] = {}

    def window(context: int, start: int, end: int, first: bool) -> Encoded:
        key = (context, start, end, first)
        if key not in cache:
            chosen = [messages[i]._replace(weight=int(first and trained[i])) for i in head]
            for k in range(context, end):
                chosen += [messages[i]._replace(weight=int(k >= start and trained[i])) for i in units[k]]
            cache[key] = encode(item.conversation.replace(chosen))
        return cache[key]

    def fits(context: int, start: int, end: int, first: bool) -> bool:
        return len(window(context, start, end, first).input_ids) <= limit

    if policy is Overflow.TRUNCATE:
        ends = [e for e in range(1, len(units) + 1) if answers[e - 1]]
        best = _last_fitting(0, len(ends) - 1, lambda n: fits(0, 0, ends[n], True))
        if best < 0:
            return Fitted([], Status.DROPPED, sum(answers))
        end = ends[best]
        return Fitted([window(0, 0, end, True)], Status.TRUNCATED, sum(answers[end:]))

    windows: list[Encoded] = []
    lost, start = 0, 0
    while start < len(units):
        if not trainable[start]:
            start += 1
            continue
        first = not windows
        if not fits(start, start, start + 1, first):  # one unit alone is too long: truncate's rule, i.e. lost
            lost += answers[start]
            start += 1
            continue
        # the probes run now, inside this iteration: binding the loop's values is only for the reader
        end = _last_fitting(start + 1, len(units), lambda e, s=start, f=first: fits(s, s, e, f))
        context = start - _last_fitting(0, start, lambda n, s=start, e=end, f=first: fits(s - n, s, e, f))
        windows.append(window(context, start, end, first))
        start = end
    return Fitted(windows, Status.SPLIT, lost)
