"""check-chat-jsonl as a user runs it: exit codes, formats, selection, limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from axolotl_multiturn.cli.lint import main

EXAMPLES = Path(__file__).parent / "examples" / "lint"
GOOD, STRUCTURE, WARNINGS = (str(EXAMPLES / n) for n in ("good.jsonl", "mt2xx_structure.jsonl",
                                                          "mt3xx_warnings.jsonl"))


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_clean_file_exits_0(capsys) -> None:
    assert run(capsys, GOOD) == (0, "All checks passed!\n", "")


def test_text_format_is_path_line_col_code_message(capsys) -> None:
    code, out, _ = run(capsys, STRUCTURE)
    assert code == 1
    assert out.splitlines()[0] == (f"{STRUCTURE}:1:24: MT201 first message is 'assistant'; a conversation "
                                   "starts with 'system' or 'user'")
    assert out.splitlines()[-1] == "Found 5 errors and 1 warning."


def test_warnings_pass_unless_strict(capsys) -> None:
    assert run(capsys, WARNINGS)[0] == 0
    assert run(capsys, "--strict", WARNINGS)[0] == 1


def test_json_format(capsys) -> None:
    code, out, _ = run(capsys, "--format", "json", WARNINGS)
    assert code == 0
    assert json.loads(out)[1] == {
        "path": WARNINGS, "line": 2, "column": 43, "code": "MT302", "severity": "warning",
        "message": "user content contains the control string '<|im_end|>', which a chat template may read as "
                   "turn markup", "pointer": "/messages/0/content"}


def test_github_format(capsys) -> None:
    _, out, _ = run(capsys, "--format", "github", STRUCTURE)
    assert out.splitlines()[1] == (f"::error file={STRUCTURE},line=2,col=59,title=MT202::MT202 a system message "
                                   "may only come first (and only once)")


def test_sarif_format(capsys) -> None:
    _, out, _ = run(capsys, "--format", "sarif", STRUCTURE)
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    result = sarif["runs"][0]["results"][0]
    assert result["ruleId"] == "MT201"
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1, "startColumn": 24}
    assert {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]} >= {"MT001", "MT304"}


def test_select_and_ignore_take_codes_and_prefixes(capsys) -> None:
    _, out, _ = run(capsys, "--format", "json", "--select", "MT2", "--ignore", "MT202", STRUCTURE)
    assert [f["code"] for f in json.loads(out)] == ["MT201", "MT203", "MT204"]


def test_max_errors_stops_early(capsys) -> None:
    code, out, err = run(capsys, "--max-errors", "2", "--format", "json", STRUCTURE, GOOD)
    assert code == 1
    assert [f["line"] for f in json.loads(out)] == [1, 2]
    assert err == "stopped after 2 failing findings (--max-errors 2)\n"


def test_statistics(capsys) -> None:
    _, out, _ = run(capsys, "--statistics", STRUCTURE)
    assert out.splitlines()[-5:] == [
        "     1  MT201  [error] the first message is neither system nor user",
        "     2  MT202  [error] a system message that is not the first message",
        "     1  MT203  [error] turns out of order (user turns and assistant answers alternate; tool results "
        "are answered by the assistant)",
        "     1  MT204  [error] no assistant message",
        "     1  MT301  [warning] the conversation ends with a user turn or tool results (nothing answers them)",
    ]


def test_missing_file_is_exit_2_and_others_still_checked(capsys) -> None:
    code, out, err = run(capsys, "missing.jsonl", STRUCTURE)
    assert code == 2
    assert out.splitlines()[0] == "missing.jsonl:1:1: MT004 cannot read: No such file or directory"
    assert "MT201" in out and "All checks passed" not in out and err == ""


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif"])
def test_unreadable_paths_are_findings_in_every_format_never_a_pass(capsys, tmp_path: Path, fmt: str) -> None:
    code, out, _ = run(capsys, "--format", fmt, str(tmp_path), "missing.jsonl")
    assert code == 2
    assert out.count("cannot read: ") == 2 and "All checks passed" not in out
    assert "cannot read: Is a directory" in out and "cannot read: No such file or directory" in out


def test_dash_reads_standard_input() -> None:
    line = (EXAMPLES / "mt2xx_structure.jsonl").read_bytes().splitlines(keepends=True)[0]
    result = subprocess.run([sys.executable, "-m", "axolotl_multiturn.lint", "-"], input=line, capture_output=True)
    assert result.returncode == 1
    assert result.stdout.decode().startswith("-:1:24: MT201 ")


def test_empty_file_is_an_error(capsys, tmp_path: Path) -> None:
    empty, blank = tmp_path / "empty.jsonl", tmp_path / "blank.jsonl"
    empty.write_bytes(b"")
    blank.write_bytes(b"\n\n")
    code, out, _ = run(capsys, str(empty), str(blank))
    assert code == 1
    assert out.splitlines()[:4] == [
        f"{empty}:1:1: MT005 the file holds no conversation (it is empty or only blank lines)",
        f"{blank}:1:1: MT304 blank line; remove it", f"{blank}:2:1: MT304 blank line; remove it",
        f"{blank}:1:1: MT005 the file holds no conversation (it is empty or only blank lines)"]


def test_bare_carriage_returns_are_named(capsys, tmp_path: Path) -> None:
    path = tmp_path / "mac.jsonl"
    line = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    path.write_bytes((line + "\r" + line + "\r").encode())
    code, out, _ = run(capsys, str(path))
    assert code == 1
    assert out.splitlines()[0] == (f"{path}:1:88: MT002 the file ends lines with a bare carriage return (CR, "
                                   "classic Mac line endings); save it with LF or CRLF line endings")


def test_sarif_uris_are_percent_encoded_references(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my data").mkdir()
    (tmp_path / "my data" / "ä#1.jsonl").write_bytes((EXAMPLES / "mt2xx_structure.jsonl").read_bytes())
    _, out, _ = run(capsys, "--format", "sarif", "my data/ä#1.jsonl", str(tmp_path / "my data" / "ä#1.jsonl"))
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in json.loads(out)["runs"][0]["results"]]
    assert uris[0] == "my%20data/%C3%A4%231.jsonl"
    assert uris[-1] == (tmp_path / "my data" / "ä#1.jsonl").as_uri()


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_json_and_sarif_stream_in_flat_memory(fmt: str) -> None:
    """Findings stream through the reporter: 20,000 of them (held, about 10 MB) peak at a few hundred kB,
    no more than 2,000 do."""
    import io
    import tracemalloc

    from axolotl_multiturn.lint.checker import Finding
    from axolotl_multiturn.lint.reporters import REPORTERS

    class Sink(io.TextIOBase):
        def write(self, text: str) -> int:
            return len(text)

    def peak(findings: int) -> int:
        tracemalloc.start()
        reporter = REPORTERS[fmt](Sink())
        for n in range(findings):
            reporter.add(Finding("f.jsonl", n + 1, 1, "MT203", "error", "got 'user' after 'user'", "/messages/1/role"))
        reporter.close()
        found = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return found

    few, many = peak(2_000), peak(20_000)
    assert many < 1_000_000, many
    assert many - few < 100_000, (few, many)


@pytest.mark.parametrize("argv", [[], ["--select", "XX1", "f.jsonl"], ["--max-errors", "0", "f.jsonl"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


def test_module_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "axolotl_multiturn.lint", STRUCTURE], capture_output=True,
                            text=True)
    assert (result.returncode, result.stdout.count("\n")) == (1, 7)


def test_a_reader_that_stops_early_ends_it_quietly(tmp_path: Path) -> None:
    """`check-chat-jsonl big.jsonl | head -n 1`: the first finding, then nothing on stderr (it was a
    BrokenPipeError traceback), and the status a shell gives a command ended by SIGPIPE."""
    big = tmp_path / "big.jsonl"
    big.write_text('{"messages": []}\n' * 20000)
    command = Path(sys.executable).with_name("check-chat-jsonl")
    run = subprocess.run(["bash", "-c", f'"{command}" "{big}" | head -n 1; echo "${{PIPESTATUS[0]}}" >&2'],
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.startswith(f"{big}:1:")
    assert run.stdout.count("\n") == 1
    assert run.stderr == "141\n", run.stderr[-2000:]
