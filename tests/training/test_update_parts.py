"""The update's parts, against hand-computed values: each auxiliary term sees its own gathered
columns, and the update's totals make the logged metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.image_tensors import ImageTensors
from fadtq.policy.logprobs import TokenStats
from fadtq.training.auxiliary import gather_ids, own_columns
from fadtq.training.step_metrics import StepTimer, UpdateTotals


@dataclass
class Term:
    gather_ids: tuple[int, ...]
    metric: str = "term"
    coef: float = 1.0


def batch(rollout_logprobs: torch.Tensor | None) -> ForwardBatch:
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    return ForwardBatch(sequences=torch.zeros(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 5, dtype=torch.long),
                        action_mask=mask, token_inputs={},
                        images=ImageTensors(per_patch={}, per_image={}, patches=torch.zeros(0, dtype=torch.long)),
                        images_per_row=torch.zeros(2, dtype=torch.long), rollout_logprobs=rollout_logprobs)


def test_each_term_sees_its_own_gathered_columns():
    terms = [Term((7, 8)), Term(()), Term((3,))]
    assert gather_ids(terms) == (7, 8, 3)
    gathered = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3)
    stats = TokenStats(logprobs=torch.zeros(2, 3), entropy=None, gathered=gathered)
    first, second, third = own_columns(terms, stats)
    assert torch.equal(first.gathered, gathered[..., :2]) and torch.equal(third.gathered, gathered[..., 2:])
    assert second is stats


def test_the_totals_make_the_logged_metrics():
    totals = UpdateTotals(lr=1e-3, micro_batches=2)
    logprobs = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    sampled = torch.tensor([[-1.5, -2.0, 0.0], [-0.25, 0.0, 0.0]])
    stats = TokenStats(logprobs=logprobs, entropy=torch.tensor([[0.3, 0.6, 0.0], [0.9, 0.0, 0.0]]))
    for _ in range(2):
        totals.add({"pg_loss": 0.25}, stats, batch(sampled))
    totals.add_term("policy/answer_entropy", 0.5, weight=3.0)
    totals.add_term("policy/answer_entropy", 1.0, weight=1.0)
    totals.add_term("loss/ptx_loss", 2.0, weight=0.0)
    totals.grad_norm = 4.0
    metrics = totals.metrics(engine_grad_norm=None)
    # 2 micro-batches of 3 tokens: entropy (0.3 + 0.6 + 0.9) * 2 / 6; gap (0.5 + 0 + 0.25) * 2 / 6
    assert metrics == pytest.approx({"optim/lr": 1e-3, "loss/pg_loss": 0.25, "policy/answer_entropy": (1.5 + 1.0) / 4.0,
                       "loss/ptx_loss": 0.0, "policy/entropy": 3.6 / 6, "rollout/logprob_gap": 1.5 / 6,
                       "optim/grad_norm": 4.0}, rel=1e-6)
    assert totals.metrics(engine_grad_norm=2.5)["optim/grad_norm"] == 2.5


def test_without_sampler_logprobs_no_gap_is_logged():
    totals = UpdateTotals(lr=1.0, micro_batches=1)
    totals.add({}, TokenStats(logprobs=torch.zeros(2, 3), entropy=torch.zeros(2, 3)), batch(None))
    assert "rollout/logprob_gap" not in totals.metrics(None)


def test_the_timer_sums_a_phase_run_twice_and_starts_afresh():
    timer, synced = StepTimer(synchronize=lambda: synced.append(1)), []
    for _ in range(2):
        with timer.phase("generate"):
            pass
    times = timer.take()
    assert list(times) == ["time/generate"] and times["time/generate"] >= 0 and len(synced) == 4
    assert timer.take() == {}
