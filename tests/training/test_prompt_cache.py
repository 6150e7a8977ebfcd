"""Each distinct prompt runs once: the results equal the full forward of every row, in every model family."""

from __future__ import annotations

import pytest
import torch

from fadtq.generation import batch
from fadtq.generation.engine import SamplingParams
from fadtq.policy import qwen_vl
from fadtq.policy.family import family_of_model
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
    """The reference: every row's whole sequence in one forward, as the model runs it (a multimodal
    RoPE derives its own positions; plain positions start after the left padding, as ``generate``
    and vLLM number them)."""
    family = family_of_model(model)
    completion_len = inputs.action_mask.shape[1]
    positions = None if family.positions is qwen_vl.positions else (inputs.attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(**inputs.model_inputs(family, inputs.sequences.shape[1]), position_ids=positions,
                   use_cache=False).logits[:, -completion_len - 1:-1]
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
    pixels = first_rows.images.per_patch["pixel_values"] = first_rows.images.per_patch["pixel_values"].clone()
    patches_of_row_0 = int(first_rows.images.patches[:2].sum())
    pixels[patches_of_row_0:] += 0.5  # row 1's images change, its tokens do not
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
    tower = family_of_model(engine.model).vision_tower
    assert shared.keys() == reference.keys() and any(f".{tower}." in name for name in shared)
    for name, grad in reference.items():
        assert torch.allclose(shared[name], grad, atol=1e-5, rtol=1e-4), name


def test_sampling_from_the_shared_prompt_draws_what_full_prompts_draw(engine, two_prompts):
    """Same seed, same tokens and logits as ``generate`` on every row's full prompt."""
    family = family_of_model(engine.model)
    inputs = batch.repeat_rows(batch.prompt_inputs(engine.processor, family, two_prompts, torch.device("cpu")), 3)
    torch.manual_seed(5)
    with torch.no_grad():
        plain = engine.model.eval().generate(**inputs.model_inputs(family),
                                             generation_config=engine._generation_config(PARAMS))
    torch.manual_seed(5)
    shared = engine.generate(two_prompts, 3, PARAMS)
    assert torch.equal(shared.scoring.sequences, plain.sequences)
    completions = plain.sequences[:, inputs.sequences.shape[1]:]
    plain_logprobs = engine._sampled_logprobs(plain, completions, shared.scoring.action_mask, PARAMS)
    assert torch.allclose(shared.logprobs, plain_logprobs, atol=1e-5)


def test_images_cut_into_tiles_keep_their_rows_apart(tmp_path):
    """SmolVLM cuts an image larger than its tile into tiles plus a global view: rows of pictures
    of other shapes then have other numbers of images, and the prompt cache still scores exactly
    what was sampled."""
    from PIL import Image, ImageDraw
    from transformers import AutoModelForImageTextToText

    from fadtq.generation.engine import RolloutPrompt
    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.policy.processor import load_processor
    from fadtq.pretraining.tiny_model import make_tiny_model
    from fadtq.prompts import PromptLibrary, policy_messages

    folder = make_tiny_model(tmp_path / "smolvlm", family="smolvlm")
    processor = load_processor(folder)
    processor.image_processor.do_image_splitting = True
    processor.image_processor.size = {"longest_edge": 224}  # two 112-pixel tiles a side at most

    def pair(width: int, height: int) -> tuple[Image.Image, Image.Image]:
        reference = Image.new("RGB", (width, height), (120, 140, 160))
        test = reference.copy()
        ImageDraw.Draw(test).line((5, 5, width - 5, height - 5), fill=(20, 20, 20), width=3)
        return reference, test

    library = PromptLibrary()
    prompts = [RolloutPrompt(*pair(200, 200), policy_messages(library, "bottle")),
               RolloutPrompt(*pair(220, 100), policy_messages(library, "screw bag"))]
    engine = HFRolloutEngine(AutoModelForImageTextToText.from_pretrained(folder, attn_implementation="sdpa"), processor)
    torch.manual_seed(0)
    scoring = engine.generate(prompts, 2, PARAMS).scoring
    assert scoring.images_per_row.tolist() == [10, 10, 6, 6]  # 2 x 2 tiles + 1 view, 2 x 1 + 1, per picture
    assert scoring.distinct_prompts()[0] == [0, 2]
    assert len(scoring.select([3, 0]).images) == 16
    shared = completion_logprobs(engine.model, scoring, PARAMS.temperature, engine.suppressed_token_ids).logprobs
    reference = full_forward_logprobs(engine.model, scoring, engine.suppressed_token_ids)
    assert scoring.action_mask.sum() > 8 and torch.allclose(shared, reference, atol=1e-5)
    assert torch.allclose(shared, scoring.rollout_logprobs, atol=1e-5)
