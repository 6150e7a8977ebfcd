"""Cheap extras: ``dr_grpo`` (A = R - group mean) and ``rloo`` (A = R - mean of the others)."""

from __future__ import annotations

from fadtq import formulas
from fadtq.api import AdvantageEstimator, hookimpl


def dr_grpo_advantages(rewards, groups):
    return formulas.group_centre(rewards, groups)


def rloo_advantages(rewards, groups):
    return formulas.leave_one_out(rewards, groups)


@hookimpl
def register_advantage_estimators():
    return [
        AdvantageEstimator("dr_grpo", dr_grpo_advantages, loss="policy_gradient",
                           description="R - group mean (no std scaling)"),
        AdvantageEstimator("rloo", rloo_advantages, loss="policy_gradient",
                           description="R - mean of the other rollouts of the group"),
    ]
