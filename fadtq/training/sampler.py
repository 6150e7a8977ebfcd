"""A step's rollouts: this rank's prompts, a group of completions per prompt, scored; with dynamic
sampling, more prompts drawn until the step has enough informative groups. Either way one call,
:meth:`Sampler.sample`, returns one :class:`StepBatch`."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from fadtq.data.dataset import PairDataset
from fadtq.generation.engine import RolloutEngine, RolloutPrompt, RolloutResult, SamplingParams
from fadtq.policy.forward_batch import ForwardBatch
from fadtq.rollout import Rollout
from fadtq.run_config import RolloutConfig
from fadtq.scoring import ScoredBatch, Scorer
from fadtq.training.dynamic_sampling import choose_groups, count, informative_groups, select_scored, still_wanted
from fadtq.training.step_metrics import StepTimer, accuracy
from fadtq.training.step_order import epoch_order
from fadtq.training.step_plan import StepPlan


@dataclass
class StepBatch:
    """The rollouts a step trains on, scored, with the tensors of their forward pass (row ``i`` of
    ``forward`` is ``rollouts[i]``); ``metrics``: what the sampling counted."""

    rollouts: list[Rollout]
    scored: ScoredBatch
    forward: ForwardBatch
    lengths: list[int]  # sampled completion tokens per rollout
    metrics: dict[str, float]

    @property
    def groups(self) -> list[str]:
        return [r.group for r in self.rollouts]


@dataclass
class Draw:
    """One round of generation and scoring within a step (several with dynamic sampling)."""

    result: RolloutResult
    rollouts: list[Rollout]
    scored: ScoredBatch

    def batch(self, metrics: dict[str, float]) -> StepBatch:
        lengths = [len(c.completion_ids) for group in self.result.groups for c in group]
        return StepBatch(self.rollouts, self.scored, self.result.scoring, lengths, metrics)


@dataclass
class Sampler:
    """Draws a step's rollouts on this rank. The data order is one seeded permutation per epoch
    (``fadtq.training.step_order``), each rank taking its slice of the step's prompts."""

    rollout: RolloutConfig
    seed: int
    dataset: PairDataset  # the training pairs
    plan: StepPlan
    rank: int
    engine: RolloutEngine
    scorer: Scorer
    all_reduce_max: Callable[[float], float]  # the maximum over the ranks
    timer: StepTimer

    def __post_init__(self) -> None:
        self.params = SamplingParams.of(self.rollout, return_logprobs=self.engine.samples_from_copy)

    def sample(self, step: int) -> StepBatch:
        first = self.draw(step, 0, self.step_pairs(step))
        return self.resample(step, first) if self.rollout.dynamic_sampling else first.batch({})

    def step_pairs(self, step: int) -> list:
        per_step = self.rollout.prompts_per_step
        per_epoch = len(self.dataset) // per_step
        order = epoch_order(self.dataset.labels, self.seed, step // per_epoch, self.rollout.class_balanced)
        start = (step % per_epoch) * per_step + self.rank * self.plan.prompts_per_rank
        return [self.dataset[i] for i in order[start:start + self.plan.prompts_per_rank]]

    def refill_pairs(self, step: int, draw: int, size: int) -> list:
        """``size`` extra prompts for dynamic sampling: a seeded draw per (step, draw, rank), so a
        resumed run draws the same ones."""
        order = random.Random(f"{self.seed}:refill:{step}:{draw}:{self.rank}")
        return [self.dataset[i] for i in order.sample(range(len(self.dataset)), size)]

    def draw(self, step: int, number: int, pairs: list) -> Draw:
        """Generate a group per prompt and score it."""
        with self.timer.phase("generate"):
            result = self.engine.generate([RolloutPrompt(p.ref_image, p.test_image, p.messages) for p in pairs],
                                          self.rollout.group_size, self.params)
        tag = f"{step}" if number == 0 else f"{step}+{number}"
        rollouts = [
            Rollout(id=f"{tag}:{pair.id}:{k}", group=f"{tag}:{pair.id}", prompt=pair.prompt,
                    completion=c.text, label=pair.label, category=pair.category, ref_image=pair.ref_path,
                    test_image=pair.test_path)
            for pair, group in zip(pairs, result.groups) for k, c in enumerate(group)
        ]
        with self.timer.phase("score"):
            scored = self.scorer.score(rollouts)
        return Draw(result, rollouts, scored)

    def resample(self, step: int, first: Draw) -> StepBatch:
        """Dynamic sampling: the informative groups of up to ``1 + max_draws`` draws, each extra draw
        as large as the number of groups still missing on this rank (``rollout.refill: missing``) or,
        on every rank while any is short, as large as the first (``batch``); topped up with dropped
        groups when the draws run out."""
        wanted = self.plan.prompts_per_rank
        draws, flags = [first], [informative_groups(first.scored.total, self.rollout.group_size)]
        for number in range(1, self.rollout.max_draws + 1):
            short = still_wanted(flags, wanted)
            if self.all_reduce_max(float(short)) <= 0:  # every rank takes part in each round
                break
            size = short if self.rollout.refill == "missing" else wanted
            if size:
                draws.append(self.draw(step, number, self.refill_pairs(step, number, size)))
                flags.append(informative_groups(draws[-1].scored.total, self.rollout.group_size))
        chosen = sorted(choose_groups(flags, wanted))
        metrics = count(flags, chosen).metrics() | {"sampling/first_draw_accuracy": accuracy(first.rollouts)}
        return self.gather(draws, chosen, metrics)

    def gather(self, draws: list[Draw], chosen: list[tuple[int, int]], metrics: dict[str, float]) -> StepBatch:
        """The ``(draw, group)`` groups of ``chosen`` as one batch."""
        size = self.rollout.group_size
        rows = [(d, g * size + k) for d, g in chosen for k in range(size)]
        forward = ForwardBatch.concat([draws[d].result.scoring.select([r for dd, r in rows if dd == d])
                                       for d in sorted({d for d, _ in rows})], self.engine.pad_token_id)
        return StepBatch(rollouts=[draws[d].rollouts[r] for d, r in rows],
                         scored=select_scored([d.scored for d in draws], rows), forward=forward,
                         lengths=[len(draws[d].result.groups[r // size][r % size].completion_ids) for d, r in rows],
                         metrics=metrics)
