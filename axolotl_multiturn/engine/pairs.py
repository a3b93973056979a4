"""A preference pair: a prompt (messages and tools) and two assistant outputs, from any of three shapes.

The shapes in use (`schemas/preference.schema.json`):

- hosted: `{"input": {"messages": [...], "tools": [...]}, "preferred_output": [msg], "non_preferred_output": [msg]}`
- trl: `{"prompt": [...], "chosen": [msg], "rejected": [msg]}`; without `prompt` (implicit), `chosen` and
  `rejected` are whole conversations that share everything before their last message
- axolotl: `{"messages": [...], "chosen": msg, "rejected": msg}`

A pair is valid when each output is one assistant message, the prompt ends with a user turn (or tool
results) and holds a user message, the outputs differ, and the prompt followed by each output is a valid
conversation by the conversation rules (`check_conversation`), except that an output's tool calls are
answered by nobody yet. No heavy imports: the linter uses this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from axolotl_multiturn import schemas
from axolotl_multiturn.engine.validate import Problem, check_conversation
from axolotl_multiturn.pointers import pointer


class Shape(str, Enum):
    """The preference-line formats (`schemas/preference.schema.json`)."""

    HOSTED = "hosted"
    TRL = "trl"
    TRL_IMPLICIT = "trl-implicit"
    AXOLOTL = "axolotl"


class LineKind(str, Enum):
    """What a dataset line holds; a file holds one kind."""

    CONVERSATION = "conversation"
    PREFERENCE = "preference"


#: The top-level fields of each shape; any other key of a line is the user's own.
FIELDS = {
    Shape.HOSTED: ("input", "preferred_output", "non_preferred_output"),
    Shape.TRL: ("prompt", "chosen", "rejected", "tools"),
    Shape.TRL_IMPLICIT: ("chosen", "rejected", "tools"),
    Shape.AXOLOTL: ("messages", "chosen", "rejected", "tools"),
}


def shape_of(obj: Mapping[str, Any]) -> Shape | None:
    """The preference shape of a parsed line; None for a conversation line."""
    if "input" in obj or "preferred_output" in obj or "non_preferred_output" in obj:
        return Shape.HOSTED
    if "chosen" in obj or "rejected" in obj:
        return Shape.AXOLOTL if "messages" in obj else Shape.TRL if "prompt" in obj else Shape.TRL_IMPLICIT
    return None


@dataclass(frozen=True, slots=True)
class Pair:
    """The pair as the template will see it: prompt messages, tools (None: none), and the two outputs."""

    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    chosen: dict[str, Any]
    rejected: dict[str, Any]
    extra: dict[str, Any]  # the line's other top-level keys (`id`, `metadata`, ...), kept by conversions


@dataclass(frozen=True, slots=True)
class Places:
    """Where the parts of a pair stand in its line (JSON pointers), for findings and conversions."""

    prompt: str
    tools: str
    chosen: str
    rejected: str


def _places(shape: Shape, obj: Mapping[str, Any]) -> Places:
    if shape is Shape.HOSTED:
        return Places("/input/messages", "/input/tools", "/preferred_output/0", "/non_preferred_output/0")
    if shape is Shape.TRL:
        return Places("/prompt", "/tools", "/chosen/0", "/rejected/0")
    if shape is Shape.AXOLOTL:
        return Places("/messages", "/tools", "/chosen", "/rejected")
    last = len(obj["chosen"]) - 1 if isinstance(obj.get("chosen"), list) else 0
    other = len(obj["rejected"]) - 1 if isinstance(obj.get("rejected"), list) else 0
    return Places("/chosen", "/tools", f"/chosen/{last}", f"/rejected/{other}")


def _at(obj: Mapping[str, Any], pointer: str) -> Any:
    """The value at a JSON pointer of object keys (no escapes needed for the shapes' own fields); None where
    it is absent or an object is not one."""
    value: Any = obj
    for key in pointer.strip("/").split("/"):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _one_assistant(value: Any, listed: bool) -> dict[str, Any] | None:
    """The output's one assistant message, or None when it is not exactly that."""
    if listed:
        value = value[0] if isinstance(value, list) and len(value) == 1 else None
    return value if isinstance(value, dict) and value.get("role") == "assistant" else None


def split(obj: Mapping[str, Any], shape: Shape) -> tuple[Pair | None, list[Problem]]:
    """The pair of a line in `shape`, or the problems that stop it from being one."""
    places = _places(shape, obj)
    problems: list[Problem] = []
    if shape is Shape.TRL_IMPLICIT:
        chosen, rejected = obj.get("chosen"), obj.get("rejected")
        if not (isinstance(chosen, list) and isinstance(rejected, list) and chosen and rejected):
            return None, [Problem("MT401", "chosen and rejected must each be a list of messages", "")]
        prompt = chosen[:-1]
        if prompt != rejected[:-1]:
            return None, [
                Problem(
                    "MT405",
                    "without a prompt, chosen and rejected must be one conversation up to "
                    "their last message; they differ before it (give the shared start as "
                    "`prompt`)",
                    "/rejected",
                )
            ]
        outputs = (_one_assistant(chosen[-1], False), _one_assistant(rejected[-1], False))
    else:
        prompt = _at(obj, places.prompt)
        outputs = tuple(
            _one_assistant(_at(obj, where.removesuffix("/0")), shape is not Shape.AXOLOTL)
            for where in (places.chosen, places.rejected)
        )
    for output, where in zip(outputs, (places.chosen, places.rejected)):
        if output is None:
            problems.append(
                Problem(
                    "MT401",
                    "an output must be exactly one assistant message"
                    + (" (a list holding one)" if shape in (Shape.HOSTED, Shape.TRL) else ""),
                    where.removesuffix("/0"),
                )
            )
    if not isinstance(prompt, list) or not prompt or not all(isinstance(m, dict) for m in prompt):
        problems.append(Problem("MT102", "the prompt must be a non-empty list of messages", places.prompt))
    elif prompt[-1].get("role") == "assistant":
        problems.append(
            Problem(
                "MT402",
                "the prompt ends with an assistant message: the outputs answer a user turn (or tool results)",
                f"{places.prompt}/{len(prompt) - 1}",
            )
        )
    elif not any(m.get("role") == "user" for m in prompt):
        problems.append(Problem("MT403", "the prompt has no user message", places.prompt))
    if problems:
        return None, problems
    pair = Pair(
        list(prompt),
        _at(obj, places.tools),
        outputs[0],
        outputs[1],
        {k: v for k, v in obj.items() if k not in FIELDS[shape]},
    )
    if pair.chosen == pair.rejected:
        return pair, [
            Problem("MT404", "chosen and rejected are the same message: the pair teaches nothing", places.rejected)
        ]
    problems = _conversation_problems(pair, places)
    if not problems and not schemas.fast_validator(schemas.PREFERENCE).is_valid(obj):
        error = next(schemas.python_validator(schemas.PREFERENCE).iter_errors(obj))
        problems.append(
            Problem(
                "MT102",
                f"not a preference line by schemas/{schemas.PREFERENCE}: {error.message}",
                pointer(error.absolute_path),
            )
        )
    return pair, problems


def _conversation_problems(pair: Pair, places: Places) -> list[Problem]:
    """The conversation rules on prompt + each output, at the pair's own places; once each."""
    found: dict[tuple[str, str], Problem] = {}
    n = len(pair.prompt)
    for output, where in ((pair.chosen, places.chosen), (pair.rejected, places.rejected)):
        conversation = {"messages": [*pair.prompt, output], **({"tools": pair.tools} if pair.tools is not None else {})}
        for problem in check_conversation(conversation):
            pointer = _moved(problem.pointer, n, places.prompt, where, places.tools)
            if problem.code == "MT206" and pointer.startswith(where):
                continue  # the output's own calls: their results come after the pair
            found.setdefault((problem.code, pointer), Problem(problem.code, problem.message, pointer))
    return list(found.values())


def _moved(pointer: str, n: int, prompt: str, output: str, tools: str) -> str:
    """A pointer into the composed conversation, as a pointer into the pair's line."""
    if pointer.startswith("/tools"):
        return tools + pointer.removeprefix("/tools")
    if not pointer.startswith("/messages/"):
        return prompt if pointer == "/messages" else pointer
    index, _, rest = pointer.removeprefix("/messages/").partition("/")
    return (f"{prompt}/{index}" if int(index) < n else output) + (f"/{rest}" if rest else "")


def to_shape(pair: Pair, shape: Shape) -> dict[str, Any]:
    """The pair written in `shape` (tools where that shape keeps them)."""
    tools = {"tools": pair.tools} if pair.tools is not None else {}
    if shape is Shape.HOSTED:
        return {
            **pair.extra,
            "input": {"messages": pair.prompt, **tools},
            "preferred_output": [pair.chosen],
            "non_preferred_output": [pair.rejected],
        }
    if shape is Shape.TRL:
        return {**pair.extra, "prompt": pair.prompt, "chosen": [pair.chosen], "rejected": [pair.rejected], **tools}
    if shape is Shape.TRL_IMPLICIT:
        return {**pair.extra, "chosen": [*pair.prompt, pair.chosen], "rejected": [*pair.prompt, pair.rejected], **tools}
    return {**pair.extra, "messages": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected, **tools}
