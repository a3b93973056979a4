"""The preview as one self-contained HTML file: conversations with trained tokens coloured (each token's id
and label on hover), the summary table, and two histograms as inline SVG. No scripts, no network assets."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np

from axolotl_multiturn.reports.summary import CLASSES, GROUPS, Summary, percent

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d1d1f; max-width: 72rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { padding: .2rem .8rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } tr:nth-child(even) { background: #f4f4f6; }
.conversation { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .85rem;
  border: 1px solid #ddd; border-radius: 6px; padding: .8rem; line-height: 1.5; }
.tok { border-right: 1px dotted #ccc; } .tok:hover { outline: 1px solid #333; }
.trained { background: #b7f0b1; color: #0b3d0b; } .masked { color: #8a8a8e; }
.trained.tool_call { background: #ffd08a; color: #4a2a00; } .trained.tool_result { background: #bfe3ff; }
.trained.reasoning { background: #e8ccf7; } .masked.tool_call, .masked.tool_result { font-style: italic; }
.masked.image { border: 1px solid #8a8a8e; border-radius: 3px; padding: 0 .2rem; background: #eee; }
.note { color: #555; font-style: italic; }
.legend span { padding: 0 .4rem; margin-right: .6rem; } figure { display: inline-block; margin: 0 2rem 0 0; }
figcaption { font-size: .85rem; color: #555; }
"""


def histogram(values: Sequence[float], title: str, bins: int = 20, width: int = 420, height: int = 180) -> str:
    """A bar chart of `values` as an SVG element."""
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins) if len(values) else ([], [0, 1])
    top = max(max(counts, default=0), 1)
    bar = (width - 40) / max(len(counts), 1)
    bars = "".join(
        f'<rect class="bar" x="{30 + i * bar:.1f}" y="{height - 20 - (c / top) * (height - 40):.1f}" '
        f'width="{max(bar - 1, 1):.1f}" height="{(c / top) * (height - 40):.1f}" fill="#4c8bf5">'
        f"<title>{edges[i]:.3g} to {edges[i + 1]:.3g}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    axis = (
        f'<line x1="30" y1="{height - 20}" x2="{width - 10}" y2="{height - 20}" stroke="#333"/>'
        f'<text x="30" y="{height - 5}" font-size="11">{edges[0]:.3g}</text>'
        f'<text x="{width - 10}" y="{height - 5}" font-size="11" text-anchor="end">{edges[-1]:.3g}</text>'
        f'<text x="26" y="22" font-size="11" text-anchor="end">{top}</text>'
    )
    return (
        f'<figure><svg width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">{bars}{axis}</svg><figcaption>{escape(title)}</figcaption></figure>'
    )


def conversation(pieces: Sequence[Any]) -> str:
    """Token pieces (`preview.Piece`) as spans coloured by label and class."""
    return "".join(
        f'<span class="tok {"trained" if p.trained else "masked"} {p.cls}" title="token {p.index} · id '
        f'{p.token_id} · {p.cls} · {"trained" if p.trained else "masked"}">{escape(p.text)}</span>'
        for p in pieces
    )


def summary_tables(summary: Summary) -> str:
    def rows(counts: dict[str, list[int]], names: Sequence[str]) -> str:
        return "".join(
            f"<tr><td>{n}</td><td>{counts[n][0]:,}</td><td>{counts[n][1]:,}</td><td>{percent(*counts[n])}</td></tr>"
            for n in names
            if counts.get(n, [0, 0])[1]
        )

    totals = [
        ("conversations", f"{summary.conversations:,}"),
        ("rows skipped", f"{summary.skipped:,}"),
        *((line.split(": ", 1)[0], line.split(": ", 1)[1]) for line in summary.parity_lines()),
        *(
            (f"{k} (longer than sequence_len)", f"{summary.outcomes.by_status[k]:,}")
            for k in ("split", "truncated", "dropped")
            if summary.outcomes and summary.outcomes.by_status.get(k)
        ),
        *(
            (("windows", f"{summary.outcomes.windows:,}"), ("assistant turns lost", f"{summary.outcomes.lost:,}"))
            if summary.outcomes and (summary.outcomes.windows or summary.outcomes.lost)
            else ()
        ),
        ("tokens", f"{summary.tokens:,}"),
        ("trained tokens", f"{summary.trained:,}"),
        ("masking", summary.mode.value),
    ]
    head = "<tr><th>{}</th><th>trained</th><th>tokens</th><th>trained share</th></tr>"
    decision = f"<p id='decision'>{escape(summary.decision.describe())}</p>" if summary.decision else ""
    return (
        "<table id='totals'>" + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in totals) + f"</table>{decision}"
        f"<table id='by-role'>{head.format('role')}{rows(summary.by_role, GROUPS)}</table>"
        f"<table id='by-class'>{head.format('class')}{rows(summary.by_class, CLASSES)}</table>"
    )


def document(title: str, summary: Summary, rows: Sequence[Any]) -> str:
    """The report; `rows` are `preview.Shown` training rows."""
    shown = "".join(
        f"<h2>Row {i} (conversation {row.source})</h2>"
        + (f"<p class='note'>{escape(row.note)}</p>" if row.note else "")
        + f"<div class='conversation' id='row-{i}'>{conversation(row.tokens())}</div>"
        for i, row in enumerate(rows)
    )
    plots = histogram(summary.lengths, "conversation length (tokens)") + histogram(
        summary.trained_fraction, "trained fraction per conversation"
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        "<p class='legend'><span class='trained'>trained</span><span class='trained tool_call'>tool call"
        "</span><span class='trained tool_result'>tool result</span><span class='trained reasoning'>"
        "reasoning</span><span class='masked'>masked</span>"
        "hover a token for its index and id</p>"
        f"<h2>Summary</h2>{summary_tables(summary)}<h2>Distributions</h2>{plots}{shown}</body></html>"
    )
