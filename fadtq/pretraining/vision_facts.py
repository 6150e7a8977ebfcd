"""The vision tower's own objective: predict a scene's facts from its image tokens.

Qwen2.5-VL's vision encoder learned to see before it was joined to the language model. Trained
only through captions, the offline tower of this project learned colours and large areas and no
local feature: a count or a damage reaches the 2M-parameter language model's loss through too
long a path (``docs/history/pretraining-log.md``). Read directly off the tower's merged image tokens (mean and
max over an image's tokens, one linear head per fact), the same facts train it within minutes.

The heads exist during pretraining only and are not saved: the policy keeps the tower they shaped.
Their targets are the facts a description states (``fadtq.data.describe``): counts, parts present,
the juice's kind, and whether and where there is damage; never a class of the benchmark.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from fadtq.data.describe import REGIONS, damage_region
from fadtq.data.synth import SPECS, Scene
from fadtq.policy.family import family_of_model
from fadtq.policy.image_tensors import ImageTensors

JUICES = ("cherry", "orange", "banana", "none")
MAX_COUNT = 20  # counts 0..19 are classes; the look-alike draws far fewer of any part
DAMAGE = ("none", *(region for row in REGIONS for region in row))
# each category's facts (``Canvas.facts`` keys), and the damage's region
FACT_KEYS = {
    "breakfast_box": ("fruits", "toppings", "cereals"),
    "juice_bottle": ("juice", "labels"),
    "pushpins": ("pins",),
    "screw_bag": ("parts", "screws"),
    "splicing_connectors": ("connectors", "cables"),
}


def _value_index(value: object) -> int:
    if isinstance(value, str):
        return JUICES.index(value)
    return min(int(value), MAX_COUNT - 1)


def fact_targets(category: str, scene: Scene) -> dict[str, int]:
    """``{"<category>/<fact>": class index}`` for each fact of the scene, and ``damage`` (0: none,
    then the nine regions of :data:`fadtq.data.describe.REGIONS`, row by row)."""
    targets = {f"{category}/{key}": _value_index(scene.facts[key]) for key in FACT_KEYS[category]}
    damaged = [mask for name, mask in scene.defects if name in SPECS[category].structural]
    targets["damage"] = DAMAGE.index(damage_region(damaged[0])) if damaged else 0
    return targets


def pool_images(tokens: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean and max of each image's tokens: (images, 2 * width)."""
    return torch.stack([torch.cat([t.mean(0), t.amax(0)]) for t in tokens])


class FactHeads(nn.Module):
    """One linear classifier per fact over an image's pooled tokens."""

    def __init__(self, width: int) -> None:
        super().__init__()
        outputs = {"damage": len(DAMAGE)}
        for category, keys in FACT_KEYS.items():
            outputs |= {f"{category}/{key}": len(JUICES) if key == "juice" else MAX_COUNT for key in keys}
        self.heads = nn.ModuleDict({key.replace("/", ":"): nn.Linear(2 * width, n) for key, n in outputs.items()})

    def loss(self, pooled: torch.Tensor, targets: list[dict[str, int]]) -> torch.Tensor:
        """Mean cross-entropy over every (image, fact) pair; ``targets[i]`` belongs to ``pooled[i]``."""
        losses = []
        for features, facts in zip(pooled, targets):
            for key, index in facts.items():
                logits = self.heads[key.replace("/", ":")](features)
                losses.append(nn.functional.cross_entropy(logits.unsqueeze(0), torch.tensor([index])))
        return torch.stack(losses).mean()


def image_tokens(model, images: ImageTensors) -> list[torch.Tensor]:
    """Each image's tokens as the model places them in its language model's input."""
    family = family_of_model(model)
    base = getattr(model, "module", model).model
    return list(base.get_image_features(**family.image_kwargs(images)).pooler_output)


@contextlib.contextmanager
def captured_image_tokens(model) -> Iterator[list[torch.Tensor]]:
    """Within the block, every image's tokens the model's forward makes, in order."""
    base = getattr(model, "module", model).model
    own, encode, seen = vars(base).get("get_image_features"), base.get_image_features, []

    def get_image_features(*args, **kwargs):
        output = encode(*args, **kwargs)
        seen.extend(output.pooler_output)
        return output

    base.get_image_features = get_image_features
    try:
        yield seen
    finally:
        if own is None:
            del base.get_image_features
        else:
            base.get_image_features = own


def fact_loss(heads: FactHeads, tokens: Sequence[torch.Tensor], targets: list[dict[str, int]]) -> torch.Tensor:
    """The fact loss on each image's tokens."""
    return heads.loss(pool_images(tokens), targets)


def tower_loss(model, heads: FactHeads, image_inputs: dict, targets: list[dict[str, int]]) -> torch.Tensor:
    """The fact loss of the vision tower alone on the image processor's output."""
    return fact_loss(heads, image_tokens(model, family_of_model(model).image_tensors(image_inputs)), targets)
