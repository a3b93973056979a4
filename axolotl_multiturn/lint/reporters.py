"""Output formats: text (ruff style), json, github (workflow annotations) and sarif (2.1.0).

Every reporter streams: it writes each finding as it comes and keeps only counts, so memory stays flat in
the number of findings (a million bad lines is a million lines of output, not a list in memory).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from axolotl_multiturn import __version__
from axolotl_multiturn.lint.checker import Finding
from axolotl_multiturn.lint.rules import RULES


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class Reporter:
    """Writes findings to `out` one at a time; `close` ends the document."""

    def __init__(self, out: TextIO):
        self.out = out
        self.severities: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()

    def add(self, finding: Finding) -> None:
        self.severities[finding.severity] += 1
        self.codes[finding.code] += 1
        self.write(finding)

    def write(self, finding: Finding) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to end by default."""


class Text(Reporter):
    def write(self, f: Finding) -> None:
        self.out.write(f"{f.path}:{f.line}:{f.column or 1}: {f.code} {f.message}\n")

    def close(self) -> None:
        if self.codes:
            self.out.write(
                f"Found {_plural(self.severities['error'], 'error')} and "
                f"{_plural(self.severities['warning'], 'warning')}.\n"
            )
        else:
            self.out.write("All checks passed!\n")


class JsonArray(Reporter):
    def write(self, f: Finding) -> None:
        self.out.write(("[\n" if sum(self.codes.values()) == 1 else ",\n") + json.dumps(asdict(f), ensure_ascii=False))

    def close(self) -> None:
        self.out.write("\n]\n" if self.codes else "[]\n")


def _escape(value: str, properties: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if properties else value


class Github(Reporter):
    def write(self, f: Finding) -> None:
        where = f"file={_escape(f.path, True)},line={f.line},col={f.column or 1},title={f.code}"
        self.out.write(f"::{f.severity} {where}::{_escape(f.code + ' ' + f.message)}\n")


def sarif_uri(path: str) -> str:
    """A percent-encoded URI reference: relative for a relative path, `file://` for an absolute one."""
    if Path(path).is_absolute():
        return Path(path).as_uri()
    return quote(Path(path).as_posix(), safe="/")


class Sarif(Reporter):
    def __init__(self, out: TextIO):
        super().__init__(out)
        rules = [
            {"id": r.code, "shortDescription": {"text": r.summary}, "defaultConfiguration": {"level": r.severity}}
            for r in RULES.values()
        ]
        head = {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {"driver": {"name": "check-chat-jsonl", "version": __version__, "rules": rules}},
                    "results": [],
                }
            ],
        }
        text = json.dumps(head, indent=1)
        cut = text.rindex('"results": []') + len('"results": [')
        self.tail = text[cut:]
        out.write(text[:cut])

    def write(self, f: Finding) -> None:
        result = {
            "ruleId": f.code,
            "level": f.severity,
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": sarif_uri(f.path)},
                        "region": {"startLine": f.line, "startColumn": f.column or 1},
                    }
                }
            ],
            **({"properties": {"pointer": f.pointer}} if f.pointer else {}),
        }
        self.out.write(("\n" if sum(self.codes.values()) == 1 else ",\n") + json.dumps(result, ensure_ascii=False))

    def close(self) -> None:
        self.out.write(("\n" if self.codes else "") + self.tail + "\n")


def statistics(codes: Counter[str], out: TextIO) -> None:
    for code, count in sorted(codes.items()):
        out.write(f"{count:>6}  {code}  [{RULES[code].severity}] {RULES[code].summary}\n")


REPORTERS: dict[str, type[Reporter]] = {"text": Text, "json": JsonArray, "github": Github, "sarif": Sarif}
