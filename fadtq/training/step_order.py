"""The order in which an epoch's training pairs become steps (``rollout.class_balanced``).

A shuffled order gives each step whatever mix of classes the shuffle happens to put there: a step of
24 pairs of three equal classes holds 8 +- 2.3 of each. Group-standardised advantages push the
policy's prior toward the classes a step holds more of, and with Adam each step moves the weights
about ``lr`` whatever the gradient's size, so these pushes add up to a random walk of the prior:
on the look-alike one of two classes that the policy could not yet tell apart fell below 10% of the
answers within 20 steps and was never sampled again (``docs/history/pretraining-log.md``).

The class-balanced order shuffles each class on its own and interleaves them in proportion to their
sizes, so that every run of consecutive pairs holds the classes in the training set's proportions
(exactly, for equal classes and a step size that is a multiple of their number). The pushes of
classes the policy cannot tell apart then cancel within each step; what is left is the signal of
the pairs it can.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def shuffled_order(size: int, rng: random.Random) -> list[int]:
    order = list(range(size))
    rng.shuffle(order)
    return order


def class_balanced_order(labels: Sequence[str], rng: random.Random) -> list[int]:
    """A permutation of ``range(len(labels))``: each class shuffled, then the classes interleaved,
    the ``j``-th of a class of ``n`` at position ``(j + offset) / n`` on a common scale (``offset`` in
    (0, 1), one per class, so that classes of equal size take turns in a fixed order)."""
    classes = sorted(set(labels))
    keyed = []
    for c, name in enumerate(classes):
        members = [i for i, label in enumerate(labels) if label == name]
        rng.shuffle(members)
        offset = (c + 0.5) / len(classes)
        keyed += [((j + offset) / len(members), c, i) for j, i in enumerate(members)]
    return [i for _, _, i in sorted(keyed)]


def epoch_order(labels: Sequence[str], seed: int, epoch: int, class_balanced: bool) -> list[int]:
    """The epoch's permutation of the training pairs: the same on every rank and after a resume."""
    rng = random.Random(f"{seed}:{epoch}")
    return class_balanced_order(labels, rng) if class_balanced else shuffled_order(len(labels), rng)
