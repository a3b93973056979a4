"""CoQA's metric against answers scored by hand (normalization, F1, several gold answers, empty answers)."""

from __future__ import annotations

import pytest

from axolotl_multiturn.evaluation.metric import Score, exact, f1, normalize, score


@pytest.mark.parametrize(("text", "normalized"), [
    ("The Red Kite!", "red kite"),
    ("  an   apple, a pear  ", "apple pear"),
    ("Theater", "theater"),  # an article only as a whole word
    ("At the end of Willow Lane.", "at end of willow lane"),
    ("...", ""),
])
def test_normalization_is_the_official_one(text: str, normalized: str) -> None:
    assert normalize(text) == normalized


def test_f1_and_exact_by_hand() -> None:
    # gold "at end of willow lane" (5 words), answer "willow lane" (2): 2 shared, P 1, R 2/5, F1 4/7
    assert f1("At the end of Willow Lane.", "Willow Lane") == pytest.approx(4 / 7)
    assert exact("At the end of Willow Lane.", "at the END of willow lane") == 1
    # repeated words count as often as both sides have them: gold "blue blue kite", answer "blue kite kite"
    # shares blue and kite (2 of 3 each side): F1 2/3
    assert f1("blue blue kite", "blue kite kite") == pytest.approx(2 / 3)
    assert f1("Mira", "Tom") == 0.0


def test_empty_answers() -> None:
    assert f1("", "") == 1.0 and f1("unknown", "") == 0.0 and f1("", "Mira") == 0.0
    assert f1("The.", "") == 1.0  # nothing left of either after normalization
    assert exact("", "") == 1


def test_several_gold_answers_average_the_leave_one_out_maxima() -> None:
    # golds "Mira", "Mira the baker", "a baker"; answer "Mira":
    #   leave out 0: max(F1 vs "mira baker" = 2/3, vs "baker" = 0) = 2/3, exact 0
    #   leave out 1: max(1, 0) = 1, exact 1;  leave out 2: max(1, 2/3) = 1, exact 1
    assert score(["Mira", "Mira the baker", "a baker"], "Mira") == Score(exact=2 / 3, f1=pytest.approx(8 / 9))
    assert score(["Mira."], "mira") == Score(1.0, 1.0)
    with pytest.raises(ValueError, match="at least one gold answer"):
        score([], "Mira")
