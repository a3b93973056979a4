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

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from transformers.utils.chat_template_utils import render_jinja_template

from axolotl_multiturn.engine.conversation import Conversation, Image, Message, ToolCall
from axolotl_multiturn.engine.markers import STOP_STRINGS
from axolotl_multiturn.engine.skeleton import SENTINEL_RE, Leaf, Plan, Skeleton, Slot, plan_of, slots
from axolotl_multiturn.engine.spans import Kind, Rendered, TemplateRejected, UnlabelableError
from axolotl_multiturn.engine.texts import Segment, agreement, common_prefix, glue, locate

#: A special token named as a terminator of a turn or a call.
_TERMINATOR = re.compile(r"end|eot|eom|stop|return|call\b|suffix", re.IGNORECASE)
SKELETONS = 16384  # skeletons kept for the caches' misses
_CONTENT_DEPENDENT = (
    "the chat template renders this conversation differently from its skeleton "
    "(template logic that depends on a text, not only on the conversation's structure)"
)


_IMAGE_PART = {"type": "image"}  # what a template sees of an image (the processor gets the image itself)
_LEAF_KIND = {
    Leaf.CONTENT: Kind.CONTENT,
    Leaf.REASONING: Kind.REASONING,
    Leaf.ARGUMENT: Kind.TOOL_CALL,
    Leaf.ID: Kind.TOOL_CALL,
}


class Generation(NamedTuple):
    """Assistant turn's generation in a render: where it starts, where its closing starts, where it ends."""

    start: int
    closing: int
    end: int


@dataclass(frozen=True, slots=True)
class Layout:
    """One skeleton render cut into segments: template text of one kind, or one leaf's slot."""

    text: str
    segments: tuple[Segment, ...]
    after: tuple[str, ...]  # per segment: the template text that follows it up to the next slot
    starts: tuple[tuple[int, ...], ...]  # per segment: where its spans start, relative to it (see `_glue`)
    static: np.ndarray  # per span (every slot rendered non-empty): kind, message, glue
    dropped: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Turn:
    """Assistant turn i as its own render `F_i` shows it: the skeleton text through the end of its
    generation (a row trains the turn in its inference context iff the row's render starts with it), and
    why no row can (None when `P_i` is a prefix of `F_i`)."""

    target: str
    no_parity: str | None


def reasoning_field(template: str) -> str:
    """The message key a template reads a reasoning trace from (docs/data.md: per family)."""
    for name in ("reasoning_content", "thinking", "reasoning"):
        if re.search(rf"""(\.|\[['"]|get\(['"]){name}\b""", template):
            return name
    return "reasoning_content"


def wants_string_arguments(template: str, kwargs: Mapping[str, Any]) -> bool:
    """Whether a template needs tool-call arguments as JSON strings: it fails on the transformers
    convention (objects) for a plain call and renders the string form (DeepSeek V3 concatenates them)."""
    call = ToolCall("call00001", "probe", {"x": "1"})  # nine characters: Mistral checks call id lengths
    probe = Conversation(
        (
            Message("user", "probe"),
            Message("assistant", None, tool_calls=(call,)),
            Message("tool", "probe", tool_call_id=call.id),
            Message("assistant", "probe"),
        )
    )
    for strings in (False, True):
        try:
            ChatRenderer(template, kwargs, string_arguments=strings).render_text(probe)
        except TemplateRejected:
            continue
        return strings
    return False


def _repeats(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Markup of adjacent images (one inserted run) cut into its repeats: `<image>\\n<image>\\n` is two."""
    run = text[start:end]
    for size in range(1, len(run) // 2 + 1):
        if len(run) % size == 0 and run == run[:size] * (len(run) // size):
            return [(a, a + size) for a in range(start, end, size)]
    return [(start, end)]


class ChatRenderer:
    """Renders conversations with one chat template and classifies every character.

    `reasoning_field` is the message key the template reads a reasoning trace from; `string_arguments`
    passes tool-call arguments as JSON strings to templates that concatenate them (DeepSeek V3) instead of
    the transformers convention (objects). `for_tokenizer` decides both once per template.
    """

    def __init__(
        self,
        chat_template: str,
        template_kwargs: Mapping[str, Any],
        stop_strings: Sequence[str] = (),
        reasoning_field: str = "reasoning_content",
        string_arguments: bool = False,
        special_tokens: Sequence[str] = (),
    ):
        self.chat_template = chat_template
        self.template_kwargs = dict(template_kwargs)
        self.stop_strings = tuple(dict.fromkeys(s for s in stop_strings if s))
        self._stops = re.compile("|".join(map(re.escape, self.stop_strings))) if self.stop_strings else None
        # What closes a turn or a call: the stop strings, and special tokens named as terminators
        # (`<|endofturn|>`, `<|eom|>`, `<|call|>`, `<|return|>`, `<|tools_suffix|>`, ...; not `<|START_...|>`)
        self.terminators = tuple(
            dict.fromkeys([*self.stop_strings, *(t for t in special_tokens if t and _TERMINATOR.search(t))])
        )
        self._terminators = (
            re.compile("|".join(map(re.escape, sorted(self.terminators, key=len, reverse=True))))
            if self.terminators
            else None
        )
        self.reasoning_field = reasoning_field
        self.string_arguments = string_arguments
        self._init_caches()

    @classmethod
    def for_tokenizer(
        cls,
        tokenizer: Any,
        template: str,
        stop_strings: Sequence[str] = (),
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> ChatRenderer:
        """A renderer for `template` as a model's tokenizer uses it: its special tokens as template
        variables, its eos and the template's known end-of-turn markers as stop strings, and the reasoning
        key and argument form the template wants."""
        kwargs = {**tokenizer.special_tokens_map, **(template_kwargs or {})}
        stops = [*stop_strings, tokenizer.eos_token, *(s for s in STOP_STRINGS if s in template)]
        specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
        return cls(
            template,
            kwargs,
            [s for s in stops if s],
            reasoning_field=reasoning_field(template),
            string_arguments=wants_string_arguments(template, kwargs),
            special_tokens=specials,
        )

    def _init_caches(self) -> None:
        self._layout = lru_cache(maxsize=8192)(self._build_layout)
        self._turn = lru_cache(maxsize=16384)(self._build_turn)
        self._skeleton_text = lru_cache(maxsize=16384)(self._render_skeleton)
        # Skeletons by key, for the caches' misses; bounded (agent data can have a shape per row), and
        # every method refreshes its plan's entry first, so an evicted key is never looked up.
        self._skeletons: OrderedDict[tuple[Any, ...], Skeleton] = OrderedDict()

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
        content = message.content
        out: dict[str, Any] = {
            "role": message.role,
            "content": [_IMAGE_PART if isinstance(p, Image) else {"type": "text", "text": p} for p in content]
            if isinstance(content, tuple)
            else (content if content is not None else ""),
        }
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.written() if self.string_arguments else c.arguments},
                }
                for c in message.tool_calls
            ]
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
            rendered, _ = render_jinja_template(
                conversations=[chat],
                tools=tools,
                chat_template=self.chat_template,
                add_generation_prompt=generation_prompt,
                **self.template_kwargs,
            )
        except Exception as error:  # noqa: BLE001 - any failure inside the template is the template's answer
            raise TemplateRejected(f"the chat template rejects this conversation: {error}") from None
        return rendered[0]

    # --- skeletons -----------------------------------------------------------------------------------

    def plan(self, conversation: Conversation) -> Plan:
        """The conversation's texts and skeleton key; the skeleton is kept for the key."""
        found = plan_of(conversation, self.string_arguments, self._skeletons)
        self._remember(found)
        return found

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

    def _slots_of(self, text: str, key: tuple[Any, ...]) -> list[Slot]:
        return slots(text, self._skeletons[key])

    # --- generations -------------------------------------------------------------------------------

    def _generation(self, key: tuple[Any, ...], text: str, slots: Sequence[Slot], i: int) -> Generation:
        """Assistant message i's generation in the skeleton render `text`.

        It starts where `text`, after the last earlier message's slot, stops agreeing with `P_i` after
        its last slot (role header and generation prompt); it ends at the first stop string after the
        turn's last slot."""
        prompt = self._skeleton_text(key, i, True)
        own = [s for s in slots if s.message == i]
        limit = min((s.start for s in own), default=len(text))
        previous = max((s.end for s in slots if s.message < i and s.start < limit), default=0)
        prompt_tail = prompt[max((m.end() for m in SENTINEL_RE.finditer(prompt)), default=0) :]
        start = previous + agreement(text[previous:limit], prompt_tail)
        search = max((s.end for s in own), default=start)
        bound = min((s.start for s in slots if s.message > i and s.start >= search), default=len(text))
        tail = self._closing(key, i) if own else None
        if tail is not None and text.startswith(tail, search):
            end = search + self._closing_end(tail)
            stop = self._stops.search(text, search, end) if self._stops else None
        else:
            stop = self._stops.search(text, search, bound) if self._stops else None
            end = stop.end() if stop else search
        kinds = self._skeletons[key].kinds
        calls_last = bool(own) and kinds[own[-1].leaf] in (Leaf.ARGUMENT, Leaf.ID)
        no_text = not any(kinds[s.leaf] in (Leaf.CONTENT, Leaf.REASONING) for s in own)
        calls = bool(self._skeletons[key].conversation.messages[i].tool_calls)
        closing = stop.start() if stop and (calls_last or (calls and no_text)) else search
        return Generation(start, closing, end)

    def _closing(self, key: tuple[Any, ...], i: int) -> str | None:
        """What the template writes after assistant turn i's last text when the turn ends its render
        (`F_i`), less trailing whitespace (written between messages, never generated); None when the turn
        renders no text of its own."""
        own = self._skeleton_text(key, i + 1, False)
        last = max((s.end for s in self._slots_of(own, key) if s.message == i), default=None)
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
        end = self._generation(key, own, self._slots_of(own, key), i).end
        if own.startswith(prompt):
            return Turn(own[:end], None)
        earlier = max((m.end() for m in SENTINEL_RE.finditer(prompt)), default=0)
        reason = (
            "its generation prompt differs from how the template renders the turn"
            if common_prefix(own, prompt) >= earlier
            else "the template renders the conversation before it differently at inference"
        )
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
        return frozenset(
            i
            for i, m in enumerate(plan.conversation.messages[:count])
            if m.role == "assistant" and text.startswith(self._turn(plan.key, i).target)
        )

    # --- layouts -------------------------------------------------------------------------------------

    def _build_layout(self, key: tuple[Any, ...], count: int) -> Layout:
        text = self._skeleton_text(key, count, False)
        slots = self._slots_of(text, key)
        kinds = self._skeletons[key].kinds
        texts = [s.leaf for s in slots if kinds[s.leaf] is not Leaf.ID]  # ids repeat: call, then its answer
        if len(set(texts)) != len(texts):
            raise UnlabelableError("the chat template renders a text of the conversation more than once")
        messages = self._skeletons[key].conversation.messages[:count]
        generations = {
            i: self._generation(key, text, slots, i) for i, m in enumerate(messages) if m.role == "assistant"
        }
        images = self._image_markup(key, count, text)
        cuts = sorted(
            {
                0,
                len(text),
                *(p for s in slots for p in s[:2]),
                *(p for g in generations.values() for p in g),
                *(p for region in images for p in region),
            }
        )
        segments: list[Segment] = []
        slot_at = {s.start: s for s in slots}
        for a, b in zip(cuts, cuts[1:]):
            if any(start <= a < end for start, end in images):
                segments.append(Segment(text[a:b], -1, Kind.IMAGE, -1))
                continue
            owner = next((i for i, g in generations.items() if g.start <= a < g.end), -1)
            if a in slot_at:
                _, _, leaf, message = slot_at[a]
                kind = _LEAF_KIND[kinds[leaf]]
                if owner < 0 and kind is Kind.TOOL_CALL:
                    kind, message = Kind.TEMPLATE, -1  # an id in a tool message's header is template text
                segments.append(Segment(text[a:b], leaf, kind, owner if owner >= 0 else message))
                continue
            if owner < 0:
                kind = Kind.TEMPLATE
            else:
                generation = generations[owner]
                kind = (
                    Kind.CLOSING
                    if a >= generation.closing
                    else self._markup_kind(slots, kinds, owner, a, generation.start)
                )
            last = segments[-1] if segments else None
            if last is not None and last.leaf < 0 and (last.kind, last.message) == (kind, owner):
                segments[-1] = segments[-1]._replace(text=segments[-1].text + text[a:b])
            else:
                segments.append(Segment(text[a:b], -1, kind, owner))
        after, following = [], ""
        for segment in reversed(segments):
            after.append(following)
            following = segment.text + following if segment.leaf < 0 else ""
        rendered = {s.message for s in slots} | {i for i, g in generations.items() if g.end > g.start}
        if images:  # a message of images only has no slot: its markup renders it
            rendered |= {i for i, m in enumerate(messages) if isinstance(m.content, tuple) and len(m.content)}
        dropped = tuple(i for i in range(len(messages)) if i not in rendered)
        starts, static = glue(segments)
        return Layout(text, tuple(segments), tuple(reversed(after)), starts, static, dropped)

    def _image_markup(self, key: tuple[Any, ...], count: int, text: str) -> list[tuple[int, int]]:
        """Where the skeleton render `text` holds the template's markup for images
        (`<|vision_start|><|image_pad|><|vision_end|>`, `<start_of_image>`, `<image>\\n`): what one more copy of
        each image adds to it. Both renders hold images, so a template that renders differently once a
        conversation has one (Llama 3.2 Vision drops its date header) renders the texts alike in both. Markup
        that moves or changes a text (images numbered in the text) is not guessed at."""
        messages = self._skeletons[key].conversation.messages[:count]
        if not any(isinstance(m.content, tuple) for m in messages):
            return []
        doubled = [
            m._replace(content=tuple(q for p in m.content for q in ((p, p) if isinstance(p, Image) else (p,))))
            if isinstance(m.content, tuple)
            else m
            for m in messages
        ]
        twice = self.render_text(self._skeletons[key].conversation.replace(doubled))
        regions, shift = [], 0
        for tag, _, _, start, end in SequenceMatcher(None, text, twice, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            if tag != "insert" or SENTINEL_RE.search(twice, start, end):
                raise UnlabelableError(
                    "the chat template's markup for an image changes how it renders the conversation's texts; "
                    "its image tokens cannot be told apart from them"
                )
            while start > 0 and twice[start - 1] == twice[end - 1]:  # of equal alignments, the leftmost:
                start, end = start - 1, end - 1  # `<start_of_image>`, not `start_of_image><`
            regions.append((start - shift, end - shift))  # the copy's markup is where the image's own is
            shift += end - start
        pictures = sum(isinstance(p, Image) for m in messages if isinstance(m.content, tuple) for p in m.content)
        return regions if len(regions) == pictures else [piece for r in regions for piece in _repeats(text, *r)]

    @staticmethod
    def _markup_kind(slots: Sequence[Slot], kinds: Sequence[Leaf], owner: int, at: int, start: int) -> Kind:
        """Template text inside a generation: tool-call markup when a call's slot follows it before any
        content or reasoning slot does, else other markup the model writes."""
        following = next((kinds[s.leaf] for s in slots if s.message == owner and s.start >= at), None)
        preceding = next((kinds[s.leaf] for s in reversed(slots) if s.message == owner and start <= s.end <= at), None)
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
            end = locate(text, pos, real, kind, after)
            if end < 0:
                role = plan.conversation.messages[message].role
                raise UnlabelableError(
                    f"the chat template changes the text of message {message} ({role}) beyond trimming or "
                    "JSON-escaping it, or adds text that depends on it, so its tokens cannot be located"
                )
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
