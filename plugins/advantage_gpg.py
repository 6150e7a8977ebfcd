"""``gpg``: the paper's Group Policy Gradient advantage, A = (R - mu) / (sigma + eps) per group.

Optimised with the plain policy-gradient loss (no ratio, no clip, no reference model, no KL).
``adjust_gd=True`` multiplies by the GPG paper's alpha = B / (B - M) (off by default; see
``fadtq.formulas.gpg_alpha`` for how it differs from verl's definition).
"""

from __future__ import annotations

from fadtq import formulas
from fadtq.api import AdvantageEstimator, hookimpl


def gpg_advantages(rewards, groups, eps: float = formulas.EPS, ddof: int = 0, adjust_gd: bool = False):
    advantages = formulas.group_standardise(rewards, groups, eps=eps, ddof=ddof)
    return advantages * formulas.gpg_alpha(rewards, groups) if adjust_gd else advantages


@hookimpl
def register_advantage_estimators():
    return [AdvantageEstimator("gpg", gpg_advantages, loss="policy_gradient",
                               description="(R - mean) / (std + eps) per group; plain policy gradient, no reference",
                               check_options=formulas.standardise_option_problems)]
