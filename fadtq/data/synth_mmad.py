"""``fadtq synth --mmad``: an MMAD-format question file over look-alike images.

Every question is read off the generator's own record of the scene it drew (``synth.Scene``):
whether there is a defect and which (its name, its place: the centre of its ground-truth mask,
one of nine regions), what the object is, and its counts and parts (``Canvas.facts``). So the file
has MMAD's layout and question types with answers known exactly, for trying ``fadtq eval --mmad``
offline. The images are those of ``fadtq synth`` with the same seed, scale, size and difficulty
(the same generator seeds): the test folders are asked about, normal training images are the
templates.

The file is written as ``OUT.json`` with the images beside it under ``synth/`` (the source
dataset's name, the first segment of every key), as MMAD ships ``mmad.json`` beside its datasets.
Every field of MMAD's file is there: per image ``image_path`` and ``mask_path`` (relative to the
category's folder; the mask, the union of the defects' ground truth, is written under
``ground_truth/``; empty for a normal image), ``conversation`` (``annotation`` true: the answers
are the generator's own records), ``similar_templates`` and ``random_templates``.
Options are shuffled, and distractors drawn, with a generator seeded by the seed and the image's
key: the file is identical for a seed.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from fadtq.data.describe import REGIONS, damage_region
from fadtq.data.loco import CATEGORIES
from fadtq.data.mmad_file import LETTERS
from fadtq.data.synth import FOLDERS, SPECS, Scene, difficulty_named, folder_counts, image_rng, render
from fadtq.errors import FadtqError
from fadtq.files import atomic_write_json
from fadtq.prompts import pretty_category

DATASET = "synth"
TEMPLATES = 4  # similar and random templates per image
OPTIONS = 4  # options of a question with more than two possible answers
TRAIN_GOOD = 0  # index in synth.FOLDERS of the folder templates come from
TEST_FOLDERS = (2, 3, 4)  # test good, structural, logical


def _count_question(fact: str, question: str) -> Callable[[dict, random.Random], tuple[str, list[str]]]:
    """A question about a count fact: the true count and three nearby wrong ones."""

    def ask(facts: dict, rng: random.Random) -> tuple[str, list[str]]:
        n = int(facts[fact])
        wrong = rng.sample([str(k) for k in range(max(0, n - 2), n + 4) if k != n], OPTIONS - 1)
        return question, [str(n), *wrong]

    return ask


def _choice_question(question: str, answer: Callable[[dict], str], choices: tuple[str, ...]):
    """A question whose answer is one of fixed ``choices``."""

    def ask(facts: dict, rng: random.Random) -> tuple[str, list[str]]:
        right = answer(facts)
        return question, [right, *[c for c in choices if c != right]]

    return ask


BOX_CONTENTS = ("cereals and toppings", "cereals but no toppings", "toppings but no cereals",
                "neither cereals nor toppings")
JUICE = {"cherry": "cherry juice", "orange": "orange juice", "banana": "banana juice",
         "none": "no juice: the bottle is empty"}
# Per category, (MMAD question type, question) about the scene's facts.
OBJECT_QUESTIONS = {
    "breakfast_box": [
        ("Object Structure", _count_question("fruits", "How many fruits are in the box?")),
        ("Object Details", _choice_question(
            "Besides fruit, what does the box hold?",
            lambda f: BOX_CONTENTS[2 * (not f["cereals"]) + (not f["toppings"])], BOX_CONTENTS)),
    ],
    "juice_bottle": [
        ("Object Structure", _count_question("labels", "How many labels are on the bottle?")),
        ("Object Details", _choice_question("What is in the bottle?", lambda f: JUICE[f["juice"]],
                                            tuple(JUICE.values()))),
    ],
    "pushpins": [("Object Structure", _count_question("pins", "How many pushpins are in the box?"))],
    "screw_bag": [("Object Structure", _count_question("parts", "How many washers and nuts are in the bag?"))],
    "splicing_connectors": [
        ("Object Structure", _count_question("connectors", "How many connectors are in the image?")),
        ("Object Details", _count_question("cables", "How many cables are in the image?")),
    ],
}


def _question(question: str, right: str, wrong: list[str], question_type: str, rng: random.Random) -> dict:
    """An MMAD question: the right answer among ``wrong`` ones, shuffled and lettered."""
    texts = [right, *wrong][: len(LETTERS)]
    rng.shuffle(texts)
    options = dict(zip(LETTERS, texts, strict=False))  # the first len(texts) letters
    return {"Question": question, "Options": options, "Answer": LETTERS[texts.index(right)], "type": question_type,
            "annotation": True}


def _pick(rng: random.Random, right: str, pool: list[str]) -> list[str]:
    """Up to ``OPTIONS - 1`` wrong answers drawn from ``pool``."""
    wrong = [item for item in pool if item != right]
    return rng.sample(wrong, min(OPTIONS - 1, len(wrong)))


def conversation(category: str, scene: Scene, rng: random.Random) -> list[dict]:
    """The questions about one image, answered from its scene record."""
    defective = bool(scene.defects)
    questions = [_question("Is there any defect in the object?", "Yes" if defective else "No",
                           ["No" if defective else "Yes"], "Anomaly Detection", rng)]
    if defective:
        name, mask = scene.defects[0]
        kinds = [kind.replace("_", " ") for kind in SPECS[category].defect_names()]
        right = name.replace("_", " ")
        questions.append(_question("What is the type of the defect?", right, _pick(rng, right, kinds),
                                   "Defect Classification", rng))
        regions = [f"the {region} of the image" for row in REGIONS for region in row]
        right = f"the {damage_region(mask)} of the image"
        questions.append(_question("Where is the defect?", right, _pick(rng, right, regions),
                                   "Defect Localization", rng))
    objects = [pretty_category(c) for c in CATEGORIES]
    right = pretty_category(category)
    questions.append(_question("What is the object in the image?", right, _pick(rng, right, objects),
                               "Object Classification", rng))
    for question_type, ask in OBJECT_QUESTIONS[category]:
        question, (right, *wrong) = ask(scene.facts, rng)
        questions.append(_question(question, right, wrong[: OPTIONS - 1], question_type, rng))
    return questions


def _key(category: str, folder: int, index: int) -> str:
    split, class_folder, _ = FOLDERS[folder]
    return f"{DATASET}/{category}/{split}/{class_folder}/{index:03d}.png"


def _mask_path(folder: int, index: int) -> str:
    """Where a defective image's mask goes, relative to the category's folder."""
    return f"ground_truth/{FOLDERS[folder][1]}/{index:03d}_mask.png"


def _similar(image: np.ndarray, templates: dict[str, np.ndarray]) -> list[str]:
    """The ``TEMPLATES`` normal images closest to ``image`` (mean absolute pixel difference)."""
    distance = {key: float(np.abs(image.astype(np.int16) - t.astype(np.int16)).mean()) for key, t in templates.items()}
    return sorted(templates, key=lambda key: (distance[key], key))[:TEMPLATES]


def _category(staging: Path, category: str, seed: int, scale: str, size: int, difficulty) -> dict[str, dict]:
    """Render one category's templates and test images into ``staging``; its entries, by key."""
    counts = folder_counts(category, scale)

    def draw(folder: int, index: int) -> tuple[str, Scene]:
        label = FOLDERS[folder][2]
        scene = render(category, label, image_rng(seed, category, folder, index), size, difficulty)
        key = _key(category, folder, index)
        (staging / key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene.image, "RGB").save(staging / key)
        if scene.defects:
            mask = staging / DATASET / category / _mask_path(folder, index)
            mask.parent.mkdir(parents=True, exist_ok=True)
            union = np.logical_or.reduce([defect for _, defect in scene.defects])
            Image.fromarray(union.astype(np.uint8) * 255, "L").save(mask)
        return key, scene

    templates = dict(draw(TRAIN_GOOD, i) for i in range(counts[TRAIN_GOOD]))
    pixels = {key: scene.image for key, scene in templates.items()}
    entries = {}
    for folder in TEST_FOLDERS:
        for index in range(counts[folder]):
            key, scene = draw(folder, index)
            rng = random.Random(f"fadtq-mmad:{seed}:{key}")
            entries[key] = {
                "image_path": key.split("/", 2)[2],
                "mask_path": _mask_path(folder, index) if scene.defects else "",
                "conversation": conversation(category, scene, rng),
                "similar_templates": _similar(scene.image, pixels),
                "random_templates": rng.sample(sorted(pixels), min(TEMPLATES, len(pixels))),
            }
    return entries


def check_mmad_output(out: Path) -> Path:
    """The images' folder beside ``out``; neither may exist yet (nothing is overwritten)."""
    if out.suffix.lower() != ".json":
        raise FadtqError(f"--mmad {out}: expected a .json file name")
    if out.exists():
        raise FadtqError(f"--mmad {out}: already exists; choose a new file")
    images = out.parent / DATASET
    if images.exists() and (not images.is_dir() or any(images.iterdir())):
        raise FadtqError(f"--mmad {out}: {images} already exists and is not empty (the images go there); "
                         "choose another folder")
    return images


def write_mmad(out: str | Path, seed: int = 0, scale: str = "tiny", size: int = 128, *,
               difficulty: str = "standard") -> Path:
    """Write the MMAD-format file ``out`` and its images under ``out``'s folder / ``synth``.

    The images appear whole (drawn in a sibling temporary folder, then renamed), then the file."""
    out = Path(out)
    level = difficulty_named(difficulty)
    if size < 16:
        raise FadtqError(f"--size {size}: expected at least 16 pixels")
    for category in CATEGORIES:
        folder_counts(category, scale)  # a bad --scale fails before anything is drawn
    images = check_mmad_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        entries = {}
        for category in CATEGORIES:
            entries.update(_category(staging, category, seed, scale, size, level))
        if images.exists():
            images.rmdir()
        (staging / DATASET).rename(images)
        atomic_write_json(out, entries)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
