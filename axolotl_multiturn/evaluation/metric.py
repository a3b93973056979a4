"""CoQA's answer metric, as its official evaluation script (`evaluate-v1.0.py`) computes it.

An answer and its gold answers are normalized (lower case, punctuation removed, the articles a/an/the removed,
white space collapsed) and compared as bags of words: exact match (0 or 1) and F1. With several gold answers
the official script scores a prediction against each leave-one-out subset (its best match there) and averages,
so a prediction is judged as a human answer would be; with one gold answer it is that answer's score.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the official script's `normalize_answer`)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _words(text: str) -> list[str]:
    return normalize(text).split() if text else []


def exact(gold: str, answer: str) -> int:
    return int(normalize(gold) == normalize(answer))


def f1(gold: str, answer: str) -> float:
    """Word-bag F1; when either side has no words, 1 if both have none, else 0."""
    gold_words, answer_words = _words(gold), _words(answer)
    if not gold_words or not answer_words:
        return float(gold_words == answer_words)
    same = sum((Counter(gold_words) & Counter(answer_words)).values())
    if not same:
        return 0.0
    precision, recall = same / len(answer_words), same / len(gold_words)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Score:
    exact: float
    f1: float


def score(golds: Sequence[str], answer: str) -> Score:
    """One answer against its gold answers, as the official script's `_compute_turn_score`."""
    if not golds:
        raise ValueError("an answer needs at least one gold answer to be scored")
    if len(golds) == 1:
        return Score(float(exact(golds[0], answer)), f1(golds[0], answer))
    subsets = [[*golds[:i], *golds[i + 1 :]] for i in range(len(golds))]
    return Score(
        sum(max(exact(g, answer) for g in subset) for subset in subsets) / len(golds),
        sum(max(f1(g, answer) for g in subset) for subset in subsets) / len(golds),
    )
