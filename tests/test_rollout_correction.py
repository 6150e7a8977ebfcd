"""Rollout correction: each mode's weights and diagnostics against hand-computed values, the losses
weighted by them, and ``none`` leaving the loss unchanged bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from fadtq.errors import FadtqError
from fadtq.losses import LossInputs, clipped_ratio, policy_gradient
from fadtq.rollout_correction import correction_weights, mismatch_metrics

# Two completions, the second one token shorter; the trainer's log-probabilities minus the
# sampler's are log r below: row 0 has r = 0.5, 3, 1.5 (R = 2.25), row 1 r = 0.8, 1 (R = 0.8).
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
SAMPLER = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.1, 0.0]])
TRAINER = SAMPLER + torch.log(torch.tensor([[0.5, 3.0, 1.5], [0.8, 1.0, 1.0]]))
THRESHOLD = 2.0


@pytest.mark.parametrize("mode, expected", [
    ("token_truncate", [[0.5, 2.0, 1.5], [0.8, 1.0, 0.0]]),
    ("token_mask", [[0.5, 0.0, 1.5], [0.8, 1.0, 0.0]]),
    ("sequence_truncate", [[2.0, 2.0, 2.0], [0.8, 0.8, 0.0]]),
    ("sequence_mask", [[0.0, 0.0, 0.0], [0.8, 0.8, 0.0]]),
])
def test_each_mode_weights_the_tokens_as_computed_by_hand(mode, expected):
    weights = correction_weights(TRAINER, SAMPLER, MASK, mode, THRESHOLD)
    torch.testing.assert_close(weights, torch.tensor(expected), atol=1e-6, rtol=0)


def test_none_gives_no_weights():
    assert correction_weights(TRAINER, SAMPLER, MASK, "none", THRESHOLD) is None


@pytest.mark.parametrize("mode, share", [("token_truncate", 1 / 5), ("token_mask", 1 / 5),
                                         ("sequence_truncate", 3 / 5), ("sequence_mask", 3 / 5), ("none", 0.0)])
def test_the_diagnostics_measure_the_mismatch_and_what_was_corrected(mode, share):
    metrics = mismatch_metrics(TRAINER, SAMPLER, MASK, mode, THRESHOLD)
    ratios = [0.5, 3.0, 1.5, 0.8, 1.0]
    assert metrics["mismatch/kl"] == pytest.approx(-math.log(0.5 * 3.0 * 1.5 * 0.8) / 5, abs=1e-6)
    assert metrics["mismatch/k3_kl"] == pytest.approx(sum(r - math.log(r) - 1 for r in ratios) / 5, abs=1e-6)
    assert metrics["mismatch/ppl_ratio"] == pytest.approx((2.25 ** (-1 / 3) + 0.8 ** (-1 / 2)) / 2, abs=1e-6)
    assert metrics["mismatch/corrected_share"] == pytest.approx(share)


def test_the_weights_carry_no_gradient():
    trainer = TRAINER.clone().requires_grad_(True)
    assert not correction_weights(trainer, SAMPLER, MASK, "token_truncate", THRESHOLD).requires_grad


def _inputs(weights=None, old=None) -> LossInputs:
    logprobs = torch.tensor([[-0.2, -1.0, -0.4], [-0.6, -0.9, 0.0]], requires_grad=True)
    return LossInputs(logprobs, torch.tensor([1.0, -2.0]), MASK, old_logprobs=old, weights=weights)


def test_the_policy_gradient_loss_weights_each_token():
    weights = torch.tensor([[0.5, 2.0, 1.5], [0.8, 1.0, 0.0]])
    loss, _ = policy_gradient(_inputs(weights))
    # -(mean over the 5 tokens of w * A * log pi)
    by_hand = -(0.5 * -0.2 + 2.0 * -1.0 + 1.5 * -0.4 + (-2.0) * (0.8 * -0.6 + 1.0 * -0.9)) / 5
    assert loss.item() == pytest.approx(by_hand, abs=1e-6)


def test_the_clipped_ratio_loss_weights_each_token_s_surrogate():
    x = _inputs(torch.tensor([[0.5, 2.0, 1.5], [0.8, 1.0, 0.0]]), old=torch.tensor([[-0.2, -1.2, -0.4], [-0.6, -0.5, 0.0]]))
    loss, _ = clipped_ratio(x, clip_eps=0.2, kl_coef=0.0)
    ratio = [1.0, math.exp(0.2), 1.0, 1.0, math.exp(-0.4)]
    advantages = [1.0, 1.0, 1.0, -2.0, -2.0]
    surrogate = [min(r * a, min(max(r, 0.8), 1.2) * a) for r, a in zip(ratio, advantages)]
    by_hand = -sum(w * s for w, s in zip([0.5, 2.0, 1.5, 0.8, 1.0], surrogate)) / 5
    assert loss.item() == pytest.approx(by_hand, abs=1e-6)


def test_without_weights_the_losses_are_the_uncorrected_formulas_bit_for_bit():
    """``none`` gives no weights: each loss is exactly its formula without a correction."""
    old = torch.tensor([[-0.2, -1.2, -0.4], [-0.6, -0.5, 0.0]])
    x = _inputs(old=old)
    mask = MASK.to(torch.float32)
    pg, _ = policy_gradient(x)
    assert torch.equal(pg, -((x.logprobs * x.advantages.unsqueeze(1)) * mask).sum() / mask.sum())
    ratio = (x.logprobs - old).exp()
    a = x.advantages.unsqueeze(1)
    surrogate = (ratio * a).minimum(ratio.clamp(0.8, 1.2) * a)
    clipped, _ = clipped_ratio(x, clip_eps=0.2, kl_coef=0.0)
    assert torch.equal(clipped, -(surrogate * mask).sum() / mask.sum())


def test_a_mode_or_threshold_outside_the_choices_is_one_line_naming_the_key():
    from fadtq.run_config import load_run_config

    with pytest.raises(FadtqError, match=r"train\.rollout_correction\.mode.*token_truncate"):
        load_run_config(None, {"train.rollout_correction.mode": "clip"})
    with pytest.raises(FadtqError, match=r"train\.rollout_correction\.threshold.*above 1"):
        load_run_config(None, {"train.rollout_correction.threshold": "0.5"})
