"""Object-level descriptions of single look-alike images: the targets of ``fadtq pretrain``.

A description states what an inspector sees in *one* image: which objects and how many, the
juice's kind, whether parts are present, and whether and where something is damaged. It never
compares two images, never says whether the image is normal, and never uses the words of the
answer (class names, their synonyms, option letters): pretraining gives the policy eyes, and
deciding which case applies stays for RL to learn. ``tests/data/test_describe.py`` holds it to that.
"""

from __future__ import annotations

import re

import numpy as np

from fadtq.data.synth import SPECS, Scene

# Words that compare two images or judge one: no pretraining target uses them (tests/data).
COMPARISONS = re.compile(r"\b(same|different|differs?|than|more|fewer|less|compared?|unlike|like|match(es)?|"
                         r"normal|abnormal|anomal\w*|defect\w*|correct|wrong|missing|extra|expected)\b")

# 3 x 3 regions of the image, by the damage's centre of mass.
REGIONS = (("top left", "top", "top right"), ("left", "middle", "right"), ("bottom left", "bottom", "bottom right"))


def _count(n: object, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _present(flag: object, noun: str) -> str:
    return noun if flag else f"no {noun}"


def objects_phrase(category: str, facts: dict[str, object]) -> str:
    """The objects of a scene, from its facts (``Canvas.facts``)."""
    if category == "breakfast_box":
        return ", ".join((_count(facts["fruits"], "fruit"), _present(facts["toppings"], "toppings"),
                          _present(facts["cereals"], "cereals")))
    if category == "juice_bottle":
        juice = "empty bottle" if facts["juice"] == "none" else f"{facts['juice']} juice"
        return f"{juice}, {_count(facts['labels'], 'label')}"
    if category == "pushpins":
        return _count(facts["pins"], "pin")
    if category == "screw_bag":
        return f"{_count(facts['parts'], 'small part')}, {_count(facts['screws'], 'screw')}"
    if category == "splicing_connectors":
        return f"{_count(facts['connectors'], 'connector')}, {_count(facts['cables'], 'cable')}"
    raise KeyError(category)


def damage_region(mask: np.ndarray) -> str:
    """Where a damage mask lies, as one of nine regions."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    row = min(2, int(3 * ys.mean() / height))
    col = min(2, int(3 * xs.mean() / width))
    return REGIONS[row][col]


def damage_of(category: str, scene: Scene) -> str:
    """The region of a scene's damage, or ``"none"``."""
    damaged = [mask for name, mask in scene.defects if name in SPECS[category].structural]
    return damage_region(damaged[0]) if damaged else "none"


def describe(category: str, scene: Scene) -> str:
    """One image's description, e.g. ``"6 pins, damage at the top left"``."""
    region = damage_of(category, scene)
    damage = "no damage" if region == "none" else f"damage at the {region}"
    return f"{objects_phrase(category, scene.facts)}, {damage}"
