"""Is the look-alike too easy? A 1-D threshold on mean colour must not tell logical from good.

Logical anomalies change counts and arrangement, not the palette, so a per-image mean colour
(R, G, B or grey) should classify good vs logical near chance. The threshold is fitted on one
half of the images and scored on the other, so the figure is not flattered by overfitting.
"""

from __future__ import annotations

import numpy as np

from fadtq.data.synth import FOLDERS, image_rng, render

GOOD_FOLDER = 2
LOGICAL_FOLDER = 4


def mean_colour_features(images: list[np.ndarray]) -> np.ndarray:
    """(n, 4): mean R, G, B and grey of each image."""
    means = np.array([image.reshape(-1, 3).mean(axis=0) for image in images])
    return np.column_stack([means, means.mean(axis=1)])


def _best_threshold(good: np.ndarray, bad: np.ndarray) -> tuple[float, int]:
    """Threshold and direction (+1: bad is above) with the best balanced accuracy on these values."""
    best = (0.0, 1, -1.0)
    for t in np.unique(np.concatenate([good, bad])):
        for sign in (1, -1):
            score = 0.5 * (np.mean(sign * good < sign * t) + np.mean(sign * bad >= sign * t))
            if score > best[2]:
                best = (float(t), sign, score)
    return best[0], best[1]


def threshold_accuracy(good: np.ndarray, bad: np.ndarray, seed: int = 0) -> float:
    """Held-out balanced accuracy of the best single-feature threshold classifier."""
    rng = np.random.default_rng(seed)
    good, bad = good[rng.permutation(len(good))], bad[rng.permutation(len(bad))]
    gh, bh = len(good) // 2, len(bad) // 2
    scores = []
    for feature in range(good.shape[1]):
        t, sign = _best_threshold(good[:gh, feature], bad[:bh, feature])
        held_good, held_bad = good[gh:, feature], bad[bh:, feature]
        scores.append(0.5 * (np.mean(sign * held_good < sign * t) + np.mean(sign * held_bad >= sign * t)))
    return float(max(scores))


def logical_separability(category: str, count: int = 60, seed: int = 0, size: int = 64) -> float:
    """Held-out mean-colour accuracy, good vs logical, on ``count`` freshly rendered images of each."""
    features = []
    for folder in (GOOD_FOLDER, LOGICAL_FOLDER):
        label = FOLDERS[folder][2]
        images = [render(category, label, image_rng(seed, category, folder, i), size)[0] for i in range(count)]
        features.append(mean_colour_features(images))
    return threshold_accuracy(features[0], features[1], seed)
