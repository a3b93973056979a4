"""Check a chat JSONL file line by line, streaming: every problem of every line, as findings.

The fast path for a good line is one `orjson.loads`, one compiled-schema `is_valid` and the turn-order
checks; the python `jsonschema` validator and the column locator run only for lines with errors.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from axolotl_multiturn.engine.images import check_images
from axolotl_multiturn.engine.markers import CONTROL_STRINGS
from axolotl_multiturn.engine.pairs import LineKind, shape_of, split
from axolotl_multiturn.engine.validate import check_conversation
from axolotl_multiturn.lint import locate
from axolotl_multiturn.lint.compat import OpenAI, Profile
from axolotl_multiturn.lint.hosted import Hosted
from axolotl_multiturn.lint.rules import RULES, Severity
from axolotl_multiturn.pointers import escape

_CONTROL = re.compile("|".join(re.escape(s) for s in sorted(CONTROL_STRINGS, key=len, reverse=True)))
#: Most control strings start with '<', which JSON structure never needs: one character scan rules them
#: out; the few others are looked for whole.
_CONTROL_OTHER = re.compile("|".join(re.escape(s) for s in CONTROL_STRINGS if not s.startswith("<")).encode())
_UNICODE_ESCAPE = re.compile(rb"\\u")  # a regex finds this two-byte needle faster than `in` does
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")
PROFILES: dict[str, type[Profile]] = {"hosted": Hosted, "openai": OpenAI}
#: Every key of a JSON object ends in `"` then `:`; a string may too, so more matches than the parsed
#: object has keys is only a reason to look (a duplicate key collapses into one in the parsed object).
_KEY_END = re.compile(rb'"\s*:')


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
    """Checks the lines of one file in order; remembers what it needs for duplicate detection; with a
    compatibility profile, adds that service's findings."""

    def __init__(self, path: str, compat: Profile | None = None, deferred: bool = False):
        self.path = path
        self.compat = compat
        self._seen: dict[bytes, int] = {}  # digest of each valid conversation's messages -> first line
        # With `deferred`, duplicates are left to whoever merges this checker's part of a file (`parallel`):
        # (line, digest) of each valid conversation, in order.
        self.digests: list[tuple[int, bytes]] | None = [] if deferred else None
        self._kind: LineKind | None = None  # the first object line's kind, and its number
        self._first = 0
        self.kinds: list[tuple[int, LineKind]] | None = [] if deferred else None  # (line, kind), for the merge

    def finding(self, line: int, code: str, message: str, pointer: str = "", column: int | None = None) -> Finding:
        return Finding(self.path, line, column, code, RULES[code].severity, message, pointer)

    def check(self, number: int, raw: bytes) -> list[Finding]:
        """Every finding of one line (with its line ending), in column order."""
        if self.compat is not None and self.compat.exclusive:
            return [
                self.finding(number, code, message, pointer, column or _nearest_column(raw, pointer))
                for code, message, pointer, column in self.compat.raw_line(raw)
            ]
        try:
            obj = orjson.loads(raw)  # JSON whitespace includes the line ending, CR too
        except orjson.JSONDecodeError as error:
            return [self._unparsable(number, raw.rstrip(b"\n").removesuffix(b"\r"), error)]
        if not isinstance(obj, dict):
            return [
                self.finding(
                    number,
                    "MT003",
                    "expected a JSON object with a 'messages' list, got "
                    f"{type(obj).__name__ if obj is not None else 'null'}",
                    column=1,
                )
            ]
        try:
            written = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson reads 1,024 levels of nesting but writes at most MAX_DEPTH
            return [
                self.finding(
                    number,
                    "MT007",
                    f"JSON nested deeper than {MAX_DEPTH} levels, the most this "
                    "linter checks (and the most orjson writes back); flatten the "
                    "value or keep it out of the dataset",
                    column=_too_deep(raw),
                )
            ]
        escapes = _UNICODE_ESCAPE.search(raw) is not None
        if _may_repeat_a_key(raw, obj, written, escapes):
            duplicates = list(_duplicate_keys(raw))
            if duplicates:
                return [
                    self.finding(
                        number,
                        "MT006",
                        f"key {key!r} appears twice in one object; a loader keeps one of them silently",
                        pointer,
                        column,
                    )
                    for key, pointer, column in duplicates
                ]
        if self.compat is None:
            return self._ours(number, raw, obj, written, escapes)
        theirs = [
            self.finding(number, code, message, pointer, _nearest_column(raw, pointer))
            for code, message, pointer in self.compat.line(obj)
        ]
        return sorted(self._ours(number, raw, obj, written, escapes) + theirs, key=lambda f: f.column or 0)

    def _ours(self, number: int, raw: bytes, obj: dict[str, Any], written: bytes, escapes: bool) -> list[Finding]:
        shape = shape_of(obj)
        mixed = self.kind(number, LineKind.PREFERENCE if shape else LineKind.CONVERSATION)
        if shape is not None:
            _, problems = split(obj, shape)
            return mixed + [
                self.finding(number, p.code, p.message, p.pointer, _nearest_column(raw, p.pointer)) for p in problems
            ]
        return mixed + self._conversation(number, raw, obj, written, escapes)

    def kind(self, number: int, kind: LineKind) -> list[Finding]:
        """MT406 when a line's kind (conversation, preference) is not the first object line's. With
        `deferred`, the kinds are kept for whoever merges this checker's part (`parallel`)."""
        if self.kinds is not None:
            self.kinds.append((number, kind))
            return []
        if self._kind is None:
            self._kind, self._first = kind, number
        if kind == self._kind:
            return []
        return [
            self.finding(
                number,
                "MT406",
                f"a {kind.value} line in a file of {self._kind.value} lines (line "
                f"{self._first}): keep each kind in a file of its own",
                column=1,
            )
        ]

    def _conversation(
        self, number: int, raw: bytes, obj: dict[str, Any], written: bytes, escapes: bool
    ) -> list[Finding]:
        problems = check_conversation(obj)
        findings = [self.finding(number, p.code, p.message, p.pointer, _column(raw, p.pointer)) for p in problems]
        messages = obj.get("messages")
        if not problems:
            findings += self._warnings(number, raw, messages, escapes)
            findings += self.duplicate(number, _digest(obj, written))
            if b'"image_url"' in raw:
                findings += [
                    self.finding(number, code, message, pointer, _column(raw, pointer))
                    for code, message, pointer in check_images(messages, Path(self.path).parent)
                ]
        elif isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
            findings += self._warnings(number, raw, messages, escapes)
        return sorted(findings, key=lambda f: f.column or 0) if len(findings) > 1 else findings

    def _unparsable(self, number: int, raw: bytes, error: orjson.JSONDecodeError) -> Finding:
        if not raw.strip():
            return self.finding(number, "MT304", "blank line; remove it", column=1)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            column = len(raw[: bad.start].decode("utf-8", "replace")) + 1
            return self.finding(
                number, "MT001", f"invalid UTF-8 byte {raw[bad.start]:#04x}; save the file as UTF-8", column=column
            )
        if "\r" in text:
            return self.finding(
                number,
                "MT002",
                "the file ends lines with a bare carriage return (CR, classic "
                "Mac line endings); save it with LF or CRLF line endings",
                column=text.index("\r") + 1,
            )
        if text.startswith("\ufeff"):
            return self.finding(
                number,
                "MT002",
                "invalid JSON: the line starts with a byte order mark; save the file as UTF-8 without BOM",
                column=1,
            )
        return self.finding(number, "MT002", _json_message(error, text), column=_char_column(error, text))

    def _warnings(self, number: int, raw: bytes, messages: list[dict[str, Any]], escapes: bool) -> list[Finding]:
        findings = []
        # Look message by message only when the line may hold one: JSON writes these strings as they are,
        # unless it escapes characters (then always look).
        if b"<" in raw or escapes or _CONTROL_OTHER.search(raw):
            findings += self._control_strings(number, raw, messages)
        if escapes and b"\\u0000" in raw:
            findings += self._nul(number, raw, messages)
        last = messages[-1].get("role")
        if last in ("user", "tool") and len(messages) > 1:
            pointer = f"/messages/{len(messages) - 1}"
            what = "a user turn" if last == "user" else "tool results"
            findings.append(
                self.finding(
                    number,
                    "MT301",
                    f"the conversation ends with {what} that nothing answers",
                    pointer,
                    _column(raw, pointer),
                )
            )
        return findings

    def _control_strings(self, number: int, raw: bytes, messages: list[dict[str, Any]]) -> Iterator[Finding]:
        for i, message in enumerate(messages):
            for field in ("content", "reasoning_content", "reasoning"):
                match = _CONTROL.search(message[field]) if isinstance(message.get(field), str) else None
                if not match:
                    continue
                pointer = f"/messages/{i}/{field}"
                yield self.finding(
                    number,
                    "MT302",
                    f"{message.get('role')} {field} contains the control "
                    f"string {match.group()!r}, which a chat template may read "
                    "as turn markup",
                    pointer,
                    _column(raw, pointer),
                )

    def _nul(self, number: int, raw: bytes, messages: list[dict[str, Any]]) -> Iterator[Finding]:
        for i, message in enumerate(messages):
            for field in ("content", "reasoning_content", "reasoning"):
                if isinstance(message.get(field), str) and "\x00" in message[field]:
                    pointer = f"/messages/{i}/{field}"
                    yield self.finding(
                        number,
                        "MT305",
                        f"{message.get('role')} {field} holds a NUL character "
                        "(\\u0000); tokenizers and some loaders truncate or drop "
                        "text at it",
                        pointer,
                        _column(raw, pointer),
                    )

    def duplicate(self, number: int, digest: bytes) -> list[Finding]:
        """MT303 when an earlier line holds the same conversation (`_digest`)."""
        if self.digests is not None:
            self.digests.append((number, digest))
            return []
        first = self._seen.setdefault(digest, number)
        if first != number:
            return [self.finding(number, "MT303", f"same conversation as line {first}", column=1)]
        return []


#: The deepest nesting of objects and arrays a line may have (orjson writes no deeper; it reads 1,024).
MAX_DEPTH = 254


def _too_deep(raw: bytes) -> int:
    """The column (in characters) of the bracket that opens level MAX_DEPTH + 1, outside strings."""
    depth, in_string, escaped = 0, False, False
    for offset, byte in enumerate(raw):
        if escaped:
            escaped = False
        elif in_string:
            escaped, in_string = byte == 0x5C, byte != 0x22
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return len(raw[:offset].decode("utf-8", "replace")) + 1
        elif byte in b"]}":
            depth -= 1
    return 1


def _column(raw: bytes, pointer: str) -> int | None:
    return locate.column(raw.decode("utf-8"), pointer)


def _nearest_column(raw: bytes, pointer: str) -> int:
    """The column of the value at `pointer`, or of the nearest enclosing value present (a missing field
    is reported at its object)."""
    while pointer:
        column = _column(raw, pointer)
        if column is not None:
            return column
        pointer = pointer.rsplit("/", 1)[0]
    return 1


def _char_column(error: orjson.JSONDecodeError, text: str) -> int:
    """orjson reports a byte offset into the line; findings count characters."""
    return len(text.encode("utf-8")[: error.pos].decode("utf-8", "replace")) + 1


def _json_message(error: orjson.JSONDecodeError, text: str) -> str:
    column = _char_column(error, text) - 1
    reason = error.msg.split(": line ")[0]
    for literal in ("NaN", "Infinity", "-Infinity"):
        if text.startswith(literal, column):
            return f"invalid JSON: {literal} is not a JSON number; write null or a string"
    return f"invalid JSON: {reason}"


def _key_count(value: dict[str, Any] | list[Any]) -> int:
    """Keys in all the objects of a parsed JSON object or array (recursion depth is the line's nesting,
    which orjson bounds)."""
    count, items = (len(value), value.values()) if type(value) is dict else (0, value)
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            count += _key_count(item)
    return count


def _digest(obj: dict[str, Any], written: bytes) -> bytes:
    """A conversation's identity: its messages as orjson writes them with sorted keys (`written` is the
    whole object so written; an object of messages alone is `{"messages":` + them + `}`)."""
    messages = (
        memoryview(written)[len(b'{"messages":') : -1]
        if len(obj) == 1
        else orjson.dumps(obj["messages"], option=orjson.OPT_SORT_KEYS)
    )  # a view: no copy of the line
    return hashlib.sha1(messages, usedforsecurity=False).digest()


def _may_repeat_a_key(raw: bytes, obj: dict[str, Any], written: bytes, escapes: bool) -> bool:
    """Whether the line may hold a key twice (the parsed object keeps one of them).

    orjson writes the parsed object back (`written`) with one colon per key and every colon inside a string
    as it is. The line has a colon per key it writes, whitespace or not, and the same colons inside strings,
    unless it escapes one (`\\u003a`): so unless it does, it holds more colons exactly when it repeats a key.
    A line that escapes a colon is counted by its key ends instead; lines with more key ends than keys are
    parsed again to find the repeated key."""
    if escapes and _ESCAPED_COLON.search(raw):  # `escapes`: the line holds a `\\u` escape at all
        return len(_KEY_END.findall(raw)) > _key_count(obj)
    return raw.count(b":") != written.count(b":")


class _Pairs(dict):
    """An object as the python json parser saw it, remembering keys that came twice."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs(pairs)
    keys = [k for k, _ in pairs]
    out.duplicates = tuple(dict.fromkeys(k for k in keys if keys.count(k) > 1))
    return out


def _duplicate_keys(raw: bytes) -> Iterator[tuple[str, str, int | None]]:
    """(key, pointer of its object, column of its second occurrence) for each duplicated key."""
    text = raw.decode("utf-8")
    stack: list[tuple[str, Any]] = [("", json.loads(text, object_pairs_hook=_pairs))]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, _Pairs):
            start = (locate.column(text, pointer) or 1) - 1
            for key in node.duplicates:
                found = [
                    m.start()
                    for m in re.finditer(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:", text[start:])
                ]
                yield key, pointer, start + found[1] + 1 if len(found) > 1 else None
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((f"{pointer}/{escape(k)}", v) for k, v in children)


def empty_file(path: str) -> Finding:
    return LineChecker(path).finding(
        1, "MT005", "the file holds no conversation (it is empty or only blank lines)", column=1
    )


def check_lines(path: str, lines: Iterable[bytes], compat: str | None = None) -> Iterator[Finding]:
    """Findings of one file given as its lines (an open binary file streams, a line at a time); a file
    without a conversation is a finding too. `compat` names a service whose checks are added
    (`lint.compat`), or, for an exclusive profile (`lint.hosted`), run alone."""
    checker = LineChecker(path, PROFILES[compat]() if compat else None)
    empty, size = True, 0
    for number, raw in enumerate(lines, start=1):
        if empty and raw.strip():
            empty = False
        size += len(raw)
        yield from checker.check(number, raw)
    if empty and not (checker.compat and checker.compat.exclusive):
        yield empty_file(path)
    if checker.compat is not None:
        for code, message, _ in checker.compat.end(path, size):
            yield checker.finding(1, code, message, column=1)
