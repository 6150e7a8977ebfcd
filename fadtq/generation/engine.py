"""What every generation engine implements, and what it is given and returns.

A generation engine samples a group of completions per (reference image, test image, question)
prompt. It is a replaceable part of the trainer, and evaluation and pretraining use it too:
:class:`RolloutEngine` is what they rely on. Besides the completions an engine returns the exact
inputs of the scoring forward (:class:`~fadtq.policy.forward_batch.ForwardBatch`), so that
log-probabilities are computed for the very sequences that were sampled.

The vision control tokens (``ModelFamily.vision_control_tokens``) are never sampled: a sampled
``<|image_pad|>`` has no image features behind it and the scoring forward fails ("Image features
and image tokens do not match").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

import torch
from PIL import Image

from fadtq.generation.sampling import Sampling
from fadtq.policy.forward_batch import ForwardBatch

@dataclass(frozen=True)
class RolloutPrompt:
    """One question about a (reference, test) image pair, as chat messages with two image parts."""

    ref_image: Image.Image
    test_image: Image.Image
    messages: list[dict]


@dataclass(frozen=True)
class SamplingParams(Sampling):
    """The run's :class:`~fadtq.generation.sampling.Sampling` and what one call adds to it."""

    # Also return the sampling-time log-probabilities: costs (rows x new tokens x vocab) floats.
    return_logprobs: bool = False
    # Greedy decoding (evaluation): temperature and top_p are then ignored.
    greedy: bool = False

    @classmethod
    def of(cls, sampling: Sampling, **switches: bool) -> SamplingParams:
        """``sampling``'s settings (the config's ``rollout`` section, say) with ``switches``."""
        return cls(**{f.name: getattr(sampling, f.name) for f in fields(Sampling)}, **switches)


@dataclass
class Completion:
    """One sampled completion; ``row`` is its row in :attr:`RolloutResult.scoring`."""

    row: int
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    finished: bool


@dataclass
class RolloutResult:
    """``groups[i]`` holds the completions of prompt ``i``; rows are ordered prompt by prompt."""

    groups: list[list[Completion]]
    scoring: ForwardBatch

    @property
    def logprobs(self) -> torch.Tensor | None:
        """The sampler's log-probabilities (rows x completion length, zero past the end), when asked for."""
        return self.scoring.rollout_logprobs


class RolloutEngine(Protocol):
    suppressed_token_ids: tuple[int, ...]
    pad_token_id: int
    # True when the engine samples from its own copy of the weights (vLLM): the trainer then asks it
    # for the sampled tokens' log-probabilities and logs how far its own forward is from them.
    samples_from_copy: bool

    def generate(self, prompts: Sequence[RolloutPrompt], n_samples: int, params: SamplingParams) -> RolloutResult:
        """Sample ``n_samples`` completions for each prompt."""
        ...

    def weights_updated(self) -> None:
        """The policy's weights changed (an optimizer step, a resume): sample from the new ones from
        now on. An engine that samples from a copy of the weights reloads it here."""
        ...
