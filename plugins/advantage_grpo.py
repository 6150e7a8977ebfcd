"""``grpo``: standardised group advantages for the clipped-ratio loss with a KL penalty to a
frozen reference model (the baseline of the paper's Table 3)."""

from __future__ import annotations

from fadtq import formulas
from fadtq.api import AdvantageEstimator, hookimpl


def grpo_advantages(rewards, groups, eps: float = formulas.EPS, ddof: int = 0):
    return formulas.group_standardise(rewards, groups, eps=eps, ddof=ddof)


@hookimpl
def register_advantage_estimators():
    return [AdvantageEstimator("grpo", grpo_advantages, loss="clipped_ratio",
                               description="(R - mean) / (std + eps) per group; clipped ratio + KL to a reference",
                               check_options=formulas.standardise_option_problems)]
