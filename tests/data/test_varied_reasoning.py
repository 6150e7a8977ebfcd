"""Varied pair reasonings (the lab policy's pretraining targets): the rules of the template, room
for a reasoning reward to move, and facts that read back as the generator drew them."""

import random
import re
import statistics
from collections import Counter

import numpy as np
import pytest

from fadtq.answer import CLASS_PATTERNS, extract_answer, parse_class
from fadtq.data.describe import COMPARISONS, describe
from fadtq.data.loco import CATEGORIES
from fadtq.data.synth import DIFFICULTIES, render
from fadtq.data.varied_reasoning import (
    FILLERS,
    decisive_facts,
    stated_facts,
    states_decisive_facts,
    true_facts,
    varied_reasoning,
)
from fadtq.prompts import CLASS_NAMES, OPTION_LETTERS, PromptLibrary
from fadtq.pretraining.pretrain import PretrainRecipe, make_example

EASY = DIFFICULTIES["easy"]
VARIED = PretrainRecipe(reasoning="varied")


def _pair(index: int):
    category = CATEGORIES[index % len(CATEGORIES)]
    rng = np.random.default_rng([11, index])
    reference = render(category, CLASS_NAMES[index % 3], rng, 64, EASY)
    test = render(category, CLASS_NAMES[(index // 3) % 3], rng, 64, EASY)
    return category, reference, test


@pytest.fixture(scope="module")
def drawn():
    """300 pairs, each with its varied reasoning."""
    out = []
    for index in range(300):
        category, reference, test = _pair(index)
        out.append((category, reference, test, varied_reasoning(category, reference, test, random.Random(index))))
    return out


def test_reasonings_keep_the_template_s_rules(drawn):
    for *_, think in drawn:
        assert parse_class(think) is None, think
        assert not any(pattern.search(think.lower()) for pattern in CLASS_PATTERNS.values()), think
        assert not re.search(rf"\b({'|'.join(OPTION_LETTERS)})\b", think), think
        assert not COMPARISONS.search(think.lower()), think


def test_reasonings_vary_in_length_order_facts_and_fillers(drawn):
    """10 to 60 words, spread out; both orders; fillers, details and restatements in a share of them."""
    texts = [think for *_, think in drawn]
    lengths = [len(t.split()) for t in texts]
    assert 10 <= min(lengths) and max(lengths) <= 60 and statistics.pstdev(lengths) > 6, Counter(lengths)
    assert len(set(texts)) == len(texts)
    test_first = sum(t.lower().find("test") < t.lower().find("reference") for t in texts if "reference" in t.lower())
    assert 0.3 < test_first / len(texts) < 0.7
    with_filler = sum(any(f in t for f in FILLERS) for t in texts)
    assert 0.3 < with_filler / len(texts) < 0.75
    assert 0.15 < sum("So the test image has" in t for t in texts) / len(texts) < 0.5
    # a share leave the test image's damage unstated: a relevance reward has something to ask for
    unstated = sum("damage" not in stated_facts(t).get("test", {}) for t in texts)
    assert 0.05 < unstated / len(texts) < 0.35


def test_every_stated_fact_reads_back_as_the_generator_drew_it(drawn):
    read = 0
    for category, reference, test, think in drawn:
        stated = stated_facts(think)
        for image, scene in (("reference", reference), ("test", test)):
            truth = true_facts(category, scene)
            for fact, value in stated.get(image, {}).items():
                assert truth[fact] == value, (think, image, fact)
                read += 1
    assert read > 1000


def test_the_template_reads_back_too():
    category, reference, test = _pair(7)
    template = f"reference: {describe(category, reference)}. test: {describe(category, test)}."
    assert stated_facts(template) == {"reference": true_facts(category, reference), "test": true_facts(category, test)}


def test_the_same_seed_gives_the_same_reasoning():
    category, reference, test = _pair(3)
    assert varied_reasoning(category, reference, test, random.Random(5)) == varied_reasoning(
        category, reference, test, random.Random(5))


def test_decisive_facts_by_hand():
    normal = [{"pins": 6}]
    assert decisive_facts("logical", {"pins": 5}, normal) == {"pins": 5}
    assert decisive_facts("structural", {"pins": 6}, normal) == {"damage": "any"}
    assert decisive_facts("good", {"pins": 6}, normal) == {"pins": 6, "damage": "none"}
    assert states_decisive_facts("Test: 5 pins. Reference: 6 pins and no damage.", {"pins": 5})
    assert not states_decisive_facts("Reference: 5 pins. Test: no damage.", {"pins": 5})
    assert states_decisive_facts("Well. The test image shows damage at the top left.", {"damage": "any"})
    assert not states_decisive_facts("The test image shows 6 pins and no damage.", {"damage": "any"})
    assert not states_decisive_facts("Test: 6 pins.", {"pins": 6, "damage": "none"})
    assert states_decisive_facts("Test: no damage, 6 pins.", {"pins": 6, "damage": "none"})


def test_every_logical_image_of_the_easy_look_alike_has_a_decisive_fact():
    from fadtq.evaluation.baselines import normal_facts

    for category in CATEGORIES:
        normal = normal_facts(category, "easy", scenes=60)
        for index in range(30):
            test = render(category, "logical", np.random.default_rng([13, index]), 64, EASY)
            assert decisive_facts("logical", true_facts(category, test), normal), (category, test.facts)


def test_a_varied_recipe_s_pairs_carry_varied_reasoning_and_random_answers():
    prompts = PromptLibrary()
    pairs = [make_example(VARIED, index, prompts, pair=True) for index in range(60)]
    assert len({e.think for e in pairs}) == 60 and not any(e.think.startswith("reference: ") and
                                                           ". test: " in e.think for e in pairs)
    assert all(e.response == f"<think>{e.think}</think><answer>{extract_answer(e.response)}</answer>" for e in pairs)
    assert set(extract_answer(e.response) for e in pairs) == set(CLASS_NAMES)
    assert VARIED.folder_name().endswith("-varied")
    assert PretrainRecipe(start="x", vision_steps=0, steps=800, reasoning="varied").folder_name() == "x-then800-varied"
