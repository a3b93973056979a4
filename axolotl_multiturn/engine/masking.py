"""Masking modes as small policies over character classes, and the `auto` choice between them.

A policy says, for one conversation, whether each message's content is trained and whether template
text is trained. An assistant turn's closing tokens follow its content. Modifiers apply in this order:
the mode's policy, then `last_turn_only`, then each message's own `weight`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from axolotl_multiturn.engine.conversation import Message, Role


class Mode(str, Enum):
    NONE = "none"
    INSTRUCTION = "instruction"
    BOILERPLATE = "boilerplate"
    AUTO = "auto"
    HOSTED_AUTO = "hosted_auto"

    @property
    def scans(self) -> bool:
        """Decided from the whole dataset before the first row is labelled."""
        return self in (Mode.AUTO, Mode.HOSTED_AUTO)


@dataclass(frozen=True, slots=True)
class Policy:
    """`content(role)`: is a message of this role trained; `template`: is template text trained."""

    content: Callable[[Role], bool]
    template: bool


def _every_role(role: Role) -> bool:
    return True


def _assistant_only(role: Role) -> bool:
    return role == "assistant"


POLICIES: dict[Mode, Policy] = {
    Mode.NONE: Policy(_every_role, template=True),
    Mode.INSTRUCTION: Policy(_assistant_only, template=False),
    Mode.BOILERPLATE: Policy(_every_role, template=False),
}


def message_trained(messages: Sequence[Message], mode: Mode, last_turn_only: bool = False) -> list[bool]:
    """Whether each message's content (and, for assistant turns, its closing tokens) is trained."""
    policy = POLICIES[mode]
    last_assistant = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    trained = []
    for i, message in enumerate(messages):
        decision = policy.content(message.role)
        if last_turn_only and message.role == "assistant" and i != last_assistant:
            decision = False
        if message.weight is not None:
            decision = bool(message.weight)
        trained.append(decision)
    return trained


@dataclass(frozen=True, slots=True)
class AutoThresholds:
    """The paper's findings as defaults: instruction modelling helps most with long prompts, short
    answers and small datasets; LIMA-like data (R about 0.09) did not gain."""

    boilerplate_min_ratio: float = 1.0
    small_dataset_max_conversations: int = 15_000
    small_dataset_min_ratio: float = 0.25


@dataclass(frozen=True, slots=True)
class AutoDecision:
    mode: Mode
    conversations: int
    ratio: float  # mean non-assistant content tokens / mean assistant content tokens
    rule: str

    hosted: bool = False  # decided by the hosted API's rule (`hosted_auto`)

    def describe(self) -> str:
        if self.hosted:
            return f"masking hosted_auto -> {self.mode.value} (N={self.conversations:,} conversations; {self.rule})"
        return (
            f"masking auto -> {self.mode.value} (N={self.conversations:,} conversations, "
            f"R={self.ratio:.3f} non-assistant/assistant content tokens; {self.rule}; decided from the "
            "data, unlike the hosted train_on_inputs=auto, which is masking: hosted_auto)"
        )


def decide_hosted(conversations: int, weighted: bool) -> AutoDecision:
    """The hosted API's train_on_inputs="auto" for conversational data: inputs masked; but when any message
    has a weight the API sets train_on_inputs to true, so every token trains except weight-0 messages."""
    if weighted:
        return AutoDecision(
            Mode.NONE,
            conversations,
            0.0,
            "a message has a weight: the hosted API then sets train_on_inputs=true and masks only weight-0 messages",
            hosted=True,
        )
    return AutoDecision(
        Mode.INSTRUCTION, conversations, 0.0, "conversational data: the hosted API masks inputs", hosted=True
    )


def decide(
    conversations: int, non_assistant_tokens: int, assistant_tokens: int, thresholds: AutoThresholds = AutoThresholds()
) -> AutoDecision:
    """Choose boilerplate or instruction masking from the dataset's statistics."""
    ratio = non_assistant_tokens / assistant_tokens if assistant_tokens else float("inf")
    t = thresholds
    if ratio >= t.boilerplate_min_ratio:
        return AutoDecision(Mode.BOILERPLATE, conversations, ratio, f"R >= {t.boilerplate_min_ratio}")
    if conversations <= t.small_dataset_max_conversations and ratio >= t.small_dataset_min_ratio:
        return AutoDecision(
            Mode.BOILERPLATE,
            conversations,
            ratio,
            f"N <= {t.small_dataset_max_conversations:,} and R >= {t.small_dataset_min_ratio}",
        )
    return AutoDecision(
        Mode.INSTRUCTION,
        conversations,
        ratio,
        f"R < {t.boilerplate_min_ratio} and not (N <= {t.small_dataset_max_conversations:,} "
        f"and R >= {t.small_dataset_min_ratio})",
    )
