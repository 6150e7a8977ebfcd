"""The built-in policy losses (formulas in ``fadtq.losses``).

* ``policy_gradient`` (GPG): no ratio, no clip, no reference model.
* ``clipped_ratio`` (GRPO): clipped importance ratio against the rollout policy, plus a KL
  penalty to a frozen reference model.
"""

from __future__ import annotations

from fadtq.api import Loss, hookimpl
from fadtq.losses import clipped_ratio, policy_gradient


@hookimpl
def register_losses() -> list[Loss]:
    return [
        Loss("policy_gradient", policy_gradient, description="-mean_t(A log pi); no ratio, no clip, no reference"),
        Loss("clipped_ratio", clipped_ratio, needs_old_logprobs=True, needs_reference=True,
             description="PPO-style clipped ratio + kl_coef * KL(k3) to a frozen reference"),
    ]
