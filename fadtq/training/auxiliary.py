"""Auxiliary loss terms: what each micro-batch of an update adds to the policy loss.

The update adds ``coef * value`` of every term to the loss the estimator names, and logs the mean of
each term's values over the step, weighted as the term says, under its ``metric``. A term that
reads log-probabilities of particular tokens names them in ``gather_ids``: the update's one forward
gathers them for all terms, and each term sees its own columns in ``TokenStats.gathered``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import torch

from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.logprobs import TokenStats
from fadtq.run_config import RunConfig


@dataclass(frozen=True)
class MicroBatch:
    """Where a micro-batch sits: its step, its number within the step and how many the step has."""

    step: int
    number: int
    count: int


class AuxiliaryTerm(Protocol):
    metric: str  # the logged key of the term's value
    coef: float  # the loss gains coef * value
    gather_ids: tuple[int, ...]

    def __call__(self, model: torch.nn.Module, batch: ForwardBatch, stats: TokenStats,
                 micro: MicroBatch) -> tuple[torch.Tensor, float]:
        """The term's value on the micro-batch (with gradients) and its weight in the step's mean."""


def auxiliary_terms(cfg: RunConfig, processor, rank: int, world_size: int) -> list[AuxiliaryTerm]:
    """The terms the config switches on, in the order the update adds them."""
    from fadtq.training.answer_entropy import AnswerEntropyBonus
    from fadtq.training.ptx import DescriptionLoss

    terms: list[AuxiliaryTerm] = []
    if cfg.train.answer_entropy_coef > 0:
        terms.append(AnswerEntropyBonus(cfg.train.answer_entropy_coef, processor.tokenizer))
    if cfg.train.ptx_coef > 0:
        terms.append(DescriptionLoss(cfg, processor, rank, world_size))
    return terms


def gather_ids(terms: list[AuxiliaryTerm]) -> tuple[int, ...]:
    """The tokens every term reads, one term's after another's."""
    return tuple(token for term in terms for token in term.gather_ids)


def own_columns(terms: list[AuxiliaryTerm], stats: TokenStats) -> list[TokenStats]:
    """``stats`` as each term sees it: ``gathered`` cut to the term's own ``gather_ids``."""
    views, start = [], 0
    for term in terms:
        end = start + len(term.gather_ids)
        views.append(replace(stats, gathered=stats.gathered[..., start:end]) if term.gather_ids else stats)
        start = end
    return views
