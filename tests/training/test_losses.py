"""Losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from fadtq.errors import FadtqError
from fadtq.plugin_manager import default_plugins
from fadtq.losses import LossInputs, clipped_ratio, k3_kl, policy_gradient, token_mean
from fadtq.run_config import load_run_config


def test_token_mean_ignores_masked_tokens():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert token_mean(values, mask).item() == pytest.approx((1 + 2 + 3) / 3)


@pytest.mark.parametrize("mode, expected", [("token-mean", (1 + 2 + 3) / 3),
                                            ("seq-mean-token-sum", ((1 + 2) + 3) / 2),
                                            ("seq-mean-token-mean", ((1 + 2) / 2 + 3) / 2)])
def test_aggregation_modes(mode, expected):
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    x = LossInputs(values, torch.zeros(2), torch.tensor([[1, 1, 0], [1, 0, 0]]), agg_mode=mode)
    assert x.reduce(values).item() == pytest.approx(expected)


def test_seq_mean_token_sum_gives_a_short_sequence_full_weight():
    # L = -(A0 * (lp00 + lp01) + A1 * lp10) / 2: the one-token sequence is not diluted by the two-token one
    logprobs = torch.tensor([[-1.0, -2.0], [-0.5, -9.0]], requires_grad=True)
    x = LossInputs(logprobs, torch.tensor([2.0, -1.0]), torch.tensor([[1, 1], [1, 0]]), agg_mode="seq-mean-token-sum")
    policy_gradient(x)[0].backward()
    assert torch.allclose(logprobs.grad, torch.tensor([[-1.0, -1.0], [0.5, 0.0]]))


def test_unknown_aggregation_is_refused_on_its_key():
    with pytest.raises(FadtqError, match="train.loss_agg_mode: expected one of token-mean, seq-mean-token-sum"):
        load_run_config("cpu_default", overrides={"train": {"loss_agg_mode": "sum"}})


def test_policy_gradient_value_and_gradient():
    # L = -(A0*(lp00 + lp01) + A1*lp10) / 3 with A = [2, -1]
    logprobs = torch.tensor([[-1.0, -2.0], [-0.5, -9.0]], requires_grad=True)
    x = LossInputs(logprobs, torch.tensor([2.0, -1.0]), torch.tensor([[1, 1], [1, 0]]))
    loss, metrics = policy_gradient(x)
    assert loss.item() == pytest.approx(-(2 * (-1 - 2) + (-1) * (-0.5)) / 3)
    loss.backward()
    assert torch.allclose(logprobs.grad, torch.tensor([[-2 / 3, -2 / 3], [1 / 3, 0.0]]))
    assert metrics["pg_loss"] == pytest.approx(loss.item())


def test_clipped_ratio_clips_and_adds_k3_kl():
    # one token each: rho = e^{0.5} > 1.2 with A = 1 -> clipped to 1.2; rho = 1 with A = -1 -> -1
    logprobs = torch.tensor([[0.0], [-1.0]], requires_grad=True)
    old = torch.tensor([[-0.5], [-1.0]])
    ref = torch.tensor([[0.0], [-2.0]])
    x = LossInputs(logprobs, torch.tensor([1.0, -1.0]), torch.ones(2, 1), old_logprobs=old, ref_logprobs=ref)
    loss, metrics = clipped_ratio(x, clip_eps=0.2, kl_coef=0.1)
    pg = -(1.2 + -1.0) / 2
    kl = (0.0 + (math.exp(-1.0) + 1.0 - 1.0)) / 2  # d = 0 -> 0; d = -1 -> e^-1 + 1 - 1
    assert loss.item() == pytest.approx(pg + 0.1 * kl)
    assert metrics["clip_frac"] == pytest.approx(0.5)
    assert k3_kl(torch.tensor(0.3), torch.tensor(0.3)).item() == 0.0


def test_clipped_ratio_requires_old_logprobs_and_unknown_loss_is_named():
    x = LossInputs(torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1))
    with pytest.raises(FadtqError, match="old_logprobs"):
        clipped_ratio(x)
    losses = default_plugins().losses
    with pytest.raises(FadtqError, match="unknown loss 'ppo'; known: clipped_ratio, policy_gradient"):
        losses.get("ppo")
    assert losses.get("policy_gradient").needs_old_logprobs is False


@pytest.mark.parametrize("name, fn, old, reference", [("policy_gradient", policy_gradient, False, False),
                                                      ("clipped_ratio", clipped_ratio, True, True)])
def test_builtin_losses_are_plugins_declaring_what_they_need(name, fn, old, reference):
    loss = default_plugins().losses.get(name)
    assert (loss.fn, loss.needs_old_logprobs, loss.needs_reference) == (fn, old, reference)
    assert default_plugins().losses.provider(name) == "fadtq (built-in)"
