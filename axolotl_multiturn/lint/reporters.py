"""Output formats: text (ruff style), json, github (workflow annotations) and sarif (2.1.0)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TextIO

from axolotl_multiturn import __version__
from axolotl_multiturn.lint.checker import Finding
from axolotl_multiturn.lint.rules import RULES

Reporter = Callable[[Sequence[Finding], TextIO], None]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def text(findings: Sequence[Finding], out: TextIO) -> None:
    for f in findings:
        out.write(f"{f.path}:{f.line}:{f.column or 1}: {f.code} {f.message}\n")
    counts = Counter(f.severity for f in findings)
    if findings:
        out.write(f"Found {_plural(counts['error'], 'error')} and {_plural(counts['warning'], 'warning')}.\n")
    else:
        out.write("All checks passed!\n")


def json_array(findings: Sequence[Finding], out: TextIO) -> None:
    json.dump([asdict(f) for f in findings], out, ensure_ascii=False, indent=1)
    out.write("\n")


def _escape(value: str, properties: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if properties else value


def github(findings: Sequence[Finding], out: TextIO) -> None:
    for f in findings:
        where = f"file={_escape(f.path, True)},line={f.line},col={f.column or 1},title={f.code}"
        out.write(f"::{f.severity} {where}::{_escape(f.code + ' ' + f.message)}\n")


def sarif(findings: Sequence[Finding], out: TextIO) -> None:
    rules = [{"id": r.code, "shortDescription": {"text": r.summary},
              "defaultConfiguration": {"level": r.severity}} for r in RULES.values()]
    results = [{
        "ruleId": f.code, "level": f.severity, "message": {"text": f.message},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.path},
                                            "region": {"startLine": f.line, "startColumn": f.column or 1}}}],
        **({"properties": {"pointer": f.pointer}} if f.pointer else {}),
    } for f in findings]
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "check-chat-jsonl", "version": __version__, "rules": rules}},
                  "results": results}],
    }
    json.dump(document, out, indent=1)
    out.write("\n")


def statistics(findings: Sequence[Finding], out: TextIO) -> None:
    for code, count in sorted(Counter(f.code for f in findings).items()):
        out.write(f"{count:>6}  {code}  [{RULES[code].severity}] {RULES[code].summary}\n")


REPORTERS: dict[str, Reporter] = {"text": text, "json": json_array, "github": github, "sarif": sarif}
