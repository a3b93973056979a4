"""Render a conversation with its chat template and say what every character of the render is.

An assistant turn trains its *generation*: with `P_i` the render of messages[:i] with the generation
prompt and `F_i` the render of messages[:i+1], the text of `F_i` after `P_i`, through the turn's stop
token (reasoning markup, content, tool-call markup and arguments, closing tokens). Everything else is a
message's content (system, user, tool results) or template text.

Templates are analysed on a *skeleton*: the conversation with every free text (contents, reasoning,
string argument values, call ids) replaced by a numbered sentinel. The skeleton's key is everything else
(roles, function names, argument keys and non-string values, tools), so its renders, `P_i` and `F_i`
included, are computed once per key and cached. A real conversation is rendered once and parsed as its
skeleton with each text in its slot, as written, trimmed, or JSON-escaped (a template's `tojson`).
A render that does not parse that way is never guessed at: `UnlabelableError`.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from transformers.utils.chat_template_utils import render_jinja_template

from axolotl_multiturn.engine.conversation import Conversation, Message, ToolCall
from axolotl_multiturn.engine.markers import STOP_STRINGS

# A sentinel as written, or as Python's `repr` prints it inside an object a template prints with `{{ }}`
# (`{'city': '\\ue0000\\ue001'}`: private-use characters are escaped; Phi-4-mini prints arguments so).
_SENTINEL_RE = re.compile(r"(?:\ue000|\\ue000)(\d+)(?:\ue002|\\ue002)*(?:\ue001|\\ue001)")
#: A special token named as a terminator of a turn or a call.
_TERMINATOR = re.compile(r"end|eot|eom|stop|return|call\b|suffix", re.IGNORECASE)
SKELETONS = 16384  # skeletons kept for the caches' misses
_CONTENT_DEPENDENT = ("the chat template renders this conversation differently from its skeleton "
                      "(template logic that depends on a text, not only on the conversation's structure)")


class Kind(IntEnum):
    """What a character of a render is. In a generation: CONTENT, REASONING, TOOL_CALL (calls and their
    arguments), MARKUP (other text the model writes, e.g. `</think>`), CLOSING (after the last text
    through the stop token). Outside: CONTENT of a system, user or tool message, or TEMPLATE."""

    TEMPLATE = 0
    CONTENT = 1
    CLOSING = 2
    REASONING = 3
    TOOL_CALL = 4
    MARKUP = 5


class Span(NamedTuple):
    """Characters [start, end) of the rendered text; `message` owns them (-1 for template text).

    A named tuple rather than a dataclass: a conversation has dozens of spans and they are made per row.
    """

    start: int
    end: int
    kind: Kind
    message: int = -1
    glue: bool = False  # whitespace template text touching a content span (see `_glue`)


class Column(IntEnum):
    """The columns of `Rendered.table`, one per `Span` field."""

    START = 0
    END = 1
    KIND = 2
    MESSAGE = 3
    GLUE = 4


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered conversation and a gap-free, ordered cover of its text by spans.

    `table` holds the spans as rows (columns: `Column`): rows are made per conversation and consumed by
    array work (labels, counts); `spans` is the same as `Span` tuples. `dropped` lists the messages the
    template does not render at all (Mistral v3 drops the system message unless the conversation ends
    with a user turn).
    """

    text: str
    table: np.ndarray
    dropped: tuple[int, ...] = ()

    @property
    def spans(self) -> tuple[Span, ...]:
        return tuple(Span(start, end, Kind(kind), message, bool(glue))
                     for start, end, kind, message, glue in self.table.tolist())


class UnlabelableError(ValueError):
    """The engine cannot say exactly which tokens belong to which message for this row."""


class TemplateRejected(UnlabelableError):
    """The chat template itself raised for this conversation (e.g. Gemma: system role not supported)."""


class Leaf(IntEnum):
    CONTENT = 0
    REASONING = 1
    ARGUMENT = 2  # a string value inside a tool call's arguments
    ID = 3  # a tool call id, or a tool message's tool_call_id


_LEAF_KIND = {Leaf.CONTENT: Kind.CONTENT, Leaf.REASONING: Kind.REASONING, Leaf.ARGUMENT: Kind.TOOL_CALL,
              Leaf.ID: Kind.TOOL_CALL}


class _Segment(NamedTuple):
    text: str  # skeleton text (a sentinel for a slot)
    leaf: int  # leaf index of a slot, -1 for template text
    kind: Kind
    message: int


@dataclass(frozen=True, slots=True)
class Layout:
    """One skeleton render cut into segments: template text of one kind, or one leaf's slot."""

    text: str
    segments: tuple[_Segment, ...]
    after: tuple[str, ...]  # per segment: the template text that follows it up to the next slot
    starts: tuple[tuple[int, ...], ...]  # per segment: where its spans start, relative to it (see `_glue`)
    static: np.ndarray  # per span (every slot rendered non-empty): kind, message, glue
    dropped: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Skeleton:
    conversation: Conversation  # every free text a sentinel
    owners: tuple[tuple[int, ...], ...]  # per sentinel: its message (a call id: then the tool message)
    kinds: tuple[Leaf, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """A conversation, the texts that fill its skeleton's slots, the key the skeleton's renders are cached
    by, and the skeleton itself."""

    conversation: Conversation
    leaves: tuple[tuple[int, Leaf, str], ...]  # (message, kind, real text) per sentinel number
    key: tuple[Any, ...]
    skeleton: _Skeleton


@dataclass(frozen=True, slots=True)
class Turn:
    """Assistant turn i as its own render `F_i` shows it: the skeleton text through the end of its
    generation (a row trains the turn in its inference context iff the row's render starts with it), and
    why no row can (None when `P_i` is a prefix of `F_i`)."""

    target: str
    no_parity: str | None


@lru_cache(maxsize=65536)
def _sentinel(n: int, length: int | None = None) -> str:
    """Sentinel n; padded to `length` characters where a template checks a text's length (call ids).
    Memoised: every row of a shape asks for the same ones."""
    core = f"\ue000{n}"
    return core + "\ue002" * max(0, (length or 0) - len(core) - 1) + "\ue001"


def _structure(value: Any) -> Any:
    """The hashable shape of a JSON value: strings become slots, everything else stays."""
    if isinstance(value, str):
        return str
    if isinstance(value, Mapping):
        return tuple((k, _structure(v)) for k, v in value.items())
    if isinstance(value, list):
        return ("[", *(_structure(v) for v in value))
    return ("=", json.dumps(value))


def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def reasoning_field(template: str) -> str:
    """The message key a template reads a reasoning trace from (README: per family)."""
    for name in ("reasoning_content", "thinking", "reasoning"):
        if re.search(rf"""(\.|\[['"]|get\(['"]){name}\b""", template):
            return name
    return "reasoning_content"


def wants_string_arguments(template: str, kwargs: Mapping[str, Any]) -> bool:
    """Whether a template needs tool-call arguments as JSON strings: it fails on the transformers
    convention (objects) for a plain call and renders the string form (DeepSeek V3 concatenates them)."""
    call = ToolCall("call00001", "probe", {"x": "1"})  # nine characters: Mistral checks call id lengths
    probe = Conversation((Message("user", "probe"), Message("assistant", None, tool_calls=(call,)),
                          Message("tool", "probe", tool_call_id=call.id), Message("assistant", "probe")))
    for strings in (False, True):
        try:
            ChatRenderer(template, kwargs, string_arguments=strings).render_text(probe)
        except TemplateRejected:
            continue
        return strings
    return False


def _agreement(text: str, prompt: str) -> int:
    """How much of `prompt` (the text from the last earlier message to the generation prompt's end)
    `text` renders too: all of it, or their common prefix cut back to a line end or the end of a markup
    token (`<|im_start|>assistant\n<think>` and `...assistant\n<tool_call>` agree through the newline)."""
    common = _common_prefix(text, prompt)
    if common == len(prompt):
        return common
    while common > 0 and not (prompt[common - 1].isspace() or prompt[common - 1] in ">]"):
        common -= 1
    return common


def _trim_variants(text: str, kind: Leaf) -> tuple[str, ...]:
    """What a template may turn a text into: itself, trimmed (Jinja `trim`, Python strip, strip('\\n')),
    or JSON-escaped (`tojson` of a string, without its quotes)."""
    if kind is Leaf.ID:
        return (text,)
    escaped = json.dumps(text, ensure_ascii=False)[1:-1]
    if kind is Leaf.ARGUMENT:  # as written, JSON-escaped, or as `repr` prints it inside an object
        return tuple(dict.fromkeys((text, escaped, repr(text)[1:-1])))
    variants = (text, text.strip(), text.rstrip(), text.lstrip(), text.strip("\n"), text.lstrip("\n"),
                text.rstrip("\n"), escaped)
    return tuple(dict.fromkeys(variants))


class ChatRenderer:
    """Renders conversations with one chat template and classifies every character.

    `reasoning_field` is the message key the template reads a reasoning trace from; `string_arguments`
    passes tool-call arguments as JSON strings to templates that concatenate them (DeepSeek V3) instead of
    the transformers convention (objects). `for_tokenizer` decides both once per template.
    """

    def __init__(self, chat_template: str, template_kwargs: Mapping[str, Any],
                 stop_strings: Sequence[str] = (), reasoning_field: str = "reasoning_content",
                 string_arguments: bool = False, special_tokens: Sequence[str] = ()):
        self.chat_template = chat_template
        self.template_kwargs = dict(template_kwargs)
        self.stop_strings = tuple(dict.fromkeys(s for s in stop_strings if s))
        self._stops = re.compile("|".join(map(re.escape, self.stop_strings))) if self.stop_strings else None
        # What closes a turn or a call: the stop strings, and special tokens named as terminators
        # (`<|endofturn|>`, `<|eom|>`, `<|call|>`, `<|return|>`, `<|tools_suffix|>`, ...; not `<|START_...|>`)
        self.terminators = tuple(dict.fromkeys([*self.stop_strings, *(t for t in special_tokens
                                                                      if t and _TERMINATOR.search(t))]))
        self._terminators = (re.compile("|".join(map(re.escape, sorted(self.terminators, key=len, reverse=True))))
                             if self.terminators else None)
        self.reasoning_field = reasoning_field
        self.string_arguments = string_arguments
        self._init_caches()

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, template: str, stop_strings: Sequence[str] = (),
                      template_kwargs: Mapping[str, Any] | None = None) -> ChatRenderer:
        """A renderer for `template` as a model's tokenizer uses it: its special tokens as template
        variables, its eos and the template's known end-of-turn markers as stop strings, and the reasoning
        key and argument form the template wants."""
        kwargs = {**tokenizer.special_tokens_map, **(template_kwargs or {})}
        stops = [*stop_strings, tokenizer.eos_token, *(s for s in STOP_STRINGS if s in template)]
        specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
        return cls(template, kwargs, [s for s in stops if s], reasoning_field=reasoning_field(template),
                   string_arguments=wants_string_arguments(template, kwargs), special_tokens=specials)

    def _init_caches(self) -> None:
        self._layout = lru_cache(maxsize=8192)(self._build_layout)
        self._turn = lru_cache(maxsize=16384)(self._build_turn)
        self._skeleton_text = lru_cache(maxsize=16384)(self._render_skeleton)
        # Skeletons by key, for the caches' misses; bounded (agent data can have a shape per row), and
        # every method refreshes its plan's entry first, so an evicted key is never looked up.
        self._skeletons: OrderedDict[tuple[Any, ...], _Skeleton] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        # Caches do not pickle (datasets' multi-process map pickles us); they refill in each process.
        skip = ("_layout", "_turn", "_skeleton_text", "_skeletons")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_caches()

    # --- rendering ---------------------------------------------------------------------------------

    def template_message(self, message: Message) -> dict[str, Any]:
        """A message as the template reads it (keys only where the data has them: templates test
        `'tool_calls' in message`)."""
        out: dict[str, Any] = {"role": message.role, "content": message.content if message.content is not None
                               else ""}
        if message.tool_calls:
            out["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name,
                "arguments": c.written() if self.string_arguments else c.arguments}} for c in message.tool_calls]
        if message.tool_call_id is not None:
            out["tool_call_id"] = message.tool_call_id
        if message.reasoning is not None:
            out[self.reasoning_field] = message.reasoning
        return out

    def render_text(self, conversation: Conversation, generation_prompt: bool = False) -> str:
        """Exactly what `apply_chat_template(messages, tools=tools, tokenize=False)` returns."""
        chat = [self.template_message(m) for m in conversation.messages]
        tools = list(conversation.tools) if conversation.tools is not None else None
        try:
            rendered, _ = render_jinja_template(conversations=[chat], tools=tools, chat_template=self.chat_template,
                                                add_generation_prompt=generation_prompt, **self.template_kwargs)
        except Exception as error:  # noqa: BLE001 - any failure inside the template is the template's answer
            raise TemplateRejected(f"the chat template rejects this conversation: {error}") from None
        return rendered[0]

    # --- skeletons -----------------------------------------------------------------------------------

    def plan(self, conversation: Conversation) -> Plan:
        """The conversation's leaves and skeleton key; the skeleton itself is kept for the key."""
        leaves: list[tuple[int, Leaf, str]] = []
        skeleton: list[Message] = []
        shape: list[Any] = []

        def slot(message: int, kind: Leaf, text: str, length: int | None = None) -> str:
            leaves.append((message, kind, text))
            return _sentinel(len(leaves) - 1, length)

        def arguments(message: int, value: Any) -> Any:
            if isinstance(value, str):
                return slot(message, Leaf.ARGUMENT, value)
            if isinstance(value, Mapping):
                return {k: arguments(message, v) for k, v in value.items()}
            if isinstance(value, list):
                return [arguments(message, v) for v in value]
            return value

        ids: dict[str, tuple[str, int]] = {}  # an id's sentinel and leaf: a tool message answering a call
        answering: dict[int, int] = {}  # leaf of an id -> the tool message that repeats it

        def call_id(message: int, text: str) -> tuple[str, Any]:
            """An id's sentinel is padded to its length (templates check it); the tool message answering a
            call gets the call's own sentinel (templates match them); an id too short to pad stays literal."""
            if text in ids:
                answering[ids[text][1]] = message
                return ids[text][0], ("=", ids[text][1])
            if len(text) >= len(_sentinel(len(leaves))):
                ids[text] = (slot(message, Leaf.ID, text, len(text)), len(leaves) - 1)
                return ids[text][0], len(text)
            return text, text

        for i, m in enumerate(conversation.messages):
            content = slot(i, Leaf.CONTENT, m.content) if m.content is not None else None
            reasoning = slot(i, Leaf.REASONING, m.reasoning) if m.reasoning is not None else None
            calls, call_shapes = [], []
            for c in m.tool_calls:
                ident, ident_shape = call_id(i, c.id)
                if self.string_arguments:  # the arguments string as written, one text
                    calls.append(ToolCall(ident, c.name, {}, slot(i, Leaf.ARGUMENT, c.written())))
                    call_shapes.append((c.name, str, ident_shape))
                    continue
                calls.append(ToolCall(ident, c.name, arguments(i, c.arguments)))
                call_shapes.append((c.name, _structure(c.arguments), ident_shape))
            answer, answer_shape = call_id(i, m.tool_call_id) if m.tool_call_id is not None else (None, None)
            skeleton.append(Message(m.role, content, None, tuple(calls), answer, reasoning))
            shape.append((m.role, content is None, reasoning is None, tuple(call_shapes), answer_shape))
        tools = json.dumps(conversation.tools, sort_keys=True) if conversation.tools is not None else None
        key = (tuple(shape), tools)
        known = self._skeletons.get(key)
        if known is None:
            owners = tuple((leaf[0], answering[n]) if n in answering else (leaf[0],) for n, leaf in enumerate(leaves))
            known = _Skeleton(Conversation(tuple(skeleton), conversation.tools), owners,
                              tuple(leaf[1] for leaf in leaves))
        plan = Plan(conversation, tuple(leaves), key, known)
        self._remember(plan)
        return plan

    def _remember(self, plan: Plan) -> None:
        """Make `plan`'s skeleton available to the caches (most recently used; the oldest beyond the
        bound are forgotten)."""
        self._skeletons[plan.key] = plan.skeleton
        self._skeletons.move_to_end(plan.key)
        while len(self._skeletons) > SKELETONS:
            self._skeletons.popitem(last=False)

    def _render_skeleton(self, key: tuple[Any, ...], count: int, generation_prompt: bool) -> str:
        skeleton = self._skeletons[key].conversation
        return self.render_text(skeleton.replace(skeleton.messages[:count]), generation_prompt)

    def _slots(self, text: str, key: tuple[Any, ...]) -> list[tuple[int, int, int, int]]:
        """(start, end, leaf, message) of every sentinel in a skeleton render; a call id's later
        occurrences belong to the tool message that answers the call."""
        owners = self._skeletons[key].owners
        seen: dict[int, int] = {}
        out = []
        for m in _SENTINEL_RE.finditer(text):
            leaf = int(m.group(1))
            seen[leaf] = seen.get(leaf, -1) + 1
            out.append((m.start(), m.end(), leaf, owners[leaf][min(seen[leaf], len(owners[leaf]) - 1)]))
        return out

    # --- generations -------------------------------------------------------------------------------

    def _generation(self, key: tuple[Any, ...], text: str, slots: Sequence[tuple[int, int, int, int]],
                    i: int) -> tuple[int, int, int]:
        """(start, closing start, end) of assistant message i's generation in the skeleton render `text`.

        It starts where `text`, after the last earlier message's slot, stops agreeing with `P_i` after
        its last slot (role header and generation prompt); it ends at the first stop string after the
        turn's last slot."""
        prompt = self._skeleton_text(key, i, True)
        own = [s for s in slots if s[3] == i]
        limit = min((s[0] for s in own), default=len(text))
        previous = max((s[1] for s in slots if s[3] < i and s[0] < limit), default=0)
        prompt_tail = prompt[max((m.end() for m in _SENTINEL_RE.finditer(prompt)), default=0):]
        start = previous + _agreement(text[previous:limit], prompt_tail)
        search = max((s[1] for s in own), default=start)
        bound = min((s[0] for s in slots if s[3] > i and s[0] >= search), default=len(text))
        tail = self._closing(key, i) if own else None
        if tail is not None and text.startswith(tail, search):
            end = search + self._closing_end(tail)
            stop = self._stops.search(text, search, end) if self._stops else None
        else:
            stop = self._stops.search(text, search, bound) if self._stops else None
            end = stop.end() if stop else search
        kinds = self._skeletons[key].kinds
        calls_last = bool(own) and kinds[own[-1][2]] in (Leaf.ARGUMENT, Leaf.ID)
        no_text = not any(kinds[s[2]] in (Leaf.CONTENT, Leaf.REASONING) for s in own)
        calls = bool(self._skeletons[key].conversation.messages[i].tool_calls)
        closing = stop.start() if stop and (calls_last or (calls and no_text)) else search
        return start, closing, end

    def _closing(self, key: tuple[Any, ...], i: int) -> str | None:
        """What the template writes after assistant turn i's last text when the turn ends its render
        (`F_i`), less trailing whitespace (written between messages, never generated); None when the turn
        renders no text of its own."""
        own = self._skeleton_text(key, i + 1, False)
        last = max((s[1] for s in self._slots(own, key) if s[3] == i), default=None)
        return None if last is None else own[last:].rstrip()

    def _closing_end(self, tail: str) -> int:
        """Where a turn's generation ends in its closing text `tail`: through its first stop string and the
        terminators right after it (`<|im_end|><|endofturn|>`: the model stops on the last); without a stop
        string, all of it (`)<|eom|>`, a tools suffix, Gemma 4's `<|tool_response>` after a call): the
        template writes it as the end of the turn."""
        stop = self._stops.search(tail) if self._stops else None
        if stop is None:
            return len(tail)
        end = stop.end()
        assert self._terminators is not None  # it holds the stop strings
        while (closer := self._terminators.match(tail, end)) is not None:
            end = closer.end()
        return end

    def _build_turn(self, key: tuple[Any, ...], i: int) -> Turn:
        own = self._skeleton_text(key, i + 1, False)
        prompt = self._skeleton_text(key, i, True)
        _, _, end = self._generation(key, own, self._slots(own, key), i)
        if own.startswith(prompt):
            return Turn(own[:end], None)
        earlier = max((m.end() for m in _SENTINEL_RE.finditer(prompt)), default=0)
        reason = ("its generation prompt differs from how the template renders the turn" if
                  _common_prefix(own, prompt) >= earlier else
                  "the template renders the conversation before it differently at inference")
        return Turn(own[:end], reason)

    def turns(self, plan: Plan, indices: Sequence[int]) -> dict[int, Turn]:
        """Assistant turns `indices` as their own renders show them."""
        self._remember(plan)
        return {i: self._turn(plan.key, i) for i in indices}

    def served(self, plan: Plan, count: int) -> frozenset[int]:
        """Assistant turns that the render of the first `count` messages trains in their inference
        context (string comparison of skeleton renders; no tokenization)."""
        self._remember(plan)
        text = self._skeleton_text(plan.key, count, False)
        return frozenset(i for i, m in enumerate(plan.conversation.messages[:count])
                         if m.role == "assistant" and text.startswith(self._turn(plan.key, i).target))

    # --- layouts -------------------------------------------------------------------------------------

    def _build_layout(self, key: tuple[Any, ...], count: int) -> Layout:
        text = self._skeleton_text(key, count, False)
        slots = self._slots(text, key)
        kinds = self._skeletons[key].kinds
        texts = [s[2] for s in slots if kinds[s[2]] is not Leaf.ID]  # ids repeat: call, then its answer
        if len(set(texts)) != len(texts):
            raise UnlabelableError("the chat template renders a text of the conversation more than once")
        messages = self._skeletons[key].conversation.messages[:count]
        generations = {i: self._generation(key, text, slots, i) for i, m in enumerate(messages)
                       if m.role == "assistant"}
        cuts = sorted({0, len(text), *(p for s in slots for p in s[:2]),
                       *(p for g in generations.values() for p in g)})
        segments: list[_Segment] = []
        slot_at = {s[0]: s for s in slots}
        for a, b in zip(cuts, cuts[1:]):
            owner = next((i for i, (start, _, end) in generations.items() if start <= a < end), -1)
            if a in slot_at:
                _, _, leaf, message = slot_at[a]
                kind = _LEAF_KIND[kinds[leaf]]
                if owner < 0 and kind is Kind.TOOL_CALL:
                    kind, message = Kind.TEMPLATE, -1  # an id in a tool message's header is template text
                segments.append(_Segment(text[a:b], leaf, kind, owner if owner >= 0 else message))
                continue
            if owner < 0:
                kind = Kind.TEMPLATE
            else:
                start, closing, _ = generations[owner]
                kind = Kind.CLOSING if a >= closing else self._markup_kind(slots, kinds, owner, a, start)
            if segments and segments[-1].leaf < 0 and segments[-1][2:] == (kind, owner):
                segments[-1] = segments[-1]._replace(text=segments[-1].text + text[a:b])
            else:
                segments.append(_Segment(text[a:b], -1, kind, owner))
        after, following = [], ""
        for segment in reversed(segments):
            after.append(following)
            following = segment.text + following if segment.leaf < 0 else ""
        rendered = {s[3] for s in slots} | {i for i, (start, _, end) in generations.items() if end > start}
        dropped = tuple(i for i in range(len(messages)) if i not in rendered)
        starts, static = _glue(segments)
        return Layout(text, tuple(segments), tuple(reversed(after)), starts, static, dropped)

    @staticmethod
    def _markup_kind(slots: Sequence[tuple[int, int, int, int]], kinds: Sequence[Leaf], owner: int, at: int,
                     start: int) -> Kind:
        """Template text inside a generation: tool-call markup when a call's slot follows it before any
        content or reasoning slot does, else other markup the model writes."""
        following = next((kinds[s[2]] for s in slots if s[3] == owner and s[0] >= at), None)
        preceding = next((kinds[s[2]] for s in reversed(slots) if s[3] == owner and start <= s[1] <= at), None)
        if following in (Leaf.ARGUMENT, Leaf.ID) or (following is None and preceding in (Leaf.ARGUMENT, Leaf.ID)):
            return Kind.TOOL_CALL
        return Kind.MARKUP

    def render(self, plan: Plan, count: int | None = None) -> Rendered:
        """The first `count` messages (all by default) rendered, every character classified."""
        count = len(plan.conversation) if count is None else count
        self._remember(plan)
        layout = self._layout(plan.key, count)
        text = self.render_text(plan.conversation.replace(plan.conversation.messages[:count]))
        starts: list[int] = []
        pos = 0
        for segment, after, relative in zip(layout.segments, layout.after, layout.starts):
            if segment.leaf < 0:
                if not text.startswith(segment.text, pos):
                    raise UnlabelableError(_CONTENT_DEPENDENT)
                starts.extend([pos + a for a in relative])
                pos += len(segment.text)
                continue
            message, kind, real = plan.leaves[segment.leaf]
            end = _locate(text, pos, real, kind, after)
            if end < 0:
                role = plan.conversation.messages[message].role
                raise UnlabelableError(
                    f"the chat template changes the text of message {message} ({role}) beyond trimming or "
                    "JSON-escaping it, or adds text that depends on it, so its tokens cannot be located")
            starts.append(pos)
            pos = end
        if pos != len(text):
            raise UnlabelableError(_CONTENT_DEPENDENT)
        bounds = np.array([*starts, pos], dtype=np.int64)
        table = np.column_stack((bounds[:-1], bounds[1:], layout.static))
        filled = bounds[1:] > bounds[:-1]
        if not filled.all():  # a text rendered empty (an empty argument) has no span
            table = table[filled]
        return Rendered(text, table, layout.dropped)


def _locate(text: str, pos: int, real: str, kind: Leaf, after: str) -> int:
    """Where a leaf's text rendered at `pos` ends: the first variant of it (as written first) that is
    followed by the template text `after`; -1 if none is."""
    if text.startswith(real, pos) and text.startswith(after, pos + len(real)):
        return pos + len(real)
    for variant in _trim_variants(real, kind)[1:]:
        if text.startswith(variant, pos) and text.startswith(after, pos + len(variant)):
            return pos + len(variant)
    return -1


def _glue(segments: Sequence[_Segment]) -> tuple[tuple[tuple[int, ...], ...], np.ndarray]:
    """Where each segment's spans start (relative to it), and each span's kind, message and glue flag:
    the whitespace at the edges of template text that touches a content slot is a span of its own, glue.

    SentencePiece and BPE vocabularies merge a separator space into the next word (`' [/INST] ' + content`
    gives one token '▁Hello'). Such a token carries the content's first word: it takes the content's
    label. Glue characters never decide a label on their own (see `Encoded.labels`). A layout is shared
    by every row of its shape, so this is decided once per shape.
    """
    starts: list[tuple[int, ...]] = []
    static: list[tuple[int, int, int]] = []
    for i, segment in enumerate(segments):
        text = segment.text
        lead = trail = 0
        if segment.leaf < 0 and segment.kind is Kind.TEMPLATE:
            if i > 0 and segments[i - 1].kind is Kind.CONTENT and text[0].isspace():
                lead = len(text) - len(text.lstrip())
            if i + 1 < len(segments) and segments[i + 1].kind is Kind.CONTENT and text[-1].isspace():
                trail = len(text) - len(text.rstrip())
        if lead + trail >= len(text) and (lead or trail):
            pieces = [(0, True)]
        else:
            pieces = [(a, glue) for a, b, glue in ((0, lead, True), (lead, len(text) - trail, False),
                                                   (len(text) - trail, len(text), True)) if b > a]
        starts.append(tuple(a for a, _ in pieces) if segment.leaf < 0 else (0,))
        static += [(segment.kind, segment.message, glue) for _, glue in pieces]
    return tuple(starts), np.array(static, dtype=np.int64).reshape(-1, 3)
