"""`check-chat-jsonl --fix`: a corrected copy of a file, written atomically.

Fixable findings are fixed: a byte order mark, CRLF line ends (the copy uses LF), role case, the hosted
name `reasoning` (renamed `reasoning_content`), string `arguments` holding an object (parsed), whitespace-only
messages at the end of a conversation, blank lines. A line still invalid after that is left out and listed
by its line number. The copy goes next to the file (`NAME.fixed.jsonl`) unless `in_place`; the original is
untouched on any error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from axolotl_multiturn.engine.conversation import ROLES
from axolotl_multiturn.files import written_whole
from axolotl_multiturn.lint.checker import LineChecker


@dataclass
class FixReport:
    path: Path  # where the corrected file was written
    lines: int = 0  # conversations written
    changes: Counter[str] = field(default_factory=Counter)  # what was fixed, and how often
    left_out: list[tuple[int, str]] = field(default_factory=list)  # (line number, first problem)

    def lines_out(self) -> list[str]:
        out = [f"fixed copy: {self.path} ({self.lines:,} conversations)"]
        out += [f"  {count:,} x {change}" for change, count in sorted(self.changes.items())]
        if self.left_out:
            out.append(f"  {len(self.left_out):,} lines left out (still invalid):")
            out += [f"    line {number}: {problem}" for number, problem in self.left_out[:50]]
            if len(self.left_out) > 50:
                out.append(f"    ... and {len(self.left_out) - 50} more")
        return out


def fix_object(obj: Any, changes: Counter[str]) -> Any:
    """The line's object with every fixable problem fixed (in place), counting each fix."""
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        return obj
    messages = obj["messages"]
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if isinstance(role, str) and role not in ROLES and role.strip().lower() in ROLES:
            message["role"] = role.strip().lower()
            changes["role written in lower case"] += 1
        if "reasoning" in message and "reasoning_content" not in message:
            message["reasoning_content"] = message.pop("reasoning")
            changes["reasoning renamed reasoning_content"] += 1
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, str):
                try:
                    parsed = orjson.loads(arguments)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(parsed, dict):
                    function["arguments"] = parsed
                    changes["string arguments written as an object"] += 1
    while (
        len(messages) > 1
        and isinstance(messages[-1], dict)
        and isinstance(messages[-1].get("content"), str)
        and not messages[-1]["content"].strip()
        and not messages[-1].get("tool_calls")
    ):
        messages.pop()
        changes["whitespace-only message at the end removed"] += 1
    return obj


def fix_file(path: str | Path, in_place: bool = False) -> FixReport:
    """Write the corrected copy of a JSONL file; return what changed and what was left out."""
    source = Path(path)
    target = source if in_place else source.with_name(f"{source.stem}.fixed{source.suffix or '.jsonl'}")
    report = FixReport(target)
    checker = LineChecker(str(source))
    with written_whole(target) as out, open(source, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
                report.changes["byte order mark removed"] += 1
            if raw.endswith(b"\r\n"):
                report.changes["CRLF line end written as LF"] += 1
            if not raw.strip():
                report.changes["blank line removed"] += 1
                continue
            line = raw.rstrip(b"\r\n") + b"\n"
            before = sum(report.changes.values())
            errors = [f for f in checker.check(number, line) if f.severity == "error"]
            if not any(f.code in ("MT001", "MT002", "MT003", "MT006") for f in errors):
                obj = fix_object(orjson.loads(line), report.changes)
                if sum(report.changes.values()) != before:  # unchanged lines stay byte for byte
                    line = orjson.dumps(obj) + b"\n"
                    errors = [f for f in checker.check(number, line) if f.severity == "error"]
            if errors:
                report.left_out.append((number, f"{errors[0].code} {errors[0].message}"))
                continue
            out.write(line)
            report.lines += 1
    return report
