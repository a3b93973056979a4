"""The template corpus: every chat template the installed axolotl and TRL ship, each judged on plain,
reasoning and tool conversations against the prefix-diff oracle, on Qwen2's real BPE vocabulary.

The oracle knows nothing of the engine. For assistant turn i, `P_i = apply_chat_template(messages[:i],
add_generation_prompt=True)` and `F_i = apply_chat_template(messages[:i+1])`; the turn's generation is
`F_i` after `P_i` through the model's stop token: the first token of the model's stop set in that tail and
the stop tokens right after it (`<|im_end|><|endofturn|>`), never the whitespace a template writes between
messages. The stop set is the model's own (its tokenizer's eos and its generation config's `eos_token_id`
list: `MODELS`), not the engine's. A turn whose `P_i` is not a prefix of `F_i` has no inference context
in any render: the engine must count it, not train it in a wrong one.

`python tests/corpus.py` writes `docs/templates.md` from these verdicts; `test_corpus.py` checks that
page against what the installed packages give.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from axolotl_multiturn.models.tiny import qwen_tokenizer  # noqa: E402

ROOT = HERE.parent
PAGE = ROOT / "docs" / "templates.md"

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"type": "string"}, "days": {"type": "integer"}}}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "description": "The time",
                                          "parameters": {"type": "object", "properties": {}}}}


def call(ident: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}


#: The conversations, each text unique so that the oracle can find it (nine-character ids: Mistral
#: checks them). Keys are the columns of the capability table.
SHAPES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = {
    "plain": ([
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Who walked?"}, {"role": "assistant", "content": "Anna walked."},
        {"role": "user", "content": "Where?"}, {"role": "assistant", "content": "To the river."},
    ], None),
    "reasoning": ([
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "It is 4.", "reasoning_content": "Two and two make four."},
        {"role": "user", "content": "3+3?"},
        {"role": "assistant", "content": "It is 6.", "reasoning_content": "Three and three make six."},
    ], None),
    "tools": ([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None,
         "tool_calls": [call("call00001", "get_weather", '{"city": "Paris", "days": 2}')]},
        {"role": "tool", "tool_call_id": "call00001", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21 °C and clear in Paris."},
        {"role": "user", "content": "And Zürich?"},
        {"role": "assistant", "content": None,
         "tool_calls": [call("call00002", "get_weather", '{"city": "Zürich", "days": 1}')]},
        {"role": "tool", "tool_call_id": "call00002", "content": "sun"},
        {"role": "assistant", "content": "Sun in Zürich."},
    ], [WEATHER]),
    "parallel calls": ([
        {"role": "system", "content": "You check facts with tools."},
        {"role": "user", "content": "Weather in Oslo for 3 days, and the time?"},
        {"role": "assistant", "content": "Let me check both.",
         "tool_calls": [call("callA0001", "get_weather", {"city": "Oslo", "days": 3}),
                        call("callB0002", "get_time", {})]},
        {"role": "tool", "tool_call_id": "callA0001", "content": "snow"},
        {"role": "tool", "tool_call_id": "callB0002", "content": "12:00"},
        {"role": "assistant", "content": "Snow in Oslo; it is noon."},
    ], [WEATHER, CLOCK]),
}

#: The model behind each template (matched by name, first match wins): (bos, eos, the generation
#: config's stop tokens). From each model's tokenizer_config.json and generation_config.json.
MODELS: tuple[tuple[str, str | None, str, tuple[str, ...]], ...] = (
    (r"gptoss", None, "<|return|>", ("<|return|>", "<|call|>", "<|endoftext|>")),
    (r"glm4", None, "<|endoftext|>", ("<|endoftext|>", "<|user|>", "<|observation|>")),
    (r"llama3_2_vision|llama3", "<|begin_of_text|>", "<|eot_id|>", ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")),
    (r"llama4", "<|begin_of_text|>", "<|eot|>", ("<|end_of_text|>", "<|eom|>", "<|eot|>")),
    (r"gemma4|diffusion_gemma", "<bos>", "<turn|>", ("<turn|>", "<eos>")),
    # ATEM ends each channel's message with <|eom|> and the turn with <|eot|>, as harmony ends a message
    # with <|end|> and a turn with <|return|>/<|call|>: the model goes on after <|eom|>.
    (r"muse_glimmer", "<|begin_of_text|>", "<|eot|>", ("<|eot|>",)),
    (r"lfm2", "<|startoftext|>", "<|im_end|>", ("<|im_end|>",)),
    (r"gemma", "<bos>", "<eos>", ("<eos>", "<end_of_turn>")),
    (r"phi_?3", "<s>", "<|endoftext|>", ("<|end|>", "<|endoftext|>")),
    (r"phi_4", None, "<|im_end|>", ("<|im_end|>", "<|endoftext|>")),
    (r"deepseek", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", ("<｜end▁of▁sentence｜>",)),
    (r"cohere|command|aya", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", ("<|END_OF_TURN_TOKEN|>",)),
    (r"exaone", None, "[|endofturn|]", ("[|endofturn|]",)),
    (r"jamba", "<|startoftext|>", "<|eom|>", ("<|eom|>",)),
    (r"idefics3", "<|begin_of_text|>", "<end_of_utterance>", ("<end_of_utterance>",)),
    (r"falcon_h1", None, "<|end_of_text|>", ("<|end_of_text|>", "<|im_end|>")),
    (r"mistral|pixtral|llava|alpaca|metharme", "<s>", "</s>", ("</s>",)),
    (r"qwen|chatml|nemotron", None, "<|im_end|>", ("<|im_end|>", "<|endoftext|>")),
)

#: What a template writes as one token: markers of the `<|x|>`, `<｜x｜>`, `[INST]`, `[|x|]`,
#: `<x|>`/`<|x>` (Gemma 4) and `<start_of_turn>` families, and the usual bos/eos spellings.
_SPECIAL = re.compile(r"""<\|[^|<>\s'"]{1,48}\|>|<｜[^｜]{1,48}｜>|\[/?[A-Z_]{3,}\]|\[\|\w+\|\]|<\|\w+>|<\w+\|>|<\|"\|>"""
                      r"""|<(?:start|end)_of_\w+>|<end_of_utterance>|<(?:bos|eos|s|/s)>|<BOS_TOKEN>""")


@dataclass(frozen=True)
class Template:
    source: str  # "axolotl" or "trl"
    name: str
    text: str
    training: str | None  # TRL's `*_training.jinja` with `{% generation %}` markers

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:10]

    @property
    def model(self) -> tuple[str | None, str, tuple[str, ...]]:
        for pattern, *facts in MODELS:
            if re.search(pattern, self.name):
                return tuple(facts)  # type: ignore[return-value]
        raise KeyError(f"no model facts for template {self.name}: add it to MODELS")


def _versions() -> dict[str, str]:
    import axolotl
    import trl

    return {"axolotl": axolotl.__version__, "trl": trl.__version__}


@cache
def templates() -> tuple[Template, ...]:
    import axolotl
    import trl

    out = []
    folder = Path(axolotl.__file__).parent / "utils" / "chat_templates" / "templates"
    out += [Template("axolotl", p.stem, p.read_text(), None) for p in sorted(folder.glob("*.jinja"))]
    folder = Path(trl.__file__).parent / "chat_templates"
    for p in sorted(folder.glob("*.jinja")):
        if p.stem.endswith("_training"):
            continue
        training = p.with_name(f"{p.stem}_training.jinja")
        out.append(Template("trl", p.stem, p.read_text(), training.read_text() if training.exists() else None))
    return tuple(out)


@cache
def _base() -> Any:
    specials = sorted({s for t in templates() for s in _SPECIAL.findall(t.text)} |
                      {s for t in templates() for s in (t.model[0], t.model[1], *t.model[2]) if s})
    return qwen_tokenizer(specials)


def tokenizer(template: Template, text: str | None = None) -> Any:
    """Qwen2's vocabulary with every marker of the corpus as a special token, the model's bos and eos."""
    tok = copy.copy(_base())
    bos, eos, _ = template.model
    tok.bos_token, tok.eos_token = bos, eos
    tok.chat_template = text or template.text
    return tok


def stops_for(tok: Any) -> tuple[str, ...]:
    """The stop set of the model whose eos `tok` has: its eos and its generation config's stops."""
    for _, _, eos, stops in MODELS:
        if eos == tok.eos_token:
            return tuple(dict.fromkeys((eos, *stops)))
    raise KeyError(f"no model with eos {tok.eos_token!r} in MODELS")


def as_template_reads(tok: Any, messages: list[dict], key: str = "reasoning_content") -> list[dict]:
    """The convention of docs/data.md: string arguments are parsed and passed as objects, or, to a template that
    cannot take objects, as the data's string itself; a null content is ''; a reasoning trace under the
    key the template reads (`key`)."""
    out = [{**{k: v for k, v in m.items() if k != "reasoning_content"},
            **({key: m["reasoning_content"]} if "reasoning_content" in m else {})} for m in copy.deepcopy(messages)]
    probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
        call("call00001", "f", {"x": "1"})]}, {"role": "tool", "tool_call_id": "call00001", "content": "r"},
             {"role": "assistant", "content": "a"}]
    try:
        tok.apply_chat_template(probe, tokenize=False)
        strings = False
    except Exception:  # noqa: BLE001
        strings = True
    for m in out:
        if m.get("content") is None:
            m["content"] = ""
        for c in m.get("tool_calls", []):
            arguments = c["function"]["arguments"]
            if strings:
                c["function"]["arguments"] = arguments if isinstance(arguments, str) else json.dumps(
                    arguments, ensure_ascii=False)
            else:
                c["function"]["arguments"] = json.loads(arguments) if isinstance(arguments, str) else arguments
    return out


def render(tok: Any, messages: list[dict], tools: Any, generation: bool = False,
           key: str = "reasoning_content") -> str:
    return tok.apply_chat_template(as_template_reads(tok, messages, key), tools=tools, tokenize=False,
                                   add_generation_prompt=generation)


def generation(tail: str, stops: tuple[str, ...]) -> str:
    """A turn's generation in `tail` (its `F_i` after `P_i`): through the first stop token and those right
    after it; without one, the tail less the whitespace that separates messages."""
    pattern = re.compile("|".join(map(re.escape, sorted(stops, key=len, reverse=True))))
    first = pattern.search(tail)
    if first is None:
        return tail.rstrip()
    end = first.end()
    while (more := pattern.match(tail, end)) is not None:
        end = more.end()
    return tail[:end]


def oracle(tok: Any, messages: list[dict], tools: Any, stops: tuple[str, ...],
           key: str = "reasoning_content") -> dict[int, tuple[str, str]]:
    """(P_i, G_i) per assistant turn i whose P_i is a prefix of F_i. The others are undefined: no render
    shows them after their generation prompt; they map to (F_i, ''), and the engine may train their text
    in `F_i` after the render of the messages before them (docs/exactness.md: parity)."""
    out = {}
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt, full = render(tok, messages[:i], tools, True, key), render(tok, messages[:i + 1], tools, False, key)
        out[i] = (prompt, generation(full[len(prompt):], stops)) if full.startswith(prompt) else (full, "")
    return out


def spaced_start(tok: Any, messages: list[dict], tools: Any, i: int, key: str = "reasoning_content") -> int | None:
    """Where undefined turn i's own text starts in `F_i` when `P_i` differs from `F_i` only in whitespace
    (templates whose Jinja tags do not trim indent a header or a closing differently in the history and in
    the generation prompt): after `P_i`'s last character and the whitespace that follows it. None when
    other characters differ (history rewritten): then only the lenient bound applies."""
    prompt, full = render(tok, messages[:i], tools, True, key), render(tok, messages[:i + 1], tools, False, key)
    wanted = "".join(prompt.split())
    at, seen = 0, 0
    while seen < len(wanted):  # walk `full`, skipping whitespace, until `prompt`'s characters are all seen
        if at == len(full):
            return None
        if not full[at].isspace():
            if full[at] != wanted[seen]:
                return None
            seen += 1
        at += 1
    return len(full) - len(full[at:].lstrip())


def undefined_run(full: str, spaced: int | None, stops: tuple[str, ...], text: str, start: int, end: int,
                  lower: Callable[[], int]) -> bool:
    """Whether the trained run `text[start:end]` is an undefined turn's (its render `full`, `F_i`): exactly
    its generation after `spaced` (`spaced_start`) where the prompt differs only in whitespace, else (history
    rewritten) a run inside `F_i` from `lower()` on (what the render before the turn shares with it)."""
    if not text.startswith(full) or end > len(full):
        return False
    if spaced is not None:
        return start == spaced and text[start:end] == generation(full[spaced:], stops)
    return start >= lower()


def reasoning_key(tok: Any, messages: list[dict], tools: Any) -> str | None:
    """The message key under which the template renders a reasoning trace (`reasoning_content`,
    `thinking`, `reasoning`), found by rendering; None when it renders none."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    trace = messages[last].get("reasoning_content")
    for key in ("reasoning_content", "thinking", "reasoning"):
        if trace in render(tok, messages, tools, False, key):
            return key
    return None


def tokenize(tok: Any, text: str, cuts: list[int]) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and offsets of `text`, each piece between `cuts` tokenized apart."""
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    bounds = [0, *cuts, len(text)]
    for a, b in zip(bounds, bounds[1:]):
        piece = tok(text[a:b], add_special_tokens=False, return_offsets_mapping=True)
        ids += piece["input_ids"]
        offsets += [(x + a, y + a) for x, y in piece["offset_mapping"]]
    return ids, offsets


def inference_tokens(tok: Any, messages: list[dict], tools: Any = None) -> tuple[str, list[int], list[tuple[int, int]]]:
    """A conversation's render, ids and offsets as training should see them: `apply_chat_template`'s,
    except where a token straddles the end of an assistant turn's generation prompt `P_i` (a content that
    starts with the newline the prompt ends with): there the prompt is tokenized on its own, as at
    inference."""
    text = render(tok, messages, tools)
    whole = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cuts = []
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            prompt = render(tok, messages[:i], tools, True)
            if text.startswith(prompt) and any(a < len(prompt) < b for a, b in whole):
                cuts.append(len(prompt))
    return (text, *tokenize(tok, text, cuts))


def cuts_of(tok: Any, text: str, messages: list[dict], labelled: Any) -> list[int] | str:
    """Where the engine tokenized a row apart (its tokens' boundaries that the whole render's tokens
    straddle), or why a cut is wrong. A cut may only fall where a generation starts: between the last
    text of the message before an assistant turn and that turn's first text (a generation prompt that
    ends inside a token, `<think>\n` + `\n</think>`: at inference the prompt is tokenized on its own)."""
    whole = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    if whole["input_ids"] == labelled.item.input_ids.tolist():
        return []
    starts = {a for a, _ in whole["offset_mapping"]}
    engine = labelled.item.offsets.tolist()
    cuts = sorted({a for (_, end), (a, _) in zip(engine, engine[1:]) if a >= end and a not in starts})
    regions, position = [], 0
    for j, m in enumerate(messages):
        texts = [t for t in (m.get("content"), m.get("reasoning_content"),
                             *(c["id"] for c in m.get("tool_calls", []))) if t]
        found = [text.find(t, position) for t in texts if text.find(t, position) >= 0]
        if m["role"] == "assistant":
            regions.append((position, min(found, default=len(text))))
        position = max((text.find(t, position) + len(t) for t in texts if text.find(t, position) >= 0),
                       default=position)
    wrong = [c for c in cuts if not any(a <= c <= b for a, b in regions)]
    return f"tokenized apart at {wrong}, outside any generation's start" if wrong else cuts


def trained_runs(offsets: list[tuple[int, int]], labels: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for (a, b), label in zip(offsets, labels):
        if label == -100:
            continue
        if runs and runs[-1][1] >= a:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((a, b))
    return runs


def _dropped(full: str, messages: list[dict]) -> str | None:
    """The tool calls a template leaves out of the last render (a capability it lacks), or None."""
    for m in messages:
        for c in m.get("tool_calls", []):
            if c["function"]["name"] not in full:
                return "no tool calls (the calls are not rendered)"
    return None


def judge(template: Template, shape: str) -> str:
    """The cell of the capability table: `exact`, `exact; N undefined` (turns with no inference context,
    counted), `not rendered: ...` (the template cannot render it), or a failure (`WRONG: ...`,
    `refused: ...`) that the tests reject."""
    import datasets
    from chats import strategy

    from axolotl_multiturn.chat import RowError

    messages, tools = SHAPES[shape]
    tok = tokenizer(template)
    stops = tuple(s for s in {template.model[1], *template.model[2]} if s)
    try:
        key = reasoning_key(tok, messages, tools) if shape == "reasoning" else "reasoning_content"
        if key is None:
            return "not rendered: no reasoning (the trace is not rendered)"
        expected = oracle(tok, messages, tools, stops, key)
        full = render(tok, messages, tools, False, key)
    except Exception as error:  # noqa: BLE001 - the template's own refusal is the cell
        return f"not rendered: the template raises ({_short(error)})"
    missing = _dropped(full, messages)
    if missing:
        return f"not rendered: {missing}"
    row = {"messages": messages, **({"tools": tools} if tools else {})}
    try:
        rows = list(strategy(tok, "instruction").labelled({k: [v] for k, v in row.items()}, [0]))
        # The same row as Arrow gives it (Hub, parquet, in-memory): struct keys unified, nulls filled.
        arrow = list(strategy(tok, "instruction").labelled(datasets.Dataset.from_list([row])[:], [0]))
    except RowError as error:
        return f"refused: {_short(error)}"
    if [(r.item.input_ids.tolist(), r.labels.tolist()) for r in rows] != [
            (r.item.input_ids.tolist(), r.labels.tolist()) for r in arrow]:
        return "WRONG: the row through Arrow differs from the row through JSONL"
    served: list[int] = []
    spaced = {i: spaced_start(tok, messages, tools, i, key) for i, (_, gen) in expected.items() if not gen}

    def before(i: int) -> int:
        """Where turn i's own text can start: after what the render of the messages before it shares with
        `F_i`, backed off to a token start (`<turn|>` and `<|turn>` share their first character)."""
        shared = len(os.path.commonprefix([render(tok, messages[:i], tools, False, key), expected[i][0]]))
        offsets = tok(expected[i][0], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return max((a for a, _ in offsets if a <= shared), default=0)

    for labelled in rows:
        count = len(labelled.item.messages)
        text = render(tok, messages[:count], tools, False, key)
        whole = tok.apply_chat_template(as_template_reads(tok, messages[:count], key), tools=tools,
                                        tokenize=True, return_dict=False)
        cuts = cuts_of(tok, text, messages[:count], labelled)
        if isinstance(cuts, str):
            return f"WRONG: the row of {count} messages is {cuts}"
        ids, offsets = tokenize(tok, text, cuts)
        if labelled.item.input_ids.tolist() != ids or (not cuts and ids != whole):
            return f"WRONG: the row of {count} messages is not apply_chat_template's ids (cut at {cuts})"
        for start, end in trained_runs(offsets, labelled.labels.tolist()):
            turn = next((i for i, (prompt, gen) in expected.items()
                         if (gen and text[:start] == prompt and text[start:end] == gen)
                         or (not gen and i not in served and undefined_run(prompt, spaced[i], stops, text, start, end,
                                                                           lambda i=i: before(i)))), None)
            if turn is None:
                return f"WRONG: trains {text[start:end]!r} after {text[max(0, start - 40):start]!r}"
            served.append(turn)
    undefined = sum(1 for _, gen in expected.values() if not gen)
    if sorted(served) != sorted(expected):
        return f"WRONG: trains turns {sorted(served)}, not each of {sorted(expected)} once"
    if rows[0].no_parity != undefined:
        return f"WRONG: counts {rows[0].no_parity} turns without parity, the oracle {undefined}"
    if not undefined:
        return "exact"
    why = sorted({_why(tok, messages, tools, key, i) for i, (_, gen) in expected.items() if not gen})
    return f"exact; {undefined} of {len(expected)} turns undefined ({'; '.join(why)})"


def _why(tok: Any, messages: list[dict], tools: Any, key: str, i: int) -> str:
    """Why turn i has no inference context: the render before it changes once the turn is added (history
    rewritten, e.g. thinking stripped), or only the generation prompt differs from the turn's render."""
    before, full = render(tok, messages[:i], tools, False, key), render(tok, messages[:i + 1], tools, False, key)
    return ("the generation prompt differs from the turn's render" if full.startswith(before)
            else "the history renders differently once the turn is added")


def _short(error: BaseException | str, limit: int = 160) -> str:
    return " ".join(str(error).split())[:limit].rstrip()


def trl_mask(template: Template, shape: str) -> str:
    """The second oracle, for TRL templates with a `*_training.jinja`: the tokens its `{% generation %}`
    markers mask in (`return_assistant_tokens_mask=True`), against the prefix-diff generations of the
    original template: `agrees`, or where they part."""
    messages, tools = SHAPES[shape]
    tok = tokenizer(template)
    stops = tuple(s for s in {template.model[1], *template.model[2]} if s)
    try:
        key = (reasoning_key(tok, messages, tools) if shape == "reasoning" else None) or "reasoning_content"
        expected = [g for _, g in oracle(tok, messages, tools, stops, key).values() if g]
        trained = tokenizer(template, template.training)
        out = trained.apply_chat_template(as_template_reads(trained, messages, key), tools=tools, tokenize=True,
                                          return_dict=True, return_assistant_tokens_mask=True)
        text = render(trained, messages, tools, False, key)
    except Exception as error:  # noqa: BLE001 - either template's refusal is the cell
        return f"not rendered ({_short(error)})"
    offsets = trained(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    runs = [text[a:b] for a, b in trained_runs(offsets, [1 if m else -100 for m in out["assistant_masks"]])]
    if runs == expected:
        return "agrees"
    extra = [r for r in runs if r not in expected]
    missing = [g for g in expected if g not in runs]
    return _short(f"differs: masks in {extra[:1]!r} where the oracle has {missing[:1]!r}"
                  if extra or missing else f"differs: {len(runs)} runs, the oracle {len(expected)}")


#: Pairs made of the shapes' conversations: (shape, messages before the output, the chosen output's index,
#: the rejected output). The kinds are the columns of the pairs table.
PAIRS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "answer": ("plain", 4, {"role": "assistant", "content": "To the sea."}),
    "reasoning answer": ("reasoning", 3, {"role": "assistant", "content": "It is 7.",
                                          "reasoning_content": "Three and three make seven."}),
    "tool call": ("tools", 1, {"role": "assistant", "content": None, "tool_calls": [
        call("call00001", "get_weather", '{"city": "Lyon", "days": 2}')]}),
    "answer after tools": ("tools", 3, {"role": "assistant", "content": "It is cold in Paris."}),
}


def completion_oracle(tok: Any, prompt: list[dict], output: dict, tools: Any, stops: tuple[str, ...],
                      key: str = "reasoning_content") -> tuple[str, list[int]] | None:
    """An output's completion after `P = apply_chat_template(prompt, add_generation_prompt=True)`: its
    generation (`generation`) and the ids of `P + generation` after `P`'s (tokenized apart at `P`'s end where
    a token would straddle it); None where the render of prompt + output does not start with `P`. The
    prompt's own ids are `tok(P, add_special_tokens=False)`."""
    p = render(tok, prompt, tools, True, key)
    full = render(tok, [*prompt, output], tools, False, key)
    if not full.startswith(p):
        return None
    text = generation(full[len(p):], stops)
    whole = tok(full, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cuts = [len(p)] if any(a < len(p) < b for a, b in whole) else []
    ids, offsets = tokenize(tok, full, cuts)
    return text, [i for i, (a, b) in zip(ids, offsets) if len(p) <= a and b <= len(p) + len(text)]


def pair_cell(template: Template, kind: str) -> str:
    """The pair oracle: the prompt is `P = apply_chat_template(prompt, add_generation_prompt=True)` and
    its tokens `tokenize(P)`; each completion is the output's generation after `P` (`generation`), its
    tokens those of `P + generation` after `P`'s (tokenized apart at `P`'s end where a token would straddle
    it). `exact`, `refused: ...` where the oracle finds no generation after `P` (the engine must refuse),
    `not rendered: ...`, or a failure (`WRONG`)."""
    from axolotl_multiturn.engine.encode import Encoder
    from axolotl_multiturn.engine.label import Labeller, Settings
    from axolotl_multiturn.engine.pairs import Pair
    from axolotl_multiturn.engine.preference import label_pair
    from axolotl_multiturn.engine.render import ChatRenderer
    from axolotl_multiturn.engine.spans import UnlabelableError

    shape, n, other = PAIRS[kind]
    messages, tools = SHAPES[shape]
    prompt, chosen = messages[:n], messages[n]
    tok = tokenizer(template)
    stops = tuple(s for s in {template.model[1], *template.model[2]} if s)
    try:
        key = reasoning_key(tok, messages[:n + 1], tools) if "reasoning" in kind else "reasoning_content"
        if key is None:
            return "not rendered: no reasoning (the trace is not rendered)"
        p = render(tok, prompt, tools, True, key)
        expected = {name: completion_oracle(tok, prompt, output, tools, stops, key)
                    for name, output in (("chosen", chosen), ("rejected", other))}
        missing = _dropped(render(tok, [*prompt, chosen], tools, False, key), [chosen])
    except Exception as error:  # noqa: BLE001 - the template's own refusal is the cell
        return f"not rendered: the template raises ({_short(error)})"
    if missing:
        return f"not rendered: {missing}"
    renderer = ChatRenderer.for_tokenizer(tok, tok.chat_template)
    labeller = Labeller(Encoder(tok, renderer), Settings(sequence_len=1 << 20))
    pair = Pair(prompt, tools, chosen, other, {})
    try:
        labelled = label_pair(labeller, pair)
    except UnlabelableError as error:
        if None in expected.values():
            return f"refused: {_short(error)}"
        return f"WRONG: refused a pair the oracle can train ({_short(error)})"
    if None in expected.values():
        return "WRONG: trained a pair whose output does not follow its generation prompt"
    if labelled.prompt != p or labelled.prompt_ids.tolist() != tok(p, add_special_tokens=False)["input_ids"]:
        return "WRONG: the prompt is not apply_chat_template's with the generation prompt"
    for name, completion in (("chosen", labelled.chosen), ("rejected", labelled.rejected)):
        text, ids = expected[name]
        if completion.text != text or completion.ids.tolist() != ids:
            return f"WRONG: {name} is {completion.text!r}, the oracle {text!r}"
        if (completion.labels != completion.ids).any():
            return f"WRONG: {name} has masked tokens under reasoning: train"
    return "exact"


def _dpo_pairs(template: Template) -> tuple[Any, list[tuple[str, list[dict], dict, dict, Any, Any]]]:
    """(tokenizer, [(kind, prompt, chosen, rejected, tools, exact pair or None)]) for the kinds the pair
    oracle judges exact (the exact pair) or refused (None: no exact pair exists), messages as the template
    reads them."""
    from axolotl_multiturn.engine.encode import Encoder
    from axolotl_multiturn.engine.label import Labeller, Settings
    from axolotl_multiturn.engine.pairs import Pair
    from axolotl_multiturn.engine.preference import label_pair
    from axolotl_multiturn.engine.render import ChatRenderer

    tok = tokenizer(template)
    labeller = Labeller(Encoder(tok, ChatRenderer.for_tokenizer(tok, tok.chat_template)), Settings(sequence_len=1 << 20))
    out = []
    for kind, (shape, n, other) in PAIRS.items():
        verdict = pair(template, kind)
        if not verdict.startswith(("exact", "refused")):
            continue
        messages, tools = SHAPES[shape]
        key = (reasoning_key(tok, messages[:n + 1], tools) if "reasoning" in kind else None) or "reasoning_content"
        shown = as_template_reads(tok, [*messages[:n + 1], other], key)
        exact = label_pair(labeller, Pair(messages[:n], tools, messages[n], other, {})) if verdict == "exact" else None
        out.append((kind, shown[:n], shown[n], shown[n + 1], tools, exact))
    return tok, out


def _trl_tokenized(tok: Any, row: dict) -> dict:
    """TRL's `DPOTrainer._prepare_dataset`, run as is, on one row (a dataset of its own: a file of pairs
    would also unify keys across pairs)."""
    import types

    import datasets
    from datasets import Dataset
    from trl import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    datasets.disable_progress_bars()
    args = DPOConfig(output_dir=tempfile.gettempdir(), max_length=None, dataset_num_proc=None, report_to=[],
                     bf16=False, use_cpu=True)
    with unhashed_maps():
        return DPOTrainer._prepare_dataset(types.SimpleNamespace(_tokenizer=tok), Dataset.from_list([row]), tok,
                                           args, "train")[0]


@contextlib.contextmanager
def unhashed_maps() -> Any:
    """`Dataset.map` without its cache key: datasets names each map's cache files by hashing the function and
    its arguments, which here pickles the tokenizer (Qwen2's 151k-word vocabulary: 0.2 s a map, 90% of a
    pair's tokenization, 80 s of the capability page). An in-memory dataset writes no cache file, so a
    random name changes nothing of what `map` computes. Patched where datasets looks it up (an
    AttributeError here means datasets moved it)."""
    from unittest import mock

    from datasets import arrow_dataset, fingerprint

    def random(*_: Any) -> str:
        return fingerprint.generate_random_fingerprint()

    with mock.patch.object(arrow_dataset, "update_fingerprint", random), \
            mock.patch.object(fingerprint, "update_fingerprint", random):
        yield


def _against(tok: Any, theirs: dict, exact: Any) -> str:
    """Another tool's `prompt_ids`/`chosen_ids`/`rejected_ids` against the exact pair, in a cell."""
    if exact is None:
        return "trains it anyway (no exact boundary)"
    found = []
    if theirs["prompt_ids"] != exact.prompt_ids.tolist():
        found.append("prompt ids differ")
    for name, completion in (("chosen", exact.chosen), ("rejected", exact.rejected)):
        ids, mine = theirs[f"{name}_ids"], completion.ids.tolist()
        if ids == mine:
            continue
        if ids[:len(mine)] == mine:
            found.append(f"{name} adds {tok.decode(ids[len(mine):])!r} after the stop")
        elif mine[:len(ids)] == ids:
            found.append(f"{name} lacks {tok.decode(mine[len(ids):])!r} at the end")
        else:
            found.append(f"{name} ids differ")
    return "same" if not found else _short("; ".join(dict.fromkeys(
        f.replace("chosen", "output").replace("rejected", "output") for f in found)))


@cache
def trl_dpo(template: Template) -> dict[str, str]:
    """TRL's own DPO tokenization (`DPOTrainer._prepare_dataset`, run as is) of the conversational pairs,
    against the exact pairs: per kind `same`, or where TRL's ids part from them."""
    tok, pairs = _dpo_pairs(template)
    out = {kind: "-" for kind in PAIRS}
    for kind, prompt, chosen, rejected, tools, exact in pairs:
        row = {"prompt": prompt, "chosen": [chosen], "rejected": [rejected], "tools": json.dumps(tools) if tools else None}
        try:
            out[kind] = _against(tok, _trl_tokenized(tok, row), exact)
        except Exception as error:  # noqa: BLE001 - TRL's failure is the cell
            out[kind] = _short(f"fails: {type(error).__name__}: {error} (Arrow's null-filled message keys "
                               "reach the template)" if "NoneType" in str(error) else f"fails: {error}")
    return out


@cache
def axolotl_dpo(template: Template) -> dict[str, str]:
    """axolotl's own DPO strategy for chat data (`type: chat_template.default` under `rl: dpo`: its transform
    renders the prompt, and each output after a placeholder user turn, cut at the output's content), then
    TRL's tokenization of those strings as axolotl's DPO trainer runs it, against the exact pairs."""
    from axolotl.prompt_strategies.dpo.chat_template import default

    tok, pairs = _dpo_pairs(template)
    cfg = {"chat_template": "jinja", "chat_template_jinja": tok.chat_template, "datasets": [{"type": "chat_template"}]}
    transform, _ = default(cfg)
    out = {kind: "-" for kind in PAIRS}
    for kind, prompt, chosen, rejected, tools, exact in pairs:
        try:
            strings = transform({"messages": prompt, "chosen": chosen, "rejected": rejected}, tokenizer=tok)
            theirs = _trl_tokenized(tok, strings)
        except Exception as error:  # noqa: BLE001 - axolotl's failure is the cell
            out[kind] = _short(f"fails: {type(error).__name__}: {error}")
            continue
        cell = _against(tok, theirs, exact)
        lost = [*(["tools"] if tools else []), *(["the history's tool calls"] if any(m.get("tool_calls") for m in prompt)
                                                 else []),
                *(f"the output's {k}" for k in ("reasoning_content", "thinking", "reasoning", "tool_calls") if chosen.get(k))]
        out[kind] = cell if cell == "same" or not lost else _short(f"{cell} ({', '.join(lost)} dropped)", 200)
    return out


def key(template: Template) -> str:
    return f"{template.source}/{template.name}@{template.digest}"


@cache
def cell(template: Template, shape: str) -> str:
    """`judge`, once per test session (the tests and the page check share it)."""
    return judge(template, shape)


def rows() -> dict[str, dict[str, str]]:
    """Every installed template's row: shape -> cell; then TRL's training templates against the oracle."""
    return {**{key(t): {shape: cell(t, shape) for shape in SHAPES} for t in templates()},
            **{f"trl-mask/{t.name}@{t.digest}": {shape: trl_mask(t, shape) for shape in SHAPES}
               for t in templates() if t.training},
            **{f"images/{key(t)}": {"images": image_cell(t)} for t in templates()},
            **{f"pair/{key(t)}": {kind: pair(t, kind) for kind in PAIRS} for t in templates()},
            **{f"trl-dpo/{_versions()['trl']}/{key(t)}": trl_dpo(t) for t in templates()},
            **{f"axolotl-dpo/{_versions()['axolotl']}/{key(t)}": axolotl_dpo(t) for t in templates()}}


@cache
def pair(template: Template, kind: str) -> str:
    """`pair_cell`, once per test session."""
    return pair_cell(template, kind)


_ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<cells>.*) \|$")
_HEADER = re.compile(r"^\| (?:template|training template|pair|images of) \| (?P<cells>.*) \|$")


def _cells(text: str) -> list[str]:
    return [c.strip().replace("&#124;", "|") for c in text.split(" | ")]


def read_page(path: Path = PAGE) -> dict[str, dict[str, str]]:
    """The rows the page holds (both lanes' templates: a template's row is keyed by its digest), each
    under its table's columns."""
    out, columns = {}, list(SHAPES)
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        if header := _HEADER.match(line):
            columns = _cells(header["cells"])
        elif match := _ROW.match(line):
            out[match["key"]] = dict(zip(columns, _cells(match["cells"])))
    return out


def write_page(found: dict[str, dict[str, str]], path: Path = PAGE) -> None:
    """The page: the rows already there (another lane's TRL) updated with `found`."""
    merged = {**read_page(path), **found}
    lines = [
        "# Templates × capabilities",
        "",
        "Generated by `python tests/corpus.py` (run it in each CI lane's virtualenv; rows are keyed by the",
        "template's digest, so both lanes' TRL templates are kept); `tests/test_corpus.py` fails when a cell",
        "differs from what the installed packages give. Do not edit by hand.",
        "",
        "Each cell judges one conversation (`tests/corpus.py`: `SHAPES`) on Qwen2's real vocabulary with the",
        "template's markers as special tokens, against the prefix-diff oracle with the model's own stop set,",
        "through JSONL rows and through Arrow rows (`Dataset.from_list`: keys unified, nulls filled), which must",
        "give identical ids and labels:",
        "",
        "- **exact**: every assistant turn is trained once, as its generation after its generation prompt.",
        "- **exact; N of M turns undefined (why)**: those turns have no render in which they follow their",
        "  generation prompt; they are trained where the full render has them and counted (`mt_no_parity`,",
        "  docs/exactness.md: parity).",
        "- **not rendered (why)**: the template raises, or leaves the reasoning or the tool calls out.",
        "",
        f"| template | {' | '.join(SHAPES)} |",
        f"|{'---|' * (len(SHAPES) + 1)}",
        *(f"| `{k}` | {' | '.join(row[s].replace('|', '&#124;') for s in SHAPES)} |"
          for k, row in sorted(merged.items()) if "/" in k and k.split("/")[0] in ("axolotl", "trl")),
        "",
        "## TRL's `{% generation %}` masks against the oracle",
        "",
        "TRL ships a `*_training.jinja` beside most original templates, with `{% generation %}` markers for",
        "`assistant_only_loss` (`return_assistant_tokens_mask=True`). Rows `trl-mask/...` compare the text those",
        "masks train on the same conversations with the prefix-diff generations of the original template:",
        "`agrees`, or the first place they part. They part where the training template changes the render",
        "(TRL keeps thinking in every turn so that renders are prefix-preserving) or masks other text than",
        "the model generates (the stop token, the generation prompt, the newline after the stop).",
        "",
        f"| training template | {' | '.join(SHAPES)} |",
        f"|{'---|' * (len(SHAPES) + 1)}",
        *(f"| `{k}` | {' | '.join(row[s].replace('|', '&#124;') for s in SHAPES)} |"
          for k, row in sorted(merged.items()) if k.startswith("trl-mask/")),
        "",
        "## Images",
        "",
        "Rows `images/...` judge every template on a conversation with images (`IMAGE_MESSAGES`: an image before a",
        "user turn's text, one after the next turn's), labelled through the vision path (`engine/vision.py`) with a",
        "processor that expands nothing (`PlainProcessor`: each family's expansion is its own processor's,",
        "tested in `tests/test_vision.py` and [images.md](images.md)): **exact** when each assistant turn trains",
        "once, as its generation by prefix diffs of the template's renders with the images, and nothing else",
        "trains (no image markup). **not rendered**: the template raises on parts or writes nothing for an image;",
        "**not judged**: its turns have no plain prefix diffs (history rewritten), as in the plain column.",
        "",
        "| images of | images |",
        "|---|---|",
        *(f"| `{k}` | {row['images'].replace('|', '&#124;')} |"
          for k, row in sorted(merged.items()) if k.startswith("images/")),
        "",
        "## Preference pairs",
        "",
        "Rows `pair/...` judge `engine/preference.py` on pairs made of the same conversations: the prompt must be",
        "`apply_chat_template(prompt, add_generation_prompt=True)` and its tokens, each completion the output's",
        "generation after it through the model's stop token, tokenized in context. **refused** cells are pairs",
        "whose output the template does not render after that generation prompt (no exact pair exists): the",
        "line is refused with that reason, never shifted.",
        "",
        f"| pair | {' | '.join(PAIRS)} |",
        f"|{'---|' * (len(PAIRS) + 1)}",
        *(f"| `{k}` | {' | '.join(row[s].replace('|', '&#124;') for s in PAIRS)} |"
          for k, row in sorted(merged.items()) if k.startswith("pair/")),
        "",
        "## TRL's DPO tokenization against the exact pairs",
        "",
        "Rows `trl-dpo/<trl version>/...` run TRL's own `DPOTrainer._prepare_dataset` (unchanged) on the same",
        "pairs and compare its `prompt_ids`, `chosen_ids` and `rejected_ids` with the exact pair: `same`, where",
        "they part (most often the template's newline after the stop token, which TRL's collator then trains),",
        "or `trains it anyway` where no exact pair exists (TRL only warns when the prompt's tokens are not a",
        "prefix). `-`: the template cannot render the pair.",
        "",
        *_dpo_summary(merged, "trl-dpo", "trl"),
        "",
        f"| pair | {' | '.join(PAIRS)} |",
        f"|{'---|' * (len(PAIRS) + 1)}",
        *(f"| `{k}` | {' | '.join(row[s].replace('|', '&#124;') for s in PAIRS)} |"
          for k, row in sorted(merged.items()) if k.startswith("trl-dpo/")),
        "",
        "## axolotl's DPO strategy against the exact pairs",
        "",
        "Rows `axolotl-dpo/<axolotl version>/...` run axolotl's own strategy for chat data under `rl: dpo`",
        "(`type: chat_template.default`, unchanged: the prompt rendered with the generation prompt; each output",
        "rendered after a placeholder user turn `[[dummy_message]]` and cut from where its content starts, the",
        "render's trailing whitespace stripped; messages reduced to role and content), then TRL's tokenization",
        "of those strings as axolotl's DPO trainer runs it, on the same pairs: `same`, or where the ids part",
        "from the exact pair. The reduction drops a reasoning trace and tool calls (said in the cell), and the",
        "cut at the content drops the markup before it (a thinking block, a channel header).",
        "",
        *_dpo_summary(merged, "axolotl-dpo", "axolotl"),
        "",
        f"| pair | {' | '.join(PAIRS)} |",
        f"|{'---|' * (len(PAIRS) + 1)}",
        *(f"| `{k}` | {' | '.join(row[s].replace('|', '&#124;') for s in PAIRS)} |"
          for k, row in sorted(merged.items()) if k.startswith("axolotl-dpo/")),
        "",
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)


def _dpo_summary(merged: dict[str, dict[str, str]], prefix: str, package: str) -> list[str]:
    """How often another tool's pairs part from the exact ones, per version of it, over the table's cells."""
    out = []
    for version in sorted({k.split("/")[1] for k in merged if k.startswith(f"{prefix}/")}):
        cells = [c for k, row in merged.items() if k.startswith(f"{prefix}/{version}/") for c in row.values() if c != "-"]
        after = sum("after the stop" in c for c in cells)
        anyway = sum(c.startswith("trains it anyway") for c in cells)
        fails = sum(c.startswith("fails") for c in cells)
        other = len(cells) - after - anyway - fails - cells.count("same")
        out.append(f"- {package} {version}, {len(cells)} pairs: {cells.count('same')} the same, {after} with text "
                   f"after the stop token in a completion, {other} otherwise different, {anyway} trained with no "
                   f"exact boundary, {fails} failing.")
    return out



#: The images column: a user turn that shows an image before its text, a follow-up with one after its text.
#: Contents with an image are parts; the others strings, as the data writes them (docs/data.md).
IMAGE_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}]},
    {"role": "assistant", "content": "A red square."},
    {"role": "user", "content": [{"type": "text", "text": "And in this one?"}, {"type": "image"}]},
    {"role": "assistant", "content": "A blue circle."},
]


class PlainProcessor:
    """A processor that expands no image: its ids are the tokenizer's for the render. The images column judges
    the template (where its image markup is, what trains around it); each family's expansion is its own
    processor's (tests/test_vision.py)."""

    def __init__(self, tok: Any):
        self.tokenizer = tok

    def __call__(self, text: list[str], images: Any, return_tensors: str) -> dict[str, Any]:
        import numpy as np

        return {"input_ids": np.array([self.tokenizer(text[0], add_special_tokens=False)["input_ids"]])}


@cache
def image_cell(template: Template) -> str:
    """The images cell: `exact` (each assistant turn trained once, as its generation by prefix diffs of the
    template's renders with the images, and nothing else: no image markup), `not rendered: ...` (the template
    writes nothing for an image, or prints the parts), `not judged: ...` (a template that rewrites history or
    whose generation prompt differs from its turns: the plain column judges those turns), or a failure."""
    import base64
    import io

    from PIL import Image

    from axolotl_multiturn.chat import RowError, load

    tok = tokenizer(template)
    stops = tuple(s for s in {template.model[1], *template.model[2]} if s)
    bare = [{**m, "content": [p for p in m["content"] if p["type"] != "image"]} if isinstance(m["content"], list)
            else m for m in IMAGE_MESSAGES]
    try:
        full = tok.apply_chat_template(IMAGE_MESSAGES, tokenize=False)
        without = tok.apply_chat_template(bare, tokenize=False)
    except Exception as error:  # noqa: BLE001 - the template's own refusal is the cell
        return f"not rendered: the template raises ({_short(error)})"
    if "'type'" in full or "text': " in full:
        return "not rendered: no images (the template prints the content parts as data)"
    if full == without:
        return "not rendered: no images (the template writes nothing for an image)"
    expected = {}
    for i, m in enumerate(IMAGE_MESSAGES):
        if m["role"] == "assistant":
            prompt = tok.apply_chat_template(IMAGE_MESSAGES[:i], tokenize=False, add_generation_prompt=True)
            own = tok.apply_chat_template(IMAGE_MESSAGES[:i + 1], tokenize=False)
            if not own.startswith(prompt) or not full.startswith(own):
                return "not judged: a turn's render is not a prefix of the next (see the plain column)"
            expected[len(prompt)] = generation(own[len(prompt):], stops)
    picture = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(picture, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()
    row = [{**m, "content": [{"type": "image_url", "image_url": {"url": url}} if p["type"] == "image" else p
                             for p in m["content"]]} if isinstance(m["content"], list) else m for m in IMAGE_MESSAGES]
    try:
        wrapper = load(tok, {"multiturn": {"masking": "instruction"}}, {"path": "test"}, processor=PlainProcessor(tok))
        (labelled,) = list(wrapper.strategy.labelled({"messages": [row]}, [0]))
    except RowError as error:
        return f"refused: {_short(error)}"
    _, ids, offsets = inference_tokens(tok, IMAGE_MESSAGES)  # a straddled generation prompt tokenized apart
    if labelled.item.input_ids.tolist() != ids:
        return "WRONG: the row is not the render's ids as at inference"
    runs = trained_runs(offsets, labelled.labels.tolist())
    found = {start: full[start:end] for start, end in runs}
    return "exact" if found == expected else f"WRONG: trains {found}, not {expected}"


if __name__ == "__main__":
    write_page(rows())
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(read_page())} templates)")
