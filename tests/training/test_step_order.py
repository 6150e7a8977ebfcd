"""The epoch's order of training pairs: shuffled, or class-balanced (``rollout.class_balanced``)."""

import random
from collections import Counter

from fadtq.training.step_order import class_balanced_order, epoch_order

LABELS = ["good"] * 600 + ["structural"] * 600 + ["logical"] * 600


def test_balanced_order_is_a_permutation():
    order = class_balanced_order(LABELS, random.Random(0))
    assert sorted(order) == list(range(len(LABELS)))


def test_every_step_of_equal_classes_holds_each_class_equally():
    order = class_balanced_order(LABELS, random.Random(3))
    for start in range(0, len(order), 24):
        assert Counter(LABELS[i] for i in order[start:start + 24]) == {"good": 8, "structural": 8, "logical": 8}
        # and so does each rank's half of the step
        assert Counter(LABELS[i] for i in order[start:start + 12]) == {"good": 4, "structural": 4, "logical": 4}


def test_unequal_classes_stay_in_proportion():
    labels = ["a"] * 100 + ["b"] * 50
    order = class_balanced_order(labels, random.Random(1))
    for start in range(0, len(order), 15):
        counts = Counter(labels[i] for i in order[start:start + 15])
        assert abs(counts["a"] - 10) <= 1 and abs(counts["b"] - 5) <= 1


def test_shuffled_steps_are_not_balanced():
    """What the balanced order takes away: a plain shuffle's steps vary in their mix."""
    order = epoch_order(LABELS, seed=0, epoch=0, class_balanced=False)
    mixes = {Counter(LABELS[i] for i in order[s:s + 24])["good"] for s in range(0, len(order), 24)}
    assert len(mixes) > 3


def test_orders_follow_the_seed_and_epoch():
    for balanced in (False, True):
        assert epoch_order(LABELS, 0, 0, balanced) == epoch_order(LABELS, 0, 0, balanced)
        assert epoch_order(LABELS, 0, 0, balanced) != epoch_order(LABELS, 0, 1, balanced)
        assert epoch_order(LABELS, 0, 0, balanced) != epoch_order(LABELS, 1, 0, balanced)


def test_the_shuffled_order_is_the_one_runs_used_before():
    """Runs made before the option (and their resumes) keep their data order."""
    expected = list(range(len(LABELS)))
    random.Random("0:2").shuffle(expected)
    assert epoch_order(LABELS, 0, 2, class_balanced=False) == expected
