"""The converters this package ships: coqa, sharegpt, openai, alpaca, completion."""

from __future__ import annotations

import argparse
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from axolotl_multiturn.converters.sources import records
from axolotl_multiturn.converters.spec import ConversionError, Converter, Row, hookimpl

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


class FileConverter(ABC):
    """Reads the records of a local file and maps each with `conversation`."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
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
        parser.add_argument("--split", choices=("train", "validation"), default="train",
                            help="split of the HF dataset (default: train)")
        parser.add_argument("--system-prompt", default=COQA_SYSTEM_PROMPT,
                            help="system message; {story} is replaced by the story (default: %(default)r)")

    def rows(self, source: str | None, args: argparse.Namespace) -> Iterator[Row]:
        items = records(source) if source else self._hub(args.split)
        return _rows(items, lambda item: self.conversation(item, args.system_prompt))

    @staticmethod
    def _hub(split: str) -> Iterator[Mapping[str, Any]]:
        try:
            import datasets
        except ImportError:
            raise ConversionError("loading stanfordnlp/coqa from the hub needs the datasets package (the "
                                  "[axolotl] extra); or pass a local CoQA file") from None

        try:
            yield from datasets.load_dataset("stanfordnlp/coqa", split=split)
        except (ConnectionError, OSError, ValueError) as error:
            raise ConversionError(f"cannot load stanfordnlp/coqa from the hub ({error}); download "
                                  "coqa-train-v1.0.json and pass its path") from None

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


SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "function_call": "assistant", "observation": "tool"}


def _call_ids() -> Callable[[], str]:
    """Ids for calls the source does not name: nine characters (Mistral's templates check the length)."""
    count = iter(range(1, 100_000))
    return lambda: f"call{next(count):05d}"


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
    return [t if t.get("type") == "function" and "function" in t else {"type": "function", "function": t}
            for t in tools]


class ShareGPT(FileConverter):
    name = "sharegpt"
    help = ("ShareGPT: {'conversations': [{'from': 'system'|'human'|'gpt'|'function_call'|'observation', "
            "'value': ...}], 'system'?, 'tools'?} (LLaMA-Factory's shape for agent data)")

    @staticmethod
    def conversation(item: Mapping[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if item.get("system"):
            messages.append({"role": "system", "content": _text(item["system"], "system")})
        new_id = _call_ids()
        pending: list[str] = []
        for turn, message in enumerate(item["conversations"]):
            role = SHAREGPT_ROLES.get(message.get("from"))
            if role is None:
                raise ConversionError(f"turn {turn}: 'from' is {message.get('from')!r}; expected one of "
                                      f"{', '.join(SHAREGPT_ROLES)}")
            value = message.get("value")
            if message["from"] == "function_call":
                calls = _json(value, f"turn {turn} function_call")
                calls = calls if isinstance(calls, list) else [calls]
                if not calls or not all(isinstance(c, Mapping) and c.get("name") for c in calls):
                    raise ConversionError(f"turn {turn}: function_call is not a call {{'name', 'arguments'}} "
                                          "or a list of them")
                pending = [new_id() for _ in calls]
                messages.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": ident, "type": "function",
                     "function": {"name": c["name"], "arguments": c.get("arguments", {})}}
                    for ident, c in zip(pending, calls)]})
            elif role == "tool":
                if not pending:
                    raise ConversionError(f"turn {turn}: observation answers no function_call")
                messages.append({"role": "tool", "tool_call_id": pending.pop(0),
                                 "content": _text(value, f"turn {turn} value")})
            else:
                messages.append({"role": role, "content": _text(value, f"turn {turn} value")})
        out: dict[str, Any] = {"messages": messages}
        if item.get("tools"):
            out["tools"] = _tools(item["tools"])
        return out


class OpenAI(FileConverter):
    name = "openai"
    help = ("OpenAI fine-tuning JSONL ({'messages', 'tools'?}), the legacy shape ('functions', assistant "
            "'function_call', role 'function') included")

    @staticmethod
    def conversation(item: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in item.items() if k not in ("messages", "functions")}
        if item.get("functions"):
            out["tools"] = _tools(item["functions"])
        new_id = _call_ids()
        pending: list[str] = []
        messages = []
        for turn, message in enumerate(item["messages"]):
            message = dict(message)
            if "function_call" in message:  # legacy: one call per assistant turn, no id
                call = message.pop("function_call")
                pending = [new_id()]
                message["tool_calls"] = [{"id": pending[0], "type": "function", "function": {
                    "name": call["name"], "arguments": call.get("arguments", "{}")}}]
            if message.get("role") == "function":
                if not pending:
                    raise ConversionError(f"message {turn}: a function result answers no function_call")
                message = {"role": "tool", "tool_call_id": pending.pop(0), "content": message.get("content")}
            if "name" in message:
                raise ConversionError(f"message {turn}: 'name' on a {message.get('role')} message has no place "
                                      "in the chat template; remove it or fold it into the content")
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
        messages += [{"role": "user", "content": prompt},
                     {"role": "assistant", "content": _text(item.get("output"), "output")}]
        return {"messages": messages}


class Completion(FileConverter):
    name = "completion"
    help = "prompt/completion pairs: {'prompt': ..., 'completion': ...}"

    @staticmethod
    def conversation(item: Mapping[str, Any]) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": _text(item.get("prompt"), "prompt")},
                             {"role": "assistant", "content": _text(item.get("completion"), "completion")}]}


@hookimpl
def axolotl_multiturn_converters() -> list[Converter]:
    return [CoQA(), ShareGPT(), OpenAI(), Alpaca(), Completion()]
