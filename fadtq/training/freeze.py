"""Parts of the policy that RL leaves as they are (``train.freeze_vision_tower``).

A small policy's vision tower, pretrained to see the look-alike's facts, is the part RL can damage
most cheaply: with Adam every parameter moves by about the learning rate per step, whether its
gradient carries signal or noise. EasyR1 and verl offer the same switch for Qwen2.5-VL.
"""

from __future__ import annotations

import torch

from fadtq.errors import FadtqError


def freeze_vision_tower(model: torch.nn.Module) -> None:
    """Stop gradients into the vision encoder (Qwen2.5-VL's ``visual``), before the optimizer is built."""
    towers = [module for name, module in model.named_modules() if name.split(".")[-1] == "visual"]
    if not towers:
        raise FadtqError("train.freeze_vision_tower: the model has no vision tower named 'visual'")
    for parameter in towers[0].parameters():
        parameter.requires_grad_(False)
