"""Fixtures for the training tests: one tiny Qwen2.5-VL per session, and two image-pair prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fadtq.training.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-qwen2.5-vl"), size="tiny", seed=0)


def _pair(shade: int) -> tuple[Image.Image, Image.Image]:
    """A plain reference and a test copy with a dark scratch; sizes differ from the processor's."""
    reference = Image.new("RGB", (100, 90), (120 + shade, 140, 160))
    test = reference.copy()
    ImageDraw.Draw(test).line((10 + shade, 10, 80, 70), fill=(20, 20, 20), width=3)
    return reference, test


@pytest.fixture
def two_prompts():
    """Two (reference, test, question) prompts in the policy's chat format."""
    from fadtq.prompts import PromptLibrary, policy_messages
    from fadtq.training.rollout import RolloutPrompt

    library = PromptLibrary()
    return [
        RolloutPrompt(*_pair(0), policy_messages(library, "bottle")),
        RolloutPrompt(*_pair(40), policy_messages(library, "screw bag")),
    ]
