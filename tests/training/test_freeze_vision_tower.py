"""``train.freeze_vision_tower``: RL trains the language model only; the tower keeps what it sees."""

from __future__ import annotations

import pytest
import torch

from fadtq.errors import FadtqError
from fadtq.training.freeze import freeze_vision_tower


def test_only_the_vision_tower_stops_training(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    freeze_vision_tower(model)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(".visual." in f".{name}" for name in frozen)
    assert len(frozen) == len(list(model.model.visual.parameters()))
    assert any(p.requires_grad for name, p in model.named_parameters() if "language_model" in name)


def test_a_model_without_a_vision_tower_is_refused():
    with pytest.raises(FadtqError, match="train.freeze_vision_tower: Sequential: not a Hugging Face model"):
        freeze_vision_tower(torch.nn.Sequential(torch.nn.Linear(2, 2)))
