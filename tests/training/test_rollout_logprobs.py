"""Rollout on the tiny model and the scoring forward: same sequences, same log-probabilities."""

from __future__ import annotations

import pytest
import torch

from fadtq.errors import FadtqError
from fadtq.generation.engine import SamplingParams
from fadtq.policy.logprobs import completion_logprobs

PARAMS = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=24, return_logprobs=True)


@pytest.fixture
def rollout(engine, two_prompts):
    torch.manual_seed(0)
    return engine.generate(two_prompts, 3, PARAMS)


def test_groups_rows_and_masks_line_up(rollout, engine):
    scoring = rollout.scoring
    assert [len(g) for g in rollout.groups] == [3, 3]
    assert [c.row for g in rollout.groups for c in g] == list(range(6))
    completion_len = scoring.action_mask.shape[1]
    for group in rollout.groups:
        assert len({tuple(c.prompt_ids) for c in group}) == 1
        for c in group:
            assert scoring.sequences[c.row, -completion_len:][: len(c.completion_ids)].tolist() == c.completion_ids
            assert scoring.action_mask[c.row].sum() == len(c.completion_ids)
            assert c.finished == (c.completion_ids[-1] in engine.eos_token_ids)
            assert c.finished or len(c.completion_ids) == PARAMS.max_new_tokens
    assert scoring.sequences.shape == scoring.attention_mask.shape == scoring.token_inputs["mm_token_type_ids"].shape
    assert scoring.images.per_image["image_grid_thw"].shape == (12, 3) and scoring.images_per_row.tolist() == [2] * 6


def test_scoring_forward_matches_sampling_logprobs(rollout, engine):
    with torch.no_grad():
        stats = completion_logprobs(
            engine.model, rollout.scoring, PARAMS.temperature, engine.suppressed_token_ids, with_entropy=True
        )
    mask = rollout.scoring.action_mask.bool()
    assert torch.allclose(stats.logprobs, rollout.logprobs, atol=1e-5)
    assert (stats.logprobs[mask] < 0).all() and (stats.logprobs[~mask] == 0).all()
    vocab = engine.model.config.text_config.vocab_size
    assert (stats.entropy[mask] > 0).all() and (stats.entropy[mask] <= torch.log(torch.tensor(float(vocab)))).all()


def test_micro_batch_selection_scores_like_the_full_batch(rollout, engine):
    with torch.no_grad():
        full = completion_logprobs(engine.model, rollout.scoring, PARAMS.temperature, engine.suppressed_token_ids)
        part = completion_logprobs(
            engine.model, rollout.scoring.select([4, 1]), PARAMS.temperature, engine.suppressed_token_ids
        )
    assert torch.allclose(part.logprobs, full.logprobs[[4, 1]], atol=1e-5)


def test_vision_control_tokens_are_never_sampled(engine, two_prompts):
    """Even a policy that puts almost all its mass on them samples none, and scoring still works."""
    boosted = torch.as_tensor(engine.suppressed_token_ids)

    def boost(_module, _inputs, logits):
        return logits.index_add(-1, boosted, torch.full((*logits.shape[:-1], len(boosted)), 1e4))

    engine.model.lm_head.register_forward_hook(boost)
    torch.manual_seed(1)
    result = engine.generate(two_prompts, 2, SamplingParams(max_new_tokens=8))
    sampled = {t for g in result.groups for c in g for t in c.completion_ids}
    assert sampled and not sampled & set(engine.suppressed_token_ids)
    with torch.no_grad():
        stats = completion_logprobs(engine.model, result.scoring, 1.0, engine.suppressed_token_ids)
    assert torch.isfinite(stats.logprobs).all()


def test_no_prompts_is_an_error(engine):
    with pytest.raises(FadtqError, match="rollout"):
        engine.generate([], 2, PARAMS)
