"""Each distinct image encoded once: the same features and gradients, a fraction of the tower's work."""

from __future__ import annotations

import pytest
import torch

from fadtq.errors import FadtqError
from fadtq.policy import qwen_vl, smolvlm
from fadtq.policy.distinct_images import distinct_images, encode_distinct_images
from fadtq.policy.image_tensors import ImageTensors


def qwen_images(pixels: torch.Tensor, grids: torch.Tensor) -> ImageTensors:
    return qwen_vl.image_tensors({"pixel_values": pixels, "image_grid_thw": grids})


def test_equal_images_are_found_and_equal_sums_are_not_enough():
    a = torch.arange(8.0).reshape(4, 2)      # grid 1x2x2: 4 patches
    b = a.flip(0)                            # the same sum as a, other patches
    c = torch.ones(2, 2)                     # grid 1x1x2: 2 patches
    pixels = torch.cat([a, b, a, c, b, c])
    grids = torch.tensor([[1, 2, 2], [1, 2, 2], [1, 2, 2], [1, 1, 2], [1, 2, 2], [1, 1, 2]])
    assert distinct_images(qwen_images(pixels, grids)) == ([0, 1, 3], [0, 1, 0, 2, 1, 2])


def test_a_grid_of_other_shape_is_another_image():
    pixels = torch.zeros(8, 2)
    grids = torch.tensor([[1, 2, 2], [1, 1, 4]])  # equal patches, other layout
    assert distinct_images(qwen_images(pixels, grids)) == ([0, 1], [0, 1])


def test_images_of_one_tensor_each_differ_by_pixels_or_by_mask():
    """SmolVLM's layout: one entry per image; all-zero padding images are not images."""
    pixels = torch.stack([torch.full((3, 4, 4), v) for v in (1.0, 2.0, 1.0, 1.0, 0.0)]).view(1, 5, 3, 4, 4)
    mask = torch.ones(1, 5, 4, 4, dtype=torch.bool)
    mask[0, 3, 0, 0] = False
    images = smolvlm.image_tensors({"pixel_values": pixels, "pixel_attention_mask": mask})
    assert len(images) == 4 and distinct_images(images) == ([0, 1, 3], [0, 1, 0, 2])


def _load(tiny_model_dir, distinct: bool):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    if distinct:
        encode_distinct_images(model)
    return model


def _group_inputs(tiny_model_dir, two_prompts):
    from fadtq.generation import batch
    from fadtq.policy.family import family_of_folder
    from fadtq.policy.processor import load_processor

    processor = load_processor(str(tiny_model_dir))
    family = family_of_folder(tiny_model_dir)
    return batch.repeat_rows(batch.prompt_inputs(processor, family, two_prompts, torch.device("cpu")), 3).model_inputs(family)


def _tower_patches(model) -> list[int]:
    """The number of patches the vision tower encodes on each call, recorded by a forward hook."""
    seen: list[int] = []
    model.model.visual.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[0]))
    return seen


def test_the_forward_pass_is_the_same_bit_for_bit_with_one_encoding_per_image(tiny_model_dir, two_prompts):
    inputs = _group_inputs(tiny_model_dir, two_prompts)  # 2 prompts x 3 samples: 12 images, 4 distinct
    plain, distinct = _load(tiny_model_dir, False), _load(tiny_model_dir, True)
    plain_patches, distinct_patches = _tower_patches(plain), _tower_patches(distinct)
    with torch.no_grad():
        expected = plain(**inputs).logits
        logits = distinct(**inputs).logits
    assert torch.equal(logits, expected)
    assert distinct_patches == [plain_patches[0] // 3]


def test_gradients_into_a_trained_tower_are_the_same(tiny_model_dir, two_prompts):
    inputs = _group_inputs(tiny_model_dir, two_prompts)
    grads = []
    for distinct in (False, True):
        model = _load(tiny_model_dir, distinct)
        model(**inputs).logits.square().mean().backward()
        grads.append({name: p.grad for name, p in model.model.visual.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_a_model_without_image_features_is_refused():
    with pytest.raises(FadtqError, match="no model.get_image_features"):
        encode_distinct_images(torch.nn.Sequential(torch.nn.Linear(2, 2)))
