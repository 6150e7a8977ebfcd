"""Dynamic sampling (DAPO's, and the GPG paper's resampling): train on groups whose rewards differ.

A group whose rollouts all earn the same reward gets zero advantage from every group estimator: it
costs a forward and a backward, teaches nothing and dilutes the step's batch. With
``rollout.dynamic_sampling`` on, the trainer keeps the informative groups of each draw and draws
more prompts until the step has ``prompts_per_step`` of them, at most ``rollout.max_draws`` extra
draws, each of a whole step's share (``rollout.refill: batch``) or of as many prompts as groups are
missing (``missing``). A step still short after that is topped up with the dropped groups, in draw
order (zero advantage, so the batch keeps its shape and the update its micro-batches). Draws,
prompts, dropped groups and top-ups are counted in the step's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fadtq.scoring import JudgeStats, ScoredBatch


def informative_groups(totals: Sequence[float], group_size: int, tol: float = 1e-9) -> list[bool]:
    """For each consecutive group of ``group_size`` rewards: do they differ (max - min > ``tol``)?"""
    rewards = np.asarray(totals, dtype=float).reshape(-1, group_size)
    return [bool(spread > tol) for spread in np.ptp(rewards, axis=1)]


def choose_groups(flags: Sequence[Sequence[bool]], wanted: int) -> list[tuple[int, int]]:
    """``(draw, group)`` of the step's batch: informative groups in draw order up to ``wanted``,
    then, if too few, the uninformative ones in draw order."""
    order = [(d, g) for d, draw in enumerate(flags) for g in range(len(draw))]
    chosen = [(d, g) for d, g in order if flags[d][g]][:wanted]
    chosen += [(d, g) for d, g in order if not flags[d][g]][: wanted - len(chosen)]
    return chosen


def still_wanted(flags: Sequence[Sequence[bool]], wanted: int) -> int:
    """How many informative groups the draws so far lack: the size of a ``refill: missing`` draw,
    so a step short of one group generates one more group, not a whole batch."""
    return max(0, wanted - sum(sum(draw) for draw in flags))


# Counts that add up over ranks (summed by step_metrics.reduce_over_ranks; other metrics are averaged).
SUMMED_OVER_RANKS = ("sampling/prompts", "sampling/dropped_groups", "sampling/topped_up_groups")


@dataclass
class SamplingCounts:
    draws: int
    prompts: int  # prompts generated for in all draws, each a group
    dropped_groups: int  # uninformative groups seen in all draws
    topped_up_groups: int  # uninformative groups trained on because the draws ran out

    def metrics(self) -> dict[str, float]:
        return {f"sampling/{key}": float(value) for key, value in vars(self).items()}


def count(flags: Sequence[Sequence[bool]], chosen: Sequence[tuple[int, int]]) -> SamplingCounts:
    dropped = sum(not f for draw in flags for f in draw)
    return SamplingCounts(len(flags), sum(map(len, flags)), dropped, sum(not flags[d][g] for d, g in chosen))


def select_scored(batches: Sequence[ScoredBatch], rows: Sequence[tuple[int, int]]) -> ScoredBatch:
    """The ``(batch, row)`` rows of several scored batches as one; the judge counts are those of all
    batches (every one of those calls was made), the plugins' logs those of the first (the step's
    own prompts, unfiltered)."""
    names = batches[0].components
    judge = JudgeStats(failure_examples=[e for b in batches for e in b.judge.failure_examples])
    for batch in batches:
        for key in ("judged", "skipped", "failed", "calls", "perfect", "seconds"):
            setattr(judge, key, getattr(judge, key) + getattr(batch.judge, key))
        judge.counts.update(batch.judge.counts)
    return ScoredBatch(
        components={name: [batches[b].components[name][r] for b, r in rows] for name in names},
        total=[batches[b].total[r] for b, r in rows],
        logs=batches[0].logs,
        judge=judge,
    )
