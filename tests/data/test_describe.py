"""The rules that keep RL after ``fadtq pretrain`` honest (the embedded default must learn from reward, not from its descriptions).

Pretraining targets describe single images: no class name, answer synonym or option letter; no
comparison of the two images; no word on whether an image is normal; answers drawn at random; and
no image that any benchmark split holds."""

import hashlib
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from fadtq.answer import CLASS_PATTERNS, extract_answer, parse_class, think_text
from fadtq.data.describe import COMPARISONS, damage_region, describe
from fadtq.data.loco import CATEGORIES
from fadtq.data.synth import DIFFICULTIES, TINY_COUNTS, image_rng, render, synthesize
from fadtq.prompts import CLASS_NAMES, OPTION_LETTERS, PromptLibrary
from fadtq.pretraining.pretrain import PretrainRecipe, examples, make_example

RECIPE = PretrainRecipe()


@pytest.fixture(scope="module")
def sample():
    return list(examples(RECIPE, 0, 240, PromptLibrary()))


def target_text(example) -> str:
    """What the model is taught to write about the images: a pair's reasoning, a single image's description."""
    return think_text(example.response) if len(example.images) == 2 else example.response


def test_both_kinds_of_example_are_drawn(sample):
    singles = sum(len(e.images) == 1 for e in sample)
    assert 0.45 < singles / len(sample) < 0.75 and all(len(e.images) in (1, 2) for e in sample)
    assert all(e.response == f"{e.think}." and "<answer>" not in e.response for e in sample if len(e.images) == 1)


def test_targets_hold_no_answer_word_and_no_option_letter(sample):
    for example in sample:
        think = target_text(example)
        assert parse_class(think) is None, think
        assert not any(pattern.search(think.lower()) for pattern in CLASS_PATTERNS.values()), think
        assert not re.search(rf"\b({'|'.join(OPTION_LETTERS)})\b", think), think


def test_targets_describe_each_image_alone_and_never_compare(sample):
    for example in sample:
        think = target_text(example)
        assert not COMPARISONS.search(think), think
        # Two independent single-image descriptions, or one; nothing else.
        pattern = r"reference: ([^.]+)\. test: ([^.]+)\." if len(example.images) == 2 else r"[^.]+\."
        assert re.fullmatch(pattern, think), think


def test_answers_are_drawn_at_random_not_from_the_label():
    """The answer ignores the test image: it names the test image's class about a third of the time."""
    prompts, recipe = PromptLibrary(), PretrainRecipe(seed=3)
    hits, answers = 0, Counter()
    for index in range(300):
        example = make_example(recipe, index, prompts, pair=True)
        label = _label_of(recipe, index)
        answer = extract_answer(example.response)
        answers[answer] += 1
        hits += answer == label
    assert set(answers) == set(CLASS_NAMES) and min(answers.values()) > 70
    assert 0.25 < hits / 300 < 0.42


def test_a_pair_s_reference_is_of_any_class_unless_asked_for_normal_ones():
    """With ``reference="any"`` the reference is damaged or miscounted as often as a test image, so
    the language model cannot learn to copy its description; ``"good"`` keeps the benchmark's pairs."""
    prompts = PromptLibrary()

    def reference_damaged(reference: str) -> int:
        recipe = PretrainRecipe(reference=reference)
        references = (make_example(recipe, i, prompts, pair=True).facts[0] for i in range(90))
        return sum(facts["damage"] > 0 for facts in references)

    assert reference_damaged("good") == 0
    assert 15 < reference_damaged("any") < 50


def _label_of(recipe, index):
    import random

    choice = random.Random(f"pretrain:{recipe.seed}:{index}")
    choice.choice(CATEGORIES)
    return CLASS_NAMES[choice.randrange(len(CLASS_NAMES))]


def test_descriptions_state_what_the_scene_drew():
    easy = DIFFICULTIES["easy"]
    good = render("pushpins", "good", np.random.default_rng(1), 128, easy)
    assert describe("pushpins", good) == "6 pins, no damage"
    counts = {render("pushpins", "logical", np.random.default_rng(i), 128, easy).facts["pins"] for i in range(20)}
    assert counts - {6} and 6 not in counts
    broken = render("juice_bottle", "structural", np.random.default_rng(2), 128, easy)
    assert re.fullmatch(r"(cherry|orange|banana) juice, 2 labels, damage at the [a-z ]+", describe("juice_bottle", broken))


def test_damage_region_follows_the_mask():
    mask = np.zeros((30, 60), dtype=bool)
    mask[2:6, 50:58] = True
    assert damage_region(mask) == "top right"
    mask[:] = False
    mask[14:16, 28:32] = True
    assert damage_region(mask) == "middle"


def test_pretraining_images_are_none_of_any_benchmark_image(tmp_path):
    """Seeds: a benchmark image's category index is below len(CATEGORIES), a pretraining image's
    is not; and no pretraining image equals an image of a look-alike tree, byte for byte."""
    from fadtq.pretraining.pretrain import REFERENCE_ROLE, pretrain_rng

    tree = synthesize(tmp_path / "tree", seed=RECIPE.seed, scale="tiny", size=128, difficulty="easy", workers=1)
    benchmark = {hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()
                 for path in tree.rglob("*.png") if "ground_truth" not in path.parts}
    assert len(benchmark) == 5 * sum(TINY_COUNTS)
    for category in CATEGORIES:
        for folder, count in enumerate(TINY_COUNTS):
            assert image_rng(RECIPE.seed, category, folder, 0).bit_generator.seed_seq.entropy[1] < len(CATEGORIES)
            assert pretrain_rng(RECIPE.seed, category, folder, 0).bit_generator.seed_seq.entropy[1] >= len(CATEGORIES)

    for index in range(40):
        for category in CATEGORIES:
            for role, label in [(REFERENCE_ROLE, "good"), *enumerate(CLASS_NAMES)]:
                image = render(category, label, pretrain_rng(RECIPE.seed, category, role, index), 128,
                               DIFFICULTIES["easy"]).image
                assert hashlib.sha256(image.tobytes()).hexdigest() not in benchmark


def test_a_recipe_can_draw_fewer_scenes():
    """``--categories pushpins``: every example is a pushpins scene; the default draws all five, in
    the same order as before the option existed (the first example of seed 0 is a pushpins scene)."""
    only = PretrainRecipe(categories=("pushpins",))
    assert {e.category for e in examples(only, 0, 40, PromptLibrary())} == {"pushpins"}
    assert {e.category for e in examples(RECIPE, 0, 60, PromptLibrary())} == set(CATEGORIES)
    assert make_example(RECIPE, 0, PromptLibrary()).category == "pushpins"
