"""Each distinct image encoded once per forward pass.

The prompt cache (``fadtq/policy/prompt_cache.py``) already runs each distinct prompt once; distinct
prompts still share images: the pairs of a category draw their references from a few normal images
(200 for the CPU default's 1,800 training pairs), so a batch may hold one reference several times.
The families' vision towers encode images independently (attention never crosses from one image to
another), so encoding each distinct image once and repeating its features gives the same
features bit for bit (``tests/training/test_distinct_images.py``). Gradients stay exact too:
autograd sums the repeated features' gradients into the one encoding.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from fadtq.errors import FadtqError
from fadtq.policy.family import ModelFamily, family_of_model
from fadtq.policy.image_tensors import ImageTensors


def distinct_images(images: ImageTensors) -> tuple[list[int], list[int]]:
    """The first index of each distinct image, and for every image the position of its copy among them.

    Images match when all their tensors are equal; a checksum finds the candidates, ``torch.equal``
    decides.
    """
    firsts: list[int] = []
    candidates: dict[float, list[int]] = {}
    positions = []
    for index in range(len(images)):
        key = images.checksum(index)
        same = [j for j in candidates.get(key, []) if images.same(firsts[j], index)]
        if not same:
            same = [len(firsts)]
            firsts.append(index)
            candidates.setdefault(key, []).append(same[0])
        positions.append(same[0])
    return firsts, positions


def encode_distinct_images(model: torch.nn.Module) -> None:
    """Make ``model`` (a Hugging Face model of a supported family) encode each distinct image of a
    forward pass once.

    ``get_image_features`` then repeats its per-image outputs (``ModelFamily.per_image_outputs``:
    ``pooler_output``, the features the model places at its image tokens, and Qwen3-VL's DeepStack
    features) once per image; the tower's other outputs (``last_hidden_state``) cover the distinct images.
    """
    base = getattr(model, "model", None)
    if base is None or not callable(getattr(base, "get_image_features", None)):
        raise FadtqError(f"{type(model).__name__} has no model.get_image_features: not a vision-language model")
    base.get_image_features = _once_per_image(base.get_image_features, family_of_model(model))


def _repeat(value, positions: list[int]):
    """A per-image output (a tensor or a tuple of tensors with one entry per distinct image, or a
    list of such) with an entry per image."""
    if isinstance(value, list):
        return [_repeat(level, positions) for level in value]
    if torch.is_tensor(value):
        return value[torch.as_tensor(positions, device=value.device)]
    return tuple(value[p] for p in positions)


def _once_per_image(encode: Callable, family: ModelFamily) -> Callable:
    signature = inspect.signature(encode)

    def get_image_features(*args, **kwargs):
        arguments = dict(signature.bind(*args, **kwargs).arguments)
        extra = arguments.pop("kwargs", {})
        images = family.image_tensors(arguments)
        firsts, positions = distinct_images(images)
        if len(firsts) == len(positions):
            return encode(*args, **kwargs)
        output = encode(**(arguments | family.image_kwargs(images.select(firsts))), **extra)
        for field in family.per_image_outputs:
            setattr(output, field, _repeat(getattr(output, field), positions))
        return output

    return get_image_features
