"""See what a preference config trains: its first pairs (prompt, chosen, rejected) with trained tokens marked,
in the terminal and in the HTML report.

The rows shown are the rows the DPO trainer receives: the plugin's loader (`rl.load_split`, on the raw
dataset entries the plugin kept) makes them, and each token's text is decoded from the ids in them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from axolotl_multiturn.integration.rl import PairColumn, PairSummary, method
from axolotl_multiturn.reports import html as report_html
from axolotl_multiturn.reports.marks import CLOSE, MASKED_STYLE, OPEN, TRAINED_STYLE, Piece

#: Tokens decoded before each one, so that its text is what it adds in context (SentencePiece drops a
#: leading space at the start of a decode; byte-level BPE splits characters across tokens).
CONTEXT = 4


def token_pieces(tokenizer: Any, ids: Sequence[int], trained: Sequence[int], before: Sequence[int] = ()) -> list[Piece]:
    """Each token's text in context (after `before`), trained or not."""
    ids, out = list(ids), []
    everything = [*before, *ids]
    for index, token in enumerate(ids):
        at = len(before) + index
        window = everything[max(0, at - CONTEXT) : at]
        head = tokenizer.decode(window, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        both = tokenizer.decode([*window, token], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        text = both[len(head) :] if both.startswith(head) else tokenizer.decode([token], skip_special_tokens=False)
        out.append(Piece(text, bool(trained[index]), index, int(token), "content" if trained[index] else "template"))
    return out


@dataclass(frozen=True)
class ShownPair:
    """One training row of the preference dataset as shown: where it comes from, and its three parts."""

    source: int
    prompt: list[Piece]
    chosen: list[Piece]
    rejected: list[Piece]

    def parts(self) -> list[tuple[str, list[Piece]]]:
        return [("prompt", self.prompt), ("chosen", self.chosen), ("rejected", self.rejected)]


def shown_pairs(tokenizer: Any, dataset: Any, rows: int) -> list[ShownPair]:
    out = []
    for row in dataset.select(range(min(rows, len(dataset)))):
        prompt = row[PairColumn.PROMPT_IDS.value]
        out.append(
            ShownPair(
                row[PairColumn.SOURCE.value],
                token_pieces(tokenizer, prompt, [0] * len(prompt)),
                token_pieces(tokenizer, row[PairColumn.CHOSEN_IDS.value], row[PairColumn.CHOSEN_MASK.value], prompt),
                token_pieces(
                    tokenizer, row[PairColumn.REJECTED_IDS.value], row[PairColumn.REJECTED_MASK.value], prompt
                ),
            )
        )
    return out


def pieces_text(pieces: Sequence[Piece], color: bool) -> Text:
    """The tokens as text, each run of trained (or masked) tokens styled, or marked, as one."""
    runs: list[tuple[str, bool]] = []
    for piece in pieces:
        if runs and runs[-1][1] == piece.trained:
            runs[-1] = (runs[-1][0] + piece.text, piece.trained)
        else:
            runs.append((piece.text, piece.trained))
    text = Text()
    for run, trained in runs:
        if color:
            text.append(run, style=TRAINED_STYLE if trained else MASKED_STYLE)
        else:
            text.append(f"{OPEN}{run}{CLOSE}" if trained else run)
    return text


def document(title: str, summary: PairSummary, pairs: Sequence[ShownPair]) -> str:
    """The HTML report of a preference dataset: its summary lines, then each pair's three parts."""
    counted = "".join(f"<p class='summary'>{escape(line)}</p>" for line in summary.lines())
    shown = "".join(
        f"<h2>Pair {i} ({summary.row(pair.source)})</h2>"
        + "".join(
            f"<h3>{name} ({sum(x.trained for x in pieces)} of {len(pieces)} tokens trained)</h3>"
            f"<div class='conversation' id='pair-{i}-{name}'>{report_html.conversation(pieces)}</div>"
            for name, pieces in pair.parts()
        )
        for i, pair in enumerate(pairs)
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{report_html.STYLE}</style></head><body><h1>{escape(title)}</h1>"
        "<p class='legend'><span class='trained'>trained</span><span class='masked'>masked</span>"
        "hover a token for its index and id</p>"
        f"<h2>Summary</h2>{counted}{shown}</body></html>"
    )


def preview_pairs(
    cfg: Any,
    tokenizer: Any,
    entry: Any,
    config: str | Path,
    rows: int = 3,
    html: str | Path | None = None,
    console: Console | None = None,
) -> tuple[list[ShownPair], PairSummary]:
    """Print the first pairs of one preference dataset entry (raw, as the plugin keeps it) with trained
    tokens marked, and its summary; optionally write the HTML report."""
    from axolotl_multiturn.integration.rl import load_split

    console = console or Console(highlight=False)
    (dataset,), (summary,) = load_split(cfg, tokenizer, [entry])
    pairs = shown_pairs(tokenizer, dataset, rows)
    color = console.is_terminal
    legend = "trained tokens are highlighted" if color else f"trained tokens are {OPEN}between guillemets{CLOSE}"
    console.print(f"rl: {method(cfg)}; {legend}")
    for index, pair in enumerate(pairs):
        console.print(f"--- pair {index} ({summary.row(pair.source)})")
        for name, pieces in pair.parts():
            console.print(f"{name} ({sum(p.trained for p in pieces)} of {len(pieces)} tokens trained):")
            console.print(pieces_text(pieces, color))
    for line in summary.lines():
        console.print(line, markup=False)
    if html:
        Path(html).write_text(document(f"axolotl-multiturn preview: {config}", summary, pairs), "utf-8")
        console.print(f"wrote {html}")
    return pairs, summary
