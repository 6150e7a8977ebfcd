"""How a step's global batch splits over ranks and micro-batches."""

from __future__ import annotations

from dataclasses import dataclass

from fadtq.errors import ConfigError
from fadtq.run_config import RunConfig


@dataclass
class StepPlan:
    world: int
    prompts_per_rank: int
    rollouts_per_rank: int
    micro_batch_size: int  # train.micro_batch_size, or the rollouts per rank when they are fewer
    micro_batches: int
    steps: int


def plan_steps(cfg: RunConfig, dataset_size: int, world: int) -> StepPlan:
    """How a step's global batch splits over ranks and micro-batches; errors name the keys."""
    r = cfg.rollout
    if r.prompts_per_step % world:
        raise ConfigError("rollout.prompts_per_step", f"{r.prompts_per_step} does not divide over the {world} ranks")
    per_rank = r.prompts_per_step // world
    rollouts = per_rank * r.group_size
    micro = min(cfg.train.micro_batch_size, rollouts)  # an upper bound: fewer rollouts make one micro-batch
    if rollouts % micro:
        raise ConfigError("train.micro_batch_size", f"{cfg.train.micro_batch_size} does not divide the {rollouts} "
                          "rollouts per rank per step (prompts_per_step / ranks * group_size)",
                          related=("rollout.group_size", "rollout.prompts_per_step"))
    per_epoch = dataset_size // r.prompts_per_step
    if per_epoch == 0:
        raise ConfigError("rollout.prompts_per_step", f"{r.prompts_per_step} exceeds the {dataset_size} training pairs")
    steps = per_epoch * cfg.train.epochs
    if cfg.train.max_steps is not None:
        steps = min(steps, cfg.train.max_steps)
    return StepPlan(world, per_rank, rollouts, micro, rollouts // micro, steps)
