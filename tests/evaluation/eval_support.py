"""Constants and helpers shared by the evaluation tests and their fixtures."""

from __future__ import annotations

import random

SMALL_SIZE = 32
N_PAIRS = 12
BATCH = 4
MAX_NEW_TOKENS = 16

GOOD_TALK = "The test image matches the reference: same parts, same positions, no damage."
STRUCTURAL_TALK = "Compared with the reference, the test image shows a scratch and a broken edge on one part."
LOGICAL_TALK = "Every part is intact, but one compartment is empty and the count differs from the reference."
TALK = {"good": GOOD_TALK, "structural": STRUCTURAL_TALK, "logical": LOGICAL_TALK}


def plausible_completion(label: str, rng: random.Random) -> str:
    """A well-formed answer, right about 70 % of the time, sometimes unformatted or unparseable."""
    from fadtq.prompts import CLASS_NAMES

    answer = label if rng.random() < 0.7 else rng.choice([c for c in CLASS_NAMES if c != label])
    roll = rng.random()
    if roll < 0.1:
        return f"I think it is {answer}."
    if roll < 0.15:
        return f"<think>{TALK[answer]}</think><answer>good or logical</answer>"
    return f"<think>{TALK[answer]}</think><answer>{answer}</answer>"
