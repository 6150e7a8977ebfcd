"""``relevance``: the judge's 0-3 relevance score of the reasoning, normalised to [0, 1]."""

from __future__ import annotations

from fadtq.api import RewardFunction, hookimpl
from fadtq.judges.protocol import judged_reward


def relevance_reward(rollouts, ctx):
    return judged_reward(rollouts, ctx, "relevance")


@hookimpl
def register_rewards():
    return [RewardFunction("relevance", relevance_reward, needs_judge=True,
                           description="judge: reasoning compares the images and supports the answer (0-3, normalised)")]
