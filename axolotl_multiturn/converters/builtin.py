"""The converters this package ships: coqa, sharegpt, openai, alpaca, completion (conversations), and
preference, coqa-preference (preference pairs)."""

from __future__ import annotations

import argparse
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from axolotl_multiturn.converters.sources import records
from axolotl_multiturn.converters.spec import ConversionError, Converter, Row, hookimpl
from axolotl_multiturn.engine.pairs import Pair, Shape, shape_of, split, to_shape

COQA_SYSTEM_PROMPT = "Read the story and extract answers for the questions.\nStory: {story}"


def _rows(items: Iterator[Any], convert: Callable[[Any], dict[str, Any]]) -> Iterator[Row]:
    for index, item in enumerate(items):
        try:
            yield Row(index, conversation=convert(item))
        except ConversionError as error:
            yield Row(index, error=str(error))
        except (KeyError, TypeError, AttributeError) as error:
            yield Row(index, error=f"unexpected record shape ({type(error).__name__}: {error})")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConversionError(f"{what} is empty or not text")
    return value


# Each converter below is a small class of one shape (name, help, `conversation`): the extension point's
# form, which `duplicates` lists as same-shape pairs.
class FileConverter(ABC):
    """Reads the records of a local file and maps each with `conversation`."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - an optional hook
        """No options beyond the input file."""

    def rows(self, source: str | None, args: argparse.Namespace) -> Iterator[Row]:
        if not source:
            raise ConversionError(f"{self.name}: give the input file (JSON, JSON Lines or Parquet)")
        return _rows(records(source), self.conversation)

    @staticmethod
    @abstractmethod
    def conversation(item: Mapping[str, Any]) -> dict[str, Any]:
        """One source record as {"messages": [...]}; raise ConversionError to reject it."""


class CoQA:
    """CoQA (Reddy et al. 2019): a story, then question/answer turns about it."""

    name = "coqa"
    help = "CoQA: the HF dataset stanfordnlp/coqa, an official CoQA JSON file, or a parquet/JSON export"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--split", choices=("train", "validation"), default="train", help="split of the HF dataset (default: train)"
        )
        parser.add_argument(
            "--system-prompt",
            default=COQA_SYSTEM_PROMPT,
            help="system message; {story} is replaced by the story (default: %(default)r)",
        )

    def rows(self, source: str | None, args: argparse.Namespace) -> Iterator[Row]:
        items = records(source) if source else self._hub(args.split)
        return _rows(items, lambda item: self.conversation(item, args.system_prompt))

    @staticmethod
    def _hub(split: str) -> Iterator[Mapping[str, Any]]:
        try:
            import datasets
        except ImportError:
            raise ConversionError(
                "loading stanfordnlp/coqa from the hub needs the datasets package (the "
                "[axolotl] extra); or pass a local CoQA file"
            ) from None

        try:
            yield from datasets.load_dataset("stanfordnlp/coqa", split=split)
        except (ConnectionError, OSError, ValueError) as error:
            raise ConversionError(
                f"cannot load stanfordnlp/coqa from the hub ({error}); download coqa-train-v1.0.json and pass its path"
            ) from None

    @staticmethod
    def conversation(item: Mapping[str, Any], system_prompt: str) -> dict[str, Any]:
        story = _text(item.get("story"), "story")
        questions, answers = item["questions"], item["answers"]
        if isinstance(answers, Mapping):  # HF export: answers = {"input_text": [...], ...}
            answers = answers["input_text"]
        questions = [q["input_text"] if isinstance(q, Mapping) else q for q in questions]
        answers = [a["input_text"] if isinstance(a, Mapping) else a for a in answers]
        if len(questions) != len(answers):
            raise ConversionError(f"{len(questions)} questions but {len(answers)} answers")
        if not questions:
            raise ConversionError("no questions")
        messages = [{"role": "system", "content": system_prompt.replace("{story}", story)}]
        for turn, (question, answer) in enumerate(zip(questions, answers), start=1):
            messages.append({"role": "user", "content": _text(question, f"question {turn}")})
            messages.append({"role": "assistant", "content": _text(answer, f"answer {turn}")})
        return {"messages": messages}


SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "assistant",
    "observation": "tool",
}


class _Calls:
    """Calls in a source that names no ids, and the results that answer them in order: ids are generated
    (nine characters: Mistral's templates check the length) and handed to the results."""

    def __init__(self) -> None:
        self._numbers = iter(range(1, 100_000))
        self._pending: list[str] = []

    def calls(self, calls: list[Mapping[str, Any]], no_arguments: Any) -> list[dict[str, Any]]:
        self._pending = [f"call{next(self._numbers):05d}" for _ in calls]
        return [
            {
                "id": ident,
                "type": "function",
                "function": {"name": call["name"], "arguments": call.get("arguments", no_arguments)},
            }
            for ident, call in zip(self._pending, calls)
        ]

    def result(self, content: Any, where: str) -> dict[str, Any]:
        if not self._pending:
            raise ConversionError(f"{where}: a result that answers no call")
        return {"role": "tool", "tool_call_id": self._pending.pop(0), "content": content}


def _json(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ConversionError(f"{what} is not valid JSON ({error.msg})") from None


def _tools(value: Any) -> list[dict[str, Any]]:
    """Function definitions (a JSON string in LLaMA-Factory, or a list) as OpenAI `tools` entries."""
    tools = _json(value, "tools")
    if not isinstance(tools, list):
        raise ConversionError("tools is not a list of functions")
    return [
        t if t.get("type") == "function" and "function" in t else {"type": "function", "function": t} for t in tools
    ]


class ShareGPT(FileConverter):
    name = "sharegpt"
    help = (
        "ShareGPT: {'conversations': [{'from': 'system'|'human'|'gpt'|'function_call'|'observation', "
        "'value': ...}], 'system'?, 'tools'?} (LLaMA-Factory's shape for agent data)"
    )

    @staticmethod
    def conversation(item: Mapping[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if item.get("system"):
            messages.append({"role": "system", "content": _text(item["system"], "system")})
        calls = _Calls()
        for turn, message in enumerate(item["conversations"]):
            role = SHAREGPT_ROLES.get(message.get("from"))
            if role is None:
                raise ConversionError(
                    f"turn {turn}: 'from' is {message.get('from')!r}; expected one of {', '.join(SHAREGPT_ROLES)}"
                )
            value = message.get("value")
            if message["from"] == "function_call":
                called = _json(value, f"turn {turn} function_call")
                called = called if isinstance(called, list) else [called]
                if not called or not all(isinstance(c, Mapping) and c.get("name") for c in called):
                    raise ConversionError(
                        f"turn {turn}: function_call is not a call {{'name', 'arguments'}} or a list of them"
                    )
                messages.append({"role": "assistant", "content": None, "tool_calls": calls.calls(called, {})})
            elif role == "tool":
                messages.append(calls.result(_text(value, f"turn {turn} value"), f"turn {turn} (observation)"))
            else:
                messages.append({"role": role, "content": _text(value, f"turn {turn} value")})
        out: dict[str, Any] = {"messages": messages}
        if item.get("tools"):
            out["tools"] = _tools(item["tools"])
        return out


class OpenAI(FileConverter):
    name = "openai"
    help = (
        "OpenAI fine-tuning JSONL ({'messages', 'tools'?}), the legacy shape ('functions', assistant "
        "'function_call', role 'function') included"
    )

    @staticmethod
    def conversation(item: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in item.items() if k not in ("messages", "functions")}
        if item.get("functions"):
            out["tools"] = _tools(item["functions"])
        calls = _Calls()
        messages = []
        for turn, message in enumerate(item["messages"]):
            message = dict(message)
            if "function_call" in message:  # legacy: one call per assistant turn, no id
                message["tool_calls"] = calls.calls([message.pop("function_call")], "{}")
            if message.get("role") == "function":
                message = calls.result(message.get("content"), f"message {turn} (function result)")
            if "name" in message:
                raise ConversionError(
                    f"message {turn}: 'name' on a {message.get('role')} message has no place "
                    "in the chat template; remove it or fold it into the content"
                )
            messages.append(message)
        out["messages"] = messages
        return out


class Alpaca(FileConverter):
    name = "alpaca"
    help = "Alpaca: {'instruction', 'input' (optional), 'output', 'system' (optional)}"

    @staticmethod
    def conversation(item: Mapping[str, Any]) -> dict[str, Any]:
        prompt = _text(item.get("instruction"), "instruction")
        if item.get("input"):
            prompt = f"{prompt}\n\n{item['input']}"
        messages = [{"role": "system", "content": item["system"]}] if item.get("system") else []
        messages += [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": _text(item.get("output"), "output")},
        ]
        return {"messages": messages}


class Completion(FileConverter):
    name = "completion"
    help = "prompt/completion pairs: {'prompt': ..., 'completion': ...}"

    @staticmethod
    def conversation(item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "user", "content": _text(item.get("prompt"), "prompt")},
                {"role": "assistant", "content": _text(item.get("completion"), "completion")},
            ]
        }


def _add_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shape",
        choices=[s.value for s in Shape],
        default=Shape.HOSTED.value,
        help="the preference shape to write (default: %(default)s, the hosted API's)",
    )


class Preference:
    """Preference pairs from any of the three shapes in use to any other (`engine.pairs`): lossless, since
    each holds a prompt (messages, tools), two assistant outputs and the line's other keys."""

    name = "preference"
    help = (
        "preference pairs between shapes: hosted {'input', 'preferred_output', 'non_preferred_output'}, "
        "TRL {'prompt'?, 'chosen', 'rejected'}, axolotl {'messages', 'chosen', 'rejected'}"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_shape(parser)

    def rows(self, source: str | None, args: argparse.Namespace) -> Iterator[Row]:
        if not source:
            raise ConversionError(f"{self.name}: give the input file (JSON, JSON Lines or Parquet)")
        return _rows(records(source), lambda item: self.pair(item, Shape(args.shape)))

    @staticmethod
    def pair(item: Mapping[str, Any], shape: Shape) -> dict[str, Any]:
        source = shape_of(item) if isinstance(item, Mapping) else None
        if source is None:
            raise ConversionError(
                "not a preference pair in any known shape (input/preferred_output/"
                "non_preferred_output; prompt/chosen/rejected; messages/chosen/rejected)"
            )
        pair, problems = split(item, source)
        if pair is None:
            raise ConversionError("; ".join(f"{p.code} {p.message}" for p in problems))
        return to_shape(pair, shape)


class CoQAPreference(CoQA):
    """CoQA as preference pairs: each question after the story and the turns before it, the story's own
    answer chosen and the answer to another question of the same story rejected (plausible, and wrong)."""

    name = "coqa-preference"
    help = (
        "CoQA as preference pairs: each question in its multi-turn context; chosen its answer, rejected "
        "the answer to another question of the same story"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        _add_shape(parser)

    def rows(self, source: str | None, args: argparse.Namespace) -> Iterator[Row]:
        for row in super().rows(source, args):
            if row.conversation is None:
                yield row
                continue
            try:
                pairs = self.pairs(row.conversation["messages"])
            except ConversionError as error:
                yield Row(row.index, error=str(error))
                continue
            for pair in pairs:
                yield Row(row.index, conversation=to_shape(pair, Shape(args.shape)))

    @staticmethod
    def pairs(messages: list[dict[str, Any]]) -> list[Pair]:
        """A pair per answer: rejected is the next answer of the story that differs from it (the previous
        one for the last), so every pair is plausible and wrong."""
        at = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        out = []
        for k, i in enumerate(at):
            answer = messages[i]
            others = [messages[j] for j in at[k + 1 :] + at[:k][::-1] if messages[j]["content"] != answer["content"]]
            if not others:
                raise ConversionError("every answer of the story is the same: no wrong answer to reject")
            out.append(Pair(messages[:i], None, answer, others[0], {}))
        return out


@hookimpl
def axolotl_multiturn_converters() -> list[Converter]:
    return [CoQA(), ShareGPT(), OpenAI(), Alpaca(), Completion(), Preference(), CoQAPreference()]
