"""The learning table's baselines, on completions and images made by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fadtq.evaluation.baselines import CHANCE, image_statistics, normal_facts, reasoning_ceiling, reasoning_class

SIX_PINS = [{"pins": 6}]


def said(test_part: str) -> str:
    return f"<think>reference: 6 pins, no damage. test: {test_part}</think><answer>good</answer>"


@pytest.mark.parametrize("completion, expected", [
    (said("6 pins, damage at the top left."), "structural"),
    (said("5 pins, no damage."), "logical"),
    (said("6 pins, no damage."), "good"),
    (said("6 pins, no damage"), "good"),  # no final full stop
    ("<think>reference: 6 pins, no damage.</think><answer>good</answer>", None),  # no test part
    ("<answer>good</answer>", None),
    ("<think>Well. Test: I see 5 pins. Reference: 6 pins.</think><answer>good</answer>", "logical"),  # varied
    ("<think>The reference image shows no damage. The test image shows damage at the top.</think>", "structural"),
    ("<think>In the test image I see 6 pins. The light is even.</think><answer>x</answer>", "good"),
    (None, None),
])
def test_the_rule_reads_the_class_from_the_test_part_of_the_reasoning(completion, expected):
    assert reasoning_class(completion, SIX_PINS) == expected


def test_normal_images_of_a_category_have_the_facts_the_rule_calls_good():
    assert normal_facts("pushpins", "easy") == SIX_PINS  # six large pins in every easy normal scene
    juices = normal_facts("juice_bottle", "easy")
    assert sorted(juices, key=str) == sorted([{"juice": j, "labels": 2} for j in ("banana", "cherry", "orange")], key=str)


def test_the_reasoning_ceiling_is_the_rule_s_accuracy():
    records = [{"category": "pushpins", "label": "good", "completion": said("6 pins, no damage.")},
               {"category": "pushpins", "label": "logical", "completion": said("7 pins, no damage.")},
               {"category": "pushpins", "label": "structural", "completion": said("6 pins, no damage.")}]
    assert reasoning_ceiling(records, "easy") == pytest.approx(2 / 3)  # the third pair's damage went unsaid
    assert CHANCE == pytest.approx(1 / 3)


def _uniform(level: int) -> np.ndarray:
    return np.full((16, 16, 3), level, dtype=np.uint8)


def _rows(category: str, count: int, levels: dict[str, int], tag: str) -> list[dict]:
    return [{"category": category, "label": label, "ref_image": "ref", "test_image": f"{tag}-{label}-{level}-{i}"}
            for label, level in levels.items() for i in range(count)]


def test_image_statistics_score_one_where_brightness_gives_the_class_and_zero_where_it_lies():
    """Test images of one grey level per class (a few levels of noise apart): a classifier fitted on
    them is right on every test pair drawn the same way, and wrong on every pair whose classes swap
    their levels."""
    def image(path: str) -> np.ndarray:
        if path == "ref":
            return _uniform(100)
        _, _, level, index = path.split("-")
        return _uniform(int(level) + int(index) % 3)

    levels = {"good": 40, "structural": 120, "logical": 200}
    swapped = {"good": 120, "structural": 200, "logical": 40}
    train = _rows("pushpins", 6, levels, "train")
    assert image_statistics(train, _rows("pushpins", 4, levels, "test"), image, image) == 1.0
    assert image_statistics(train, _rows("pushpins", 4, swapped, "test"), image, image) == 0.0
