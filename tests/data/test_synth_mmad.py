"""``fadtq synth --mmad``: an MMAD-format file whose answers are the generator's own records."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from fadtq.cli import main as cli_main
from fadtq.data.describe import damage_region
from fadtq.data.loco import CATEGORIES
from fadtq.data.mmad_file import read_mmad
from fadtq.data.synth import FOLDERS, image_rng, render
from fadtq.data.synth_mmad import DATASET, conversation, write_mmad
from fadtq.prompts import pretty_category

TINY_SIZE = 32  # the size of the shared look-alike tree (tests/data/conftest.py)


@pytest.fixture(scope="module")
def mmad_file(tmp_path_factory) -> Path:
    return write_mmad(tmp_path_factory.mktemp("mmad") / "mmad.json", seed=0, scale="tiny", size=TINY_SIZE)


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_questions(mmad_file, tmp_path):
    again = write_mmad(tmp_path / "again" / "mmad.json", seed=0, scale="tiny", size=TINY_SIZE)
    assert _tree_bytes(again.parent) == _tree_bytes(mmad_file.parent)
    other = write_mmad(tmp_path / "other" / "mmad.json", seed=1, scale="tiny", size=TINY_SIZE)
    assert other.read_bytes() != mmad_file.read_bytes()


def test_the_file_validates_and_asks_the_expected_types(mmad_file):
    rows = read_mmad(mmad_file, mmad_file.parent)
    data = json.loads(mmad_file.read_text())
    assert len(data) == 5 * 30  # the tiny scale's 10 test images per class and category
    assert {row["dataset"] for row in rows} == {DATASET}
    types = Counter(row["type"] for row in rows)
    assert types["Anomaly Detection"] == types["Object Classification"] == 150
    assert types["Defect Classification"] == types["Defect Localization"] == 100  # anomalous images only
    assert types["Object Structure"] == 150 and types["Object Details"] == 90  # pushpins and screw bag: no details
    for entry in data.values():
        assert len(entry["similar_templates"]) == len(entry["random_templates"]) == 4
        assert all("/train/good/" in path for path in entry["similar_templates"] + entry["random_templates"])


def test_the_options_are_shuffled_and_distinct(mmad_file):
    rows = read_mmad(mmad_file, mmad_file.parent)
    assert all(len(set(row["options"].values())) == len(row["options"]) for row in rows)
    many = [row for row in rows if len(row["options"]) == 4]
    assert set(Counter(row["answer"] for row in many)) == {"A", "B", "C", "D"}
    assert max(Counter(row["answer"] for row in many).values()) < 0.4 * len(many)


def test_the_answers_are_the_scene_records(mmad_file):
    data = json.loads(mmad_file.read_text())
    for folder, category, index in ((3, "juice_bottle", 4), (4, "splicing_connectors", 7), (2, "pushpins", 1)):
        split, class_folder, label = FOLDERS[folder]
        key = f"{DATASET}/{category}/{split}/{class_folder}/{index:03d}.png"
        scene = render(category, label, image_rng(0, category, folder, index), TINY_SIZE)
        answers = {q["Question"]: q["Options"][q["Answer"]] for q in data[key]["conversation"]}
        assert answers["Is there any defect in the object?"] == ("No" if label == "good" else "Yes")
        assert answers["What is the object in the image?"] == pretty_category(category)
        if scene.defects:
            name, mask = scene.defects[0]
            assert answers["What is the type of the defect?"] == name.replace("_", " ")
            assert answers["Where is the defect?"] == f"the {damage_region(mask)} of the image"
        if category == "juice_bottle":
            assert answers["How many labels are on the bottle?"] == str(scene.facts["labels"])
        if category == "splicing_connectors":
            assert answers["How many cables are in the image?"] == str(scene.facts["cables"])
        if category == "pushpins":
            assert answers["How many pushpins are in the box?"] == str(scene.facts["pins"])


def test_the_images_are_the_look_alikes_own(mmad_file, tiny_tree_master):
    for category in CATEGORIES:
        for relative in (f"{category}/test/logical_anomalies/002.png", f"{category}/train/good/005.png"):
            assert (mmad_file.parent / DATASET / relative).read_bytes() == (tiny_tree_master / relative).read_bytes()


def test_the_similar_templates_are_the_closest_normal_images(mmad_file):
    import numpy as np
    from PIL import Image

    data = json.loads(mmad_file.read_text())
    key = f"{DATASET}/breakfast_box/test/good/000.png"
    image = np.asarray(Image.open(mmad_file.parent / key), dtype=np.int16)
    pool = sorted((mmad_file.parent / DATASET / "breakfast_box" / "train" / "good").glob("*.png"))
    distance = {f"{DATASET}/breakfast_box/train/good/{p.name}":
                np.abs(image - np.asarray(Image.open(p), dtype=np.int16)).mean() for p in pool}
    assert data[key]["similar_templates"] == sorted(distance, key=distance.get)[:4]


def test_count_options_hold_the_true_count_and_never_a_negative_one():
    scene = render("pushpins", "logical", image_rng(0, "pushpins", 4, 0), TINY_SIZE)
    for seed in range(20):
        questions = conversation("pushpins", scene, random.Random(seed))
        count = next(q for q in questions if q["type"] == "Object Structure")
        assert count["Options"][count["Answer"]] == str(scene.facts["pins"])
        assert all(int(text) >= 0 for text in count["Options"].values())


def test_the_command_writes_the_file_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "bench" / "mmad.json"
    assert cli_main(["synth", "--mmad", str(out), "--size", "16", "--seed", "3"]) == 0
    assert "wrote 740 questions about 150 images" in capsys.readouterr().out
    assert read_mmad(out, out.parent)
    before = _tree_bytes(tmp_path)
    for argv, fragment in (
        (["synth", "--mmad", str(out)], f"--mmad {out}: already exists"),
        (["synth", "--mmad", str(tmp_path / "bench" / "second.json")], "synth already exists and is not empty"),
        (["synth", "--mmad", str(tmp_path / "m.txt")], "expected a .json file name"),
        (["synth", "--mmad", str(tmp_path / "g.json"), "--grid", str(tmp_path / "g.png")], "--grid: only with --out"),
        (["synth", "--mmad", str(tmp_path / "w.json"), "--workers", "2"], "--workers: only with --out"),
        (["synth", "--out", str(tmp_path / "t"), "--mmad", str(tmp_path / "t.json")], "not allowed with argument"),
    ):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
    assert _tree_bytes(tmp_path) == before
