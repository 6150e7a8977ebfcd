"""Per-token log-probabilities and entropy of sampled completions under a policy.

The training forward must describe the same distribution the rollout sampled from, or the policy
gradient is computed for a different policy. Three things make them equal here:

- the rotary positions come from the full sequence (left-padded prompt + right-padded completion),
  its attention mask and ``mm_token_type_ids`` for prompt *and* response, as Qwen2.5-VL derives
  them (any other positions are about 1e-3 off); each distinct prompt then runs once and the
  completions on its cache (:mod:`fadtq.training.prompt_cache`);
- logits are divided by the sampling temperature;
- the tokens the rollout never samples (the vision control tokens) get probability zero, as
  ``suppress_tokens`` gave them during generation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fadtq.training.prompt_cache import rope_positions, run_prompts


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

    @property
    def prompt_length(self) -> int:
        return self.sequences.shape[1] - self.action_mask.shape[1]

    def select(self, rows: Sequence[int]) -> ScoringInputs:
        """The inputs of ``rows`` only (for micro-batches), images and patches included."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        row_images, image_patches = self._row_images(), self._image_patches()
        images = [i for row in index.tolist() for i in row_images[row]]
        patch_rows = [p for i in images for p in image_patches[i]]
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

    def distinct_prompts(self) -> tuple[list[int], torch.Tensor]:
        """The first row of each run of consecutive rows with the same prompt (tokens, padding and
        images), and for every row the number of its run: a group's rows form one run."""
        row_images, image_patches = self._row_images(), self._image_patches()

        def pixels(image: int) -> torch.Tensor:
            return self.pixel_values[image_patches[image].start:image_patches[image].stop]

        def same_prompt(a: int, b: int) -> bool:
            prompt = self.prompt_length
            return (torch.equal(self.sequences[a, :prompt], self.sequences[b, :prompt])
                    and torch.equal(self.attention_mask[a, :prompt], self.attention_mask[b, :prompt])
                    and len(row_images[a]) == len(row_images[b])
                    and all(torch.equal(self.image_grid_thw[i], self.image_grid_thw[j])
                            and torch.equal(pixels(i), pixels(j)) for i, j in zip(row_images[a], row_images[b])))

        first, runs = [0], [0]
        for row in range(1, len(self.sequences)):
            if not same_prompt(row - 1, row):
                first.append(row)
            runs.append(len(first) - 1)
        return first, torch.as_tensor(runs, dtype=torch.long, device=self.sequences.device)

    def _row_images(self) -> list[range]:
        """Each row's images, as indices into ``image_grid_thw``."""
        counts = self.images_per_row.tolist()
        return [range(end - count, end) for end, count in zip(itertools.accumulate(counts), counts)]

    def _image_patches(self) -> list[range]:
        """Each image's patches, as indices into ``pixel_values``."""
        sizes = self.image_grid_thw.prod(dim=-1).tolist()
        return [range(end - size, end) for end, size in zip(itertools.accumulate(sizes), sizes)]


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


def completion_logits(model: torch.nn.Module, inputs: ScoringInputs) -> torch.Tensor:
    """The ``(N, C, vocab)`` logits that predict each completion token: each distinct prompt runs
    once (:mod:`fadtq.training.prompt_cache`), then every row's completion on its prompt's cache."""
    prompt_len = inputs.prompt_length
    first, runs = inputs.distinct_prompts()
    distinct = inputs.select(first)
    positions = rope_positions(model, inputs.sequences, inputs.mm_token_type_ids, inputs.image_grid_thw,
                               inputs.attention_mask)
    prompts = {"input_ids": distinct.sequences[:, :prompt_len],
               "attention_mask": distinct.attention_mask[:, :prompt_len],
               "mm_token_type_ids": distinct.mm_token_type_ids[:, :prompt_len],
               "pixel_values": distinct.pixel_values, "image_grid_thw": distinct.image_grid_thw}
    prompt = run_prompts(model, prompts, positions[:, first, :prompt_len], runs)
    completions = model(input_ids=inputs.sequences[:, prompt_len:], attention_mask=inputs.attention_mask,
                        position_ids=positions[:, :, prompt_len:], past_key_values=prompt.cache, use_cache=True)
    # The logits at position t predict token t + 1: the last prompt token's predict the first one.
    return torch.cat([prompt.last_logits.unsqueeze(1), completions.logits[:, :-1]], dim=1)
