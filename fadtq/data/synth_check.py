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
        images = [render(category, label, image_rng(seed, category, folder, i), size).image for i in range(count)]
        features.append(mean_colour_features(images))
    return threshold_accuracy(features[0], features[1], seed)


def image_statistics(image: np.ndarray, bins: int = 8) -> np.ndarray:
    """What a user can compute without looking at objects: mean colour, per-channel histograms,
    and edge density (share of pixels whose grey gradient exceeds a threshold)."""
    pixels = image.reshape(-1, 3).astype(np.float32)
    histograms = [np.histogram(pixels[:, c], bins=bins, range=(0, 256))[0] / len(pixels) for c in range(3)]
    grey = image.astype(np.float32).mean(axis=2)
    gradient = np.hypot(np.diff(grey, axis=0)[:, :-1], np.diff(grey, axis=1)[:-1, :])
    edges = [float(np.mean(gradient > t)) for t in (8, 24, 48)]
    return np.concatenate([pixels.mean(axis=0) / 255, *histograms, edges])


def pair_statistics(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The test image's statistics and their difference to the reference's."""
    test_stats = image_statistics(test)
    return np.concatenate([test_stats, test_stats - image_statistics(ref)])


def ridge_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   classes: int = 3, alpha: float = 1.0) -> float:
    """Held-out accuracy of a one-vs-rest ridge classifier on standardised features and their
    squares (so a class lying between two others on one feature is separable too)."""
    train_x, test_x = (np.column_stack([x, x**2]) for x in (train_x, test_x))
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    design = np.column_stack([(train_x - mean) / std, np.ones(len(train_x))])
    targets = np.eye(classes)[train_y]
    weights = np.linalg.solve(design.T @ design + alpha * np.eye(design.shape[1]), design.T @ targets)
    scores = np.column_stack([(test_x - mean) / std, np.ones(len(test_x))]) @ weights
    return float(np.mean(scores.argmax(axis=1) == test_y))


def statistics_accuracy(category: str, difficulty: str = "easy", count: int = 60, seed: int = 0,
                        size: int = 128) -> float:
    """Held-out 3-way accuracy (good / structural / logical) of image statistics on freshly
    rendered (reference, test) pairs of one category: fitted on half, scored on the other half."""
    from fadtq.data.synth import DIFFICULTIES

    level = DIFFICULTIES[difficulty]
    features, labels = [], []
    for label_index, folder in enumerate((GOOD_FOLDER, 3, LOGICAL_FOLDER)):
        label = FOLDERS[folder][2]
        for i in range(count):
            ref = render(category, "good", image_rng(seed, category, 0, i), size, level).image
            test = render(category, label, image_rng(seed, category, folder, i), size, level).image
            features.append(pair_statistics(ref, test))
            labels.append(label_index)
    x, y = np.array(features), np.array(labels)
    order = np.random.default_rng(seed).permutation(len(y))
    half = len(y) // 2
    return ridge_accuracy(x[order[:half]], y[order[:half]], x[order[half:]], y[order[half:]])
