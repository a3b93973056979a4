"""`check-chat-jsonl FILE...` (`-`: standard input): exit 0 when no errors, 1 when errors, 2 on usage or I/O
errors (each also a finding, MT004)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

from axolotl_multiturn.lint.checker import PROFILES, Finding, check_lines
from axolotl_multiturn.lint.parallel import check_file
from axolotl_multiturn.lint.reporters import REPORTERS, statistics
from axolotl_multiturn.lint.rules import RULES, matches


def _codes(value: str) -> frozenset[str]:
    codes = frozenset(c.strip().upper() for c in value.split(",") if c.strip())
    unknown = sorted(c for c in codes if not any(code.startswith(c) for code in RULES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown rule code(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
    return codes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="check-chat-jsonl", description="Check chat JSONL files (one conversation per line)."
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="JSONL files; - reads standard input")
    p.add_argument("--format", choices=sorted(REPORTERS), default="text", help="output format (default: text)")
    p.add_argument(
        "--select",
        type=_codes,
        default=frozenset(RULES),
        metavar="CODES",
        help="only these rule codes or prefixes, comma-separated (e.g. MT1,MT203)",
    )
    p.add_argument(
        "--ignore",
        type=_codes,
        default=frozenset(),
        metavar="CODES",
        help="skip these rule codes or prefixes, comma-separated",
    )
    p.add_argument("--strict", action="store_true", help="warnings fail the check too")
    p.add_argument(
        "--max-errors", type=int, default=None, metavar="N", help="stop after N findings that fail the check"
    )
    p.add_argument("--statistics", action="store_true", help="print a count per rule code at the end")
    p.add_argument(
        "--fix",
        action="store_true",
        help="write a corrected copy next to each file (NAME.fixed.jsonl): fixable findings fixed, "
        "still-invalid lines left out and listed",
    )
    p.add_argument("--in-place", action="store_true", help="with --fix, replace the file itself (atomically)")
    p.add_argument(
        "--tokenizer",
        metavar="PATH_OR_NAME",
        help="report each file's token budget with this tokenizer's chat template (needs the [tokens] extra)",
    )
    p.add_argument(
        "--sequence-len",
        type=int,
        metavar="N",
        help="with --tokenizer, list the rows longer than N and what overflow: split does with them",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="processes for large files (default: one per core; --compat checks use one)",
    )
    p.add_argument(
        "--compat",
        choices=sorted(PROFILES),
        default=None,
        help="also report what that service's documented checks would reject (HS*/OA* codes)",
    )
    return p


@contextlib.contextmanager
def _findings(path: str, compat: str | None, jobs: int | None) -> Iterator[Generator[Finding, None, None]]:
    """The findings of one file (`-`: standard input, left open), closed on leaving (workers stop)."""
    findings = check_lines(path, sys.stdin.buffer, compat) if path == "-" else check_file(path, compat, jobs)
    try:
        yield findings
    finally:
        findings.close()


def _measure(tokenizer: str | None) -> Callable[..., Any] | None:
    """The token budget's `measure`, when --tokenizer asks for it (the tokens extra)."""
    if not tokenizer:
        return None
    try:
        from axolotl_multiturn.lint.tokens import measure
    except ImportError as error:
        parser().error(f"--tokenizer needs the tokens extra (pip install 'axolotl-multiturn[tokens]'): {error}")
    return measure


#: The exit status of a command ended by SIGPIPE, as a shell reports `grep ... | head`'s grep.
BROKEN_PIPE = 128 + 13


def main(argv: Sequence[str] | None = None) -> int:
    """The linter; a reader that stops early (`check-chat-jsonl big.jsonl | head`) ends it quietly, as grep."""
    try:
        return lint(argv)
    except BrokenPipeError:
        # Python flushes stdout once more at exit: point it at /dev/null so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


def lint(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.max_errors is not None and args.max_errors < 1:
        parser().error("--max-errors must be at least 1")
    if args.jobs is not None and args.jobs < 1:
        parser().error("--jobs must be at least 1")
    if args.in_place and not args.fix:
        parser().error("--in-place needs --fix")
    if args.sequence_len is not None and not args.tokenizer:
        parser().error("--sequence-len needs --tokenizer")
    measure = _measure(args.tokenizer)
    failing = {"error", "warning"} if args.strict else {"error"}
    reporter = REPORTERS[args.format](sys.stdout)
    io_error = False
    failures = 0
    budgets = []

    def report(findings: Iterable[Finding]) -> bool:
        """Add the selected findings; whether --max-errors is reached."""
        nonlocal failures
        for finding in findings:
            if not matches(finding.code, args.select) or matches(finding.code, args.ignore):
                continue
            reporter.add(finding)
            failures += finding.severity in failing
            if args.max_errors is not None and failures >= args.max_errors:
                return True
        return False

    for path in args.files:
        try:
            with _findings(path, args.compat, args.jobs) as findings:
                stop = report(findings)
            if measure and path != "-" and not stop:
                with open(path, "rb") as stream:
                    budgets.append(measure(path, stream, args.tokenizer, args.sequence_len))
                stop = report(budgets[-1].findings(args.sequence_len))
        except OSError as error:  # reported whatever --select says: exit 2 always names its reason
            reporter.add(Finding(path, 1, 1, "MT004", "error", f"cannot read: {error.strerror or error}"))
            io_error = True
            stop = False
        if stop:
            print(f"stopped after {failures} failing findings (--max-errors {args.max_errors})", file=sys.stderr)
            break
    reporter.close()
    notes = sys.stdout if args.format == "text" else sys.stderr  # machine formats stay one document
    if args.fix:
        from axolotl_multiturn.lint.fix import fix_file  # here: only --fix pays for tempfile and shutil

        for path in (p for p in args.files if p != "-"):
            try:
                report = fix_file(path, in_place=args.in_place)
            except OSError as error:
                print(f"{path}: not fixed: {error.strerror or error}", file=notes)
                io_error = True
                continue
            notes.write("\n".join(report.lines_out()) + "\n")
    for budget in budgets:
        notes.write("\n".join(budget.lines(args.sequence_len)) + "\n")
    if args.statistics:
        statistics(reporter.codes, sys.stdout if args.format == "text" else sys.stderr)
    if io_error:
        return 2
    return 1 if failures else 0
