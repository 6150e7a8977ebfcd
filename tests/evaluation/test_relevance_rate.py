"""The relevance rate against the generator's facts, on a real look-alike tree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fadtq.data.dataset import _tree_name
from fadtq.data.describe import objects_phrase
from fadtq.data.synth import FOLDERS, synthesize
from fadtq.errors import FadtqError
from fadtq.evaluation.relevance_rate import decisive_stated_by_id, generator_facts, tree_parameters


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees") / _tree_name("tiny", 3, "easy", 64)
    synthesize(root, seed=3, scale="tiny", size=64, difficulty="easy", workers=1)
    rows = []
    for split, folder, label in FOLDERS:
        if split != "test":
            continue
        for path in sorted((root / "pushpins" / split / folder).glob("*.png")):
            rows.append({"id": f"pushpins/{label}/{path.stem}", "category": "pushpins", "label": label,
                         "test_image": str(path.relative_to(root))})
    return root, rows


def _record(row: dict, reasoning: str) -> dict:
    return {"id": row["id"], "category": row["category"], "label": row["label"],
            "completion": f"<think>{reasoning}</think><answer>good</answer>"}


def test_the_tree_s_name_gives_its_generator():
    assert tree_parameters(__import__("pathlib").Path("synth-cpu-seed1000-easy-r5")) == (1000, "easy", 128)
    assert tree_parameters(__import__("pathlib").Path("synth-tiny-seed3-easy-r5-64px")) == (3, "easy", 64)
    with pytest.raises(FadtqError, match="not a look-alike tree"):
        tree_parameters(__import__("pathlib").Path("mvtec_loco"))


def test_the_truth_stated_scores_one_and_the_decisive_fact_left_out_scores_zero(tree):
    root, rows = tree
    facts = generator_facts(root, rows)
    truthful, silent = [], []
    for row in rows:
        truth = facts[row["id"]]
        damage = "no damage" if truth["damage"] == "none" else f"damage at the {truth['damage']}"
        pins = objects_phrase("pushpins", {"pins": truth["pins"]})
        truthful.append(_record(row, f"Reference: 6 pins. Test: {pins} and {damage}."))
        # the logical image's count and the structural image's damage left unsaid; a good one's damage unsaid
        silent.append(_record(row, "Reference: 6 pins and no damage. The background is plain."))
    assert {row["label"] for row in rows} == {"good", "logical", "structural"}
    assert set(decisive_stated_by_id(truthful, rows, root).values()) == {1}
    assert set(decisive_stated_by_id(silent, rows, root).values()) == {0}


def test_a_changed_image_is_refused_rather_than_scored_with_another_drawing_s_facts(tree, tmp_path):
    root, rows = tree
    image = np.asarray(Image.open(root / rows[0]["test_image"])).copy()
    image[0, 0] ^= 1
    copy = tmp_path / root.name
    (copy / "pushpins" / "test" / "good").mkdir(parents=True)
    Image.fromarray(image).save(copy / rows[0]["test_image"])
    with pytest.raises(FadtqError, match="differs from the image generator seed 3 draws"):
        generator_facts(copy, rows[:1])
