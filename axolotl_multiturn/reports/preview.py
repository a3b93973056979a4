"""See what trains: a config's conversations with trained text highlighted, through the training path.

The config is loaded by axolotl (so the plugin runs), the tokenizer by axolotl's loader, the dataset by
axolotl's dataset loader and the strategy by axolotl's strategy loader: what is shown is what trains.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from axolotl_multiturn.engine.encode import IGNORE_INDEX, Encoded
from axolotl_multiturn.engine.spans import Kind, Span
from axolotl_multiturn.integration.dataset import summarize
from axolotl_multiturn.integration.rl import check_config
from axolotl_multiturn.reports import html as report_html
from axolotl_multiturn.reports.marks import CLASS_STYLES, CLOSE, MASKED_STYLE, OPEN, TRAINED_STYLE, Piece
from axolotl_multiturn.reports.summary import Summary, percent


@dataclass(frozen=True)
class Shown:
    """One training row as previewed: its encoding and labels, the conversation it comes from, and why
    parity made it (empty for a conversation's own row)."""

    encoded: Encoded
    labels: np.ndarray
    source: int = 0
    note: str = ""

    def _class(self, token: int, spans: tuple[Span, ...]) -> str:
        span = spans[self.encoded.first[token]]
        if span.kind is Kind.CONTENT and self.encoded.messages[span.message].role == "tool":
            return "tool_result"
        return span.kind.name.lower()

    def tokens(self) -> list[Piece]:
        """The rendered text cut at token boundaries; text that no token's offsets cover is shown as
        masked template text, with index -1. An image's tokens (never trained) show as one marker with
        their count, where the template's markup for it stood."""
        text, out, position = self.encoded.rendered.text, [], 0
        spans = self.encoded.rendered.spans
        image = self.encoded.image_tokens
        run, images, owner = 0, 0, self.encoded.last  # an image token's last span is its image's markup
        for index, ((start, end), label) in enumerate(zip(self.encoded.offsets, self.labels)):
            start, end = max(int(start), position), max(int(end), position)
            if start > position:
                out.append(Piece(text[position:start], False, -1, -1, "template"))
            if image[index]:  # a run of image tokens ends where the next token is not one, or another image's
                run += 1
                if index + 1 == len(image) or not image[index + 1] or owner[index + 1] != owner[index]:
                    images += 1
                    out.append(Piece(f"[image {images}: {run} tokens]", False, index - run + 1, -1, "image"))
                    run = 0
            elif end > start:
                out.append(
                    Piece(
                        text[start:end],
                        label != IGNORE_INDEX,
                        index,
                        int(self.encoded.input_ids[index]),
                        self._class(index, spans),
                    )
                )
            position = max(position, end)
        if position < len(text):
            out.append(Piece(text[position:], False, -1, -1, "template"))
        return out

    def runs(self, classes: bool = False) -> list[tuple[str, bool]] | list[tuple[str, bool, str]]:
        """`tokens` with neighbours of the same kind joined: the spans a reader sees; with `classes`,
        (text, trained, class) where the class is one shown apart (else "")."""
        out: list = []
        for piece in self.tokens():
            key = (piece.trained, piece.cls if piece.cls in CLASS_STYLES else "") if classes else (piece.trained,)
            if out and tuple(out[-1][1:]) == key:
                out[-1] = (out[-1][0] + piece.text, *key)
            else:
                out.append((piece.text, *key))
        return out

    def counts(self) -> list[tuple[str, int, int]]:
        """Per message, then template text and images: (name, trained tokens, tokens)."""
        spans = self.encoded.rendered.spans
        names = [f"{i} {m.role}" for i, m in enumerate(self.encoded.messages)]
        total: Counter[str] = Counter()
        trained: Counter[str] = Counter()
        image = self.encoded.image_tokens
        for first, label, is_image in zip(self.encoded.first, self.labels, image):
            span = spans[first]
            name = (
                "images"
                if is_image or span.kind is Kind.IMAGE
                else "template"
                if span.message < 0
                else names[span.message]
            )
            total[name] += 1
            trained[name] += int(label != IGNORE_INDEX)
        return [(n, trained[n], total[n]) for n in [*names, "template", "images"] if total[n]]


def load_config(config: str | Path, dataset: int = 0, read: bool = True) -> tuple[Any, Any, Any, Any]:
    """(config, tokenizer, dataset entry, raw dataset) as axolotl builds them for training; with `read`
    false, no dataset is read (None)."""
    from axolotl.cli.config import load_cfg
    from axolotl.loaders import load_tokenizer
    from axolotl.utils.data.shared import load_dataset_with_config

    logging.disable(logging.INFO)  # axolotl logs the whole config at INFO; keep the output readable
    try:
        cfg = load_cfg(str(config))
        if not 0 <= dataset < len(cfg.datasets or []):
            raise SystemExit(f"{config}: no dataset {dataset} (it has {len(cfg.datasets or [])})")
        ds_cfg = cfg.datasets[dataset]
        tokenizer = load_tokenizer(cfg)
        raw = load_dataset_with_config(ds_cfg, use_auth_token=False) if read else None
    finally:
        logging.disable(logging.NOTSET)
    return cfg, tokenizer, ds_cfg, raw


def shown(wrapper: Any, raw: Any, rows: int) -> list[Shown]:
    """The first `rows` conversations, labelled by the wrapper's strategy (after `auto` has decided)."""
    indices = list(range(min(rows, len(raw))))
    labelled = wrapper.strategy.labelled(raw.select(indices)[:], indices)
    return [Shown(row.item, row.labels, row.index, row.note) for row in labelled if row.item is not None]


def conversation_text(item: Shown, color: bool, max_chars: int | None = None) -> Text:
    text = Text()
    used = 0
    for piece, trained, cls in item.runs(classes=True):
        if max_chars is not None and used >= max_chars:
            text.append(" …", style=MASKED_STYLE)
            break
        used += len(piece)
        if color:
            styles = CLASS_STYLES.get(cls, (TRAINED_STYLE, MASKED_STYLE))
            text.append(piece, style=styles[0] if trained else styles[1])
        else:
            text.append(f"{OPEN}{piece}{CLOSE}" if trained else piece)
    return text


def counts_table(item: Shown) -> Table:
    table = Table("message", "trained", "tokens", box=None)
    for name, trained, total in item.counts():
        table.add_row(name, str(trained), str(total))
    return table


def summary_table(summary: Summary) -> Table:
    table = Table("", "trained", "tokens", "share", box=None, title=f"{summary.source}: what trains")
    for group, counts in [*summary.by_role.items(), *((f"class {c}", v) for c, v in summary.by_class.items())]:
        if counts[1]:
            table.add_row(group, f"{counts[0]:,}", f"{counts[1]:,}", percent(*counts))
    table.add_row("all", f"{summary.trained:,}", f"{summary.tokens:,}", percent(summary.trained, summary.tokens))
    return table


def preview(
    config: str | Path,
    rows: int = 3,
    dataset: int = 0,
    html: str | Path | None = None,
    console: Console | None = None,
    max_chars: int | None = None,
) -> tuple[list[Shown], Summary]:
    """Print the first rows of a config's dataset with trained text highlighted, and the dataset summary;
    optionally write the HTML report. Returns what it showed."""
    from axolotl_multiturn.integration.plugin import DATASET_SECTIONS, raw_entries

    console = console or Console(highlight=False)
    cfg, tokenizer, ds_cfg, _ = load_config(config, dataset, read=False)
    if check_config(cfg, DATASET_SECTIONS):  # a preference config: its pairs, as the DPO trainer gets them
        from axolotl_multiturn.reports.pair_preview import preview_pairs

        return preview_pairs(cfg, tokenizer, raw_entries(cfg)[dataset], config, rows, html, console)
    from axolotl.prompt_strategies import load as load_strategy
    from axolotl.utils.data.shared import load_dataset_with_config

    raw = load_dataset_with_config(ds_cfg, use_auth_token=False)
    wrapper = load_strategy(ds_cfg.type, tokenizer, cfg, ds_cfg)
    strategy = wrapper.strategy
    summary = summarize(strategy, raw)
    items = shown(wrapper, raw, rows)
    color = console.is_terminal
    legend = (
        "trained text is highlighted (tool calls orange, tool results blue, reasoning violet; images boxed)"
        if color
        else f"trained text is {OPEN}between guillemets{CLOSE}"
    )
    console.print(f"masking: {strategy.mode.value}; {legend}")
    for index, item in enumerate(items):
        console.print(f"--- row {index} (conversation {item.source})")
        if item.note:
            console.print(item.note, markup=False)
        console.print(conversation_text(item, color, max_chars))
        console.print(counts_table(item))
    for line in summary.lines():
        console.print(line, markup=False)
    console.print(summary_table(summary))
    if html:
        Path(html).write_text(
            report_html.document(f"axolotl-multiturn preview: {config}", summary, items), encoding="utf-8"
        )
        console.print(f"wrote {html}")
    return items, summary
