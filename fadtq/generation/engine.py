"""What every generation engine implements, and what it is given and returns.

A generation engine samples a group of completions per (reference image, test image, question)
prompt. It is a replaceable part of the trainer, and evaluation and pretraining use it too:
:class:`RolloutEngine` is what they rely on. Besides the completions an engine returns the exact
inputs of the scoring forward (:class:`~fadtq.training.logprobs.ScoringInputs`), so that
log-probabilities are computed for the very sequences that were sampled.

The vision control tokens (:data:`VISION_CONTROL_TOKENS`) are never sampled: a sampled
``<|image_pad|>`` has no image features behind it and the scoring forward fails ("Image features
and image tokens do not match").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image

from fadtq.training.logprobs import ScoringInputs

VISION_CONTROL_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


@dataclass(frozen=True)
class RolloutPrompt:
    """One question about a (reference, test) image pair, as chat messages with two image parts."""

    ref_image: Image.Image
    test_image: Image.Image
    messages: list[dict]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    # The first token after <answer>, and the reasoning up to </think>, drawn with these top-p instead
    # (fadtq/generation/span_top_p.py); None: top_p. Engines whose factory does not honour them are
    # refused them before a run starts.
    answer_top_p: float | None = None
    reasoning_top_p: float | None = None
    max_new_tokens: int = 128
    # Also return the sampling-time log-probabilities: costs (rows x new tokens x vocab) floats.
    return_logprobs: bool = False
    # Greedy decoding (evaluation): temperature and top_p are then ignored.
    greedy: bool = False


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
    scoring: ScoringInputs

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
