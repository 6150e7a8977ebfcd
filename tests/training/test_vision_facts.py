"""The vision tower's fact targets (``fadtq.pretraining.vision_facts``): the facts a description states,
as class indices, and a loss that trains the tower through its pooled image tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fadtq.data.describe import describe
from fadtq.data.synth import DIFFICULTIES, render
from fadtq.pretraining.vision_facts import DAMAGE, FACT_KEYS, JUICES, FactHeads, fact_targets, pool_images


def scene(category: str, label: str, seed: int = 3):
    return render(category, label, np.random.default_rng(seed), 128, DIFFICULTIES["easy"])


@pytest.mark.parametrize("category", sorted(FACT_KEYS))
def test_targets_state_what_the_description_states(category):
    for label in ("good", "structural", "logical"):
        drawn = scene(category, label)
        targets = fact_targets(category, drawn)
        assert set(targets) == {f"{category}/{key}" for key in FACT_KEYS[category]} | {"damage"}
        damage = DAMAGE[targets["damage"]]
        text = describe(category, drawn)
        assert text.endswith("no damage") if damage == "none" else text.endswith(f"damage at the {damage}")
        for key in FACT_KEYS[category]:
            value = drawn.facts[key]
            expected = JUICES.index(value) if isinstance(value, str) else int(value)
            assert targets[f"{category}/{key}"] == expected


def test_a_good_scene_has_no_damage_and_a_damaged_one_has_a_region():
    assert fact_targets("pushpins", scene("pushpins", "good"))["damage"] == 0
    assert fact_targets("pushpins", scene("pushpins", "structural"))["damage"] > 0


def test_pooling_takes_mean_and_max_per_image():
    tokens = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, -1.0], [7.0, 1.0]])
    pooled = pool_images(tokens.split([3, 1]))  # an image of 3 tokens, one of 1
    assert pooled.flatten().tolist() == pytest.approx([3.0, 1.0 / 3.0, 5.0, 2.0, 7.0, 1.0, 7.0, 1.0])


def test_the_fact_loss_trains_the_heads():
    torch.manual_seed(0)
    heads = FactHeads(width=4)
    pooled = torch.randn(2, 8)
    targets = [{"pushpins/pins": 6, "damage": 0}, {"pushpins/pins": 7, "damage": 3}]
    optimizer = torch.optim.SGD(heads.parameters(), lr=0.5)
    losses = []
    for _ in range(20):
        loss = heads.loss(pooled, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > np.log(len(DAMAGE)) / 2 and losses[-1] < 0.1 * losses[0]
