"""Each distinct image encoded once per forward pass.

The prompt cache (``fadtq/policy/prompt_cache.py``) already runs each distinct prompt once; distinct
prompts still share images: the pairs of a category draw their references from a few normal images
(200 for the CPU default's 1,800 training pairs), so a batch may hold one reference several times.
Qwen2.5-VL's vision tower encodes images independently (its attention never crosses from one image
to another), so encoding each distinct image once and repeating its features gives the same
features bit for bit (``tests/training/test_distinct_images.py``). Gradients stay exact too:
autograd sums the repeated features' gradients into the one encoding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fadtq.errors import FadtqError
from fadtq.policy.family import family_of_model


def distinct_images(pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> tuple[list[int], list[int]]:
    """The first index of each distinct image, and for every image the position of its copy among them.

    ``pixel_values`` holds the images' patches one image after another (``image_grid_thw`` gives each
    image's patch grid). Images match when their grids and patches are equal; a sum over the patches
    finds the candidates, ``torch.equal`` decides.
    """
    grids = [tuple(grid) for grid in image_grid_thw.tolist()]
    images = split_images(pixel_values, image_grid_thw)
    firsts: list[int] = []
    candidates: dict[tuple, list[int]] = {}
    positions = []
    for index, (grid, image) in enumerate(zip(grids, images)):
        key = (grid, image.sum().item())
        same = [j for j in candidates.get(key, []) if torch.equal(images[firsts[j]], image)]
        if not same:
            same = [len(firsts)]
            firsts.append(index)
            candidates.setdefault(key, []).append(same[0])
        positions.append(same[0])
    return firsts, positions


def split_images(pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each image's patches, as views of ``pixel_values``."""
    return torch.split(pixel_values, image_grid_thw.prod(-1).tolist())


def encode_distinct_images(model: torch.nn.Module) -> None:
    """Make ``model`` (a Hugging Face Qwen-VL) encode each distinct image of a forward pass once.

    ``get_image_features`` then repeats its per-image outputs (``ModelFamily.per_image_outputs``:
    ``pooler_output``, the features the model places at its image tokens, and Qwen3-VL's DeepStack
    features) once per image; the tower's other outputs (``last_hidden_state``) cover the distinct images.
    """
    base = getattr(model, "model", None)
    if base is None or not callable(getattr(base, "get_image_features", None)):
        raise FadtqError(f"{type(model).__name__} has no model.get_image_features: not a Qwen-VL-style model")
    base.get_image_features = _once_per_image(base.get_image_features, family_of_model(model).per_image_outputs)


def _repeat(value, positions: list[int]):
    """A per-image output (a tuple of tensors, one per distinct image, or a list of such tuples)
    with an entry per image."""
    if isinstance(value, list):
        return [_repeat(level, positions) for level in value]
    return tuple(value[p] for p in positions)


def _once_per_image(encode: Callable, per_image: tuple[str, ...]) -> Callable:
    def get_image_features(pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, **kwargs):
        firsts, positions = distinct_images(pixel_values, image_grid_thw)
        if len(firsts) == len(positions):
            return encode(pixel_values, image_grid_thw, **kwargs)
        images = split_images(pixel_values, image_grid_thw)
        output = encode(torch.cat([images[i] for i in firsts]), image_grid_thw[firsts], **kwargs)
        for field in per_image:
            setattr(output, field, _repeat(getattr(output, field), positions))
        return output

    return get_image_features
