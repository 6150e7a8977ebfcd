"""Importance weights for rollouts sampled by another program than the trainer.

An engine that samples from a copy of the weights (vLLM) computes its log-probabilities with other
kernels, often in another precision: its distribution pi_sampler is close to, not equal to, the
trainer's pi_trainer. The policy-gradient estimate is for the trainer's policy only if each token
is weighted by pi_trainer / pi_sampler. Full weights have unbounded variance, so the field bounds
them (``train.rollout_correction``, the modes of TRL's ``vllm_importance_sampling_mode``):

* ``token_truncate``: w_t = min(r_t, C), r_t = exp(log pi_trainer(a_t) - log pi_sampler(a_t)) (TIS);
* ``token_mask``: w_t = r_t where r_t <= C, else 0 (the token leaves the gradient);
* ``sequence_truncate``: every token of a completion gets w = min(R, C), R = prod_t r_t;
* ``sequence_mask``: w = R where R <= C, else 0 (the whole completion leaves the gradient);
* ``none``: no weights (not ``off``: YAML reads that as false).

The weights carry no gradient; the losses multiply each token's policy term by them
(``LossInputs.weights``). Masked tokens still count in a token-mean's denominator, as in TRL;
``docs/training.md`` says where verl differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # every command validates the config: none pays for torch to read the modes
    import torch

MODES = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def importance_ratios(trainer_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor,
                      mode: str) -> torch.Tensor:
    """``(N, C)``: each token's ratio r_t (``token_*`` modes) or its completion's R (``sequence_*``)."""
    import torch

    log_ratio = torch.where(mask.bool(), trainer_logprobs.detach() - sampler_logprobs, 0.0)
    if mode.startswith("sequence"):
        log_ratio = log_ratio.sum(dim=1, keepdim=True).expand_as(log_ratio)
    return log_ratio.exp()


def correction_weights(trainer_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor,
                       mode: str, threshold: float) -> torch.Tensor | None:
    """``(N, C)`` weights for the completion tokens (``mask``; zero elsewhere), or None for ``none``."""
    import torch

    if mode == "none":
        return None
    ratio = importance_ratios(trainer_logprobs, sampler_logprobs, mask, mode)
    weights = ratio.clamp(max=threshold) if mode.endswith("truncate") else torch.where(ratio <= threshold, ratio, 0.0)
    return torch.where(mask.bool(), weights, 0.0)


def mismatch_metrics(trainer_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor,
                     mode: str, threshold: float) -> dict[str, float]:
    """How far the sampler is from the trainer on these tokens, and what the correction changed.

    ``mismatch/kl``: KL(pi_sampler || pi_trainer) estimated on the sampled tokens,
    mean(log pi_sampler - log pi_trainer); ``mismatch/k3_kl``: the same by the k3 estimator
    mean(r - log r - 1), never negative; ``mismatch/ppl_ratio``: the trainer's perplexity over the
    sampler's, per completion, averaged; ``mismatch/corrected_share``: the share of tokens whose
    ratio (or whose completion's, in a ``sequence_*`` mode) is above the threshold, so that the
    mode truncated or masked their weight (0 when ``none``)."""
    import torch

    mask = mask.bool()
    tokens = mask.sum().clamp(min=1)
    log_ratio = torch.where(mask, trainer_logprobs.detach() - sampler_logprobs, 0.0)
    per_sequence = log_ratio.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    corrected = 0.0 if mode == "none" else float(
        (mask & (importance_ratios(trainer_logprobs, sampler_logprobs, mask, mode) > threshold)).sum() / tokens)
    return {
        "mismatch/kl": float(-log_ratio.sum() / tokens),
        "mismatch/k3_kl": float(torch.where(mask, log_ratio.exp() - log_ratio - 1.0, 0.0).sum() / tokens),
        "mismatch/ppl_ratio": float((-per_sequence).exp().mean()),
        "mismatch/corrected_share": corrected,
    }
