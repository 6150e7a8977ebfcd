"""Training the policy through low-rank adapters (``train.lora``, peft's LoRA).

Only the adapters train: the optimizer holds their parameters alone, a checkpoint's DeepSpeed state
holds them and their optimizer state alone (the base comes from ``model.path`` again on resume), and
its ``policy/`` folder the merged weights (``fadtq.policy.adapters``). A loss that needs a
reference model gets the base itself, adapters switched off, never a second copy.
"""

from __future__ import annotations

import torch

from fadtq.policy.family import family_of_model
from fadtq.run_config import LoraSettings


def add_adapters(model: torch.nn.Module, settings: LoraSettings, freeze_tower: bool) -> torch.nn.Module:
    """``model`` with adapters on its ``target_modules`` and every other weight frozen; with a
    frozen vision tower, none of the tower's layers gets one."""
    from peft import LoraConfig, get_peft_model

    tower = family_of_model(model).vision_tower
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), bias="none",
                        exclude_modules=rf".*\b{tower}\b.*" if freeze_tower else None)
    return get_peft_model(model, config)
