"""The preview: exact highlighted spans per mode, the terminal view, the dataset summary, and the HTML
report rendered by a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from chats import A, S, U, chat, strategy
from rich.console import Console
from vocabularies import tokenizer

from axolotl_multiturn.engine.validate import parse_conversation
from axolotl_multiturn.reports.preview import Shown, conversation_text

pytestmark = pytest.mark.axolotl
CONV = chat((S, "Be brief."), (U, "2+2?"), (A, "4"))
HEAD = "<|im_start|>system\n"


def shown(mode: str) -> Shown:
    s = strategy(tokenizer("chatml"), mode)
    item = s.encoder.encode([parse_conversation({"messages": CONV})])[0]
    return Shown(item, s.label(item))


@pytest.mark.parametrize(("mode", "runs"), [
    ("none", [(f"{HEAD}Be brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
               True)]),
    ("instruction", [(f"{HEAD}Be brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
                      False), ("4<|im_end|>", True), ("\n", False)]),
    ("boilerplate", [(HEAD, False), ("Be brief.", True), ("<|im_end|>\n<|im_start|>user\n", False),
                     ("2+2?", True), ("<|im_end|>\n<|im_start|>assistant\n", False), ("4<|im_end|>", True),
                     ("\n", False)]),
])
def test_highlighted_spans_per_mode(mode: str, runs: list) -> None:
    assert shown(mode).runs() == runs


def test_plain_output_marks_trained_text() -> None:
    console = Console(file=open(os.devnull, "w"), width=200)
    text = conversation_text(shown("instruction"), color=console.is_terminal)
    assert text.plain.endswith("<|im_start|>assistant\n«4<|im_end|>»\n")


def test_counts_per_message() -> None:
    assert shown("boilerplate").counts() == [("0 system", 3, 3), ("1 user", 4, 4), ("2 assistant", 2, 2),
                                              ("template", 0, 14)]


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Spans(HTMLParser):
    """The text of every trained token span, and of the summary tables' cells, from a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.trained: list[str] = []
        self.cells: list[str] = []
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "span" and {"tok", "trained"} <= set((attrs.get("class") or "").split()):
            self._in, self.trained = "span", [*self.trained, ""]
        elif tag == "td":
            self._in, self.cells = "td", [*self.cells, ""]

    def handle_endtag(self, tag):
        if tag in ("span", "td"):
            self._in = None

    def handle_data(self, data):
        if self._in == "span":
            self.trained[-1] += data
        elif self._in == "td":
            self.cells[-1] += data


def test_preview_command_and_html_report_in_chromium(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "train.jsonl"
    rows = [chat((S, "Story: Ann has a kite."), (U, "What does Ann have?"), (A, "A kite.")),
            chat((U, "Hi"), (A, "Hello there, friend."))]
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "base_model": str(tiny_model), "plugins": ["axolotl_multiturn.MultiTurnPlugin"],
        "datasets": [{"path": str(data), "type": "axolotl_multiturn.chat", "masking": "instruction"}],
        "sequence_len": 256, "micro_batch_size": 1, "num_epochs": 1, "learning_rate": 1e-4,
        "output_dir": str(tmp_path / "out")}))
    report = tmp_path / "report.html"
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([str(Path(sys.executable).with_name("axolotl-multiturn")), "preview", str(config), "--rows", "2", "--html", str(report)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "masking: instruction; trained text is «between guillemets»" in out
    assert "<|im_start|>assistant\n«A kite.<|im_end|>»" in out
    tokens = sum(len(tokenizer("chatml").apply_chat_template(r, tokenize=True, return_dict=False)) for r in rows)
    assert tokens == 46
    assert f"{data}: 2 conversations, 46 tokens, 10 trained (21.7%), masking instruction" in out
    html = report.read_text()
    assert not re.search(r"(https?:)?//|url\(", html), "the report must not reference anything outside itself"

    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed here (apt-get install chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600"]
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120,
                   check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    dom = subprocess.run([browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    spans = Spans()
    spans.feed(dom)
    assert "".join(spans.trained) == "A kite.<|im_end|>Hello there, friend.<|im_end|>"
    assert spans.cells[:8] == ["conversations", "2", "rows skipped", "0", "tokens", "46", "trained tokens", "10"]
    assert ["assistant", "10", "10", "100.0%"] == spans.cells[spans.cells.index("assistant"):][:4]
    assert spans.urls == []


def agent_rows(template: str, conversation: list[dict], tools, mode: str = "boilerplate") -> list[Shown]:
    from test_generations import template_tokenizer

    s = strategy(template_tokenizer(template), mode)
    row = {"messages": [conversation], **({"tools": [tools]} if tools else {})}
    return [Shown(r.item, r.labels, r.index, r.note) for r in s.labelled(row, [0])]


def test_tool_calls_tool_results_and_reasoning_are_classes_of_their_own() -> None:
    from test_generations import SHAPES

    shown_row = agent_rows("qwen_25", *SHAPES["single_call"])[0]
    runs = [r for r in shown_row.runs(classes=True) if r[2]]
    assert runs == [('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', True,
                     "tool_call"), ('{"temp": 21, "sky": "clear"}\n', True, "tool_result")]  # `}\n` is one token: glue
    reasoning = agent_rows("qwen3", [{"role": "user", "content": "2+2?"},
                                     {"role": "assistant", "content": "4", "reasoning_content": "Two and two"}],
                           None)[0]
    assert [r for r in reasoning.runs(classes=True) if r[2]] == [("Two and two", True, "reasoning")]


def test_rows_added_for_parity_say_why_in_the_terminal_and_the_report() -> None:
    from test_generations import SHAPES

    from axolotl_multiturn.engine.masking import Mode
    from axolotl_multiturn.reports import html
    from axolotl_multiturn.reports.summary import Summary

    rows = agent_rows("qwen3", SHAPES["plain"][0], None, "instruction")
    assert [(r.source, r.note) for r in rows] == [
        (0, ""), (0, "turn 1 trained in a row of its own: the whole conversation renders it differently from "
                     "its inference prompt (the template rewrites history, e.g. strips earlier thinking)")]
    page = html.document("t", Summary("d", Mode.INSTRUCTION, None), rows)
    assert "<p class='note'>turn 1 trained in a row of its own" in page
    assert "<h2>Row 1 (conversation 0)</h2>" in page
