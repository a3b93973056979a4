"""Check a chat JSONL file line by line, streaming: every problem of every line, as findings.

The fast path for a good line is one `orjson.loads`, one compiled-schema `is_valid` and the turn-order
checks; the python `jsonschema` validator and the column locator run only for lines with errors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from axolotl_multiturn.lint import locate
from axolotl_multiturn.lint.rules import RULES, Severity
from axolotl_multiturn.markers import CONTROL_STRINGS
from axolotl_multiturn.messages import check_conversation

_CONTROL = re.compile("|".join(re.escape(s) for s in sorted(CONTROL_STRINGS, key=len, reverse=True)))


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    column: int | None
    code: str
    severity: Severity
    message: str
    pointer: str = ""


class LineChecker:
    """Checks the lines of one file in order; remembers what it needs for duplicate detection."""

    def __init__(self, path: str):
        self.path = path
        self._seen: dict[bytes, int] = {}  # 16-byte digest of each valid conversation -> first line

    def finding(self, line: int, code: str, message: str, pointer: str = "", column: int | None = None) -> Finding:
        return Finding(self.path, line, column, code, RULES[code].severity, message, pointer)

    def check(self, number: int, raw: bytes) -> list[Finding]:
        """Every finding of one line, in column order."""
        return sorted(self._check(number, raw), key=lambda f: f.column or 0)

    def _check(self, number: int, raw: bytes) -> Iterator[Finding]:
        raw = raw.rstrip(b"\n").removesuffix(b"\r")
        if not raw.strip():
            yield self.finding(number, "MT304", "blank line; remove it", column=1)
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            column = len(raw[:error.start].decode("utf-8", "replace")) + 1
            yield self.finding(number, "MT001", f"invalid UTF-8 byte {raw[error.start]:#04x}; save the file "
                                                "as UTF-8", column=column)
            return
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            yield self.finding(number, "MT002", _json_message(error, text), column=_char_column(error, text))
            return
        if not isinstance(obj, dict):
            yield self.finding(number, "MT003", f"expected a JSON object with a 'messages' list, got "
                                                f"{type(obj).__name__ if obj is not None else 'null'}", column=1)
            return
        problems = check_conversation(obj)
        for problem in problems:
            yield self.finding(number, problem.code, problem.message, problem.pointer,
                               locate.column(text, problem.pointer))
        messages = obj.get("messages")
        if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
            yield from self._warnings(number, text, messages)
        if not problems:
            yield from self._duplicate(number, obj)

    def _warnings(self, number: int, text: str, messages: list[dict[str, Any]]) -> Iterator[Finding]:
        for i, message in enumerate(messages):
            match = _CONTROL.search(message["content"]) if isinstance(message.get("content"), str) else None
            if match:
                pointer = f"/messages/{i}/content"
                yield self.finding(number, "MT302", f"{message.get('role')} content contains the control string "
                                                    f"{match.group()!r}, which a chat template may read as "
                                                    "turn markup", pointer, locate.column(text, pointer))
        if messages[-1].get("role") == "user" and len(messages) > 1:
            pointer = f"/messages/{len(messages) - 1}"
            yield self.finding(number, "MT301", "the conversation ends with a user turn that nothing answers",
                               pointer, locate.column(text, pointer))

    def _duplicate(self, number: int, obj: dict[str, Any]) -> Iterator[Finding]:
        digest = hashlib.blake2b(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
        first = self._seen.setdefault(digest, number)
        if first != number:
            yield self.finding(number, "MT303", f"same conversation as line {first}", column=1)


def _char_column(error: orjson.JSONDecodeError, text: str) -> int:
    """orjson reports a byte offset into the line; findings count characters."""
    return len(text.encode("utf-8")[:error.pos].decode("utf-8", "replace")) + 1


def _json_message(error: orjson.JSONDecodeError, text: str) -> str:
    column = _char_column(error, text) - 1
    reason = error.msg.split(": line ")[0]
    for literal in ("NaN", "Infinity", "-Infinity"):
        if text.startswith(literal, column):
            return f"invalid JSON: {literal} is not a JSON number; write null or a string"
    return f"invalid JSON: {reason}"


def check_lines(path: str, lines: Iterable[bytes]) -> Iterator[Finding]:
    """Findings of one file given as its lines (an open binary file streams, a line at a time)."""
    checker = LineChecker(path)
    for number, raw in enumerate(lines, start=1):
        yield from checker.check(number, raw)
