"""A file checked on several processes gives exactly the findings of one process, in the same order."""

from __future__ import annotations

from pathlib import Path

import pytest

from axolotl_multiturn.cli.lint import main
from axolotl_multiturn.lint import parallel
from axolotl_multiturn.lint.checker import check_lines

EXAMPLES = Path(__file__).parent / "examples" / "lint"


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of a few lines each, so that a small file has many, with boundaries everywhere."""
    monkeypatch.setattr(parallel, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(parallel, "PART_BYTES", 700)


def example_file(tmp_path: Path) -> Path:
    """Every example line (good and bad, CRLF, bare CR, invalid UTF-8, blank), twice: the second copy
    repeats conversations of the first, so duplicates cross parts."""
    data = b"".join(path.read_bytes().rstrip(b"\n") + b"\n" for path in sorted(EXAMPLES.glob("*.jsonl")))
    path = tmp_path / "all.jsonl"
    path.write_bytes(data + b"\n" + data)
    return path


def test_parallel_findings_equal_sequential(tmp_path: Path, small_parts: None) -> None:
    path = example_file(tmp_path)
    with open(path, "rb") as stream:
        expected = list(check_lines(str(path), stream))
    assert len(parallel._parts(str(path), path.stat().st_size)) > 20
    got = list(parallel.check_file(str(path), workers=2))
    assert got == expected
    assert [f for f in got if f.code == "MT303"]  # the merge decides duplicates across parts
    assert [f for f in got if f.code == "MT406"]  # ... and lines of the other kind than the file's first
    assert max(f.line for f in got) > 100


def test_parts_cover_the_file_at_line_ends(tmp_path: Path, small_parts: None) -> None:
    path = example_file(tmp_path)
    data = path.read_bytes()
    parts = parallel._parts(str(path), len(data))
    assert parts[0][1] == 0 and parts[-1][2] == len(data)
    assert all(a[2] == b[1] for a, b in zip(parts, parts[1:]))
    assert all(data[end - 1:end] == b"\n" for _, _, end in parts)


def test_empty_file_and_cli_exit_codes(tmp_path: Path, small_parts: None, capsys: pytest.CaptureFixture) -> None:
    blank = tmp_path / "blank.jsonl"
    blank.write_bytes(b"\n\n\n")
    assert [(f.line, f.code) for f in parallel.check_file(str(blank), workers=2)] == [
        (1, "MT304"), (2, "MT304"), (3, "MT304"), (1, "MT005")]
    good = tmp_path / "good.jsonl"
    good.write_bytes((EXAMPLES / "good.jsonl").read_bytes() * 3)
    assert main([str(good)]) == 0  # the copies repeat conversations: warnings (MT303)
    capsys.readouterr()
    assert main(["--strict", "--select", "MT303", str(good)]) == 1
    lines = len((EXAMPLES / "good.jsonl").read_bytes().splitlines())
    assert capsys.readouterr().out.count("MT303") == 2 * lines
