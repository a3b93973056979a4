"""Check a large file on every core: byte ranges of whole lines, each checked by `LineChecker` in a worker
process, merged back in line order.

Findings are the same as `checker.check_lines` gives, in the same order: a line's findings depend on that
line alone, except "same conversation as line N" (MT303) and "a preference line in a file of conversation
lines" (MT406), which the merge decides from each part's conversation digests and line kinds, in file
order. Compatibility profiles count across lines, so `--compat` checks stay in one process; so do small
files and standard input, where starting workers costs more than it saves.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator

from axolotl_multiturn.engine.pairs import LineKind
from axolotl_multiturn.lint.checker import Finding, LineChecker, check_lines, empty_file

PARALLEL_BYTES = 8 << 20  # smaller files are checked in this process
PART_BYTES = 2 << 20  # a worker's share at a time: output streams, and memory stays flat


class _Part:
    """What a worker found in one byte range: findings and digests numbered from its first line."""

    def __init__(
        self,
        findings: list[Finding],
        digests: list[tuple[int, bytes]],
        kinds: list[tuple[int, LineKind]],
        lines: int,
        empty: bool,
    ):
        self.findings, self.digests, self.kinds, self.lines, self.empty = findings, digests, kinds, lines, empty


def _check_part(task: tuple[str, int, int]) -> _Part:
    path, start, end = task
    with open(path, "rb") as stream:
        stream.seek(start)
        data = stream.read(end - start)
    checker = LineChecker(path, deferred=True)
    findings: list[Finding] = []
    empty, number = True, 0
    for number, raw in enumerate(io.BytesIO(data), start=1):
        if empty and raw.strip():
            empty = False
        findings += checker.check(number, raw)
    assert checker.digests is not None and checker.kinds is not None
    return _Part(findings, checker.digests, checker.kinds, number, empty)


def _parts(path: str, size: int) -> list[tuple[str, int, int]]:
    """Byte ranges of about PART_BYTES, each ending after a newline (or at the end of the file)."""
    bounds = [0]
    with open(path, "rb") as stream:
        while bounds[-1] + PART_BYTES < size:
            stream.seek(bounds[-1] + PART_BYTES)
            stream.readline()
            bounds.append(stream.tell())
    if bounds[-1] < size:
        bounds.append(size)
    return [(path, a, b) for a, b in zip(bounds, bounds[1:])]


def check_file(path: str, compat: str | None = None, workers: int | None = None) -> Iterator[Finding]:
    """The findings of one file, as `check_lines` gives them; a large file is checked on `workers`
    processes (default: every core)."""
    workers = workers or os.cpu_count() or 1
    size = os.path.getsize(path)
    if compat or workers < 2 or size < PARALLEL_BYTES:
        with open(path, "rb") as stream:
            yield from check_lines(path, stream, compat)
        return
    import multiprocessing  # here: a small file (a pre-commit run) never pays its import

    merger = LineChecker(path)
    offset, empty = 0, True
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    with multiprocessing.get_context(method).Pool(workers) as pool:
        for part in pool.imap(_check_part, _parts(path, size)):
            by_line: dict[int, list[Finding]] = {}
            for finding in part.findings:
                by_line.setdefault(finding.line + offset, []).append(
                    dataclasses.replace(finding, line=finding.line + offset)
                )
            for number, kind in part.kinds:
                for finding in merger.kind(number + offset, kind):  # first on its line, as check_lines has it
                    by_line.setdefault(finding.line, []).insert(0, finding)
            for number, digest in part.digests:
                for finding in merger.duplicate(number + offset, digest):
                    line = by_line.setdefault(finding.line, [])
                    line.append(finding)
                    line.sort(key=lambda f: f.column or 0)
            for number in sorted(by_line):
                yield from by_line[number]
            offset += part.lines
            empty = empty and part.empty
    if empty:
        yield empty_file(path)
