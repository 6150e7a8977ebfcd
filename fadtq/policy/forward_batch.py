"""The tensors of a forward pass over prompt + completion rows, as every engine and the trainer
pass them around: one type from the sampler to the loss, so log-probabilities are computed for the
very sequences that were sampled."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from fadtq.policy.image_tensors import ImageTensors

if TYPE_CHECKING:
    from fadtq.policy.family import ModelFamily


@dataclass
class ForwardBatch:
    """The tensors of one forward pass over ``N`` rows of prompt + completion (the scoring forward
    of every loss, and the sampler's prompts with no completion yet).

    ``sequences``/``attention_mask`` are ``(N, P + C)``, and so is each of ``token_inputs``, the
    per-token inputs the family's forward reads beside them (Qwen's ``mm_token_type_ids``; zero over
    the completion); ``action_mask`` is ``(N, C)`` and marks the completion tokens that were sampled
    (through the first EOS). ``images`` holds the images of all rows in row order and
    ``images_per_row`` how many each row has. ``rollout_logprobs`` ``(N, C)``, when the engine
    reported them, are the sampler's own log-probabilities of the completion tokens (zero past the
    end): what the scoring forward should reproduce.
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor
    token_inputs: dict[str, torch.Tensor]
    images: ImageTensors
    images_per_row: torch.Tensor
    rollout_logprobs: torch.Tensor | None = None

    @property
    def prompt_length(self) -> int:
        return self.sequences.shape[1] - self.action_mask.shape[1]

    def select(self, rows: Sequence[int]) -> ForwardBatch:
        """The inputs of ``rows`` only (for micro-batches), images included."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        row_images = self._row_images()
        return ForwardBatch(
            sequences=self.sequences[index],
            attention_mask=self.attention_mask[index],
            action_mask=self.action_mask[index],
            token_inputs={key: value[index] for key, value in self.token_inputs.items()},
            images=self.images.select([i for row in index.tolist() for i in row_images[row]]),
            images_per_row=self.images_per_row[index],
            rollout_logprobs=None if self.rollout_logprobs is None else self.rollout_logprobs[index],
        )

    def model_inputs(self, family: ModelFamily, length: int | None = None) -> dict[str, torch.Tensor]:
        """The keyword arguments of ``family``'s forward over the first ``length`` tokens of every
        row (default: the prompt) and the rows' images."""
        length = self.prompt_length if length is None else length
        tokens = {"input_ids": self.sequences, "attention_mask": self.attention_mask, **self.token_inputs}
        return {key: value[:, :length] for key, value in tokens.items()} | family.image_kwargs(self.images)

    def distinct_prompts(self) -> tuple[list[int], torch.Tensor]:
        """The first row of each run of consecutive rows with the same prompt (tokens, padding and
        images), and for every row the number of its run: a group's rows form one run."""
        row_images = self._row_images()

        def same_prompt(a: int, b: int) -> bool:
            prompt = self.prompt_length
            return (torch.equal(self.sequences[a, :prompt], self.sequences[b, :prompt])
                    and torch.equal(self.attention_mask[a, :prompt], self.attention_mask[b, :prompt])
                    and len(row_images[a]) == len(row_images[b])
                    and all(self.images.same(i, j) for i, j in zip(row_images[a], row_images[b])))

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
        prompt_len = max(p.prompt_length for p in parts)
        completion_len = max(p.action_mask.shape[1] for p in parts)

        def pad(tensor: torch.Tensor, completion: int, value: int) -> torch.Tensor:
            prompt = tensor.shape[1] - completion
            return torch.nn.functional.pad(tensor, (prompt_len - prompt, completion_len - completion), value=value)

        def stacked(tensor_of, value: int) -> torch.Tensor:
            return torch.cat([pad(tensor_of(p), p.action_mask.shape[1], value) for p in parts])

        return cls(
            sequences=stacked(lambda p: p.sequences, pad_token_id),
            attention_mask=stacked(lambda p: p.attention_mask, 0),
            action_mask=torch.cat([torch.nn.functional.pad(p.action_mask, (0, completion_len - p.action_mask.shape[1]))
                                   for p in parts]),
            token_inputs={key: stacked(lambda p, key=key: p.token_inputs[key], 0) for key in parts[0].token_inputs},
            images=ImageTensors.cat([p.images for p in parts]),
            images_per_row=torch.cat([p.images_per_row for p in parts]),
            rollout_logprobs=None if any(p.rollout_logprobs is None for p in parts) else torch.cat(
                [torch.nn.functional.pad(p.rollout_logprobs, (0, completion_len - p.action_mask.shape[1])) for p in parts]),
        )

    def _row_images(self) -> list[range]:
        """Each row's images, as indices into ``images``."""
        counts = self.images_per_row.tolist()
        return [range(end - count, end) for end, count in zip(itertools.accumulate(counts), counts)]
