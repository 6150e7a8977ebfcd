"""``conciseness``: the judge's 0-3 conciseness score of the reasoning, normalised to [0, 1]."""

from __future__ import annotations

from fadtq.api import RewardFunction, hookimpl
from fadtq.judges.protocol import judged_reward


def conciseness_reward(rollouts, ctx):
    return judged_reward(rollouts, ctx, "conciseness")


@hookimpl
def register_rewards():
    return [RewardFunction("conciseness", conciseness_reward, needs_judge=True,
                           description="judge: reasoning free of redundancy (0-3, normalised)")]
