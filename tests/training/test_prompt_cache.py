"""Each distinct prompt runs once: the results equal the full forward of every row, in every model family."""

from __future__ import annotations

import pytest
import torch

from fadtq.generation import batch
from fadtq.generation.engine import SamplingParams
from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.logprobs import completion_logprobs, token_distribution

PARAMS = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=16, return_logprobs=True)


@pytest.fixture
def engine(family_engine):
    """Every test here runs on each family's tiny model."""
    return family_engine


@pytest.fixture
def scoring(engine, two_prompts) -> ForwardBatch:
    torch.manual_seed(0)
    return engine.generate(two_prompts, 3, PARAMS).scoring


def full_forward_logprobs(model, inputs: ForwardBatch, suppress) -> torch.Tensor:
    """The reference: every row's whole sequence in one forward, as the model runs it."""
    completion_len = inputs.action_mask.shape[1]
    logits = model(input_ids=inputs.sequences, attention_mask=inputs.attention_mask,
                   mm_token_type_ids=inputs.mm_token_type_ids, pixel_values=inputs.pixel_values,
                   image_grid_thw=inputs.image_grid_thw, use_cache=False).logits[:, -completion_len - 1:-1]
    picked = token_distribution(logits, PARAMS.temperature, suppress).gather(
        -1, inputs.sequences[:, -completion_len:].unsqueeze(-1)).squeeze(-1)
    return torch.where(inputs.action_mask.bool(), picked, picked.new_zeros(()))


def gradients(model, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_a_groups_rows_form_one_run_and_prompts_apart_stay_apart(scoring):
    first, runs = scoring.distinct_prompts()
    assert first == [0, 3] and runs.tolist() == [0, 0, 0, 1, 1, 1]
    swapped = scoring.select([0, 3, 1, 4])  # equal prompts that are not neighbours are not merged
    assert swapped.distinct_prompts()[0] == [0, 1, 2, 3]


def test_the_same_tokens_with_other_images_are_another_prompt(scoring):
    first_rows = scoring.select([0, 1])
    first_rows.pixel_values = first_rows.pixel_values.clone()
    patches_of_row_0 = int(first_rows.image_grid_thw[:2].prod(dim=-1).sum())
    first_rows.pixel_values[patches_of_row_0:] += 0.5  # row 1's images change, its tokens do not
    assert first_rows.distinct_prompts()[0] == [0, 1]


def test_scoring_on_the_shared_prompt_equals_the_full_forward(engine, scoring):
    suppress = engine.suppressed_token_ids
    shared = completion_logprobs(engine.model, scoring, PARAMS.temperature, suppress).logprobs
    reference = full_forward_logprobs(engine.model, scoring, suppress)
    assert scoring.action_mask.sum() > 6 and torch.allclose(shared, reference, atol=1e-5)
    assert torch.allclose(shared, scoring.rollout_logprobs, atol=1e-5)


def test_gradients_through_the_shared_prompt_equal_the_full_forwards(engine, scoring):
    """The cache copies pass every row's gradient back into its prompt, vision tower included."""
    suppress = engine.suppressed_token_ids
    weights = torch.linspace(-1.0, 1.0, scoring.action_mask.numel()).view_as(scoring.action_mask)
    shared_logprobs = completion_logprobs(engine.model, scoring, 1.0, suppress).logprobs
    shared = gradients(engine.model, (weights * shared_logprobs).sum())
    reference = gradients(engine.model, (weights * full_forward_logprobs(engine.model, scoring, suppress)).sum())
    assert shared.keys() == reference.keys() and any("visual" in name for name in shared)
    for name, grad in reference.items():
        assert torch.allclose(shared[name], grad, atol=1e-5, rtol=1e-4), name


def test_sampling_from_the_shared_prompt_draws_what_full_prompts_draw(engine, two_prompts):
    """Same seed, same tokens and logits as ``generate`` on every row's full prompt."""
    inputs = batch.repeat_rows(batch.prompt_inputs(engine.processor, two_prompts, torch.device("cpu")), 3)
    torch.manual_seed(5)
    with torch.no_grad():
        plain = engine.model.eval().generate(**inputs, generation_config=engine._generation_config(PARAMS))
    torch.manual_seed(5)
    shared = engine.generate(two_prompts, 3, PARAMS)
    assert torch.equal(shared.scoring.sequences, plain.sequences)
    completions = plain.sequences[:, inputs["input_ids"].shape[1]:]
    plain_logprobs = engine._sampled_logprobs(plain, completions, shared.scoring.action_mask, PARAMS)
    assert torch.allclose(shared.logprobs, plain_logprobs, atol=1e-5)
