"""How a held-out score is shown: a summary table (one column per model), a per-question table, JSON for
machines, and a before/after picture (PNG) for people who would rather look than read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from axolotl_multiturn.evaluation.answers import Answer, Result
from axolotl_multiturn.files import written_whole


@dataclass(frozen=True)
class Scores:
    """A model's held-out summary: CoQA F1 and exact match, the share of answers that stopped on the
    end-of-turn token by themselves, the mean answer length in words, over `questions`."""

    f1: float
    exact: float
    stopped: float
    words: float
    questions: int

    @classmethod
    def of(cls, result: Result) -> Scores:
        return cls(result.f1, result.exact, result.stopped, result.words, len(result.answers))


def question_of(answer: Answer) -> str:
    last = answer.question.context[-1] if answer.question.context else {}
    return str(last.get("content") or "")


def to_json(result: Result, **meta: Any) -> dict[str, Any]:
    """The summary, `meta` (config, model, data) and every answer with its question, gold and scores."""
    return {
        **meta,
        **asdict(Scores.of(result)),
        "answers": [
            {
                "conversation": a.question.conversation,
                "message": a.question.message,
                "question": question_of(a),
                "golds": list(a.question.golds),
                "answer": a.text,
                "f1": a.score.f1,
                "exact": a.score.exact,
                "stopped": a.stopped,
            }
            for a in result.answers
        ],
    }


def scores_from_json(data: Mapping[str, Any]) -> Scores:
    return Scores(*(data[name] for name in Scores.__dataclass_fields__))


def summary_table(columns: Mapping[str, Scores], title: str | None = None) -> Table:
    table = Table("held-out", *columns, title=title)
    rows = [
        ("CoQA F1", lambda s: f"{s.f1:.3f}"),
        ("exact match", lambda s: f"{s.exact:.3f}"),
        ("stopped by end-of-turn", lambda s: f"{s.stopped:.0%}"),
        ("mean answer words", lambda s: f"{s.words:.1f}"),
        ("questions", lambda s: str(s.questions)),
    ]
    for name, cell in rows:
        table.add_row(name, *(cell(s) for s in columns.values()))
    return table


def question_table(result: Result, before: Result | None = None, limit: int | None = None) -> Table:
    """One row per question: its place, the question, the gold answer, the answer (and the answer before),
    F1; an answer cut at the token limit is marked with `…`."""
    table = Table("#", "question", "gold", *(["before", "F1"] if before else []), "answer", "F1")
    shown = result.answers[:limit] if limit is not None else result.answers

    def cell(answer: Answer) -> tuple[str, str]:
        return answer.text + ("" if answer.stopped else " …"), f"{answer.score.f1:.2f}"

    for k, a in enumerate(shown):
        table.add_row(
            f"{a.question.conversation}:{a.question.message}",
            question_of(a),
            a.question.golds[0],
            *(cell(before.answers[k]) if before else ()),
            *cell(a),
        )
    return table


def picture(path: Path, columns: Mapping[str, Scores], title: str) -> Path:
    """Grouped bars (F1, exact match, stop share; one bar per column), values written on the bars."""
    from PIL import Image, ImageDraw, ImageFont

    metrics = [("CoQA F1", "f1"), ("exact match", "exact"), ("stopped by end-of-turn", "stopped")]
    colours = ["#9aa5b1", "#2f7ed8", "#f28f43", "#8bbc21", "#910000"]
    width, height, top, bottom, left = 760, 420, 70, 360, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(size=18), ImageFont.load_default(size=14)
    draw.text((left, 18), title, fill="black", font=font)
    draw.line((left, bottom, width - 20, bottom), fill="black")
    group = (width - left - 40) / len(metrics)
    bar = group * 0.7 / max(1, len(columns))
    for g, (label, field) in enumerate(metrics):
        x0 = left + 10 + g * group
        for c, scores in enumerate(columns.values()):
            value = getattr(scores, field)
            x = x0 + c * bar
            y = bottom - value * (bottom - top)
            draw.rectangle((x, y, x + bar - 4, bottom), fill=colours[c % len(colours)])
            draw.text((x + 2, y - 18), f"{value:.2f}", fill="black", font=small)
        draw.text((x0, bottom + 8), label, fill="black", font=small)
    for c, name in enumerate(columns):
        x = left + c * 200
        draw.rectangle((x, height - 26, x + 14, height - 12), fill=colours[c % len(colours)])
        draw.text((x + 20, height - 28), name, fill="black", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as stream:
        image.save(stream, format="PNG")
    return path
