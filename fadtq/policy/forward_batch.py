"""The tensors of a forward pass over prompt + completion rows, as every engine and the trainer
pass them around: one type from the sampler to the loss, so log-probabilities are computed for the
very sequences that were sampled."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class ForwardBatch:
    """The tensors of one forward pass over ``N`` rows of prompt + completion (the scoring forward
    of every loss, and the sampler's prompts with no completion yet).

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

    def select(self, rows: Sequence[int]) -> ForwardBatch:
        """The inputs of ``rows`` only (for micro-batches), images and patches included."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        row_images, image_patches = self._row_images(), self._image_patches()
        images = [i for row in index.tolist() for i in row_images[row]]
        patch_rows = [p for i in images for p in image_patches[i]]
        return ForwardBatch(
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

    @classmethod
    def concat(cls, parts: Sequence[ForwardBatch], pad_token_id: int) -> ForwardBatch:
        """Stack the batches of several draws: prompts left-padded and completions right-padded
        to the longest, so every row keeps the layout ``[padding, prompt | completion, padding]``."""
        if len(parts) == 1:
            return parts[0]
        prompt_len = max(p.sequences.shape[1] - p.action_mask.shape[1] for p in parts)
        completion_len = max(p.action_mask.shape[1] for p in parts)

        def pad(tensor: torch.Tensor, completion: int, value: int) -> torch.Tensor:
            prompt = tensor.shape[1] - completion
            return torch.nn.functional.pad(tensor, (prompt_len - prompt, completion_len - completion), value=value)

        return cls(
            sequences=torch.cat([pad(p.sequences, p.action_mask.shape[1], pad_token_id) for p in parts]),
            attention_mask=torch.cat([pad(p.attention_mask, p.action_mask.shape[1], 0) for p in parts]),
            action_mask=torch.cat([torch.nn.functional.pad(p.action_mask, (0, completion_len - p.action_mask.shape[1]))
                                   for p in parts]),
            mm_token_type_ids=torch.cat([pad(p.mm_token_type_ids, p.action_mask.shape[1], 0) for p in parts]),
            pixel_values=torch.cat([p.pixel_values for p in parts]),
            image_grid_thw=torch.cat([p.image_grid_thw for p in parts]),
            images_per_row=torch.cat([p.images_per_row for p in parts]),
            rollout_logprobs=None if any(p.rollout_logprobs is None for p in parts) else torch.cat(
                [torch.nn.functional.pad(p.rollout_logprobs, (0, completion_len - p.action_mask.shape[1])) for p in parts]),
        )

    def _row_images(self) -> list[range]:
        """Each row's images, as indices into ``image_grid_thw``."""
        counts = self.images_per_row.tolist()
        return [range(end - count, end) for end, count in zip(itertools.accumulate(counts), counts)]

    def _image_patches(self) -> list[range]:
        """Each image's patches, as indices into ``pixel_values``."""
        sizes = self.image_grid_thw.prod(dim=-1).tolist()
        return [range(end - size, end) for end, size in zip(itertools.accumulate(sizes), sizes)]
