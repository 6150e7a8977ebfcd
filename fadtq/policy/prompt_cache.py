"""Each distinct prompt runs through the model once; the rows that share it share its cache.

A group's rollouts have the same prompt: the question and both images, six in seven of a CPU-
default row's tokens. The sampler and the scoring forward therefore run each distinct prompt
once, keep its cache, and give every row a copy of its prompt's cache (``Cache.reorder_cache``:
attention layers' keys and values, linear-attention layers' states); only the completions run once
per row. The copies are made by indexing, so gradients from every row flow back into the shared
prompt (a family whose cache layers would overwrite the copies in place gives the prompt a cache of
its own, ``ModelFamily.new_cache``): log-probabilities and gradients equal those of the full forward
of each row (``tests/training/test_prompt_cache.py``), for a fraction of the work
(``bench/bench_prompt_cache.py``).

Positions are passed explicitly: a multimodal RoPE (Qwen's) derives its positions from the images of
the *whole* sequence, which a forward over the completions alone cannot see; plain positions count
a row's tokens from its first one after the left padding, as vLLM numbers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Cache

from fadtq.policy.family import family_of_model
from fadtq.policy.forward_batch import ForwardBatch


@dataclass
class PromptCache:
    """``last_logits`` ``(rows, vocab)``: the logits at each row's last prompt token (they predict the
    first completion token); ``cache``: each row's copy of its prompt's keys and values."""

    last_logits: torch.Tensor
    cache: Cache


def row_positions(model: torch.nn.Module, batch: ForwardBatch) -> torch.Tensor:
    """The rotary positions the model's own forward derives for the rows of ``batch`` (its family's
    rule): ``(..., rows, length)``."""
    return family_of_model(model).positions(model, batch.sequences, batch.attention_mask, batch.token_inputs,
                                            batch.images)


def run_prompts(model: torch.nn.Module, prompts: dict[str, torch.Tensor], positions: torch.Tensor,
                rows: torch.Tensor) -> PromptCache:
    """Run the distinct ``prompts`` (the forward's keyword arguments: tokens and images) at
    ``positions`` once, and copy the result to ``rows``: row ``i`` gets the cache of prompt ``rows[i]``."""
    empty = family_of_model(model).new_cache(model)
    output = model(**prompts, position_ids=positions, past_key_values=empty, use_cache=True, logits_to_keep=1)
    cache = output.past_key_values
    cache.reorder_cache(rows)
    return PromptCache(last_logits=output.logits[rows, -1], cache=cache)
