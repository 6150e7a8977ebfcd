"""The baselines a learning table on the look-alike reports beside its methods.

- **chance**: a uniform guess among the three classes is right a third of the time, whatever the
  class balance.
- **the reasoning ceiling**: a fixed rule applied to what the policy's own reasoning states of the
  test image (``reference: ... test: 6 pins, no damage.``, or a varied wording): damage stated ->
  structural; a count or part that no normal image of the category shows (the generator's normal
  scenes) -> logical; else good. What a perfect decision on what the policy *says* would score: RL
  that learns the decision cannot beat it without better descriptions.
- **image statistics**: a ridge classifier per category on colour histograms and edge density of
  the test image and their difference to the reference (``fadtq.data.synth_check``), fitted on the
  training pairs: what needs no object-level look at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fadtq.answer import think_text
from fadtq.data.synth_check import pair_statistics, ridge_accuracy
from fadtq.data.varied_reasoning import stated_facts
from fadtq.prompts import CLASS_NAMES

ImageOf = Callable[[str], np.ndarray]
CHANCE = 1.0 / 3.0
NORMAL_SCENES = 200  # normal scenes rendered per category to learn the descriptions normal images get


def normal_facts(category: str, difficulty: str, scenes: int = NORMAL_SCENES, seed: int = 0) -> list[dict[str, object]]:
    """The facts (``fadtq.data.varied_reasoning.true_facts``, damage left out) of ``scenes`` normal
    renders of ``category``: what a normal image can show."""
    from fadtq.data.synth import DIFFICULTIES, render
    from fadtq.data.varied_reasoning import true_facts

    level = DIFFICULTIES[difficulty]
    rng = np.random.default_rng([seed, 7919])
    facts = (true_facts(category, render(category, "good", rng, 32, level)) for _ in range(scenes))
    unique = {tuple(sorted((k, v) for k, v in f.items() if k != "damage")) for f in facts}
    return [dict(items) for items in sorted(unique, key=str)]


def reasoning_class(completion: str | None, normal: Sequence[dict[str, object]]) -> str | None:
    """The class the rule reads from what a completion's reasoning states of the test image
    (``fadtq.data.varied_reasoning.stated_facts``: the template and varied wordings alike): damage
    stated -> structural; a stated fact with a value no normal scene has -> logical; else good.
    None where nothing is stated of the test image."""
    stated = stated_facts(think_text(completion or "") or "").get("test")
    if not stated:
        return None
    if stated.get("damage", "none") != "none":
        return "structural"
    off = any(all(scene.get(fact) != value for scene in normal) for fact, value in stated.items() if fact != "damage")
    return "logical" if off else "good"


def reasoning_ceiling(records: Sequence[dict], difficulty: str) -> float:
    """The rule's accuracy over evaluation records (``category``, ``label``, ``completion``)."""
    normal = {category: normal_facts(category, difficulty) for category in {r["category"] for r in records}}
    right = [reasoning_class(r["completion"], normal[r["category"]]) == r["label"] for r in records]
    return sum(right) / len(right)


def image_statistics(train: Sequence[dict], test: Sequence[dict], train_image: ImageOf, test_image: ImageOf) -> float:
    """Pooled test accuracy of one ridge classifier per category, fitted on ``train``'s pairs and
    scored on ``test``'s; ``*_image(relative_path)`` gives a pair's image as an H x W x 3 array."""
    fitted, scored = _features(train, train_image), _features(test, test_image)
    right = sum(ridge_accuracy(*fitted[category], *scored[category]) * len(scored[category][1])
                for category in scored)
    return right / sum(len(labels) for _, labels in scored.values())


def _features(rows: Sequence[dict], image: ImageOf) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    grouped: dict[str, list[tuple[np.ndarray, int]]] = {}
    for row in rows:
        features = pair_statistics(image(row["ref_image"]), image(row["test_image"]))
        grouped.setdefault(row["category"], []).append((features, CLASS_NAMES.index(row["label"])))
    return {category: (np.array([f for f, _ in items]), np.array([label for _, label in items]))
            for category, items in grouped.items()}


def image_statistics_on(train_manifest: Path, test_manifest: Path, max_side: int) -> float:
    """:func:`image_statistics` on two benchmark manifests, images at ``max_side`` (the policy's)."""
    from fadtq.data.dataset import PairDataset

    train, test = PairDataset(train_manifest, max_side=max_side), PairDataset(test_manifest, max_side=max_side)
    return image_statistics(train.rows, test.rows, lambda path: np.asarray(train.image(path)),
                            lambda path: np.asarray(test.image(path)))
