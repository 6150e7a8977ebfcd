"""Per-token log-probabilities and entropy of sampled completions under a policy.

The training forward must describe the same distribution the rollout sampled from, or the policy
gradient is computed for a different policy. Three things make them equal here:

- the full sequence (left-padded prompt + right-padded completion) is scored with its attention
  mask and ``mm_token_type_ids`` for prompt *and* response: transformers 5.19 derives Qwen2.5-VL's
  3-D rotary positions from it, and without it they are wrong (about 1e-3 off);
- logits are divided by the sampling temperature;
- the tokens the rollout never samples (the vision control tokens) get probability zero, as
  ``suppress_tokens`` gave them during generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class ScoringInputs:
    """Everything the scoring forward needs for ``N`` rows of prompt + completion.

    ``sequences``/``attention_mask``/``mm_token_type_ids`` are ``(N, P + C)``; ``action_mask`` is
    ``(N, C)`` and marks the completion tokens that were sampled (through the first EOS).
    ``pixel_values`` holds the patches of all images of all rows in row order, ``image_grid_thw``
    one row per image, and ``images_per_row`` how many images each row has. ``rollout_logprobs``
    ``(N, C)``, when the engine reported them, are the sampler's own log-probabilities of the
    completion tokens (zero past the end): what the scoring forward should reproduce.
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    images_per_row: torch.Tensor
    rollout_logprobs: torch.Tensor | None = None

    def select(self, rows: Sequence[int]) -> ScoringInputs:
        """The inputs of ``rows`` only (for micro-batches), images and patches included."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        image_start = torch.cumsum(self.images_per_row, 0) - self.images_per_row
        patches = self.image_grid_thw.prod(dim=-1)
        patch_start = torch.cumsum(patches, 0) - patches
        images = [i for row in index.tolist() for i in range(image_start[row], image_start[row] + self.images_per_row[row])]
        patch_rows = [p for i in images for p in range(patch_start[i], patch_start[i] + patches[i])]
        return ScoringInputs(
            sequences=self.sequences[index],
            attention_mask=self.attention_mask[index],
            action_mask=self.action_mask[index],
            mm_token_type_ids=self.mm_token_type_ids[index],
            pixel_values=self.pixel_values[torch.as_tensor(patch_rows, dtype=torch.long)],
            image_grid_thw=self.image_grid_thw[torch.as_tensor(images, dtype=torch.long)],
            images_per_row=self.images_per_row[index],
            rollout_logprobs=None if self.rollout_logprobs is None else self.rollout_logprobs[index],
        )


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
    inputs: ScoringInputs,
    temperature: float = 1.0,
    suppress_token_ids: Sequence[int] = (),
    with_entropy: bool = False,
    gather_ids: Sequence[int] = (),
) -> TokenStats:
    """Log-probabilities (and optionally entropy) of each completion token under ``model``.

    ``model`` is anything called like a Hugging Face Qwen2.5-VL (the model itself, or a DeepSpeed
    engine wrapping it). Gradients flow when called outside ``torch.no_grad``.
    """
    completion_len = inputs.action_mask.shape[1]
    output = model(
        input_ids=inputs.sequences,
        attention_mask=inputs.attention_mask,
        mm_token_type_ids=inputs.mm_token_type_ids,
        pixel_values=inputs.pixel_values,
        image_grid_thw=inputs.image_grid_thw,
        use_cache=False,
    )
    # The logits at position t predict token t + 1: keep those that predict completion tokens.
    logits = output.logits[:, -completion_len - 1 : -1]
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
