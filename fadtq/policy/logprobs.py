"""Per-token log-probabilities and entropy of sampled completions under a policy.

The training forward must describe the same distribution the rollout sampled from, or the policy
gradient is computed for a different policy. Three things make them equal here:

- the rotary positions come from the full sequence (left-padded prompt + right-padded completion)
  and its attention mask, as the model family derives them (Qwen's multimodal RoPE from the
  images and ``mm_token_type_ids`` too; any other positions are about 1e-3 off); each distinct
  prompt then runs once and the
  completions on its cache (:mod:`fadtq.policy.prompt_cache`);
- logits are divided by the sampling temperature;
- the tokens the rollout never samples (the vision control tokens) get probability zero, as
  ``suppress_tokens`` gave them during generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fadtq.policy.family import family_of_model
from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.prompt_cache import row_positions, run_prompts


@dataclass
class TokenStats:
    """``logprobs`` and ``entropy`` are ``(N, C)``, zero where ``action_mask`` is zero; ``gathered``
    ``(N, C, K)`` holds the log-probabilities of the ``gather_ids`` tokens at every position."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None
    gathered: torch.Tensor | None = None


def token_distribution(
    logits: torch.Tensor, temperature: float, suppress_token_ids: Sequence[int] = ()
) -> torch.Tensor:
    """Log-softmax of the logits the sampler used: tempered, suppressed tokens at -inf."""
    logits = logits.float() / temperature
    if suppress_token_ids:
        logits = logits.index_fill(-1, torch.as_tensor(list(suppress_token_ids), device=logits.device), float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def completion_logprobs(
    model: torch.nn.Module,
    inputs: ForwardBatch,
    temperature: float = 1.0,
    suppress_token_ids: Sequence[int] = (),
    with_entropy: bool = False,
    gather_ids: Sequence[int] = (),
) -> TokenStats:
    """Log-probabilities (and optionally entropy) of each completion token under ``model``.

    ``model`` is a Hugging Face model of a supported family (the model itself, or a DeepSpeed
    engine wrapping it). Gradients flow when called outside ``torch.no_grad``.
    """
    completion_len = inputs.action_mask.shape[1]
    logits = completion_logits(model, inputs)
    log_dist = token_distribution(logits, temperature, suppress_token_ids)
    targets = inputs.sequences[:, -completion_len:]
    mask = inputs.action_mask.bool()
    zero = log_dist.new_zeros(())
    # where, not a product: a padded position may hold a suppressed token, and -inf * 0 is nan.
    logprobs = torch.where(mask, log_dist.gather(-1, targets.unsqueeze(-1)).squeeze(-1), zero)
    entropy = None
    if with_entropy:
        entropy = torch.where(mask, -(log_dist.exp() * log_dist.nan_to_num(neginf=0.0)).sum(-1), zero)
    gathered = log_dist[..., list(gather_ids)] if gather_ids else None
    return TokenStats(logprobs=logprobs, entropy=entropy, gathered=gathered)


def completion_logits(model: torch.nn.Module, inputs: ForwardBatch) -> torch.Tensor:
    """The ``(N, C, vocab)`` logits that predict each completion token: each distinct prompt runs
    once (:mod:`fadtq.policy.prompt_cache`), then every row's completion on its prompt's cache.

    A model training with gradient checkpointing keeps no cache in its layers (transformers drops
    it, since the backward pass would replay the cache's update): each row's whole sequence then
    runs in one forward, which gives the same logits."""
    prompt_len = inputs.prompt_length
    positions = row_positions(model, inputs)
    if checkpointing(model):
        full = model(**inputs.model_inputs(family_of_model(model), inputs.sequences.shape[1]), position_ids=positions,
                     use_cache=False, logits_to_keep=inputs.action_mask.shape[1] + 1)
        return full.logits[:, :-1]
    first, runs = inputs.distinct_prompts()
    distinct = inputs.select(first)
    prompt = run_prompts(model, distinct.model_inputs(family_of_model(model)), positions[..., first, :prompt_len], runs)
    completions = model(input_ids=inputs.sequences[:, prompt_len:], attention_mask=inputs.attention_mask,
                        position_ids=positions[..., prompt_len:], past_key_values=prompt.cache, use_cache=True)
    # The logits at position t predict token t + 1: the last prompt token's predict the first one.
    return torch.cat([prompt.last_logits.unsqueeze(1), completions.logits[:, :-1]], dim=1)


def checkpointing(model: torch.nn.Module) -> bool:
    """Whether the model's layers run with gradient checkpointing now (training mode)."""
    model = getattr(model, "module", model)
    return model.training and getattr(model, "is_gradient_checkpointing", False)
