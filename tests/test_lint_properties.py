"""The linter never crashes: any bytes give findings and exit 0 or 1, output stays well formed."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axolotl_multiturn.cli.lint import main
from axolotl_multiturn.lint.checker import check_lines

KEYS = {"path", "line", "column", "code", "severity", "message", "pointer"}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "User", "tool", ""]),
     "content": st.text(max_size=30) | st.sampled_from(["<|im_end|>", "[INST] x", " ", "ok"]) | json_values},
    optional={"weight": st.sampled_from([0, 1, 2, 0.5, True, None]), "name": st.text(max_size=3)}), max_size=6)
conversations = st.fixed_dictionaries({"messages": messages}, optional={"id": json_values})


def lint_json(tmp_path: Path, capsys, data: bytes) -> tuple[int, list[dict]]:
    path = tmp_path / "data.jsonl"
    path.write_bytes(data)
    code = main(["--format", "json", str(path)])
    findings = json.loads(capsys.readouterr().out)
    return code, findings


def assert_well_formed(code: int, findings: list[dict], lines: int) -> None:
    assert code == (1 if any(f["severity"] == "error" for f in findings) else 0)
    for f in findings:
        assert set(f) == KEYS
        assert 1 <= f["line"] <= lines and (f["column"] is None or f["column"] >= 1)
        assert f["code"].startswith("MT") and f["message"]


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(tmp_path: Path, capsys, data: bytes) -> None:
    code, findings = lint_json(tmp_path, capsys, data)
    assert_well_formed(code, findings, max(data.count(b"\n") + 1, 1))


@SETTINGS
@given(st.lists(json_values | conversations, min_size=1, max_size=5))
def test_random_json_lines(tmp_path: Path, capsys, values: list) -> None:
    data = b"".join(orjson.dumps(v) + b"\n" for v in values)
    code, findings = lint_json(tmp_path, capsys, data)
    assert_well_formed(code, findings, len(values))


def test_deeply_nested_line_is_a_finding() -> None:
    line = b'{"messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"
    assert [(f.line, f.code) for f in check_lines("deep", [line])] == [(1, "MT002")]


def openings(depth: int, shapes: list[str]) -> list[str]:
    """The opening tokens of `depth` levels of arrays and objects, shapes cycled."""
    return ['{"k": ' if shapes[i % len(shapes)] == "object" else "[" for i in range(depth)]


def nested(depth: int, shapes: list[str]) -> str:
    """`depth` levels of arrays and objects as JSON text around the number 1."""
    tokens = openings(depth, shapes)
    return "".join(tokens) + "1" + "".join("}" if t.startswith("{") else "]" for t in reversed(tokens))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 1100), st.lists(st.sampled_from(["array", "object"]), min_size=1, max_size=3),
       st.sampled_from(["metadata", "content", "arguments"]))
def test_any_nesting_depth_gives_findings_never_a_traceback(depth: int, shapes: list[str], where: str) -> None:
    """Nesting the parser reads is checked up to the linter's limit (254 levels), an MT007 beyond it at the
    bracket that crosses it, an MT002 beyond what the parser reads (1,024): never an exception."""
    value = nested(depth, shapes)
    call = ('{"id": "c1", "type": "function", "function": {"name": "f", "arguments": %s}}' % value
            if where == "arguments" else None)
    messages = [f'{{"role": "user", "content": {value if where == "content" else json.dumps("hi")}}}',
                '{"role": "assistant", "content": null, "tool_calls": [%s]}' % call if call else
                '{"role": "assistant", "content": "ok"}']
    if call:
        messages += ['{"role": "tool", "tool_call_id": "c1", "content": "x"}', '{"role": "assistant", "content": "y"}']
    line = '{"messages": [%s]%s}' % (", ".join(messages), f', "metadata": {value}' if where == "metadata" else "")
    above = {"metadata": 1, "content": 3, "arguments": 6}[where]  # the containers around the value
    findings = list(check_lines("deep", [line.encode()]))
    if depth + above > 1024:
        assert [f.code for f in findings] == ["MT002"]
    elif depth + above > 254:
        crossing = line.index(value) + len("".join(openings(254 - above, shapes))) + 1
        assert [(f.code, f.column) for f in findings] == [("MT007", crossing)]
    else:
        assert not {"MT002", "MT007"} & {f.code for f in findings}


def test_deep_but_parsable_nesting_in_content() -> None:
    content = orjson.dumps({"messages": [{"role": "user", "content": json.loads("[" * 200 + "]" * 200)}]})
    assert [f.code for f in check_lines("deep", [content])] == ["MT204", "MT109"]  # a list content of non-text parts


def test_multi_megabyte_line() -> None:
    big = orjson.dumps({"messages": [{"role": "user", "content": "x" * 5_000_000},
                                     {"role": "assistant", "content": "<|im_end|>"}]})
    assert [(f.code, f.column) for f in check_lines("big", [big])] == [("MT302", 13 + 15 + 10 + 5_000_002 + 2 + 20 + 10 + 1)]


def test_memory_does_not_grow_with_file_size(tmp_path: Path) -> None:
    line = orjson.dumps({"messages": [{"role": "user", "content": "q " * 400},
                                      {"role": "assistant", "content": "a " * 400}]}) + b"\n"

    def peak(lines: int) -> int:
        path = tmp_path / f"{lines}.jsonl"
        # different conversations, so the duplicate check keeps one digest per line (its only growth)
        path.write_bytes(b"".join(line.replace(b"q q", b"q%d" % i, 1) for i in range(lines)))
        tracemalloc.start()
        with open(path, "rb") as stream:
            assert list(check_lines(str(path), stream)) == []
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    small, large = peak(1_000), peak(20_000)
    assert large - small < 0.2 * 19_000 * len(line)  # under a fifth of the extra bytes read


def test_byte_order_mark_is_named() -> None:
    line = b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}\n'
    [finding] = check_lines("bom", [line])
    assert (finding.code, finding.column) == ("MT002", 1)
    assert finding.message == "invalid JSON: the line starts with a byte order mark; save the file as UTF-8 without BOM"
