"""``answers/*`` metrics: the share of each answered class and their Balance Score."""

from __future__ import annotations

import math

import pytest

from fadtq.rollout import Rollout
from fadtq.training.step_metrics import answer_shares


def rollout(answer: str) -> Rollout:
    return Rollout(id="x", group="g", prompt="q", completion=f"<think>t</think><answer>{answer}</answer>",
                   label="good", category="pushpins")


def test_a_collapsed_policy_shows_one_share_and_zero_balance():
    metrics = answer_shares([rollout("structural")] * 4)
    assert metrics["answers/structural"] == 1.0 and metrics["answers/good"] == 0.0
    assert metrics["answers/balance_score"] == pytest.approx(0.0, abs=1e-9)


def test_shares_count_unparsed_answers_in_the_denominator():
    metrics = answer_shares([rollout("good"), rollout("logical"), rollout("structural"), rollout("maybe")])
    assert metrics["answers/good"] == metrics["answers/logical"] == metrics["answers/structural"] == 0.25
    assert metrics["answers/balance_score"] == pytest.approx(1.0, abs=1e-6)  # 1/3 each of the parsed: log 3 / log 3
    assert not math.isnan(metrics["answers/balance_score"])
