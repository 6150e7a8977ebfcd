"""The evaluation equations and metrics against values computed by hand (arithmetic in comments)."""

from __future__ import annotations

import math

import pytest

from fadtq.evaluation.metrics import compute_metrics
from fadtq.formulas import EPS, accuracy, balance_score, macro_mean, precision_recall_f1

LN2, LN3 = math.log(2), math.log(3)


def test_balance_score_of_one_option_is_zero_and_keeps_the_seed_eps():
    # p = (1, 0, 0): H = -(1 * log(1 + eps)) - 0 - 0, a hair below 0, as the paper's formula gives.
    assert balance_score([7, 0, 0]) == pytest.approx(0.0, abs=1e-9)
    assert balance_score([0, 0, 7]) == pytest.approx(-math.log(1 + EPS) / LN3, rel=1e-12)


def test_balance_score_of_uniform_choice_is_one():
    assert balance_score([4, 4, 4]) == pytest.approx(1.0, abs=1e-9)
    assert balance_score([1, 1, 1]) == pytest.approx(1.0, abs=1e-9)


def test_balance_score_of_a_skewed_distribution():
    # counts (2, 1, 1): p = (1/2, 1/4, 1/4); H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1/2 ln 2 + ln 2 = 1.5 ln 2
    # = 1.039721; / ln 3 (1.098612) = 0.946395.
    assert balance_score([2, 1, 1]) == pytest.approx(1.5 * LN2 / LN3, rel=1e-9)
    assert balance_score([2, 1, 1]) == pytest.approx(0.946395, abs=1e-6)
    # Two options half and half: H = ln 2, BS = ln 2 / ln 3 = 0.630930.
    assert balance_score([3, 3, 0]) == pytest.approx(0.630930, abs=1e-6)


def test_eps_sits_inside_the_log():
    # eps = 0.5, p = (1, 0, 0): -(1 * ln 1.5) / ln 3 = -0.369070; zero entries add 0 * ln(0.5) = 0.
    assert balance_score([1, 0, 0], eps=0.5) == pytest.approx(-math.log(1.5) / LN3, rel=1e-12)


def test_empty_distributions_are_refused():
    with pytest.raises(ValueError):
        balance_score([0, 0, 0])
    with pytest.raises(ValueError):
        accuracy([])


def test_precision_recall_f1_and_their_zero_cases():
    # TP 2 of 3 predicted and 4 actual: P = 2/3, R = 1/2, F1 = 2 * (1/3) / (7/6) = 4/7.
    assert precision_recall_f1(2, 3, 4) == pytest.approx((2 / 3, 1 / 2, 4 / 7))
    assert precision_recall_f1(0, 0, 3) == (0.0, 0.0, 0.0)
    assert macro_mean([0.4, 0.5, 2 / 3]) == pytest.approx(0.522222, abs=1e-6)


def _rec(category: str, label: str, prediction: str | None, fmt: bool, words: int) -> dict:
    return {"category": category, "label": label, "prediction": prediction, "format_ok": fmt,
            "reasoning_words": words, "reasoning_tokens": 2 * words}


# true -> predicted; pushpins holds rows 1-3, screw_bag rows 4-8
RECORDS = [
    _rec("pushpins", "good", "good", True, 10),              # 1 right
    _rec("pushpins", "good", "structural", True, 20),        # 2
    _rec("pushpins", "good", None, False, 0),                # 3 unparseable
    _rec("screw_bag", "structural", "structural", True, 6),  # 4 right
    _rec("screw_bag", "structural", "logical", True, 4),     # 5
    _rec("screw_bag", "logical", "logical", True, 8),        # 6 right
    _rec("screw_bag", "logical", "good", False, 2),          # 7
    _rec("screw_bag", "logical", "logical", True, 14),       # 8 right
]


def test_metrics_of_a_hand_computed_example():
    m = compute_metrics(RECORDS)
    # pooled: 4 right of 8 = 0.5; per category: pushpins 1/3, screw bag 3/5, mean (5/15 + 9/15) / 2 = 7/15.
    assert m["accuracy"] == 0.5
    assert m["categories"]["pushpins"]["accuracy"] == pytest.approx(1 / 3)
    assert m["categories"]["screw_bag"]["accuracy"] == pytest.approx(3 / 5)
    assert m["accuracy_category_mean"] == pytest.approx(7 / 15)
    # confusion, rows true good/structural/logical, columns predicted good/structural/logical/unparsed
    assert m["confusion"]["matrix"] == [[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 2, 0]]
    # good: P = 1/2 (col 1+0+1), R = 1/3 (the unparsed row counts as a miss), F1 = (1/3) / (5/6) = 0.4
    # structural: P = 1/2, R = 1/2, F1 = 1/2;  logical: P = 2/3, R = 2/3, F1 = 2/3
    per = m["per_class"]
    assert (per["good"]["precision"], per["good"]["recall"], per["good"]["f1"]) == pytest.approx((0.5, 1 / 3, 0.4))
    assert per["structural"]["f1"] == pytest.approx(0.5)
    assert (per["logical"]["precision"], per["logical"]["recall"]) == pytest.approx((2 / 3, 2 / 3))
    assert m["macro_f1"] == pytest.approx((0.4 + 0.5 + 2 / 3) / 3)
    # format: 6 of 8; words: (10+20+0+6+4+8+2+14) / 8 = 64 / 8 = 8; tokens twice that
    assert m["format_rate"] == 0.75
    assert m["reasoning_words_mean"] == 8.0 and m["reasoning_tokens_mean"] == 16.0
    assert m["unparsed"] == 1 and m["unparsed_rate"] == 1 / 8


def test_balance_scores_exclude_unparseable_answers():
    m = compute_metrics(RECORDS)
    # pushpins chose good, structural (the unparseable one is left out): (1/2, 1/2, 0) -> ln 2 / ln 3 = 0.630930
    assert m["categories"]["pushpins"]["balance_score"] == pytest.approx(0.630930, abs=1e-6)
    # screw bag chose s, l, l, g, l: (1/5, 1/5, 3/5); H = 0.4 ln 5 + 0.6 ln(5/3) = 0.643775 + 0.306495
    # = 0.950271; / ln 3 = 0.864974
    assert m["categories"]["screw_bag"]["balance_score"] == pytest.approx(0.864974, abs=1e-6)
    # overall chose good 2, structural 2, logical 3 of 7: H = 2 * (2/7) ln(7/2) + (3/7) ln(7/3)
    # = 0.715864 + 0.363128 = 1.078992; / ln 3 = 0.982141
    assert m["balance_score"] == pytest.approx(0.982141, abs=1e-6)
    assert m["prediction_counts"] == {"good": 2, "structural": 2, "logical": 3, "unparsed": 1}


def test_a_group_with_no_parseable_answer_has_no_balance_score_and_unknown_lengths_stay_unknown():
    records = [_rec("pushpins", "good", None, False, 0), _rec("pushpins", "logical", None, False, 0)]
    records[0]["reasoning_tokens"] = None
    m = compute_metrics(records)
    assert m["balance_score"] is None and m["categories"]["pushpins"]["balance_score"] is None
    assert m["accuracy"] == 0.0 and m["macro_f1"] == 0.0
    assert m["reasoning_tokens_mean"] is None and m["reasoning_words_mean"] == 0.0


def test_categories_follow_the_seed_table_order():
    records = [_rec(c, "good", "good", True, 1) for c in ("pushpins", "aaa", "breakfast_box", "juice_bottle")]
    assert list(compute_metrics(records)["categories"]) == ["breakfast_box", "juice_bottle", "pushpins", "aaa"]
