"""Convert a source to chat JSONL: every row linted, the file moved into place only when it is whole.

Rows that cannot be converted, or whose conversation the linter rejects, are reported with their source
index. By default any such row fails the conversion and nothing is written; `--skip-invalid` writes the
rest and still reports each skipped row.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from tqdm import tqdm

from axolotl_multiturn.converters import ConversionError, Converter
from axolotl_multiturn.converters.spec import Row
from axolotl_multiturn.lint.checker import Finding, LineChecker


@dataclass
class Outcome:
    written: int = 0
    rejected: list[Row] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    committed: bool = False


def _check(checker: LineChecker, number: int, line: bytes) -> tuple[list[Finding], list[Finding]]:
    findings = checker.check(number, line)
    return [f for f in findings if f.severity == "error"], [f for f in findings if f.severity == "warning"]


def convert(
    converter: Converter, source: str | None, args: argparse.Namespace, out: Path, skip_invalid: bool = False
) -> Outcome:
    """Write `out` atomically from the converter's rows; never leaves a partial or invalid file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    checker = LineChecker(str(out))
    outcome = Outcome()
    try:
        with open(temporary, "wb") as stream:
            for row in tqdm(
                converter.rows(source, args),
                desc=f"converting {converter.name}",
                unit=" rows",
                disable=None,
                file=sys.stderr,
            ):
                if row.error is not None:
                    outcome.rejected.append(row)
                    continue
                line = orjson.dumps(row.conversation) + b"\n"
                errors, warnings = _check(checker, outcome.written + 1, line)
                if errors:
                    outcome.rejected.append(Row(row.index, error="; ".join(f"{f.code} {f.message}" for f in errors)))
                    continue
                stream.write(line)
                outcome.written += 1
                outcome.warnings += warnings
        if outcome.rejected and not skip_invalid:
            return outcome
        os.replace(temporary, out)
        outcome.committed = True
        return outcome
    finally:
        temporary.unlink(missing_ok=True)


def report(outcome: Outcome, out: Path, skip_invalid: bool) -> int:
    """Print what happened; the exit status: 0 written, 1 rows rejected and nothing written."""
    for row in outcome.rejected:
        print(f"source row {row.index}: {row.error}", file=sys.stderr)
    for finding in outcome.warnings:
        print(f"{finding.path}:{finding.line}:{finding.column or 1}: {finding.code} {finding.message}", file=sys.stderr)
    if not outcome.committed:
        print(
            f"{len(outcome.rejected)} source rows cannot be converted; {out} was not written "
            "(fix them, or pass --skip-invalid to write the others)",
            file=sys.stderr,
        )
        return 1
    skipped = f", skipped {len(outcome.rejected)} source rows listed above" if outcome.rejected else ""
    print(f"wrote {outcome.written} conversations to {out}{skipped}")
    return 0


def run(converter: Converter, args: argparse.Namespace) -> int:
    out = Path(args.to)
    try:
        outcome = convert(converter, args.input, args, out, args.skip_invalid)
    except (ConversionError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return report(outcome, out, args.skip_invalid)
