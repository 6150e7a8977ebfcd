"""Parts of the policy that RL leaves as they are (``train.freeze_vision_tower``).

A small policy's vision tower, pretrained to see the look-alike's facts, is the part RL can damage
most cheaply: with Adam every parameter moves by about the learning rate per step, whether its
gradient carries signal or noise. EasyR1 and verl offer the same switch for Qwen2.5-VL.
"""

from __future__ import annotations

import torch

from fadtq.errors import FadtqError
from fadtq.policy.family import family_of_model


def freeze_vision_tower(model: torch.nn.Module) -> None:
    """Stop gradients into the vision encoder (the family's ``vision_tower``), before the optimizer is built."""
    try:
        tower = family_of_model(model).tower(model)
    except FadtqError as exc:
        raise FadtqError(f"train.freeze_vision_tower: {exc}") from None
    for parameter in tower.parameters():
        parameter.requires_grad_(False)
