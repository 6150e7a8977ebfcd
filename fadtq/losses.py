"""The built-in policy losses, registered by ``fadtq_plugins.loss_functions``; an advantage estimator
names the loss its advantages are for.

Losses reduce per-token values with ``LossInputs.reduce``, over the completion tokens of the
micro-batch (``mask``), as ``train.loss_agg_mode`` says (``AGGREGATIONS``): ``token-mean`` is the
reduction the GPG paper and DAPO use; ``seq-mean-token-sum`` is Dr. GRPO's, which does not divide a
sequence's gradient by its length. ``logprobs`` carries gradients; the others do not.

* ``policy_gradient`` (GPG): L = -mean_t(w_t A log pi(a_t)). No ratio, no clip, no reference.
* ``clipped_ratio`` (GRPO): L = -mean_t(w_t min(rho A, clip(rho, 1 - eps, 1 + eps) A)) + beta KL,
  rho = exp(log pi - log pi_old), KL the k3 estimator exp(d) - d - 1 with d = log pi_ref - log pi.

w_t are the rollout correction's importance weights (``fadtq/rollout_correction.py``) where the
sampler is not the trainer, and 1 elsewhere (no weights: the loss is the formula without them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fadtq.errors import FadtqError

if TYPE_CHECKING:  # tensor methods only: every command loads the loss plugin, none pays for torch
    import torch


def token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over every completion token of the micro-batch."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def seq_mean_token_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over sequences of each sequence's token sum: every token weighs the same whatever
    its sequence's length, so a one-token decision is not diluted by the reasoning before it."""
    return (values * mask.to(values.dtype)).sum(dim=1).mean()


def seq_mean_token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over sequences of each sequence's token mean (the original GRPO's reduction)."""
    mask = mask.to(values.dtype)
    return ((values * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)).mean()


AGGREGATIONS = {"token-mean": token_mean, "seq-mean-token-sum": seq_mean_token_sum,
                "seq-mean-token-mean": seq_mean_token_mean}


@dataclass
class LossInputs:
    logprobs: torch.Tensor  # (N, C), with grad
    advantages: torch.Tensor  # (N,)
    mask: torch.Tensor  # (N, C), 1 on completion tokens
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    agg_mode: str = "token-mean"  # a key of AGGREGATIONS (train.loss_agg_mode)
    weights: torch.Tensor | None = None  # (N, C) rollout-correction weights, no gradient; None: none

    def reduce(self, values: torch.Tensor) -> torch.Tensor:
        """Per-token ``values`` (N, C) reduced to a scalar over the completion tokens."""
        return AGGREGATIONS[self.agg_mode](values, self.mask)

    def corrected(self, values: torch.Tensor) -> torch.Tensor:
        """Per-token policy terms weighted by the rollout correction (unchanged without weights);
        a penalty such as the KL to a reference is not weighted."""
        return values if self.weights is None else values * self.weights


def policy_gradient(x: LossInputs, **_: float) -> tuple[torch.Tensor, dict[str, float]]:
    loss = -x.reduce(x.corrected(x.logprobs * x.advantages.unsqueeze(1)))
    return loss, {"pg_loss": loss.item()}


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    diff = ref_logprobs - logprobs
    return diff.exp() - diff - 1.0


def clipped_ratio(x: LossInputs, clip_eps: float = 0.2, kl_coef: float = 0.04, **_: float) -> tuple[torch.Tensor, dict[str, float]]:
    if x.old_logprobs is None:
        raise FadtqError("clipped_ratio loss needs the rollout's log-probabilities (old_logprobs)")
    ratio = (x.logprobs - x.old_logprobs).exp()
    advantages = x.advantages.unsqueeze(1)
    surrogate = (ratio * advantages).minimum(ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages)
    pg_loss = -x.reduce(x.corrected(surrogate))
    metrics = {"pg_loss": pg_loss.item(), "clip_frac": token_mean(((ratio - 1).abs() > clip_eps).float(), x.mask).item()}
    if x.ref_logprobs is None or kl_coef == 0:
        return pg_loss, metrics
    kl = x.reduce(k3_kl(x.logprobs, x.ref_logprobs))
    metrics["kl"] = kl.item()
    return pg_loss + kl_coef * kl, metrics

